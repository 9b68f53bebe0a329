package proxy

import (
	"bufio"
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"strconv"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/stratum-proxy/stratum-proxy/codec"
	"github.com/stratum-proxy/stratum-proxy/metrics"
	"github.com/stratum-proxy/stratum-proxy/store"
)

// This file is the pool connection manager: dial, login deadline, backoff,
// failover through the account's targets, failback probes and the
// client.reconnect wait. Every transition runs on the upstream's loop
// (up.loop), from a gnet callback or a mailbox event, and owns its side
// effects (gauges, counters, timers):
//
//	state        event                          -> state       side effects
//	waiting      redial timer (evPoolRedial)    -> dialing     dial goroutine started
//	dialing      socket enrolled (onOpen)       -> handshake   upstreams_connected+1, hello sent, deadline armed, jobs cleared
//	dialing      dial failed (evPoolDialFailed) -> waiting     attempt{connect_failed}, next target
//	handshake    authorize answered true        -> ready       attempt{ok}, pool_up+1, evUpReady to every loop
//	handshake    deadline passed (tick)         -> waiting     attempt{handshake_timeout}, socket closed, next target
//	handshake    login refused                  -> waiting     attempt{login_rejected}, socket closed, next target
//	handshake    socket closed                  -> waiting     attempt{closed}, next target (same target without
//	                                                           mining.configure when it was closed in answer to it)
//	ready        socket closed / reconnect      -> waiting     pool_up-1, pending answered, redial same target after backoff
//	ready        probe of the primary logged in -> waiting     backup closed, primary dialled at once
//	any          last member left               -> closed      socket closed, never redialled
//
// After a whole round of failed attempts the backoff doubles (jittered,
// BackoffMin..BackoffMax); when every target refused the login, miners
// waiting in mining.authorize get the pool's reason. The backoff resets
// only after a connection stayed logged in for stableAfter, so a pool that
// drops every login at once cannot cause a redial storm.

// upState is an upstream's connection state (see the table above).
type upState uint8

const (
	upWaiting upState = iota
	upDialing
	upHandshake
	upReady
	upClosed
)

var upStateNames = [...]string{"waiting", "dialing", "handshake", "ready", "closed"}

func (s upState) String() string { return upStateNames[s] }

// endCause is why the proxy ends a pool socket; onClose turns it into the
// attempt's outcome and the next step. endNone is the pool's own doing.
type endCause uint8

const (
	endNone      endCause = iota
	endTimeout            // the login deadline passed
	endRefused            // the pool refused the login
	endReconnect          // the pool's client.reconnect
	endFailback           // a probe logged in to the primary: leave the backup
)

// stableAfter is how long a connection must stay logged in before the
// redial backoff starts again from BackoffMin.
const stableAfter = 10 * time.Second

// setState records a new state; only the upstream's loop calls it. A
// closed upstream stays closed (its last member may leave from any loop
// at any time): setState then reports false and the caller stops.
func (up *upstream) setState(st upState) bool {
	up.mu.Lock()
	defer up.mu.Unlock()
	if up.state == upClosed {
		return false
	}
	up.state = st
	up.ready.Store(st == upReady)
	return true
}

// startDial connects to the current target off the loop. It runs on
// up.loop.
func (up *upstream) startDial() {
	if !up.refreshTargets() {
		up.log.Info().Msg("user deleted; closing its upstream")
		up.postMembers(event{kind: evGiveUp, up: up})
		return
	}
	if !up.setState(upDialing) {
		return
	}
	go up.dial(up.targets[up.target].Pool)
}

