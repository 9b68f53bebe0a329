package proxy

import (
	"crypto/rand"
	"encoding/hex"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/stratum-proxy/stratum-proxy/metrics"
)

// sessionRecord is the plain part of a session: what a miner gets back
// when it reconnects, with no pointers into the running process, so that
// a later store can keep it outside the process.
type sessionRecord struct {
	id        string // 16 hex digits (64 random bits)
	prefixVal uint32 // P as a number
	k, m      int    // len(P) and the miner's extranonce2 size
	name      string // the issued name it authorized with
}

// session is what survives a miner's reconnect: its record plus the
// loop-owned pointers to its account, upstream, series and last job. It
// is owned by the loop of its current connection, or by the session
// table while detached.
type session struct {
	sessionRecord
	prefix []byte // P, the extranonce1 handed to the miner
	pad    int    // N-k-m on the current upstream

	mc       *minerConn // nil while detached; guarded by sessionTable.mu
	graceSeq uint64     // guarded by sessionTable.mu: the grace entry that may expire it

	acct       *account
	up         *upstream
	worker     *metrics.Worker
	lastJob    *job
	subParams  []byte // its mining.subscribe params (raw JSON): the relay subscribes with them
	xnsub      bool   // sent mining.extranonce.subscribe
	authorized bool   // a pool login was answered for it: kept for restore
}

func (s *session) setLayout(v uint32, k, m int) {
	s.prefixVal, s.k, s.m = v, k, m
	s.prefix = s.prefix[:0]
	for i := k - 1; i >= 0; i-- {
		s.prefix = append(s.prefix, byte(v>>(8*i)))
	}
}

// newSessionID returns 16 random hex digits: 64 bits, so a detached
// session cannot be guessed (restoring one still needs an authorize with a
// name of its account).
func newSessionID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// sessionTable holds live and detached sessions by id. Only sessions that
// authorized are kept after their connection closes; they expire in the
// order they were detached (the grace period is one constant), so expiry
// pops a FIFO instead of scanning every session.
type sessionTable struct {
	mu    sync.Mutex
	byID  map[string]*session
	queue []graceEntry // detached sessions, oldest first; queue[head:] is live
	head  int
	seq   uint64
	grace int // detached sessions waiting, for Stats
}

type graceEntry struct {
	s     *session
	seq   uint64
	until time.Time
}

// newSession creates a session with a fresh id and extranonce prefix.
func (s *Server) newSession(mc *minerConn) *session {
	sess := &session{mc: mc}
	sess.setLayout(s.prefixes.alloc(), s.cfg.prefixSize(), s.cfg.extranonce2Size())
	t := &s.sess
	t.mu.Lock()
	for {
		sess.id = s.cfg.InstanceID + newSessionID()
		if _, dup := t.byID[sess.id]; !dup {
			break
		}
	}
	t.byID[sess.id] = sess
	t.mu.Unlock()
	return sess
}

// detach ends a session's connection. A session that authorized waits out
// its grace period for restore; any other one is forgotten at once, so
// connect/subscribe/close churn keeps nothing. Everything the closing loop
// does to the session happens before it is handed to the table: from then
// on another loop may own it.
func (s *Server) detach(sess *session) {
	if !sess.authorized {
		t := &s.sess
		t.mu.Lock()
		sess.mc = nil
		delete(t.byID, sess.id)
		t.mu.Unlock()
		s.forget(sess)
		return
	}
	if sess.worker != nil {
		sess.worker.SetUp(false)
	}
	s.met.SessionsInGrace(1)
	t := &s.sess
	t.mu.Lock()
	sess.mc = nil
	t.seq++
	sess.graceSeq = t.seq
	t.queue = append(t.queue, graceEntry{s: sess, seq: t.seq, until: time.Now().Add(s.cfg.sessionGrace())})
	t.grace++
	// Past the cap the oldest detached sessions go at once, so churn
	// cannot grow the table (and the upstreams it keeps) without bound.
	var evicted []*session
	for t.grace > s.cfg.maxDetached() && t.head < len(t.queue) {
		if e := t.popLocked(); e != nil {
			evicted = append(evicted, e)
		}
	}
	t.mu.Unlock()
	for _, e := range evicted {
		s.met.SessionsInGrace(-1)
		s.met.Dropped(metrics.DropRestoreFull)
		s.forget(e)
	}
}

