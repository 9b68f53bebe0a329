package metrics

import (
	"math"
	"testing"
	"time"
)

// testClock is a settable clock for Config.Now. Not safe for concurrent use.
type testClock struct{ t time.Time }

func (c *testClock) now() time.Time { return c.t }

var t0 = time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)

// newTestRegistry returns a Registry with the default window (5m) and step (1m) on a clock at
// t0, and the clock.
func newTestRegistry(t testing.TB, cfg Config) (*Registry, *testClock) {
	t.Helper()
	c := &testClock{t: t0}
	cfg.Now = c.now
	return New(cfg), c
}

// approx reports whether got is within 1e-12 relative of want: speeds are sums of floats.
func approx(got, want float64) bool {
	if want == 0 {
		return got == 0
	}
	return math.Abs(got-want) <= 1e-12*math.Abs(want)
}

// minute describes the shares one worker gets accepted during one Step.
type minute struct {
	n    int     // shares
	diff float64 // each at this difficulty
}

// TestHashrate feeds synthetic share streams, one Tick per minute, and compares every speed
// with a hand-computed 2^32 * sum(d_i/divider) / T, T = min(max(age, 1m), 5m).
func TestHashrate(t *testing.T) {
	const g = float64(1 << 32) // typed: g*480/300 must not be integer division
	f := func(name string, divider float64, mins []minute, want []float64) {
		t.Helper()
		r, c := newTestRegistry(t, Config{})
		w := r.NewWorker("10.0.0.1:4000", "", "alice", "sha256", "pool.example:3333", divider)
		for i, m := range mins {
			for range m.n {
				w.Accepted(m.diff)
			}
			c.t = t0.Add(time.Duration(i+1) * time.Minute)
			r.Tick(c.t)
			if got := w.speed.Load(); !approx(got, want[i]) {
				t.Errorf("%s: speed after minute %d = %g, want %g", name, i+1, got, want[i])
			}
		}
	}

	// 60 shares of difficulty 1 per minute is 2^32 H/s from the first minute on: a young
	// worker is divided by its age, not by the whole window.
	f("constant", 1,
		[]minute{{60, 1}, {60, 1}, {60, 1}, {60, 1}, {60, 1}, {60, 1}, {60, 1}},
		[]float64{g, g, g, g, g, g, g})

	// Five minutes at difficulty 1, then difficulty 4: each share counts at the difficulty it
	// was mined at. Minute 6 window = minutes 2-6 = 4*60*1 + 60*4 = 480 over 300 s.
	f("difficulty change", 1,
		[]minute{{60, 1}, {60, 1}, {60, 1}, {60, 1}, {60, 1}, {60, 4}, {60, 4}, {60, 4}, {60, 4}, {60, 4}, {60, 4}},
		[]float64{g, g, g, g, g, g * 480 / 300, g * 660 / 300, g * 840 / 300, g * 1020 / 300, g * 1200 / 300, g * 4})

	// scrypt: 30 shares per minute at difficulty 1024, divider 65536. Each adds 1/64; five
	// minutes hold 150/64 = 2.34375, and 2^32 * 2.34375 / 300 = 2^25 = 33554432.
	f("scrypt divider", 65536,
		[]minute{{30, 1024}, {30, 1024}, {30, 1024}, {30, 1024}, {30, 1024}, {30, 1024}},
		[]float64{33554432, 33554432, 33554432, 33554432, 33554432, 33554432})

	// A burst of 10 shares at difficulty 8 in minute 1, then nothing: 80 over the age while
	// the worker is young, 80 over 300 s at minute 5, and gone after the window (minute 6).
	f("window sliding", 1,
		[]minute{{10, 8}, {}, {}, {}, {}, {}, {}},
		[]float64{g * 80 / 60, g * 80 / 120, g * 80 / 180, g * 80 / 240, g * 80 / 300, 0, 0})

	// Old shares leave after exactly W: 60 at diff 1 in minute 1 only, then 60 at diff 2 from
	// minute 6 on; at minute 6 the window is minutes 2-6.
	f("old shares leave", 1,
		[]minute{{60, 1}, {}, {}, {}, {}, {60, 2}, {60, 2}},
		[]float64{g, g / 2, g / 3, g / 4, g / 5, g * 120 / 300, g * 240 / 300})

	// Difficulties a broken pool might send count as 0, never as NaN or negative.
	f("bogus difficulties", 1,
		[]minute{{1, math.NaN()}, {1, -5}, {1, math.Inf(1)}, {1, 0}},
		[]float64{0, 0, 0, 0})
}

// TestHashrateUsesShareDifficulty checks that the current difficulty plays no part: only the
// difficulty passed to Accepted does.
func TestHashrateUsesShareDifficulty(t *testing.T) {
	r, c := newTestRegistry(t, Config{})
	w := r.NewWorker("10.0.0.1:4000", "", "alice", "sha256", "p:1", 1)
	w.SetDifficulty(1)
	for range 60 {
		w.Accepted(1)
	}
	w.SetDifficulty(1000) // a retarget after the shares were mined
	c.t = t0.Add(time.Minute)
	r.Tick(c.t)
	if got, want := w.speed.Load(), float64(1<<32); got != want {
		t.Fatalf("speed = %g, want %g", got, want)
	}
}

