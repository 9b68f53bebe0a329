package metrics

import (
	"math"
	"strconv"
	"sync/atomic"
	"time"
)

// hashesPerDiff1 is the expected number of hashes per share at difficulty 1 on sha256d
// (PROTOCOL.md section 5); other algorithms scale it through the divider.
const hashesPerDiff1 = 1 << 32

// Worker is one miner session's series: proxy_worker_up, proxy_worker_sended,
// proxy_worker_one_sended, proxy_worker_accepted, proxy_worker_one_accepted, proxy_worker_speed
// and proxy_worker_difficulty, plus its share of the per-user, per-pool and per-algorithm totals.
//
// Two sides are counted. The miner's side, at the miner's own difficulty: Sent for every share
// the miner sends, Accepted for every share the proxy accepts (it met the miner's target), and
// the hashrate from those. The pool's side, at the pool's difficulty, in the proxy_*_upstream_*
// series: Forwarded for every share sent upstream, then PoolAccepted or PoolRejected for the
// pool's answer. Where the proxy cannot check shares and forwards them all, the proxy calls both
// sides for each share and they count the same shares (at the same difficulty).
//
// Create it with Registry.NewWorker when the miner authorizes, end it with Close; when the
// miner's upstream moves to another pool, MoveTo moves it to that pool's series.
//
// Worker is safe for concurrent use. Sent, Accepted, Rejected, Forwarded, PoolAccepted,
// PoolRejected, SetDifficulty and SetUp do not allocate and touch only this worker's memory with
// atomics: no lock, nothing shared with other workers, so event loops never contend. A nil
// *Worker ignores every call.
type Worker struct {
	// Static after NewWorker.
	r       *Registry
	labels  string // `worker="..",user="..",hash="..",pool=".."`, escaped, without proxy
	upLen   int    // labels[:upLen] is `worker="..",user=".."`, the label set of proxy_worker_up
	divider float64
	born    time.Time
	grp     *group

	// Written by the hot methods from any goroutine; atomics only.
	sent        atomic.Uint64
	oneSent     atomicFloat
	accepted    atomic.Uint64
	oneAccepted atomicFloat
	rejected    [numReasons]atomic.Uint64
	up          upstreamCounts // the pool's side: Forwarded, PoolAccepted, PoolRejected
	difficulty  atomicFloat
	down        atomic.Bool // true during the restore grace; the zero value reads "up"
	ring        ring

	// Written by Tick (under r.mu), read atomically by WritePrometheus.
	speed atomicFloat

	// Guarded by r.mu.
	idx int // position in r.workers; -1 once closed
}

