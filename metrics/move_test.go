package metrics

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestMoveTo follows a worker through failover and failback: each pool keeps the shares it
// accepted, the worker's series follow it, and its speed carries over.
func TestMoveTo(t *testing.T) {
	r, c := newTestRegistry(t, Config{Tag: "px", WorkerLabel: "name"})
	r.NewWorker("10.0.0.9:1", "rig", "alice", "sha256", "primary:1", 1) // takes "rig"
	w := r.NewWorker("10.0.0.1:1", "rig", "alice", "sha256", "primary:1", 1)
	w.SetDifficulty(64)
	for range 3 {
		w.Sent(64)
		w.Accepted(64)
	}
	w.Rejected(ReasonStale)
	w.SetUp(false)
	c.t = t0.Add(time.Minute)
	r.Tick(c.t)
	speed := w.speed.Load()
	if speed == 0 {
		t.Fatal("no speed before the move")
	}

	if got := w.MoveTo("primary:1"); got != w {
		t.Fatal("MoveTo the same pool returned another worker")
	}
	b := w.MoveTo("backup:1") // failover
	if b == w || b == nil {
		t.Fatal("MoveTo another pool returned the same worker or nil")
	}
	w.Accepted(64) // late, on the old worker: invisible, as after Close
	w.Sent(64)

	at := func(pool string) map[string]string {
		return map[string]string{"worker": "rig#2", "user": "alice", "hash": "sha256", "pool": pool}
	}
	pool := func(p string) map[string]string { return map[string]string{"pool": p} }
	x := parse(t, r)
	f := func(name string, labels map[string]string, want float64) {
		t.Helper()
		if got := x.value(t, name, labels); got != want {
			t.Errorf("%s%v = %v, want %v", name, labels, got, want)
		}
	}
	for _, fam := range proxyFamilies {
		if fam != &famWorkerUp && len(fam.name) > 13 && fam.name[:13] == "proxy_worker_" {
			if n := len(x.find(fam.name, at("primary:1"))); n != 0 {
				t.Errorf("%s of the moved worker remains on the old pool", fam.name)
			}
		}
	}
	f("proxy_worker_up", map[string]string{"worker": "rig#2"}, 0) // up state carried
	f("proxy_worker_sended", at("backup:1"), 0)
	f("proxy_worker_accepted", at("backup:1"), 0)
	f("proxy_worker_one_accepted", at("backup:1"), 0)
	f("proxy_worker_difficulty", at("backup:1"), 64)
	f("proxy_worker_speed", at("backup:1"), speed)
	f("proxy_pool_accepted_total", pool("primary:1"), 3)
	f("proxy_pool_accepted_total", pool("backup:1"), 0)
	f("proxy_shares_rejected_total", map[string]string{"pool": "primary:1", "user": "alice", "reason": "stale"}, 1)
	f("proxy_user_accepted_total", map[string]string{"user": "alice", "pool": "primary:1"}, 3)
	f("proxy_algorithm_accepted_total", nil, 3)

	// Mining on the backup.
	b.SetUp(true)
	b.Sent(64)
	b.Accepted(64)
	c.t = t0.Add(2 * time.Minute)
	r.Tick(c.t)
	x = parse(t, r)
	f("proxy_worker_up", map[string]string{"worker": "rig#2"}, 1)
	f("proxy_worker_accepted", at("backup:1"), 1)
	f("proxy_pool_accepted_total", pool("backup:1"), 1)
	f("proxy_pool_accepted_total", pool("primary:1"), 3)
	f("proxy_algorithm_accepted_total", nil, 4)
	// The window kept the three shares from before the move: 4 shares of 64 over 2 minutes.
	f("proxy_worker_speed", at("backup:1"), hashesPerDiff1*4*64/120.0)
	f("proxy_pool_speed", pool("backup:1"), hashesPerDiff1*4*64/120.0)
	f("proxy_pool_speed", pool("primary:1"), 0)

	// Failback: a new series on the primary, whose totals add up.
	p := b.MoveTo("primary:1")
	p.Accepted(64)
	x = parse(t, r)
	f("proxy_worker_accepted", at("primary:1"), 1)
	f("proxy_pool_accepted_total", pool("primary:1"), 4)
	f("proxy_pool_accepted_total", pool("backup:1"), 1)
	if n := len(x.find("proxy_worker_up", map[string]string{"user": "alice"})); n != 2 {
		t.Errorf("%d proxy_worker_up series, want 2 (rig and rig#2)", n)
	}

	// A closed worker stays closed; a nil one stays nil.
	p.Close()
	if got := p.MoveTo("backup:1"); got != p {
		t.Error("MoveTo on a closed worker returned another worker")
	}
	if len(parse(t, r).find("proxy_worker_up", map[string]string{"worker": "rig#2"})) != 0 {
		t.Error("MoveTo resurrected a closed worker")
	}
	var nw *Worker
	if nw.MoveTo("x:1") != nil {
		t.Error("nil MoveTo returned a worker")
	}
	w.Close() // already closed by the move: no-op
	b.Close()
	if len(r.workers) != 1 || len(r.live) != 1 {
		t.Errorf("%d workers, %d live names, want 1 each", len(r.workers), len(r.live))
	}
	// "rig#2" is free again.
	r.NewWorker("10.0.0.2:1", "rig", "alice", "sha256", "primary:1", 1)
	parse(t, r)
}

// TestMoveToConcurrent moves workers back and forth while other goroutines count shares on
// whichever worker they last saw, for the race detector: no share is counted twice, and the
// totals never go down.
func TestMoveToConcurrent(t *testing.T) {
	r, _ := newTestRegistry(t, Config{})
	const goroutines, shares = 4, 20000
	var cur [goroutines]atomic.Pointer[Worker]
	for g := range goroutines {
		cur[g].Store(r.NewWorker("10.0.0.1:1", "", "alice", "sha256", "a:1", 1))
	}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range shares {
				w := cur[g].Load()
				w.Sent(1)
				w.Accepted(1)
				w.Forwarded(1)
				w.PoolAccepted(1)
			}
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	pools := []string{"a:1", "b:1"}
	sum := func(x *exposition, name string) (total float64) {
		for _, s := range x.find(name, nil) {
			total += s.value
		}
		return total
	}
	last, lastUp := -1.0, -1.0
	for i := 0; ; i++ {
		for g := range goroutines {
			cur[g].Store(cur[g].Load().MoveTo(pools[i%2]))
		}
		r.Tick(t0.Add(time.Duration(i) * time.Minute))
		x := parse(t, r)
		total, up := sum(x, "proxy_pool_accepted_total"), sum(x, "proxy_pool_upstream_accepted_total")
		if total < last || up < lastUp {
			t.Fatalf("pool totals went down: %v after %v, upstream %v after %v", total, last, up, lastUp)
		}
		last, lastUp = total, up
		select {
		case <-finished:
		default:
			continue
		}
		break
	}
	for g := range goroutines {
		cur[g].Load().Close()
	}
	var total float64
	for _, s := range parse(t, r).find("proxy_pool_accepted_total", nil) {
		total += s.value
	}
	if total > goroutines*shares || total == 0 {
		t.Errorf("accepted %v, want in (0, %d]", total, goroutines*shares)
	}
	if up := sum(parse(t, r), "proxy_pool_upstream_accepted_total"); up > goroutines*shares || up == 0 {
		t.Errorf("upstream accepted %v, want in (0, %d]", up, goroutines*shares)
	}
	if len(r.workers) != 0 || len(r.live) != 0 {
		t.Errorf("%d workers, %d names left", len(r.workers), len(r.live))
	}
}
