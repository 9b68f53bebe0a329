package proxy

import (
	"strconv"

	"github.com/stratum-proxy/stratum-proxy/codec"
	"github.com/stratum-proxy/stratum-proxy/metrics"
	"github.com/stratum-proxy/stratum-proxy/store"
)

// The line relay: one upstream per miner for the stratum variants the
// proxy does not parse (kawpow, equihash, kHeavyHash) and for ETHProxy.
// The proxy logs in with the stored account, maps request ids, reads
// difficulty and share answers for its counters, and relays every other
// line byte for byte.
//
// A stratum-family miner is answered mining.subscribe before it names its
// account, so the pool's extranonce reaches it as mining.set_extranonce
// right after the pool's own subscribe answer, before any job.

// fwdReq is a miner request relayed to the pool: its answer goes back
// under the miner's id.
type fwdReq struct {
	mc   *minerConn
	id   []byte
	work bool // eth_getWork: its answer carries a target
}

// relayPool is the pool side of a relay (eth false) or of ETHProxy.
type relayPool struct {
	eth    bool
	sub    []byte // the miner's mining.subscribe params, raw JSON
	worker string // ETHProxy worker name
	target store.Account
	msg    codec.Message
	params [][]byte
	wbuf   []byte
}

const (
	idRelaySubscribe = 1
	idRelayLogin     = 2
)

func (d *relayPool) hello(b []byte, t *store.Account, ua string, _ bool) []byte {
	d.target = *t
	if d.eth {
		return d.appendLogin(b)
	}
	params := d.sub
	if len(params) == 0 {
		params = codec.AppendStringS([]byte{'['}, ua)
		params = append(params, ']')
	}
	return codec.AppendRequest(b, []byte(strconv.Itoa(idRelaySubscribe)), codec.MethodSubscribe, params)
}

func (d *relayPool) appendLogin(b []byte) []byte {
	params := codec.AppendStringS([]byte{'['}, d.target.User)
	params = append(params, ',')
	params = codec.AppendStringS(params, d.target.Password.Reveal())
	params = append(params, ']')
	if d.eth {
		b = append(b, `{"id":`...)
		b = strconv.AppendInt(b, idRelayLogin, 10)
		b = append(b, `,"jsonrpc":"2.0","method":"eth_submitLogin","worker":`...)
		b = codec.AppendStringS(b, d.worker)
		b = append(b, `,"params":`...)
		b = append(b, params...)
		b = append(b, "}\n"...)
	} else {
		b = codec.AppendRequest(b, []byte(strconv.Itoa(idRelayLogin)), codec.MethodAuthorize, params)
	}
	clear(params) // the password does not linger in a scratch buffer
	return b
}

func (d *relayPool) appendConfigure(b []byte) []byte { return b }

// appendSubmit re-encodes a miner's submit under the pool's login: the
// first param (the worker) becomes the stored user; ETHProxy submits keep
// their params.
func (d *relayPool) appendSubmit(b []byte, id uint64, user string, sh *shareReq) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendUint(b, id, 10)
	if d.eth {
		b = append(b, `,"jsonrpc":"2.0","method":"eth_submitWork","params":`...)
		b = append(b, sh.rest...)
		return append(b, "}\n"...)
	}
	b = append(b, `,"method":"mining.submit","params":[`...)
	b = codec.AppendStringS(b, user)
	if len(sh.rest) > 0 {
		b = append(b, ',')
		b = append(b, sh.rest...)
	}
	return append(b, "]}\n"...)
}

func (d *relayPool) consume(up *upstream, buf []byte) (int, error) { return consumeLines(up, buf, d) }

