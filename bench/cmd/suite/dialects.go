package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratum-proxy/stratum-proxy/bench/dialectsim"
)

// dialectAlgo is the algorithm the proxy's pool table gives each dialect's
// pool; the proxy picks the dialect from it.
var dialectAlgo = map[dialectsim.Kind]string{
	dialectsim.CryptoNote: "randomx",
	dialectsim.EthStratum: "ethash",
	dialectsim.EthProxy:   "ethash",
	dialectsim.KawPow:     "kawpow",
	dialectsim.Equihash:   "equihash",
	dialectsim.KHeavyHash: "kheavyhash",
}

// Bounds of the dialects scenario.
const (
	dialectShares       = 3  // shares each miner mines
	dialectDialers      = 64 // dials in flight
	dialectMinerTimeout = 15 * time.Second
)

// dialectMiners is how many miners a dialect runs with: the kinds whose
// miners share pool connections get more.
func (s *suite) dialectMiners(k dialectsim.Kind) int {
	shared := k == dialectsim.CryptoNote || k == dialectsim.EthStratum
	switch {
	case shared && s.opts.quick:
		return 50
	case shared:
		return 500
	case s.opts.quick:
		return 20
	}
	return 100
}

// dialectUpstreams is the number of pool connections the proxy is
// expected to hold for n miners of one account: CryptoNote miners that
// send an algo list and EthereumStratum miners on a pool extranonce of at
// most 3 bytes (dialectsim's default is 2) share one per 256 miners; the
// others get one each.
func dialectUpstreams(k dialectsim.Kind, n int) int {
	if k == dialectsim.CryptoNote || k == dialectsim.EthStratum {
		return (n + 255) / 256
	}
	return n
}

// dialectSide is one side (straight or proxy) of one dialect.
type dialectSide struct {
	miners       int
	poolConns    int // pool connections with every miner connected and mined
	accepted     uint64
	rejected     uint64
	minedOK      int64 // miners that mined every share
	idle, loaded uint64
	mineErr      string // first miner error
	upsMetric    float64
	minersMetric float64
}

// dialects runs, for every dialectsim kind, N miners mining a few shares
// straight to an in-process dialect pool and then through a proxy child,
// and reports the pool connections (the proxy's upstreams), the proxy's
// RSS per miner and the shares the pool accepted and rejected.
func (s *suite) dialects(ctx context.Context) error {
	if s.proxyBin == "" {
		return errors.New("the dialects scenario runs the proxy binary; it does not support --profile")
	}
	for _, k := range dialectsim.Kinds() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		n := s.dialectMiners(k)
		caseName := fmt.Sprintf("%s %d miners", k, n)
		straight, err := s.dialectStraight(ctx, k, n)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			s.anomaly("dialects", "%s straight: %v", caseName, err)
		}
		px, err := s.dialectProxy(ctx, k, n)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			s.anomaly("dialects", "%s through the proxy: %v", caseName, err)
			continue
		}
		want := dialectUpstreams(k, n)
		s.add(Row{Scenario: "dialects", Case: caseName, Metric: "pool connections", Unit: "count",
			Straight: fp(float64(straight.poolConns)), Proxy: fp(float64(px.poolConns)),
			Note: fmt.Sprintf("expected %d through the proxy; proxy_upstreams_connected %.0f, proxy_miners_connected %.0f",
				want, px.upsMetric, px.minersMetric)})
		mem := memResult{idle: px.idle, loaded: px.loaded, miners: n}
		s.add(Row{Scenario: "dialects", Case: caseName, Metric: "proxy RSS per miner", Unit: "KiB",
			Proxy: fp(mem.perMinerKiB()),
			Note:  fmt.Sprintf("proxy RSS %.1f -> %.1f MiB", mib(px.idle), mib(px.loaded))})
		s.add(Row{Scenario: "dialects", Case: caseName, Metric: "shares accepted at the pool", Unit: "count",
			Straight: fp(float64(straight.accepted)), Proxy: fp(float64(px.accepted)),
			Note: fmt.Sprintf("%d per miner asked", dialectShares)})
		s.add(Row{Scenario: "dialects", Case: caseName, Metric: "shares rejected at the pool", Unit: "count",
			Straight: fp(float64(straight.rejected)), Proxy: fp(float64(px.rejected)), NoRatio: true})

		if px.poolConns != want {
			s.anomaly("dialects", "%s: the pool holds %d connections from the proxy, want %d", caseName, px.poolConns, want)
		}
		if straight.poolConns != n {
			s.anomaly("dialects", "%s: straight, the pool holds %d connections, want %d", caseName, straight.poolConns, n)
		}
		for _, side := range []struct {
			name string
			r    dialectSide
		}{{"straight", straight}, {"proxy", px}} {
			if side.r.miners == 0 {
				continue
			}
			if side.r.rejected > 0 || side.r.accepted != uint64(n*dialectShares) || side.r.minedOK != int64(n) {
				s.anomaly("dialects", "%s %s: pool accepted %d, rejected %d of %d shares; %d of %d miners mined all; first error %q",
					caseName, side.name, side.r.accepted, side.r.rejected, n*dialectShares, side.r.minedOK, n, side.r.mineErr)
			}
		}
	}
	s.note("dialects: each miner is a bench/dialectsim miner (stand-in proof of work, not the real hash) mining %d shares "+
		"against an in-process bench/dialectsim pool, straight or through the proxy binary; 'pool connections' is the pool's "+
		"open connections with every miner connected (the proxy's upstreams); proxy RSS per miner = (VmRSS with every miner "+
		"connected and done mining, after a %s settle - VmRSS before they connected) / miners.", dialectShares, s.settle())
	return nil
}

