package proxy

import (
	"context"
	"encoding/hex"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/rs/zerolog"

	"github.com/stratum-proxy/stratum-proxy/codec"
	"github.com/stratum-proxy/stratum-proxy/metrics"
	"github.com/stratum-proxy/stratum-proxy/store"
)

// upState is an upstream's connection state. Transitions:
//
//	upDialing -> upHandshake   socket enrolled on the loop, subscribe sent
//	upHandshake -> upReady     the pool accepted mining.authorize
//	any -> upDown              socket closed or dial failed; a redial is scheduled
//	upDown -> upDialing        the redial timer fired
//	any -> upClosed            the last member left; never redialled
type upState uint8

const (
	upDialing upState = iota
	upHandshake
	upReady
	upDown
	upClosed
)

var upStateNames = [...]string{"dialing", "handshake", "ready", "down", "closed"}

func (s upState) String() string { return upStateNames[s] }

// Request ids the proxy uses towards a pool: the handshake has fixed small
// ids, submits count up from firstSubmitID so the two never meet.
const (
	idConfigure   = 1
	idSubscribe   = 2
	idAuthorize   = 3
	idXnSubscribe = 4
	firstSubmitID = 16
)

// pending is a share sent upstream and not yet answered.
type pending struct {
	mc     *minerConn
	worker *metrics.Worker
	diff   float64
	sent   time.Time
	idn    uint8
	id     [maxInlineID]byte
	long   string // the miner's id when longer than maxInlineID
}

// upstream is one logical pool connection of an account. It outlives its
// sockets: redials and failover to a backup pool keep its members, whose
// extranonce prefixes stay valid because the pool's extranonce1 travels in
// coinb1.
type upstream struct {
	// Static after construction.
	srv     *Server
	acct    *account
	loop    *loop // the loop its socket lives on
	seq     uint64
	log     zerolog.Logger
	lists   []memberList // lists[i] is owned by loop i
	passthr bool

	ready atomic.Bool
	jobs  atomic.Pointer[jobSet]

	mu sync.Mutex
	// Guarded by mu.
	state        upState
	members      map[uint32]*session // by prefix value
	k            int                 // prefix bytes of every member
	n            int                 // the pool's extranonce2 size, 0 until known
	en1          []byte              // the pool's extranonce1, hex
	diff         float64             // pool difficulty in force
	mask         uint32              // version-rolling mask granted by the pool
	target       int                 // index into acct.targets being used
	tried        int                 // targets tried in this round of failures
	backoff      time.Duration
	redirectWait time.Duration // client.reconnect's wait before the next dial
	nextProbe    time.Time
	pending      map[uint64]*pending
	free         []*pending // recycled pending entries
	nextID       uint64
	out, spare   []byte // submit lines queued for the pool's socket
	armed        bool   // an evFlush is queued
	everUp       bool

	// Owned by the loop.
	conn       gnet.Conn
	forceClean bool
	msg        codec.Message
	params     [][]byte
	tmp, wbuf  []byte
}

func newUpstream(a *account, l *loop, seq uint64) *upstream {
	srv := a.srv
	up := &upstream{
		srv:     srv,
		acct:    a,
		loop:    l,
		seq:     seq,
		lists:   make([]memberList, srv.cfg.loops()),
		passthr: a.mode == ModePassthrough,
		members: make(map[uint32]*session),
		k:       srv.cfg.prefixSize(),
		pending: make(map[uint64]*pending),
		nextID:  firstSubmitID,
		diff:    1,
	}
	up.log = srv.log.With().Str("user", a.name).Uint64("upstream", seq).Logger()
	return up
}

func (up *upstream) targetLocked() store.Account { return up.acct.targets[up.target] }

// capacityLocked is how many members the upstream may hold.
func (up *upstream) capacityLocked() int {
	if up.passthr {
		return 1
	}
	c := 1 << (8 * up.k)
	if m := up.srv.cfg.MaxMinersPerUpstream; m > 0 && m < c {
		c = m
	}
	return c
}

// chooseK picks the prefix size for a pool extranonce2 size n, leaving
// miners at least 2 bytes (ASICs need them) where the pool allows it.
func (up *upstream) chooseK(n int) int {
	k := up.srv.cfg.prefixSize()
	if up.passthr {
		if n >= k+2 {
			return k
		}
		return 0
	}
	if n >= k+2 {
		return k
	}
	if n >= 3 {
		return n - 2
	}
	return 1
}

