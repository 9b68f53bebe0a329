package proxy

import (
	"context"
	"errors"
	"time"

	"github.com/stratum-proxy/stratum-proxy/codec"
	"github.com/stratum-proxy/stratum-proxy/metrics"
	"github.com/stratum-proxy/stratum-proxy/store"
)

// The management side: what the HTTP API asks the running proxy. Each
// question about miners is posted to every loop as an event and answered
// on the loop that owns them, so no API request reads loop-owned state;
// the caller waits on a channel, never a loop.

// WorkerInfo is one connected miner as the management API shows it.
type WorkerInfo struct {
	ID         string    `json:"id"` // its session id
	User       string    `json:"user"`
	Rig        string    `json:"rig"`
	Pool       string    `json:"pool"`
	Algorithm  string    `json:"algorithm"`
	Dialect    string    `json:"dialect"`
	State      string    `json:"state"`
	Difficulty float64   `json:"difficulty"`
	Hashrate   float64   `json:"hashrate"`
	Accepted   uint64    `json:"accepted"`
	Rejected   uint64    `json:"rejected"`
	Since      time.Time `json:"connected_since"`
	Remote     string    `json:"remote"`
}

// PoolState is the live state of one pool address over its upstreams.
type PoolState struct {
	Up         bool    `json:"up"`        // at least one upstream logged in to it
	Upstreams  int     `json:"upstreams"` // upstreams connected to it now
	Miners     int     `json:"miners"`    // their members
	Difficulty float64 `json:"difficulty"`
	En1Size    int     `json:"extranonce1_size"`
	En2Size    int     `json:"extranonce2_size"`
	LoginMs    float64 `json:"login_latency_ms"` // connect to login accepted, the slowest of its upstreams' last logins
	LastError  string  `json:"last_error,omitempty"`
}

// errAdminTimeout: a loop did not answer in time (it is stopping).
var errAdminTimeout = errors.New("proxy: event loops did not answer in time")

const adminWait = 5 * time.Second

// adminReq is a question posted to every loop; each answers on reply.
type adminReq struct {
	op     adminOp
	arg    string
	reason string
	reply  chan adminReply
}

type adminOp uint8

const (
	opWorkers  adminOp = iota
	opKick             // close the miner whose session id is arg
	opKickUser         // close every miner of the issued name arg
)

type adminReply struct {
	workers []WorkerInfo
	n       int
}

// ask posts r to every loop and collects their answers.
func (s *Server) ask(ctx context.Context, r adminReq) ([]adminReply, error) {
	loops := s.loopSnapshot()
	r.reply = make(chan adminReply, len(loops))
	for _, l := range loops {
		l.post(event{kind: evAdmin, x: &r})
	}
	ctx, cancel := context.WithTimeout(ctx, adminWait)
	defer cancel()
	out := make([]adminReply, 0, len(loops))
	for range loops {
		select {
		case a := <-r.reply:
			out = append(out, a)
		case <-ctx.Done():
			return out, errAdminTimeout
		}
	}
	return out, nil
}

// onAdmin answers r for this loop's miners.
func (l *loop) onAdmin(r *adminReq) {
	var a adminReply
	switch r.op {
	case opWorkers:
		a.workers = make([]WorkerInfo, 0, len(l.conns))
		for _, mc := range l.conns {
			if s := mc.sess; s != nil && s.name != "" && !mc.ending() {
				a.workers = append(a.workers, mc.info())
			}
		}
	case opKick, opKickUser:
		items := append(l.scratch[:0], l.conns...)
		for _, mc := range items {
			s := mc.sess
			if s == nil || mc.ending() || (r.op == opKick && s.id != r.arg) || (r.op == opKickUser && s.name != r.arg) {
				continue
			}
			mc.kick(r.reason)
			a.n++
		}
		clear(items)
		l.scratch = items[:0]
	}
	r.reply <- a
}

