package proxy

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/rs/zerolog"

	"github.com/stratum-proxy/stratum-proxy/codec"
	"github.com/stratum-proxy/stratum-proxy/metrics"
	"github.com/stratum-proxy/stratum-proxy/proxy/pow"
)

// connState is a miner connection's state. Transitions, all made by
// setState on the connection's loop:
//
//	stateConnected -> stateSubscribed    mining.subscribe answered (fresh or restored session)
//	stateConnected/stateSubscribed -> stateAuthorizing
//	                                     mining.authorize of a known name; the upstream is logging in
//	stateSubscribed/stateAuthorizing -> stateMining
//	                                     the upstream is ready (or AuthorizeWait passed): work flows
//	stateSubscribed -> stateMining       a restored session resumes at once
//	any -> stateClosed                   the socket closed; the session waits out its grace period
//
// mining.configure is answered in any state before stateClosed.
type connState uint8

const (
	stateConnected connState = iota
	stateSubscribed
	stateAuthorizing
	stateMining
	stateClosed
)

var connStateNames = [...]string{"connected", "subscribed", "authorizing", "mining", "closed"}

func (s connState) String() string { return connStateNames[s] }

// Drop reasons, also the `reason` label of proxy_miners_dropped_total.
const (
	dropSlowReader       = "slow_reader"
	dropLineTooLong      = "line_too_long"
	dropHandshakeTimeout = "handshake_timeout"
	dropIdleTimeout      = "idle_timeout"
	dropMaxConnections   = "max_connections"
	dropBadInput         = "bad_input"
	dropUnknownUser      = "unknown_user"
	dropRelayout         = "relayout"
)

// maxBadLines is how many undecodable lines in a row a miner may send
// before it is dropped: a confused miner gets clear errors, a hostile one
// does not keep a loop busy.
const maxBadLines = 32

// session is what survives a miner's reconnect: its id, extranonce layout,
// account and upstream. It is owned by the loop of its current connection,
// or by the restore table while detached.
type session struct {
	id        string
	prefix    []byte // P, the extranonce1 handed to the miner
	prefixVal uint32
	k, m      int // len(prefix) and the miner's extranonce2 size
	pad       int // N-k-m on the current upstream

	mc         *minerConn // nil while detached; guarded by Server.sessMu
	graceUntil time.Time  // guarded by Server.sessMu

	name       string // the issued name it authorized with
	acct       *account
	up         *upstream
	worker     *metrics.Worker
	diff       float64
	lastJob    *job
	xnsub      bool // sent mining.extranonce.subscribe
	authorized bool
}

func (s *session) setLayout(v uint32, k, m int) {
	s.prefixVal, s.k, s.m = v, k, m
	s.prefix = s.prefix[:0]
	for i := k - 1; i >= 0; i-- {
		s.prefix = append(s.prefix, byte(v>>(8*i)))
	}
}

// minerConn is one miner TCP connection. Only its loop touches it.
type minerConn struct {
	// Static after onOpen.
	srv  *Server
	loop *loop
	c    gnet.Conn
	addr string
	log  zerolog.Logger

	// Owned by the loop.
	state      connState
	sess       *session
	up         *upstream // whose member list holds mc, or nil
	listIdx    int
	connIdx    int
	opened     time.Time
	lastRead   time.Time
	authBy     time.Time // answer a waiting authorize by then
	authID     []byte    // id of the authorize waiting for its answer
	rig        string
	versionReq uint32 // mask the miner asked for in mining.configure
	granted    uint32 // mask currently granted to the miner
	badLines   int
	closing    bool
	hasWork    bool      // sent a job of its current upstream; shares before that are stale
	mustRelay  bool      // the layout changed before the miner learnt it
	relayBy    time.Time // drop a miner still owing a relayout by then
}

// relayWait is how long an authorized miner whose layout must change may
// take to send mining.extranonce.subscribe: real miners (cpuminer-opt,
// cpuminer-multi) send it right after the authorize answer, within
// milliseconds.
const relayWait = time.Second

