package metrics

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fixture returns a registry in which every family has samples: two users on two pools of two
// algorithms, shares of every outcome, pool events, drops and latencies.
func fixture(t testing.TB) *Registry {
	t.Helper()
	r, c := newTestRegistry(t, Config{Tag: "127.0.0.1:3333", WorkerLabel: "name"})
	r.PoolInUse("sha256", "btc.example:3333", 1)
	r.PoolLogin("sha256", "btc.example:3333", 1, +1)
	r.PoolInUse("scrypt", "ltc.example:3333", 65536)
	r.UpstreamAttempt("ltc.example:3333", AttemptConnectFailed)
	r.UpstreamAttempt("ltc.example:3333", "bogus")
	r.PoolInvalid("ltc.example:3333", "mining.notify")
	r.MinersConnected(3)
	r.UpstreamsConnected(1)
	r.SessionsInGrace(1)
	r.Dropped(DropSlowReader)
	r.Dropped("something_new")
	r.Panic("miner")
	r.NotifyFanout(300 * time.Microsecond)
	r.ShareRTT(40 * time.Millisecond)
	r.ShareRTT(20 * time.Second)

	a := r.NewWorker("10.0.0.1:4000", "rig1", "alice", "sha256", "btc.example:3333", 1)
	b := r.NewWorker("10.0.0.2:4000", "", "alice", "sha256", "btc.example:3333", 1)
	s := r.NewWorker("10.0.0.3:4000", "l3", "bob", "scrypt", "ltc.example:3333", 65536)
	for _, w := range []*Worker{a, b, s} {
		w.SetDifficulty(8)
		for range 5 {
			w.Sent(8)
			w.Accepted(8)
		}
		w.Sent(8)
		w.Rejected(ReasonLowDifficulty)
		// Two of the accepted shares met the pool's difficulty 32; the pool took one.
		w.Forwarded(32)
		w.Forwarded(32)
		w.PoolAccepted(32)
		w.PoolRejected(ReasonStale)
	}
	b.SetUp(false)
	c.t = t0.Add(time.Minute)
	r.Tick(c.t)
	return r
}

