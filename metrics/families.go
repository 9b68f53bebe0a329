package metrics

// family is one metric family of the exposition: its name, TYPE and HELP text.
// docs/METRICS.md documents the same families with labels and PromQL.
type family struct {
	name string
	typ  string // counter, gauge, histogram, summary or untyped
	help string // one line, no backslash: written as is
}

// The proxy's families, in exposition order. Label sets are part of the product: dashboards of
// the original depend on the proxy_worker_* and proxy_pool_up/divider ones.
var (
	famMinersConnected    = family{"proxy_miners_connected", "gauge", "Miner connections currently open."}
	famUpstreamsConnected = family{"proxy_upstreams_connected", "gauge", "Pool connections currently established."}
	famUsersExpired       = family{"proxy_users_expired_total", "counter", "Issued names deleted because no miner used them for --users.ttl."}
	famSessionsInGrace    = family{"proxy_sessions_in_grace", "gauge", "Miner sessions whose connection closed and which wait, within the grace period, to be restored."}
	famMinersDropped      = family{"proxy_miners_dropped_total", "counter", "Miner connections closed by the proxy, by reason."}
	famPanics             = family{"proxy_panics_total", "counter", "Panics recovered at a connection boundary, by where: miner or pool connection handlers, or other; each closed only that connection."}
	famUpstreamReconnects = family{"proxy_upstream_reconnects_total", "counter", "Connection attempts to a pool, first connects, redials and failback probes, by outcome: ok, connect_failed, handshake_timeout, login_rejected, closed (during the handshake) or other."}
	famPoolInvalid        = family{"proxy_pool_invalid_messages_total", "counter", "Lines from a pool that the proxy dropped as invalid instead of passing them to miners, by method."}
	famNotifyFanout       = family{"proxy_notify_fanout_seconds", "histogram", "Time from a pool's mining.notify arriving to it being queued to every miner of the upstream connection."}
	famShareRTT           = family{"proxy_share_rtt_seconds", "histogram", "Time from forwarding a share to the pool to receiving the pool's answer."}

	famPoolUp          = family{"proxy_pool_up", "gauge", "1 while at least one upstream connection is logged in to the pool, 0 for a pool in use with none."}
	famPoolDivider     = family{"proxy_pool_divider", "gauge", "Difficulty divider of the pool's algorithm: hashrate = 2^32 * rate(sum of difficulty/divider)."}
	famPoolSpeed       = family{"proxy_pool_speed", "gauge", "Hashrate in hashes per second sent to the pool by connected workers, over the hashrate window; sum of proxy_worker_speed."}
	famPoolAccepted    = family{"proxy_pool_accepted_total", "counter", "Shares of the pool's workers accepted by the proxy (at the miner's difficulty), including those of workers that are gone."}
	famPoolOneAccepted = family{"proxy_pool_one_accepted_total", "counter", "Sum of miner difficulty/divider over shares of the pool's workers accepted by the proxy; rate(...) * 2^32 is their hashrate in hashes per second."}

	// The pool's side: shares forwarded upstream and the pool's answers, at the pool's difficulty.
	famPoolUpstreamSent        = family{"proxy_pool_upstream_sent_total", "counter", "Shares forwarded to the pool (they met its difficulty), including those of workers that are gone."}
	famPoolUpstreamOneSent     = family{"proxy_pool_upstream_one_sent_total", "counter", "Sum of pool difficulty/divider over shares forwarded to the pool."}
	famPoolUpstreamAccepted    = family{"proxy_pool_upstream_accepted_total", "counter", "Forwarded shares the pool accepted, including those of workers that are gone."}
	famPoolUpstreamOneAccepted = family{"proxy_pool_upstream_one_accepted_total", "counter", "Sum of pool difficulty/divider over forwarded shares the pool accepted; rate(...) * 2^32 is the hashrate the pool credits, in hashes per second."}
	famPoolUpstreamRejected    = family{"proxy_pool_upstream_rejected_total", "counter", "Forwarded shares the pool rejected, by reason: stale, duplicate, low_difficulty, pool_error, pool_timeout."}

	famAlgAccepted    = family{"proxy_algorithm_accepted_total", "counter", "Shares accepted by pools of the algorithm, including those of workers that are gone."}
	famAlgOneAccepted = family{"proxy_algorithm_one_accepted_total", "counter", "Sum of difficulty/divider over accepted shares of the algorithm; rate(...) * 2^32 is its hashrate in hashes per second."}

	famUserSpeed       = family{"proxy_user_speed", "gauge", "Hashrate in hashes per second of the user's connected workers on the pool, over the hashrate window; sum of proxy_worker_speed."}
	famUserAccepted    = family{"proxy_user_accepted_total", "counter", "Shares of the user accepted by the proxy (at the miner's difficulty), including those of workers that are gone."}
	famUserOneAccepted = family{"proxy_user_one_accepted_total", "counter", "Sum of miner difficulty/divider over the user's accepted shares; rate(...) * 2^32 is the user's hashrate in hashes per second."}
	famSharesRejected  = family{"proxy_shares_rejected_total", "counter", "Shares of the user rejected, by reason: stale, duplicate, low_difficulty, pool_error, pool_timeout (by the pool), proxy_check or overloaded (by the proxy)."}

	famUserUpstreamSent        = family{"proxy_user_upstream_sent_total", "counter", "Shares of the user forwarded to the pool, including those of workers that are gone."}
	famUserUpstreamOneSent     = family{"proxy_user_upstream_one_sent_total", "counter", "Sum of pool difficulty/divider over the user's shares forwarded to the pool."}
	famUserUpstreamAccepted    = family{"proxy_user_upstream_accepted_total", "counter", "Forwarded shares of the user the pool accepted, including those of workers that are gone."}
	famUserUpstreamOneAccepted = family{"proxy_user_upstream_one_accepted_total", "counter", "Sum of pool difficulty/divider over the user's forwarded shares the pool accepted; rate(...) * 2^32 is the hashrate the pool credits, in hashes per second."}
	famUserUpstreamRejected    = family{"proxy_user_upstream_rejected_total", "counter", "Forwarded shares of the user the pool rejected, by reason: stale, duplicate, low_difficulty, pool_error, pool_timeout."}

	// The original's names: the four counters lack the _total suffix, which promtool reports
	// and dashboards require.
	famWorkerUp          = family{"proxy_worker_up", "gauge", "1 while the miner's session is connected, 0 while it waits in the restore grace period; the series goes when the session ends."}
	famWorkerSended      = family{"proxy_worker_sended", "counter", "Shares the worker's miner sent to the proxy."}
	famWorkerOneSended   = family{"proxy_worker_one_sended", "counter", "Sum of miner difficulty/divider over shares the worker's miner sent."}
	famWorkerAccepted    = family{"proxy_worker_accepted", "counter", "Shares of the worker accepted by the proxy: they met the miner's target (where the proxy does not check shares, the pool accepted them)."}
	famWorkerOneAccepted = family{"proxy_worker_one_accepted", "counter", "Sum of miner difficulty/divider over shares of the worker accepted by the proxy; rate(...) * 2^32 is its hashrate in hashes per second."}
	famWorkerSpeed       = family{"proxy_worker_speed", "gauge", "Hashrate of the worker in hashes per second: 2^32 * sum(difficulty/divider) of shares accepted in the hashrate window (5 minutes) / window, recomputed every minute."}
	famWorkerDifficulty  = family{"proxy_worker_difficulty", "gauge", "Current share difficulty of the worker's session."}

	famWorkerUpstreamSent        = family{"proxy_worker_upstream_sent_total", "counter", "Shares of the worker forwarded to the pool (they met its difficulty)."}
	famWorkerUpstreamOneSent     = family{"proxy_worker_upstream_one_sent_total", "counter", "Sum of pool difficulty/divider over shares of the worker forwarded to the pool."}
	famWorkerUpstreamAccepted    = family{"proxy_worker_upstream_accepted_total", "counter", "Forwarded shares of the worker the pool accepted."}
	famWorkerUpstreamOneAccepted = family{"proxy_worker_upstream_one_accepted_total", "counter", "Sum of pool difficulty/divider over forwarded shares of the worker the pool accepted; rate(...) * 2^32 is the hashrate the pool credits, in hashes per second."}
	famWorkerUpstreamRejected    = family{"proxy_worker_upstream_rejected_total", "counter", "Forwarded shares of the worker the pool rejected, by reason; a reason's series appears with its first rejection."}
)

