package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/panjf2000/gnet/v2/pkg/logging"
	"github.com/rs/zerolog"

	"github.com/stratum-proxy/stratum-proxy/codec"
	"github.com/stratum-proxy/stratum-proxy/metrics"
)

// ErrServerClosed is returned by Start after Stop.
var ErrServerClosed = errors.New("proxy: server closed")

// Server is the stratum proxy: one gnet engine serving miners and upstream
// pool sockets. Build it with New, then Start and Stop it.
type Server struct {
	gnet.BuiltinEventEngine

	// Static after New.
	cfg    Config
	log    zerolog.Logger
	met    *metrics.Registry
	ctx    context.Context
	cancel context.CancelFunc

	eng    gnet.Engine
	addr   string
	booted chan struct{}
	done   chan struct{}
	runErr error

	loopsMu  sync.Mutex
	loops    map[gnet.EventLoop]*loop
	loopList atomic.Pointer[[]*loop]

	vdcfg    *vardiffConfig
	checks   *checkPool // hashes scrypt shares off the loops
	sess     sessionTable
	prefixes *prefixAlloc
	noConf   sync.Map // pool address -> struct{}: it closes connections on mining.configure

	acctMu   sync.Mutex
	accounts map[string]*account

	upMu sync.Mutex
	ups  map[*upstream]struct{}

	tlsCfg     *tls.Config  // the miners' TLS listener's, when TLSAddr is set
	tlsLn      net.Listener // nil without TLSAddr
	bridgeOnce sync.Once
	bridgeV    *bridge
	bridgeErr  error
	tlsPeers   sync.Map // loopback "ip:port" of a bridged TLS miner -> its real net.Addr

	limits       *addrLimits // per-address caps; nil when off
	conns        atomic.Int64
	upSeq        atomic.Uint64
	partialBytes atomic.Int64 // bytes of incomplete miner lines held, all connections
	outbound     atomic.Int64 // bytes of output queued to miners, all connections (see noteOutbound)
	draining     atomic.Bool  // Stop was called: no new miners
}

// New checks cfg and builds a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("proxy: Config.Store is required")
	}
	if cfg.Metrics == nil {
		return nil, errors.New("proxy: Config.Metrics is required")
	}
	if m := cfg.mode(); m != ModeSplit && m != ModePassthrough {
		return nil, fmt.Errorf("proxy: unknown upstream mode %q", m)
	}
	if k := cfg.prefixSize(); k > 4 {
		return nil, fmt.Errorf("proxy: prefix size %d too large (at most 4)", k)
	}
	if cfg.prefixSize()+cfg.extranonce2Size() > maxPad {
		return nil, errors.New("proxy: prefix plus extranonce2 size exceed 16 bytes")
	}
	if len(cfg.InstanceID) > 16 || strings.IndexFunc(cfg.InstanceID, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) >= 0 {
		return nil, fmt.Errorf("proxy: instance id %q: want at most 16 letters and digits", cfg.InstanceID)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:      cfg,
		log:      cfg.Log,
		met:      cfg.Metrics,
		ctx:      ctx,
		cancel:   cancel,
		booted:   make(chan struct{}),
		done:     make(chan struct{}),
		loops:    make(map[gnet.EventLoop]*loop),
		prefixes: newPrefixAlloc(cfg.prefixSize()),
		accounts: make(map[string]*account),
		ups:      make(map[*upstream]struct{}),
	}
	s.sess.byID = make(map[string]*session)
	s.limits = newAddrLimits(cfg.MaxConnsPerAddr, cfg.ConnRatePerAddr)
	s.vdcfg = &vardiffConfig{Rate: cfg.VardiffRate, Start: cfg.VardiffStart, Interval: cfg.VardiffInterval, Floor: cfg.VardiffFloor}
	s.checks = newCheckPool(runtime.GOMAXPROCS(0), 4096)
	empty := []*loop{}
	s.loopList.Store(&empty)
	return s, nil
}

