package metrics

import (
	"testing"
	"time"
)

// TestHotPathDoesNotAllocate covers every call the proxy makes per share or per event.
func TestHotPathDoesNotAllocate(t *testing.T) {
	r, _ := newTestRegistry(t, Config{})
	w := r.NewWorker("10.0.0.1:4000", "rig", "alice", "sha256", "p:1", 1)
	f := func(name string, fn func()) {
		t.Helper()
		if n := testing.AllocsPerRun(1000, fn); n != 0 {
			t.Errorf("%s: %v allocations per call, want 0", name, n)
		}
	}
	f("Sent", func() { w.Sent(1024) })
	f("Accepted", func() { w.Accepted(1024) })
	f("Rejected", func() { w.Rejected(ReasonDuplicate) })
	f("Forwarded", func() { w.Forwarded(1 << 20) })
	f("PoolAccepted", func() { w.PoolAccepted(1 << 20) })
	f("PoolRejected", func() { w.PoolRejected(ReasonStale) })
	f("PoolRejected undeclared", func() { w.PoolRejected(Reason(200)) })
	f("SetDifficulty", func() { w.SetDifficulty(2048) })
	f("SetUp", func() { w.SetUp(true) })
	f("ShareRTT", func() { r.ShareRTT(3 * time.Millisecond) })
	f("NotifyFanout", func() { r.NotifyFanout(300 * time.Microsecond) })
	f("Dropped", func() { r.Dropped(DropIdleTimeout) })
	f("Dropped new", func() { r.Dropped(DropMemoryLimit) })
	f("Panic", func() { r.Panic("miner") })
	f("Panic other", func() { r.Panic("elsewhere") })
	f("MinersConnected", func() { r.MinersConnected(1) })
	f("UpstreamsConnected", func() { r.UpstreamsConnected(1) })
	f("SessionsInGrace", func() { r.SessionsInGrace(1) })
	// Per pool event, not per share, and under the lock; but once the pool exists they do not
	// allocate either (AllocsPerRun's warm-up call creates it).
	f("PoolLogin", func() { r.PoolLogin("sha256", "p:1", 1, +1) })
	f("UpstreamAttempt", func() { r.UpstreamAttempt("p:1", AttemptOK) })
	var nw *Worker
	f("nil Worker", func() { nw.Accepted(1) })
	f("nil Worker Forwarded", func() { nw.Forwarded(1) })
	f("nil Worker PoolAccepted", func() { nw.PoolAccepted(1) })
	f("nil Worker PoolRejected", func() { nw.PoolRejected(ReasonStale) })
}
