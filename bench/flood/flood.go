package flood

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// Intervals of the flood's own goroutines.
const (
	// tickInterval is how often each event loop checks which shares are
	// due: fine enough for 100 shares/s per miner, cheap at 18,000 miners
	// (a few nanoseconds per miner per tick).
	tickInterval = 10 * time.Millisecond
	// drainPoll is how often the drain checks for outstanding answers.
	drainPoll = 10 * time.Millisecond
)

// runner is one flood in progress.
type runner struct {
	// Static after construction.
	cfg      Config
	target   netip.AddrPort
	start    time.Time
	interval float64 // ns between shares of one miner; 0 without Rate
	fds      fdBudget
	cli      *gnet.Client
	miners   []miner

	st        stats
	answers   hist
	fanout    hist
	notifyLat hist
	tracker   tracker

	submitting atomic.Bool // shares are scheduled while set
	stopping   atomic.Bool // set before the flood closes its connections
	rampEnd    atomic.Int64
	sentAtRamp atomic.Int64
	hashQ      chan hashTask
	hashStop   chan struct{}

	shardsMu sync.Mutex
	shards   []*shard
	byLoop   map[gnet.EventLoop]*shard
}

// now is the run clock: monotonic nanoseconds since start.
func (r *runner) now() int64 { return int64(time.Since(r.start)) }

func durationNS(ns int64) time.Duration { return time.Duration(ns) }

// Run floods cfg.Target with cfg.Miners miners until cfg.Duration has
// passed (or ctx is done), waits up to cfg.Drain for outstanding answers,
// closes every connection and returns the summary. Errors before the
// first dial (config, remote target, fd limit) return a nil Summary;
// failures after it are counted in the Summary, not returned.
//
// Run is safe to call from several goroutines, each flood with its own
// gnet client, but they share the process's file descriptors (see
// Config.ExtraFDs).
func Run(ctx context.Context, cfg Config) (*Summary, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	target, err := cfg.resolveTarget(ctx)
	if err != nil {
		return nil, err
	}
	if k, ok := cfg.dialectKind(); ok {
		return runDialect(ctx, cfg, target, k)
	}
	fds, err := checkFDs(cfg.miners(), cfg.concurrency(), cfg.eventLoops(), cfg.ExtraFDs)
	if err != nil {
		return nil, err
	}
	r := &runner{
		cfg:    cfg,
		target: target,
		fds:    fds,
		byLoop: make(map[gnet.EventLoop]*shard),
	}
	if cfg.Rate > 0 {
		r.interval = float64(time.Second) / cfg.Rate
	}
	r.tracker.now = r.now
	if f := cfg.NotifySentAt; f != nil {
		r.tracker.sentAt = func(id []byte) (int64, bool) {
			t, ok := f(id)
			if !ok {
				return 0, false
			}
			return int64(t.Sub(r.start)), true
		}
	}
	r.buildMiners()

	opts := []gnet.Option{
		gnet.WithNumEventLoop(cfg.eventLoops()),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		// 4 KiB covers a burst of submits; more spills into gnet's list.
		gnet.WithWriteBufferCap(4 << 10),
	}
	if cfg.Logger != nil {
		opts = append(opts, gnet.WithLogger(cfg.Logger))
	}
	cli, err := gnet.NewClient(&handler{r: r}, opts...)
	if err != nil {
		return nil, fmt.Errorf("flood: gnet client: %w", err)
	}
	r.cli = cli
	if err := cli.Start(); err != nil {
		return nil, fmt.Errorf("flood: gnet client start: %w", err)
	}
	return r.run(ctx), nil
}

func (r *runner) buildMiners() {
	cfg := &r.cfg
	n := cfg.miners()
	w := cfg.maxPending()
	r.miners = make([]miner, n)
	pendAll := make([]pending, n*w)
	user := cfg.user()
	numbered := strings.Contains(user, "%d")
	for i := range r.miners {
		m := &r.miners[i]
		m.idx = i
		m.user = user
		if numbered {
			m.user = strings.ReplaceAll(user, "%d", strconv.Itoa(i))
		}
		m.pend = pendAll[i*w : (i+1)*w : (i+1)*w]
	}
}

