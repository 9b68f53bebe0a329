package proxy

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stratum-proxy/stratum-proxy/metrics"
)

// vdHashesPerDiff1 is the expected number of hashes per sha256d share of
// difficulty 1, as metrics counts it; other algorithms divide it by their
// divider.
const vdHashesPerDiff1 = 1 << 32

var vdT0 = time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)

// vdNatural returns the difficulty at which a miner of hashrate h (hashes
// per second, algorithm divider div) finds rate shares a minute.
func vdNatural(h, div, rate float64) float64 {
	return h * div * 60 / (rate * vdHashesPerDiff1)
}

// vdSim is a simulated miner of known hashrate behind a vardiff: at
// difficulty d it finds shares as a Poisson process of rate
// h*div/(d*2^32) per second. Time is simulated; ticks come once a second,
// as from the loop's sweep.
type vdSim struct {
	rng      *rand.Rand
	h, div   float64
	v        vardiff
	now      time.Time
	next     time.Time // the next share
	nextTick time.Time
	changes  int
	shares   int
	accept   func(d float64) // every share, at the difficulty it was mined at
	onChange func(now time.Time, d float64)
}

func newVdSim(seed uint64, h, div float64, cfg *vardiffConfig, suggest, minDiff, pool float64) *vdSim {
	s := &vdSim{
		rng: rand.New(rand.NewPCG(seed, 0x5eed)),
		h:   h, div: div,
		now: vdT0, nextTick: vdT0.Add(time.Second),
	}
	s.v.init(cfg, vdT0, suggest, minDiff)
	s.v.setCeiling(vdT0, pool)
	s.draw()
	return s
}

// draw picks the next share's time at the current difficulty (the process
// is memoryless, so redrawing after a change is exact).
func (s *vdSim) draw() {
	rate := s.h * s.div / (s.v.diff() * vdHashesPerDiff1)
	wait := min(s.rng.ExpFloat64()/rate, 1e7) // seconds; capped far beyond any test
	s.next = s.now.Add(time.Duration(wait * float64(time.Second)))
}

func (s *vdSim) changed(d float64, ch bool) {
	if !ch {
		return
	}
	s.changes++
	if s.onChange != nil {
		s.onChange(s.now, d)
	}
	s.draw()
}

// run advances the simulation to until.
func (s *vdSim) run(until time.Time) {
	for {
		if !s.next.After(s.nextTick) {
			if s.next.After(until) {
				break
			}
			s.now = s.next
			d := s.v.diff()
			s.shares++
			if s.accept != nil {
				s.accept(d)
			}
			nd, ch := s.v.onShare(s.now, d)
			s.draw()
			s.changed(nd, ch)
			continue
		}
		if s.nextTick.After(until) {
			break
		}
		s.now = s.nextTick
		s.nextTick = s.nextTick.Add(time.Second)
		s.changed(s.v.tick(s.now))
	}
	s.now = until
}

// trueRate is the miner's expected share rate per minute at its current
// difficulty.
func (s *vdSim) trueRate() float64 {
	return s.h * s.div * 60 / (s.v.diff() * vdHashesPerDiff1)
}