// fitsLocked reports whether s's layout is valid on this upstream.
func (up *upstream) fitsLocked(s *session) bool {
	return up.n == 0 || (s.k == up.k && s.k+s.m <= up.n)
}

// tryJoin adds s as a member when its prefix is free and a layout fits,
// giving it a new prefix when the pool's extranonce2 size demands one. It
// runs on s's owning loop.
func (up *upstream) tryJoin(s *session) bool {
	up.mu.Lock()
	defer up.mu.Unlock()
	if up.state == upClosed || len(up.members) >= up.capacityLocked() {
		return false
	}
	if up.fitsLocked(s) {
		if _, taken := up.members[s.prefixVal]; !taken {
			up.members[s.prefixVal] = s
			s.pad = up.padLocked(s)
			return true
		}
	}
	return up.relayoutLocked(s)
}

func (up *upstream) padLocked(s *session) int {
	if up.n == 0 {
		return 0
	}
	return up.n - s.k - s.m
}

// relayoutLocked gives s a fresh prefix of up.k bytes and the rest of the
// pool's extranonce2 space, registering it as a member.
func (up *upstream) relayoutLocked(s *session) bool {
	k, m := up.k, up.srv.cfg.extranonce2Size()
	if up.n > 0 {
		m = up.n - k
	}
	space := uint32(1) << (8 * k)
	if k == 0 {
		space = 1
	}
	start := rand.Uint32N(space)
	for i := uint32(0); i < space; i++ {
		v := (start + i) % space
		if old, taken := up.members[v]; taken && old != s {
			continue
		}
		if cur, ok := up.members[s.prefixVal]; ok && cur == s {
			delete(up.members, s.prefixVal)
		}
		s.setLayout(v, k, m)
		up.members[v] = s
		s.pad = up.padLocked(s)
		return true
	}
	return false
}

// leave removes s; the last member to leave closes the upstream.
func (up *upstream) leave(s *session) {
	a := up.acct
	a.mu.Lock()
	up.mu.Lock()
	if cur, ok := up.members[s.prefixVal]; ok && cur == s {
		delete(up.members, s.prefixVal)
	}
	empty := len(up.members) == 0 && up.state != upClosed
	if empty {
		up.state = upClosed
		up.ready.Store(false)
	}
	up.mu.Unlock()
	if empty {
		a.removeLocked(up)
	}
	a.mu.Unlock()
	if empty {
		up.log.Debug().Msg("last miner left, closing upstream")
		up.loop.post(event{kind: evUpClose, up: up})
		up.srv.forgetUpstream(up)
	}
}

// dial connects to the current target off the event loop and enrolls the
// socket on up.loop. It runs on its own goroutine.
func (up *upstream) dial() {
	up.mu.Lock()
	if up.state == upClosed {
		up.mu.Unlock()
		return
	}
	up.state = upDialing
	t := up.targetLocked()
	up.mu.Unlock()

	d := net.Dialer{Timeout: up.srv.cfg.dialTimeout(), KeepAlive: time.Minute}
	c, err := d.DialContext(up.srv.ctx, "tcp", t.Pool)
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
		up.dialFailed(t.Pool, err)
	}
}

// dialFailed moves to the next target (failover) and schedules a redial;
// after a whole round of targets failed it backs off exponentially.
func (up *upstream) dialFailed(pool string, err error) {
	up.mu.Lock()
	if up.state == upClosed {
		up.mu.Unlock()
		return
	}
	up.state = upDown
	up.tried++
	var delay time.Duration
	if up.tried >= len(up.acct.targets) {
		up.tried = 0
		up.backoff = min(max(up.backoff*2, up.srv.cfg.backoffMin()), up.srv.cfg.backoffMax())
		delay = jitter(up.backoff)
	}
	up.target = (up.target + 1) % len(up.acct.targets)
	next := up.targetLocked().Pool
	up.mu.Unlock()
	up.log.Warn().Err(err).Str("pool", pool).Str("next", next).Dur("in", delay).Msg("pool connect failed")
	up.srv.after(delay, up.dial)
}

// jitter spreads d over [d/2, d) so that many upstreams of a dead pool do
// not redial in lockstep.
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

