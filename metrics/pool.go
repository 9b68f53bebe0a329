package metrics

import "math"

// pool is one (hash, pool): the key of proxy_pool_up, proxy_pool_divider and the per-pool totals.
// Guarded by Registry.mu.
type pool struct {
	i       int
	labels  string // `hash="..",pool=".."`
	alg     *alg
	known   bool    // PoolInUse or PoolLogin was called: proxy_pool_up and proxy_pool_divider exist
	logins  int     // upstream connections logged in to the pool; never below 0
	divider float64 // valid when known
}

type poolKey struct{ hash, pool string }

func (r *Registry) poolLocked(hash, poolName string) *pool {
	k := poolKey{hash, poolName}
	if p := r.pools[k]; p != nil {
		return p
	}
	a := r.algs[hash]
	if a == nil {
		a = &alg{i: len(r.algList), labels: string(appendLabel(nil, "hash", hash))}
		r.algs[hash] = a
		r.algList = append(r.algList, a)
	}
	b := append([]byte(nil), a.labels...)
	b = append(b, ',')
	b = appendLabel(b, "pool", poolName)
	p := &pool{i: len(r.poolList), labels: string(b), alg: a}
	r.pools[k] = p
	r.poolList = append(r.poolList, p)
	return p
}

// PoolInUse declares the pool (host:port) of algorithm hash: from now on proxy_pool_up{proxy,
// hash,pool} (0 until a login) and proxy_pool_divider exist, and so do the pool's
// proxy_upstream_reconnects_total series, at 0. The proxy calls it when an upstream starts using
// the pool as a target, before its first attempt, so a pool that never connects shows 0 rather
// than nothing. Calling it again only updates the divider. A divider that is not positive and
// finite counts as 1, as in NewWorker.
//
// PoolInUse takes the registry's lock.
func (r *Registry) PoolInUse(hash, poolName string, divider float64) {
	if r == nil {
		return
	}
	hash, poolName = cleanLabel(hash, 0), cleanLabel(poolName, 0)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.declarePoolLocked(hash, poolName, divider)
}

// PoolLogin adds delta to the count of upstream connections logged in to the pool: +1 when a
// connection's login (subscribe and authorize) to the pool succeeds, -1 when that logged-in
// connection ends. proxy_pool_up{proxy,hash,pool} is 1 while the count is above 0 and 0
// otherwise, so several upstreams (accounts) on one pool keep it 1 until the last one leaves.
// It declares the pool as PoolInUse does.
//
// The count never goes below 0: a -1 without its +1 is clamped, which is a bug in the caller
// (an end counted twice, or a connection that never logged in), not something to expose.
//
// PoolLogin takes the registry's lock.
func (r *Registry) PoolLogin(hash, poolName string, divider float64, delta int) {
	if r == nil {
		return
	}
	hash, poolName = cleanLabel(hash, 0), cleanLabel(poolName, 0)
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.declarePoolLocked(hash, poolName, divider)
	p.logins = max(p.logins+delta, 0)
}

// declarePoolLocked marks the pool known with divider and creates its endpoint. Arguments are
// cleaned label values.
func (r *Registry) declarePoolLocked(hash, poolName string, divider float64) *pool {
	if !(divider > 0) || math.IsInf(divider, 1) {
		divider = 1
	}
	p := r.poolLocked(hash, poolName)
	p.known, p.divider = true, divider
	r.endpointLocked(poolName)
	return p
}

// endpoint is one pool address (host:port), whatever the algorithm: the key of
// proxy_upstream_reconnects_total and proxy_pool_invalid_messages_total. Guarded by Registry.mu.
type endpoint struct {
	labels   string // `pool=".."`
	attempts [len(attemptOutcomes)]uint64
	invalid  []methodCount // first-seen order; at most maxInvalidMethods, then "other"
}

type methodCount struct {
	method string // cleaned and cut, unescaped
	n      uint64
}