// TestVardiffConvergence starts miners 1000x too low and 1000x too high
// and checks that they reach the band within a few retargets and stay.
// "The band" here is 10-20 shares a minute widened by 25% either way:
// a rate just outside 10-20 cannot be told from one inside it by a few
// minutes of shares, and hysteresis rightly leaves it alone.
func TestVardiffConvergence(t *testing.T) {
	const seeds = 100
	inBand := func(r float64) bool { return r >= 10/1.25 && r <= 20*1.25 }
	for _, div := range []float64{1, 65536} {
		for _, off := range []float64{1.0 / 1000, 1000} {
			name := fmt.Sprintf("div%g/start%gx", div, off)
			t.Run(name, func(t *testing.T) {
				h := 500e9 // any hashrate scales the same
				nat := vdNatural(h, div, 15)
				// From below: 4 full steps in about a second, then a partial
				// one once the evidence is clear. From above: no shares, no
				// information: a full step down per ~10-20s of silence, then
				// steady decisions.
				limit := time.Minute
				if off > 1 {
					limit = 6 * time.Minute
				}
				worstN, worstT, worstAfter, strict := 0, time.Duration(0), 0, 0
				for seed := range uint64(seeds) {
					s := newVdSim(seed, h, div, &vardiffConfig{Start: nat * off}, 0, 0, nat*1e6)
					var at time.Time
					n := 0
					s.onChange = func(now time.Time, d float64) {
						if at.IsZero() {
							n++
							if inBand(s.trueRate()) {
								at = now
							}
						}
					}
					s.run(vdT0.Add(10 * time.Minute))
					if at.IsZero() {
						t.Errorf("seed %d: never reached the band; rate %.1f/min after %d changes", seed, s.trueRate(), s.changes)
						continue
					}
					if n > 7 {
						t.Errorf("seed %d: reached the band after %d retargets, want at most 7", seed, n)
					}
					if el := at.Sub(vdT0); el > limit {
						t.Errorf("seed %d: reached the band after %s, want within %s", seed, el, limit)
					}
					after := s.changes - n
					if after > 3 {
						t.Errorf("seed %d: %d retargets after reaching the band, want at most 3", seed, after)
					}
					r := s.trueRate()
					if !inBand(r) {
						t.Errorf("seed %d: rate after 10 minutes %.1f/min, out of the band", seed, r)
					}
					if r >= 10 && r <= 20 {
						strict++
					}
					worstN, worstT, worstAfter = max(worstN, n), max(worstT, at.Sub(vdT0)), max(worstAfter, after)
				}
				t.Logf("%d seeds: at most %d retargets and %s to the band, at most %d retargets after it; after 10 minutes %d within 10-20/min",
					seeds, worstN, worstT.Round(time.Millisecond), worstAfter, strict)
			})
		}
	}
}

// TestVardiffHysteresis runs converged miners for one simulated hour and
// counts difficulty changes: Poisson noise at 15 shares a minute must not
// make the difficulty oscillate.
func TestVardiffHysteresis(t *testing.T) {
	const seeds = 100
	h := 500e9
	nat := vdNatural(h, 1, 15)
	total, worst := 0, 0
	for seed := range uint64(seeds) {
		// Start at the natural difficulty times a spread in [0.8, 1.25]:
		// a miner that converged anywhere in the band.
		f := math.Pow(1.25, 2*float64(seed%5)/4-1)
		s := newVdSim(seed, h, 1, nil, nat*f, 0, nat*1000)
		s.run(vdT0.Add(time.Hour))
		total += s.changes
		worst = max(worst, s.changes)
		if s.changes > 2 {
			t.Errorf("seed %d (start %.2fx): %d changes in an hour, want at most 2", seed, f, s.changes)
		}
	}
	t.Logf("%d miners x 1 hour: %d changes in all, at most %d for one", seeds, total, worst)
	if total > seeds/10 {
		t.Errorf("%d changes over %d miner-hours, want at most %d", total, seeds, seeds/10)
	}
}