// onOpen runs on up.loop when the socket is enrolled: start the handshake.
func (up *upstream) onOpen(c gnet.Conn) {
	up.mu.Lock()
	if up.state == upClosed {
		// The last member left while we dialled.
		up.mu.Unlock()
		_ = up.loop.el.Close(c)
		return
	}
	up.conn = c
	up.forceClean = true
	// Jobs of an earlier connection carry its extranonce1: never reuse them.
	up.jobs.Store(nil)
	up.state = upHandshake
	reconnect := up.everUp
	pool := up.targetLocked().Pool
	up.mu.Unlock()
	up.srv.met.UpstreamsConnected(1)
	if reconnect {
		up.srv.met.UpstreamReconnect(pool)
	}
	b := up.wbuf[:0]
	b = codec.AppendRequest(b, []byte(strconv.Itoa(idConfigure)), codec.MethodConfigure,
		[]byte(`[["version-rolling"],{"version-rolling.mask":"ffffffff","version-rolling.min-bit-count":2}]`))
	params := append([]byte{'['}, codec.AppendStringS(nil, up.srv.cfg.userAgent())...)
	params = append(params, ']')
	b = codec.AppendRequest(b, []byte(strconv.Itoa(idSubscribe)), codec.MethodSubscribe, params)
	up.wbuf = b
	_, _ = c.Write(b)
	up.log.Debug().Str("pool", pool).Msg("pool connected")
}

// onClose runs on up.loop when the socket closed: fail pending shares and
// schedule the redial.
func (up *upstream) onClose(err error) {
	up.conn = nil
	up.ready.Store(false)
	up.srv.met.UpstreamsConnected(-1)
	up.mu.Lock()
	pool := up.targetLocked().Pool
	closed := up.state == upClosed
	if !closed {
		up.state = upDown
	}
	failed := up.takeAllPendingLocked()
	up.out = up.out[:0]
	up.mu.Unlock()
	up.srv.met.PoolUp(up.acct.algo, pool, up.acct.divider, false)
	for _, p := range failed {
		up.answer(p, false, codec.CodeOther, "pool connection lost", metrics.ReasonPoolError)
	}
	if closed || up.srv.ctx.Err() != nil {
		return // the last member left, or the proxy is stopping
	}
	up.log.Warn().Err(err).Str("pool", pool).Msg("pool connection lost")
	up.mu.Lock()
	var delay time.Duration
	if up.redirectWait > 0 {
		delay, up.redirectWait = up.redirectWait, 0
	} else {
		up.backoff = min(max(up.backoff*2, up.srv.cfg.backoffMin()), up.srv.cfg.backoffMax())
		delay = jitter(up.backoff)
	}
	up.mu.Unlock()
	up.srv.after(delay, up.dial)
}

func (up *upstream) takeAllPendingLocked() []*pending {
	if len(up.pending) == 0 {
		return nil
	}
	out := make([]*pending, 0, len(up.pending))
	for id, p := range up.pending {
		out = append(out, p)
		delete(up.pending, id)
	}
	return out
}

// closeConnLoop closes the socket on its loop (failback, last member gone).
func (up *upstream) closeConnLoop() {
	if up.conn != nil {
		_ = up.loop.el.Close(up.conn)
	}
}

// onTraffic decodes the pool's lines on up.loop.
func (up *upstream) onTraffic(c gnet.Conn) gnet.Action {
	buf, _ := c.Peek(-1)
	off := 0
	max := up.srv.cfg.maxLineSize()
	for off < len(buf) {
		line, n, err := codec.NextLine(buf[off:], max)
		if err != nil {
			up.log.Warn().Err(err).Msg("pool sent an overlong line; reconnecting")
			_, _ = c.Discard(len(buf))
			return gnet.Close
		}
		off += n
		if line == nil {
			break
		}
		up.handleLine(line)
	}
	_, _ = c.Discard(off)
	return gnet.None
}