// NewWorker registers the series of a miner session and returns it, up.
//
// addr is the miner's ip:port. rigName is the part after the first '.' of the miner's authorize
// user name (see RigName), "" when it has none; it is the `worker` label when
// Config.WorkerLabel is "name", cut to Config.MaxLabelLen bytes. user is the issued user name,
// hash the algorithm (the `hash` label, e.g. "sha256"), pool the pool's host:port, and divider
// the algorithm's difficulty divider (1 for sha256d, 65536 for scrypt); a divider that is not
// positive and finite counts as 1.
//
// Two live workers never share a label set: when the `worker` value is taken (two rigs with
// one name, or a miner reconnecting from the same ip:port while its old session waits out its
// grace), the new one gets a suffix "#2", "#3", ...
//
// NewWorker takes the registry's lock; it is meant for session setup, not for every share.
func (r *Registry) NewWorker(addr, rigName, user, hash, pool string, divider float64) *Worker {
	if r == nil {
		return nil
	}
	name := cleanLabel(addr, 0)
	if r.cfg.byName() {
		if rig := cleanLabel(rigName, r.maxLabel); rig != "" {
			name = rig
		}
	}
	if !(divider > 0) || math.IsInf(divider, 1) {
		divider = 1
	}
	user, hash, pool = cleanLabel(user, 0), cleanLabel(hash, 0), cleanLabel(pool, 0)
	w := &Worker{
		r:       r,
		divider: divider,
		born:    r.now(),
		ring:    newRing(r.slots),
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	var b []byte
	for i := 1; ; i++ {
		v := name
		if i > 1 {
			v = name + "#" + strconv.Itoa(i)
		}
		b = appendLabel(b[:0], "worker", v)
		b = append(b, ',')
		b = appendLabel(b, "user", user)
		if _, taken := r.live[string(b)]; !taken {
			break
		}
	}
	w.upLen = len(b)
	b = append(b, ',')
	b = appendLabel(b, "hash", hash)
	b = append(b, ',')
	b = appendLabel(b, "pool", pool)
	w.labels = string(b)
	w.grp = r.groupLocked(user, hash, pool)
	w.idx = len(r.workers)
	r.workers = append(r.workers, w)
	r.live[w.upLabels()] = w
	return w
}

func (w *Worker) upLabels() string { return w.labels[:w.upLen] }

// Sent counts a share the miner sent, mined at difficulty diff: the miner's difficulty for the
// job the share was mined on, not the session's current one. A difficulty that is not positive
// and finite, or beyond what the algorithm can mean (diff/divider over 2^224), counts the share
// and adds 0 to proxy_worker_one_sended.
func (w *Worker) Sent(diff float64) {
	if w == nil {
		return
	}
	w.sent.Add(1)
	w.oneSent.Add(w.one(diff))
}

// Accepted counts a share the proxy accepted, mined at the miner's difficulty diff for the job
// (as for Sent), and adds diff/divider to the hashrate window: a share that met the miner's
// target when the proxy checks shares, or one the pool accepted when the proxy forwards every
// share unchecked. A bogus difficulty (as for Sent) counts the share and adds 0 to the
// one_accepted sums and the window.
func (w *Worker) Accepted(diff float64) {
	if w == nil {
		return
	}
	one := w.one(diff)
	w.accepted.Add(1)
	w.oneAccepted.Add(one)
	w.ring.add(one)
}

// maxOne bounds diff/divider, a share's worth in sha256d difficulty-1 units (2^32 hashes each).
// Why 2^224: the difficulty-1 target is about 2^224 and the smallest target is 1, so no hash can
// meet a higher difficulty; above it a "difficulty" is a pool's bug. It also keeps the one_*
// sums finite: 2^64 shares of 2^224 are 2^288, far below the float64 limit of about 2^1024.
const maxOne = 0x1p224

// one returns diff/divider, or 0 for a difficulty that is not positive and finite or whose
// diff/divider exceeds maxOne, so that a bogus difficulty from a pool (a set_difficulty of
// 1.8e308) can neither make a counter go down nor poison it with NaN or +Inf.
func (w *Worker) one(diff float64) float64 {
	v := diff / w.divider
	if !(v > 0) || v > maxOne { // NaN fails the first test, +Inf the second
		return 0
	}
	return v
}

// Rejected counts a rejected share under reason. It is counted only in
// proxy_shares_rejected_total, which keeps it after the worker is closed.
func (w *Worker) Rejected(reason Reason) {
	if w == nil {
		return
	}
	w.rejected[reason.index()].Add(1)
}

// Forwarded counts a share sent upstream to the pool, in proxy_worker_upstream_sent_total, and
// adds poolDiff/divider to proxy_worker_upstream_one_sent_total; poolDiff is the pool's
// difficulty for the share's job, which the share met. A bogus difficulty (as for Sent) counts
// the share and adds 0 to the sum. Call it as well as Sent (and Accepted or Rejected): it counts
// the pool's side only.
func (w *Worker) Forwarded(poolDiff float64) {
	if w == nil {
		return
	}
	w.up.sent.Add(1)
	w.up.oneSent.Add(w.one(poolDiff))
}

// PoolAccepted counts a forwarded share the pool accepted, in
// proxy_worker_upstream_accepted_total, and adds poolDiff/divider (poolDiff as for Forwarded) to
// proxy_worker_upstream_one_accepted_total: 2^32 times its rate is the hashrate the pool
// credits. It does not touch the hashrate window, which counts the miner's side (Accepted). A
// bogus difficulty (as for Sent) counts the share and adds 0 to the sum.
func (w *Worker) PoolAccepted(poolDiff float64) {
	if w == nil {
		return
	}
	w.up.accepted.Add(1)
	w.up.oneAccepted.Add(w.one(poolDiff))
}

// PoolRejected counts a forwarded share the pool rejected (or never answered), in
// proxy_worker_upstream_rejected_total{reason} and the per-user and per-pool upstream totals.
// reason is what the pool said: ReasonStale, ReasonDuplicate, ReasonLowDifficulty,
// ReasonPoolError or ReasonPoolTimeout; an undeclared Reason counts as ReasonPoolError. It
// counts the pool's side only: the miner's answer is counted by Accepted or Rejected.
func (w *Worker) PoolRejected(reason Reason) {
	if w == nil {
		return
	}
	w.up.rejected[reason.index()].Add(1)
}

// SetDifficulty sets proxy_worker_difficulty, the session's current difficulty. A difficulty that
// Sent would not credit (not positive and finite, or diff/divider over 2^224) is ignored: the
// gauge keeps its last value.
func (w *Worker) SetDifficulty(diff float64) {
	if w == nil || w.one(diff) == 0 {
		return
	}
	w.difficulty.Store(diff)
}

// SetUp sets proxy_worker_up: true (the default) while the miner is connected, false while its
// session waits in the restore grace period. The series are removed by Close when the grace
// period ends without a restore.
func (w *Worker) SetUp(up bool) {
	if w == nil {
		return
	}
	w.down.Store(!up)
}

// Close removes every series of w in O(1): a swap-remove from the registry's worker slice and a
// map delete. Its counts stay in the per-user, per-pool and per-algorithm totals, and its
// hashrate leaves proxy_user_speed and proxy_pool_speed at the next Tick.
//
// Close is idempotent. Calls on w after Close are harmless and invisible.
func (w *Worker) Close() {
	if w == nil {
		return
	}
	r := w.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if w.idx < 0 {
		return
	}
	w.load(&w.grp.retired)
	last := r.workers[len(r.workers)-1]
	r.workers[w.idx] = last
	last.idx = w.idx
	r.workers[len(r.workers)-1] = nil // let the closed worker be collected
	r.workers = r.workers[:len(r.workers)-1]
	delete(r.live, w.upLabels())
	w.idx = -1
}

// MoveTo moves the worker to the pool poolName (host:port) after its upstream failed over or
// back, and returns the worker to use from now on: same worker, user and hash labels, pool
// poolName. The new worker carries the hashrate window (so proxy_worker_speed continues, and
// proxy_user_speed and proxy_pool_speed follow at the next Tick), the difficulty and the up
// state; its counters start at 0. w is closed the way Close does: its series go and its counts
// stay credited to the old pool's user, pool and algorithm totals, so each pool keeps exactly
// the shares it accepted while the worker was there, and each pool's upstream totals exactly the
// shares forwarded to it and its answers.
//
// MoveTo to the pool w is already on returns w unchanged, and so does MoveTo on a closed
// worker (a closed session does not come back). A nil *Worker returns nil.
//
// MoveTo takes the registry's lock; it runs per failover, not per share. It is safe while other
// goroutines still call the share methods (Sent, Accepted, Rejected, Forwarded, PoolAccepted,
// PoolRejected) on w: a call that races with MoveTo is
// counted in the old pool's totals if it lands before MoveTo reads w's counts, and is lost
// otherwise, like any call on w after it returns (as after Close). The proxy should switch to
// the returned worker on the goroutine that counts the shares, before counting the next one.
func (w *Worker) MoveTo(poolName string) *Worker {
	if w == nil {
		return nil
	}
	poolName = cleanLabel(poolName, 0)
	r := w.r
	r.mu.Lock()
	defer r.mu.Unlock()
	k := w.grp.key
	if w.idx < 0 || k.pool == poolName {
		return w
	}
	nw := &Worker{
		r:       r,
		upLen:   w.upLen,
		divider: w.divider,
		born:    w.born, // the window keeps its age: no ramp-up after a move
		grp:     r.groupLocked(k.user, k.hash, poolName),
		ring:    newRing(len(w.ring.slots) - 1),
	}
	b := append([]byte(nil), w.upLabels()...)
	b = append(b, ',')
	b = appendLabel(b, "hash", k.hash)
	b = append(b, ',')
	b = appendLabel(b, "pool", poolName)
	nw.labels = string(b)
	// Tick rotates rings under r.mu, which we hold: the copy sees a stable cur.
	for i := range w.ring.slots {
		nw.ring.slots[i].Store(w.ring.slots[i].Load())
	}
	nw.ring.cur.Store(w.ring.cur.Load())
	nw.difficulty.Store(w.difficulty.Load())
	nw.down.Store(w.down.Load())
	nw.speed.Store(w.speed.Load())

	// Close w and put nw in its place: same slot in r.workers, same proxy_worker_up label set.
	w.load(&w.grp.retired)
	nw.idx = w.idx
	r.workers[w.idx] = nw
	r.live[nw.upLabels()] = nw
	w.idx = -1
	return nw
}

// upstreamCounts are a worker's counts of the pool's side; atomics only.
type upstreamCounts struct {
	sent        atomic.Uint64
	oneSent     atomicFloat
	accepted    atomic.Uint64
	oneAccepted atomicFloat
	rejected    [numReasons]atomic.Uint64
}

// upstreamTotals are the sums of upstreamCounts.
type upstreamTotals struct {
	sent        uint64
	oneSent     float64
	accepted    uint64
	oneAccepted float64
	rejected    [numReasons]uint64
}

// totals are the counts that outlive workers, kept per (user, hash, pool).
type totals struct {
	accepted    uint64
	oneAccepted float64
	rejected    [numReasons]uint64
	up          upstreamTotals
}

func (t *totals) add(o *totals) {
	t.accepted += o.accepted
	t.oneAccepted += o.oneAccepted
	for i := range t.rejected {
		t.rejected[i] += o.rejected[i]
	}
	t.up.sent += o.up.sent
	t.up.oneSent += o.up.oneSent
	t.up.accepted += o.up.accepted
	t.up.oneAccepted += o.up.oneAccepted
	for i := range t.up.rejected {
		t.up.rejected[i] += o.up.rejected[i]
	}
}

// load adds w's current counts to t.
func (w *Worker) load(t *totals) {
	t.accepted += w.accepted.Load()
	t.oneAccepted += w.oneAccepted.Load()
	for i := range w.rejected {
		t.rejected[i] += w.rejected[i].Load()
	}
	t.up.sent += w.up.sent.Load()
	t.up.oneSent += w.up.oneSent.Load()
	t.up.accepted += w.up.accepted.Load()
	t.up.oneAccepted += w.up.oneAccepted.Load()
	for i := range w.up.rejected {
		t.up.rejected[i] += w.up.rejected[i].Load()
	}
}
