package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// memResult is one RSS measurement: a process's VmRSS before the miners
// connected and once all were authorized and idle.
type memResult struct {
	idle, loaded uint64 // bytes
	miners       int
}

// perMinerKiB is (loaded - idle) / miners in KiB.
func (m memResult) perMinerKiB() float64 {
	if m.miners == 0 || m.loaded < m.idle {
		return 0
	}
	return float64(m.loaded-m.idle) / float64(m.miners) / 1024
}

// memory measures the proxy's RSS per connected miner in split mode at
// 1,000 / 5,000 / 18,000 miners and in passthrough mode at 1,000 / 5,000 /
// 9,000, against the pool simulator's RSS per miner with the same miners
// straight on it.
func (s *suite) memory(ctx context.Context) error {
	split := []int{1000, 5000, 18000}
	pass := []int{1000, 5000, 9000}
	if s.opts.quick {
		split, pass = []int{1000, 5000}, []int{1000}
	}
	counts := slices.Sorted(slices.Values(append(slices.Clone(split), pass...)))
	counts = slices.Compact(counts)

	base := map[int]memResult{}
	for _, n := range counts {
		m, err := s.memStraight(ctx, n)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			s.anomaly("memory", "straight %d miners: %v", n, err)
			continue
		}
		base[n] = m
	}
	for _, mode := range []string{"split", "passthrough"} {
		ns := split
		if mode == "passthrough" {
			ns = pass
		}
		for _, n := range ns {
			px, err := s.memProxy(ctx, mode, n)
			if err != nil {
				if ctx.Err() != nil {
					return err
				}
				s.anomaly("memory", "proxy %s %d miners: %v", mode, n, err)
				continue
			}
			r := Row{Scenario: "memory", Case: fmt.Sprintf("%s %d miners", mode, n), Metric: "RSS per miner", Unit: "KiB",
				Proxy: fp(px.perMinerKiB()),
				Note:  fmt.Sprintf("proxy RSS %.1f -> %.1f MiB", mib(px.idle), mib(px.loaded))}
			if b, ok := base[n]; ok {
				r.Straight = fp(b.perMinerKiB())
				r.Note = fmt.Sprintf("pool RSS %.1f -> %.1f MiB; ", mib(b.idle), mib(b.loaded)) + r.Note
			}
			if mode == "split" && n == 18000 {
				r.Key = keyRSS18000
			}
			s.add(r)
		}
	}
	s.note("memory: passthrough stops at 9,000 miners: it holds 2 descriptors per miner (miner + its own upstream), " +
		"so 18,000 miners would need ~36,000 descriptors in the proxy process, over the 20,000 per-process limit.")
	s.note("memory: RSS per miner = (VmRSS with all miners authorized and idle, after a %s settle - VmRSS before they connected) / miners; "+
		"'straight' is the pool simulator's own RSS per miner (goroutine per connection) with the same miners connected to it directly.", s.settle())
	return nil
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// settle is how long a loaded process is left before its RSS is read.
func (s *suite) settle() time.Duration {
	if s.opts.quick {
		return 2 * time.Second
	}
	return 3 * time.Second
}

// memStraight measures the pool simulator's RSS per miner with n idle
// miners connected straight to it.
func (s *suite) memStraight(ctx context.Context, n int) (memResult, error) {
	tag := fmt.Sprintf("memory-straight-%d", n)
	m := memResult{miners: n}
	pl, err := s.startPool(ctx, tag, idleDiff, false)
	if err != nil {
		return m, err
	}
	defer s.stopPool(pl, "memory")
	if err := sleepCtx(ctx, time.Second); err != nil {
		return m, err
	}
	if m.idle, err = rssBytes(pl.pid); err != nil {
		return m, err
	}
	fl, err := s.startFlood(ctx, tag, floodOpts{target: pl.addr, user: "bench.rig%d", miners: n,
		duration: rampTimeout(n) + 2*time.Minute})
	if err != nil {
		return m, err
	}
	rec := RunRecord{Scenario: "memory", Case: fmt.Sprintf("%d miners", n), Side: "straight",
		Commands: s.repro(pl, nil, fl)}
	defer func() { s.addRun(rec) }()
	if _, err := s.waitAuthorized(ctx, fl, rampTimeout(n), 20*time.Second); err != nil {
		fl.p.stop(5*time.Second, false)
		return m, err
	}
	if err := sleepCtx(ctx, s.settle()); err != nil {
		return m, err
	}
	if m.loaded, err = rssBytes(pl.pid); err != nil {
		return m, err
	}
	st, err := pl.stats(ctx)
	if err != nil {
		return m, err
	}
	sum, err := fl.stopAndSummary(ctx)
	if err != nil {
		return m, err
	}
	rec.Flood, _ = json.Marshal(sum)
	rec.Extra = map[string]any{"pool_rss_idle": m.idle, "pool_rss_loaded": m.loaded, "pool_connections": st.Connections}
	if st.Connections != n {
		return m, fmt.Errorf("pool holds %d connections, want %d", st.Connections, n)
	}
	return m, nil
}