func (d *relayPool) handleLine(up *upstream, line []byte) {
	m := &d.msg
	if err := codec.Decode(line, m); err != nil {
		up.invalid("undecodable", err)
		return
	}
	if len(m.Method) == 0 {
		d.handleResponse(up, m, line)
		return
	}
	switch string(m.Method) {
	case codec.MethodSetExtranonce:
		up.relayKeepLine(keepExtranonce, line)
	case codec.MethodSetDifficulty, "mining.set_target":
		up.relayKeepLine(keepDifficulty, line)
	case codec.MethodNotify:
		up.relayKeepLine(keepWork, line)
	}
	switch string(m.Method) {
	case codec.MethodSetDifficulty:
		if p, err := codec.SplitArray(m.Params, d.params[:0]); err == nil && len(p) > 0 {
			d.params = p
			if v, err := codec.ParseFloat(p[0]); err == nil && validDifficulty(v) {
				up.setDiff(v)
			}
		}
	case "mining.set_target":
		if p, err := codec.SplitArray(m.Params, d.params[:0]); err == nil && len(p) > 0 {
			d.params = p
			if v := targetDifficulty(up.acct.algo, p[0]); v > 0 {
				up.setDiff(v)
			}
		}
	case codec.MethodNotify:
		// kawpow: [job, header, seed, target, clean, height, bits]
		if p, err := codec.SplitArray(m.Params, d.params[:0]); err == nil && len(p) == 7 && isBool(p[4]) {
			d.params = p
			if v := targetDifficulty(up.acct.algo, p[3]); v > 0 {
				up.setDiff(v)
			}
		}
	case codec.MethodReconnect:
		up.poolReconnect(0)
		return
	}
	up.relayLine(line)
}

func (d *relayPool) handleResponse(up *upstream, m *codec.Message, line []byte) {
	id, err := codec.ParseInt(m.ID)
	if err != nil {
		return // not one of ours
	}
	switch {
	case id == 0 && d.eth:
		// ETHProxy pushed work: {"id":0,"result":[header, seed, target]}.
		d.workTarget(up, m.Result)
		up.relayKeepLine(keepWork, line)
		up.relayLine(line)
	case id >= firstSubmitID:
		if d.relayAnswer(up, uint64(id), m) {
			return
		}
		// v1 pools answer true or an error; ETHProxy pools true, false
		// or an error.
		ok, code, msg := v1Verdict(m, line)
		up.poolAnswer(uint64(id), ok, code, msg)
	case id == idRelaySubscribe && !d.eth:
		if _, msg, isErr, _ := codec.ParseError(m.Error); isErr {
			up.loginRejected(string(msg))
			return
		}
		up.subscribedOK = true
		d.relayExtranonce(up, m.Result)
		d.wbuf = d.appendLogin(d.wbuf[:0])
		up.write(d.wbuf)
		clear(d.wbuf)
	case id == idRelayLogin:
		up.loginAnswer(m)
	}
}

// relayExtranonce tells the miner the pool's extranonce from its subscribe
// answer ([session, extranonce1, size?] or [null, extranonce1]).
func (d *relayPool) relayExtranonce(up *upstream, result []byte) {
	p, err := codec.SplitArray(result, d.params[:0])
	if err != nil || len(p) < 2 {
		return
	}
	d.params = p
	en, err := codec.Unquote(p[1], nil)
	if err != nil || len(en) == 0 || !isHex(en) {
		return // Kaspa pools answer [true, "EthereumStratum/1.0.0"] and send set_extranonce
	}
	params := append([]byte{'['}, p[1]...)
	if len(p) >= 3 {
		if n, err := codec.ParseInt(p[2]); err == nil && n > 0 && n <= 32 {
			params = append(params, ',')
			params = strconv.AppendInt(params, n, 10)
		}
	}
	params = append(params, ']')
	line := codec.AppendNotification(nil, codec.MethodSetExtranonce, params)
	up.relayKeepLine(keepExtranonce, line)
	up.relayLine(line)
}

// workTarget reads an ETHProxy work package's target as the difficulty.
func (d *relayPool) workTarget(up *upstream, result []byte) {
	p, err := codec.SplitArray(result, d.params[:0])
	if err != nil || len(p) < 3 {
		return
	}
	d.params = p
	if v := ethProxyDifficulty(p[2]); v > 0 {
		up.setDiff(v)
	}
}