// TestVardiffCeilingFloor checks the bounds: never above the pool's
// difficulty, never below the floor (a miner's minimum-difficulty raises
// it), the ceiling winning over the floor.
func TestVardiffCeilingFloor(t *testing.T) {
	now := vdT0
	type step struct {
		pool    float64 // setCeiling(pool)
		want    float64 // the difficulty after it
		changed bool
	}
	f := func(name string, cfg *vardiffConfig, suggest, minDiff float64, steps ...step) {
		t.Helper()
		var v vardiff
		v.init(cfg, now, suggest, minDiff)
		for i, st := range steps {
			d, ch := v.setCeiling(now, st.pool)
			if d != st.want || ch != st.changed || v.diff() != d {
				t.Errorf("%s: step %d setCeiling(%g) = %g, %v (diff %g), want %g, %v", name, i, st.pool, d, ch, v.diff(), st.want, st.changed)
			}
		}
	}
	// The pool lowers below the miner's: the miner's follows at once.
	f("pool lowers below", nil, 100, 0, step{1000, 100, false}, step{50, 50, true})
	// The pool lowers but stays above: nothing until retarget.
	f("pool lowers above", nil, 100, 0, step{1000, 100, false}, step{200, 100, false})
	// The pool raises; the miner's own difficulty was not held down by it: it stays.
	f("pool raises", nil, 100, 0, step{1000, 100, false}, step{5000, 100, false})
	// A miner held down by the pool's difficulty (it wanted 100) follows
	// the pool up at once, up to what it wanted.
	f("held follows up", nil, 100, 0, step{10, 10, true}, step{40, 40, true}, step{1000, 100, true}, step{2000, 100, false})
	// The configured ceiling caps as well as the pool's.
	f("config ceiling", &vardiffConfig{Ceiling: 64}, 100, 0, step{1000, 64, false}, step{32, 32, true}, step{5000, 64, true})
	// A minimum-difficulty above the pool's: never above the pool.
	f("ceiling beats minimum", nil, 0, 500, step{100, 100, true}, step{1000, 500, true})
	// Invalid pool difficulties are ignored.
	f("invalid pool", nil, 100, 0, step{math.NaN(), 100, false}, step{0, 100, false}, step{-1, 100, false}, step{math.Inf(1), 100, false})

	// The floor: an idle miner steps down by at most MaxStep per decision
	// and stops at the floor (the configured one, or its minimum-difficulty).
	idle := func(name string, cfg *vardiffConfig, minDiff, start, want float64) {
		t.Helper()
		var v vardiff
		v.init(cfg, now, start, minDiff)
		v.setCeiling(now, 1e9)
		prev := v.diff()
		for s := 1; s <= 3600; s++ {
			d, ch := v.tick(now.Add(time.Duration(s) * time.Second))
			if ch && (d < prev/4*(1-1e-12) || d >= prev) {
				t.Errorf("%s: tick %ds moved %g -> %g: not one bounded step down", name, s, prev, d)
			}
			prev = d
		}
		if v.diff() != want {
			t.Errorf("%s: idle miner ends at %g, want %g", name, v.diff(), want)
		}
	}
	idle("default floor", nil, 0, 1000, 0.001)
	idle("config floor", &vardiffConfig{Floor: 2}, 0, 1000, 2)
	idle("minimum-difficulty", &vardiffConfig{Floor: 2}, 300, 1000, 300)

	// A fast miner stops at the pool's difficulty and does not keep
	// deciding every few shares there.
	var v vardiff
	v.init(nil, now, 1, 0)
	v.setCeiling(now, 8)
	for i := 1; i <= 1000; i++ {
		v.onShare(now.Add(time.Duration(i)*time.Millisecond), v.diff())
	}
	if v.diff() != 8 || v.early {
		t.Errorf("fast miner: diff %g early %v, want 8 at the pool's difficulty, converged", v.diff(), v.early)
	}
}

// TestVardiffStart checks where a miner starts: its suggest_difficulty,
// its minimum-difficulty as a floor, else the configured start.
func TestVardiffStart(t *testing.T) {
	f := func(name string, cfg *vardiffConfig, suggest, minDiff, pool, want float64) {
		t.Helper()
		var v vardiff
		v.init(cfg, vdT0, suggest, minDiff)
		v.setCeiling(vdT0, pool)
		if v.diff() != want {
			t.Errorf("%s: start %g, want %g", name, v.diff(), want)
		}
	}
	f("default start", nil, 0, 0, 1e6, 1)
	f("configured start", &vardiffConfig{Start: 64}, 0, 0, 1e6, 64)
	f("Bitaxe suggests 1000", &vardiffConfig{Start: 64}, 1000, 0, 1e6, 1000)
	f("suggest below minimum", nil, 1000, 2048, 1e6, 2048)
	f("minimum above start", &vardiffConfig{Start: 64}, 0, 512, 1e6, 512)
	f("minimum below start", &vardiffConfig{Start: 64}, 0, 8, 1e6, 64)
	f("suggest below floor", &vardiffConfig{Floor: 0.5}, 0.01, 0, 1e6, 0.5)
	f("suggest above pool", nil, 1000, 0, 300, 300)
	f("start above pool", &vardiffConfig{Start: 1e9}, 0, 0, 300, 300)
	for _, bad := range []float64{0, -1, math.NaN(), math.Inf(1)} {
		f("invalid suggest "+strconv.FormatFloat(bad, 'g', -1, 64), &vardiffConfig{Start: 64}, bad, bad, 1e6, 64)
	}

	// A suggestion after init (Bitaxe: right after authorize) restarts
	// from it, converging again; an invalid one changes nothing.
	var v vardiff
	v.init(nil, vdT0, 0, 0)
	v.setCeiling(vdT0, 1e6)
	if d, ch := v.suggest(vdT0, 1000); d != 1000 || !ch || !v.early {
		t.Errorf("late suggest: %g, %v, early %v; want 1000, true, true", d, ch, v.early)
	}
	if d, ch := v.suggest(vdT0, math.NaN()); d != 1000 || ch {
		t.Errorf("invalid late suggest: %g, %v; want 1000, false", d, ch)
	}
	if d, ch := v.suggest(vdT0, 5e6); d != 1e6 || !ch {
		t.Errorf("late suggest above pool: %g, %v; want 1e6, true", d, ch)
	}
}