// Start binds the stratum address and serves in the background. It
// returns once the listener is bound (Addr is then valid) or failed.
func (s *Server) Start() error {
	if !s.cfg.ReusePort { // with SO_REUSEPORT the port is shared on purpose
		if err := checkListen(s.cfg.addr()); err != nil {
			return err
		}
	}
	if s.cfg.TLSAddr != "" {
		if s.cfg.TLSCertificate == nil {
			return errors.New("proxy: TLSAddr needs TLSCertificate")
		}
		ln, err := net.Listen("tcp", s.cfg.TLSAddr)
		if err != nil {
			return fmt.Errorf("proxy: TLS listen %s: %w", s.cfg.TLSAddr, err)
		}
		s.tlsLn = ln
		s.tlsCfg = &tls.Config{GetCertificate: s.cfg.TLSCertificate, MinVersion: tls.VersionTLS12}
	}
	go func() {
		defer close(s.done)
		err := gnet.Run(s, "tcp://"+s.cfg.addr(),
			gnet.WithMulticore(true),
			gnet.WithNumEventLoop(s.cfg.loops()),
			gnet.WithTicker(true),
			gnet.WithReuseAddr(true),
			gnet.WithReusePort(s.cfg.ReusePort),
			gnet.WithTCPKeepAlive(time.Minute),
			gnet.WithLogger(gnetLogger{s.log}),
			gnet.WithLogLevel(logging.ErrorLevel),
		)
		s.runErr = err
	}()
	select {
	case <-s.booted:
		if s.tlsLn != nil {
			go s.serveTLS(s.tlsLn)
		}
		return nil
	case <-s.done:
		if s.tlsLn != nil {
			s.tlsLn.Close()
		}
		if s.runErr == nil {
			return ErrServerClosed
		}
		return fmt.Errorf("proxy: listen %s: %w", s.cfg.addr(), s.runErr)
	}
}

// Addr is the bound stratum address (host:port), valid after Start.
func (s *Server) Addr() string { return s.addr }

// TLSAddr is the bound TLS stratum address, "" without Config.TLSAddr.
func (s *Server) TLSAddr() string {
	if s.tlsLn == nil {
		return ""
	}
	return s.tlsLn.Addr().String()
}

// bridge returns the loopback pair maker of the TLS connections.
func (s *Server) bridge() (*bridge, error) {
	s.bridgeOnce.Do(func() { s.bridgeV, s.bridgeErr = newBridge() })
	return s.bridgeV, s.bridgeErr
}

