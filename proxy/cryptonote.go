package proxy

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"
	"strconv"
	"time"

	"github.com/stratum-proxy/stratum-proxy/codec"
	"github.com/stratum-proxy/stratum-proxy/metrics"
	"github.com/stratum-proxy/stratum-proxy/store"
)

// CryptoNote / xmrig (Monero and the other CryptoNote coins). Miners of
// one account share an upstream by the top byte of the 4-byte nonce at
// blob bytes 39..42, as xmrig-proxy's nicehash mode does: the proxy writes
// each miner's byte into byte 42 of the blob it sends, the miner (told
// "nicehash" in the login's extensions) keeps it and searches the lower 24
// bits, and submits are checked for the byte. 256 miners per upstream.
// Miners that do not say they speak the extensions get an upstream each.
//
// A target is a little-endian hex number: 4 bytes t mean difficulty
// 0xFFFFFFFF / t, 8 bytes 2^64 / t, in hashes (the divider of these
// algorithms is 2^32, so 2^32 * d / divider is d hashes).

// cnNonceByte is the blob offset of the nonce's top byte.
const (
	cnNonceOffset = 39
	cnNonceByte   = 42
	cnMinBlob     = 43
	cnMaxBlob     = 256
)

var (
	errCNBadJob    = errors.New("proxy: malformed cryptonote job from pool")
	errCNBadTarget = errors.New("proxy: cryptonote target is not 4 or 8 little-endian hex bytes")
)

// cnDifficulty reads a CryptoNote target (raw JSON string) as a difficulty
// in hashes.
func cnDifficulty(raw []byte) (float64, error) {
	s, err := codec.Unquote(raw, nil)
	if err != nil || !isHex(s) {
		return 0, errCNBadTarget
	}
	var b [8]byte
	switch len(s) {
	case 8:
		if _, err := hex.Decode(b[:4], s); err != nil {
			return 0, errCNBadTarget
		}
		t := binary.LittleEndian.Uint32(b[:4])
		if t == 0 {
			return 0, errCNBadTarget
		}
		return float64(0xFFFFFFFF) / float64(t), nil
	case 16:
		if _, err := hex.Decode(b[:], s); err != nil {
			return 0, errCNBadTarget
		}
		t := binary.LittleEndian.Uint64(b[:])
		if t == 0 {
			return 0, errCNBadTarget
		}
		return math.Ldexp(1, 64) / float64(t), nil
	}
	return 0, errCNBadTarget
}

// appendCNResult appends a JSON-RPC 2.0 answer as CryptoNote miners
// expect it.
func appendCNResult(b, id, result []byte) []byte {
	b = append(b, `{"id":`...)
	b = append(b, id...)
	b = append(b, `,"jsonrpc":"2.0","error":null,"result":`...)
	b = append(b, result...)
	return append(b, "}\n"...)
}

// minerTarget is the target a miner sees for pool target raw of
// difficulty d: an 8-byte target is given as the 4-byte one of (at least)
// the same difficulty when that fits, since cpuminer-multi reads only 4
// bytes of it.
func minerTarget(raw []byte, d float64) []byte {
	if len(raw) != 18 || d > 0xFFFFFFFF || d < 1 {
		return append([]byte(nil), raw...)
	}
	t := uint32(float64(0xFFFFFFFF) / d) // rounds down: the miner's difficulty is at least d
	var le [4]byte
	binary.LittleEndian.PutUint32(le[:], t)
	b := append([]byte{'"'}, hex.EncodeToString(le[:])...)
	return append(b, '"')
}

// cnPool is the CryptoNote dialect of one pool connection.
type cnPool struct {
	height []byte // the height of the newest job, raw JSON
	algos  []byte // the first miner's algo list, raw JSON; nil: none sent
	msg    codec.Message
	params [][]byte
	wbuf   []byte
}

const idCNLogin = 1