// popLocked takes the oldest grace entry; it returns its session when the
// entry still held it detached (and forgets it in the table), nil for an
// entry a restore made stale.
func (t *sessionTable) popLocked() *session {
	e := t.queue[t.head]
	t.queue[t.head] = graceEntry{}
	t.head++
	if e.s.mc == nil && e.s.graceSeq == e.seq {
		delete(t.byID, e.s.id)
		t.grace--
		return e.s
	}
	return nil
}

// restore hands a detached session to mc, or returns nil when sid is
// unknown, expired or attached to a live connection.
func (s *Server) restore(sid string, mc *minerConn) *session {
	t := &s.sess
	t.mu.Lock()
	sess := t.byID[sid]
	if sess == nil || sess.mc != nil {
		t.mu.Unlock()
		return nil
	}
	sess.mc = mc
	sess.graceSeq = 0 // its queue entry no longer expires it
	t.grace--
	t.mu.Unlock()
	s.met.SessionsInGrace(-1)
	return sess
}

// expireSessions forgets detached sessions past their grace.
func (s *Server) expireSessions(now time.Time) {
	var gone []*session
	t := &s.sess
	t.mu.Lock()
	for t.head < len(t.queue) && !now.Before(t.queue[t.head].until) {
		if e := t.popLocked(); e != nil {
			gone = append(gone, e)
		}
	}
	if t.head > 1024 && t.head*2 > len(t.queue) {
		n := copy(t.queue, t.queue[t.head:])
		clear(t.queue[n:])
		t.queue = t.queue[:n]
		t.head = 0
	}
	t.mu.Unlock()
	for _, sess := range gone {
		s.met.SessionsInGrace(-1)
		s.forget(sess)
	}
}

// forget releases what a dead session held: its prefix, its place in its
// upstream, its series.
func (s *Server) forget(sess *session) {
	if st := s.cfg.Sessions; st != nil && sess.authorized {
		st.Delete(sess.id)
	}
	if sess.up != nil {
		sess.up.leave(sess)
		sess.up, sess.acct = nil, nil
	}
	if sess.worker != nil {
		sess.worker.Close()
		sess.worker = nil
	}
	s.prefixes.release(sess)
}

// prefixAlloc hands out extranonce prefixes at subscribe time, before the
// miner's upstream is known. For prefix sizes up to 2 bytes it counts the
// live sessions holding each value and hands out a free one, so prefixes
// do not collide until 256^k sessions are live at once (a process-wide
// counter collided after 65,536 sessions); larger spaces are sampled at
// random. A collision left over (more live sessions than values) is
// resolved when the miner joins its upstream, whose members' prefixes
// are the one constraint that matters (relayoutLocked).
type prefixAlloc struct {
	k    int
	mu   sync.Mutex
	held []uint16 // k <= 2: live sessions holding each value
	next uint32
}

func newPrefixAlloc(k int) *prefixAlloc {
	a := &prefixAlloc{k: k}
	if k <= 2 {
		a.held = make([]uint16, 1<<(8*k))
	}
	return a
}

func (a *prefixAlloc) alloc() uint32 {
	if a.held == nil {
		return uint32(mrand.Uint64N(uint64(1) << (8 * a.k)))
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	n := uint32(len(a.held))
	v := a.next % n
	for i := uint32(0); i < n; i++ {
		c := (a.next + i) % n
		if a.held[c] == 0 {
			v = c
			break
		}
	}
	a.next = v + 1
	if a.held[v] < ^uint16(0) {
		a.held[v]++
	}
	return v
}

// hold and release track a session's prefix when it changes or dies.
func (a *prefixAlloc) hold(s *session) {
	if a.held == nil || s.k != a.k {
		return
	}
	a.mu.Lock()
	if a.held[s.prefixVal] < ^uint16(0) {
		a.held[s.prefixVal]++
	}
	a.mu.Unlock()
}

func (a *prefixAlloc) release(s *session) {
	if a.held == nil || s.k != a.k || len(s.prefix) == 0 {
		return
	}
	a.mu.Lock()
	if a.held[s.prefixVal] > 0 {
		a.held[s.prefixVal]--
	}
	a.mu.Unlock()
	s.prefix = s.prefix[:0] // released once
}
