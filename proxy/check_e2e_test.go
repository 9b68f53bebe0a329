package proxy

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stratum-proxy/stratum-proxy/bench/miner"
	"github.com/stratum-proxy/stratum-proxy/bench/poolsim"
	"github.com/stratum-proxy/stratum-proxy/codec"
	"github.com/stratum-proxy/stratum-proxy/store"
)

// checkCfg lets per-miner difficulty go far below the test pools'.
func checkCfg() Config {
	cfg := fastCfg()
	cfg.VardiffFloor = 1e-9
	cfg.VardiffStart = testDiff
	return cfg
}

// A miner behind an upstream whose pool difficulty is 1,000 times its own
// mines at its own difficulty: the proxy hands it a lower set_difficulty,
// answers its shares true itself, and sends the pool only shares that meet
// the pool's difficulty, so the pool rejects none.
func TestPerMinerDifficultyBelowPool(t *testing.T) {
	h := newHarness(t, checkCfg())
	const poolDiff = 1000 * testDiff
	p := h.pool(poolsim.Config{Difficulty: poolDiff})
	m := h.dial(miner.Config{User: h.user(p.Addr()) + ".rig1", Password: "x"})
	waitJob(t, m, "a job at the miner's own difficulty", func(j *miner.Job) bool { return j.Difficulty < poolDiff })
	const n = 20
	for i := 0; i < n; i++ {
		mineOne(t, m)
	}
	st := p.Stats()
	if st.Rejected != 0 {
		t.Fatalf("the pool rejected %d shares: %+v", st.Rejected, st)
	}
	if st.Submits >= n/2 {
		t.Fatalf("%d of %d shares reached the pool, want only those meeting its difficulty %g", st.Submits, n, poolDiff)
	}
	text := h.scrape()
	if v, ok := metricValue(text, "proxy_worker_accepted"); !ok || v != n {
		t.Fatalf("proxy_worker_accepted = %v (found %v), want %d: shares accepted at the proxy count", v, ok, n)
	}
	if v, _ := metricValue(text, "proxy_worker_upstream_sent_total"); v != float64(st.Submits) {
		t.Fatalf("proxy_worker_upstream_sent_total = %v, the pool got %d", v, st.Submits)
	}
}

