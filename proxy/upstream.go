package proxy

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/rs/zerolog"

	"github.com/stratum-proxy/stratum-proxy/codec"
	"github.com/stratum-proxy/stratum-proxy/metrics"
	"github.com/stratum-proxy/stratum-proxy/store"
)

// pending is a share sent upstream and not yet answered.
type pending struct {
	mc        *minerConn
	worker    *metrics.Worker
	minerDiff float64 // the miner's difficulty for the share's job: its credit
	poolDiff  float64 // the pool's difficulty for the job
	sent      time.Time
	seq       uint64 // its place in the miner's answer ring
}

// upstream is one logical pool connection of an account: its members (the
// miners sharing it by extranonce prefix), the pool's work, and the
// connection manager (poolconn.go) that keeps a socket logged in to one of
// the account's targets. It outlives its sockets: redials and failover keep
// its members, whose prefixes stay valid because the pool's extranonce1
// travels in coinb1.
type upstream struct {
	// Static after construction.
	srv     *Server
	acct    *account
	loop    *loop // the loop its socket lives on and that owns its connection state
	seq     uint64
	log     zerolog.Logger
	lists   []memberList // lists[i] is owned by loop i
	passthr bool         // one member only
	proto   proto        // the pool's protocol and how members are served
	// dialect speaks the pool's protocol: its parsing state is owned by
	// the loop, its submit encoding is stateless (miner loops call it).
	dialect poolDialect

	ready  atomic.Bool // logged in (mirrors state == upReady)
	wantVR atomic.Bool // a member asked for version rolling
	jobs   atomic.Pointer[jobSet]

	mu sync.Mutex
	// Guarded by mu; the pool's fields are written only on up.loop.
	state        upState
	members      map[uint32]*session // by prefix value
	k            int                 // prefix bytes of every member
	n            int                 // the pool's extranonce2 size, 0 until known
	en1          []byte              // the pool's extranonce1, hex
	diff         float64             // pool difficulty in force
	mask         uint32              // version-rolling mask granted by the pool
	user         string              // login user of the connected target: submits carry it
	pool         string              // address of the connected target
	pending      map[uint64]*pending
	fwd          map[uint64]fwdReq // relayed miner requests awaiting the pool's answer
	sid          string            // cryptonote: the pool's session id, carried by submits
	loginLatency time.Duration     // connect to login accepted, of the last login (for the API)
	last         [relayKeep][]byte // relay: the pool's last extranonce, difficulty and work lines
	free         []*pending        // recycled pending entries
	nextID       uint64
	out          []byte // submit lines queued for the pool's socket
	spare        []byte
	armed        bool // an evFlush is queued
	// sockQueued is what the socket had not written yet (gnet's outbound
	// buffer of a pool that does not read), as of the last flush, read or
	// tick on up.loop: submits count it against MaxPoolQueue.
	sockQueued int

	// Owned by up.loop: the connection manager's state.
	conn         gnet.Conn
	connected    bool     // counted in proxy_upstreams_connected
	loggedIn     bool     // counted in proxy_pool_up
	closeReq     bool     // stop parsing; OnTraffic returns gnet.Close
	configured   bool     // this login sent mining.configure
	subscribedOK bool     // the pool answered mining.subscribe
	ending       endCause // why the proxy is ending the socket, when it is
	probing      bool
	gaveUp       bool            // logged the give-up of this outage
	refusal      string          // the pool's last reason for refusing the login
	target       int             // index into targets
	targets      []store.Account // the account's logins as of the last dial (refreshTargets)
	tried        int             // failed attempts in this round
	roundRefused int             // of which refused logins
	backoff      time.Duration
	readyAt      time.Time
	openedAt     time.Time // the socket of the login in progress was enrolled
	deadline     time.Time // login deadline
	leaveAt      time.Time // client.reconnect's wait ends
	downSince    time.Time
	nextProbe    time.Time
	lastJobAt    time.Time
	gen          uint32 // connection generation: the job id tag
	tag          []byte
	forceClean   bool
	diffResendAt time.Time // resend the current job under the new difficulty then
	invalidAt    time.Time
	invalidN     int
	wbuf         []byte
}