// dial connects and enrolls the socket on up.loop, or reports the failure
// to the loop. It runs on its own goroutine: no gnet callback dials.
func (up *upstream) dial(addr string) {
	if p, ok := up.srv.cfg.Store.Pool(addr); ok && p.TLS {
		if err := up.dialTLS(addr, p); err != nil {
			var te *tlsError
			up.loop.post(event{kind: evPoolDialFailed, up: up, msg: err.Error(), ok: errors.As(err, &te)})
		}
		return
	}
	d := net.Dialer{Timeout: up.srv.cfg.dialTimeout(), KeepAlive: time.Minute}
	c, err := d.DialContext(up.srv.ctx, "tcp", addr)
	if err == nil {
		var ch <-chan gnet.RegisteredResult
		ch, err = up.loop.el.Enroll(gnet.NewContext(context.Background(), up), c)
		if err != nil {
			c.Close()
		} else if res := <-ch; res.Err != nil {
			err = res.Err
		}
	}
	if err != nil {
		up.loop.post(event{kind: evPoolDialFailed, up: up, msg: err.Error()})
	}
}

// onOpen runs on up.loop when the socket is enrolled: start the login. It
// returns gnet.Close when the upstream was closed while dialling.
func (up *upstream) onOpen(c gnet.Conn) gnet.Action {
	if !up.setState(upHandshake) {
		return gnet.Close // never counted: onClose sees connected == false
	}
	up.conn = c
	up.connected = true
	up.srv.met.UpstreamsConnected(1)
	up.openedAt = time.Now()
	up.deadline = up.openedAt.Add(up.srv.cfg.poolHandshakeTimeout())
	up.ending, up.subscribedOK = endNone, false
	up.leaveAt = time.Time{}
	up.closeReq = false
	up.newGeneration()
	t := &up.targets[up.target]
	up.mu.Lock()
	up.mask = 0 // a mask granted by an earlier pool does not carry over
	up.diff = 1 // nor its difficulty: 1 until this pool sets one (stratum's default)
	up.user = t.User
	up.pool = t.Pool
	up.mu.Unlock()
	up.configured = up.wantVR.Load() && !up.srv.noConfigure(t.Pool)
	up.wbuf = up.dialect.hello(up.wbuf[:0], t, up.srv.cfg.userAgent(), up.configured)
	_, _ = c.Write(up.wbuf)
	up.log.Debug().Str("pool", t.Pool).Bool("configure", up.configured).Msg("pool connected, logging in")
	return gnet.None
}

// newGeneration starts a new job id space: jobs of an earlier connection
// (or extranonce) carry its extranonce1 and are never offered again, and
// their ids are no longer found, so shares for them are answered stale.
func (up *upstream) newGeneration() {
	up.gen++
	up.tag = strconv.AppendUint(up.tag[:0], uint64(up.gen), 36)
	up.tag = append(up.tag, '-')
	up.jobs.Store(nil)
	up.forceClean = true
	up.lastJobAt = time.Now()
}

// onTraffic hands the pool's bytes to the dialect on up.loop. A close the
// dialect asked for (refused login, client.reconnect) is returned as
// gnet.Close, so gnet releases the buffer only after parsing stopped.
func (up *upstream) onTraffic(c gnet.Conn) gnet.Action {
	buf, _ := c.Peek(-1)
	n, err := up.dialect.consume(up, buf)
	if err != nil {
		up.log.Warn().Err(err).Msg("pool sent an overlong line; reconnecting")
		_, _ = c.Discard(len(buf))
		return gnet.Close
	}
	if n > 0 {
		_, _ = c.Discard(n) // gnet's Discard(0) would drop a partial line
	}
	if up.closeReq {
		return gnet.Close
	}
	up.noteSocketQueue()
	return gnet.None
}

