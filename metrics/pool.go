package metrics

// endpoint is one pool address (host:port), whatever the algorithm: the key of
// proxy_upstream_reconnects_total. Guarded by Registry.mu.
type endpoint struct {
	labels   string // `pool=".."`
	attempts [len(attemptOutcomes)]uint64
}

// Outcomes of a connection attempt to a pool: the `outcome` label of
// proxy_upstream_reconnects_total. The declared ones are exposed at 0 for every pool from its
// first attempt (or PoolInUse) on, so that increase() sees the first of each.
const (
	AttemptOK               = "ok"                // connected, subscribed and logged in
	AttemptConnectFailed    = "connect_failed"    // the TCP connect (or TLS) failed
	AttemptHandshakeTimeout = "handshake_timeout" // the pool did not answer subscribe and authorize in time
	AttemptLoginRejected    = "login_rejected"    // the pool answered the authorize with false or an error
	AttemptClosed           = "closed"            // the pool closed the connection during the handshake
)

// attemptOutcomes lists the outcomes in exposition order; the last, "other", counts undeclared
// ones and is exposed only once counted.
var attemptOutcomes = [...]string{
	AttemptOK, AttemptConnectFailed, AttemptHandshakeTimeout, AttemptLoginRejected, AttemptClosed,
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