func newUpstream(a *account, l *loop, seq uint64, r joinReq) *upstream {
	srv := a.srv
	up := &upstream{
		srv:       srv,
		acct:      a,
		loop:      l,
		seq:       seq,
		lists:     make([]memberList, srv.cfg.loops()),
		passthr:   a.mode == ModePassthrough || r.solo || r.proto == protoRelay || r.proto == protoEthProxy,
		proto:     r.proto,
		members:   make(map[uint32]*session),
		k:         srv.cfg.prefixSize(),
		pending:   make(map[uint64]*pending),
		nextID:    firstSubmitID,
		diff:      1,
		downSince: time.Now(),
		state:     upWaiting,
	}
	switch r.proto {
	case protoRelay, protoEthProxy:
		up.dialect = &relayPool{eth: r.proto == protoEthProxy, sub: r.hello, worker: r.worker}
	case protoEthStratum:
		up.dialect = &esPool{}
	case protoCryptoNote:
		up.dialect = &cnPool{algos: r.hello}
		up.n = 1 // the top nonce byte is the proxy's to split
		up.k = up.chooseK(1)
	default:
		up.dialect = newV1Pool()
	}
	up.targets = a.targets
	up.log = srv.log.With().Str("user", a.name).Uint64("upstream", seq).Logger()
	for _, t := range a.targets {
		srv.met.PoolInUse(a.algo, t.Pool, a.divider)
	}
	return up
}

// capacityLocked is how many members the upstream may hold.
func (up *upstream) capacityLocked() int {
	if up.passthr {
		return 1
	}
	c := 1 << (8 * min(up.k, 3))
	if m := up.srv.cfg.MaxMinersPerUpstream; m > 0 && m < c {
		c = m
	}
	return c
}

