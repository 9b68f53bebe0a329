package proxy

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratum-proxy/stratum-proxy/bench/dialectsim"
	"github.com/stratum-proxy/stratum-proxy/bench/poolsim"
	"github.com/stratum-proxy/stratum-proxy/store"
)

// The dialect simulators check share format, job ids, nonce ranges,
// duplicates and difficulty against a stand-in SHA-256 (bench/dialectsim):
// none of these tests computes ethash, RandomX, kawpow, equihash or
// kHeavyHash. What they prove is the proxy's part: detection, login with
// the stored account, the rewriting of blobs, extranonces and ids, and
// the counting.

// dialectAlgo is the seeded algorithm each simulated dialect mines.
var dialectAlgo = map[dialectsim.Kind]string{
	dialectsim.CryptoNote: "randomx",
	dialectsim.EthStratum: "ethash",
	dialectsim.EthProxy:   "ethash",
	dialectsim.KawPow:     "kawpow",
	dialectsim.Equihash:   "equihash",
	dialectsim.KHeavyHash: "kheavyhash",
}

// altPool starts a dialect simulator and puts it in the pool table under
// algo.
func (h *harness) altPool(cfg dialectsim.PoolConfig, algo string) *dialectsim.Pool {
	h.t.Helper()
	p, err := dialectsim.StartPool(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { p.Close() })
	if err := h.st.PutPool(store.Pool{Addr: p.Addr(), Algorithm: algo}); err != nil {
		h.t.Fatal(err)
	}
	return p
}

// altMiner connects a dialect miner to the proxy.
func (h *harness) altMiner(cfg dialectsim.MinerConfig) *dialectsim.Miner {
	h.t.Helper()
	m, err := h.tryAltMiner(cfg)
	if err != nil {
		h.t.Fatalf("%s miner: %v", cfg.Kind, err)
	}
	return m
}

func (h *harness) tryAltMiner(cfg dialectsim.MinerConfig) (*dialectsim.Miner, error) {
	cfg.Addr = h.srv.Addr()
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Kind == dialectsim.CryptoNote && cfg.Algo == nil {
		cfg.Algo = []string{"rx/0"}
	}
	m, err := dialectsim.DialMiner(cfg)
	if err == nil {
		h.t.Cleanup(func() { m.Close() })
	}
	return m, err
}

// TestDialectsMineThroughOnePort: a miner of every dialect mines through
// the one port against its simulator; the pool sees the stored account,
// accepts every share, and /metrics counts them under the algorithm.
func TestDialectsMineThroughOnePort(t *testing.T) {
	for _, k := range dialectsim.Kinds() {
		t.Run(string(k), func(t *testing.T) {
			h := newHarness(t, fastCfg())
			pool := h.altPool(dialectsim.PoolConfig{Kind: k}, dialectAlgo[k])
			name := h.user(pool.Addr())
			m := h.altMiner(dialectsim.MinerConfig{Kind: k, User: name, Pass: "x", Worker: "rig7"})
			acc, rej, err := m.Mine(4)
			if err != nil || acc != 4 || rej != 0 {
				t.Fatalf("mined through the proxy: %d accepted, %d rejected, %v (last error %q)", acc, rej, err, m.LastError())
			}
			st := pool.Stats()
			if st.Accepted != 4 || st.Rejected != 0 {
				t.Fatalf("pool: %+v", st)
			}
			logins := pool.Logins()
			if len(logins) == 0 || logins[0].User != "acct" || logins[0].Pass != "x" {
				t.Fatalf("pool saw logins %+v, want the stored account acct/x", logins)
			}
			text := h.scrape()
			labels := []string{`user="` + name + `"`, `hash="` + dialectAlgo[k] + `"`, `pool="` + pool.Addr() + `"`}
			if v, _ := metricValue(text, "proxy_worker_accepted", labels...); v != 4 {
				t.Fatalf("proxy_worker_accepted = %v, want 4\n%s", v, grep(text, name))
			}
			if v, _ := metricValue(text, "proxy_worker_up", `user="`+name+`"`); v != 1 {
				t.Fatalf("proxy_worker_up = %v", v)
			}
		})
	}
}