func (mc *minerConn) setState(st connState) {
	if mc.state == st {
		return
	}
	mc.log.Debug().Stringer("from", mc.state).Stringer("to", st).Msg("state")
	mc.state = st
}

// write queues b to the miner and drops a miner whose unread output grew
// past the limit.
func (mc *minerConn) write(b []byte) {
	if mc.closing {
		return
	}
	_, _ = mc.c.Write(b)
	if mc.c.OutboundBuffered() > mc.srv.cfg.maxOutbound() {
		mc.drop(dropSlowReader)
	}
}

func (mc *minerConn) drop(reason string) {
	if mc.closing {
		return
	}
	mc.closing = true
	mc.srv.met.Dropped(reason)
	mc.log.Debug().Str("reason", reason).Msg("dropping miner")
	_ = mc.c.Close()
}

func (mc *minerConn) replyResult(id, result []byte) {
	if id == nil || codec.IsNull(id) {
		return
	}
	l := mc.loop
	l.wbuf = codec.AppendResult(l.wbuf[:0], id, result)
	mc.write(l.wbuf)
}

func (mc *minerConn) replyError(id []byte, code int, msg string) {
	if id == nil {
		id = nullID
	}
	l := mc.loop
	l.wbuf = codec.AppendError(l.wbuf[:0], id, code, msg)
	mc.write(l.wbuf)
}

var (
	nullID     = []byte("null")
	trueResult = []byte("true")
)

// onTraffic frames and handles the miner's lines. It returns gnet.Close when
// the connection must end after what was written is flushed.
func (mc *minerConn) onTraffic() gnet.Action {
	buf, _ := mc.c.Peek(-1)
	mc.lastRead = time.Now()
	off := 0
	max := mc.srv.cfg.maxLineSize()
	for off < len(buf) && !mc.closing {
		line, n, err := codec.NextLine(buf[off:], max)
		if err != nil {
			mc.replyError(nil, codec.CodeOther, "line too long")
			mc.srv.met.Dropped(dropLineTooLong)
			mc.closing = true
			_, _ = mc.c.Discard(len(buf))
			return gnet.Close
		}
		off += n
		if line == nil {
			break
		}
		mc.handleLine(line)
	}
	_, _ = mc.c.Discard(off)
	if mc.closing {
		return gnet.Close
	}
	return gnet.None
}

// testHookMinerLine, when set by a test, is called with every line a miner
// sends before it is handled (tests use it to inject a panic).
var testHookMinerLine func(line []byte)

func (mc *minerConn) handleLine(line []byte) {
	if testHookMinerLine != nil {
		testHookMinerLine(line)
	}
	l := mc.loop
	m := &l.msg
	if err := codec.Decode(line, m); err != nil {
		mc.replyError(nil, codec.CodeParseError, err.Error())
		if mc.badLines++; mc.badLines > maxBadLines {
			mc.drop(dropBadInput)
		}
		return
	}
	mc.badLines = 0
	if len(m.Method) == 0 {
		return // an answer to one of our requests (client.get_version...)
	}
	switch string(m.Method) {
	case codec.MethodSubmit:
		mc.handleSubmit(m)
	case codec.MethodSubscribe:
		mc.handleSubscribe(m)
	case codec.MethodAuthorize:
		mc.handleAuthorize(m)
	case codec.MethodConfigure:
		mc.handleConfigure(m)
	case codec.MethodExtranonceSubscribe:
		mc.ensureSession().xnsub = true
		mc.replyResult(m.ID, trueResult)
		if mc.mustRelay && mc.state == stateMining {
			// The authorize answer went out while the layout was pending.
			mc.mustRelay = false
			mc.relay()
			mc.sendWork(true)
		}
	case codec.MethodSuggestDifficulty:
		// Miners of one upstream share the pool's difficulty; per-miner
		// difficulty is a later feature. Acknowledge and carry on.
		mc.replyResult(m.ID, trueResult)
	case codec.MethodPing:
		mc.replyResult(m.ID, []byte(`"pong"`))
	case codec.MethodGetVersion:
		mc.replyResult(m.ID, codec.AppendStringS(nil, mc.srv.cfg.userAgent()))
	default:
		if m.HasID() {
			l.tmp = append(append(l.tmp[:0], "unknown method "...), m.Method...)
			l.wbuf = codec.AppendErrorBytes(l.wbuf[:0], m.ID, codec.CodeMethodNotFound, l.tmp)
			mc.write(l.wbuf)
		}
	}
}

