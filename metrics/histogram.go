package metrics

import (
	"sync/atomic"
	"time"
)

// latencyBuckets are the upper bounds, in seconds, of proxy_notify_fanout_seconds and
// proxy_share_rtt_seconds: a 1-2.5-5 series from 100µs (a notify fanned out on an idle loop) to
// 10s (a pool answering a share this late is about to be timed out). 16 buckets keep a
// histogram_quantile estimate within a factor of 2.5 across five decades.
var latencyBuckets = [...]float64{
	0.0001, 0.00025, 0.0005,
	0.001, 0.0025, 0.005,
	0.01, 0.025, 0.05,
	0.1, 0.25, 0.5,
	1, 2.5, 5,
	10,
}

// histogram is a Prometheus histogram over latencyBuckets whose observe is lock-free: two
// atomic adds in one of histShards stripes.
//
// Why not metrics.PrometheusHistogram (v1.44.0): its Update takes a mutex that every event loop
// would share for every share answer (ShareRTT). Its bucket layout is the same, and
// metrics.ValidateBuckets checks latencyBuckets in the tests.
//
// Why stripes: even without a lock, one set of counters is one cache line that every event loop
// writes per share, and cache-line ping-pong grows with the number of cores (gnet runs one loop
// per core). observe has no caller identity to pick a stripe by, but the low bits of a measured
// duration in nanoseconds are noise, so a hash of the duration spreads callers over stripes.
// BenchmarkShareRTT on 2 CPUs: one stripe 18-25 ns per observation, 8 stripes 13.8 ns, the same
// as on one CPU (13 ns), i.e. no contention left; more cores only widen the gap. The cost is
// 1.5 KB per histogram and a sum over stripes per scrape.
//
// The zero value is ready to use. Safe for concurrent use.
type histogram struct {
	shards [histShards]histShard
}

// histShards is a power of two, enough for the event loops of a large host to rarely meet.
const (
	histShardBits = 3
	histShards    = 1 << histShardBits
)

type histShard struct {
	// counts[i] counts observations in (bound[i-1], bound[i]]; the last one those above the
	// last bound. Not cumulative: snapshot makes them so.
	counts [len(latencyBuckets) + 1]atomic.Uint64
	sumNs  atomic.Int64                            // sum of observations in nanoseconds: exact, and an add instead of a CAS loop
	_      [64 - (len(latencyBuckets)+2)*8%64]byte // keep stripes on separate cache lines
}

// bucketNs are latencyBuckets in nanoseconds, so observe compares integers.
var bucketNs = func() (ns [len(latencyBuckets)]time.Duration) {
	for i, b := range latencyBuckets {
		ns[i] = time.Duration(b * float64(time.Second))
	}
	return ns
}()

// observe records d. Negative durations (a clock step) count as 0.
func (h *histogram) observe(d time.Duration) {
	if d < 0 {
		d = 0
	}
	// Binary search over 16 bounds: 4 comparisons instead of up to 16.
	lo, hi := 0, len(bucketNs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if d <= bucketNs[m] {
			hi = m
		} else {
			lo = m + 1
		}
	}
	// Fibonacci hashing: the top bits of d * 2^64/phi depend on all bits of d.
	s := &h.shards[(uint64(d)*0x9E3779B97F4A7C15)>>(64-histShardBits)]
	s.counts[lo].Add(1)
	s.sumNs.Add(int64(d))
}

// snapshot returns the cumulative bucket counts (the last is +Inf, equal to the count) and the
// sum in seconds. Counters are read one by one while observe may run, so a snapshot may miss
// an observation's sum or bucket; both catch up at the next scrape.
func (h *histogram) snapshot(cum *[len(latencyBuckets) + 1]uint64) (sum float64) {
	var ns int64
	*cum = [len(latencyBuckets) + 1]uint64{}
	for i := range h.shards {
		s := &h.shards[i]
		for j := range s.counts {
			cum[j] += s.counts[j].Load()
		}
		ns += s.sumNs.Load()
	}
	for j := 1; j < len(cum); j++ {
		cum[j] += cum[j-1]
	}
	return time.Duration(ns).Seconds()
}