func (up *upstream) handleLine(line []byte) {
	m := &up.msg
	if err := codec.Decode(line, m); err != nil {
		up.log.Warn().Err(err).Msg("bad line from pool")
		return
	}
	if len(m.Method) == 0 {
		if m.HasID() {
			up.handleResponse(m)
		}
		return
	}
	var err error
	switch string(m.Method) {
	case codec.MethodNotify:
		err = up.handleNotify(m)
	case codec.MethodSetDifficulty:
		err = up.handleSetDifficulty(m)
	case codec.MethodSetExtranonce:
		err = up.handleSetExtranonce(m)
	case codec.MethodSetVersionMask:
		err = up.handleSetVersionMask(m)
	case codec.MethodReconnect:
		up.handleReconnect(m)
	case codec.MethodShowMessage:
		up.handleShowMessage(m)
	case codec.MethodGetVersion:
		up.reply(m.ID, codec.AppendStringS(nil, up.srv.cfg.userAgent()))
	case codec.MethodPing:
		up.reply(m.ID, []byte(`"pong"`))
	default:
		if m.HasID() {
			up.wbuf = codec.AppendError(up.wbuf[:0], m.ID, codec.CodeMethodNotFound, "unknown method")
			up.write(up.wbuf)
		}
	}
	if err != nil {
		up.log.Warn().Err(err).Str("method", string(m.Method)).Msg("bad request from pool")
	}
}

func (up *upstream) reply(id, result []byte) {
	if id == nil || codec.IsNull(id) {
		return
	}
	up.wbuf = codec.AppendResult(up.wbuf[:0], id, result)
	up.write(up.wbuf)
}

func (up *upstream) write(b []byte) {
	if up.conn != nil {
		_, _ = up.conn.Write(b)
	}
}

func (up *upstream) handleResponse(m *codec.Message) {
	id, err := codec.ParseInt(m.ID)
	if err != nil {
		return // not one of ours
	}
	switch {
	case id >= firstSubmitID:
		up.handleSubmitAnswer(uint64(id), m)
	case id == idConfigure:
		up.handleConfigureAnswer(m)
	case id == idSubscribe:
		up.handleSubscribeAnswer(m)
	case id == idAuthorize:
		up.handleAuthorizeAnswer(m)
	}
}

func (up *upstream) handleConfigureAnswer(m *codec.Message) {
	var mask uint32
	if _, _, isErr, _ := codec.ParseError(m.Error); !isErr && m.Result != nil {
		if ok, found := codec.ObjectField(m.Result, "version-rolling"); found {
			if b, _ := codec.ParseBool(ok); b {
				if raw, found := codec.ObjectField(m.Result, "version-rolling.mask"); found {
					mask, _ = codec.ParseUint32Hex(raw)
				}
			}
		}
	}
	up.mu.Lock()
	changed := up.mask != mask
	up.mask = mask
	up.mu.Unlock()
	if changed {
		up.postMembers(event{kind: evVersionMask, up: up})
	}
}

func (up *upstream) handleSubscribeAnswer(m *codec.Message) {
	p, err := codec.SplitArray(m.Result, up.params[:0])
	up.params = p
	var en1 []byte
	var n int64
	if err == nil && len(p) >= 3 {
		en1, err = hexParam(p[1], up.tmp[:0])
		if err == nil {
			n, err = codec.ParseInt(p[2])
		}
	}
	if err != nil || len(p) < 3 || n < 1 || n > maxPad {
		up.log.Warn().Bytes("error", m.Error).Msg("pool refused or garbled mining.subscribe; reconnecting")
		up.closeConnLoop()
		return
	}
	up.mu.Lock()
	up.en1 = append(up.en1[:0], en1...)
	relayout := up.setNLocked(int(n))
	t := up.targetLocked()
	up.mu.Unlock()
	if relayout {
		up.postMembers(event{kind: evRelayout, up: up})
	}
	params := append(up.tmp[:0], '[')
	params = codec.AppendStringS(params, t.User)
	params = append(params, ',')
	params = codec.AppendStringS(params, t.Password.Reveal())
	params = append(params, ']')
	up.tmp = params
	b := codec.AppendRequest(up.wbuf[:0], []byte(strconv.Itoa(idAuthorize)), codec.MethodAuthorize, params)
	b = codec.AppendRequest(b, []byte(strconv.Itoa(idXnSubscribe)), codec.MethodExtranonceSubscribe, []byte(`[]`))
	up.wbuf = b
	up.write(b)
	clear(up.tmp) // the password does not linger in a scratch buffer
}

// setNLocked records the pool's extranonce2 size and reports whether the
// members' layouts must be checked again.
func (up *upstream) setNLocked(n int) bool {
	if n == up.n {
		return false
	}
	up.n = n
	k := up.chooseK(n)
	if k != up.k {
		up.k = k
	}
	return len(up.members) > 0
}