// ensureSession gives the connection a fresh session when it has none
// (a miner that authorizes or configures before it subscribes).
func (mc *minerConn) ensureSession() *session {
	if mc.sess == nil {
		mc.sess = mc.srv.newSession(mc)
	}
	return mc.sess
}

func (mc *minerConn) handleConfigure(m *codec.Message) {
	l := mc.loop
	p, err := codec.SplitArray(m.Params, l.params[:0])
	l.params = p
	if err != nil || len(p) < 1 {
		mc.replyError(m.ID, codec.CodeInvalidParams, "mining.configure needs [extensions, parameters]")
		return
	}
	exts, err := codec.SplitArray(p[0], nil)
	if err != nil {
		mc.replyError(m.ID, codec.CodeInvalidParams, "mining.configure extensions must be an array")
		return
	}
	res := append(l.tmp[:0], '{')
	for i, e := range exts {
		name, err := codec.Unquote(e, nil)
		if err != nil {
			continue
		}
		if i > 0 && len(res) > 1 {
			res = append(res, ',')
		}
		if string(name) != "version-rolling" {
			res = codec.AppendString(res, name)
			res = append(res, ":false"...)
			continue
		}
		req := uint32(0xffffffff)
		if len(p) > 1 {
			if raw, ok := codec.ObjectField(p[1], "version-rolling.mask"); ok {
				if v, err := codec.ParseUint32Hex(raw); err == nil {
					req = v
				}
			}
		}
		mc.versionReq = req
		allowed := mc.srv.cfg.versionMask()
		if up := mc.up; up != nil {
			up.mu.Lock()
			if up.state == upReady || up.mask != 0 {
				allowed = up.mask
			}
			up.mu.Unlock()
		}
		mc.granted = req & allowed
		res = append(res, `"version-rolling":true,"version-rolling.mask":`...)
		res = appendHex32(res, mc.granted)
	}
	res = append(res, '}')
	l.tmp = res
	mc.replyResult(m.ID, res)
}

// appendHex32 appends v as a quoted 8-digit hex JSON string ("1fffe000").
func appendHex32(b []byte, v uint32) []byte {
	return append(pow.AppendHex32(append(b, '"'), v), '"')
}

// updateVersionMask narrows the miner's granted mask to what the pool
// allows, telling the miner when it changes.
func (mc *minerConn) updateVersionMask(poolMask uint32) {
	if mc.versionReq == 0 {
		return
	}
	g := mc.versionReq & poolMask
	if g == mc.granted {
		return
	}
	mc.granted = g
	l := mc.loop
	l.tmp = appendHex32(append(l.tmp[:0], '['), g)
	l.tmp = append(l.tmp, ']')
	l.wbuf = codec.AppendNotification(l.wbuf[:0], codec.MethodSetVersionMask, l.tmp)
	mc.write(l.wbuf)
}