// proxyFamilies lists the families above in exposition order; tests and docs check against it.
var proxyFamilies = [...]*family{
	&famMinersConnected, &famUpstreamsConnected, &famSessionsInGrace, &famUsersExpired, &famMinersDropped,
	&famPanics, &famUpstreamReconnects, &famPoolInvalid, &famNotifyFanout, &famShareRTT,
	&famPoolUp, &famPoolDivider, &famPoolSpeed, &famPoolAccepted, &famPoolOneAccepted,
	&famPoolUpstreamSent, &famPoolUpstreamOneSent, &famPoolUpstreamAccepted,
	&famPoolUpstreamOneAccepted, &famPoolUpstreamRejected,
	&famAlgAccepted, &famAlgOneAccepted,
	&famUserSpeed, &famUserAccepted, &famUserOneAccepted, &famSharesRejected,
	&famUserUpstreamSent, &famUserUpstreamOneSent, &famUserUpstreamAccepted,
	&famUserUpstreamOneAccepted, &famUserUpstreamRejected,
	&famWorkerUp, &famWorkerSended, &famWorkerOneSended, &famWorkerAccepted, &famWorkerOneAccepted,
	&famWorkerSpeed, &famWorkerDifficulty,
	&famWorkerUpstreamSent, &famWorkerUpstreamOneSent, &famWorkerUpstreamAccepted,
	&famWorkerUpstreamOneAccepted, &famWorkerUpstreamRejected,
}
