package metrics

// Reason is why a share was rejected; its String is the `reason` label of
// proxy_shares_rejected_total. The set is fixed so that the label's cardinality is.
type Reason uint8

// Rejection reasons. Stale, Duplicate and LowDifficulty are the pool's stratum error codes 21, 22
// and 23; PoolError is any other error the pool answered (or a lost pool connection);
// PoolTimeout is a share the pool never answered; ProxyCheck is a share the proxy refused itself
// without sending it upstream; Overloaded is a share refused without sending it because the miner
// had too many shares in flight or the pool was not reading.
const (
	ReasonStale Reason = iota
	ReasonDuplicate
	ReasonLowDifficulty
	ReasonPoolError
	ReasonPoolTimeout
	ReasonProxyCheck
	ReasonOverloaded

	numReasons = iota
)

var reasonNames = [numReasons]string{
	ReasonStale:         "stale",
	ReasonDuplicate:     "duplicate",
	ReasonLowDifficulty: "low_difficulty",
	ReasonPoolError:     "pool_error",
	ReasonPoolTimeout:   "pool_timeout",
	ReasonProxyCheck:    "proxy_check",
	ReasonOverloaded:    "overloaded",
}

// fromPool reports whether the pool can answer a forwarded share with r: every reason but those
// of shares the proxy refused itself. The per-user and per-pool upstream_rejected series expose
// these from the start, at 0; a proxy-side reason counted by Worker.PoolRejected (a caller's
// mistake) appears once counted.
func (r Reason) fromPool() bool {
	return r != ReasonProxyCheck && r != ReasonOverloaded
}

// String returns the label value of r, e.g. "low_difficulty".
// A Reason outside the declared set reads "pool_error", the reason it is counted under.
func (r Reason) String() string {
	return reasonNames[r.index()]
}

// index maps r into [0, numReasons): an undeclared Reason is counted as ReasonPoolError rather
// than panicking on the share path.
func (r Reason) index() int {
	if r >= numReasons {
		return int(ReasonPoolError)
	}
	return int(r)
}