// maxInvalidMethods bounds the distinct `method` values of proxy_pool_invalid_messages_total per
// pool; further methods are counted as "other". Why 16: Stratum v1 has about a dozen methods a
// pool may send, so real ones all fit, while a pool sending garbage method names cannot blow up
// the label's cardinality.
const maxInvalidMethods = 16

// Outcomes of a connection attempt to a pool: the `outcome` label of
// proxy_upstream_reconnects_total. The declared ones are exposed at 0 for every pool from its
// first attempt (or PoolInUse) on, so that increase() sees the first of each.
const (
	AttemptOK               = "ok"                // connected, subscribed and logged in
	AttemptConnectFailed    = "connect_failed"    // the TCP connect failed
	AttemptTLSFailed        = "tls_failed"        // the TLS handshake failed: a wrong, untrusted or unpinned certificate
	AttemptHandshakeTimeout = "handshake_timeout" // the pool did not answer subscribe and authorize in time
	AttemptLoginRejected    = "login_rejected"    // the pool answered the authorize with false or an error
	AttemptClosed           = "closed"            // the pool closed the connection during the handshake
)

// attemptOutcomes lists the outcomes in exposition order; the last, "other", counts undeclared
// ones and is exposed only once counted.
var attemptOutcomes = [...]string{
	AttemptOK, AttemptConnectFailed, AttemptTLSFailed, AttemptHandshakeTimeout, AttemptLoginRejected, AttemptClosed,
	"other",
}

// endpointLocked returns the endpoint of a cleaned pool address, creating it.
func (r *Registry) endpointLocked(poolName string) *endpoint {
	if ep := r.endpoints[poolName]; ep != nil {
		return ep
	}
	ep := &endpoint{labels: string(appendLabel(nil, "pool", poolName))}
	r.endpoints[poolName] = ep
	r.epList = append(r.epList, ep)
	return ep
}

// UpstreamAttempt counts one connection attempt to the pool (host:port), whatever it ended in,
// in proxy_upstream_reconnects_total{proxy,pool,outcome}: the first connect, every redial and
// every failback probe. outcome should be one of the Attempt constants; anything
// else is counted as "other".
//
// UpstreamAttempt takes the registry's lock; it allocates only the first time it sees a pool.
func (r *Registry) UpstreamAttempt(poolName, outcome string) {
	if r == nil {
		return
	}
	i := len(attemptOutcomes) - 1 // other
	for j := range attemptOutcomes[:i] {
		if attemptOutcomes[j] == outcome {
			i = j
			break
		}
	}
	poolName = cleanLabel(poolName, 0)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.endpointLocked(poolName).attempts[i]++
}

// PoolInvalid counts a line from the pool (host:port) that the proxy dropped as invalid, in
// proxy_pool_invalid_messages_total{proxy,pool,method}: method is the line's method, e.g.
// "mining.notify" or "mining.set_difficulty" ("" for a line with none). Methods are cut to
// Config.MaxLabelLen bytes; past maxInvalidMethods distinct ones per pool, they count as "other".
//
// PoolInvalid takes the registry's lock; the proxy rate-limits its log line, not this count.
func (r *Registry) PoolInvalid(poolName, method string) {
	if r == nil {
		return
	}
	poolName, method = cleanLabel(poolName, 0), cleanLabel(method, r.maxLabel)
	r.mu.Lock()
	defer r.mu.Unlock()
	ep := r.endpointLocked(poolName)
	if len(ep.invalid) >= maxInvalidMethods && !ep.hasInvalid(method) {
		method = "other"
	}
	for i := range ep.invalid {
		if ep.invalid[i].method == method {
			ep.invalid[i].n++
			return
		}
	}
	ep.invalid = append(ep.invalid, methodCount{method: method, n: 1})
}

func (ep *endpoint) hasInvalid(method string) bool {
	for i := range ep.invalid {
		if ep.invalid[i].method == method {
			return true
		}
	}
	return false
}