// TestHashrateYoungWorker checks the edges of the age rule: a worker born mid-Step is divided
// by one Step at least, and by its age between one Step and the window.
func TestHashrateYoungWorker(t *testing.T) {
	const g = float64(1 << 32) // typed: g*480/300 must not be integer division
	f := func(bornAfter time.Duration, ticks int, want float64) {
		t.Helper()
		r, c := newTestRegistry(t, Config{})
		c.t = t0.Add(bornAfter)
		w := r.NewWorker("10.0.0.1:4000", "", "alice", "sha256", "p:1", 1)
		w.Accepted(60)
		for i := 1; i <= ticks; i++ {
			r.Tick(t0.Add(time.Duration(i) * time.Minute))
		}
		if got := w.speed.Load(); !approx(got, want) {
			t.Errorf("born at +%s, %d ticks: speed = %g, want %g", bornAfter, ticks, got, want)
		}
	}
	f(55*time.Second, 1, g*60/60)            // 5 s old: divided by one Step, not by 5 s
	f(30*time.Second, 2, g*60/90)            // 90 s old
	f(30*time.Second, 5, g*60/270)           // 4.5 min old
	f(30*time.Second, 6, 0)                  // the partial first slot has left the window
	f(0, 5, g*60/300)                        // exactly W old
	f(-10*time.Minute, 1, g*60/300)          // old worker (clock before t0): divided by W
	f(2*time.Minute, 1, g*60/60)             // clock going backwards: at least one Step
	f(59*time.Second+time.Millisecond, 1, g) // born just before a Tick
}

// TestHashrateSmallStep runs a window of 4 steps of 10 ms, as tests of other packages might.
func TestHashrateSmallStep(t *testing.T) {
	r, c := newTestRegistry(t, Config{Window: 40 * time.Millisecond, Step: 10 * time.Millisecond})
	w := r.NewWorker("10.0.0.1:4000", "", "alice", "sha256", "p:1", 1)
	want := []float64{1, 2, 3, 4, 4, 4} // shares of difficulty 1 per window of 40 ms
	for i, n := range want {
		w.Accepted(1)
		c.t = c.t.Add(10 * time.Millisecond)
		r.Tick(c.t)
		age := min(time.Duration(i+1)*10*time.Millisecond, 40*time.Millisecond)
		if got, want := w.speed.Load(), (1<<32)*n/age.Seconds(); !approx(got, want) {
			t.Errorf("tick %d: speed = %g, want %g", i+1, got, want)
		}
	}
}

// TestAggregateSpeeds checks that user and pool speeds are the sums of their workers' speeds,
// and that a closed worker leaves them at the next Tick.
func TestAggregateSpeeds(t *testing.T) {
	const g = float64(1 << 32) // typed: g*480/300 must not be integer division
	r, c := newTestRegistry(t, Config{})
	a1 := r.NewWorker("10.0.0.1:1", "", "alice", "sha256", "p:1", 1)
	a2 := r.NewWorker("10.0.0.2:1", "", "alice", "sha256", "p:1", 1)
	b1 := r.NewWorker("10.0.0.3:1", "", "bob", "sha256", "p:1", 1)
	s1 := r.NewWorker("10.0.0.4:1", "", "bob", "scrypt", "p:2", 65536)
	a1.Accepted(60)
	a2.Accepted(120)
	b1.Accepted(30)
	s1.Accepted(65536 * 60)
	c.t = t0.Add(time.Minute)
	r.Tick(c.t)

	x := parse(t, r)
	f := func(name string, labels map[string]string, want float64) {
		t.Helper()
		if got := x.value(t, name, labels); !approx(got, want) {
			t.Errorf("%s%v = %g, want %g", name, labels, got, want)
		}
	}
	f("proxy_user_speed", map[string]string{"user": "alice", "hash": "sha256", "pool": "p:1"}, 3*g)
	f("proxy_user_speed", map[string]string{"user": "bob", "hash": "sha256", "pool": "p:1"}, g/2)
	f("proxy_user_speed", map[string]string{"user": "bob", "hash": "scrypt", "pool": "p:2"}, g)
	f("proxy_pool_speed", map[string]string{"hash": "sha256", "pool": "p:1"}, 3.5*g)
	f("proxy_pool_speed", map[string]string{"hash": "scrypt", "pool": "p:2"}, g)

	a2.Close()
	c.t = t0.Add(2 * time.Minute)
	r.Tick(c.t)
	x = parse(t, r)
	f("proxy_user_speed", map[string]string{"user": "alice", "hash": "sha256", "pool": "p:1"}, g/2) // 60 over 2 min
	f("proxy_pool_speed", map[string]string{"hash": "sha256", "pool": "p:1"}, g/2+g/4)
}