// onClose runs on up.loop when the socket closed, whoever closed it.
func (up *upstream) onClose(err error) {
	up.conn = nil
	if up.connected {
		up.connected = false
		up.srv.met.UpstreamsConnected(-1)
	}
	wasReady := up.loggedIn
	if wasReady {
		up.loggedIn = false
		up.srv.met.PoolLogin(up.acct.algo, up.pool, up.acct.divider, -1)
		up.downSince = time.Now()
	}
	up.ready.Store(false)
	up.jobs.Store(nil)
	up.mu.Lock()
	failed := up.takeAllPendingLocked()
	up.out = up.out[:0]
	up.sockQueued = 0
	closed := up.state == upClosed
	up.mu.Unlock()
	for _, p := range failed {
		p.worker.PoolRejected(metrics.ReasonPoolError) // its answer will never come
		up.answer(p, false, codec.CodeOther, "pool connection lost", metrics.ReasonPoolError)
	}
	if closed || up.srv.ctx.Err() != nil {
		return // the last member left, or the proxy is stopping
	}
	pool := up.pool // the socket's pool (after a failback, target is the primary already)
	switch {
	case up.ending == endFailback:
		// The primary logged in on a probe: dial it at once.
		up.log.Info().Str("backup", pool).Msg("closed backup pool for failback")
		up.schedule(0)
	case wasReady:
		stable := time.Since(up.readyAt) >= stableAfter
		reconnect := up.ending == endReconnect
		if stable && !reconnect {
			up.backoff = 0
		}
		up.tried = 0
		delay := up.grow()
		if reconnect && up.leaveAt.IsZero() {
			up.log.Info().Str("pool", pool).Dur("in", delay).Msg("pool asked to reconnect")
		} else if !reconnect {
			up.log.Warn().Err(err).Str("pool", pool).Dur("in", delay).Msg("pool connection lost")
		}
		if !up.leaveAt.IsZero() {
			delay = 0 // client.reconnect's wait has passed already
		}
		up.schedule(delay)
	default:
		outcome := metrics.AttemptClosed
		switch {
		case up.ending == endTimeout:
			outcome = metrics.AttemptHandshakeTimeout
		case up.ending == endRefused:
			outcome = metrics.AttemptLoginRejected
		case up.configured && !up.subscribedOK:
			// ckpool's proxy mode and other strict pools drop a client
			// that sends mining.configure before subscribing: log in
			// again without it, and remember that for this pool.
			up.srv.setNoConfigure(pool)
			up.srv.met.UpstreamAttempt(pool, metrics.AttemptClosed)
			up.log.Warn().Str("pool", pool).Msg("pool closed the connection on mining.configure; logging in without it")
			up.schedule(0)
			return
		}
		up.failedAttempt(pool, outcome, errOr(err, outcome))
	}
}

func errOr(err error, outcome string) error {
	if err != nil {
		return err
	}
	return errors.New(outcome)
}

// onDialFailed runs on up.loop when a connect (or its TLS handshake:
// tlsFailed) failed.
func (up *upstream) onDialFailed(msg string, tlsFailed bool) {
	up.mu.Lock()
	closed := up.state == upClosed
	up.mu.Unlock()
	if closed {
		return
	}
	outcome := metrics.AttemptConnectFailed
	if tlsFailed {
		outcome = metrics.AttemptTLSFailed
		up.log.Warn().Str("pool", up.targets[up.target].Pool).Str("error", msg).Msg("pool TLS certificate refused")
	}
	up.failedAttempt(up.targets[up.target].Pool, outcome, errors.New(msg))
}

// failedAttempt counts a failed login attempt and moves to the next
// target; after a whole round it backs off, and when every target refused
// the login it tells the miners waiting in mining.authorize.
func (up *upstream) failedAttempt(pool, outcome string, err error) {
	up.srv.met.UpstreamAttempt(pool, outcome)
	if outcome == metrics.AttemptLoginRejected {
		up.roundRefused++
	}
	up.tried++
	var delay time.Duration
	n := len(up.targets)
	if up.tried >= n {
		if up.roundRefused >= n {
			up.postMembers(event{kind: evLoginFailed, up: up, msg: up.refusal})
		}
		up.tried, up.roundRefused = 0, 0
		delay = up.grow()
	}
	up.target = (up.target + 1) % n
	next := up.targets[up.target].Pool
	up.log.Warn().Err(err).Str("pool", pool).Str("outcome", outcome).Str("next", next).Dur("in", delay).Msg("pool login failed")
	up.schedule(delay)
}

// grow doubles the backoff within its bounds and returns a jittered delay.
func (up *upstream) grow() time.Duration {
	up.backoff = min(max(up.backoff*2, up.srv.cfg.backoffMin()), up.srv.cfg.backoffMax())
	return jitter(up.backoff)
}

