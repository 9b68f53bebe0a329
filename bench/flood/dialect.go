package flood

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stratum-proxy/stratum-proxy/bench/dialectsim"
)

// DialectStratum is the Config.Dialect of Bitcoin stratum v1, the same as "".
const DialectStratum = "stratum"

// cnAlgo is the login algo list of a CryptoNote miner, as xmrig sends it
// for RandomX (the proxy shares one pool login among miners that send one).
var cnAlgo = []string{"rx/0"}

// DialectKinds lists the values Config.Dialect takes besides "" and
// DialectStratum: the bench/dialectsim kinds, in their fixed order.
func DialectKinds() []string {
	var out []string
	for _, k := range dialectsim.Kinds() {
		out = append(out, string(k))
	}
	return out
}

// dialectKind returns the dialectsim kind of c.Dialect; false for stratum v1.
func (c *Config) dialectKind() (dialectsim.Kind, bool) {
	if c.Dialect == "" || c.Dialect == DialectStratum {
		return "", false
	}
	return dialectsim.Kind(c.Dialect), true
}

func (c *Config) validateDialect() error {
	k, ok := c.dialectKind()
	if !ok {
		return nil
	}
	if !slices.Contains(dialectsim.Kinds(), k) {
		return fmt.Errorf("%w: Dialect %q (want %q or one of %s)", ErrConfig, c.Dialect,
			DialectStratum, strings.Join(DialectKinds(), ", "))
	}
	if len(c.Sources) > 0 {
		return fmt.Errorf("%w: Sources are not supported with Dialect %q", ErrConfig, c.Dialect)
	}
	return nil
}

// dialectRun is a flood of dialectsim miners: a goroutine per miner.
type dialectRun struct {
	r    *runner
	kind dialectsim.Kind

	mu      sync.Mutex
	closing bool
	live    []*dialectsim.Miner // every miner dialed, closed at the end
}

// runDialect is Run for Config.Dialect other than stratum v1. Every miner
// dials with dialectsim.DialMiner (the dialect's login handshake), then
// mines and submits one share with Miner.Mine(1) every 1/Rate seconds,
// jittered like the stratum flood, until Duration. The answer latency it
// records covers the stand-in share search (~32 SHA-256s) and the submit
// round trip. A miner whose Mine fails stops (no reconnect).
func runDialect(ctx context.Context, cfg Config, target netip.AddrPort, k dialectsim.Kind) (*Summary, error) {
	n := cfg.miners()
	// One descriptor per miner, one per dial in flight, no event loops.
	fds, err := checkFDs(n, cfg.concurrency(), 0, cfg.ExtraFDs)
	if err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, target: target, fds: fds}
	if cfg.Rate > 0 {
		r.interval = float64(time.Second) / cfg.Rate
	}
	d := &dialectRun{r: r, kind: k, live: make([]*dialectsim.Miner, 0, n)}

	r.start = time.Now()
	runCtx, cancel := context.WithTimeout(ctx, cfg.duration())
	defer cancel()
	r.submitting.Store(true)

	var bg sync.WaitGroup
	bgStop := make(chan struct{})
	if cfg.Progress != nil {
		bg.Add(1)
		go func() { defer bg.Done(); r.progress(bgStop) }()
	}

	var dialers, mining sync.WaitGroup
	d.dial(runCtx, n, &dialers, &mining)
	rampDone := make(chan struct{})
	go func() {
		dialers.Wait()
		r.rampEnd.Store(r.now())
		r.sentAtRamp.Store(r.st.sent.Load())
		close(rampDone)
	}()

	<-runCtx.Done()
	r.submitting.Store(false)
	stopAt := r.now()
	// Dials in flight end within their own timeouts (DialMiner takes no
	// context); their miners are closed at once.
	<-rampDone

	drainStart := time.Now()
	for i := 0; i < int(cfg.drain()/drainPoll)+1 && r.st.outstanding.Load() > 0; i++ {
		time.Sleep(drainPoll)
	}
	drain := time.Since(drainStart)

	cur, peak := rss()
	r.stopping.Store(true)
	d.closeAll()
	mining.Wait() // bounded: every connection is closed, every wait ends with runCtx
	close(bgStop)
	bg.Wait()

	s := r.summary(stopAt, drain, cur, peak)
	s.Dialect = cfg.Dialect
	s.Miners = n
	s.Mode = ModeValid // stand-in shares, mined for the pool's target
	s.Hashing = nil
	s.Shares.Errors = r.st.mineErrors.Load()
	return s, nil
}