// relayAnswer sends the answer to a relayed request back under the miner's
// id; it reports false when id is not one.
func (d *relayPool) relayAnswer(up *upstream, id uint64, m *codec.Message) bool {
	up.mu.Lock()
	f, ok := up.fwd[id]
	delete(up.fwd, id)
	up.mu.Unlock()
	if !ok {
		return false
	}
	if f.work {
		d.workTarget(up, m.Result)
	}
	b := append(make([]byte, 0, 32+len(m.Result)+len(m.Error)), `{"id":`...)
	b = append(b, f.id...)
	if d.eth {
		b = append(b, `,"jsonrpc":"2.0"`...)
	}
	b = append(b, `,"result":`...)
	if m.Result == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, m.Result...)
	}
	b = append(b, `,"error":`...)
	if m.Error == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, m.Error...)
	}
	b = append(b, "}\n"...)
	f.mc.loop.post(event{kind: evLine, up: up, mc: f.mc, line: b})
	return true
}

// setDiff records the difficulty the pool's shares are now worth.
func (up *upstream) setDiff(d float64) {
	up.mu.Lock()
	up.diff = d
	up.mu.Unlock()
}

// relayLine sends one line of the pool to the upstream's miner as it came.
func (up *upstream) relayLine(line []byte) {
	b := make([]byte, 0, len(line)+1)
	b = append(b, line...)
	if len(b) == 0 || b[len(b)-1] != '\n' {
		b = append(b, '\n')
	}
	up.postMembers(event{kind: evLine, up: up, line: b})
}

// forward relays a miner's request other than a share to the pool under a
// proxy id; the answer comes back under the miner's id.
func (up *upstream) forward(mc *minerConn, id []byte, method, params []byte, eth bool) bool {
	up.mu.Lock()
	if up.state != upReady && up.state != upHandshake || len(up.out)+up.sockQueued >= up.srv.cfg.maxPoolQueue() {
		up.mu.Unlock()
		return false
	}
	reqID := up.nextID
	up.nextID++
	up.out = append(up.out, `{"id":`...)
	up.out = strconv.AppendUint(up.out, reqID, 10)
	if eth {
		up.out = append(up.out, `,"jsonrpc":"2.0"`...)
	}
	up.out = append(up.out, `,"method":`...)
	up.out = codec.AppendString(up.out, method)
	up.out = append(up.out, `,"params":`...)
	if len(params) == 0 {
		up.out = append(up.out, "[]"...)
	} else {
		up.out = append(up.out, params...)
	}
	up.out = append(up.out, "}\n"...)
	if up.fwd == nil {
		up.fwd = make(map[uint64]fwdReq)
	}
	up.fwd[reqID] = fwdReq{mc: mc, id: append([]byte(nil), id...), work: string(method) == "eth_getWork"}
	wake := !up.armed
	up.armed = true
	up.mu.Unlock()
	if wake {
		up.loop.post(event{kind: evFlush, up: up})
	}
	return true
}

// relayMiner is the miner side of the relay and of ETHProxy: after the
// login the miner's lines go to its own upstream.
type relayMiner struct {
	eth bool
}

func (relayMiner) jobLine(mc *minerConn, j *job, clean bool) []byte { return nil }
func (relayMiner) appendDifficulty(b []byte, d float64) []byte      { return b }

func (r *relayMiner) appendAnswer(b, id []byte, ok bool, code int, msg string) []byte {
	if !r.eth {
		return v1Miner{}.appendAnswer(b, id, ok, code, msg)
	}
	if id == nil {
		id = nullID
	}
	b = append(b, `{"id":`...)
	b = append(b, id...)
	if ok {
		return append(b, `,"jsonrpc":"2.0","result":true}`+"\n"...)
	}
	b = append(b, `,"jsonrpc":"2.0","result":false,"error":{"code":`...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, `,"message":`...)
	b = codec.AppendStringS(b, msg)
	return append(b, "}}\n"...)
}

func (r *relayMiner) handleLine(mc *minerConn, line []byte) {
	m, ok := mc.request(line)
	if !ok {
		return
	}
	switch string(m.Method) {
	case "eth_submitLogin":
		mc.ethLogin(m, line)
		return
	case codec.MethodSubscribe:
		if mc.up == nil {
			v1Miner{}.handleLine(mc, line)
			return
		}
	case codec.MethodAuthorize:
		if mc.up == nil {
			mc.handleAuthorize(m)
			return
		}
		mc.replyResult(m.ID, trueResult) // the pool login is the proxy's
		return
	case codec.MethodSubmit, "eth_submitWork":
		mc.relaySubmit(m)
		return
	}
	if mc.up == nil || mc.state != stateMining && mc.state != stateAuthorizing {
		switch string(m.Method) {
		case codec.MethodExtranonceSubscribe, codec.MethodSuggestDifficulty:
			mc.replyResult(m.ID, trueResult)
		default:
			mc.replyError(m.ID, codec.CodeUnauthorized, "not logged in")
		}
		return
	}
	if !mc.up.forward(mc, m.ID, m.Method, m.Params, r.eth) {
		mc.replyError(m.ID, codec.CodeOther, "pool not connected")
	}
}