func (mc *minerConn) handleSubscribe(m *codec.Message) {
	l := mc.loop
	p, err := codec.SplitArray(m.Params, l.params[:0])
	l.params = p
	if err != nil {
		mc.replyError(m.ID, codec.CodeInvalidParams, "mining.subscribe params must be an array")
		return
	}
	var s *session
	restored := false
	if mc.sess == nil && len(p) >= 2 {
		if sid, err := codec.Unquote(p[1], nil); err == nil && len(sid) > 0 {
			if s = mc.srv.restore(string(sid), mc); s != nil {
				restored = true
			}
		}
	}
	if s == nil {
		s = mc.ensureSession()
	}
	mc.sess = s
	if restored {
		mc.resume()
	}

	res := append(l.tmp[:0], `[[["mining.set_difficulty",`...)
	res = codec.AppendStringS(res, s.id)
	res = append(res, `],["mining.notify",`...)
	res = codec.AppendStringS(res, s.id)
	res = append(res, `]],`...)
	res = codec.AppendHexString(res, s.prefix)
	res = append(res, ',')
	res = codec.AppendUint(res, uint64(s.m))
	res = append(res, ']')
	l.tmp = res
	mc.replyResult(m.ID, res)
	if mc.state == stateConnected {
		mc.setState(stateSubscribed)
	}
	if restored && s.up != nil {
		mc.setState(stateMining)
		mc.sendWork(true)
	}
}

// resume re-attaches a restored session's upstream to this connection.
func (mc *minerConn) resume() {
	s := mc.sess
	up := s.up
	if up == nil {
		return
	}
	up.mu.Lock()
	if !up.fitsLocked(s) {
		up.relayoutLocked(s)
	} else {
		s.pad = up.padLocked(s)
	}
	up.mu.Unlock()
	up.lists[mc.loop.idx].add(mc)
	mc.up = up
	if s.worker != nil {
		s.worker.SetUp(true)
	}
	mc.log = mc.log.With().Str("session", s.id).Str("user", s.name).Logger()
	mc.log.Debug().Msg("session restored")
}

// sendWork hands the miner its difficulty and the current job, forced clean
// so it starts on it at once.
func (mc *minerConn) sendWork(versionMask bool) {
	s := mc.sess
	up := s.up
	if up == nil {
		return
	}
	up.mu.Lock()
	diff, mask, ready := up.diff, up.mask, up.state == upReady
	up.mu.Unlock()
	if versionMask && mc.versionReq != 0 && ready {
		mc.updateVersionMask(mask)
	}
	if j := up.jobs.Load().last(); j != nil {
		diff = j.diff
		s.lastJob = j
	} else if s.diff > 0 && !ready {
		diff = s.diff
	}
	s.diff = diff
	if s.worker != nil {
		s.worker.SetDifficulty(diff)
	}
	l := mc.loop
	l.wbuf = appendSetDifficulty(l.wbuf[:0], diff)
	mc.write(l.wbuf)
	if s.lastJob != nil {
		mc.write(s.lastJob.line(s.pad, true))
		mc.hasWork = true
	}
}