// memProxy measures the proxy's RSS per miner with n idle miners
// connected through it in mode.
func (s *suite) memProxy(ctx context.Context, mode string, n int) (memResult, error) {
	tag := fmt.Sprintf("memory-%s-%d", mode, n)
	m := memResult{miners: n}
	pl, err := s.startPool(ctx, tag, idleDiff, false)
	if err != nil {
		return m, err
	}
	defer s.stopPool(pl, "memory")
	pi, err := s.startProxy(ctx, pl.addr, mode, tag)
	if err != nil {
		return m, err
	}
	defer s.stopProxy(pi, "memory")
	pid := pi.p.cmd.Process.Pid
	if err := sleepCtx(ctx, time.Second); err != nil {
		return m, err
	}
	if m.idle, err = rssBytes(pid); err != nil {
		return m, err
	}
	fl, err := s.startFlood(ctx, tag, floodOpts{target: pi.stratum, user: pi.name + ".rig%d", miners: n,
		duration: rampTimeout(n) + 2*time.Minute})
	if err != nil {
		return m, err
	}
	repro := s.repro(pl, pi, fl)
	rec := RunRecord{Scenario: "memory", Case: fmt.Sprintf("%s %d miners", mode, n), Side: "proxy", Commands: repro}
	defer func() { s.addRun(rec) }()
	if _, err := s.waitAuthorized(ctx, fl, rampTimeout(n), 20*time.Second); err != nil {
		fl.p.stop(5*time.Second, false)
		return m, fmt.Errorf("%v; proxy %s; reproduce: %s", err, pi.p.exitDescOrRunning(), strings.Join(repro, " ; "))
	}
	if err := sleepCtx(ctx, s.settle()); err != nil {
		return m, err
	}
	if m.loaded, err = rssBytes(pid); err != nil {
		return m, fmt.Errorf("proxy gone (%s): %v; reproduce: %s", pi.p.exitDesc(), err, strings.Join(repro, " ; "))
	}
	fds := fdCount(pid)
	met, err := scrape(ctx, pi.web)
	if err != nil {
		return m, err
	}
	st, err := pl.stats(ctx)
	if err != nil {
		return m, err
	}
	if s.opts.profile != "" && pi.harness {
		path := filepath.Join(s.opts.profile, tag+"-proxy.heap.pprof")
		if err := fetchProfile(ctx, pi.web, "heap?gc=1", path, 30*time.Second); err != nil {
			s.logf("  heap profile: %v", err)
		} else {
			s.logf("  heap profile: %s", path)
		}
	}
	sum, err := fl.stopAndSummary(ctx)
	if err != nil {
		return m, err
	}
	rec.Flood, _ = json.Marshal(sum)
	miners, ups := met.sums["proxy_miners_connected"], met.sums["proxy_upstreams_connected"]
	rec.Extra = map[string]any{"proxy_rss_idle": m.idle, "proxy_rss_loaded": m.loaded, "proxy_fds": fds,
		"proxy_miners_connected": miners, "proxy_upstreams_connected": ups, "pool_connections": st.Connections}
	wantUps := 1
	if mode == "passthrough" {
		wantUps = n
	}
	if int(miners) != n {
		s.anomaly("memory", "%s: proxy_miners_connected = %.0f with %d miners authorized; reproduce: %s", tag, miners, n, strings.Join(repro, " ; "))
	}
	if int(ups) != wantUps || st.Connections != wantUps {
		s.anomaly("memory", "%s: proxy_upstreams_connected = %.0f, pool connections = %d, want %d; reproduce: %s",
			tag, ups, st.Connections, wantUps, strings.Join(repro, " ; "))
	}
	if sum.Connect.Disconnects > 0 {
		s.anomaly("memory", "%s: the proxy closed %d idle miners; reproduce: %s", tag, sum.Connect.Disconnects, strings.Join(repro, " ; "))
	}
	s.logf("  %s: proxy fds %d, upstreams %.0f, pool connections %d", tag, fds, ups, st.Connections)
	return m, nil
}

// repro returns the command lines of a run (pool, proxy setup and
// server, flood; nil parts are skipped), as a user would type them from the
// module root: this binary as `go run ./bench/cmd/suite`, the built proxy
// as bin/stratum-proxy. Addresses are the ones of this run (ports are
// ephemeral: substitute the new ones).
func (s *suite) repro(pl *poolInst, pi *proxyInst, fl *floodInst) []string {
	var out []string
	if pl != nil {
		out = append(out, s.userCmd(pl.p.argv))
	}
	if pi != nil {
		if pi.setup != nil {
			out = append(out, s.userCmd(pi.setup))
		}
		out = append(out, s.userCmd(pi.p.argv))
	}
	if fl != nil {
		out = append(out, s.userCmd(fl.p.argv))
	}
	return out
}

// userCmd renders argv with the suite's temporary binaries replaced by
// the commands that build them.
func (s *suite) userCmd(argv []string) string {
	a := slices.Clone(argv)
	switch {
	case a[0] == s.self:
		a[0] = "go run ./bench/cmd/suite"
	case a[0] == s.proxyBin && s.opts.proxyBin == "":
		a[0] = "bin/stratum-proxy"
	}
	return a[0] + " " + cmdline(a[1:])
}

// exitDescOrRunning says whether a process still runs or how it ended.
func (p *proc) exitDescOrRunning() string {
	if d := p.exitDesc(); d != "" {
		return "exited: " + d
	}
	return "still running"
}
