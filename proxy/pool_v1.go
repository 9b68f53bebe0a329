package proxy

import (
	"bytes"
	"encoding/hex"
	"math"
	"strconv"
	"time"

	"github.com/stratum-proxy/stratum-proxy/codec"
	"github.com/stratum-proxy/stratum-proxy/metrics"
	"github.com/stratum-proxy/stratum-proxy/proxy/pow"
	"github.com/stratum-proxy/stratum-proxy/store"
)

// poolDialect is the protocol spoken on one pool connection. The
// connection manager (upstream) owns the socket, the deadlines and the
// failover; the dialect turns the pool's bytes into calls on the upstream
// (subscribed, loggedIn, loginRejected, newJob, ...) and the upstream's
// requests into bytes. Stratum v1 is the first; a Stratum V2 dialect
// (binary frames, Noise handshake, batched acks) plugs in behind the same
// calls.
type poolDialect interface {
	// hello appends the bytes that open a login to target t as user agent
	// ua, asking for version rolling when configure is set.
	hello(b []byte, t *store.Account, ua string, configure bool) []byte
	// consume handles the complete frames at the start of buf on the
	// upstream's loop and returns how many bytes it used. It stops at the
	// first frame after which the upstream asked to close.
	consume(up *upstream, buf []byte) (int, error)
	// appendConfigure appends a request for version rolling on a
	// connection that logged in without it.
	appendConfigure(b []byte) []byte
	// appendSubmit appends one share as request id.
	appendSubmit(b []byte, id uint64, user string, sh *shareReq) []byte
}

// shareReq is a miner's share as the pool will see it.
type shareReq struct {
	jobID  []byte // the pool's raw job id
	prefix []byte // the miner's extranonce prefix P (bytes)
	en2    []byte // the miner's extranonce2, hex
	pad    int    // zero bytes after en2 (F)
	ntime  []byte // raw JSON
	nonce  []byte // raw JSON
	vbits  []byte // raw JSON, nil without version rolling
	rest   []byte // relay: the params after the worker; ETHProxy: all params; cryptonote: the result
}

// Request ids the proxy uses towards a v1 pool: the handshake has fixed
// small ids, submits count up from firstSubmitID so the two never meet.
const (
	idConfigure   = 1
	idSubscribe   = 2
	idAuthorize   = 3
	idXnSubscribe = 4
	firstSubmitID = 16
)

// v1Pool is the Stratum v1 dialect of one pool connection.
type v1Pool struct {
	target    store.Account
	configure bool // mining.configure was sent with this login
	msg       codec.Message
	params    [][]byte
	tmp, wbuf []byte
}

func newV1Pool() *v1Pool { return &v1Pool{} }

func (d *v1Pool) hello(b []byte, t *store.Account, ua string, configure bool) []byte {
	d.target = *t
	d.configure = configure
	if configure {
		b = d.appendConfigure(b)
	}
	return appendV1Subscribe(b, ua)
}

func (d *v1Pool) appendConfigure(b []byte) []byte {
	return codec.AppendRequest(b, []byte(strconv.Itoa(idConfigure)), codec.MethodConfigure,
		[]byte(`[["version-rolling"],{"version-rolling.mask":"ffffffff","version-rolling.min-bit-count":2}]`))
}

func appendV1Subscribe(b []byte, ua string) []byte {
	params := codec.AppendStringS([]byte{'['}, ua)
	params = append(params, ']')
	return codec.AppendRequest(b, []byte(strconv.Itoa(idSubscribe)), codec.MethodSubscribe, params)
}

// appendV1Authorize appends authorize and extranonce.subscribe for t.
func appendV1Authorize(b []byte, t *store.Account) []byte {
	params := codec.AppendStringS([]byte{'['}, t.User)
	params = append(params, ',')
	params = codec.AppendStringS(params, t.Password.Reveal())
	params = append(params, ']')
	b = codec.AppendRequest(b, []byte(strconv.Itoa(idAuthorize)), codec.MethodAuthorize, params)
	clear(params) // the password does not linger in a scratch buffer
	return codec.AppendRequest(b, []byte(strconv.Itoa(idXnSubscribe)), codec.MethodExtranonceSubscribe, []byte(`[]`))
}

// testHookPoolLine, when set by a test, is called with every line a pool
// sends before it is handled (tests use it to inject a panic).
var testHookPoolLine func(line []byte)

// lineHandler is a pool dialect that handles one line at a time.
type lineHandler interface {
	handleLine(up *upstream, line []byte)
}

