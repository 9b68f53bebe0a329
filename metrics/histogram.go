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

// histogram is a Prometheus histogram over latencyBuckets whose observe is lock-free: one
// atomic add to a bucket and one to the sum.
//
// Why not metrics.PrometheusHistogram (v1.44.0): its Update takes a mutex that every event loop
// would share for every share answer (ShareRTT). Its bucket layout is the same, and
// metrics.ValidateBuckets checks latencyBuckets in the tests.
//
// The zero value is ready to use. Safe for concurrent use.
type histogram struct {
	// counts[i] counts observations in (bound[i-1], bound[i]]; the last one those above the
	// last bound. Not cumulative: write makes them so.
	counts [len(latencyBuckets) + 1]atomic.Uint64
	sumNs  atomic.Int64 // sum of observations in nanoseconds: exact, and an add instead of a CAS loop
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
	h.counts[lo].Add(1)
	h.sumNs.Add(int64(d))
}

// snapshot returns the cumulative bucket counts (the last is +Inf, equal to the count) and the
// sum in seconds. Buckets are read one by one while observe may run, so a snapshot may miss an
// observation's sum or bucket; both catch up at the next scrape.
func (h *histogram) snapshot(cum *[len(latencyBuckets) + 1]uint64) (sum float64) {
	var c uint64
	for i := range h.counts {
		c += h.counts[i].Load()
		cum[i] = c
	}
	return time.Duration(h.sumNs.Load()).Seconds()
}