func (mc *minerConn) handleAuthorize(m *codec.Message) {
	l := mc.loop
	p, err := codec.SplitArray(m.Params, l.params[:0])
	l.params = p
	if err != nil || len(p) < 1 {
		mc.replyError(m.ID, codec.CodeInvalidParams, "mining.authorize needs [user, password]")
		return
	}
	full, err := codec.Unquote(p[0], l.tmp[:0])
	if err != nil {
		mc.replyError(m.ID, codec.CodeInvalidParams, "mining.authorize user must be a string")
		return
	}
	name, rig := full, []byte(nil)
	if i := bytes.IndexByte(full, '.'); i >= 0 {
		name, rig = full[:i], full[i+1:]
	}
	u, ok := mc.srv.cfg.Store.User(string(name))
	if !ok {
		mc.replyError(m.ID, codec.CodeUnauthorized, "unknown user")
		mc.log.Info().Str("user", truncate(string(name), 64)).Msg("unknown user, closing")
		mc.srv.met.Dropped(dropUnknownUser)
		mc.closing = true // onTraffic closes after the answer is flushed
		return
	}
	mc.rig = truncate(string(rig), 64)
	s := mc.ensureSession()
	mc.srv.cfg.Store.Touch(u.Name, time.Now())

	if s.up != nil && s.name == u.Name {
		// A restored session authorizing as before: nothing moves.
		mc.authID = append(mc.authID[:0], m.ID...)
		if mc.up == nil {
			s.up.lists[l.idx].add(mc)
			mc.up = s.up
		}
		if s.up.ready.Load() || mc.state == stateMining {
			mc.authorized()
		} else {
			mc.setState(stateAuthorizing)
			mc.authBy = time.Now().Add(mc.srv.cfg.authorizeWait())
		}
		return
	}
	if s.up != nil {
		// A restored session authorizing with another name moves to that
		// name's pool.
		mc.leaveUpstream()
	}
	oldPrefix, oldM := s.prefixVal, s.m
	oldK := s.k
	var up *upstream
	for up == nil {
		up = mc.srv.account(u).join(s, l)
	}
	s.name, s.acct, s.up = u.Name, up.acct, up
	s.authorized = false
	mc.mustRelay = s.prefixVal != oldPrefix || s.m != oldM || s.k != oldK
	up.lists[l.idx].add(mc)
	mc.up = up
	up.mu.Lock()
	pool := up.targetLocked().Pool
	up.mu.Unlock()
	s.worker = mc.srv.met.NewWorker(mc.addr, mc.rig, u.Name, up.acct.algo, pool, up.acct.divider)
	mc.log = mc.log.With().Str("session", s.id).Str("user", u.Name).Logger()
	mc.authID = append(mc.authID[:0], m.ID...)
	if up.ready.Load() {
		mc.authorized()
		return
	}
	mc.setState(stateAuthorizing)
	mc.authBy = time.Now().Add(mc.srv.cfg.authorizeWait())
}

// leaveUpstream detaches the session from its upstream for good.
func (mc *minerConn) leaveUpstream() {
	s := mc.sess
	// Job ids of different pools may collide: until this connection has
	// work from its new upstream, its shares belong to the old one.
	mc.hasWork = false
	s.lastJob = nil
	if mc.up != nil {
		mc.up.lists[mc.loop.idx].remove(mc)
		mc.up = nil
	}
	if s.up != nil {
		s.up.leave(s)
		s.up, s.acct = nil, nil
	}
	if s.worker != nil {
		s.worker.Close()
		s.worker = nil
	}
}

// authorized answers the waiting authorize and starts the work flow.
func (mc *minerConn) authorized() {
	if mc.state == stateClosed || mc.closing {
		return
	}
	s := mc.sess
	wasMining := mc.state == stateMining
	if len(mc.authID) > 0 {
		mc.replyResult(mc.authID, trueResult)
		mc.authID = mc.authID[:0]
	}
	s.authorized = true
	mc.setState(stateMining)
	if mc.mustRelay {
		if !s.xnsub {
			// Wait for mining.extranonce.subscribe, which real miners send
			// after this answer; no work until the layout is settled.
			mc.relayBy = time.Now().Add(relayWait)
			return
		}
		mc.mustRelay = false
		mc.relay()
	}
	if !wasMining {
		mc.sendWork(true)
	}
}

// relay tells the miner its new extranonce layout: mining.set_extranonce
// when it subscribed to it, otherwise it is disconnected once so that it
// comes back with its session id and gets the layout at subscribe time.
func (mc *minerConn) relay() {
	s := mc.sess
	if !s.xnsub {
		mc.log.Info().Msg("pool needs a new extranonce layout; reconnecting miner once")
		mc.drop(dropRelayout)
		return
	}
	l := mc.loop
	l.tmp = codec.AppendHexString(append(l.tmp[:0], '['), s.prefix)
	l.tmp = append(l.tmp, ',')
	l.tmp = codec.AppendUint(l.tmp, uint64(s.m))
	l.tmp = append(l.tmp, ']')
	l.wbuf = codec.AppendNotification(l.wbuf[:0], codec.MethodSetExtranonce, l.tmp)
	mc.write(l.wbuf)
}

