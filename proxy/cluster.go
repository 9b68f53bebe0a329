package proxy

import (
	"context"
	"time"

	"github.com/stratum-proxy/stratum-proxy/codec"
	"github.com/stratum-proxy/stratum-proxy/metrics"
)

// Sessions across the instances of a cluster. With Config.Sessions set,
// every authorized session's record is saved to the shared store (and
// saved again when its miner leaves, with its last difficulty), and
// deleted when its grace ends here. A miner that subscribes here with a
// session id this instance does not know is looked up in the store off
// the loop; while the lookup runs, its later lines wait in order. A record
// found gives it the same extranonce prefix and extranonce2 size and its
// last difficulty; it still has to authorize with a name of its account,
// and joins an upstream of this instance (its own pool login, so its own
// pool extranonce1: two instances never share coinbase space), keeping
// its prefix when that is free there.

// remoteLookupTimeout bounds a lookup in the cluster's session store.
const remoteLookupTimeout = 2 * time.Second

// maxHeldLines bounds the lines a miner may send while its session is
// looked up.
const maxHeldLines = 32

// restoreResult is a finished lookup, posted to the miner's loop.
type restoreResult struct {
	rec   SessionRecord
	found bool
	local string // a session of this instance its old connection let go of
	subID []byte
	sub   []byte
}

// takeover asks the loop of a session's old connection to let it go.
type takeover struct {
	old  *minerConn
	sess *session
	to   *minerConn
	r    *restoreResult
}

// takeOver handles a miner that subscribes with the id of a session whose
// old connection is still open here: a miner behind NAT whose connection
// died silently comes back before the proxy notices. The old connection
// is closed on its loop (the session goes to the grace table) and the new
// one restores the session there; its lines wait meanwhile (a session
// that had not authorized yet is forgotten on close: the new connection
// then asks the cluster's store again, or starts afresh). The new
// connection must still authorize with a name of the account. It reports
// false when there is no such session.
func (mc *minerConn) takeOver(id, params []byte, sid string) bool {
	t := &mc.srv.sess
	t.mu.Lock()
	sess := t.byID[sid]
	var old *minerConn
	if sess != nil {
		old = sess.mc
	}
	t.mu.Unlock()
	if old == nil || old == mc {
		return false
	}
	mc.restoring = true
	r := &restoreResult{local: sid, subID: append([]byte(nil), id...), sub: append([]byte(nil), params...)}
	old.loop.post(event{kind: evTakeover, x: &takeover{old: old, sess: sess, to: mc, r: r}})
	return true
}

// onTakeover runs on the old connection's loop.
func (l *loop) onTakeover(t *takeover) {
	if old := t.old; old.sess == t.sess && old.state != stateClosed {
		old.log.Info().Msg("its session id came back on a new connection; closing the old one")
		l.srv.met.Dropped(metrics.DropTakenOver)
		l.srv.closeMiner(old) // detaches the session now, for the new connection to restore
		_ = old.c.Close()
	}
	t.to.loop.post(event{kind: evRestored, mc: t.to, x: t.r})
}

// subscribeSession gives a subscribing connection its session: the one
// its session id param (params[idx]) names, or a fresh one. It reports
// false when the subscribe is answered already (malformed params) or will
// be once the session is found.
func (mc *minerConn) subscribeSession(m *codec.Message, idx int) bool {
	l := mc.loop
	p, err := codec.SplitArray(m.Params, l.params[:0])
	l.params = p
	if err != nil {
		mc.replyError(m.ID, codec.CodeInvalidParams, "mining.subscribe params must be an array")
		return false
	}
	var raw []byte
	if len(p) > idx {
		raw = p[idx]
	}
	s, pending := mc.sessionFor(m.ID, m.Params, raw)
	if pending {
		return false
	}
	if s == nil {
		s = mc.ensureSession()
	}
	mc.sess = s
	return true
}

// sessionFor finds the session a subscribe names by its session id param
// raw (nil: none): restored from the grace table (the same extranonce,
// but no work and no share until it authorizes with a name of its
// account), or pending when an open connection must let go of it first
// or the cluster's store is asked; the subscribe (id, params) is answered
// then. It returns nil, false for a fresh session.
func (mc *minerConn) sessionFor(id, params, raw []byte) (s *session, pending bool) {
	if mc.sess != nil || raw == nil {
		return nil, false
	}
	sid, err := codec.Unquote(raw, nil)
	if err != nil || len(sid) == 0 || len(sid) > 64 {
		return nil, false
	}
	if s = mc.srv.restore(string(sid), mc); s != nil {
		mc.log = mc.log.With().Str("session", s.id).Logger()
		mc.log.Debug().Msg("session restored; waiting for authorize")
		return s, false
	}
	if mc.takeOver(id, params, string(sid)) {
		return nil, true
	}
	if mc.srv.cfg.Sessions != nil && !mc.srv.sessionKnown(string(sid)) {
		// Perhaps another instance's: ask the cluster's store off the
		// loop.
		mc.restoreRemote(id, params, string(sid))
		return nil, true
	}
	return nil, false
}