func (up *upstream) handleAuthorizeAnswer(m *codec.Message) {
	ok, _ := codec.ParseBool(m.Result)
	_, msg, isErr, _ := codec.ParseError(m.Error)
	if !ok || isErr {
		up.mu.Lock()
		pool := up.targetLocked().Pool
		up.mu.Unlock()
		up.log.Warn().Str("pool", pool).Bytes("reason", msg).Msg("pool rejected the account's login")
		up.closeConnLoop()
		return
	}
	up.mu.Lock()
	up.state = upReady
	up.everUp = true
	up.tried = 0
	up.backoff = 0
	pool := up.targetLocked().Pool
	onBackup := up.target != 0
	if onBackup {
		up.nextProbe = time.Now().Add(up.srv.cfg.failbackInterval())
	}
	up.mu.Unlock()
	up.ready.Store(true)
	up.srv.met.PoolUp(up.acct.algo, pool, up.acct.divider, true)
	up.log.Info().Str("pool", pool).Bool("backup", onBackup).Msg("pool login accepted")
	// Every loop: a miner may have joined on any loop while we logged in.
	for _, l := range up.srv.loopSnapshot() {
		l.post(event{kind: evUpReady, up: up})
	}
}

func (up *upstream) handleNotify(m *codec.Message) error {
	p, err := codec.SplitArray(m.Params, up.params[:0])
	up.params = p
	if err != nil {
		return err
	}
	up.mu.Lock()
	diff := up.diff
	en1 := up.en1
	up.mu.Unlock()
	j, err := newJob(p, en1, diff, up.forceClean, time.Now(), up.tmp[:0])
	if err != nil {
		return err
	}
	up.forceClean = false
	up.jobs.Store(up.jobs.Load().with(j))
	up.postMembers(event{kind: evNotify, up: up, job: j})
	return nil
}

func (up *upstream) handleSetDifficulty(m *codec.Message) error {
	p, err := codec.SplitArray(m.Params, up.params[:0])
	up.params = p
	if err != nil || len(p) < 1 {
		return errBadNotify
	}
	d, err := codec.ParseFloat(p[0])
	if err != nil || !(d > 0) {
		return errBadNotify
	}
	up.mu.Lock()
	up.diff = d
	up.mu.Unlock()
	up.postMembers(event{kind: evDifficulty, up: up, f: d})
	return nil
}

func (up *upstream) handleSetExtranonce(m *codec.Message) error {
	p, err := codec.SplitArray(m.Params, up.params[:0])
	up.params = p
	if err != nil || len(p) < 1 {
		return errBadNotify
	}
	en1, err := hexParam(p[0], up.tmp[:0])
	if err != nil {
		return err
	}
	up.mu.Lock()
	n := int64(up.n)
	if len(p) >= 2 {
		if n, err = codec.ParseInt(p[1]); err != nil || n < 1 || n > maxPad {
			up.mu.Unlock()
			return errBadNotify
		}
	}
	up.en1 = append(up.en1[:0], en1...)
	relayout := up.setNLocked(int(n))
	up.mu.Unlock()
	up.forceClean = true // jobs after this carry the new extranonce1
	if relayout {
		up.postMembers(event{kind: evRelayout, up: up})
	}
	return nil
}

func (up *upstream) handleSetVersionMask(m *codec.Message) error {
	p, err := codec.SplitArray(m.Params, up.params[:0])
	up.params = p
	if err != nil || len(p) < 1 {
		return errBadNotify
	}
	mask, err := codec.ParseUint32Hex(p[0])
	if err != nil {
		return err
	}
	up.mu.Lock()
	up.mask = mask
	up.mu.Unlock()
	up.postMembers(event{kind: evVersionMask, up: up})
	return nil
}

// handleReconnect follows a pool's client.reconnect by redialling the same
// configured pool address after the requested wait (capped at a minute);
// the miners stay connected to the proxy and get work when it is back. A
// pool may not redirect the proxy to an arbitrary host.
func (up *upstream) handleReconnect(m *codec.Message) {
	wait := time.Duration(0)
	if p, err := codec.SplitArray(m.Params, up.params[:0]); err == nil && len(p) >= 3 {
		up.params = p
		if w, err := codec.ParseInt(p[2]); err == nil && w > 0 {
			wait = min(time.Duration(w)*time.Second, time.Minute)
		}
	}
	up.log.Info().Dur("wait", wait).Msg("pool asked to reconnect")
	up.mu.Lock()
	up.redirectWait = max(wait, time.Millisecond)
	up.mu.Unlock()
	up.closeConnLoop()
}