// dial starts ConnectConcurrency dialer goroutines (paced by ConnectRate)
// that take miner indexes in order until all are dialed or ctx is done;
// each miner dialed gets its mining goroutine in mining.
func (d *dialectRun) dial(ctx context.Context, n int, dialers, mining *sync.WaitGroup) {
	cfg := &d.r.cfg
	var pace pacer
	if cfg.ConnectRate > 0 {
		pace.step = time.Duration(float64(time.Second) / cfg.ConnectRate)
	}
	var mu sync.Mutex
	next := 0
	take := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		if next >= n {
			return 0, false
		}
		next++
		return next - 1, true
	}
	workers := min(cfg.concurrency(), n)
	for w := 0; w < workers; w++ {
		dialers.Add(1)
		go func() {
			defer dialers.Done()
			// Bounded: each iteration takes a distinct index below n.
			for {
				i, ok := take()
				if !ok || ctx.Err() != nil || !pace.wait(ctx) {
					return
				}
				d.dialOne(ctx, i, mining)
			}
		}()
	}
}

func (d *dialectRun) minerConfig(i int) dialectsim.MinerConfig {
	cfg := &d.r.cfg
	user := cfg.user()
	if strings.Contains(user, "%d") {
		user = strings.ReplaceAll(user, "%d", strconv.Itoa(i))
	}
	mc := dialectsim.MinerConfig{
		Kind:    d.kind,
		Addr:    d.r.target.String(),
		User:    user,
		Pass:    cfg.password(),
		Agent:   cfg.UserAgent, // "" is the dialect's default
		Timeout: cfg.connectTimeout(),
	}
	if d.kind == dialectsim.CryptoNote {
		mc.Algo = slices.Clone(cnAlgo)
	}
	return mc
}

func (d *dialectRun) dialOne(ctx context.Context, i int, mining *sync.WaitGroup) {
	st := &d.r.st
	st.dialAttempts.Add(1)
	m, err := dialectsim.DialMiner(d.minerConfig(i))
	if err != nil {
		if ctx.Err() != nil {
			return // cut by the flood's end
		}
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			st.connErr[classifyDialErr(err)].Add(1)
			return
		}
		// Connected, but the login handshake failed: refused, timed out
		// or cut.
		st.connects.Add(1)
		st.authorizeRejected.Add(1)
		return
	}
	st.connects.Add(1)
	d.mu.Lock()
	if d.closing {
		d.mu.Unlock()
		_ = m.Close()
		return
	}
	d.live = append(d.live, m)
	d.mu.Unlock()
	raiseMax(&st.peakConnected, st.connected.Add(1))
	st.subscribes.Add(1)
	st.subscribed.Add(1)
	st.authorizes.Add(1)
	raiseMax(&st.peakAuthorized, st.authorized.Add(1))
	mining.Add(1)
	go func() {
		defer mining.Done()
		d.mine(ctx, i, m)
	}()
}

// mine submits shares on m at the configured rate until ctx is done or
// a Mine fails, then closes m.
func (d *dialectRun) mine(ctx context.Context, i int, m *dialectsim.Miner) {
	r := d.r
	st := &r.st
	defer func() {
		_ = m.Close()
		st.connected.Add(-1)
		st.subscribed.Add(-1)
		st.authorized.Add(-1)
	}()
	if r.interval == 0 {
		<-ctx.Done() // connect only: hold the connection
		return
	}
	rng := rand.New(rand.NewPCG(uint64(i), rand.Uint64()))
	ivl := time.Duration(r.interval)
	jitter := func() time.Duration { return time.Duration(r.interval * (0.5 + rng.Float64())) }
	// Bounded in count (twice the shares the duration holds, plus slack)
	// and in time (ctx).
	maxShares := int(r.cfg.duration().Seconds()*r.cfg.Rate)*2 + 16
	due := time.Now().Add(jitter())
	t := time.NewTimer(time.Until(due))
	defer t.Stop()
	for range maxShares {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !r.submitting.Load() {
			return
		}
		st.sent.Add(1)
		st.outstanding.Add(1)
		t0 := time.Now()
		acc, rej, err := m.Mine(1)
		st.outstanding.Add(-1)
		if acc+rej > 0 {
			r.answers.record(time.Since(t0))
		}
		st.accepted.Add(int64(acc))
		if rej > 0 {
			st.rejected.Add(int64(rej))
			st.rej[rejOther].Add(int64(rej))
		}
		if err != nil {
			if !r.stopping.Load() {
				// Not a share left unanswered by the flood's end: an
				// error of this miner, which stops here.
				st.sent.Add(-1)
				st.mineErrors.Add(1)
				st.disconnects.Add(1)
			}
			return
		}
		due = due.Add(jitter())
		if now := time.Now(); now.After(due) {
			// Mine took longer than the gaps: the shares that fell due
			// meanwhile are skipped, as the stratum flood skips them.
			st.skippedLate.Add(int64(now.Sub(due) / ivl))
			due = now
		}
		t.Reset(time.Until(due))
	}
}

// closeAll closes every miner dialed (and any dialed later), which ends
// Mine calls in flight.
func (d *dialectRun) closeAll() {
	d.mu.Lock()
	d.closing = true
	live := d.live
	d.mu.Unlock()
	for _, m := range live {
		_ = m.Close()
	}
}