// consumeLines frames the complete lines at the start of buf for h and
// returns how many bytes it used; it stops once the upstream asked to
// close, and at an overlong line (the error).
func consumeLines(up *upstream, buf []byte, h lineHandler) (int, error) {
	off := 0
	max := up.srv.cfg.maxLineSize()
	for off < len(buf) && !up.closeReq {
		line, n, err := codec.NextLine(buf[off:], max)
		if err != nil {
			return off, err
		}
		off += n
		if line == nil {
			break
		}
		if testHookPoolLine != nil {
			testHookPoolLine(line)
		}
		h.handleLine(up, line)
	}
	return off, nil
}

func (d *v1Pool) consume(up *upstream, buf []byte) (int, error) { return consumeLines(up, buf, d) }

func (d *v1Pool) handleLine(up *upstream, line []byte) {
	m := &d.msg
	if err := codec.Decode(line, m); err != nil {
		up.invalid("undecodable", err)
		return
	}
	if len(m.Method) == 0 {
		if m.HasID() {
			d.handleResponse(up, m, line)
		}
		return
	}
	var err error
	switch string(m.Method) {
	case codec.MethodNotify:
		err = d.handleNotify(up, m)
	case codec.MethodSetDifficulty:
		err = d.handleSetDifficulty(up, m)
	case codec.MethodSetExtranonce:
		err = d.handleSetExtranonce(up, m)
	case codec.MethodSetVersionMask:
		err = d.handleSetVersionMask(up, m)
	case codec.MethodReconnect:
		up.poolReconnect(d.reconnectWait(m))
	case codec.MethodShowMessage:
		up.poolMessage(codec.AppendNotification(nil, codec.MethodShowMessage, m.Params))
	case codec.MethodGetVersion:
		d.reply(up, m.ID, codec.AppendStringS(nil, up.srv.cfg.userAgent()))
	case codec.MethodPing:
		d.reply(up, m.ID, []byte(`"pong"`))
	default:
		if m.HasID() && !codec.IsNull(m.ID) {
			d.wbuf = codec.AppendError(d.wbuf[:0], m.ID, codec.CodeMethodNotFound, "unknown method")
			up.write(d.wbuf)
		}
	}
	if err != nil {
		up.invalid(string(m.Method), err)
	}
}

func (d *v1Pool) reply(up *upstream, id, result []byte) {
	if id == nil || codec.IsNull(id) {
		return
	}
	d.wbuf = codec.AppendResult(d.wbuf[:0], id, result)
	up.write(d.wbuf)
}

func (d *v1Pool) handleResponse(up *upstream, m *codec.Message, line []byte) {
	id, err := codec.ParseInt(m.ID)
	if err != nil {
		return // not one of ours
	}
	switch {
	case id >= firstSubmitID:
		ok, code, msg := v1Verdict(m, line)
		up.poolAnswer(uint64(id), ok, code, msg)
	case id == idConfigure:
		d.handleConfigureAnswer(up, m)
	case id == idSubscribe:
		d.handleSubscribeAnswer(up, m)
	case id == idAuthorize:
		up.loginAnswer(m)
	}
}

// v1Verdict reads a pool's answer to a share: ok, or the stratum code and
// the pool's own text. ckpool answers {"result":false,"error":null,
// "reject-reason":"Above target"}: its reason is mapped to the code real
// miners understand (23 above target, 21 stale, 22 duplicate).
func v1Verdict(m *codec.Message, line []byte) (ok bool, code int, msg string) {
	res, _ := codec.ParseBool(m.Result)
	c, text, isErr, _ := codec.ParseError(m.Error)
	if res && !isErr {
		return true, 0, ""
	}
	if isErr {
		if len(text) == 0 {
			text = []byte("rejected by pool")
		}
		if c < codec.CodeOther || c > codec.CodeNotSubscribed {
			c = codecForReason(text)
		}
		return false, c, string(text)
	}
	if raw, found := codec.ObjectField(line, "reject-reason"); found {
		if r, err := codec.Unquote(raw, nil); err == nil && len(r) > 0 {
			return false, codecForReason(r), string(r)
		}
	}
	return false, codec.CodeOther, "rejected by pool"
}

