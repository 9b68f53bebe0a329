package proxy

import (
	"math"
	"time"
)

// vardiffConfig configures the per-miner difficulty controller. Every field
// documents its zero value; a nil *vardiffConfig means every default.
// Difficulties are in the pool's units (the algorithm's divider applies to
// hashrates, not here). It is static once miners use it.
type vardiffConfig struct {
	// Rate is the share rate aimed at, in shares per minute; 0 means 15.
	Rate float64
	// MinRate and MaxRate bound the band inside which the difficulty does
	// not change (hysteresis), in shares per minute; 0 means Rate*2/3 and
	// Rate*4/3 (10 and 20 at the default Rate). A rate outside the band
	// moves the difficulty only once the evidence says so (see zSteady).
	MinRate, MaxRate float64
	// Interval is the shortest time between two retarget decisions once a
	// miner has converged; 0 means 30s.
	Interval time.Duration
	// EarlyShares and EarlyTime: while a miner converges (from its start
	// until the first decision that does not take a full MaxStep), a
	// decision is made after EarlyShares shares or EarlyTime, whichever
	// comes first; 0 means 4 shares and 10s.
	EarlyShares int
	EarlyTime   time.Duration
	// MaxStep bounds one retarget: the difficulty moves at most by this
	// factor up or down; 0 (or anything not above 1) means 4.
	MaxStep float64
	// Floor is the lowest difficulty handed to a miner; 0 means 0.001.
	// A miner's BIP310 minimum-difficulty raises its own floor.
	Floor float64
	// Ceiling caps a miner's difficulty besides the pool's current one,
	// which always caps it; 0 means the pool's alone.
	Ceiling float64
	// Start is the difficulty of a miner that suggested none; 0 means 1.
	Start float64
	// Window is the longest stretch of shares a rate estimate spans: past
	// it the evidence is halved, so a miner whose hashrate changes is
	// re-measured within about a Window; 0 means 5 minutes.
	Window time.Duration
}

// Defaults. Why these:
//   - 15 shares per minute with a 10-20 band (issue 9): 75 shares in the 5
//     minute hashrate window give proxy_worker_speed about 12% standard
//     error, and 15 checks a minute per miner cost nothing.
//   - 30s between decisions, 4 shares or 10s while converging: a miner
//     1000x off takes 4-5 bounded steps (4^5 = 1024): within a minute when
//     it starts low (shares pour in), up to about 4 minutes when it starts
//     high (only silence to go by; TestVardiffConvergence).
//   - Floor 0.001: a 1 MH/s sha256d CPU miner finds 14 shares a minute
//     there (1e6*60/(0.001*2^32)), the slowest miner worth serving.
//   - Start 1: ckpool's minimum; starting low is cheap (4 fast shares per
//     step up) while starting high costs the hashrate window a few huge
//     shares, and the pool's difficulty caps it anyway.
func (c *vardiffConfig) rate() float64 {
	if c == nil || !(c.Rate > 0) {
		return 15
	}
	return c.Rate
}

func (c *vardiffConfig) minRate() float64 {
	if c == nil || !(c.MinRate > 0) {
		return c.rate() * 2 / 3
	}
	return c.MinRate
}

func (c *vardiffConfig) maxRate() float64 {
	if c == nil || !(c.MaxRate > 0) {
		return c.rate() * 4 / 3
	}
	return c.MaxRate
}

func (c *vardiffConfig) interval() time.Duration {
	if c == nil {
		return 30 * time.Second
	}
	return orDur(c.Interval, 30*time.Second)
}

func (c *vardiffConfig) earlyShares() int {
	if c == nil {
		return 4
	}
	return orInt(c.EarlyShares, 4)
}

func (c *vardiffConfig) earlyTime() time.Duration {
	if c == nil {
		return 10 * time.Second
	}
	return orDur(c.EarlyTime, 10*time.Second)
}

func (c *vardiffConfig) maxStep() float64 {
	if c == nil || !(c.MaxStep > 1) || math.IsInf(c.MaxStep, 1) {
		return 4
	}
	return c.MaxStep
}

func (c *vardiffConfig) floor() float64 {
	if c == nil || !validDiff(c.Floor) {
		return 0.001
	}
	return c.Floor
}

func (c *vardiffConfig) ceiling() float64 {
	if c == nil || !validDiff(c.Ceiling) {
		return math.Inf(1)
	}
	return c.Ceiling
}

func (c *vardiffConfig) start() float64 {
	if c == nil || !validDiff(c.Start) {
		return 1
	}
	return c.Start
}

func (c *vardiffConfig) window() time.Duration {
	if c == nil {
		return 5 * time.Minute
	}
	return orDur(c.Window, 5*time.Minute)
}

// validDiff reports whether d is a usable difficulty: positive and finite.
func validDiff(d float64) bool { return d > 0 && !math.IsInf(d, 1) }

