package proxy

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strconv"
	"time"

	"github.com/stratum-proxy/stratum-proxy/codec"
	"github.com/stratum-proxy/stratum-proxy/metrics"
	"github.com/stratum-proxy/stratum-proxy/store"
)

// EthereumStratum/1.0.0 (NiceHash), for ethash/etchash. The 8-byte nonce
// is the pool's extranonce followed by the miner's part. When the pool's
// extranonce leaves at least 5 bytes, miners of one account share an
// upstream: each gets the pool's extranonce plus one byte of its own (256
// per upstream) and keeps at least 4 bytes (2^32 nonces a job); otherwise
// each miner gets an upstream of its own with the pool's extranonce as it
// is. The miner learns its extranonce by mining.set_extranonce before the
// first job of each pool connection (the pool's part changes with the
// connection). Difficulty is in units of 2^32 hashes (divider 1).

const esNonceBytes = 8

var errESBadNotify = errors.New("proxy: malformed EthereumStratum mining.notify from pool")

// esPool is the EthereumStratum dialect of one pool connection.
type esPool struct {
	target store.Account
	msg    codec.Message
	params [][]byte
	tmp    []byte
	wbuf   []byte
}

func (d *esPool) hello(b []byte, t *store.Account, ua string, _ bool) []byte {
	d.target = *t
	params := codec.AppendStringS([]byte{'['}, ua)
	params = append(params, `,"EthereumStratum/1.0.0"]`...)
	return codec.AppendRequest(b, []byte(strconv.Itoa(idSubscribe)), codec.MethodSubscribe, params)
}

func (d *esPool) appendConfigure(b []byte) []byte { return b }

func (d *esPool) appendSubmit(b []byte, id uint64, user string, sh *shareReq) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, `,"method":"mining.submit","params":[`...)
	b = codec.AppendStringS(b, user)
	b = append(b, ',')
	b = append(b, sh.jobID...)
	b = append(b, ',', '"')
	b = hex.AppendEncode(b, sh.prefix)
	b = append(b, sh.nonce...)
	return append(b, `"]}`+"\n"...)
}

func (d *esPool) consume(up *upstream, buf []byte) (int, error) { return consumeLines(up, buf, d) }

func (d *esPool) handleLine(up *upstream, line []byte) {
	m := &d.msg
	if err := codec.Decode(line, m); err != nil {
		up.invalid("undecodable", err)
		return
	}
	if len(m.Method) == 0 {
		d.handleResponse(up, m, line)
		return
	}
	var err error
	switch string(m.Method) {
	case codec.MethodNotify:
		err = d.handleNotify(up, m)
	case codec.MethodSetDifficulty:
		p, perr := codec.SplitArray(m.Params, d.params[:0])
		d.params = p
		err = errBadDifficulty
		if perr == nil && len(p) > 0 {
			if v, perr := codec.ParseFloat(p[0]); perr == nil && validDifficulty(v) {
				up.poolDifficulty(v)
				err = nil
			}
		}
	case codec.MethodSetExtranonce:
		p, perr := codec.SplitArray(m.Params, d.params[:0])
		d.params = p
		err = errBadNotify
		if perr == nil && len(p) > 0 {
			if en, perr := hexParam(p[0], d.tmp[:0]); perr == nil && len(en) < 2*esNonceBytes {
				up.poolExtranonce(en, esNonceBytes-len(en)/2)
				err = nil
			}
		}
	case codec.MethodReconnect:
		up.poolReconnect(0)
	case codec.MethodShowMessage:
		up.poolMessage(codec.AppendNotification(nil, codec.MethodShowMessage, m.Params))
	}
	if err != nil {
		up.invalid(string(m.Method), err)
	}
}

func (d *esPool) handleResponse(up *upstream, m *codec.Message, line []byte) {
	id, err := codec.ParseInt(m.ID)
	if err != nil {
		return
	}
	switch {
	case id >= firstSubmitID:
		ok, code, msg := v1Verdict(m, line)
		up.poolAnswer(uint64(id), ok, code, msg)
	case id == idSubscribe:
		// [["mining.notify", session, "EthereumStratum/1.0.0"], extranonce]
		p, err := codec.SplitArray(m.Result, d.params[:0])
		d.params = p
		var en []byte
		if err == nil && len(p) >= 2 {
			en, err = hexParam(p[1], d.tmp[:0])
		}
		if err != nil || len(p) < 2 || len(en) >= 2*esNonceBytes {
			reason := "garbled EthereumStratum subscribe answer"
			if _, msg, isErr, _ := codec.ParseError(m.Error); isErr {
				reason = string(msg)
			}
			up.loginRejected(reason)
			return
		}
		up.subscribed(en, esNonceBytes-len(en)/2)
		b := codec.AppendRequest(d.wbuf[:0], []byte(strconv.Itoa(idXnSubscribe)), codec.MethodExtranonceSubscribe, []byte(`[]`))
		d.wbuf = appendV1Authorize(b[:len(b):len(b)], &d.target)
		up.write(d.wbuf)
		clear(d.wbuf)
	case id == idAuthorize:
		up.loginAnswer(m)
	}
}