// vdSpeeds scrapes proxy_worker_speed by worker label.
func vdSpeeds(t *testing.T, r *metrics.Registry) map[string]float64 {
	t.Helper()
	var buf bytes.Buffer
	r.WritePrometheus(&buf)
	out := map[string]float64{}
	for _, l := range strings.Split(buf.String(), "\n") {
		if !strings.HasPrefix(l, "proxy_worker_speed{") {
			continue
		}
		_, rest, ok := strings.Cut(l, `worker="`)
		name, _, ok2 := strings.Cut(rest, `"`)
		v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
		if !ok || !ok2 || err != nil {
			t.Fatalf("bad sample %q", l)
		}
		out[name] = v
	}
	return out
}

// vdAccuracy is the result of one hashrate-accuracy scenario.
type vdAccuracy struct {
	mean, bias, worst, within float64 // mean |error|, mean error, worst |error|, share of miners within 15%
}

func (a vdAccuracy) String() string {
	return fmt.Sprintf("mean |err| %5.1f%%, bias %+6.1f%%, worst %7.1f%%, within 15%%: %3.0f%%", 100*a.mean, 100*a.bias, 100*a.worst, 100*a.within)
}

// vdMeasure runs miners miners of hashrates spread over [h/2, 2h] behind one
// upstream whose pool difficulty is 1000x the natural difficulty of h, for
// five simulated minutes, counts every share accepted at the proxy into a
// real metrics.Registry (Worker.Accepted at the share's difficulty, Tick
// every minute on the same clock) and compares proxy_worker_speed with each
// miner's true hashrate. start picks each miner's start from its natural
// difficulty nat and the pool's; vardiff false keeps every miner at the
// pool's difficulty (--vardiff=off: only shares meeting the pool's target).
func vdMeasure(t *testing.T, miners int, seed uint64, h, div float64, vardiff bool, start func(nat, pool float64) (cfg *vardiffConfig, suggest float64)) vdAccuracy {
	t.Helper()
	now := vdT0
	reg := metrics.New(metrics.Config{Now: func() time.Time { return now }})
	pool := 1000 * vdNatural(h, div, 15)
	sims := make([]*vdSim, miners)
	rng := rand.New(rand.NewPCG(seed, 1))
	for i := range sims {
		hi := h * math.Pow(2, 2*rng.Float64()-1)
		cfg, suggest := &vardiffConfig{Floor: pool, Start: pool}, 0.0
		if vardiff {
			cfg, suggest = start(vdNatural(hi, div, 15), pool)
		}
		s := newVdSim(seed*1000+uint64(i), hi, div, cfg, suggest, 0, pool)
		w := reg.NewWorker(fmt.Sprintf("10.0.%d.%d:4000", i/256, i%256), "", "alice", "sha256", "pool:3333", div)
		s.accept = w.Accepted
		sims[i] = s
	}
	for m := 1; m <= 5; m++ {
		now = vdT0.Add(time.Duration(m) * time.Minute)
		for _, s := range sims {
			s.run(now)
		}
		reg.Tick(now)
	}
	speeds := vdSpeeds(t, reg)
	var a vdAccuracy
	for i, s := range sims {
		got, ok := speeds[fmt.Sprintf("10.0.%d.%d:4000", i/256, i%256)]
		if !ok {
			t.Fatalf("no proxy_worker_speed for miner %d", i)
		}
		e := got/s.h - 1
		a.mean += math.Abs(e)
		a.bias += e
		a.worst = max(a.worst, math.Abs(e))
		if math.Abs(e) <= 0.15 {
			a.within++
		}
	}
	n := float64(miners)
	a.mean, a.bias, a.within = a.mean/n, a.bias/n, a.within/n
	return a
}