// dialectStraight connects n miners straight to a dialect pool.
func (s *suite) dialectStraight(ctx context.Context, k dialectsim.Kind, n int) (dialectSide, error) {
	r := dialectSide{}
	pool, err := dialectsim.StartPool(dialectsim.PoolConfig{Kind: k})
	if err != nil {
		return r, err
	}
	defer pool.Close()
	ms, err := dialMiners(ctx, k, pool.Addr(), "bench", n)
	defer closeMiners(ms)
	if err != nil {
		return r, err
	}
	r.miners = n
	r.minedOK, r.mineErr = mineAll(ms, dialectShares)
	r.poolConns = pool.Conns()
	st := pool.Stats()
	r.accepted, r.rejected = st.Accepted, st.Rejected
	s.addRun(RunRecord{Scenario: "dialects", Case: fmt.Sprintf("%s %d miners", k, n), Side: "straight",
		Extra: map[string]any{"pool_connections": r.poolConns, "pool_stats": st}})
	return r, nil
}

// dialectProxy connects n miners to a dialect pool through a proxy child.
func (s *suite) dialectProxy(ctx context.Context, k dialectsim.Kind, n int) (dialectSide, error) {
	r := dialectSide{}
	tag := fmt.Sprintf("dialects-%s-%d", k, n)
	pool, err := dialectsim.StartPool(dialectsim.PoolConfig{Kind: k})
	if err != nil {
		return r, err
	}
	defer pool.Close()
	pi, err := s.startDialectProxy(ctx, pool.Addr(), dialectAlgo[k], tag)
	if err != nil {
		return r, err
	}
	defer s.stopProxy(pi, "dialects")
	pid := pi.p.cmd.Process.Pid
	if err := sleepCtx(ctx, time.Second); err != nil {
		return r, err
	}
	if r.idle, err = rssBytes(pid); err != nil {
		return r, err
	}
	repro := s.repro(nil, pi, nil)
	ms, err := dialMiners(ctx, k, pi.stratum, pi.name, n)
	defer closeMiners(ms)
	if err != nil {
		return r, fmt.Errorf("%v; proxy %s; reproduce: %s", err, pi.p.exitDescOrRunning(), strings.Join(repro, " ; "))
	}
	r.miners = n
	r.minedOK, r.mineErr = mineAll(ms, dialectShares)
	if err := sleepCtx(ctx, s.settle()); err != nil {
		return r, err
	}
	if r.loaded, err = rssBytes(pid); err != nil {
		return r, fmt.Errorf("proxy gone (%s): %v", pi.p.exitDesc(), err)
	}
	r.poolConns = pool.Conns()
	st := pool.Stats()
	r.accepted, r.rejected = st.Accepted, st.Rejected
	if met, err := scrape(ctx, pi.web); err == nil {
		r.upsMetric, r.minersMetric = met.sums["proxy_upstreams_connected"], met.sums["proxy_miners_connected"]
	} else {
		s.logf("  %s: scrape /metrics: %v", tag, err)
	}
	s.addRun(RunRecord{Scenario: "dialects", Case: fmt.Sprintf("%s %d miners", k, n), Side: "proxy", Commands: repro,
		Extra: map[string]any{"pool_connections": r.poolConns, "pool_stats": st, "proxy_rss_idle": r.idle,
			"proxy_rss_loaded": r.loaded, "proxy_fds": fdCount(pid), "proxy_upstreams_connected": r.upsMetric,
			"proxy_miners_connected": r.minersMetric}})
	s.logf("  %s: pool connections %d, accepted %d rejected %d, proxy RSS %.1f -> %.1f MiB",
		tag, r.poolConns, r.accepted, r.rejected, mib(r.idle), mib(r.loaded))
	return r, nil
}