func (d *cnPool) hello(b []byte, t *store.Account, ua string, _ bool) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, idCNLogin, 10)
	b = append(b, `,"jsonrpc":"2.0","method":"login","params":{"login":`...)
	b = codec.AppendStringS(b, t.User)
	b = append(b, `,"pass":`...)
	b = codec.AppendStringS(b, t.Password.Reveal())
	b = append(b, `,"agent":`...)
	b = codec.AppendStringS(b, ua)
	if len(d.algos) > 0 {
		b = append(b, `,"algo":`...)
		b = append(b, d.algos...)
	}
	return append(b, "}}\n"...)
}

func (d *cnPool) appendConfigure(b []byte) []byte { return b }

func (d *cnPool) appendSubmit(b []byte, id uint64, user string, sh *shareReq) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, `,"jsonrpc":"2.0","method":"submit","params":{"id":`...)
	b = codec.AppendStringS(b, user) // the pool's session id (upstream.sid)
	b = append(b, `,"job_id":`...)
	b = append(b, sh.jobID...)
	b = append(b, `,"nonce":`...)
	b = append(b, sh.nonce...)
	b = append(b, `,"result":`...)
	b = append(b, sh.rest...)
	return append(b, "}}\n"...)
}

func (d *cnPool) consume(up *upstream, buf []byte) (int, error) { return consumeLines(up, buf, d) }

func (d *cnPool) handleLine(up *upstream, line []byte) {
	m := &d.msg
	if err := codec.Decode(line, m); err != nil {
		up.invalid("undecodable", err)
		return
	}
	if len(m.Method) == 0 {
		id, err := codec.ParseInt(m.ID)
		if err != nil {
			return
		}
		switch {
		case id >= firstSubmitID:
			ok, code, msg := cnVerdict(m)
			up.poolAnswer(uint64(id), ok, code, msg)
		case id == idCNLogin:
			d.handleLogin(up, m)
		}
		return
	}
	switch string(m.Method) {
	case "job":
		if err := d.publish(up, m.Params); err != nil {
			up.invalid("job", err)
		}
	case codec.MethodReconnect:
		up.poolReconnect(0)
	}
}

// cnVerdict reads a submit answer: {"status":"OK"} or an error object.
func cnVerdict(m *codec.Message) (bool, int, string) {
	if _, msg, isErr, _ := codec.ParseError(m.Error); isErr {
		if len(msg) == 0 {
			msg = []byte("rejected by pool")
		}
		return false, codecForReason(msg), string(msg)
	}
	if st, ok := codec.ObjectField(m.Result, "status"); ok {
		if v, err := codec.Unquote(st, nil); err == nil && bytes.EqualFold(v, []byte("OK")) {
			return true, 0, ""
		}
	}
	return false, codec.CodeOther, "rejected by pool"
}

func (d *cnPool) handleLogin(up *upstream, m *codec.Message) {
	if _, msg, isErr, _ := codec.ParseError(m.Error); isErr || m.Result == nil || codec.IsNull(m.Result) {
		reason := string(msg)
		if reason == "" {
			reason = "login refused"
		}
		up.loginRejected(reason)
		return
	}
	raw, ok := codec.ObjectField(m.Result, "id")
	sid, err := codec.Unquote(raw, nil)
	if !ok || err != nil || len(sid) == 0 || len(sid) > 128 {
		up.loginRejected("login answer without a session id")
		return
	}
	up.subscribedOK = true
	up.mu.Lock()
	up.sid = string(sid)
	up.mu.Unlock()
	if job, ok := codec.ObjectField(m.Result, "job"); ok && !codec.IsNull(job) {
		if err := d.publish(up, job); err != nil {
			up.invalid("login", err)
		}
	}
	up.onLogin()
}