func (d *esPool) handleNotify(up *upstream, m *codec.Message) error {
	p, err := codec.SplitArray(m.Params, d.params[:0])
	d.params = p
	if err != nil || len(p) < 4 || !isQuotedHex(p[0], 0) || len(p[0]) > maxJobIDLen ||
		!isQuotedHash(p[1]) || !isQuotedHash(p[2]) {
		return errESBadNotify
	}
	clean, err := codec.ParseBool(p[3])
	if err != nil {
		return errESBadNotify
	}
	up.mu.Lock()
	en := append([]byte(nil), up.en1...)
	up.mu.Unlock()
	w := &altWork{seed: append([]byte(nil), p[1]...), header: append([]byte(nil), p[2]...), en: en}
	j := newAltJob(p[0], up.tag, up.diffNow(), clean, time.Now(), w)
	up.diffResendAt = time.Time{}
	up.publish(j)
	return nil
}

// isQuotedHash reports whether raw is a JSON string of 64 hex digits,
// with or without "0x".
func isQuotedHash(raw []byte) bool {
	if len(raw) == 68 && raw[1] == '0' && (raw[2] == 'x' || raw[2] == 'X') {
		return isQuotedHex(append([]byte{'"'}, raw[3:]...), 64)
	}
	return isQuotedHex(raw, 64)
}

// esMiner is the miner side of EthereumStratum/1.0.0.
type esMiner struct{}

func (esMiner) appendDifficulty(b []byte, d float64) []byte { return appendSetDifficulty(b, d) }

func (esMiner) appendAnswer(b, id []byte, ok bool, code int, msg string) []byte {
	return v1Miner{}.appendAnswer(b, id, ok, code, msg)
}

// extranonce appends the miner's extranonce: the pool's, then its byte.
func (esMiner) extranonce(b []byte, mc *minerConn) []byte {
	up := mc.up
	if up == nil {
		return hex.AppendEncode(b, mc.sess.prefix)
	}
	up.mu.Lock()
	b = append(b, up.en1...)
	up.mu.Unlock()
	return hex.AppendEncode(b, mc.sess.prefix)
}

func (e esMiner) jobLine(mc *minerConn, j *job, clean bool) []byte {
	l := mc.loop
	b := l.wbuf[:0]
	// The job carries the pool's extranonce: no upstream lock per miner.
	l.tmp = hex.AppendEncode(append(l.tmp[:0], j.alt.en...), mc.sess.prefix)
	if !bytes.Equal(l.tmp, mc.sentEn) {
		mc.sentEn = append(mc.sentEn[:0], l.tmp...)
		b = append(b, `{"id":null,"method":"mining.set_extranonce","params":["`...)
		b = append(b, l.tmp...)
		b = append(b, `"]}`+"\n"...)
	}
	b = append(b, `{"id":null,"method":"mining.notify","params":[`...)
	b = append(b, j.id...)
	b = append(b, ',')
	b = append(b, j.alt.seed...)
	b = append(b, ',')
	b = append(b, j.alt.header...)
	if clean {
		b = append(b, ",true]}\n"...)
	} else {
		b = append(b, ",false]}\n"...)
	}
	l.wbuf = b
	return b
}