// TestWorkerSeries checks the values of one worker's series.
func TestWorkerSeries(t *testing.T) {
	r, c := newTestRegistry(t, Config{Tag: "px"})
	w := r.NewWorker("10.0.0.1:4000", "", "alice", "scrypt", "ltc:3333", 65536)
	w.SetDifficulty(2048)
	for range 3 {
		w.Sent(1024)
	}
	w.Accepted(1024)
	w.Accepted(3072)
	w.Rejected(ReasonStale)
	w.Rejected(ReasonStale)
	w.Rejected(ReasonProxyCheck)
	w.Rejected(Reason(200)) // undeclared: pool_error
	c.t = t0.Add(time.Minute)
	r.Tick(c.t)

	x := parse(t, r)
	wl := map[string]string{"proxy": "px", "worker": "10.0.0.1:4000", "user": "alice", "hash": "scrypt", "pool": "ltc:3333"}
	ul := map[string]string{"proxy": "px", "user": "alice", "hash": "scrypt", "pool": "ltc:3333"}
	f := func(name string, labels map[string]string, want float64) {
		t.Helper()
		if got := x.value(t, name, labels); !approx(got, want) {
			t.Errorf("%s%v = %v, want %v", name, labels, got, want)
		}
	}
	with := func(m map[string]string, k, v string) map[string]string {
		out := map[string]string{k: v}
		for a, b := range m {
			out[a] = b
		}
		return out
	}
	f("proxy_worker_up", map[string]string{"worker": "10.0.0.1:4000"}, 1)
	f("proxy_worker_sended", wl, 3)
	f("proxy_worker_one_sended", wl, 3*1024.0/65536)
	f("proxy_worker_accepted", wl, 2)
	f("proxy_worker_one_accepted", wl, 4096.0/65536)
	f("proxy_worker_speed", wl, (1<<32)*(4096.0/65536)/60)
	f("proxy_worker_difficulty", wl, 2048)
	f("proxy_user_accepted_total", ul, 2)
	f("proxy_user_one_accepted_total", ul, 4096.0/65536)
	f("proxy_shares_rejected_total", with(ul, "reason", "stale"), 2)
	f("proxy_shares_rejected_total", with(ul, "reason", "proxy_check"), 1)
	f("proxy_shares_rejected_total", with(ul, "reason", "pool_error"), 1)
	f("proxy_shares_rejected_total", with(ul, "reason", "duplicate"), 0)
	f("proxy_pool_accepted_total", map[string]string{"hash": "scrypt", "pool": "ltc:3333"}, 2)
	f("proxy_algorithm_one_accepted_total", map[string]string{"hash": "scrypt"}, 4096.0/65536)

	w.SetUp(false)
	f = func(name string, labels map[string]string, want float64) {
		t.Helper()
		if got := parse(t, r).value(t, name, labels); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	f("proxy_worker_up", map[string]string{"worker": "10.0.0.1:4000"}, 0)
	w.SetUp(true)
	f("proxy_worker_up", map[string]string{"worker": "10.0.0.1:4000"}, 1)
}

func TestReasonString(t *testing.T) {
	f := func(r Reason, want string) {
		t.Helper()
		if got := r.String(); got != want {
			t.Errorf("Reason(%d).String() = %q, want %q", r, got, want)
		}
	}
	f(ReasonStale, "stale")
	f(ReasonDuplicate, "duplicate")
	f(ReasonLowDifficulty, "low_difficulty")
	f(ReasonPoolError, "pool_error")
	f(ReasonPoolTimeout, "pool_timeout")
	f(ReasonProxyCheck, "proxy_check")
	f(ReasonOverloaded, "overloaded")
	f(Reason(numReasons), "pool_error")
}

// TestClose checks that Close removes every series of the worker while the totals remain.
func TestClose(t *testing.T) {
	r := fixture(t)
	before := parse(t, r)
	for _, w := range r.workers {
		if strings.Contains(w.labels, `worker="rig1"`) {
			w.Close()
			w.Close()        // idempotent
			w.Accepted(1000) // after Close: invisible
			w.Rejected(ReasonStale)
			break
		}
	}
	after := parse(t, r)
	if s := after.find("", nil); len(s) != 0 {
		t.Fatal("find with empty name matched")
	}
	for _, f := range proxyFamilies {
		if !strings.HasPrefix(f.name, "proxy_worker_") {
			continue
		}
		if n := len(after.find(f.name, map[string]string{"worker": "rig1"})); n != 0 {
			t.Errorf("%d %s series of the closed worker remain", n, f.name)
		}
		if n := len(after.find(f.name, nil)); n != 2 {
			t.Errorf("%d %s series, want the other 2 workers", n, f.name)
		}
	}
	if strings.Contains(after.text, `"rig1"`) {
		t.Error("the closed worker's name is still exposed")
	}
	// Totals keep the closed worker's counts.
	for _, name := range []string{
		"proxy_user_accepted_total", "proxy_user_one_accepted_total", "proxy_shares_rejected_total",
		"proxy_pool_accepted_total", "proxy_pool_one_accepted_total",
		"proxy_algorithm_accepted_total", "proxy_algorithm_one_accepted_total",
	} {
		b, a := before.find(name, nil), after.find(name, nil)
		if len(a) != len(b) {
			t.Fatalf("%s: %d series, had %d", name, len(a), len(b))
		}
		for i := range a {
			if a[i].value != b[i].value {
				t.Errorf("%s%v = %v after Close, was %v", name, a[i].labels, a[i].value, b[i].value)
			}
		}
	}
	if got := after.value(t, "proxy_user_accepted_total", map[string]string{"user": "alice"}); got != 10 {
		t.Errorf("alice accepted %v, want 10", got)
	}
	// A nil worker, as the proxy may hold before authorize, ignores everything.
	var nw *Worker
	nw.Sent(1)
	nw.Accepted(1)
	nw.Rejected(ReasonStale)
	nw.Forwarded(1)
	nw.PoolAccepted(1)
	nw.PoolRejected(ReasonStale)
	nw.SetDifficulty(1)
	nw.SetUp(true)
	nw.Close()
}

// TestCloseMany creates 20,000 workers and closes them in an order that moves the swap-remove
// around; the registry ends empty and its totals complete.
func TestCloseMany(t *testing.T) {
	r, _ := newTestRegistry(t, Config{})
	const n = 20000
	ws := make([]*Worker, n)
	for i := range ws {
		ws[i] = r.NewWorker(fmt.Sprintf("10.%d.%d.%d:4000", i>>16, i>>8&255, i&255), "", fmt.Sprintf("u%d", i%7), "sha256", "p:1", 1)
		ws[i].Accepted(1)
	}
	for i := 0; i < n; i += 2 { // evens first, then odds backwards
		ws[i].Close()
	}
	for i := n - 1; i >= 0; i -= 2 {
		ws[i].Close()
	}
	if len(r.workers) != 0 || len(r.live) != 0 {
		t.Fatalf("%d workers, %d live names left", len(r.workers), len(r.live))
	}
	x := parse(t, r)
	if got := x.value(t, "proxy_pool_accepted_total", nil); got != n {
		t.Errorf("pool accepted %v, want %d", got, n)
	}
	if len(x.find("proxy_worker_up", nil)) != 0 {
		t.Error("worker series remain")
	}
}

// TestConcurrent runs the hot methods from many goroutines while Tick, WritePrometheus,
// NewWorker and Close run, for the race detector; then checks that no share was lost and that
// totals never went down between scrapes.
func TestConcurrent(t *testing.T) {
	r, _ := newTestRegistry(t, Config{})
	const goroutines, shares = 8, 2000
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var bg sync.WaitGroup
	bg.Add(1)
	go func() { // scraper and ticker
		defer bg.Done()
		last := -1.0
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			r.Tick(t0.Add(time.Duration(i) * time.Minute))
			x := parse(t, r)
			if s := x.find("proxy_pool_accepted_total", nil); len(s) == 1 {
				if s[0].value < last {
					t.Errorf("pool total went down: %v after %v", s[0].value, last)
				}
				last = s[0].value
			}
		}
	}()
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := r.NewWorker(fmt.Sprintf("10.0.0.%d:1", g), "", "alice", "sha256", "p:1", 1)
			for i := range shares {
				w.Sent(1)
				w.Accepted(1)
				w.Rejected(Reason(i % int(numReasons)))
				w.Forwarded(4)
				w.PoolAccepted(4)
				w.PoolRejected(Reason(i % int(numReasons)))
				w.SetDifficulty(float64(i))
				r.ShareRTT(time.Millisecond)
				r.Dropped(DropBadInput)
				if i%500 == 499 { // a session ends, another starts
					w.Close()
					w = r.NewWorker(fmt.Sprintf("10.0.0.%d:%d", g, i), "", "alice", "sha256", "p:1", 1)
				}
			}
			w.Close()
		}()
	}
	wg.Wait()
	close(stop)
	bg.Wait()
	x := parse(t, r)
	if got := x.value(t, "proxy_user_accepted_total", nil); got != goroutines*shares {
		t.Errorf("accepted %v, want %d", got, goroutines*shares)
	}
	if got := x.value(t, "proxy_algorithm_one_accepted_total", nil); got != goroutines*shares {
		t.Errorf("one accepted %v, want %d", got, goroutines*shares)
	}
	var rejected float64
	for _, s := range x.find("proxy_shares_rejected_total", nil) {
		rejected += s.value
	}
	if rejected != goroutines*shares {
		t.Errorf("rejected %v, want %d", rejected, goroutines*shares)
	}
	if got := x.value(t, "proxy_pool_upstream_sent_total", nil); got != goroutines*shares {
		t.Errorf("upstream sent %v, want %d", got, goroutines*shares)
	}
	if got := x.value(t, "proxy_pool_upstream_one_accepted_total", nil); got != 4*goroutines*shares {
		t.Errorf("upstream one accepted %v, want %d", got, 4*goroutines*shares)
	}
	var upRejected float64
	for _, s := range x.find("proxy_user_upstream_rejected_total", nil) {
		upRejected += s.value
	}
	if upRejected != goroutines*shares {
		t.Errorf("upstream rejected %v, want %d", upRejected, goroutines*shares)
	}
	if got := x.value(t, "proxy_share_rtt_seconds_count", nil); got != goroutines*shares {
		t.Errorf("rtt count %v", got)
	}
	if got := x.value(t, "proxy_miners_dropped_total", map[string]string{"reason": "bad_input"}); got != goroutines*shares {
		t.Errorf("dropped %v", got)
	}
}

