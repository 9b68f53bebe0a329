package httpapi

import (
	"net/netip"
	"sync"
	"time"
)

// rateLimit is a token bucket per client address: rate tokens a minute,
// bursts of the same. It bounds how fast one address can register names.
type rateLimit struct {
	perMin float64

	mu      sync.Mutex
	buckets map[netip.Addr]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// maxBuckets bounds the table: past it, buckets that refilled are
// forgotten, and if none did, the table starts over (a flood from many
// addresses then meets fresh buckets, which still cap each one).
const maxBuckets = 10_000

func newRateLimit(perMin float64) *rateLimit {
	if perMin <= 0 {
		return nil
	}
	return &rateLimit{perMin: perMin, buckets: make(map[netip.Addr]*bucket)}
}

// allow takes a token for ip at now.
func (r *rateLimit) allow(ip netip.Addr, now time.Time) bool {
	if r == nil {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.buckets[ip]
	if b == nil {
		if len(r.buckets) >= maxBuckets {
			r.pruneLocked(now)
		}
		b = &bucket{tokens: r.perMin, last: now}
		r.buckets[ip] = b
	}
	b.tokens = min(r.perMin, b.tokens+now.Sub(b.last).Minutes()*r.perMin)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (r *rateLimit) pruneLocked(now time.Time) {
	for ip, b := range r.buckets {
		if b.tokens+now.Sub(b.last).Minutes()*r.perMin >= r.perMin {
			delete(r.buckets, ip)
		}
	}
	if len(r.buckets) >= maxBuckets {
		clear(r.buckets)
	}
}