// run drives the flood after the gnet client started.
func (r *runner) run(ctx context.Context) *Summary {
	cfg := &r.cfg
	r.start = time.Now() // the run clock starts with the duration
	runCtx, cancel := context.WithTimeout(ctx, cfg.duration())
	defer cancel()
	r.submitting.Store(true)

	var bg sync.WaitGroup // clock, progress, hash workers
	bgStop := make(chan struct{})
	bg.Add(1)
	go func() { defer bg.Done(); r.clock(bgStop) }()
	if cfg.Progress != nil {
		bg.Add(1)
		go func() { defer bg.Done(); r.progress(bgStop) }()
	}
	if cfg.mode() == ModeValid {
		r.startHashers(&bg)
	}

	var dialers sync.WaitGroup
	r.dial(runCtx, &dialers)
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
	<-rampDone // dials end promptly: they share runCtx

	// Drain: bounded by cfg.Drain.
	drainStart := time.Now()
	for i := 0; i < int(cfg.drain()/drainPoll)+1 && r.st.outstanding.Load() > 0; i++ {
		time.Sleep(drainPoll)
	}
	drain := time.Since(drainStart)

	cur, peak := rss()
	r.stopping.Store(true)
	if r.hashStop != nil {
		close(r.hashStop)
	}
	close(bgStop)
	bg.Wait()
	_ = r.cli.Stop()
	return r.summary(stopAt, drain, cur, peak)
}

// clock queues a tick on every loop each tickInterval.
func (r *runner) clock(stop <-chan struct{}) {
	t := time.NewTicker(tickInterval)
	defer t.Stop()
	var shards []*shard
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		r.shardsMu.Lock()
		shards = append(shards[:0], r.shards...)
		r.shardsMu.Unlock()
		for _, s := range shards {
			if !s.tickQueued.Swap(true) {
				if err := s.el.Execute(context.Background(), s); err != nil {
					s.tickQueued.Store(false)
				}
			}
		}
	}
}

// progress calls cfg.Progress every interval until stop.
func (r *runner) progress(stop <-chan struct{}) {
	t := time.NewTicker(r.cfg.progressInterval())
	defer t.Stop()
	var prev, cur, win histSnap
	var prevSent, prevAcc int64
	last := time.Now()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		now := time.Now()
		secs := now.Sub(last).Seconds()
		last = now
		r.answers.snapshot(&cur)
		cur.since(&prev, &win)
		prev = cur
		st := &r.st
		sent, acc := st.sent.Load(), st.accepted.Load()
		p := Progress{
			Elapsed:        time.Since(r.start),
			Connected:      st.connected.Load(),
			Subscribed:     st.subscribed.Load(),
			Authorized:     st.authorized.Load(),
			Sent:           sent,
			Accepted:       acc,
			Rejected:       st.rejected.Load(),
			Outstanding:    st.outstanding.Load(),
			RejectedByCode: st.rejectedByCode(),
			SentPerSec:     float64(sent-prevSent) / secs,
			AcceptedPerSec: float64(acc-prevAcc) / secs,
			P50:            win.quantile(0.5),
			P99:            win.quantile(0.99),
		}
		for i := range st.connErr {
			p.ConnectErrors += st.connErr[i].Load()
		}
		prevSent, prevAcc = sent, acc
		r.cfg.Progress(p)
	}
}

