package metrics

import (
	"math"
	"strings"
	"testing"
	"time"
)

// TestUpstreamSeries checks the pool's side of one worker at its three levels (worker, user,
// pool), and that it leaves the miner's side and the hashrate alone.
func TestUpstreamSeries(t *testing.T) {
	r, c := newTestRegistry(t, Config{Tag: "px"})
	w := r.NewWorker("10.0.0.1:4000", "", "alice", "scrypt", "ltc:3333", 65536)
	o := r.NewWorker("10.0.0.2:4000", "", "bob", "scrypt", "ltc:3333", 65536)
	for range 3 {
		w.Forwarded(65536)
	}
	w.PoolAccepted(65536)
	w.PoolAccepted(131072)
	w.PoolRejected(ReasonStale)
	w.PoolRejected(ReasonStale)
	w.PoolRejected(Reason(200)) // undeclared: pool_error
	o.Forwarded(65536)
	o.PoolAccepted(65536)
	c.t = t0.Add(time.Minute)
	r.Tick(c.t)

	x := parse(t, r)
	wl := map[string]string{"proxy": "px", "worker": "10.0.0.1:4000", "user": "alice", "hash": "scrypt", "pool": "ltc:3333"}
	ul := map[string]string{"proxy": "px", "user": "alice", "hash": "scrypt", "pool": "ltc:3333"}
	pl := map[string]string{"proxy": "px", "hash": "scrypt", "pool": "ltc:3333"}
	with := func(m map[string]string, k, v string) map[string]string {
		out := map[string]string{k: v}
		for a, b := range m {
			out[a] = b
		}
		return out
	}
	f := func(name string, labels map[string]string, want float64) {
		t.Helper()
		if got := x.value(t, name, labels); got != want {
			t.Errorf("%s%v = %v, want %v", name, labels, got, want)
		}
	}
	f("proxy_worker_upstream_sent_total", wl, 3)
	f("proxy_worker_upstream_one_sent_total", wl, 3)
	f("proxy_worker_upstream_accepted_total", wl, 2)
	f("proxy_worker_upstream_one_accepted_total", wl, 3)
	f("proxy_worker_upstream_rejected_total", with(wl, "reason", "stale"), 2)
	f("proxy_worker_upstream_rejected_total", with(wl, "reason", "pool_error"), 1)
	if n := len(x.find("proxy_worker_upstream_rejected_total", nil)); n != 2 {
		t.Errorf("%d per-worker rejected series, want 2 (only the reasons counted)", n)
	}
	f("proxy_user_upstream_sent_total", ul, 3)
	f("proxy_user_upstream_one_sent_total", ul, 3)
	f("proxy_user_upstream_accepted_total", ul, 2)
	f("proxy_user_upstream_one_accepted_total", ul, 3)
	f("proxy_user_upstream_rejected_total", with(ul, "reason", "stale"), 2)
	f("proxy_user_upstream_rejected_total", with(ul, "reason", "pool_error"), 1)
	f("proxy_user_upstream_rejected_total", with(ul, "reason", "duplicate"), 0)
	f("proxy_pool_upstream_sent_total", pl, 4)
	f("proxy_pool_upstream_one_sent_total", pl, 4)
	f("proxy_pool_upstream_accepted_total", pl, 3)
	f("proxy_pool_upstream_one_accepted_total", pl, 4)
	f("proxy_pool_upstream_rejected_total", with(pl, "reason", "stale"), 2)
	f("proxy_pool_upstream_rejected_total", with(pl, "reason", "pool_timeout"), 0)
	// Every reason the pool can give is exposed at 0; the proxy's own are not.
	for _, reason := range []string{"stale", "duplicate", "low_difficulty", "pool_error", "pool_timeout"} {
		if n := len(x.find("proxy_pool_upstream_rejected_total", with(pl, "reason", reason))); n != 1 {
			t.Errorf("%d pool series for reason %s, want 1", n, reason)
		}
	}
	for _, reason := range []string{"proxy_check", "overloaded"} {
		if n := len(x.find("proxy_pool_upstream_rejected_total", map[string]string{"reason": reason})); n != 0 {
			t.Errorf("pool series for the proxy's reason %s before any was counted", reason)
		}
	}
	// The miner's side and the hashrate are untouched.
	f("proxy_worker_sended", wl, 0)
	f("proxy_worker_accepted", wl, 0)
	f("proxy_worker_speed", wl, 0)
	f("proxy_pool_accepted_total", pl, 0)
	f("proxy_shares_rejected_total", with(ul, "reason", "stale"), 0)

	// A proxy-side reason passed to PoolRejected is a caller's mistake: shown, not hidden.
	w.PoolRejected(ReasonProxyCheck)
	x = parse(t, r)
	f("proxy_worker_upstream_rejected_total", with(wl, "reason", "proxy_check"), 1)
	f("proxy_pool_upstream_rejected_total", with(pl, "reason", "proxy_check"), 1)
	f("proxy_user_upstream_rejected_total", with(ul, "reason", "proxy_check"), 1)
	f("proxy_user_upstream_rejected_total", map[string]string{"user": "bob", "reason": "stale"}, 0)
	if n := len(x.find("proxy_user_upstream_rejected_total", map[string]string{"user": "bob", "reason": "proxy_check"})); n != 0 {
		t.Error("bob has a proxy_check series he never counted")
	}
}