// Stop drains and stops the proxy: new miners are refused, shares in
// flight get their pools' answers (for at most DrainTimeout, or until ctx
// ends), then every connection is closed and Stop waits for the engine.
func (s *Server) Stop(ctx context.Context) error {
	select {
	case <-s.booted:
	default:
		s.cancel()
		return nil
	}
	if s.tlsLn != nil {
		s.tlsLn.Close()
	}
	s.drain(ctx)
	s.cancel()
	defer func() {
		if b, _ := s.bridge(); b != nil {
			b.close()
		}
	}()
	defer s.checks.stop()
	if err := s.eng.Stop(ctx); err != nil && !errors.Is(err, context.Canceled) {
		s.log.Debug().Err(err).Msg("engine stop")
	}
	select {
	case <-s.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// drain refuses new miners and waits until no share is in flight and every
// loop delivered its answers, for at most DrainTimeout.
func (s *Server) drain(ctx context.Context) {
	s.draining.Store(true)
	deadline := time.Now().Add(s.cfg.drainTimeout())
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		if st := s.Stats(); st.Pending == 0 && s.mailboxesEmpty() {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
	s.log.Warn().Int("pending", s.Stats().Pending).Msg("drain timeout: closing with shares in flight")
}

func (s *Server) mailboxesEmpty() bool {
	for _, l := range s.loopSnapshot() {
		l.mu.Lock()
		busy := len(l.queue) > 0 || l.armed
		l.mu.Unlock()
		if busy {
			return false
		}
	}
	return true
}

// OnBoot records the engine and the bound address.
func (s *Server) OnBoot(eng gnet.Engine) gnet.Action {
	s.eng = eng
	s.addr = s.cfg.addr()
	if fd, err := eng.Dup(); err == nil {
		f := os.NewFile(uintptr(fd), "listener")
		if ln, err := net.FileListener(f); err == nil {
			s.addr = ln.Addr().String()
			ln.Close()
		}
		f.Close()
	}
	close(s.booted)
	return gnet.None
}

// loopFor returns the proxy's record of a gnet event loop.
func (s *Server) loopFor(el gnet.EventLoop) *loop {
	s.loopsMu.Lock()
	defer s.loopsMu.Unlock()
	if l := s.loops[el]; l != nil {
		return l
	}
	l := &loop{srv: s, idx: len(s.loops), el: el}
	if l.idx >= s.cfg.loops() {
		panic("proxy: more gnet event loops than configured")
	}
	s.loops[el] = l
	list := append(append([]*loop(nil), *s.loopList.Load()...), l)
	s.loopList.Store(&list)
	return l
}

func (s *Server) loopSnapshot() []*loop { return *s.loopList.Load() }

// OnOpen admits a miner, or starts an enrolled upstream's handshake.
func (s *Server) OnOpen(c gnet.Conn) (out []byte, action gnet.Action) {
	l := s.loopFor(c.EventLoop())
	if up, ok := c.Context().(*upstream); ok {
		defer func() {
			if r := recover(); r != nil {
				s.recovered(r, nil, up)
				action = gnet.Close
			}
		}()
		return nil, up.onOpen(c)
	}
	if s.draining.Load() {
		return codec.AppendError(nil, nullID, codec.CodeOther, "proxy shutting down"), gnet.Close
	}
	if s.conns.Load() >= int64(s.cfg.maxConnections()) {
		s.met.Dropped(dropMaxConnections)
		return codec.AppendError(nil, nullID, codec.CodeOther, "proxy full"), gnet.Close
	}
	now := time.Now()
	remote := c.RemoteAddr()
	if p, ok := s.tlsPeer(remote); ok {
		remote = p // a TLS miner: gnet sees its loopback bridge
	}
	ip := addrOf(remote)
	if reason := s.limits.admit(ip, now); reason != "" {
		s.met.Dropped(reason)
		return codec.AppendError(nil, nullID, codec.CodeOther, "too many connections from your address"), gnet.Close
	}
	s.conns.Add(1)
	mc := &minerConn{srv: s, loop: l, c: c, addr: remote.String(), ip: ip, listIdx: -1, opened: now, lastLine: now, dialect: sniffer{}}
	mc.answers.maxPending = s.cfg.maxInflight()
	mc.log = s.log.With().Str("miner", mc.addr).Logger()
	mc.connIdx = len(l.conns)
	l.conns = append(l.conns, mc)
	c.SetContext(mc)
	s.met.MinersConnected(1)
	return nil, gnet.None
}

// OnTraffic hands the bytes to the miner's or upstream's decoder. A panic
// in either is recovered, counted and closes only that connection.
func (s *Server) OnTraffic(c gnet.Conn) (action gnet.Action) {
	defer func() {
		if r := recover(); r != nil {
			mc, _ := c.Context().(*minerConn)
			up, _ := c.Context().(*upstream)
			s.recovered(r, mc, up)
			action = gnet.Close
		}
	}()
	switch x := c.Context().(type) {
	case *minerConn:
		return x.onTraffic()
	case *upstream:
		return x.onTraffic(c)
	}
	return gnet.Close
}

// OnClose detaches a miner's session (an authorized one waits out its
// grace period) or schedules an upstream's redial.
func (s *Server) OnClose(c gnet.Conn, err error) gnet.Action {
	defer func() {
		if r := recover(); r != nil {
			s.recovered(r, nil, nil)
		}
	}()
	switch x := c.Context().(type) {
	case *minerConn:
		s.closeMiner(x)
	case *upstream:
		x.onClose(err)
	}
	return gnet.None
}

// recovered logs and counts a panic caught at a connection boundary and
// closes the connection it was about (a miner, or a pool socket, which is
// then redialled); the process and every other connection go on.
func (s *Server) recovered(r any, mc *minerConn, up *upstream) {
	stack := debug.Stack()
	ev := s.log.Error().Interface("panic", r).Bytes("stack", stack)
	switch {
	case mc != nil:
		s.met.Panic("miner")
		ev.Str("miner", mc.addr).Msg("recovered a panic; closing the miner")
		mc.drop(metrics.DropPanic)
	case up != nil:
		s.met.Panic("pool")
		ev.Uint64("upstream", up.seq).Msg("recovered a panic; closing the pool connection")
		up.closeReq = true
		if up.conn != nil {
			_ = up.conn.Close() // asynchronous: safe inside a callback
		}
	default:
		ev.Msg("recovered a panic")
	}
}

func (s *Server) closeMiner(mc *minerConn) {
	if mc.state == stateClosed {
		return
	}
	l := mc.loop
	if i := mc.connIdx; i < len(l.conns) && l.conns[i] == mc {
		last := len(l.conns) - 1
		l.conns[i] = l.conns[last]
		l.conns[i].connIdx = i
		l.conns[last] = nil
		l.conns = l.conns[:last]
	}
	if mc.up != nil {
		mc.up.lists[l.idx].remove(mc)
		mc.up = nil
	}
	mc.setState(stateClosed)
	mc.setPartial(0)
	mc.noteOutbound(0)
	s.limits.release(mc.ip)
	s.conns.Add(-1)
	s.met.MinersConnected(-1)
	if sess := mc.sess; sess != nil {
		if !s.draining.Load() {
			// Its last difficulty, for another instance. Not while the
			// proxy stops: every record is there since its authorize, and
			// thousands of saves would hold the shutdown up.
			mc.saveSession(s.cfg.sessionGrace())
		}
		s.detach(sess)
	}
}

// OnTick runs the housekeeping: per-loop sweeps, grace expiry, share
// timeouts and failback probes. It runs on gnet's ticker goroutine.
func (s *Server) OnTick() (time.Duration, gnet.Action) {
	now := time.Now()
	for _, l := range s.loopSnapshot() {
		l.post(event{kind: evSweep})
	}
	s.expireSessions(now)
	s.limits.sweep(now)
	s.upMu.Lock()
	for up := range s.ups {
		up.loop.post(event{kind: evUpTick, up: up})
	}
	s.upMu.Unlock()
	return s.cfg.tickInterval(), gnet.None
}

func (s *Server) rememberUpstream(up *upstream) {
	s.upMu.Lock()
	s.ups[up] = struct{}{}
	s.upMu.Unlock()
}

func (s *Server) forgetUpstream(up *upstream) {
	s.upMu.Lock()
	delete(s.ups, up)
	s.upMu.Unlock()
}

// after runs f on its own goroutine after d, unless the server stopped.
func (s *Server) after(d time.Duration, f func()) {
	if s.ctx.Err() != nil {
		return
	}
	time.AfterFunc(d, func() {
		if s.ctx.Err() == nil {
			f()
		}
	})
}

// Stats is a snapshot of the proxy's connection counts, for the API and
// tests.
type Stats struct {
	Miners    int // connected miner sockets
	Sessions  int // live and detached sessions
	InGrace   int // detached sessions
	Upstreams int // logical upstreams (connected or redialling)
	Ready     int // upstreams logged in to their pool
	Pending   int // shares sent to pools and not yet answered
	Queued    int // submit bytes queued to pool sockets and not yet written (ours and the sockets')
}

// Stats returns current counts. Safe for concurrent use.
func (s *Server) Stats() Stats {
	st := Stats{Miners: int(s.conns.Load())}
	s.sess.mu.Lock()
	st.Sessions, st.InGrace = len(s.sess.byID), s.sess.grace
	s.sess.mu.Unlock()
	s.upMu.Lock()
	st.Upstreams = len(s.ups)
	for up := range s.ups {
		if up.ready.Load() {
			st.Ready++
		}
		up.mu.Lock()
		st.Pending += len(up.pending)
		st.Queued += len(up.out) + up.sockQueued
		up.mu.Unlock()
	}
	s.upMu.Unlock()
	return st
}

// gnetLogger routes gnet's own log lines into zerolog.
type gnetLogger struct{ log zerolog.Logger }

func (g gnetLogger) Debugf(f string, a ...any) { g.log.Debug().Msgf(f, a...) }
func (g gnetLogger) Infof(f string, a ...any)  { g.log.Info().Msgf(f, a...) }
func (g gnetLogger) Warnf(f string, a ...any)  { g.log.Warn().Msgf(f, a...) }
func (g gnetLogger) Errorf(f string, a ...any) { g.log.Error().Msgf(f, a...) }
func (g gnetLogger) Fatalf(f string, a ...any) { g.log.Error().Msgf(f, a...) }