// Garbage, low-difficulty, duplicate, stale and out-of-window shares are
// answered by the proxy and never reach the pool: one broken miner cannot
// spoil the shared login's reject ratio.
func TestShareCheckRejectsLocally(t *testing.T) {
	h := newHarness(t, checkCfg())
	p := h.pool(poolsim.Config{})
	m := h.dial(miner.Config{User: h.user(p.Addr()) + ".rig1", Password: "x"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	good, err := m.Mine(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if ok, code, msg, err := m.Submit(ctx, good); !ok || err != nil {
		t.Fatalf("a valid share: %v %d %q %v", ok, code, msg, err)
	}
	before := p.Stats()

	dup := good
	if ok, code, _, _ := m.Submit(ctx, dup); ok || code != codec.CodeDuplicate {
		t.Fatalf("duplicate: ok=%v code=%d, want 22", ok, code)
	}
	low, err := m.Mine(ctx, 1e-12) // any hash: almost surely below the miner's target
	if err != nil {
		t.Fatal(err)
	}
	if low.Difficulty < testDiff {
		if ok, code, _, _ := m.Submit(ctx, low); ok || code != codec.CodeLowDifficulty {
			t.Fatalf("low difficulty: ok=%v code=%d, want 23", ok, code)
		}
	}
	future := good
	future.NTime += 3 * 3600
	if ok, code, msg, _ := m.Submit(ctx, future); ok || code != codec.CodeOther || !strings.Contains(msg, "ntime") {
		t.Fatalf("ntime 3h ahead: ok=%v code=%d %q, want 20 about ntime", ok, code, msg)
	}
	stale := good
	stale.JobID = "no-such-job"
	if ok, code, _, _ := m.Submit(ctx, stale); ok || code != codec.CodeJobNotFound {
		t.Fatalf("unknown job: ok=%v code=%d, want 21", ok, code)
	}
	after := p.Stats()
	if after.Submits != before.Submits || after.Rejected != 0 {
		t.Fatalf("refused shares reached the pool: before %+v after %+v", before, after)
	}
	mineOne(t, m) // and the miner mines on
}

// Bitaxe (ESP-Miner) sends configure, subscribe, authorize, then
// mining.suggest_difficulty: the proxy moves the miner to the suggestion
// (below the pool's difficulty), as set_difficulty followed by a notify,
// because cgminer-family firmware applies a difficulty only at the next
// notify. BIP310's minimum-difficulty is answered true.
func TestSuggestDifficultyBitaxe(t *testing.T) {
	h := newHarness(t, checkCfg())
	p := h.pool(poolsim.Config{Difficulty: 1e-3})
	name := h.user(p.Addr())
	r := h.raw()
	r.send(`{"id":1,"method":"mining.configure","params":[["version-rolling","minimum-difficulty"],{"version-rolling.mask":"ffffffff","minimum-difficulty.value":1e-8}]}` + "\n")
	if l := r.line(); !strings.Contains(l, `"minimum-difficulty":true`) {
		t.Fatalf("configure answered %s", l)
	}
	r.send(`{"id":2,"method":"mining.subscribe","params":["bitaxe/BM1370/v2.4.0"]}` + "\n")
	r.send(`{"id":3,"method":"mining.authorize","params":["` + name + `.bitaxe","x"]}` + "\n")
	isNotify := func(l string) bool { return strings.Contains(l, `"method":"mining.notify"`) }
	spReadUntil(t, r, "the first job", 10*time.Second, isNotify)
	const suggest = 2e-6
	r.send(fmt.Sprintf(`{"id":4,"method":"mining.suggest_difficulty","params":[%g]}`+"\n", suggest))
	spReadUntil(t, r, "the suggested difficulty", 10*time.Second, func(l string) bool {
		return setDifficultyOf(l) == suggest
	})
	if l := r.line(); !isNotify(l) {
		t.Fatalf("set_difficulty not followed by a notify: %s", l)
	}
}

// setDifficultyOf returns the difficulty of a mining.set_difficulty line,
// 0 for any other line.
func setDifficultyOf(line string) float64 {
	var m codec.Message
	if codec.Decode([]byte(strings.TrimSpace(line)), &m) != nil || string(m.Method) != codec.MethodSetDifficulty {
		return 0
	}
	p, err := codec.SplitArray(m.Params, nil)
	if err != nil || len(p) == 0 {
		return 0
	}
	d, _ := codec.ParseFloat(p[0])
	return d
}

// With --vardiff=off every miner mines at the pool's difficulty and every
// share is relayed, as before share checking.
func TestVardiffOffRelaysAtPoolDifficulty(t *testing.T) {
	cfg := checkCfg()
	cfg.NoVardiff = true
	h := newHarness(t, cfg)
	const poolDiff = 10 * testDiff
	p := h.pool(poolsim.Config{Difficulty: poolDiff})
	m := h.dial(miner.Config{User: h.user(p.Addr()), Password: "x"})
	waitJob(t, m, "a job", func(j *miner.Job) bool { return j.Difficulty == poolDiff })
	for i := 0; i < 3; i++ {
		mineOne(t, m)
	}
	if st := p.Stats(); st.Accepted != 3 {
		t.Fatalf("pool accepted %d, want every share (3)", st.Accepted)
	}
}

// Scrypt shares are hashed at the proxy too, off the event loop (about a
// millisecond each): a Litecoin-style miner behind a scrypt pool (which
// validates by scrypt hashing) mines at its own difficulty, its shares are
// answered in order, and the pool gets only shares that meet its
// difficulty, rejecting none.
func TestScryptSharesCheckedOffLoop(t *testing.T) {
	h := newHarness(t, checkCfg())
	const poolDiff = 2e-3 // in the pool's terms: about 130 scrypt hashes a share
	p, err := poolsim.Start(poolsim.Config{Algorithm: poolsim.Scrypt, Difficulty: poolDiff})
	if err != nil {
		t.Fatal(err)
	}
	h.pools = append(h.pools, p)
	if err := h.st.PutPool(store.Pool{Addr: p.Addr(), Algorithm: "scrypt"}); err != nil {
		t.Fatal(err)
	}
	m := h.dial(miner.Config{User: h.user(p.Addr()) + ".ltc", Password: "x", Algorithm: miner.Scrypt})
	waitJob(t, m, "a job at the miner's own difficulty", func(j *miner.Job) bool { return j.Difficulty < poolDiff })
	const n = 6
	for i := 0; i < n; i++ {
		mineOne(t, m)
	}
	st := p.Stats()
	if st.Rejected != 0 {
		t.Fatalf("the scrypt pool rejected %d shares: %+v", st.Rejected, st)
	}
	text := h.scrape()
	if v, ok := metricValue(text, "proxy_worker_accepted"); !ok || v != n {
		t.Fatalf("proxy_worker_accepted = %v (found %v), want %d", v, ok, n)
	}
	// A share meets the pool's difficulty once in ~130 hashes: most were
	// answered at the proxy, which only a scrypt check can decide.
	if v, _ := metricValue(text, "proxy_worker_upstream_sent_total"); v != float64(st.Submits) || v >= n {
		t.Fatalf("proxy_worker_upstream_sent_total = %v (pool got %d), want fewer than %d", v, st.Submits, n)
	}
}