// codecForReason maps a pool's reject text to a stratum code.
func codecForReason(r []byte) int {
	l := bytes.ToLower(r)
	switch {
	case bytes.Contains(l, []byte("stale")), bytes.Contains(l, []byte("job not found")):
		return codec.CodeJobNotFound
	case bytes.Contains(l, []byte("duplicate")):
		return codec.CodeDuplicate
	case bytes.Contains(l, []byte("above target")), bytes.Contains(l, []byte("low difficulty")),
		bytes.Contains(l, []byte("high-hash")), bytes.Contains(l, []byte("low diff")):
		return codec.CodeLowDifficulty
	case bytes.Contains(l, []byte("unauthorized")):
		return codec.CodeUnauthorized
	}
	return codec.CodeOther
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

func (d *v1Pool) handleConfigureAnswer(up *upstream, m *codec.Message) {
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
	up.poolVersionMask(mask)
}

func (d *v1Pool) handleSubscribeAnswer(up *upstream, m *codec.Message) {
	p, err := codec.SplitArray(m.Result, d.params[:0])
	d.params = p
	var en1 []byte
	var n int64
	if err == nil && len(p) >= 3 {
		en1, err = hexParam(p[1], d.tmp[:0])
		if err == nil {
			n, err = codec.ParseInt(p[2])
		}
	}
	if err != nil || len(p) < 3 || n < 1 || n > maxPad || len(en1) > 2*maxPad {
		reason := "garbled mining.subscribe answer"
		if _, msg, isErr, _ := codec.ParseError(m.Error); isErr {
			reason = string(msg)
		}
		up.loginRejected(reason)
		return
	}
	up.subscribed(en1, int(n))
	d.wbuf = appendV1Authorize(d.wbuf[:0], &d.target)
	up.write(d.wbuf)
	clear(d.wbuf)
}

func (d *v1Pool) handleNotify(up *upstream, m *codec.Message) error {
	p, err := codec.SplitArray(m.Params, d.params[:0])
	d.params = p
	if err != nil {
		return errBadNotify
	}
	return up.poolNotify(p, d.tmp[:0])
}

func (d *v1Pool) handleSetDifficulty(up *upstream, m *codec.Message) error {
	p, err := codec.SplitArray(m.Params, d.params[:0])
	d.params = p
	if err != nil || len(p) < 1 {
		return errBadDifficulty
	}
	v, err := codec.ParseFloat(p[0])
	if err != nil || !validDifficulty(v) {
		return errBadDifficulty
	}
	up.poolDifficulty(v)
	return nil
}

// validDifficulty bounds a pool's difficulty to what it can mean: above
// pow.Diff1 the share target is below 1 and no share could ever be found,
// and an infinite one would poison every difficulty-weighted counter.
func validDifficulty(v float64) bool {
	return v > 0 && v <= pow.Diff1 && !math.IsInf(v, 0) && !math.IsNaN(v)
}

func (d *v1Pool) handleSetExtranonce(up *upstream, m *codec.Message) error {
	p, err := codec.SplitArray(m.Params, d.params[:0])
	d.params = p
	if err != nil || len(p) < 1 {
		return errBadNotify
	}
	en1, err := hexParam(p[0], d.tmp[:0])
	if err != nil || len(en1) > 2*maxPad {
		return errBadNotify
	}
	n := int64(-1)
	if len(p) >= 2 {
		if n, err = codec.ParseInt(p[1]); err != nil || n < 1 || n > maxPad {
			return errBadNotify
		}
	}
	up.poolExtranonce(en1, int(n))
	return nil
}

func (d *v1Pool) handleSetVersionMask(up *upstream, m *codec.Message) error {
	p, err := codec.SplitArray(m.Params, d.params[:0])
	d.params = p
	if err != nil || len(p) < 1 {
		return errBadNotify
	}
	mask, err := codec.ParseUint32Hex(p[0])
	if err != nil {
		return err
	}
	up.poolVersionMask(mask)
	return nil
}

// reconnectWait reads client.reconnect's wait (seconds, third param),
// capped at a minute. The host and port are ignored: a pool may not
// redirect the proxy to an arbitrary host.
func (d *v1Pool) reconnectWait(m *codec.Message) time.Duration {
	p, err := codec.SplitArray(m.Params, d.params[:0])
	if err != nil {
		return 0
	}
	d.params = p
	if len(p) >= 3 {
		if w, err := codec.ParseInt(p[2]); err == nil && w > 0 {
			return min(time.Duration(w)*time.Second, time.Minute)
		}
	}
	return 0
}

func (d *v1Pool) appendSubmit(b []byte, id uint64, user string, sh *shareReq) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, `,"method":"mining.submit","params":[`...)
	b = codec.AppendStringS(b, user)
	b = append(b, ',')
	b = append(b, sh.jobID...)
	b = append(b, ',', '"')
	b = hex.AppendEncode(b, sh.prefix)
	b = append(b, sh.en2...)
	for i := sh.pad; i > 0; i-- {
		b = append(b, '0', '0')
	}
	b = append(b, '"', ',')
	b = append(b, sh.ntime...)
	b = append(b, ',')
	b = append(b, sh.nonce...)
	if sh.vbits != nil {
		b = append(b, ',')
		b = append(b, sh.vbits...)
	}
	return append(b, "]}\n"...)
}