// refit runs when the upstream's pool layout changed (a new connection or
// mining.set_extranonce): keep the layout when it still fits, otherwise
// assign a new one and tell the miner.
func (mc *minerConn) refit() {
	s := mc.sess
	up := mc.up
	if s == nil || up == nil {
		return
	}
	up.mu.Lock()
	fits := up.fitsLocked(s)
	if fits {
		s.pad = up.padLocked(s)
	} else {
		up.relayoutLocked(s)
	}
	up.mu.Unlock()
	if fits {
		return
	}
	if mc.state == stateMining && !mc.mustRelay {
		mc.relay()
		if s.xnsub {
			mc.sendWork(false) // the current job, in the new layout's padding
		}
	} else {
		mc.mustRelay = true
	}
}

func (mc *minerConn) handleSubmit(m *codec.Message) {
	l := mc.loop
	s := mc.sess
	switch {
	case s == nil:
		mc.replyError(m.ID, codec.CodeNotSubscribed, "not subscribed")
		return
	case s.up == nil:
		mc.replyError(m.ID, codec.CodeUnauthorized, "unauthorized worker")
		return
	}
	p, err := codec.SplitArray(m.Params, l.params[:0])
	l.params = p
	if err != nil || len(p) < 5 {
		mc.reject(m.ID, codec.CodeOther, "mining.submit needs [worker, job_id, extranonce2, ntime, nonce]")
		return
	}
	jobID, ntime, nonce := p[1], p[3], p[4]
	en2, err := codec.Unquote(p[2], nil)
	if err != nil || !isHex(en2) || len(en2) != 2*s.m || !isQuotedHex(jobID, 0) ||
		!isQuotedHex(ntime, 8) || !isQuotedHex(nonce, 8) {
		mc.reject(m.ID, codec.CodeOther, "malformed share: wrong extranonce2 size or non-hex field")
		return
	}
	var vbits []byte
	if len(p) >= 6 && !codec.IsNull(p[5]) {
		v, err := codec.ParseUint32Hex(p[5])
		if err != nil || v&^mc.granted != 0 {
			mc.reject(m.ID, codec.CodeOther, "version bits outside the granted mask")
			return
		}
		vbits = p[5]
	}
	up := s.up
	var j *job
	if mc.hasWork {
		j = up.jobs.Load().find(jobID)
	}
	if j == nil {
		s.worker.Rejected(metrics.ReasonStale)
		mc.replyError(m.ID, codec.CodeJobNotFound, "job not found")
		return
	}
	if !up.submit(mc, s, m.ID, jobID, en2, ntime, nonce, vbits, j.diff) {
		s.worker.Rejected(metrics.ReasonPoolError)
		mc.replyError(m.ID, codec.CodeOther, "pool not connected")
		return
	}
	s.worker.Sent(j.diff)
}

// reject answers a share the proxy itself found malformed.
func (mc *minerConn) reject(id []byte, code int, msg string) {
	if w := mc.sess.worker; w != nil {
		w.Rejected(metrics.ReasonProxyCheck)
	}
	mc.replyError(id, code, msg)
}

// isQuotedHex reports whether raw is a JSON string of hex digits (of
// exactly n digits when n > 0, any non-empty length otherwise) without
// escapes.
func isQuotedHex(raw []byte, n int) bool {
	if len(raw) < 3 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return false
	}
	in := raw[1 : len(raw)-1]
	if n > 0 && len(in) != n {
		return false
	}
	for _, c := range in {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			// Job ids are opaque to the proxy but never contain quotes or
			// backslashes; any other printable byte is fine for them.
			if n == 0 && c > ' ' && c != '"' && c != '\\' && c < 0x7f {
				continue
			}
			return false
		}
	}
	return true
}

// deliverAnswer writes a pool's answer to the share's miner.
func (mc *minerConn) deliverAnswer(ev *event) {
	if mc.state == stateClosed {
		return
	}
	id := ev.reqID()
	if ev.ok {
		mc.replyResult(id, trueResult)
		return
	}
	mc.replyError(id, int(ev.code), ev.msg)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// newSessionID returns 8 random hex digits, the size of ids real pools hand
// out (miners store them as opaque strings).
func newSessionID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