// TestVardiffHashrateAccuracy is issue 9's test: miners of known speed
// behind one upstream whose pool difficulty is 1000x a miner's natural
// rate; proxy_worker_speed after five simulated minutes, from the shares
// accepted at each miner's own difficulty, is within 15% of the true rate
// (mean over the miners), for sha256d and scrypt (divider 65536). The same
// with vardiff off (shares only at the pool's difficulty) shows the error
// it replaces.
func TestVardiffHashrateAccuracy(t *testing.T) {
	const miners = 64 // per scenario; each with its own seed
	low := func(nat, pool float64) (*vardiffConfig, float64) { return &vardiffConfig{Start: nat / 1000}, 0 }
	suggest := func(nat, pool float64) (*vardiffConfig, float64) { return nil, 2 * nat } // a suggestion 2x off
	atPool := func(nat, pool float64) (*vardiffConfig, float64) { return &vardiffConfig{Start: pool}, 0 }
	for _, alg := range []struct {
		name   string
		h, div float64
	}{
		{"sha256d", 500e9, 1},  // a Bitaxe
		{"scrypt", 1e9, 65536}, // a small scrypt ASIC
	} {
		t.Run(alg.name, func(t *testing.T) {
			on := vdMeasure(t, miners, 1, alg.h, alg.div, true, low)
			sug := vdMeasure(t, miners, 2, alg.h, alg.div, true, suggest)
			high := vdMeasure(t, miners, 3, alg.h, alg.div, true, atPool)
			off := vdMeasure(t, miners, 4, alg.h, alg.div, false, nil)
			t.Logf("%d miners, pool difficulty 1000x natural, after 5 minutes:", miners)
			t.Logf("  vardiff, start 1000x low:      %s", on)
			t.Logf("  vardiff, suggest 2x natural:   %s", sug)
			t.Logf("  vardiff, start at pool's:      %s", high)
			t.Logf("  vardiff off (pool's only):     %s", off)
			for _, c := range []struct {
				name string
				a    vdAccuracy
			}{{"start low", on}, {"suggest", sug}} {
				if c.a.mean > 0.15 || math.Abs(c.a.bias) > 0.05 {
					t.Errorf("%s: %s; want mean |error| within 15%%, bias within 5%%", c.name, c.a)
				}
			}
			if off.mean < 0.5 {
				t.Errorf("vardiff off: %s; expected the large error vardiff replaces", off)
			}
		})
	}
}

// BenchmarkVardiffOnShare measures the per-share cost: it must not allocate.
func BenchmarkVardiffOnShare(b *testing.B) {
	var v vardiff
	v.init(nil, vdT0, 1000, 0)
	v.setCeiling(vdT0, 1e6)
	now := vdT0
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(4 * time.Second) // 15 shares a minute
		v.onShare(now, v.diff())
	}
}

func TestVardiffOnShareAllocs(t *testing.T) {
	var v vardiff
	v.init(nil, vdT0, 1000, 0)
	v.setCeiling(vdT0, 1e6)
	now := vdT0
	if n := testing.AllocsPerRun(1000, func() {
		now = now.Add(time.Second)
		v.onShare(now, v.diff())
		v.tick(now)
	}); n != 0 {
		t.Fatalf("onShare+tick: %v allocations, want 0", n)
	}
}