func (up *upstream) handleShowMessage(m *codec.Message) {
	line := codec.AppendNotification(nil, codec.MethodShowMessage, m.Params)
	up.postMembers(event{kind: evLine, up: up, line: line})
}

// postMembers posts ev to every loop that has members of up.
func (up *upstream) postMembers(ev event) {
	for _, l := range up.srv.loopSnapshot() {
		if up.lists[l.idx].n.Load() > 0 {
			l.post(ev)
		}
	}
}

// submit queues a miner's share for the pool. en2 is the miner's
// extranonce2 (hex, validated); the pool sees prefix || en2 || padding.
// It runs on the miner's loop and returns false when the pool is not
// connected.
func (up *upstream) submit(mc *minerConn, s *session, id, jobID, en2, ntime, nonce, vbits []byte, diff float64) bool {
	up.mu.Lock()
	if up.state != upReady {
		up.mu.Unlock()
		return false
	}
	reqID := up.nextID
	up.nextID++
	t := up.targetLocked()
	b := append(up.out, `{"id":`...)
	b = strconv.AppendUint(b, reqID, 10)
	b = append(b, `,"method":"mining.submit","params":[`...)
	b = codec.AppendStringS(b, t.User)
	b = append(b, ',')
	b = append(b, jobID...)
	b = append(b, ',', '"')
	b = hex.AppendEncode(b, s.prefix)
	b = append(b, en2...)
	for i := up.n - s.k - len(en2)/2; i > 0; i-- {
		b = append(b, '0', '0')
	}
	b = append(b, '"', ',')
	b = append(b, ntime...)
	b = append(b, ',')
	b = append(b, nonce...)
	if vbits != nil {
		b = append(b, ',')
		b = append(b, vbits...)
	}
	b = append(b, "]}\n"...)
	up.out = b

	var p *pending
	if n := len(up.free); n > 0 {
		p = up.free[n-1]
		up.free = up.free[:n-1]
	} else {
		p = new(pending)
	}
	*p = pending{mc: mc, worker: s.worker, diff: diff, sent: time.Now()}
	if len(id) <= maxInlineID {
		p.idn = uint8(copy(p.id[:], id))
	} else {
		p.idn = 255
		p.long = string(id)
	}
	up.pending[reqID] = p
	wake := !up.armed
	up.armed = true
	up.mu.Unlock()
	if wake {
		up.loop.post(event{kind: evFlush, up: up})
	}
	return true
}

// flush writes the queued submits to the pool's socket on up.loop.
func (up *upstream) flush() {
	up.mu.Lock()
	b := up.out
	up.out = up.spare[:0]
	up.armed = false
	up.mu.Unlock()
	up.write(b)
	up.mu.Lock()
	up.spare = b[:0]
	up.mu.Unlock()
}

func (up *upstream) handleSubmitAnswer(id uint64, m *codec.Message) {
	up.mu.Lock()
	p := up.pending[id]
	delete(up.pending, id)
	up.mu.Unlock()
	if p == nil {
		return // answered already (timeout) or not ours
	}
	ok, _ := codec.ParseBool(m.Result)
	code, msg, isErr, _ := codec.ParseError(m.Error)
	switch {
	case ok && !isErr:
		up.srv.met.ShareRTT(time.Since(p.sent))
		up.answer(p, true, 0, "", 0)
	case isErr:
		up.answer(p, false, code, string(msg), reasonForCode(code))
	default:
		up.answer(p, false, codec.CodeOther, "rejected by pool", metrics.ReasonPoolError)
	}
}

func reasonForCode(code int) metrics.Reason {
	switch code {
	case codec.CodeJobNotFound:
		return metrics.ReasonStale
	case codec.CodeDuplicate:
		return metrics.ReasonDuplicate
	case codec.CodeLowDifficulty:
		return metrics.ReasonLowDifficulty
	}
	return metrics.ReasonPoolError
}