// publish turns a pool's job object into a job for the members.
func (d *cnPool) publish(up *upstream, obj []byte) error {
	w := &altWork{}
	blobRaw, ok1 := codec.ObjectField(obj, "blob")
	idRaw, ok2 := codec.ObjectField(obj, "job_id")
	tRaw, ok3 := codec.ObjectField(obj, "target")
	if !ok1 || !ok2 || !ok3 || !isQuotedHex(idRaw, 0) || len(idRaw) > maxJobIDLen {
		return errCNBadJob
	}
	blob, err := codec.Unquote(blobRaw, nil)
	if err != nil || !isHex(blob) || len(blob) < 2*cnMinBlob || len(blob) > 2*cnMaxBlob {
		return errCNBadJob
	}
	w.blob = make([]byte, len(blob)/2)
	if _, err := hex.Decode(w.blob, blob); err != nil {
		return errCNBadJob
	}
	diff, err := cnDifficulty(tRaw)
	if err != nil {
		return err
	}
	w.target = minerTarget(tRaw, diff)
	for _, f := range [...]struct {
		key string
		dst *[]byte
	}{{"algo", &w.algo}, {"height", &w.height}, {"seed_hash", &w.sdh}} {
		if v, ok := codec.ObjectField(obj, f.key); ok && !codec.IsNull(v) {
			*f.dst = append([]byte(nil), v...)
		}
	}
	up.setDiff(diff)
	// CryptoNote has no clean flag: a new height is a new block and ends
	// the older jobs; a new template at the same height does not (pools
	// keep accepting the jobs before it).
	clean := w.height == nil || !bytes.Equal(w.height, d.height)
	if w.height != nil {
		d.height = append(d.height[:0], w.height...)
	} else if d.height == nil {
		clean = true
	} else {
		clean = false
	}
	j := newAltJob(idRaw, up.tag, diff, clean, time.Now(), w)
	up.publish(j)
	return nil
}

// cnMiner is the miner side of CryptoNote (xmrig and its kin).
type cnMiner struct{}

func (cnMiner) appendDifficulty(b []byte, d float64) []byte { return b } // the target travels in the job

func (cnMiner) appendAnswer(b, id []byte, ok bool, code int, msg string) []byte {
	if id == nil {
		id = nullID
	}
	b = append(b, `{"id":`...)
	b = append(b, id...)
	if ok {
		return append(b, `,"jsonrpc":"2.0","error":null,"result":{"status":"OK"}}`+"\n"...)
	}
	b = append(b, `,"jsonrpc":"2.0","error":{"code":-1,"message":`...)
	b = codec.AppendStringS(b, msg)
	return append(b, `},"result":null}`+"\n"...)
}

// appendJob appends j's job object as mc sees it: its nonce byte in the
// blob when it shares the upstream.
func (cnMiner) appendJob(b []byte, mc *minerConn, j *job) []byte {
	w := j.alt
	b = append(b, `{"blob":"`...)
	s := mc.sess
	if len(s.prefix) == 1 && len(w.blob) > cnNonceByte {
		b = hex.AppendEncode(b, w.blob[:cnNonceByte])
		b = hex.AppendEncode(b, s.prefix)
		b = hex.AppendEncode(b, w.blob[cnNonceByte+1:])
	} else {
		b = hex.AppendEncode(b, w.blob)
	}
	b = append(b, `","job_id":`...)
	b = append(b, j.id...)
	b = append(b, `,"target":`...)
	b = append(b, w.target...)
	if w.algo != nil {
		b = append(b, `,"algo":`...)
		b = append(b, w.algo...)
	}
	if w.height != nil {
		b = append(b, `,"height":`...)
		b = append(b, w.height...)
	}
	if w.sdh != nil {
		b = append(b, `,"seed_hash":`...)
		b = append(b, w.sdh...)
	}
	return append(b, '}')
}

func (c cnMiner) jobLine(mc *minerConn, j *job, clean bool) []byte {
	l := mc.loop
	l.wbuf = append(l.wbuf[:0], `{"jsonrpc":"2.0","method":"job","params":`...)
	l.wbuf = c.appendJob(l.wbuf, mc, j)
	l.wbuf = append(l.wbuf, "}\n"...)
	return l.wbuf
}