// dial starts the bounded dialer pool: ConnectConcurrency goroutines take
// miner indexes in order until all are dialed or ctx is done, paced by
// ConnectRate, and enroll each connection with the gnet client.
func (r *runner) dial(ctx context.Context, wg *sync.WaitGroup) {
	cfg := &r.cfg
	n := len(r.miners)
	var next atomic.Int64
	var pace pacer
	if cfg.ConnectRate > 0 {
		pace.step = time.Duration(float64(time.Second) / cfg.ConnectRate)
	}
	workers := min(cfg.concurrency(), n)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Bounded: each iteration takes a distinct index below n.
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if !pace.wait(ctx) {
					return
				}
				r.dialOne(ctx, i)
			}
		}()
	}
}

func (r *runner) dialOne(ctx context.Context, i int) {
	cfg := &r.cfg
	st := &r.st
	st.dialAttempts.Add(1)
	d := net.Dialer{Timeout: cfg.connectTimeout()}
	if len(cfg.Sources) > 0 {
		src := cfg.Sources[i%len(cfg.Sources)]
		d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
		if src.Is4() {
			d.Control = bindNoPort
		}
	}
	c, err := d.DialContext(ctx, "tcp", r.target.String())
	if err != nil {
		// A dial cut by the flood's end is not a connect failure. The
		// dialer's own deadline may fire before ctx reports it, so look
		// at the deadline too.
		if dl, ok := ctx.Deadline(); ctx.Err() != nil || ok && !time.Now().Before(dl) {
			return
		}
		st.connErr[classifyDialErr(err)].Add(1)
		return
	}
	if _, err := r.cli.EnrollContext(c, &r.miners[i]); err != nil {
		// EnrollContext closes c in every case.
		st.connErr[connErrEnroll].Add(1)
		return
	}
	st.connects.Add(1)
}

// bindNoPort sets IP_BIND_ADDRESS_NO_PORT so binding to a source address
// does not reserve an ephemeral port before connect: the port is then
// picked per destination, and one source serves more than ~28,000
// connections when there are several targets. Failure is harmless.
func bindNoPort(_, _ string, c syscall.RawConn) error {
	_ = c.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	})
	return nil
}

func classifyDialErr(err error) int {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return connErrRefused
	case errors.Is(err, syscall.EADDRNOTAVAIL), errors.Is(err, syscall.EADDRINUSE):
		return connErrAddrNotAvail
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return connErrTooManyFiles
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return connErrTimeout
	}
	return connErrOther
}

// pacer spaces events step apart over all goroutines; a zero step never
// waits. Safe for concurrent use.
type pacer struct {
	step time.Duration
	mu   sync.Mutex
	next time.Time
}

// wait blocks until the caller's slot; false if ctx ended first.
func (p *pacer) wait(ctx context.Context) bool {
	if p.step <= 0 {
		return true
	}
	p.mu.Lock()
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	slot := p.next
	p.next = p.next.Add(p.step)
	p.mu.Unlock()
	d := time.Until(slot)
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// shardFor returns the shard of an event loop, creating it on first use.
func (r *runner) shardFor(el gnet.EventLoop) *shard {
	r.shardsMu.Lock()
	defer r.shardsMu.Unlock()
	s := r.byLoop[el]
	if s == nil {
		s = &shard{r: r, el: el, rng: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}
		r.byLoop[el] = s
		r.shards = append(r.shards, s)
	}
	return s
}

// handler is the flood's gnet.EventHandler. Every callback runs on the
// event loop of its connection.
type handler struct {
	gnet.BuiltinEventEngine
	r *runner
}

func (h *handler) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	m, ok := c.Context().(*miner)
	if !ok {
		return nil, gnet.Close
	}
	return m.open(c, h.r.shardFor(c.EventLoop())), gnet.None
}

func (h *handler) OnTraffic(c gnet.Conn) gnet.Action {
	m, ok := c.Context().(*miner)
	if !ok || m.state == stateClosed {
		_, _ = c.Discard(-1)
		return gnet.None
	}
	return m.onTraffic(c)
}

func (h *handler) OnClose(c gnet.Conn, err error) gnet.Action {
	if m, ok := c.Context().(*miner); ok && m.sh != nil {
		m.onClose(err)
	}
	return gnet.None
}