// Evidence thresholds, in standard deviations of the share count: a
// decision moves the difficulty only when the measured rate is outside the
// band by more than z of them. A converged miner needs strong evidence
// either way, so that Poisson noise at 15 shares a minute does not make it
// oscillate (TestVardiffHysteresis: 4 changes in 100 simulated
// miner-hours). A converging miner far from the band (see earlyFar) needs
// less, and less still to go down than up: a step down that was wrong
// costs a few more shares and is undone within seconds, a step up that was
// wrong starves the hashrate window.
const (
	zEarlyUp   = 2.0
	zEarlyDown = 1.0
	zSteady    = 2.5
)

// earlyFar: a converging miner whose measured rate is this factor outside
// the band is judged with the early thresholds, and while the evidence is
// not yet clear it is looked at again at every share and tick instead of
// after EarlyShares or EarlyTime: a miner starting far above its
// difficulty steps down as soon as the silence says so. Closer than that,
// it needs the steady evidence.
const earlyFar = 2

// earlyPartial is how many shares a converging miner's partial step (less
// than MaxStep) waits for: about 35% standard error, so that 4 lucky shares
// do not send a miner that started near its rate the wrong way.
const earlyPartial = 8

// minSpan stands in for an evidence window of zero length (several shares
// in the same instant): it keeps the rate finite.
const minSpan = time.Millisecond

// vardiff is one miner's difficulty controller: it measures the miner's
// share rate from the shares it has had accepted at the proxy and retargets
// its difficulty to aim at vardiffConfig.Rate, within [floor, ceiling],
// never above the pool's current difficulty (a share above the pool's
// difficulty is credited by the pool at the pool's, so a higher miner
// difficulty loses the farm money).
//
// It is a plain value in the miner's connection, owned by its loop: no
// locks, no allocation (BenchmarkVardiffOnShare). The zero value is not
// ready: call init. Time is passed in, so tests drive it with a fake clock.
//
// Every method that can change the difficulty returns it with changed
// true when it did; the caller then sends mining.set_difficulty followed by
// a notify (cgminer-family firmware applies a difficulty only at the next
// mining.notify), and checks shares of jobs sent before the change against
// the difficulty of their job.
//
// The rate is measured as work, the sum of the difficulties of the shares
// accepted since the window began, over its length: unbiased whatever the
// mix of difficulties (shares mined before a change arrive after it).
type vardiff struct {
	// Static after init.
	cfg *vardiffConfig

	d     float64 // the miner's current difficulty
	want  float64 // what the last decision (or the start) chose before the ceiling cut it
	floor float64 // max(cfg floor, the miner's minimum-difficulty), unless above ceil
	ceil  float64 // min(cfg ceiling, the pool's current difficulty)
	early bool    // converging: decide after EarlyShares shares or EarlyTime

	// The evidence window.
	since time.Time // its start
	work  float64   // sum of the difficulties of its shares
	sq    float64   // sum of their squares: work's variance

	// Decisions.
	last time.Time // the last decision (or init)
	n    int       // shares since then
}

// init starts the controller at now: at suggest, the difficulty of the
// miner's mining.suggest_difficulty, when it is positive and finite, else
// at the configured start; minDiff, the miner's BIP310 minimum-difficulty
// (0 for none), raises the floor. Both are bounded by the floor and the
// ceiling. cfg nil means every default. Until setCeiling is called the
// pool's difficulty is unknown and caps nothing: call it before the first
// difficulty goes to the miner.
func (v *vardiff) init(cfg *vardiffConfig, now time.Time, suggest, minDiff float64) {
	*v = vardiff{cfg: cfg, ceil: cfg.ceiling(), floor: cfg.floor()}
	if validDiff(minDiff) && minDiff > v.floor {
		v.floor = minDiff
	}
	start := cfg.start()
	if validDiff(suggest) {
		start = suggest
	}
	v.restart(now, start)
}

// restart begins measuring afresh at difficulty start (bounded), converging.
func (v *vardiff) restart(now time.Time, start float64) {
	v.want = max(start, v.floor)
	v.d = v.bound(v.want)
	v.early = true
	v.since, v.work, v.sq = now, 0, 0
	v.last, v.n = now, 0
}

// set makes d the miner's difficulty at now; a change starts a new
// evidence window, so that a window never mixes the exposure of two
// difficulties (the bound for a window without shares needs that).
func (v *vardiff) set(now time.Time, d float64) (float64, bool) {
	if d == v.d {
		return d, false
	}
	v.d = d
	v.since, v.work, v.sq = now, 0, 0
	return d, true
}

// bound returns d within [floor, ceil]; the ceiling wins over the floor:
// never above the pool's difficulty, even for a miner's minimum-difficulty.
func (v *vardiff) bound(d float64) float64 {
	return min(max(d, v.floor), v.ceil)
}