// loginAnswer answers the waiting login with the session id and the
// current job; without a job the pool is not there, and the miner is
// told so and closed (xmrig logs in again after a pause). It reports
// whether the miner stays.
func (c cnMiner) loginAnswer(mc *minerConn) bool {
	var j *job
	if up := mc.up; up != nil && up.ready.Load() {
		j = up.jobs.Load().last()
	}
	if j == nil {
		mc.replyError(mc.authID, codec.CodeOther, "pool not connected, try again")
		mc.authID = mc.authID[:0]
		mc.drop(metrics.DropNoPool)
		return false
	}
	s := mc.sess
	l := mc.loop
	d := mc.targetFor(j, time.Now())
	mc.sentDiff = d
	if s.worker != nil {
		s.worker.SetDifficulty(d)
	}
	mc.sentJob(j, d)
	s.lastJob = j
	mc.hasWork = true
	b := append(l.wbuf[:0], `{"id":`...)
	b = append(b, mc.authID...)
	b = append(b, `,"jsonrpc":"2.0","error":null,"result":{"id":`...)
	b = codec.AppendStringS(b, s.id)
	b = append(b, `,"job":`...)
	b = c.appendJob(b, mc, j)
	b = append(b, `,"extensions":["algo","nicehash","keepalive"],"status":"OK"}}`+"\n"...)
	l.wbuf = b
	mc.write(b)
	return true
}

func (c cnMiner) handleLine(mc *minerConn, line []byte) {
	l := mc.loop
	m, ok := mc.request(line)
	if !ok {
		return
	}
	if mc.sess == nil && string(m.Method) != "login" {
		c.restore(mc, m)
	}
	switch string(m.Method) {
	case "login":
		c.login(mc, m)
	case "submit":
		c.submit(mc, m)
	case "keepalived":
		mc.replyResult(m.ID, []byte(`{"status":"KEEPALIVED"}`))
	case "getjob":
		if mc.state != stateMining || !mc.hasWork || mc.sess.lastJob == nil {
			mc.replyError(m.ID, codec.CodeUnauthorized, "not logged in")
			return
		}
		l.tmp = c.appendJob(l.tmp[:0], mc, mc.sess.lastJob)
		mc.replyResult(m.ID, l.tmp)
	default:
		if m.HasID() {
			l.tmp = append(append(l.tmp[:0], "unknown method "...), m.Method...)
			l.wbuf = codec.AppendErrorBytes(l.wbuf[:0], m.ID, codec.CodeMethodNotFound, l.tmp)
			mc.write(l.wbuf)
		}
	}
}

// login reads xmrig's login: the issued name (a rig after a dot, or the
// "rigid" field), its algorithms and whether it speaks the extensions.
func (c cnMiner) login(mc *minerConn, m *codec.Message) {
	if mc.up != nil {
		mc.replyError(m.ID, codec.CodeOther, "already logged in")
		return
	}
	raw, ok := codec.ObjectField(m.Params, "login")
	name, err := codec.Unquote(raw, nil)
	if !ok || err != nil || len(name) == 0 {
		mc.replyError(m.ID, codec.CodeInvalidParams, "login needs params {login, pass, agent, algo}")
		return
	}
	rig := ""
	if v, ok := codec.ObjectField(m.Params, "rigid"); ok {
		if r, err := codec.Unquote(v, nil); err == nil {
			rig = string(r)
		}
	}
	agent := []byte(nil)
	if v, ok := codec.ObjectField(m.Params, "agent"); ok {
		agent, _ = codec.Unquote(v, nil)
	}
	mc.cnAlgos = nil
	if v, ok := codec.ObjectField(m.Params, "algo"); ok && len(v) > 0 && v[0] == '[' {
		mc.cnAlgos = append([]byte(nil), v...)
	}
	// xmrig and its forks send their algorithms and keep the nonce's top
	// byte when told "nicehash": they can share an upstream.
	mc.cnShare = mc.cnAlgos != nil || bytes.Contains(bytes.ToLower(agent), []byte("xmrig"))
	mc.login(m.ID, name, rig)
}