// TestStartStop runs the real ticker with a 10 ms step.
func TestStartStop(t *testing.T) {
	r := New(Config{Window: 40 * time.Millisecond, Step: 10 * time.Millisecond})
	w := r.NewWorker("10.0.0.1:1", "", "alice", "sha256", "p:1", 1)
	w.Accepted(1)
	r.Stop() // before Start: nothing
	r.Start()
	r.Start() // twice: one goroutine
	deadline := time.Now().Add(5 * time.Second)
	for w.speed.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the ticker never computed a speed")
		}
		time.Sleep(time.Millisecond)
	}
	r.Stop()
	r.Stop()
	r.Start() // restartable
	r.Stop()
}

func TestRegistryEvents(t *testing.T) {
	r, _ := newTestRegistry(t, Config{})
	r.MinersConnected(5)
	r.MinersConnected(-2)
	r.UpstreamsConnected(2)
	r.SessionsInGrace(1)
	r.SessionsInGrace(1)
	r.SessionsInGrace(-1)
	r.PoolLogin("sha256", "a:1", 1, +1)
	r.PoolLogin("sha256", "a:1", 1, -1)
	r.PoolLogin("scrypt", "b:1", 65536, +1)
	r.UpstreamAttempt("a:1", AttemptOK)
	r.UpstreamAttempt("a:1", AttemptOK)
	r.UpstreamAttempt("b:1", AttemptHandshakeTimeout)
	r.UpstreamAttempt("b:1", AttemptLoginRejected)
	r.UpstreamAttempt("b:1", AttemptLoginRejected)
	r.UpstreamAttempt("b:1", AttemptClosed)
	r.UpstreamAttempt("b:1", AttemptConnectFailed)
	for _, d := range dropReasons {
		r.Dropped(d)
	}
	r.Dropped(DropShutdown)
	for i := range maxExtraDrops + 5 {
		r.Dropped(fmt.Sprintf("new_%d", i))
	}
	r.Dropped(strings.Repeat("x", 100))
	r.Panic("miner")
	r.Panic("miner")
	r.Panic("elsewhere")
	r.Panic("")
	x := parse(t, r)
	f := func(name string, labels map[string]string, want float64) {
		t.Helper()
		if got := x.value(t, name, labels); got != want {
			t.Errorf("%s%v = %v, want %v", name, labels, got, want)
		}
	}
	f("proxy_miners_connected", nil, 3)
	f("proxy_upstreams_connected", nil, 2)
	f("proxy_sessions_in_grace", nil, 1)
	f("proxy_pool_up", map[string]string{"pool": "a:1"}, 0)
	f("proxy_pool_up", map[string]string{"pool": "b:1", "hash": "scrypt"}, 1)
	f("proxy_pool_divider", map[string]string{"pool": "b:1"}, 65536)
	attempts := func(pool, outcome string, want float64) {
		t.Helper()
		f("proxy_upstream_reconnects_total", map[string]string{"pool": pool, "outcome": outcome}, want)
	}
	attempts("a:1", "ok", 2)
	attempts("a:1", "connect_failed", 0) // declared outcomes are exposed at 0
	attempts("a:1", "tls_failed", 0)
	attempts("a:1", "handshake_timeout", 0)
	attempts("a:1", "login_rejected", 0)
	attempts("a:1", "closed", 0)
	attempts("b:1", "ok", 0)
	attempts("b:1", "connect_failed", 1)
	attempts("b:1", "tls_failed", 0)
	attempts("b:1", "handshake_timeout", 1)
	attempts("b:1", "login_rejected", 2)
	attempts("b:1", "closed", 1)
	if n := len(x.find("proxy_upstream_reconnects_total", nil)); n != 12 {
		t.Errorf("%d attempt series, want 12 (no other without an undeclared outcome)", n)
	}
	f("proxy_miners_dropped_total", map[string]string{"reason": "shutdown"}, 2)
	f("proxy_miners_dropped_total", map[string]string{"reason": "slow_reader"}, 1)
	f("proxy_miners_dropped_total", map[string]string{"reason": "new_0"}, 1)
	f("proxy_miners_dropped_total", map[string]string{"reason": "other"}, 6) // 5 over the cap + the long one
	f("proxy_panics_total", map[string]string{"where": "miner"}, 2)
	f("proxy_panics_total", map[string]string{"where": "pool"}, 0)
	f("proxy_panics_total", map[string]string{"where": "other"}, 2)
	if n := len(x.find("proxy_panics_total", nil)); n != 3 {
		t.Errorf("%d panic series, want 3", n)
	}
	if n := len(x.find("proxy_miners_dropped_total", nil)); n != len(dropReasons)+maxExtraDrops+1 {
		t.Errorf("%d drop series, want %d", n, len(dropReasons)+maxExtraDrops+1)
	}
	// Without workers there are no per-user, per-pool totals or worker families.
	for _, name := range []string{"proxy_pool_speed", "proxy_user_speed", "proxy_worker_up"} {
		if x.families[name] != nil {
			t.Errorf("family %s without workers", name)
		}
	}
}