// diff returns the miner's current difficulty.
func (v *vardiff) diff() float64 { return v.d }

// suggest applies a mining.suggest_difficulty that arrives after init
// (Bitaxe sends one right after authorize): the controller restarts from
// it, bounded, converging again. A difficulty that is not positive and
// finite is ignored.
func (v *vardiff) suggest(now time.Time, d float64) (newDiff float64, changed bool) {
	if !validDiff(d) {
		return v.d, false
	}
	old := v.d
	v.restart(now, d)
	return v.d, v.d != old
}

// setCeiling applies the pool's current difficulty pool (at authorize and
// whenever the pool sends mining.set_difficulty). A pool difficulty below
// the miner's takes the miner's down to it at once. When the pool raises
// its difficulty, a miner the old one held down (its last decision wanted
// more) follows at once up to what it wanted, bounded by the new one; any
// other miner's difficulty stays until its next retarget. A difficulty
// that is not positive and finite is ignored (the pool dialect rejects
// it before).
func (v *vardiff) setCeiling(now time.Time, pool float64) (newDiff float64, changed bool) {
	if !validDiff(pool) {
		return v.d, false
	}
	v.ceil = min(pool, v.cfg.ceiling())
	return v.set(now, v.bound(v.want))
}

// onShare counts a share accepted at the proxy at time now, mined at
// difficulty diff (its job's difficulty, which may predate the current
// one; not positive and finite means the current one), and retargets when
// a decision is due. It does not allocate.
func (v *vardiff) onShare(now time.Time, diff float64) (newDiff float64, changed bool) {
	if !validDiff(diff) {
		diff = v.d
	}
	v.work += diff
	v.sq += diff * diff
	v.n++
	return v.decide(now)
}

// tick makes a decision when one is due without a share: a miner that
// stopped finding shares (or started far too high) gets a lower difficulty,
// one bounded step per decision, down to the floor. The caller runs it
// from the loop's periodic sweep (once a second is plenty).
func (v *vardiff) tick(now time.Time) (newDiff float64, changed bool) {
	return v.decide(now)
}

// decide retargets when a decision is due at now and the evidence puts the
// miner's share rate outside the band.
func (v *vardiff) decide(now time.Time) (float64, bool) {
	c := v.cfg
	if v.early {
		if v.n < c.earlyShares() && now.Sub(v.last) < c.earlyTime() {
			return v.d, false
		}
	} else if now.Sub(v.last) < c.interval() {
		return v.d, false
	}
	last, n := v.last, v.n
	v.last, v.n = now, 0

	span := max(now.Sub(v.since), minSpan)
	if w := c.window(); span > w {
		// Halve the evidence: keep the rate, forget half its weight.
		span /= 2
		v.since = now.Add(-span)
		v.work /= 2
		v.sq /= 2
	}
	mins := span.Minutes()
	m := v.work / v.d // the window's work in shares of the current difficulty
	far := m < c.minRate()/earlyFar*mins || m > c.maxRate()*earlyFar*mins
	zu, zd := zSteady, zSteady
	if v.early && far {
		zu, zd = zEarlyUp, zEarlyDown
	}
	// Bounds on m's expectation from the square root transform of a
	// Poisson count (sd 1/2 whatever the mean) on the effective number of
	// shares ne = work^2/sq (the count when every share has the current
	// difficulty): lo zu standard deviations below, hi zd above.
	var lo, hi float64
	if v.work > 0 {
		ne := v.work * v.work / v.sq
		lo = sqr(max(math.Sqrt(ne)-zu/2, 0)) * m / ne
		hi = sqr(math.Sqrt(ne+1)+zd/2) * m / ne
	} else {
		hi = sqr(1 + zd/2)
	}
	if lo <= c.maxRate()*mins && hi >= c.minRate()*mins {
		// Inside the band, or not clearly outside. A converging miner
		// stays converging until its measured rate is inside the band,
		// and is looked at again at every share and tick while it is
		// far outside (see earlyFar).
		switch {
		case !v.early:
		case far:
			v.last, v.n = last, n
		case m >= c.minRate()*mins && m <= c.maxRate()*mins:
			v.early = false
		}
		return v.d, false
	}
	step := c.maxStep()
	up, down := v.d*step, v.d/step
	nd := min(max(v.d*m/(mins*c.rate()), down), up)
	if v.early && nd != up && nd != down && v.work*v.work < earlyPartial*v.sq {
		v.last, v.n = last, n
		return v.d, false
	}
	v.want = max(nd, v.floor)
	d, changed := v.set(now, v.bound(v.want))
	// Still converging after a full step; not when held at a bound, where
	// deciding every few shares would change nothing.
	v.early = changed && (nd == up || nd == down)
	return d, changed
}

func sqr(x float64) float64 { return x * x }
