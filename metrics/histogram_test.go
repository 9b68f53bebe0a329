package metrics

import (
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

func TestLatencyBuckets(t *testing.T) {
	if err := metrics.ValidateBuckets(latencyBuckets[:]); err != nil {
		t.Fatal(err)
	}
	if latencyBuckets[0] != 100e-6 || latencyBuckets[len(latencyBuckets)-1] != 10 {
		t.Fatalf("buckets span %g..%g, want 100µs..10s", latencyBuckets[0], latencyBuckets[len(latencyBuckets)-1])
	}
	for i, b := range latencyBuckets {
		if time.Duration(b*float64(time.Second)) != bucketNs[i] {
			t.Errorf("bucket %g is %s in nanoseconds", b, bucketNs[i])
		}
	}
}

// TestHistogram checks which bucket a duration lands in: bounds are inclusive, as Prometheus's
// le ("less or equal") says.
func TestHistogram(t *testing.T) {
	f := func(d time.Duration, wantLE string) {
		t.Helper()
		r, _ := newTestRegistry(t, Config{})
		r.ShareRTT(d)
		x := parse(t, r)
		var got string
		prev := 0.0
		for _, s := range x.find("proxy_share_rtt_seconds_bucket", nil) {
			if s.value == 1 && prev == 0 {
				got, _ = s.label("le")
			}
			prev = s.value
		}
		if got != wantLE {
			t.Errorf("%s landed in le=%q, want %q", d, got, wantLE)
		}
		want := max(d, 0).Seconds()
		if sum := x.value(t, "proxy_share_rtt_seconds_sum", nil); !approx(sum, want) {
			t.Errorf("%s: sum %v, want %v", d, sum, want)
		}
		if n := x.value(t, "proxy_share_rtt_seconds_count", nil); n != 1 {
			t.Errorf("%s: count %v", d, n)
		}
	}
	f(0, "0.0001")
	f(-time.Second, "0.0001") // a clock step counts as 0
	f(100*time.Microsecond, "0.0001")
	f(100*time.Microsecond+1, "0.00025")
	f(3*time.Millisecond, "0.005")
	f(time.Second, "1")
	f(10*time.Second, "10")
	f(10*time.Second+1, "+Inf")
	f(time.Hour, "+Inf")
}

// TestHistogramStripes checks that observations spread over stripes add up.
func TestHistogramStripes(t *testing.T) {
	var h histogram
	var want time.Duration
	for i := range 10000 {
		d := time.Duration(i) * 997 * time.Nanosecond
		h.observe(d)
		want += d
	}
	used := 0
	for i := range h.shards {
		if h.shards[i].sumNs.Load() > 0 {
			used++
		}
	}
	if used < histShards/2 {
		t.Errorf("only %d of %d stripes used", used, histShards)
	}
	var cum [len(latencyBuckets) + 1]uint64
	if sum := h.snapshot(&cum); !approx(sum, want.Seconds()) {
		t.Errorf("sum %v, want %v", sum, want.Seconds())
	}
	if cum[len(cum)-1] != 10000 {
		t.Errorf("count %d", cum[len(cum)-1])
	}
}