// TestUpstreamRejectedFamilyAbsent checks that without any rejection the per-worker family is
// left out, header included, while the totals show every pool reason at 0.
func TestUpstreamRejectedFamilyAbsent(t *testing.T) {
	r, _ := newTestRegistry(t, Config{})
	w := r.NewWorker("10.0.0.1:1", "", "alice", "sha256", "p:1", 1)
	w.Forwarded(1)
	w.PoolAccepted(1)
	x := parse(t, r)
	if x.families["proxy_worker_upstream_rejected_total"] != nil {
		t.Error("per-worker rejected family without a rejection")
	}
	if n := len(x.find("proxy_pool_upstream_rejected_total", nil)); n != 5 {
		t.Errorf("%d pool rejected series, want 5", n)
	}
}

// TestUpstreamBogusDifficulty checks the same guards as TestBogusDifficulty on the pool's side.
func TestUpstreamBogusDifficulty(t *testing.T) {
	r, _ := newTestRegistry(t, Config{})
	w := r.NewWorker("10.0.0.1:1", "", "alice", "sha256", "p:1", 1)
	// +Inf is what a pool's "1.8e308" parses to; two 1.7e308 added are +Inf.
	bogus := []float64{1.7e308, 1.7e308, math.MaxFloat64, math.Inf(1), math.Inf(-1),
		math.NaN(), 0, -5, 0x1p225}
	for _, d := range bogus {
		w.Forwarded(d)
		w.PoolAccepted(d)
	}
	w.Forwarded(0x1p224)
	w.PoolAccepted(0x1p224)
	x := parse(t, r)
	f := func(name string, want float64) {
		t.Helper()
		if got := x.value(t, name, nil); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	n := float64(len(bogus) + 1)
	f("proxy_worker_upstream_sent_total", n)
	f("proxy_worker_upstream_accepted_total", n)
	f("proxy_worker_upstream_one_sent_total", 0x1p224)
	f("proxy_worker_upstream_one_accepted_total", 0x1p224)
	f("proxy_user_upstream_one_accepted_total", 0x1p224)
	f("proxy_pool_upstream_one_sent_total", 0x1p224)
	f("proxy_pool_upstream_one_accepted_total", 0x1p224)
}

// TestUpstreamClose checks that Close removes the worker's upstream series and that the user
// and pool totals keep its counts.
func TestUpstreamClose(t *testing.T) {
	r := fixture(t)
	before := parse(t, r)
	for _, w := range r.workers {
		if strings.HasPrefix(w.labels, `worker="rig1"`) {
			w.Close()
			w.Forwarded(32) // after Close: invisible
			w.PoolAccepted(32)
			w.PoolRejected(ReasonDuplicate)
			break
		}
	}
	after := parse(t, r)
	for _, name := range []string{
		"proxy_worker_upstream_sent_total", "proxy_worker_upstream_one_sent_total",
		"proxy_worker_upstream_accepted_total", "proxy_worker_upstream_one_accepted_total",
		"proxy_worker_upstream_rejected_total",
	} {
		if n := len(after.find(name, map[string]string{"worker": "rig1"})); n != 0 {
			t.Errorf("%s of the closed worker remains", name)
		}
		if n := len(after.find(name, nil)); n != 2 {
			t.Errorf("%d %s series, want the other 2 workers", n, name)
		}
	}
	for _, name := range []string{
		"proxy_user_upstream_sent_total", "proxy_user_upstream_one_sent_total",
		"proxy_user_upstream_accepted_total", "proxy_user_upstream_one_accepted_total",
		"proxy_user_upstream_rejected_total",
		"proxy_pool_upstream_sent_total", "proxy_pool_upstream_one_sent_total",
		"proxy_pool_upstream_accepted_total", "proxy_pool_upstream_one_accepted_total",
		"proxy_pool_upstream_rejected_total",
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
	// alice's two workers forwarded 2 shares each, one accepted and one stale.
	f := func(name string, labels map[string]string, want float64) {
		t.Helper()
		if got := after.value(t, name, labels); got != want {
			t.Errorf("%s%v = %v, want %v", name, labels, got, want)
		}
	}
	alice := map[string]string{"user": "alice"}
	f("proxy_user_upstream_sent_total", alice, 4)
	f("proxy_user_upstream_accepted_total", alice, 2)
	f("proxy_user_upstream_one_accepted_total", alice, 64)
	f("proxy_user_upstream_rejected_total", map[string]string{"user": "alice", "reason": "stale"}, 2)
	f("proxy_pool_upstream_sent_total", map[string]string{"pool": "btc.example:3333"}, 4)
}

// TestUpstreamMoveTo checks that the pool's side follows a failover like the miner's side: the
// moved worker's upstream series start at 0 on the new pool, and the old pool's totals keep
// exactly what was forwarded to it.
func TestUpstreamMoveTo(t *testing.T) {
	r, _ := newTestRegistry(t, Config{})
	w := r.NewWorker("10.0.0.1:1", "rig", "alice", "sha256", "primary:1", 1)
	for range 3 {
		w.Forwarded(64)
	}
	w.PoolAccepted(64)
	w.PoolAccepted(64)
	w.PoolRejected(ReasonPoolTimeout) // the primary died with the share in flight

	b := w.MoveTo("backup:1")
	w.Forwarded(64) // late, on the old worker: invisible
	w.PoolAccepted(64)
	w.PoolRejected(ReasonStale)

	at := func(pool string) map[string]string {
		return map[string]string{"worker": "10.0.0.1:1", "pool": pool}
	}
	pool := func(p string) map[string]string { return map[string]string{"pool": p} }
	x := parse(t, r)
	f := func(name string, labels map[string]string, want float64) {
		t.Helper()
		if got := x.value(t, name, labels); got != want {
			t.Errorf("%s%v = %v, want %v", name, labels, got, want)
		}
	}
	f("proxy_worker_upstream_sent_total", at("backup:1"), 0)
	f("proxy_worker_upstream_one_sent_total", at("backup:1"), 0)
	f("proxy_worker_upstream_accepted_total", at("backup:1"), 0)
	f("proxy_worker_upstream_one_accepted_total", at("backup:1"), 0)
	if x.families["proxy_worker_upstream_rejected_total"] != nil {
		t.Error("the moved worker brought its rejections to the backup")
	}
	if n := len(x.find("proxy_worker_upstream_sent_total", at("primary:1"))); n != 0 {
		t.Error("the moved worker's upstream series remain on the primary")
	}
	f("proxy_pool_upstream_sent_total", pool("primary:1"), 3)
	f("proxy_pool_upstream_one_sent_total", pool("primary:1"), 192)
	f("proxy_pool_upstream_accepted_total", pool("primary:1"), 2)
	f("proxy_pool_upstream_one_accepted_total", pool("primary:1"), 128)
	f("proxy_pool_upstream_rejected_total", map[string]string{"pool": "primary:1", "reason": "pool_timeout"}, 1)
	f("proxy_pool_upstream_rejected_total", map[string]string{"pool": "primary:1", "reason": "stale"}, 0)
	f("proxy_pool_upstream_sent_total", pool("backup:1"), 0)
	f("proxy_user_upstream_sent_total", pool("primary:1"), 3)

	b.Forwarded(64)
	b.PoolAccepted(64)
	p := b.MoveTo("primary:1") // failback
	p.Forwarded(64)
	x = parse(t, r)
	f("proxy_worker_upstream_sent_total", at("primary:1"), 1)
	f("proxy_pool_upstream_sent_total", pool("primary:1"), 4)
	f("proxy_pool_upstream_sent_total", pool("backup:1"), 1)
	f("proxy_pool_upstream_accepted_total", pool("backup:1"), 1)
	f("proxy_user_upstream_accepted_total", pool("backup:1"), 1)
}