// relaySubmit counts a relayed share and sends it to the pool; its answer
// comes back in submit order through the answer ring.
func (mc *minerConn) relaySubmit(m *codec.Message) {
	s := mc.sess
	seq, ok := mc.beginSubmit(m.ID, "unauthorized worker")
	if !ok {
		return
	}
	sh := &mc.loop.share
	*sh = shareReq{}
	if mc.family == famEthProxy {
		if len(m.Params) < 2 || m.Params[0] != '[' {
			mc.reject(seq, metrics.ReasonProxyCheck, codec.CodeOther, "eth_submitWork needs [nonce, header, mix]")
			return
		}
		sh.rest = m.Params
	} else {
		p, err := codec.SplitArray(m.Params, mc.loop.params[:0])
		mc.loop.params = p
		if err != nil || len(p) < 2 {
			mc.reject(seq, metrics.ReasonProxyCheck, codec.CodeOther, "mining.submit needs [worker, job_id, ...]")
			return
		}
		rest := mc.loop.tmp[:0]
		for i, e := range p[1:] {
			if i > 0 {
				rest = append(rest, ',')
			}
			rest = append(rest, e...)
		}
		mc.loop.tmp = rest
		sh.rest = rest
	}
	d := s.up.diffNow()
	s.worker.Sent(d)
	mc.forward(seq, sh, d, d)
	*sh = shareReq{}
}

// ethLogin handles eth_submitLogin: the wallet is an issued name (rig
// after a dot, or the "worker" field).
func (mc *minerConn) ethLogin(m *codec.Message, line []byte) {
	l := mc.loop
	p, err := codec.SplitArray(m.Params, l.params[:0])
	l.params = p
	if err != nil || len(p) < 1 {
		mc.replyError(m.ID, codec.CodeInvalidParams, "eth_submitLogin needs [wallet, password]")
		return
	}
	if mc.up != nil {
		mc.replyResult(m.ID, trueResult)
		return
	}
	full, err := codec.Unquote(p[0], nil)
	if err != nil {
		mc.replyError(m.ID, codec.CodeInvalidParams, "eth_submitLogin wallet must be a string")
		return
	}
	worker := ""
	if raw, ok := codec.ObjectField(line, "worker"); ok {
		if w, err := codec.Unquote(raw, nil); err == nil {
			worker = string(w)
		}
	}
	mc.login(m.ID, full, worker)
}

// relayJoinReq asks for a relay's upstream of its own, subscribed with the
// miner's own subscribe params and logged in with its rig as the worker.
func (mc *minerConn) relayJoinReq() joinReq {
	r := joinReq{solo: true}
	if mc.sess != nil {
		r.hello = mc.sess.subParams
	}
	r.worker = mc.rig
	return r
}

func isBool(raw []byte) bool { return string(raw) == "true" || string(raw) == "false" }

// The pool lines a relay keeps for a miner that restores its session.
const (
	keepExtranonce = iota
	keepDifficulty
	keepWork
	relayKeep
)

// relayKeepLine keeps a copy of the pool's latest line of kind k.
func (up *upstream) relayKeepLine(k int, line []byte) {
	up.mu.Lock()
	b := append(up.last[k][:0], line...)
	if len(b) == 0 || b[len(b)-1] != '\n' {
		b = append(b, '\n')
	}
	up.last[k] = b
	up.mu.Unlock()
}

// replayTo sends a restored miner the pool's latest extranonce,
// difficulty and work, in that order.
func (up *upstream) replayTo(mc *minerConn) {
	up.mu.Lock()
	var b []byte
	for _, l := range up.last {
		b = append(b, l...)
	}
	up.mu.Unlock()
	mc.write(b)
}