func (e esMiner) handleLine(mc *minerConn, line []byte) {
	l := mc.loop
	m, ok := mc.request(line)
	if !ok {
		return
	}
	switch string(m.Method) {
	case codec.MethodSubscribe:
		e.subscribe(mc, m)
	case codec.MethodAuthorize:
		mc.handleAuthorize(m)
	case codec.MethodSubmit:
		if mc.up != nil && mc.up.proto == protoRelay {
			mc.relaySubmit(m)
			return
		}
		e.submit(mc, m)
	case codec.MethodExtranonceSubscribe:
		mc.ensureSession().xnsub = true
		mc.replyResult(m.ID, trueResult)
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

// subscribe answers [["mining.notify", session, "EthereumStratum/1.0.0"],
// extranonce]. A third param naming a detached session restores it, with
// the extranonce it had; a fresh session's extranonce is provisional and
// set with the first job.
func (e esMiner) subscribe(mc *minerConn, m *codec.Message) {
	if mc.subscribeSession(m, 2) {
		e.answerSubscribe(mc, m.ID, m.Params)
	}
}

// answerSubscribe answers an EthereumStratum subscribe with the session's
// id and extranonce: the full one when its upstream is known here, the
// miner's prefix until then (set with the first job).
func (e esMiner) answerSubscribe(mc *minerConn, id, params []byte) {
	l := mc.loop
	s := mc.sess
	s.subParams = append(s.subParams[:0], params...)
	var en []byte
	if s.up != nil && s.up.proto == protoEthStratum {
		mc.up = s.up // for the extranonce; resume re-adds it at authorize
		en = e.extranonce(nil, mc)
		mc.up = nil
	} else {
		en = hex.AppendEncode(nil, s.prefix)
	}
	mc.sentEn = append(mc.sentEn[:0], en...)
	res := append(l.tmp[:0], `[["mining.notify",`...)
	res = codec.AppendStringS(res, s.id)
	res = append(res, `,"EthereumStratum/1.0.0"],"`...)
	res = append(res, en...)
	res = append(res, `"]`...)
	l.tmp = res
	mc.replyResult(id, res)
	if mc.state == stateConnected {
		mc.setState(stateSubscribed)
	}
}

// submit: [worker, job_id, nonce without the extranonce].
func (e esMiner) submit(mc *minerConn, m *codec.Message) {
	l := mc.loop
	s := mc.sess
	seq, ok := mc.beginSubmit(m.ID, "unauthorized worker")
	if !ok {
		return
	}
	p, err := codec.SplitArray(m.Params, l.params[:0])
	l.params = p
	if err != nil || len(p) < 3 {
		mc.reject(seq, metrics.ReasonProxyCheck, codec.CodeOther, "mining.submit needs [worker, job_id, nonce]")
		return
	}
	up := s.up
	up.mu.Lock()
	rest := esNonceBytes - len(up.en1)/2 - len(s.prefix)
	up.mu.Unlock()
	nonce, err := codec.Unquote(p[2], nil)
	if err != nil || !isHex(nonce) || len(nonce) != 2*rest {
		mc.reject(seq, metrics.ReasonProxyCheck, codec.CodeOther, "malformed nonce: want the nonce after your extranonce, "+strconv.Itoa(2*rest)+" hex digits")
		return
	}
	var j *job
	if mc.hasWork {
		j = up.jobs.Load().find(p[1])
	}
	if j == nil || j.alt == nil {
		mc.reject(seq, metrics.ReasonStale, codec.CodeJobNotFound, "job not found")
		return
	}
	var key shareKey
	key.n = uint8(copy(key.en2[:], s.prefix))
	if _, err := hex.Decode(key.en2[key.n:], nonce); err != nil {
		mc.reject(seq, metrics.ReasonProxyCheck, codec.CodeOther, "malformed nonce")
		return
	}
	key.n += uint8(len(nonce) / 2)
	if j.check.dups.add(&key) {
		mc.reject(seq, metrics.ReasonDuplicate, codec.CodeDuplicate, "duplicate share")
		return
	}
	d := mc.diffFor(j)
	s.worker.Sent(d)
	sh := &l.share
	*sh = shareReq{jobID: j.poolID, prefix: s.prefix, nonce: nonce}
	mc.forward(seq, sh, d, j.diff)
	*sh = shareReq{}
}

// refitAlt runs when an EthereumStratum upstream's layout changed (a new
// pool connection or extranonce): the miner keeps its byte when it still
// fits and learns the new extranonce with its next job; a miner the pool
// leaves no room for reconnects and gets an upstream of its own.
func (mc *minerConn) refitAlt() {
	s, up := mc.sess, mc.up
	if up.proto != protoEthStratum {
		return
	}
	up.fit(s)
	up.mu.Lock()
	member := up.members[s.prefixVal] == s
	up.mu.Unlock()
	mc.hasWork = false
	if !member {
		mc.log.Info().Msg("pool leaves no room to share its extranonce; reconnecting miner for an upstream of its own")
		mc.drop(dropRelayout)
	}
}