// chooseK picks the prefix size for a pool extranonce2 size n, leaving
// miners at least 2 bytes (cgminer/bmminer accept extranonce2 sizes 2-8
// only) where the pool allows it.
func (up *upstream) chooseK(n int) int {
	switch up.proto {
	case protoCryptoNote:
		if up.passthr {
			return 0
		}
		return 1 // blob byte 42, 256 miners (xmrig-proxy's nicehash mode)
	case protoEthStratum:
		// n is what the pool's extranonce leaves of the 8-byte nonce: one
		// byte per miner while miners keep at least 4 (2^32 nonces a job).
		if up.passthr || n < 5 {
			return 0
		}
		return 1
	case protoRelay, protoEthProxy:
		return 0
	}
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

// fit keeps s's layout when it still fits the pool's, otherwise gives s a
// free prefix of this upstream; it reports whether s kept its layout.
func (up *upstream) fit(s *session) bool {
	up.mu.Lock()
	defer up.mu.Unlock()
	if up.fitsLocked(s) {
		s.pad = up.padLocked(s)
		return true
	}
	up.relayoutLocked(s)
	return false
}

func (up *upstream) padLocked(s *session) int {
	if up.n == 0 {
		return 0
	}
	return up.n - s.k - s.m
}

// relayoutLocked gives s a prefix of up.k bytes that no other member holds
// (the upstream's free set is the complement of members) and the rest of
// the pool's extranonce2 space, registering it as a member.
func (up *upstream) relayoutLocked(s *session) bool {
	k, m := up.k, up.srv.cfg.extranonce2Size()
	if up.n > 0 {
		m = up.n - k
	}
	v, ok := up.freePrefixLocked(k, s)
	if !ok {
		return false
	}
	if cur, ok := up.members[s.prefixVal]; ok && cur == s {
		delete(up.members, s.prefixVal)
	}
	up.srv.prefixes.release(s)
	s.setLayout(v, k, m)
	up.srv.prefixes.hold(s)
	up.members[v] = s
	s.pad = up.padLocked(s)
	return true
}

// freePrefixLocked finds a k-byte prefix value not held by another member.
// Small spaces are scanned from a random start; large ones (k >= 3) are
// sampled, since members fill only a tiny part of them.
func (up *upstream) freePrefixLocked(k int, s *session) (uint32, bool) {
	if k == 0 {
		if old, taken := up.members[0]; taken && old != s {
			return 0, false
		}
		return 0, true
	}
	space := uint64(1) << (8 * k)
	if k >= 3 {
		for range 64 {
			v := uint32(rand.Uint64N(space))
			if old, taken := up.members[v]; !taken || old == s {
				return v, true
			}
		}
		return 0, false
	}
	start := rand.Uint64N(space)
	for i := uint64(0); i < space; i++ {
		v := uint32((start + i) % space)
		if old, taken := up.members[v]; !taken || old == s {
			return v, true
		}
	}
	return 0, false
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

// onUpClose runs on up.loop once the upstream is closed for good.
func (up *upstream) onUpClose() {
	up.closeConn()
	if up.loggedIn { // no socket, but never leave a login counted
		up.loggedIn = false
		up.srv.met.PoolLogin(up.acct.algo, up.pool, up.acct.divider, -1)
	}
}

// setNLocked records the pool's extranonce2 size and reports whether the
// members' layouts must be checked again.
func (up *upstream) setNLocked(n int) bool {
	if n == up.n {
		return false
	}
	up.n = n
	up.k = up.chooseK(n)
	return len(up.members) > 0
}

// Pool events: the dialect calls these on up.loop.

// poolNotify publishes a new job. Jobs that arrive before the pool
// accepted the login are kept and handed out with the login.
func (up *upstream) poolNotify(p [][]byte, tmp []byte) error {
	up.mu.Lock()
	diff := up.diff
	en1 := up.en1
	up.mu.Unlock()
	j, err := newJob(p, en1, up.tag, diff, up.forceClean, time.Now(), tmp)
	if err != nil {
		return err
	}
	up.publish(j)
	return nil
}

// publish makes j the upstream's newest job and sends it to the members
// once the pool accepted the login (jobs before it go out with the login).
func (up *upstream) publish(j *job) {
	if up.forceClean {
		j.clean = true
	}
	up.forceClean = false
	up.diffResendAt = time.Time{}
	up.lastJobAt = j.received
	up.jobs.Store(up.jobs.Load().with(j))
	if up.loggedIn {
		up.postMembers(event{kind: evNotify, up: up, job: j})
	}
}

// poolDifficulty records the pool's new difficulty. It reaches miners with
// the next job: cgminer-family firmware applies a difficulty only at the
// next mining.notify, so when no notify follows within diffResendDelay the
// current job is sent again under it (tick).
func (up *upstream) poolDifficulty(d float64) {
	up.mu.Lock()
	up.diff = d
	up.mu.Unlock()
	up.diffResendAt = time.Now().Add(diffResendDelay)
}

// diffResendDelay is how long a new pool difficulty waits for the pool's
// own notify before the current job is resent under it. Pools send the
// notify right behind set_difficulty, not always in the same TCP segment.
const diffResendDelay = 500 * time.Millisecond

// resendJob publishes the current job again under difficulty d (a new pool
// difficulty, or a keepalive for a pool that went quiet).
func (up *upstream) resendJob(d float64, clean bool) {
	now := time.Now()
	up.lastJobAt = now
	last := up.jobs.Load().last()
	if last == nil {
		return
	}
	j := last.resent(d, clean, now)
	up.jobs.Store(up.jobs.Load().with(j))
	up.postMembers(event{kind: evNotify, up: up, job: j})
}

// poolExtranonce follows mining.set_extranonce (n < 0: size unchanged).
// Jobs of the old extranonce are dropped: their coinbase is no longer the
// pool's.
func (up *upstream) poolExtranonce(en1 []byte, n int) {
	up.mu.Lock()
	if n < 0 {
		n = up.n
	}
	up.en1 = append(up.en1[:0], en1...)
	relayout := up.setNLocked(n)
	up.mu.Unlock()
	up.newGeneration()
	if relayout {
		up.postMembers(event{kind: evRelayout, up: up})
	}
}

// askVersionRolling records that a member wants version rolling; a
// connection that logged in without asking the pool for it asks now.
func (up *upstream) askVersionRolling() {
	if !up.wantVR.Swap(true) {
		up.loop.post(event{kind: evConfigure, up: up})
	}
}

// onConfigure runs on up.loop: ask the logged-in pool for version rolling
// unless this login did already or the pool refuses mining.configure.
func (up *upstream) onConfigure() {
	if !up.loggedIn || up.configured || up.srv.noConfigure(up.pool) {
		return
	}
	up.configured = true
	up.wbuf = up.dialect.appendConfigure(up.wbuf[:0])
	up.write(up.wbuf)
}

func (up *upstream) poolVersionMask(mask uint32) {
	up.mu.Lock()
	changed := up.mask != mask
	up.mask = mask
	up.mu.Unlock()
	if changed && up.loggedIn {
		up.postMembers(event{kind: evVersionMask, up: up})
	}
}

func (up *upstream) poolMessage(line []byte) {
	up.postMembers(event{kind: evLine, up: up, line: line})
}

// invalid counts a line from the pool that was dropped, logging at most
// one line per invalidLogEvery per upstream.
func (up *upstream) invalid(method string, err error) {
	up.srv.met.PoolInvalid(up.pool, method)
	up.invalidN++
	now := time.Now()
	if now.Sub(up.invalidAt) < invalidLogEvery {
		return
	}
	up.log.Warn().Err(err).Str("method", method).Str("pool", up.pool).Int("dropped", up.invalidN).
		Msg("dropped invalid lines from the pool")
	up.invalidAt, up.invalidN = now, 0
}

const invalidLogEvery = 10 * time.Second

// write sends b to the pool socket on up.loop.
func (up *upstream) write(b []byte) {
	if up.conn != nil {
		_, _ = up.conn.Write(b)
	}
}

// postMembers posts ev to every loop that has members of up.
func (up *upstream) postMembers(ev event) {
	for _, l := range up.srv.loopSnapshot() {
		if up.lists[l.idx].n.Load() > 0 {
			l.post(ev)
		}
	}
}

// submitResult is what became of a share handed to submit.
type submitResult uint8

const (
	submitQueued       submitResult = iota
	submitNotConnected              // the pool is not logged in
	submitPoolBusy                  // the pool is not reading: too many bytes queued
)

// submit queues a miner's share for the pool. It runs on the miner's loop.
func (up *upstream) submit(mc *minerConn, s *session, seq uint64, sh *shareReq, minerDiff, poolDiff float64) submitResult {
	up.mu.Lock()
	if up.state != upReady {
		up.mu.Unlock()
		return submitNotConnected
	}
	if len(up.out)+up.sockQueued >= up.srv.cfg.maxPoolQueue() {
		up.mu.Unlock()
		return submitPoolBusy
	}
	reqID := up.nextID
	up.nextID++
	sh.pad = up.n - s.k - len(sh.en2)/2
	user := up.user
	if up.proto == protoCryptoNote {
		user = up.sid // CryptoNote submits carry the pool's session id
	}
	up.out = up.dialect.appendSubmit(up.out, reqID, user, sh)

	var p *pending
	if n := len(up.free); n > 0 {
		p = up.free[n-1]
		up.free = up.free[:n-1]
	} else {
		p = new(pending)
	}
	*p = pending{mc: mc, worker: s.worker, minerDiff: minerDiff, poolDiff: poolDiff, sent: time.Now(), seq: seq}
	up.pending[reqID] = p
	wake := !up.armed
	up.armed = true
	up.mu.Unlock()
	if wake {
		up.loop.post(event{kind: evFlush, up: up})
	}
	return submitQueued
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
	up.noteSocketQueue()
}

// noteSocketQueue records how much the pool socket has not written yet. It
// runs on up.loop.
func (up *upstream) noteSocketQueue() {
	n := 0
	if up.conn != nil {
		n = up.conn.OutboundBuffered()
	}
	up.mu.Lock()
	up.sockQueued = n
	up.mu.Unlock()
}

// poolAnswer routes the pool's answer to share request id.
func (up *upstream) poolAnswer(id uint64, ok bool, code int, msg string) {
	up.mu.Lock()
	p := up.pending[id]
	delete(up.pending, id)
	up.mu.Unlock()
	if p == nil {
		return // answered already (timeout) or not ours
	}
	if ok {
		up.srv.met.ShareRTT(time.Since(p.sent))
		p.worker.PoolAccepted(p.poolDiff)
		up.answer(p, true, 0, "", 0)
		return
	}
	reason := reasonForCode(code)
	p.worker.PoolRejected(reason)
	up.answer(p, false, code, msg, reason)
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

// answer counts a share's outcome on the miner's side (credited at the
// miner's difficulty) and routes the answer to the miner's loop.
func (up *upstream) answer(p *pending, ok bool, code int, msg string, reason metrics.Reason) {
	if ok {
		p.worker.Accepted(p.minerDiff)
	} else {
		p.worker.Rejected(reason)
	}
	p.mc.loop.post(event{kind: evAnswer, mc: p.mc, ok: ok, code: int32(code), seq: p.seq, msg: msg})
	up.mu.Lock()
	*p = pending{}
	up.free = append(up.free, p)
	up.mu.Unlock()
}

// expirePending answers shares the pool left unanswered.
func (up *upstream) expirePending(now time.Time) {
	timeout := up.srv.cfg.shareTimeout()
	var late []*pending
	up.mu.Lock()
	for id, p := range up.pending {
		if now.Sub(p.sent) > timeout {
			late = append(late, p)
			delete(up.pending, id)
		}
	}
	up.mu.Unlock()
	for _, p := range late {
		p.worker.PoolRejected(metrics.ReasonPoolTimeout) // the pool's side adds up: sent = accepted + rejected
		up.answer(p, false, codec.CodeOther, "pool timeout", metrics.ReasonPoolTimeout)
	}
}

// Fan-out handlers: each runs on loop l over l's members of up.

// fanoutNotify sends j to this loop's mining members, each preceded by
// mining.set_difficulty when the job's difficulty is not the one the miner
// was last sent.
func (up *upstream) fanoutNotify(l *loop, j *job) {
	items := up.lists[l.idx].items
	var now time.Time
	lineDiff := -1.0 // the difficulty l.dbuf holds, encoded once per value
	for _, mc := range items {
		if mc.state != stateMining || mc.mustRelay || mc.sess.lastJob == j {
			continue // not mining, or already sent j (sendWork at login)
		}
		d := j.diff
		if mc.checked {
			if now.IsZero() {
				now = time.Now()
			}
			d = mc.targetFor(j, now)
		}
		if mc.sentDiff != d {
			if d != lineDiff {
				l.dbuf = mc.dialect.appendDifficulty(l.dbuf[:0], d)
				lineDiff = d
			}
			mc.setDifficulty(d, l.dbuf)
		}
		mc.sentJob(j, d)
		mc.sess.lastJob = j
		mc.hasWork = true
		mc.write(mc.dialect.jobLine(mc, j, j.clean))
	}
	if len(items) > 0 {
		up.srv.met.NotifyFanout(time.Since(j.received))
	}
}

// fanoutLine writes line to this loop's mining members; a relay's miner
// gets its pool's lines from the authorize on (pools send work before
// they answer it).
func (up *upstream) fanoutLine(l *loop, line []byte) {
	for _, mc := range up.lists[l.idx].items {
		if mc.state == stateMining || up.passthr && mc.state == stateAuthorizing && up.proto >= protoEthProxy {
			mc.write(line)
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

// onReadyLoop runs on every loop when the upstream logged in: this loop's
// members move their series to the pool now carrying them, miners waiting
// in mining.authorize are answered, and miners already mining get the new
// connection's mask, difficulty and job.
func (up *upstream) onReadyLoop(l *loop) {
	up.mu.Lock()
	pool := up.pool
	mask := up.mask
	ready := up.state == upReady
	up.mu.Unlock()
	if !ready {
		return
	}
	items := append(l.scratch[:0], up.lists[l.idx].items...)
	for _, mc := range items {
		s := mc.sess
		if s != nil && s.worker != nil {
			s.worker = s.worker.MoveTo(pool)
		}
		switch mc.state {
		case stateAuthorizing:
			mc.updateVersionMask(mask)
			mc.authorized()
		case stateMining:
			mc.updateVersionMask(mask)
			mc.sendWork()
		}
	}
	clear(items)
	l.scratch = items[:0]
}

// onLoginFailedLoop answers this loop's miners waiting in mining.authorize
// with the pool's refusal and closes them, so that an ASIC moves on to its
// own backup pool.
func (up *upstream) onLoginFailedLoop(l *loop, reason string) {
	items := append(l.scratch[:0], up.lists[l.idx].items...)
	for _, mc := range items {
		if mc.state == stateAuthorizing {
			mc.loginFailed(reason)
		}
	}
	clear(items)
	l.scratch = items[:0]
}

// onGiveUpLoop closes this loop's miners of an upstream that has had no
// working pool for GiveUp.
func (up *upstream) onGiveUpLoop(l *loop) {
	items := append(l.scratch[:0], up.lists[l.idx].items...)
	for _, mc := range items {
		if mc.state == stateAuthorizing || mc.state == stateMining {
			mc.log.Info().Msg("no working pool for the account; closing miner")
			mc.drop(metrics.DropNoPool)
		}
	}
	clear(items)
	l.scratch = items[:0]
}

// refitLoop checks this loop's members against a changed pool layout.
func (up *upstream) refitLoop(l *loop) {
	// Iterate over a copy: a relayout may close a miner.
	items := append(l.scratch[:0], up.lists[l.idx].items...)
	for _, mc := range items {
		mc.refit()
	}
	clear(items)
	l.scratch = items[:0]
}

func appendSetDifficulty(b []byte, d float64) []byte {
	b = append(b, `{"id":null,"method":"mining.set_difficulty","params":[`...)
	b = codec.AppendFloat(b, d)
	return append(b, "]}\n"...)
}