func (mc *minerConn) info() WorkerInfo {
	s := mc.sess
	w := WorkerInfo{ID: s.id, User: s.name, Rig: mc.rig, Remote: mc.addr, Since: mc.opened, State: mc.state.String()}
	if up := mc.up; up != nil {
		w.Algorithm = up.acct.algo
		w.Dialect = up.proto.String()
		up.mu.Lock()
		w.Pool = up.pool
		up.mu.Unlock()
	}
	st := s.worker.Stats()
	w.Difficulty, w.Hashrate, w.Accepted, w.Rejected = mc.sentDiff, st.Speed, st.Accepted, st.Rejected
	return w
}

// kick tells a miner why (Stratum v1 client.show_message; other dialects
// have no such message) and closes it.
func (mc *minerConn) kick(reason string) {
	if _, ok := mc.dialect.(v1Miner); ok {
		l := mc.loop
		l.tmp = codec.AppendStringS(append(l.tmp[:0], '['), reason)
		l.tmp = append(l.tmp, ']')
		l.wbuf = codec.AppendNotification(l.wbuf[:0], codec.MethodShowMessage, l.tmp)
		mc.write(l.wbuf)
	}
	mc.log.Info().Str("reason", reason).Msg("closed by the operator")
	mc.drop(metrics.DropKicked)
}

// Workers lists the connected, authorized miners.
func (s *Server) Workers(ctx context.Context) ([]WorkerInfo, error) {
	rs, err := s.ask(ctx, adminReq{op: opWorkers})
	var out []WorkerInfo
	for _, r := range rs {
		out = append(out, r.workers...)
	}
	return out, err
}

// Kick closes the miner with session id id; it reports whether there was
// one.
func (s *Server) Kick(ctx context.Context, id string) (bool, error) {
	rs, err := s.ask(ctx, adminReq{op: opKick, arg: id, reason: "disconnected by the operator"})
	n := 0
	for _, r := range rs {
		n += r.n
	}
	return n > 0, err
}

// UserDeleted closes every miner of a deleted issued name, with reason,
// forgets its detached sessions and its account. It returns how many
// miners were closed.
func (s *Server) UserDeleted(ctx context.Context, name, reason string) (int, error) {
	s.acctMu.Lock()
	delete(s.accounts, name)
	s.acctMu.Unlock()
	var gone []*session
	t := &s.sess
	t.mu.Lock()
	for id, sess := range t.byID {
		if sess.mc == nil && sess.name == name && sess.graceSeq != 0 {
			delete(t.byID, id)
			sess.graceSeq = 0 // its queue entry is stale now
			t.grace--
			gone = append(gone, sess)
		}
	}
	t.mu.Unlock()
	for _, sess := range gone {
		s.met.SessionsInGrace(-1)
		s.forget(sess)
	}
	rs, err := s.ask(ctx, adminReq{op: opKickUser, arg: name, reason: reason})
	n := 0
	for _, r := range rs {
		n += r.n
	}
	return n, err
}

// Pools returns the live state of every pool address an upstream uses.
func (s *Server) Pools() map[string]PoolState {
	out := map[string]PoolState{}
	s.upMu.Lock()
	defer s.upMu.Unlock()
	for up := range s.ups {
		up.mu.Lock()
		pool, n, k, members, diff, en1 := up.pool, up.n, up.k, len(up.members), up.diff, len(up.en1)/2
		latency := up.loginLatency
		ready := up.state == upReady
		refusal := up.refusal
		up.mu.Unlock()
		if pool == "" {
			if t := up.acct.targets; len(t) > 0 {
				pool = t[0].Pool
			}
		}
		st := out[pool]
		st.Upstreams++
		st.Miners += members
		if ready {
			st.Up = true
			st.Difficulty, st.En1Size, st.En2Size = diff, en1, n-k
			st.LoginMs = max(st.LoginMs, float64(latency.Microseconds())/1000)
		}
		if refusal != "" {
			st.LastError = refusal
		}
		out[pool] = st
	}
	return out
}

// refreshTargets reloads the account's logins from the store before a
// dial, so a changed password or backup list is used at the next login.
// It reports false when the user is gone.
func (up *upstream) refreshTargets() bool {
	u, ok := up.srv.cfg.Store.User(up.acct.name)
	if !ok {
		return false
	}
	t := make([]store.Account, 0, 1+len(u.Backups))
	t = append(append(t, u.Account), u.Backups...)
	up.targets = t
	if up.target >= len(t) {
		up.target = 0
	}
	return true
}