// TestDialectDividers checks each seeded algorithm's divider against its
// dialect's difficulty unit: after n accepted shares at the pool's
// difficulty D, 2^32 * one_accepted must be the hashes those shares
// stand for: D each for CryptoNote and ETHProxy (difficulty in hashes),
// D * 2^32 for EthereumStratum, kawpow and kHeavyHash, D * 2^13
// solutions for equihash (Zcash diff 1 is 2^13 solutions).
func TestDialectDividers(t *testing.T) {
	perShare := map[dialectsim.Kind]func(d float64) float64{
		dialectsim.CryptoNote: func(d float64) float64 { return d },
		dialectsim.EthProxy:   func(d float64) float64 { return d },
		dialectsim.EthStratum: func(d float64) float64 { return d * math.Ldexp(1, 32) },
		dialectsim.KawPow:     func(d float64) float64 { return d * math.Ldexp(1, 32) },
		dialectsim.KHeavyHash: func(d float64) float64 { return d * math.Ldexp(1, 32) },
		dialectsim.Equihash:   func(d float64) float64 { return d * math.Ldexp(1, 13) },
	}
	for _, k := range dialectsim.Kinds() {
		t.Run(string(k), func(t *testing.T) {
			h := newHarness(t, fastCfg())
			d := dialectsim.DefaultDifficulty(k)
			pool := h.altPool(dialectsim.PoolConfig{Kind: k, Difficulty: d}, dialectAlgo[k])
			name := h.user(pool.Addr())
			m := h.altMiner(dialectsim.MinerConfig{Kind: k, User: name, Pass: "x"})
			const n = 3
			if acc, _, err := m.Mine(n); err != nil || acc != n {
				t.Fatalf("mined %d, %v", acc, err)
			}
			text := h.scrape()
			one, ok := metricValue(text, "proxy_worker_one_accepted", `user="`+name+`"`)
			if !ok {
				t.Fatalf("no proxy_worker_one_accepted\n%s", grep(text, name))
			}
			got, want := math.Ldexp(one, 32), n*perShare[k](d)
			if math.Abs(got-want) > want*1e-3 {
				t.Fatalf("%s: 2^32 * one_accepted = %g hashes, want %g (divider or unit wrong)", k, got, want)
			}
		})
	}
}