func TestSetTag(t *testing.T) {
	r, _ := newTestRegistry(t, Config{})
	r.NewWorker("10.0.0.1:1", "", "alice", "sha256", "p:1", 1)
	f := func(want string) {
		t.Helper()
		for _, f := range parse(t, r).families {
			for _, s := range f.samples {
				if strings.HasPrefix(s.name, "proxy_") {
					if got, _ := s.label("proxy"); got != want {
						t.Fatalf("%s proxy=%q, want %q", s.name, got, want)
					}
				}
			}
		}
	}
	f("unknown")
	r.SetTag("0.0.0.0:3333") // after the worker exists: its series follow
	f("0.0.0.0:3333")
	r.SetTag("")
	f("unknown")
}

func TestNilRegistry(t *testing.T) {
	var r *Registry
	if w := r.NewWorker("a", "b", "c", "d", "e", 1); w != nil {
		t.Fatal("nil registry returned a worker")
	}
	r.SetTag("x")
	r.Start()
	r.Stop()
	r.Tick(t0)
	r.PoolInUse("a", "b", 1)
	r.PoolLogin("a", "b", 1, 1)
	r.UpstreamAttempt("a", AttemptOK)
	r.PoolInvalid("a", "mining.notify")
	r.MinersConnected(1)
	r.UpstreamsConnected(1)
	r.SessionsInGrace(1)
	r.Dropped("x")
	r.Panic("miner")
	r.NotifyFanout(1)
	r.ShareRTT(1)
	r.WritePrometheus(nil)
}