// sessionKnown reports whether id is a session of this instance.
func (s *Server) sessionKnown(id string) bool {
	s.sess.mu.Lock()
	defer s.sess.mu.Unlock()
	_, ok := s.sess.byID[id]
	return ok
}

// restoreRemote looks sid up in the cluster's store and answers the
// subscribe (id, params) when it is back.
func (mc *minerConn) restoreRemote(id, params []byte, sid string) {
	mc.restoring = true
	r := &restoreResult{subID: append([]byte(nil), id...), sub: append([]byte(nil), params...)}
	store := mc.srv.cfg.Sessions
	go func() {
		ctx, cancel := context.WithTimeout(mc.srv.ctx, remoteLookupTimeout)
		defer cancel()
		rec, ok, err := store.Load(ctx, sid)
		if err != nil {
			mc.log.Debug().Err(err).Msg("cluster session lookup failed; a fresh session instead")
		}
		r.rec, r.found = rec, ok && err == nil && rec.ID == sid
		mc.loop.post(event{kind: evRestored, mc: mc, x: r})
	}()
}

// onRestored runs on the miner's loop with the lookup's result.
func (mc *minerConn) onRestored(r *restoreResult) {
	mc.restoring = false
	if mc.ending() {
		return
	}
	held := mc.held
	mc.held = nil
	if mc.sess == nil && r.local != "" {
		if s := mc.srv.restore(r.local, mc); s != nil {
			mc.sess = s
			mc.log = mc.log.With().Str("session", s.id).Logger()
			mc.log.Debug().Msg("session taken over from its old connection; waiting for authorize")
		} else if mc.srv.cfg.Sessions != nil {
			// Not kept here (it had not authorized on its old
			// connection): perhaps another instance's.
			mc.held, held = held, nil
			mc.restoreRemote(r.subID, r.sub, r.local)
			return
		} else {
			mc.ensureSession()
		}
		mc.answerSubscribe(r.subID, r.sub)
	} else if mc.sess == nil {
		if r.found && r.rec.K >= 0 && r.rec.K <= 3 && r.rec.M >= 0 && r.rec.M <= maxPad {
			mc.sess = mc.srv.adoptSession(mc, r.rec)
		}
		if mc.sess != nil {
			if r.rec.Difficulty > 0 {
				mc.suggestD = r.rec.Difficulty // its vardiff starts where it was
			}
			mc.log = mc.log.With().Str("session", mc.sess.id).Logger()
			mc.log.Info().Str("from", r.rec.Instance).Msg("session restored from another instance; waiting for authorize")
		} else {
			mc.ensureSession()
		}
		mc.answerSubscribe(r.subID, r.sub)
	}
	for _, line := range held {
		if mc.ending() || mc.restoring {
			break
		}
		mc.dialect.handleLine(mc, line)
	}
}

// adoptSession makes a session of this instance from another instance's
// record, unless the id is taken here meanwhile.
func (s *Server) adoptSession(mc *minerConn, rec SessionRecord) *session {
	sess := &session{mc: mc}
	sess.setLayout(rec.Prefix, rec.K, rec.M)
	sess.id = rec.ID
	t := &s.sess
	t.mu.Lock()
	if _, taken := t.byID[rec.ID]; taken {
		t.mu.Unlock()
		return nil
	}
	t.byID[rec.ID] = sess
	t.mu.Unlock()
	s.prefixes.hold(sess)
	return sess
}

// holdLine keeps a line that arrived while the session is looked up; past
// maxHeldLines the miner is dropped.
func (mc *minerConn) holdLine(line []byte) {
	if len(mc.held) >= maxHeldLines {
		mc.replyError(nil, codec.CodeOther, "too many requests before the subscribe answer")
		mc.drop(dropBadInput)
		return
	}
	mc.held = append(mc.held, append([]byte(nil), line...))
}

// saveSession writes an authorized session's record to the cluster's
// store (a queued write: it does not block the loop).
func (mc *minerConn) saveSession(ttl time.Duration) {
	st := mc.srv.cfg.Sessions
	s := mc.sess
	if st == nil || s == nil || !s.authorized || s.name == "" {
		return
	}
	rec := SessionRecord{ID: s.id, Prefix: s.prefixVal, K: s.k, M: s.m, Name: s.name,
		Difficulty: mc.sentDiff, Instance: mc.srv.cfg.InstanceID}
	if mc.up != nil {
		rec.Dialect = mc.up.proto.String()
	}
	st.Save(rec, ttl)
}
