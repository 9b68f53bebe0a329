package flood

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// The histogram is log-linear: values below histSub nanoseconds have a
// bucket each, every power of two above is split into histSub linear
// buckets. 16 sub-buckets bound the relative error of a quantile to 1/32
// (the midpoint of a bucket 1/16 wide), and 960 buckets cover every positive int64:
// 7.5 KiB per histogram whatever the number of samples.
const (
	histSubBits = 4
	histSub     = 1 << histSubBits
	histBuckets = histSub + (62-histSubBits+1)*histSub // the top bit of a positive int64 is bit 62
)

// hist is a fixed-size latency histogram in nanoseconds. Record and
// snapshot are safe for concurrent use; memory does not grow with samples.
type hist struct {
	counts [histBuckets]atomic.Uint64
	sum    atomic.Int64
	max    atomic.Int64
}

func histIndex(v int64) int {
	if v < histSub {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	e := bits.Len64(uint64(v)) - 1 // e >= histSubBits
	sub := int(uint64(v)>>(e-histSubBits)) & (histSub - 1)
	return histSub + (e-histSubBits)*histSub + sub
}

// histBounds returns the bucket's lowest value and one past its highest.
func histBounds(i int) (lo, hi int64) {
	if i < histSub {
		return int64(i), int64(i) + 1
	}
	e := (i-histSub)/histSub + histSubBits
	sub := int64((i - histSub) % histSub)
	shift := uint(e - histSubBits)
	lo = (histSub + sub) << shift
	hi = (histSub + sub + 1) << shift
	if hi < lo { // the top bucket overflows int64
		hi = math.MaxInt64
	}
	return lo, hi
}

func (h *hist) record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.counts[histIndex(v)].Add(1)
	h.sum.Add(v)
	// Bounded: each retry sees a larger max, and max only grows.
	for m := h.max.Load(); v > m && !h.max.CompareAndSwap(m, v); m = h.max.Load() {
	}
}

// histSnap is a point-in-time copy of a hist; the zero value is empty.
type histSnap struct {
	counts [histBuckets]uint64
	n      uint64
	sum    int64
	max    int64
}

func (h *hist) snapshot(s *histSnap) {
	s.n = 0
	for i := range h.counts {
		c := h.counts[i].Load()
		s.counts[i] = c
		s.n += c
	}
	s.sum = h.sum.Load()
	s.max = h.max.Load()
}

// since returns s minus an earlier snapshot prev of the same hist: the
// samples recorded in between (max stays the all-time max).
func (s *histSnap) since(prev *histSnap, out *histSnap) {
	out.n = 0
	for i := range s.counts {
		c := s.counts[i] - prev.counts[i]
		out.counts[i] = c
		out.n += c
	}
	out.sum = s.sum - prev.sum
	out.max = s.max
}

// quantile returns the q-quantile (0 <= q <= 1) as the midpoint of the
// bucket holding it, never above the largest value seen; 0 when empty.
func (s *histSnap) quantile(q float64) time.Duration {
	if s.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(s.n)))
	if rank < 1 {
		rank = 1
	}
	var acc uint64
	for i := range s.counts {
		acc += s.counts[i]
		if acc >= rank {
			lo, hi := histBounds(i)
			v := lo + (hi-lo-1)/2
			if v > s.max {
				v = s.max
			}
			return time.Duration(v)
		}
	}
	return time.Duration(s.max)
}

// Quantiles summarises a latency distribution in milliseconds.
type Quantiles struct {
	Count  uint64  `json:"count"`
	MeanMs float64 `json:"mean_ms"`
	P50Ms  float64 `json:"p50_ms"`
	P90Ms  float64 `json:"p90_ms"`
	P99Ms  float64 `json:"p99_ms"`
	P999Ms float64 `json:"p999_ms"`
	MaxMs  float64 `json:"max_ms"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (s *histSnap) quantiles() Quantiles {
	q := Quantiles{Count: s.n}
	if s.n == 0 {
		return q
	}
	q.MeanMs = ms(time.Duration(s.sum / int64(s.n)))
	q.P50Ms = ms(s.quantile(0.50))
	q.P90Ms = ms(s.quantile(0.90))
	q.P99Ms = ms(s.quantile(0.99))
	q.P999Ms = ms(s.quantile(0.999))
	q.MaxMs = ms(time.Duration(s.max))
	return q
}