// TestCryptoNote256MinersOneUpstream: 256 xmrig-style miners of one
// account share one pool login, each with its own nonce byte; their
// shares never collide at the pool. The 257th gets a second upstream.
func TestCryptoNote256MinersOneUpstream(t *testing.T) {
	h := newHarness(t, fastCfg())
	pool := h.altPool(dialectsim.PoolConfig{Kind: dialectsim.CryptoNote}, "randomx")
	name := h.user(pool.Addr())
	const n = 256
	miners := make([]*dialectsim.Miner, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range miners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := h.tryAltMiner(dialectsim.MinerConfig{Kind: dialectsim.CryptoNote, User: name, Pass: "x", Worker: fmt.Sprint("rig", i)})
			if err != nil {
				errs <- err
				return
			}
			miners[i] = m
			if acc, _, err := m.Mine(2); err != nil || acc != 2 {
				errs <- fmt.Errorf("miner %d: %d accepted, %v (%s)", i, acc, err, m.LastError())
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if c := pool.Conns(); c != 1 {
		t.Fatalf("pool sees %d connections for %d miners, want 1", c, n)
	}
	bytes42 := map[string]bool{}
	for _, m := range miners {
		b := m.Blob()
		bytes42[b[84:86]] = true
	}
	if len(bytes42) != n {
		t.Fatalf("%d distinct nonce bytes among %d miners", len(bytes42), n)
	}
	st := pool.Stats()
	if st.Accepted != 2*n || st.Duplicate != 0 || st.Rejected != 0 {
		t.Fatalf("pool: %+v", st)
	}
	extra := h.altMiner(dialectsim.MinerConfig{Kind: dialectsim.CryptoNote, User: name, Pass: "x"})
	if acc, _, err := extra.Mine(1); err != nil || acc != 1 {
		t.Fatalf("257th miner: %v", err)
	}
	if c := pool.Conns(); c != 2 {
		t.Fatalf("pool sees %d connections with 257 miners, want 2", c)
	}
}

// TestCryptoNoteWithoutExtensionsGetsItsOwnUpstream: a miner that neither
// lists algorithms nor says it is xmrig may not keep blob byte 42, so it
// gets a pool login of its own and the pool's blob unchanged.
func TestCryptoNoteWithoutExtensionsGetsItsOwnUpstream(t *testing.T) {
	h := newHarness(t, fastCfg())
	pool := h.altPool(dialectsim.PoolConfig{Kind: dialectsim.CryptoNote}, "randomx")
	name := h.user(pool.Addr())
	for i := 0; i < 2; i++ {
		m := h.altMiner(dialectsim.MinerConfig{Kind: dialectsim.CryptoNote, User: name, Pass: "x", Agent: "cpuminer-multi/1.3", Algo: []string{}})
		if acc, _, err := m.Mine(2); err != nil || acc != 2 {
			t.Fatalf("miner %d: %d accepted, %v", i, acc, err)
		}
	}
	if c := pool.Conns(); c != 2 {
		t.Fatalf("pool sees %d connections for two passthrough miners, want 2", c)
	}
}

// TestCryptoNoteSubmitChecks: the proxy refuses a share outside the
// miner's nonce byte, one on an unknown job, a malformed one and a
// duplicate itself; none reaches the pool.
func TestCryptoNoteSubmitChecks(t *testing.T) {
	h := newHarness(t, fastCfg())
	pool := h.altPool(dialectsim.PoolConfig{Kind: dialectsim.CryptoNote}, "randomx")
	name := h.user(pool.Addr())
	m := h.altMiner(dialectsim.MinerConfig{Kind: dialectsim.CryptoNote, User: name, Pass: "x"})
	if acc, _, err := m.Mine(1); err != nil || acc != 1 {
		t.Fatal(err)
	}
	if ok, _ := m.ResubmitLast(); ok {
		t.Fatal("duplicate accepted")
	}
	mine := m.Blob()[84:86]
	other := "00"
	if mine == "00" {
		other = "01"
	}
	sid, job := m.SessionID(), m.JobID()
	for _, c := range []struct{ line, want string }{
		{`{"id":50,"jsonrpc":"2.0","method":"submit","params":{"id":"` + sid + `","job_id":"` + job + `","nonce":"000000` + other + `","result":"` + strings.Repeat("0", 64) + `"}}`, "Nonce outside"},
		{`{"id":51,"jsonrpc":"2.0","method":"submit","params":{"id":"` + sid + `","job_id":"nope","nonce":"000000` + mine + `","result":"` + strings.Repeat("0", 64) + `"}}`, "expired"},
		{`{"id":52,"jsonrpc":"2.0","method":"submit","params":{"id":"` + sid + `","job_id":"` + job + `","nonce":"zz","result":"00"}}`, "Malformed"},
		{`{"id":53,"jsonrpc":"2.0","method":"submit","params":{"id":"` + sid + `","job_id":"` + job + `","nonce":"000000` + mine + `","result":"` + strings.Repeat("f", 64) + `"}}`, "Low difficulty"},
	} {
		ans, err := m.SubmitRaw(c.line)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(fmt.Sprint(ans["error"]), c.want) {
			t.Fatalf("answer %v, want an error with %q", ans, c.want)
		}
	}
	st := pool.Stats()
	if st.Accepted != 1 || st.Rejected != 0 {
		t.Fatalf("pool saw rejects the proxy should have caught: %+v", st)
	}
}

// TestEthStratumSplit: with a 2-byte pool extranonce, EthereumStratum
// miners of one account share one pool login, each with the pool's
// extranonce and a byte of its own; with 4 bytes the pool leaves no room
// and each miner gets its own login.
func TestEthStratumSplit(t *testing.T) {
	for _, c := range []struct {
		en, conns int
	}{{2, 1}, {4, 3}} {
		t.Run(fmt.Sprint("extranonce", c.en), func(t *testing.T) {
			h := newHarness(t, fastCfg())
			pool := h.altPool(dialectsim.PoolConfig{Kind: dialectsim.EthStratum, ExtranonceSize: c.en}, "ethash")
			name := h.user(pool.Addr())
			seen := map[string]bool{}
			for i := 0; i < 3; i++ {
				m := h.altMiner(dialectsim.MinerConfig{Kind: dialectsim.EthStratum, User: name, Pass: "x"})
				if acc, _, err := m.Mine(3); err != nil || acc != 3 {
					t.Fatalf("miner %d: %d accepted, %v (%s)", i, acc, err, m.LastError())
				}
				en := m.Extranonce()
				if seen[en] {
					t.Fatalf("two miners got extranonce %s", en)
				}
				seen[en] = true
			}
			if got := pool.Conns(); got != c.conns {
				t.Fatalf("pool sees %d connections, want %d", got, c.conns)
			}
			if st := pool.Stats(); st.Accepted != 9 || st.Duplicate != 0 || st.Rejected != 0 {
				t.Fatalf("pool: %+v", st)
			}
		})
	}
}

// TestDialectPoolDropsMinersStay: the pool of each dialect drops every
// connection; the proxy logs in again and the miner, still connected,
// mines on (relayed miners get the new pool's extranonce).
func TestDialectPoolDropsMinersStay(t *testing.T) {
	for _, k := range dialectsim.Kinds() {
		t.Run(string(k), func(t *testing.T) {
			h := newHarness(t, fastCfg())
			pool := h.altPool(dialectsim.PoolConfig{Kind: k}, dialectAlgo[k])
			name := h.user(pool.Addr())
			m := h.altMiner(dialectsim.MinerConfig{Kind: k, User: name, Pass: "x"})
			if acc, _, err := m.Mine(1); err != nil || acc != 1 {
				t.Fatal(err)
			}
			jobs := m.Jobs()
			pool.DropConnections()
			waitFor(t, "the proxy to log in again", func() bool { return pool.Stats().Logins >= 2 && pool.Conns() == 1 })
			if k == dialectsim.EthProxy {
				pool.NewJob(true) // ETHProxy pools push work as it changes
			}
			deadline := time.Now().Add(10 * time.Second)
			for m.Jobs() == jobs && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			acc, _, err := m.Mine(2)
			if err != nil || acc != 2 {
				t.Fatalf("after the drop: %d accepted, %v (%s)", acc, err, m.LastError())
			}
		})
	}
}

// TestDialectMismatch: a miner whose dialect its account's algorithm does
// not speak gets an error naming both and is closed; a first line of no
// known dialect gets a clear error too.
func TestDialectMismatch(t *testing.T) {
	h := newHarness(t, fastCfg())
	btc := h.pool(poolsim.Config{})
	name := h.user(btc.Addr())
	_, err := h.tryAltMiner(dialectsim.MinerConfig{Kind: dialectsim.CryptoNote, User: name, Pass: "x"})
	if err == nil || !strings.Contains(err.Error(), "cryptonote") || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("xmrig login on a sha256 account: %v", err)
	}
	_, err = h.tryAltMiner(dialectsim.MinerConfig{Kind: dialectsim.EthProxy, User: name, Pass: "x"})
	if err == nil || !strings.Contains(err.Error(), "ethproxy") {
		t.Fatalf("eth_submitLogin on a sha256 account: %v", err)
	}
	waitFor(t, "two dialect_mismatch drops", func() bool {
		v, _ := metricValue(h.scrape(), "proxy_miners_dropped_total", `reason="dialect_mismatch"`)
		return v == 2
	})
	r := h.raw()
	r.send(`{"id":1,"method":"getwork","params":[]}` + "\n")
	if l := r.line(); !strings.Contains(l, "unknown dialect") {
		t.Fatalf("unknown first line answered %s", l)
	}
}

// TestEthStratumRestore: an EthereumStratum miner that reconnects with its
// session id (third subscribe param) gets its extranonce back at once,
// on the same pool login, and mines on.
func TestEthStratumRestore(t *testing.T) {
	h := newHarness(t, fastCfg())
	pool := h.altPool(dialectsim.PoolConfig{Kind: dialectsim.EthStratum}, "ethash")
	name := h.user(pool.Addr())
	keep := h.altMiner(dialectsim.MinerConfig{Kind: dialectsim.EthStratum, User: name, Pass: "x"}) // keeps the upstream busy
	m := h.altMiner(dialectsim.MinerConfig{Kind: dialectsim.EthStratum, User: name, Pass: "x"})
	if acc, _, err := m.Mine(1); err != nil || acc != 1 {
		t.Fatal(err)
	}
	sid, en := m.SessionID(), m.Extranonce()
	m.Close()
	waitFor(t, "the session to wait in grace", func() bool { return h.srv.Stats().InGrace == 1 })
	back := h.altMiner(dialectsim.MinerConfig{Kind: dialectsim.EthStratum, User: name, Pass: "x", SessionID: sid})
	if got := back.Extranonce(); got != en {
		t.Fatalf("restored extranonce %s, want %s", got, en)
	}
	if acc, _, err := back.Mine(2); err != nil || acc != 2 {
		t.Fatalf("after restore: %v (%s)", err, back.LastError())
	}
	if acc, _, err := keep.Mine(1); err != nil || acc != 1 {
		t.Fatal(err)
	}
	if c := pool.Conns(); c != 1 {
		t.Fatalf("pool connections %d, want 1", c)
	}
	if st := pool.Stats(); st.Duplicate != 0 || st.Rejected != 0 {
		t.Fatalf("pool: %+v", st)
	}
}

// TestCryptoNoteRestore: an xmrig-style miner that reconnects and goes on
// with its login's session id gets its session back: a job with the same
// nonce byte on the same pool login.
func TestCryptoNoteRestore(t *testing.T) {
	h := newHarness(t, fastCfg())
	pool := h.altPool(dialectsim.PoolConfig{Kind: dialectsim.CryptoNote}, "randomx")
	name := h.user(pool.Addr())
	keep := h.altMiner(dialectsim.MinerConfig{Kind: dialectsim.CryptoNote, User: name, Pass: "x"})
	m := h.altMiner(dialectsim.MinerConfig{Kind: dialectsim.CryptoNote, User: name, Pass: "x"})
	if acc, _, err := m.Mine(1); err != nil || acc != 1 {
		t.Fatal(err)
	}
	sid, b42 := m.SessionID(), m.Blob()[84:86]
	m.Close()
	waitFor(t, "the session to wait in grace", func() bool { return h.srv.Stats().InGrace == 1 })
	r := h.raw()
	r.send(`{"id":7,"jsonrpc":"2.0","method":"getjob","params":{"id":"` + sid + `"}}` + "\n")
	push, ans := r.line(), r.line()
	if !strings.Contains(push, `"method":"job"`) || !strings.Contains(ans, `"id":7`) {
		t.Fatalf("restore answered %s then %s", push, ans)
	}
	i := strings.Index(ans, `"blob":"`)
	if i < 0 || ans[i+8+84:i+8+86] != b42 {
		t.Fatalf("restored job %s, want nonce byte %s", ans, b42)
	}
	if acc, _, err := keep.Mine(1); err != nil || acc != 1 {
		t.Fatal(err)
	}
	if c := pool.Conns(); c != 1 {
		t.Fatalf("pool connections %d, want 1", c)
	}
	// An unknown session id restores nothing: the miner must log in.
	r2 := h.raw()
	r2.send(`{"id":8,"jsonrpc":"2.0","method":"getjob","params":{"id":"0123456789abcdef"}}` + "\n")
	if l := r2.line(); !strings.Contains(l, "not logged in") {
		t.Fatalf("unknown session answered %s", l)
	}
}

// TestRelayRestoreReplaysPoolState: a relayed (kawpow) miner that
// reconnects with its session id is not subscribed at the pool again: the
// proxy replays the pool's extranonce, target and job on its upstream.
func TestRelayRestoreReplaysPoolState(t *testing.T) {
	h := newHarness(t, fastCfg())
	pool := h.altPool(dialectsim.PoolConfig{Kind: dialectsim.KawPow}, "kawpow")
	name := h.user(pool.Addr())
	r := h.raw()
	r.send(`{"id":1,"method":"mining.subscribe","params":["kawpowminer/1.2.4"]}` + "\n")
	sub := r.line()
	i := strings.Index(sub, `["mining.notify","`)
	if i < 0 {
		t.Fatalf("subscribe answered %s", sub)
	}
	sid := sub[i+18 : i+18+16]
	r.send(`{"id":2,"method":"mining.authorize","params":["` + name + `","x"]}` + "\n")
	var en string
	for n, authorized := 0, false; n < 8 && (en == "" || !authorized); n++ {
		l := r.line()
		if strings.Contains(l, "mining.set_extranonce") {
			en = l
		}
		authorized = authorized || strings.Contains(l, `"id":2`)
	}
	if en == "" {
		t.Fatal("no mining.set_extranonce from the relay")
	}
	r.c.Close()
	waitFor(t, "the session to wait in grace", func() bool { return h.srv.Stats().InGrace == 1 })
	r2 := h.raw()
	r2.send(`{"id":1,"method":"mining.subscribe","params":["kawpowminer/1.2.4","` + sid + `"]}` + "\n")
	r2.line()
	r2.send(`{"id":2,"method":"mining.authorize","params":["` + name + `","x"]}` + "\n")
	got := r2.line() + r2.line() + r2.line() + r2.line()
	for _, want := range []string{`"id":2`, en, "mining.set_target", "mining.notify"} {
		if !strings.Contains(got, strings.TrimSpace(want)) {
			t.Fatalf("restored relay sent %s, missing %s", got, want)
		}
	}
	if n := pool.Stats().Logins; n != 1 {
		t.Fatalf("pool saw %d logins, want 1 (the session kept its upstream)", n)
	}
}

// TestDialectBadInput: malformed requests of every dialect get a clear
// error, reach no pool, and leave the connection working.
func TestDialectBadInput(t *testing.T) {
	cases := []struct {
		kind dialectsim.Kind
		bad  []string // each answered with an error containing the paired text
		want []string
	}{
		{dialectsim.CryptoNote, []string{
			`{"id":90,"jsonrpc":"2.0","method":"submit","params":{"job_id":"x"}}`,
			`{"id":91,"jsonrpc":"2.0","method":"frobnicate","params":{}}`,
		}, []string{"Malformed", "unknown method"}},
		{dialectsim.EthStratum, []string{
			`{"id":90,"method":"mining.submit","params":["w","1","00"]}`,
			`{"id":91,"method":"mining.submit","params":"nope"}`,
		}, []string{"malformed nonce", "params must be"}},
		{dialectsim.EthProxy, []string{
			`{"id":90,"jsonrpc":"2.0","method":"eth_submitWork","params":"nope"}`,
			`{"id":91,"jsonrpc":"2.0","method":"eth_submitWork","params":{"a":1}}`,
		}, []string{"params must be", "needs"}},
		{dialectsim.KawPow, []string{
			`{"id":90,"method":"mining.submit","params":{"a":1}}`,
		}, []string{"needs"}},
	}
	for _, c := range cases {
		t.Run(string(c.kind), func(t *testing.T) {
			h := newHarness(t, fastCfg())
			pool := h.altPool(dialectsim.PoolConfig{Kind: c.kind}, dialectAlgo[c.kind])
			name := h.user(pool.Addr())
			m := h.altMiner(dialectsim.MinerConfig{Kind: c.kind, User: name, Pass: "x"})
			for i, line := range c.bad {
				ans, err := m.SubmitRaw(line)
				if err != nil {
					t.Fatal(err)
				}
				if e := fmt.Sprint(ans["error"]); ans["error"] == nil || !strings.Contains(e, c.want[i]) {
					t.Fatalf("%s answered %v, want an error with %q", line, ans, c.want[i])
				}
			}
			if acc, _, err := m.Mine(1); err != nil || acc != 1 {
				t.Fatalf("after bad input: %v", err)
			}
			if st := pool.Stats(); st.Rejected != 0 || st.BadFormat != 0 {
				t.Fatalf("bad input reached the pool: %+v", st)
			}
		})
	}
}

// TestCryptoNoteLoginJobNotRepeated: xmrig (Client::parseJob) closes the
// connection when it receives the job it already has; the login answer
// carries the job, so no job push may repeat it. Found with a real xmrig
// 6.26.0: it reconnected every 5 s and never mined. Every answer also
// carries "jsonrpc":"2.0".
func TestCryptoNoteLoginJobNotRepeated(t *testing.T) {
	h := newHarness(t, fastCfg())
	pool := h.altPool(dialectsim.PoolConfig{Kind: dialectsim.CryptoNote}, "randomx")
	name := h.user(pool.Addr())
	r := h.raw()
	r.send(`{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"` + name + `","pass":"x","agent":"XMRig/6.26.0","algo":["rx/0"]}}` + "\n")
	login := r.line()
	if !strings.Contains(login, `"job":{`) || !strings.Contains(login, `"status":"OK"`) {
		t.Fatalf("login answered %s", login)
	}
	sid := login[strings.Index(login, `"result":{"id":"`)+16:]
	sid = sid[:strings.IndexByte(sid, '"')]
	r.send(`{"id":2,"jsonrpc":"2.0","method":"keepalived","params":{"id":"` + sid + `"}}` + "\n")
	next := r.line()
	if strings.Contains(next, `"method":"job"`) {
		t.Fatalf("the login's job was pushed again right after it: %s", next)
	}
	if !strings.Contains(next, `"id":2`) || !strings.Contains(next, `"jsonrpc":"2.0"`) || !strings.Contains(next, "KEEPALIVED") {
		t.Fatalf("keepalived answered %s", next)
	}
	r.send(`{"id":3,"jsonrpc":"2.0","method":"getjob","params":{"id":"` + sid + `"}}` + "\n")
	if l := r.line(); !strings.Contains(l, `"id":3`) || !strings.Contains(l, `"jsonrpc":"2.0"`) || !strings.Contains(l, `"blob":"`) {
		t.Fatalf("getjob answered %s", l)
	}
}

// TestCryptoNoteOlderJobStillValid: a new job at the same height does not
// end the older ones (cpuminer-multi submits for the previous job often;
// the pool accepts those): only a new height does.
func TestCryptoNoteOlderJobStillValid(t *testing.T) {
	h := newHarness(t, fastCfg())
	pool := h.altPool(dialectsim.PoolConfig{Kind: dialectsim.CryptoNote, JobHistory: 4}, "randomx")
	name := h.user(pool.Addr())
	m := h.altMiner(dialectsim.MinerConfig{Kind: dialectsim.CryptoNote, User: name, Pass: "x"})
	if acc, _, err := m.Mine(1); err != nil || acc != 1 {
		t.Fatal(err)
	}
	old := m.JobID()
	jobs := m.Jobs()
	pool.NewJob(false)
	waitFor(t, "the next job", func() bool { return m.Jobs() > jobs })
	if m.JobID() == old {
		t.Fatal("no new job")
	}
	// Resubmitting on the old job: a new nonce (the duplicate check is
	// per job), the old job id.
	sid := m.SessionID()
	b42 := m.Blob()[84:86]
	line := `{"id":60,"jsonrpc":"2.0","method":"submit","params":{"id":"` + sid + `","job_id":"` + old + `","nonce":"aaaaaa` + b42 + `","result":"` + strings.Repeat("0", 64) + `"}}`
	ans, err := m.SubmitRaw(line)
	if err != nil {
		t.Fatal(err)
	}
	if e := fmt.Sprint(ans["error"]); strings.Contains(e, "expired") {
		t.Fatalf("a share on the job before, same height, answered %v", ans)
	}
}
