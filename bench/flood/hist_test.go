package flood

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestHistBuckets(t *testing.T) {
	// Every value falls in the bucket whose bounds hold it, and buckets
	// tile the line without gaps.
	prevHi := int64(0)
	for i := 0; i < histBuckets; i++ {
		lo, hi := histBounds(i)
		if lo != prevHi {
			t.Fatalf("bucket %d starts at %d, previous ended at %d", i, lo, prevHi)
		}
		if got := histIndex(lo); got != i {
			t.Fatalf("histIndex(%d) = %d, want %d", lo, got, i)
		}
		if hi != math.MaxInt64 {
			if got := histIndex(hi - 1); got != i {
				t.Fatalf("histIndex(%d) = %d, want %d", hi-1, got, i)
			}
		}
		prevHi = hi
	}
	if prevHi != math.MaxInt64 {
		t.Fatalf("buckets end at %d", prevHi)
	}
	if histIndex(-5) != 0 || histIndex(math.MaxInt64) != histBuckets-1 {
		t.Fatal("extremes out of range")
	}
}

func TestHistQuantiles(t *testing.T) {
	var h hist
	rng := rand.New(rand.NewPCG(1, 2))
	vals := make([]int64, 20000)
	for i := range vals {
		// Log-uniform from 10 µs to 1 s.
		v := int64(math.Exp(math.Log(1e4) + rng.Float64()*math.Log(1e5)))
		vals[i] = v
		h.record(time.Duration(v))
	}
	slices.Sort(vals)
	var s histSnap
	h.snapshot(&s)
	if s.n != uint64(len(vals)) || s.max != vals[len(vals)-1] {
		t.Fatalf("n %d max %d", s.n, s.max)
	}
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
		exact := float64(vals[int(math.Ceil(q*float64(len(vals))))-1])
		got := float64(s.quantile(q))
		if rel := math.Abs(got-exact) / exact; rel > 1.0/16 {
			t.Errorf("q%v = %v, exact %v (error %.3f)", q, got, exact, rel)
		}
	}

	// An interval snapshot sees only the later samples.
	prev := s
	for range 100 {
		h.record(5 * time.Millisecond)
	}
	var cur, win histSnap
	h.snapshot(&cur)
	cur.since(&prev, &win)
	if win.n != 100 {
		t.Fatalf("window n = %d", win.n)
	}
	if p := win.quantile(0.5); p < 4800*time.Microsecond || p > 5200*time.Microsecond {
		t.Fatalf("window p50 = %v", p)
	}
	var empty histSnap
	if empty.quantile(0.5) != 0 || empty.quantiles().Count != 0 {
		t.Fatal("empty snapshot not zero")
	}
}

func TestHistRecordAllocs(t *testing.T) {
	var h hist
	if n := testing.AllocsPerRun(100, func() { h.record(time.Millisecond) }); n != 0 {
		t.Fatalf("record allocates %v", n)
	}
}
