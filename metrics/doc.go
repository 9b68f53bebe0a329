// Package metrics keeps the proxy's Prometheus series and writes them in the text exposition
// format.
//
// # Basics
//
// main builds one Registry with New, starts its minute ticker with Start, and serves
// Registry.WritePrometheus on /metrics. The proxy calls Registry.NewWorker when a miner
// authorizes and then, from its event loops, the Worker's Sent, Accepted, Rejected, Forwarded,
// PoolAccepted, PoolRejected, SetDifficulty and SetUp; Worker.Close removes the worker's series
// when its session ends.
// Pool events go to the Registry's PoolInUse, PoolLogin, UpstreamAttempt and PoolInvalid, and a
// worker that follows its upstream to another pool moves with Worker.MoveTo; health events go to
// MinersConnected, UpstreamsConnected, SessionsInGrace, Dropped, Panic, NotifyFanout and
// ShareRTT.
//
// Series names and labels of the original proxy are kept, since dashboards depend on them:
// proxy_worker_up{proxy,worker,user}, proxy_pool_up and proxy_pool_divider{proxy,hash,pool},
// and proxy_worker_sended, _one_sended, _accepted, _one_accepted, _speed and _difficulty with
// {proxy,worker,user,hash,pool}. Totals per user, pool and algorithm, rejections by reason and
// the proxy's health come on top, and so does the pool's side of every share. docs/METRICS.md
// lists every series with example PromQL, and grafana-dashboard.json in this directory is a
// dashboard built on them.
//
// # Two sides of a share
//
// Each miner has its own difficulty and the proxy checks its shares, so a share is counted on
// two sides. The miner's side, at the miner's difficulty: Sent for every share the miner sends,
// Accepted when it meets the miner's target (or Rejected), and the hashrate from those. The
// pool's side, at the pool's difficulty, in the proxy_{worker,user,pool}_upstream_* series:
// Forwarded when it also meets the pool's and goes upstream, then PoolAccepted or PoolRejected
// for the pool's answer. Where the proxy cannot hash the algorithm it forwards every share and
// calls both sides for each. Comparing the two shows the pool's reject rate and whether the pool
// credits the work the miners did.
//
// Hashrate follows PROTOCOL.md section 5: H = 2^32 * sum(d_i/divider) / W over the shares
// accepted in the window W (5 minutes), recomputed every Step (1 minute), where d_i is the
// difficulty of the share's job. Each worker keeps a fixed ring of W/Step per-Step sums; see
// Registry.Tick for how young workers are handled.
//
// # Lifecycle of a worker's series
//
// proxy_worker_up is 1 while the miner is connected and 0 while its session waits in the
// restore grace period (Worker.SetUp(false)); when the grace period ends without a restore the
// proxy calls Worker.Close and every series of the worker disappears. Its accepted and rejected
// counts live on in proxy_user_*, proxy_pool_* and proxy_algorithm_* totals, which never go down.
//
// # Caveats
//
//   - Label values are cleaned (invalid UTF-8 and control characters other than newline become
//     U+FFFD) and escaped; rig names are cut to Config.MaxLabelLen bytes. Two live workers
//     with the same `worker` and `user` get "#2", "#3", ... suffixes, so label sets stay unique.
//   - Per-user, per-pool and per-algorithm series are kept for the life of the Registry, even
//     after their last worker is gone: their count is bounded by users times pools.
//   - WritePrometheus writes the go_* and process_* series too: serve one Registry per page.
//   - Calls on a Worker after its Close are harmless and invisible.
//   - The package keeps no mutable state of its own: the library's runtime and process series
//     are read, never registered.
package metrics