// answer counts a share's outcome and routes the answer to the miner's loop.
func (up *upstream) answer(p *pending, ok bool, code int, msg string, reason metrics.Reason) {
	if ok {
		p.worker.Accepted(p.diff)
	} else {
		p.worker.Rejected(reason)
	}
	p.mc.loop.post(event{kind: evAnswer, mc: p.mc, ok: ok, code: int32(code), idn: p.idn, id: p.id, long: p.long, msg: msg})
	up.mu.Lock()
	*p = pending{}
	up.free = append(up.free, p)
	up.mu.Unlock()
}

// sweep answers shares the pool left unanswered and probes the primary
// pool while on a backup. It runs on the housekeeping goroutine.
func (up *upstream) sweep(now time.Time) {
	timeout := up.srv.cfg.shareTimeout()
	var late []*pending
	up.mu.Lock()
	for id, p := range up.pending {
		if now.Sub(p.sent) > timeout {
			late = append(late, p)
			delete(up.pending, id)
		}
	}
	probe := up.state == upReady && up.target != 0 && !up.nextProbe.IsZero() && now.After(up.nextProbe)
	if probe {
		up.nextProbe = now.Add(up.srv.cfg.failbackInterval())
	}
	primary := up.acct.targets[0].Pool
	up.mu.Unlock()
	for _, p := range late {
		up.answer(p, false, codec.CodeOther, "pool timeout", metrics.ReasonPoolTimeout)
	}
	if probe {
		go up.probePrimary(primary)
	}
}

// probePrimary checks whether the primary pool accepts connections again
// and, if so, moves the upstream back to it.
func (up *upstream) probePrimary(addr string) {
	d := net.Dialer{Timeout: up.srv.cfg.dialTimeout()}
	c, err := d.DialContext(up.srv.ctx, "tcp", addr)
	if err != nil {
		return
	}
	c.Close()
	up.mu.Lock()
	if up.state != upReady || up.target == 0 {
		up.mu.Unlock()
		return
	}
	up.target = 0
	up.tried = 0
	up.backoff = 0
	up.mu.Unlock()
	up.log.Info().Str("pool", addr).Msg("primary pool is back, failing back")
	up.loop.post(event{kind: evUpClose, up: up})
}

// Fan-out handlers: each runs on loop l over l's members of up.

func (up *upstream) fanoutNotify(l *loop, j *job) {
	items := up.lists[l.idx].items
	for _, mc := range items {
		if mc.state != stateMining || mc.mustRelay {
			continue
		}
		mc.sess.lastJob = j
		mc.hasWork = true
		mc.write(j.line(mc.sess.pad, j.clean))
	}
	if len(items) > 0 {
		up.srv.met.NotifyFanout(time.Since(j.received))
	}
}

func (up *upstream) fanoutLine(l *loop, line []byte) {
	for _, mc := range up.lists[l.idx].items {
		if mc.state == stateMining {
			mc.write(line)
		}
	}
}

func (up *upstream) fanoutDifficulty(l *loop, d float64) {
	l.wbuf = appendSetDifficulty(l.wbuf[:0], d)
	for _, mc := range up.lists[l.idx].items {
		mc.sess.diff = d
		if mc.sess.worker != nil {
			mc.sess.worker.SetDifficulty(d)
		}
		if mc.state == stateMining {
			mc.write(l.wbuf)
		}
	}
}

func (up *upstream) fanoutVersionMask(l *loop) {
	up.mu.Lock()
	mask := up.mask
	up.mu.Unlock()
	for _, mc := range up.lists[l.idx].items {
		mc.updateVersionMask(mask)
	}
}

// onReadyLoop answers this loop's miners waiting for the upstream's login
// and hands them work.
func (up *upstream) onReadyLoop(l *loop) {
	for _, mc := range up.lists[l.idx].items {
		if mc.state == stateAuthorizing {
			mc.authorized()
		}
	}
}

// refitLoop checks this loop's members against a changed pool layout.
func (up *upstream) refitLoop(l *loop) {
	// Iterate over a copy: a relayout may close a miner.
	items := append([]*minerConn(nil), up.lists[l.idx].items...)
	for _, mc := range items {
		mc.refit()
	}
}

func appendSetDifficulty(b []byte, d float64) []byte {
	b = append(b, `{"id":null,"method":"mining.set_difficulty","params":[`...)
	b = codec.AppendFloat(b, d)
	return append(b, "]}\n"...)
}
