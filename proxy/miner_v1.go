package proxy

import (
	"bytes"
	"time"

	"github.com/stratum-proxy/stratum-proxy/codec"
	"github.com/stratum-proxy/stratum-proxy/metrics"
	"github.com/stratum-proxy/stratum-proxy/proxy/pow"
)

// v1Miner is the Stratum v1 miner dialect (cpuminer, cgminer/bmminer
// firmware, ESP-Miner, xmrig's stratum mode for sha256/scrypt pools). It
// has no state of its own: the connection's state lives in minerConn and
// its session.
type v1Miner struct{}

func (v1Miner) jobLine(mc *minerConn, j *job, clean bool) []byte { return j.line(mc.sess.pad, clean) }

func (v1Miner) appendDifficulty(b []byte, d float64) []byte { return appendSetDifficulty(b, d) }

func (v1Miner) appendAnswer(b, id []byte, ok bool, code int, msg string) []byte {
	if ok {
		if id == nil || codec.IsNull(id) {
			return b
		}
		return codec.AppendResult(b, id, trueResult)
	}
	if id == nil {
		id = nullID
	}
	return codec.AppendError(b, id, code, msg)
}

func (v1Miner) handleLine(mc *minerConn, line []byte) {
	l := mc.loop
	m, ok := mc.request(line) // a line without method answers our requests (client.get_version...)
	if !ok {
		return
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
			mc.sendWork()
		}
	case codec.MethodSuggestDifficulty:
		if p, err := codec.SplitArray(m.Params, l.params[:0]); err == nil && len(p) > 0 {
			l.params = p
			if d, err := codec.ParseFloat(p[0]); err == nil {
				mc.suggestDifficulty(d)
			}
		}
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

// badLine counts a line the proxy refused; too many in a row drop the
// miner with reason.
func (mc *minerConn) badLine(reason string) {
	if mc.badLines++; mc.badLines > maxBadLines {
		mc.drop(reason)
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
		if string(name) == "minimum-difficulty" && len(p) > 1 {
			// BIP310: a floor for this miner's difficulty.
			if raw, ok := codec.ObjectField(p[1], "minimum-difficulty.value"); ok {
				if d, err := codec.ParseFloat(raw); err == nil && validDiff(d) {
					mc.minDiff = d
					res = append(res, `"minimum-difficulty":true`...)
					continue
				}
			}
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
			up.askVersionRolling()
			up.mu.Lock()
			if up.state == upReady {
				allowed = up.mask
			}
			up.mu.Unlock()
		}
		// bmminer with AsicBoost drops the connection unless the answer
		// has version-rolling:true and a mask, even an empty one.
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
	if mc.subscribeSession(m, 1) {
		mc.answerSubscribe(m.ID, m.Params)
	}
}

// answerSubscribe answers mining.subscribe with the session's id and
// extranonce layout.
func (mc *minerConn) answerSubscribe(id, params []byte) {
	if e, ok := mc.dialect.(esMiner); ok {
		e.answerSubscribe(mc, id, params)
		return
	}
	l := mc.loop
	s := mc.sess
	s.subParams = append(s.subParams[:0], params...)

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
	mc.replyResult(id, res)
	if mc.state == stateConnected {
		mc.setState(stateSubscribed)
	}
}

// resume re-attaches a restored session's upstream to this connection,
// once it authorized with a name of its account.
func (mc *minerConn) resume() {
	s := mc.sess
	up := s.up
	switch up.proto {
	case protoRelay, protoEthProxy:
		if _, ok := mc.dialect.(*relayMiner); !ok {
			mc.dialect = &relayMiner{eth: up.proto == protoEthProxy}
		}
		mc.replay = true // the pool's extranonce, difficulty and work again
	}
	fits := up.fit(s)
	mc.mustRelay = mc.mustRelay || !fits
	mc.startDifficulty(up.acct)
	up.lists[mc.loop.idx].add(mc)
	mc.up = up
	if mc.versionReq != 0 {
		up.askVersionRolling()
	}
	if s.worker != nil {
		s.worker.SetUp(true)
		up.mu.Lock()
		pool := up.pool
		up.mu.Unlock()
		if pool != "" {
			s.worker = s.worker.MoveTo(pool) // the pool may have changed while it was away
		}
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
	mc.login(m.ID, full, "")
}

// maxEarlyAuth bounds the authorizes one connection may have waiting.
const maxEarlyAuth = 4

// login authorizes the connection as the issued name in full ("name" or
// "name.rig"; rig, when set, names the rig instead) and joins an upstream
// of the name's account in the protocol the miner's dialect and the
// account's algorithm call for. The answer (id) waits for the pool login.
func (mc *minerConn) login(id, full []byte, rig string) {
	l := mc.loop
	name, rigB := full, []byte(nil)
	if i := bytes.IndexByte(full, '.'); i >= 0 {
		name, rigB = full[:i], full[i+1:]
	}
	if rig == "" {
		rig = string(rigB)
	}
	u, ok := mc.srv.cfg.Store.User(string(name))
	if !ok {
		mc.replyError(id, codec.CodeUnauthorized, "unknown user")
		mc.log.Info().Str("user", truncate(string(name), 64)).Msg("unknown user, closing")
		mc.srv.met.Dropped(dropUnknownUser)
		mc.setState(stateClosing) // onTraffic closes after the answer is flushed
		return
	}
	fam := mc.family
	if fam == famUnknown {
		fam = famStratum
	}
	acct := mc.srv.account(u)
	pr, err := protoFor(acct.algo, acct.dialects, fam)
	if err != nil {
		mc.replyError(id, codec.CodeOther, err.Error())
		mc.log.Info().Str("user", u.Name).Err(err).Msg("dialect mismatch, closing")
		mc.srv.met.Dropped(metrics.DropDialect)
		mc.setState(stateClosing)
		return
	}
	s := mc.ensureSession()
	now := time.Now()
	if s.up != nil && s.name != u.Name && mc.up != nil {
		// A live connection moving to another account: each move opens
		// pool logins, so moves are rate limited per connection.
		if !mc.lastSwitch.IsZero() && now.Sub(mc.lastSwitch) < mc.srv.cfg.accountSwitchInterval() {
			mc.replyError(id, codec.CodeUnauthorized, "account switch too fast")
			mc.badLine(metrics.DropAccountSwitch)
			return
		}
	}
	mc.rig = truncate(rig, 64)
	mc.srv.cfg.Store.Touch(u.Name, now)
	if len(mc.authID) > 0 {
		// An earlier authorize still waits for the pool: it is answered
		// with this one, never dropped.
		if len(mc.authEarly) >= maxEarlyAuth {
			mc.replyError(mc.authEarly[0], codec.CodeOther, "too many authorize requests waiting")
			mc.authEarly = mc.authEarly[1:]
		}
		mc.authEarly = append(mc.authEarly, append([]byte(nil), mc.authID...))
	}
	mc.authID = append(mc.authID[:0], id...)

	if s.up != nil && s.name == u.Name {
		// The same account: a restored session resumes, a repeated
		// authorize is answered as before.
		if mc.up == nil {
			mc.resume()
			mc.log = mc.log.With().Str("user", s.name).Logger()
		}
		mc.waitForPool()
		return
	}
	if s.up != nil {
		// Another account: leave the old upstream for that name's pool.
		mc.leaveUpstream()
		mc.lastSwitch = now
	}
	req := joinReq{proto: pr, wantVR: mc.versionReq != 0}
	switch pr {
	case protoRelay, protoEthProxy:
		req = mc.relayJoinReq()
		req.proto = pr
		if _, ok := mc.dialect.(*relayMiner); !ok {
			mc.dialect = &relayMiner{eth: pr == protoEthProxy}
		}
	case protoCryptoNote:
		req.solo = !mc.cnShare
		req.hello = mc.cnAlgos
	}
	oldPrefix, oldM, oldK := s.prefixVal, s.m, s.k
	var up *upstream
	for up == nil {
		up = mc.srv.account(u).join(s, l, req)
	}
	s.name, s.acct, s.up = u.Name, up.acct, up
	mc.startDifficulty(up.acct)
	mc.mustRelay = pr == protoV1 && (s.prefixVal != oldPrefix || s.m != oldM || s.k != oldK)
	up.lists[l.idx].add(mc)
	mc.up = up
	up.mu.Lock()
	pool := up.pool
	up.mu.Unlock()
	if pool == "" {
		pool = up.acct.targets[0].Pool
	}
	s.worker = mc.srv.met.NewWorker(mc.addr, mc.rig, u.Name, up.acct.algo, pool, up.acct.divider)
	mc.log = mc.log.With().Str("session", s.id).Str("user", u.Name).Logger()
	mc.waitForPool()
}

// waitForPool answers the waiting authorize now when the upstream is
// logged in, otherwise when it logs in (evUpReady), when every pool
// refused it (evLoginFailed) or after AuthorizeWait.
func (mc *minerConn) waitForPool() {
	if mc.up.ready.Load() || mc.state == stateMining {
		mc.authorized()
		return
	}
	mc.setState(stateAuthorizing)
	mc.authBy = time.Now().Add(mc.srv.cfg.authorizeWait())
}

// leaveUpstream detaches the session from its upstream for good.
func (mc *minerConn) leaveUpstream() {
	s := mc.sess
	// Job ids are per upstream connection: until this connection has work
	// from its new upstream, its shares are stale.
	mc.hasWork = false
	s.lastJob = nil
	mc.jobDiffs = [len(mc.jobDiffs)]jobDiff{}
	mc.aliases = [len(mc.aliases)]jobAlias{}
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
	if mc.ending() {
		return
	}
	s := mc.sess
	wasMining := mc.state == stateMining
	if len(mc.authID) > 0 {
		if cn, ok := mc.dialect.(cnMiner); ok {
			if !cn.loginAnswer(mc) {
				return // the pool is not there: told so and closed
			}
			// The answer carried the job: xmrig closes the connection
			// when the job it has is pushed again.
			wasMining = true
		} else {
			for _, id := range mc.authEarly {
				mc.replyResult(id, trueResult)
			}
			mc.replyResult(mc.authID, trueResult)
		}
		mc.authID, mc.authEarly = mc.authID[:0], nil
	}
	if !s.authorized {
		s.authorized = true
		mc.saveSession(mc.srv.cfg.sessionGrace())
	}
	mc.setState(stateMining)
	if up := mc.up; up != nil && up.passthr && (up.proto == protoRelay || up.proto == protoEthProxy) {
		if mc.replay {
			mc.replay = false
			up.replayTo(mc)
		}
		return // the pool's own lines are the work
	}
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
	if up := mc.up; up != nil && up.ready.Load() {
		up.mu.Lock()
		mask := up.mask
		up.mu.Unlock()
		mc.updateVersionMask(mask) // the pool's grant, before work under it
	}
	if !wasMining || !mc.hasWork {
		mc.sendWork()
	}
}

// loginFailed answers the waiting authorize with the pool's refusal and
// closes the miner.
func (mc *minerConn) loginFailed(reason string) {
	if mc.ending() {
		return
	}
	if len(mc.authID) > 0 {
		for _, id := range mc.authEarly {
			mc.replyError(id, codec.CodeUnauthorized, reason)
		}
		mc.replyError(mc.authID, codec.CodeUnauthorized, reason)
		mc.authID, mc.authEarly = mc.authID[:0], nil
	}
	mc.log.Info().Str("reason", reason).Msg("every pool of the account refused the login; closing miner")
	mc.drop(metrics.DropPoolLogin)
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
	if up.proto != protoV1 {
		mc.refitAlt()
		return
	}
	if up.fit(s) {
		return
	}
	mc.hasWork = false // jobs in the old padding are gone
	if mc.state == stateMining && !mc.mustRelay {
		mc.relay()
		if s.xnsub {
			mc.sendWork() // the current job, in the new layout's padding
		}
	} else {
		mc.mustRelay = true
	}
}

func (mc *minerConn) handleSubmit(m *codec.Message) {
	l := mc.loop
	s := mc.sess
	seq, ok := mc.beginSubmit(m.ID, "unauthorized worker")
	if !ok {
		return
	}
	p, err := codec.SplitArray(m.Params, l.params[:0])
	l.params = p
	if err != nil || len(p) < 5 {
		mc.reject(seq, metrics.ReasonProxyCheck, codec.CodeOther, "mining.submit needs [worker, job_id, extranonce2, ntime, nonce]")
		return
	}
	jobID, ntime, nonce := p[1], p[3], p[4]
	en2, err := codec.Unquote(p[2], nil)
	if err != nil || !isHex(en2) || len(en2) != 2*s.m || !isQuotedHex(jobID, 0) ||
		!isQuotedHex(ntime, 8) || !isQuotedHex(nonce, 8) {
		mc.reject(seq, metrics.ReasonProxyCheck, codec.CodeOther, "malformed share: wrong extranonce2 size or non-hex field")
		return
	}
	var vbits []byte
	var v uint32
	if len(p) >= 6 && !codec.IsNull(p[5]) {
		v, err = codec.ParseUint32Hex(p[5])
		if err != nil || v&^mc.granted != 0 {
			mc.reject(seq, metrics.ReasonProxyCheck, codec.CodeOther, "version bits outside the granted mask")
			return
		}
		vbits = p[5]
	}
	var j *job
	if mc.hasWork {
		if j = s.up.jobs.Load().find(jobID); j == nil {
			j = mc.aliasJob(jobID)
		}
	}
	if j == nil {
		mc.reject(seq, metrics.ReasonStale, codec.CodeJobNotFound, "job not found")
		return
	}
	target := mc.diffFor(j)
	s.worker.Sent(target)
	sh := &l.share
	*sh = shareReq{jobID: j.poolID, prefix: s.prefix, en2: en2, ntime: ntime, nonce: nonce, vbits: vbits}
	switch {
	case !mc.checked:
		mc.forward(seq, sh, target, j.diff)
	case mc.algo != algoSHA256d:
		in := shareIn{prefix: s.prefix, en2: en2, pad: s.pad, ntime: ntime, nonce: nonce, vbits: v, mask: mc.granted}
		mc.checkOffLoop(seq, j, &in, sh, target)
	default:
		in := shareIn{prefix: s.prefix, en2: en2, pad: s.pad, ntime: ntime, nonce: nonce, vbits: v, mask: mc.granted}
		d, key, err := l.hasher.shareDifficulty(j, j.check, mc.algo, &in)
		mc.judge(seq, j, sh, target, d, &key, err)
	}
	*sh = shareReq{}
}

// reject answers a share the proxy refused itself and counts it.
func (mc *minerConn) reject(seq uint64, reason metrics.Reason, code int, msg string) {
	if w := mc.sess.worker; w != nil {
		w.Rejected(reason)
	}
	mc.answer(seq, false, code, msg)
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