// schedule waits d, then dials on up.loop.
func (up *upstream) schedule(d time.Duration) {
	if !up.setState(upWaiting) {
		return
	}
	if d <= 0 {
		up.loop.post(event{kind: evPoolRedial, up: up})
		return
	}
	up.srv.after(d, func() { up.loop.post(event{kind: evPoolRedial, up: up}) })
}

// jitter spreads d over [d/2, d) so that many upstreams of a dead pool do
// not redial in lockstep.
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

// subscribed records the pool's extranonce from its subscribe answer.
func (up *upstream) subscribed(en1 []byte, n int) {
	up.subscribedOK = true
	up.mu.Lock()
	up.en1 = append(up.en1[:0], en1...)
	relayout := up.setNLocked(n)
	up.mu.Unlock()
	if relayout {
		up.postMembers(event{kind: evRelayout, up: up})
	}
}

// onLogin runs when the pool accepted mining.authorize.
func (up *upstream) onLogin() {
	if up.loggedIn || up.conn == nil {
		return
	}
	if !up.setState(upReady) {
		return // the last member left during the login: onUpClose ends the socket
	}
	now := time.Now()
	up.loggedIn = true
	up.readyAt = now
	up.mu.Lock()
	up.loginLatency = now.Sub(up.openedAt)
	up.mu.Unlock()
	up.tried, up.roundRefused = 0, 0
	up.gaveUp = false
	pool := up.targets[up.target].Pool
	onBackup := up.target != 0
	if onBackup {
		up.nextProbe = now.Add(up.srv.cfg.failbackInterval())
	}
	up.srv.met.UpstreamAttempt(pool, metrics.AttemptOK)
	up.srv.met.PoolLogin(up.acct.algo, pool, up.acct.divider, 1)
	up.log.Info().Str("pool", pool).Bool("backup", onBackup).Msg("pool login accepted")
	// Every loop: a miner may have joined on any loop while we logged in.
	for _, l := range up.srv.loopSnapshot() {
		l.post(event{kind: evUpReady, up: up})
	}
}

// loginAnswer handles the pool's answer to the login request (authorize,
// eth_submitLogin): true logs in, anything else refuses with the pool's
// reason.
func (up *upstream) loginAnswer(m *codec.Message) {
	ok, _ := codec.ParseBool(m.Result)
	_, msg, isErr, _ := codec.ParseError(m.Error)
	if !ok || isErr {
		reason := string(msg)
		if reason == "" {
			reason = "login refused"
		}
		up.loginRejected(reason)
		return
	}
	up.subscribedOK = true
	up.onLogin()
}

// loginRejected runs when the pool refused subscribe or authorize: the
// attempt failed and the socket closes after this read.
func (up *upstream) loginRejected(reason string) {
	if up.loggedIn {
		return
	}
	up.ending = endRefused
	up.refusal = truncate(reason, 200)
	up.closeReq = true
}

// poolReconnect follows client.reconnect: with no wait the socket closes
// now and the redial goes through the backoff like any other; with a wait
// the connection is kept (shares still flow) until it has passed.
func (up *upstream) poolReconnect(wait time.Duration) {
	up.ending = endReconnect
	if wait <= 0 || !up.loggedIn {
		up.closeReq = true
		return
	}
	up.leaveAt = time.Now().Add(wait)
	up.log.Info().Dur("wait", wait).Msg("pool asked to reconnect; keeping the connection until the wait ends")
}

// closeConn closes the socket from a mailbox event or the tick on up.loop
// (never from inside OnTraffic: there the dialect sets closeReq).
func (up *upstream) closeConn() {
	if up.conn != nil {
		_ = up.loop.el.Close(up.conn)
	}
}