func TestDividerFallback(t *testing.T) {
	for _, d := range []float64{0, -1, math.NaN(), math.Inf(1)} {
		r, _ := newTestRegistry(t, Config{})
		w := r.NewWorker("10.0.0.1:1", "", "alice", "sha256", "p:1", d)
		w.Accepted(3)
		if got := w.oneAccepted.Load(); got != 3 {
			t.Errorf("divider %v: one_accepted %v, want 3 (divider 1)", d, got)
		}
	}
}

// TestBogusDifficulty checks that no difficulty a pool can send makes a one_* counter +Inf or
// NaN: the share is counted, its worth is 0, and SetDifficulty ignores it.
func TestBogusDifficulty(t *testing.T) {
	r, c := newTestRegistry(t, Config{})
	w := r.NewWorker("10.0.0.1:1", "", "alice", "sha256", "p:1", 1)
	w.SetDifficulty(1024)
	// 1.8e308 is past the float64 range: a pool's "1.8e308" parses as +Inf (with ERANGE).
	// 1.7e308 is finite, and two of them added are +Inf.
	parsed, _ := strconv.ParseFloat("1.8e308", 64)
	bogus := []float64{parsed, parsed, 1.7e308, 1.7e308, math.MaxFloat64, math.Inf(1), math.Inf(-1),
		math.NaN(), 0, -5, 0x1p225}
	for _, d := range bogus {
		w.Sent(d)
		w.Accepted(d)
		w.SetDifficulty(d)
	}
	w.Sent(0x1p224) // the largest meaningful difficulty still counts
	w.Accepted(0x1p224)
	c.t = t0.Add(time.Minute)
	r.Tick(c.t)
	x := parse(t, r)
	f := func(name string, want float64) {
		t.Helper()
		if got := x.value(t, name, nil); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	n := float64(len(bogus) + 1)
	f("proxy_worker_sended", n)
	f("proxy_worker_accepted", n)
	f("proxy_worker_one_sended", 0x1p224)
	f("proxy_worker_one_accepted", 0x1p224)
	f("proxy_user_one_accepted_total", 0x1p224)
	f("proxy_pool_one_accepted_total", 0x1p224)
	f("proxy_algorithm_one_accepted_total", 0x1p224)
	f("proxy_worker_speed", hashesPerDiff1*0x1p224/60)
	f("proxy_worker_difficulty", 1024)

	// A divider so small that diff/divider overflows is bounded the same way.
	w2 := r.NewWorker("10.0.0.2:1", "", "bob", "sha256", "p:1", 1e-300)
	w2.Accepted(1e10)
	if got := w2.oneAccepted.Load(); got != 0 {
		t.Errorf("one_accepted %v with an overflowing quotient, want 0", got)
	}
}

// TestUpstreamAttemptOther checks that undeclared outcomes are counted as other, exposed only
// once counted, and that a hostile pool name is cleaned and escaped.
func TestUpstreamAttemptOther(t *testing.T) {
	r, _ := newTestRegistry(t, Config{})
	r.UpstreamAttempt("p:1", AttemptOK)
	if n := len(parse(t, r).find("proxy_upstream_reconnects_total", map[string]string{"outcome": "other"})); n != 0 {
		t.Errorf("%d other series before any undeclared outcome", n)
	}
	r.UpstreamAttempt("p:1", "weird")
	r.UpstreamAttempt("p:1", "")
	r.UpstreamAttempt("bad\"\xff\n:1", AttemptClosed)
	x := parse(t, r)
	if got := x.value(t, "proxy_upstream_reconnects_total", map[string]string{"pool": "p:1", "outcome": "other"}); got != 2 {
		t.Errorf("other = %v, want 2", got)
	}
	if got := x.value(t, "proxy_upstream_reconnects_total", map[string]string{"pool": "bad\"\uFFFD\n:1", "outcome": "closed"}); got != 1 {
		t.Errorf("closed = %v, want 1", got)
	}
}