// startDialectProxy is startProxy for a pool of another algorithm than
// sha256: `pool add ADDR ALGO` before the server opens the store, the
// server, and one account registered through the API.
func (s *suite) startDialectProxy(ctx context.Context, poolAddr, algo, tag string) (*proxyInst, error) {
	dir, err := os.MkdirTemp(s.tmp, "proxy-"+tag+"-")
	if err != nil {
		return nil, err
	}
	db := filepath.Join(dir, "proxy.db")
	add := []string{s.proxyBin, "--db.path", db, "pool", "add", poolAddr, algo}
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	out, err := exec.CommandContext(actx, add[0], add[1:]...).CombinedOutput()
	cancel()
	if err != nil {
		return nil, fmt.Errorf("%s: %v: %s", cmdline(add), err, bytes.TrimSpace(out))
	}
	argv := proxyArgv(s.proxyBin, db, "split", s.opts.proxyArgs)
	p, err := s.procs.start("proxy-"+tag, argv, s.root, filepath.Join(dir, "proxy.log"), proxyLogLine)
	if err != nil {
		return nil, err
	}
	ev, _, err := p.waitEvent(ctx, "ready", 0, 30*time.Second, nil)
	if err != nil {
		p.stop(5*time.Second, true)
		return nil, err
	}
	var ready struct{ Stratum, Web string }
	_ = json.Unmarshal(ev.Data, &ready)
	pi := &proxyInst{p: p, stratum: ready.Stratum, web: ready.Web, setup: add}
	if pi.name, err = registerUser(ctx, pi.web, poolAddr); err != nil {
		p.stop(5*time.Second, true)
		return nil, err
	}
	return pi, nil
}

// dialMiners connects n miners of kind k to addr as user.rigI, at most
// dialectDialers at a time; on an error it returns the miners connected
// so far (the caller closes them) and the first error.
func dialMiners(ctx context.Context, k dialectsim.Kind, addr, user string, n int) ([]*dialectsim.Miner, error) {
	ms := make([]*dialectsim.Miner, n)
	var next atomic.Int64
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for w := 0; w < min(dialectDialers, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Bounded: each iteration takes a distinct index below n.
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				cfg := dialectsim.MinerConfig{Kind: k, Addr: addr, User: user, Pass: "x",
					Worker: fmt.Sprintf("rig%d", i), Timeout: dialectMinerTimeout}
				if k == dialectsim.CryptoNote {
					cfg.Algo = []string{"rx/0"}
				}
				m, err := dialectsim.DialMiner(cfg)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("miner %d: %w", i, err)
				}
				ms[i] = m
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	var out []*dialectsim.Miner
	for _, m := range ms {
		if m != nil {
			out = append(out, m)
		}
	}
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	return out, firstErr
}

// mineAll has every miner mine shares, all at once, and returns how many
// mined them all and the first error.
func mineAll(ms []*dialectsim.Miner, shares int) (ok int64, firstErr string) {
	var n atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Bounded: Mine finds and submits shares within the miner's timeout each.
			acc, rej, err := m.Mine(shares)
			if err == nil && acc == shares {
				n.Add(1)
				return
			}
			mu.Lock()
			if firstErr == "" {
				firstErr = fmt.Sprintf("accepted %d rejected %d: %v (last pool error %q)", acc, rej, err, m.LastError())
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return n.Load(), firstErr
}

func closeMiners(ms []*dialectsim.Miner) {
	var wg sync.WaitGroup
	for _, m := range ms {
		wg.Add(1)
		go func() { defer wg.Done(); _ = m.Close() }()
	}
	wg.Wait()
}