// tick is the upstream's housekeeping on its loop: login deadline,
// client.reconnect wait, share timeouts, keepalive, failback probes and
// giving up on a dead account.
func (up *upstream) tick(now time.Time) {
	up.expirePending(now)
	up.noteSocketQueue()
	up.mu.Lock()
	st := up.state
	up.mu.Unlock()
	switch st {
	case upClosed:
		return
	case upHandshake:
		if now.After(up.deadline) {
			up.ending = endTimeout
			up.closeConn()
			return
		}
	case upReady:
		if !up.leaveAt.IsZero() && now.After(up.leaveAt) {
			up.closeConn()
			return
		}
		if !up.diffResendAt.IsZero() && now.After(up.diffResendAt) {
			up.diffResendAt = time.Time{}
			up.resendJob(up.diffNow(), false)
		} else if now.Sub(up.lastJobAt) >= up.srv.cfg.keepalive() {
			up.resendJob(up.diffNow(), false)
		}
		if up.target != 0 && !up.probing && now.After(up.nextProbe) {
			up.probing = true
			t := up.targets[0]
			go up.probe(t)
		}
	}
	if st != upReady && !up.downSince.IsZero() && now.Sub(up.downSince) >= up.srv.cfg.giveUp() {
		// Every tick while the account stays dead, so that miners joining
		// or restoring later are not left waiting either.
		if !up.gaveUp {
			up.gaveUp = true
			up.log.Warn().Dur("down", now.Sub(up.downSince)).Msg("no working pool; closing the account's miners")
		}
		up.postMembers(event{kind: evGiveUp, up: up})
	}
}

func (up *upstream) diffNow() float64 {
	up.mu.Lock()
	defer up.mu.Unlock()
	return up.diff
}

// probe logs in to the primary pool on a connection of its own and reports
// to up.loop whether it worked; only a full login (subscribe and authorize
// answered) moves the upstream back. It runs on its own goroutine.
func (up *upstream) probe(t store.Account) {
	ok := probeLogin(up.srv.ctx, t, up.srv.cfg.userAgent(), up.srv.cfg.dialTimeout(), up.srv.cfg.poolHandshakeTimeout())
	up.loop.post(event{kind: evProbeDone, up: up, ok: ok})
}

// probeLogin reports whether a Stratum v1 login to t succeeds within the
// timeouts.
func probeLogin(ctx context.Context, t store.Account, ua string, dialTimeout, loginTimeout time.Duration) bool {
	d := net.Dialer{Timeout: dialTimeout}
	c, err := d.DialContext(ctx, "tcp", t.Pool)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(loginTimeout))
	if _, err := c.Write(appendV1Subscribe(nil, ua)); err != nil {
		return false
	}
	r := bufio.NewReaderSize(c, 4096)
	var m codec.Message
	subscribed := false
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return false
		}
		if codec.Decode(line, &m) != nil || len(m.Method) > 0 {
			continue
		}
		id, err := codec.ParseInt(m.ID)
		if err != nil {
			continue
		}
		_, _, isErr, _ := codec.ParseError(m.Error)
		switch {
		case id == idSubscribe && !subscribed:
			if isErr || codec.IsNull(m.Result) {
				return false
			}
			subscribed = true
			if _, err := c.Write(appendV1Authorize(nil, &t)); err != nil {
				return false
			}
		case id == idAuthorize && subscribed:
			ok, _ := codec.ParseBool(m.Result)
			return ok && !isErr
		}
	}
}

// onProbeDone runs on up.loop with a failback probe's result.
func (up *upstream) onProbeDone(ok bool) {
	up.probing = false
	if !ok || !up.loggedIn || up.target == 0 {
		up.nextProbe = time.Now().Add(up.srv.cfg.failbackInterval())
		return
	}
	up.log.Info().Str("pool", up.targets[0].Pool).Msg("primary pool logged in on a probe; failing back")
	up.target, up.tried, up.backoff = 0, 0, 0
	up.ending = endFailback
	up.closeConn()
}

// noConfigure reports whether pool closed connections on mining.configure.
func (s *Server) noConfigure(pool string) bool {
	_, ok := s.noConf.Load(pool)
	return ok
}

func (s *Server) setNoConfigure(pool string) { s.noConf.Store(pool, struct{}{}) }