// summary builds the result once every connection is closed.
func (r *runner) summary(stopAt int64, drain time.Duration, cur, peak uint64) *Summary {
	cfg := &r.cfg
	st := &r.st
	s := &Summary{
		Target:       r.target.String(),
		Mode:         cfg.mode(),
		Miners:       len(r.miners),
		RatePerMiner: cfg.Rate,
		DurationS:    time.Duration(stopAt).Seconds(),
		RampS:        time.Duration(r.rampEnd.Load()).Seconds(),
		DrainS:       drain.Seconds(),
		FDLimit:      r.fds.Soft,
		FDNeed:       r.fds.Need,
		RSSBytes:     cur,
		PeakRSSBytes: peak,
	}
	for _, a := range cfg.Sources {
		s.Sources = append(s.Sources, a.String())
	}
	s.Connect = ConnectSummary{
		Attempts:      st.dialAttempts.Load(),
		Connected:     st.connects.Load(),
		PeakConnected: st.peakConnected.Load(),
		Errors:        make(map[string]int64),
		Disconnects:   st.disconnects.Load(),
	}
	for i := range st.connErr {
		if n := st.connErr[i].Load(); n > 0 {
			s.Connect.Errors[connErrNames[i]] = n
		}
	}
	s.Handshake = HandshakeSummary{
		Subscribed:        st.subscribes.Load(),
		SubscribeErrors:   st.subscribeErrors.Load(),
		Authorized:        st.authorizes.Load(),
		PeakAuthorized:    st.peakAuthorized.Load(),
		AuthorizeRejected: st.authorizeRejected.Load(),
		ConfigureGranted:  st.configureGranted.Load(),
	}
	sent, acc := st.sent.Load(), st.accepted.Load()
	s.Shares = ShareSummary{
		Sent:           sent,
		Accepted:       acc,
		Rejected:       st.rejected.Load(),
		RejectedByCode: st.rejectedByCode(),
		Unanswered:     sent - acc - st.rejected.Load(),
		Unmatched:      st.unmatched.Load(),
		SkippedBacklog: st.skippedBacklog.Load(),
		SkippedLate:    st.skippedLate.Load(),
	}
	if s.DurationS > 0 {
		s.Shares.SentPerSec = float64(sent) / s.DurationS
		s.Shares.AcceptedPerSec = float64(acc) / s.DurationS
	}
	if steady := s.DurationS - s.RampS; steady > 0 {
		s.Shares.SteadySentPerSec = float64(sent-r.sentAtRamp.Load()) / steady
	}
	var h histSnap
	r.answers.snapshot(&h)
	s.AnswerLatency = h.quantiles()
	r.fanout.snapshot(&h)
	s.NotifyFanout = h.quantiles()
	if cfg.NotifySentAt != nil {
		r.notifyLat.snapshot(&h)
		q := h.quantiles()
		s.NotifyLatency = &q
	}
	s.Messages = MessageSummary{
		Notifies:         st.notifies.Load(),
		NotifiesMeasured: st.notifiesMeasured.Load(),
		SetDifficulty:    st.setDifficulty.Load(),
		SetExtranonce:    st.setExtranonce.Load(),
		SetVersionMask:   st.setVersionMask.Load(),
		Reconnects:       st.reconnects.Load(),
		Pings:            st.pings.Load(),
		GetVersion:       st.getVersions.Load(),
		ShowMessage:      st.showMessages.Load(),
		Unknown:          st.unknownMethods.Load(),
		ProtocolErrors:   st.protocolErrors.Load(),
		OverlongLines:    st.overlongLines.Load(),
	}
	if cfg.mode() == ModeValid {
		s.Hashing = &HashSummary{
			Hashes:    st.hashes.Load(),
			Found:     st.found.Load(),
			Exhausted: st.exhausted.Load(),
			QueueFull: st.queueFull.Load(),
			Stale:     st.stale.Load(),
		}
	}
	return s
}
