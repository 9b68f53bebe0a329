package metrics

import "time"

// WorkerStats is one worker's counts as the management API shows them.
type WorkerStats struct {
	Accepted   uint64  // shares accepted (at the miner's difficulty)
	Rejected   uint64  // shares rejected, every reason
	Speed      float64 // hashes/s over the window, as proxy_worker_speed
	Difficulty float64 // the difficulty last sent to the miner
	Since      time.Time
}

// Stats reads w's counts without locking. A nil Worker reads zero.
func (w *Worker) Stats() WorkerStats {
	if w == nil {
		return WorkerStats{}
	}
	st := WorkerStats{Accepted: w.accepted.Load(), Speed: w.speed.Load(), Difficulty: w.difficulty.Load(), Since: w.born}
	for i := range w.rejected {
		st.Rejected += w.rejected[i].Load()
	}
	return st
}

// Totals are the proxy-wide figures of the operator's dashboard.
type Totals struct {
	Accepted uint64  // shares accepted since start, workers gone included
	Rejected uint64  // shares rejected since start
	Speed    float64 // hashes/s of the live workers, as of the last Tick
}

// Totals sums every group (live and closed workers' counts) under the
// registry's lock: O(groups + workers), for an API request, not a hot path.
func (r *Registry) Totals() Totals {
	var t Totals
	if r == nil {
		return t
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var sum totals
	for _, g := range r.groupList {
		sum.add(&g.retired)
		t.Speed += g.speed
	}
	for _, w := range r.workers {
		w.load(&sum)
	}
	t.Accepted = sum.accepted
	for _, n := range sum.rejected {
		t.Rejected += n
	}
	return t
}

// UsersExpired counts issued names deleted by --users.ttl, in
// proxy_users_expired_total.
func (r *Registry) UsersExpired(n int) {
	if r == nil {
		return
	}
	r.usersExpired.Add(uint64(n))
}