func (c cnMiner) submit(mc *minerConn, m *codec.Message) {
	l := mc.loop
	s := mc.sess
	seq, ok := mc.beginSubmit(m.ID, "Unauthenticated")
	if !ok {
		return
	}
	jobRaw, ok1 := codec.ObjectField(m.Params, "job_id")
	nonce, ok2 := codec.ObjectField(m.Params, "nonce")
	result, ok3 := codec.ObjectField(m.Params, "result")
	if !ok1 || !ok2 || !ok3 || !isQuotedHex(nonce, 8) || !isQuotedHex(result, 64) {
		mc.reject(seq, metrics.ReasonProxyCheck, codec.CodeOther, "Malformed share: want job_id, 8 hex digits of nonce and 64 of result")
		return
	}
	var nb [4]byte
	if _, err := hex.Decode(nb[:], nonce[1:9]); err != nil {
		mc.reject(seq, metrics.ReasonProxyCheck, codec.CodeOther, "Malformed nonce")
		return
	}
	if len(s.prefix) == 1 && nb[3] != s.prefix[0] {
		mc.reject(seq, metrics.ReasonProxyCheck, codec.CodeOther, "Nonce outside your range: keep the blob's byte 42 (nicehash mode)")
		return
	}
	var j *job
	if mc.hasWork {
		j = s.up.jobs.Load().find(jobRaw)
	}
	if j == nil || j.alt == nil {
		mc.reject(seq, metrics.ReasonStale, codec.CodeJobNotFound, "Block expired")
		return
	}
	d := mc.diffFor(j)
	// The claimed hash must meet the target: its last 8 bytes, little
	// endian, at most 2^64 / d. (The proxy cannot compute RandomX; the
	// pool checks that the hash is the blob's.)
	var hb [8]byte
	if _, err := hex.Decode(hb[:], result[1+48:1+64]); err != nil {
		mc.reject(seq, metrics.ReasonProxyCheck, codec.CodeOther, "Malformed result")
		return
	}
	if float64(binary.LittleEndian.Uint64(hb[:])) > math.Ldexp(1, 64)/j.diff {
		mc.reject(seq, metrics.ReasonLowDifficulty, codec.CodeLowDifficulty, "Low difficulty share")
		return
	}
	var key shareKey
	copy(key.en2[:], nb[:])
	key.n = 4
	if j.check.dups.add(&key) {
		mc.reject(seq, metrics.ReasonDuplicate, codec.CodeDuplicate, "Duplicate share")
		return
	}
	s.worker.Sent(d)
	sh := &l.share
	*sh = shareReq{jobID: j.poolID, nonce: nonce, rest: result}
	mc.forward(seq, sh, d, j.diff)
	*sh = shareReq{}
}

// restore gives a reconnected miner that goes on with its login's session
// id (params.id of getjob, submit or keepalived) its session back: the
// same nonce byte on the same pool login. The 64-bit random id is the
// proof, as the login that issued it was.
func (c cnMiner) restore(mc *minerConn, m *codec.Message) {
	raw, ok := codec.ObjectField(m.Params, "id")
	if !ok {
		return
	}
	sid, err := codec.Unquote(raw, nil)
	if err != nil || len(sid) == 0 || len(sid) > 64 {
		return
	}
	s := mc.srv.restore(string(sid), mc)
	if s == nil {
		return
	}
	mc.sess = s
	if s.up == nil || s.up.proto != protoCryptoNote {
		mc.drop(dropBadInput) // not a CryptoNote session: its miner logs in again
		return
	}
	mc.log = mc.log.With().Str("session", s.id).Str("user", s.name).Logger()
	mc.resume()
	mc.waitForPool()
}
