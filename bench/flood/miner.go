package flood

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"

	"github.com/panjf2000/gnet/v2"

	"github.com/stratum-proxy/stratum-proxy/codec"
)

// state is a miner's place in the stratum handshake. Transitions, all in
// miner.setState on the miner's event loop:
//
//	stateDialing -> stateSubscribing   (OnOpen: configure? + subscribe sent)
//	stateSubscribing -> stateAuthorizing (subscribe answered: authorize sent)
//	stateAuthorizing -> stateMining    (authorize answered true)
//	any -> stateClosed                 (OnClose)
type state uint8

const (
	stateDialing state = iota
	stateSubscribing
	stateAuthorizing
	stateMining
	stateClosed
)

func (s state) String() string {
	switch s {
	case stateDialing:
		return "dialing"
	case stateSubscribing:
		return "subscribing"
	case stateAuthorizing:
		return "authorizing"
	case stateMining:
		return "mining"
	case stateClosed:
		return "closed"
	}
	return "unknown"
}

// Request ids of the handshake; submits count up from idFirstSubmit.
const (
	idConfigure = 1 + iota
	idSubscribe
	idXnSubscribe
	idAuthorize
	idFirstSubmit = 16
)

// requestedMask is the version-rolling mask asked for in mining.configure
// (BIP320's general purpose bits).
const requestedMask = 0x1fffe000

// maxExtranonce2 bounds extranonce2_size: real pools give 4 to 8 bytes.
const maxExtranonce2 = 16

// pending is one unanswered submit: its id and when it was written (run
// clock, ns). id 0 marks a free slot.
type pending struct {
	id uint32
	at int64
}

// miner is one simulated miner connection.
type miner struct {
	// Static after construction.
	idx  int
	user string
	pend []pending // len MaxPending, a window of the runner's pendAll

	// Owned by the event loop of conn, from OnOpen on.
	conn       gnet.Conn
	sh         *shard
	state      state
	en1        []byte // extranonce1, decoded; replaced, never mutated (hash tasks share it)
	en2Size    int
	en2        uint64 // extranonce2 counter: every share gets a new one
	diff       float64
	mask       uint32 // granted version-rolling mask; 0 without rolling
	job        *job
	jobSeq     uint32 // bumps on every job, extranonce or difficulty change
	authAt     int64  // run clock when authorize was answered true
	next       int64  // run clock when the next share is due; 0 = not scheduled
	nextID     uint32
	npend      int
	hashing    bool // ModeValid: a share of this miner is with a hash worker
	configured bool // Configure: the answer granted version rolling
}

// setState moves m to s and keeps the gauges in step; the only place a
// miner's state changes.
func (m *miner) setState(s state) {
	st := &m.sh.r.st
	from := m.state
	if from == s {
		return
	}
	m.state = s
	switch s {
	case stateSubscribing:
		raiseMax(&st.peakConnected, st.connected.Add(1))
	case stateAuthorizing:
		st.subscribed.Add(1)
		st.subscribes.Add(1)
	case stateMining:
		raiseMax(&st.peakAuthorized, st.authorized.Add(1))
		st.authorizes.Add(1)
	case stateClosed:
		if from >= stateSubscribing {
			st.connected.Add(-1)
		}
		if from >= stateAuthorizing {
			st.subscribed.Add(-1)
		}
		if from >= stateMining {
			st.authorized.Add(-1)
		}
		st.outstanding.Add(-int64(m.npend))
		m.npend = 0
	}
}

// open runs in OnOpen: it returns the first lines to send.
func (m *miner) open(c gnet.Conn, sh *shard) []byte {
	m.conn, m.sh = c, sh
	m.nextID = idFirstSubmit
	m.diff = 1 // stratum's default until mining.set_difficulty
	m.setState(stateSubscribing)
	sh.miners = append(sh.miners, m)
	cfg := &sh.r.cfg
	b := sh.wbuf[:0]
	if cfg.Configure {
		b = codec.AppendRequest(b, []byte{'0' + idConfigure}, codec.MethodConfigure,
			[]byte(`[["version-rolling"],{"version-rolling.mask":"1fffe000","version-rolling.min-bit-count":2}]`))
	}
	p := append(sh.params0[:0], '[')
	p = codec.AppendStringS(p, cfg.userAgent())
	p = append(p, ']')
	b = codec.AppendRequest(b, []byte{'0' + idSubscribe}, codec.MethodSubscribe, p)
	sh.params0 = p
	sh.wbuf = b
	return b
}

// onClose runs in OnClose.
func (m *miner) onClose(err error) {
	if m.state == stateClosed {
		return
	}
	r := m.sh.r
	if !r.stopping.Load() {
		r.st.disconnects.Add(1)
	}
	m.setState(stateClosed)
	m.job = nil
	m.sh.dirty = true
	_ = err
}

// onTraffic frames and handles every complete line; the bytes are valid
// only until it returns.
func (m *miner) onTraffic(c gnet.Conn) gnet.Action {
	buf, _ := c.Peek(-1)
	max := m.sh.r.cfg.maxLineSize()
	off := 0
	// Bounded: every iteration consumes at least one byte or breaks.
	for off < len(buf) {
		line, n, err := codec.NextLine(buf[off:], max)
		if err != nil {
			m.sh.r.st.overlongLines.Add(1)
			_, _ = c.Discard(len(buf))
			return gnet.Close
		}
		off += n
		if line == nil {
			break
		}
		m.handleLine(line)
		if m.state == stateClosed {
			break
		}
	}
	if off > 0 {
		_, _ = c.Discard(off) // gnet's Discard(0) would drop a partial line
	}
	return gnet.None
}

func (m *miner) handleLine(line []byte) {
	sh := m.sh
	st := &sh.r.st
	msg := &sh.msg
	if err := codec.Decode(line, msg); err != nil {
		st.protocolErrors.Add(1)
		return
	}
	if len(msg.Method) == 0 {
		if msg.IsResponse() {
			m.handleResponse(msg)
		} else {
			st.protocolErrors.Add(1)
		}
		return
	}
	var err error
	switch string(msg.Method) {
	case codec.MethodNotify:
		err = m.handleNotify(msg)
	case codec.MethodSetDifficulty:
		err = m.handleSetDifficulty(msg)
	case codec.MethodSetExtranonce:
		err = m.handleSetExtranonce(msg)
	case codec.MethodSetVersionMask:
		err = m.handleSetVersionMask(msg)
	case codec.MethodReconnect:
		st.reconnects.Add(1)
	case codec.MethodShowMessage:
		st.showMessages.Add(1)
	case codec.MethodPing:
		st.pings.Add(1)
		m.reply(msg.ID, []byte(`"pong"`))
	case codec.MethodGetVersion:
		st.getVersions.Add(1)
		m.reply(msg.ID, codec.AppendStringS(sh.params0[:0], sh.r.cfg.userAgent()))
	default:
		st.unknownMethods.Add(1)
		if msg.HasID() {
			m.write(codec.AppendError(sh.wbuf[:0], msg.ID, codec.CodeMethodNotFound, "unknown method"))
		}
	}
	if err != nil {
		st.protocolErrors.Add(1)
	}
}

func (m *miner) reply(id, result []byte) {
	if !codec.IsNull(id) {
		m.write(codec.AppendResult(m.sh.wbuf[:0], id, result))
	}
}

// write sends b on the miner's connection; b is copied by gnet when the
// socket does not take it whole. A failed write closes the connection
// (OnClose runs inside Write).
func (m *miner) write(b []byte) {
	m.sh.wbuf = b[:0]
	if m.state != stateClosed && m.conn != nil {
		_, _ = m.conn.Write(b)
	}
}

func (m *miner) handleResponse(msg *codec.Message) {
	st := &m.sh.r.st
	id, err := codec.ParseInt(msg.ID)
	if err != nil || id <= 0 || id > math.MaxUint32 {
		st.unmatched.Add(1)
		return
	}
	switch {
	case id == idConfigure:
		m.handleConfigureAnswer(msg)
	case id == idSubscribe:
		m.handleSubscribeAnswer(msg)
	case id == idXnSubscribe:
		// true or an error: nothing to do either way.
	case id == idAuthorize:
		m.handleAuthorizeAnswer(msg)
	case id >= idFirstSubmit:
		m.handleSubmitAnswer(uint32(id), msg)
	default:
		st.unmatched.Add(1)
	}
}

func (m *miner) handleConfigureAnswer(msg *codec.Message) {
	if _, _, isErr, _ := codec.ParseError(msg.Error); isErr {
		return
	}
	raw, ok := codec.ObjectField(msg.Result, "version-rolling")
	if !ok {
		return
	}
	if on, _ := codec.ParseBool(raw); !on {
		return
	}
	mask := uint32(requestedMask)
	if raw, ok := codec.ObjectField(msg.Result, "version-rolling.mask"); ok {
		if v, err := codec.ParseUint32Hex(raw); err == nil {
			mask &= v
		}
	}
	m.mask = mask
	m.configured = true
	m.sh.r.st.configureGranted.Add(1)
}

func (m *miner) handleSubscribeAnswer(msg *codec.Message) {
	sh := m.sh
	st := &sh.r.st
	p, err := codec.SplitArray(msg.Result, sh.params[:0])
	sh.params = p[:0]
	if _, _, isErr, _ := codec.ParseError(msg.Error); isErr || err != nil || len(p) < 3 {
		st.subscribeErrors.Add(1)
		m.closeConn()
		return
	}
	if err := m.setExtranonce(p[1], p[2]); err != nil {
		st.subscribeErrors.Add(1)
		m.closeConn()
		return
	}
	m.setState(stateAuthorizing)
	cfg := &sh.r.cfg
	b := sh.wbuf[:0]
	if cfg.ExtranonceSubscribe {
		b = codec.AppendRequest(b, []byte{'0' + idXnSubscribe}, codec.MethodExtranonceSubscribe, nil)
	}
	q := append(sh.params0[:0], '[')
	q = codec.AppendStringS(q, m.user)
	q = append(q, ',')
	q = codec.AppendStringS(q, cfg.password())
	q = append(q, ']')
	sh.params0 = q
	b = codec.AppendRequest(b, []byte{'0' + idAuthorize}, codec.MethodAuthorize, q)
	m.write(b)
}

// setExtranonce takes extranonce1 (hex string) and extranonce2_size.
func (m *miner) setExtranonce(rawEn1, rawSize []byte) error {
	hexEn1, err := codec.Unquote(rawEn1, m.sh.params0[:0])
	if err != nil {
		return err
	}
	size, err := codec.ParseInt(rawSize)
	if err != nil {
		return err
	}
	if size < 1 || size > maxExtranonce2 || len(hexEn1)%2 != 0 || len(hexEn1) > 64 {
		return errBadExtranonce
	}
	en1 := make([]byte, len(hexEn1)/2)
	if _, err := hex.Decode(en1, hexEn1); err != nil {
		return err
	}
	m.en1, m.en2Size = en1, int(size)
	m.jobSeq++
	return nil
}

var errBadExtranonce = errors.New("flood: bad extranonce")

func (m *miner) handleAuthorizeAnswer(msg *codec.Message) {
	ok, _ := codec.ParseBool(msg.Result)
	if _, _, isErr, _ := codec.ParseError(msg.Error); isErr || !ok {
		m.sh.r.st.authorizeRejected.Add(1)
		return
	}
	if m.state == stateAuthorizing {
		m.authAt = m.sh.r.now()
		m.setState(stateMining)
	}
}

func (m *miner) handleSubmitAnswer(id uint32, msg *codec.Message) {
	r := m.sh.r
	st := &r.st
	slot := &m.pend[int(id)%len(m.pend)]
	if slot.id != id {
		st.unmatched.Add(1)
		return
	}
	r.answers.record(durationNS(r.now() - slot.at))
	slot.id = 0
	m.npend--
	st.outstanding.Add(-1)
	ok, _ := codec.ParseBool(msg.Result)
	code, _, isErr, err := codec.ParseError(msg.Error)
	switch {
	case err != nil:
		st.rejected.Add(1)
		st.rej[rejOther].Add(1)
	case isErr:
		st.rejected.Add(1)
		st.rej[rejIndex(code)].Add(1)
	case ok:
		st.accepted.Add(1)
	default:
		st.rejected.Add(1)
		st.rej[rejFalse].Add(1)
	}
}

func (m *miner) handleSetDifficulty(msg *codec.Message) error {
	sh := m.sh
	sh.r.st.setDifficulty.Add(1)
	p, err := codec.SplitArray(msg.Params, sh.params[:0])
	sh.params = p[:0]
	if err != nil || len(p) < 1 {
		return errBadParams
	}
	d, err := codec.ParseFloat(p[0])
	if err != nil || !(d > 0) || math.IsInf(d, 0) {
		return errBadParams
	}
	if d != m.diff {
		m.diff = d
		m.jobSeq++
	}
	return nil
}

var errBadParams = errors.New("flood: bad params")

func (m *miner) handleSetExtranonce(msg *codec.Message) error {
	sh := m.sh
	sh.r.st.setExtranonce.Add(1)
	p, err := codec.SplitArray(msg.Params, sh.params[:0])
	sh.params = p[:0]
	if err != nil || len(p) < 2 {
		return errBadParams
	}
	if err := m.setExtranonce(p[0], p[1]); err != nil {
		return err
	}
	// The new layout applies from the next job on: shares of the current
	// one would be built with the wrong extranonce.
	m.job = nil
	return nil
}

func (m *miner) handleSetVersionMask(msg *codec.Message) error {
	sh := m.sh
	sh.r.st.setVersionMask.Add(1)
	p, err := codec.SplitArray(msg.Params, sh.params[:0])
	sh.params = p[:0]
	if err != nil || len(p) < 1 {
		return errBadParams
	}
	v, err := codec.ParseUint32Hex(p[0])
	if err != nil {
		return err
	}
	if m.configured {
		m.mask = v & requestedMask
		m.jobSeq++
	}
	return nil
}

func (m *miner) handleNotify(msg *codec.Message) error {
	sh := m.sh
	r := sh.r
	st := &r.st
	st.notifies.Add(1)
	j, arrived, err := sh.lookupJob(msg.Params)
	if err != nil {
		return err
	}
	if arrived == 0 {
		arrived = r.now()
	}
	// A miner that already had a job and was authorized before this one
	// first reached the flood measures the fan-out; the job handed over
	// at login does not.
	if m.state == stateMining && m.job != nil && m.authAt < j.first {
		st.notifiesMeasured.Add(1)
		r.fanout.record(durationNS(max(arrived-j.first, 0)))
		if j.hasSent {
			r.notifyLat.record(durationNS(max(arrived-j.sent, 0)))
		}
	}
	m.job = j
	m.jobSeq++
	return nil
}

func (m *miner) closeConn() {
	if m.conn != nil {
		_ = m.conn.Close() // asynchronous: OnClose runs later on this loop
	}
}

// schedule submits the shares that are due at now (run clock), at most
// maxBurst of them; a miner further behind skips to now.
func (m *miner) schedule(now int64, interval float64) {
	if m.state != stateMining || m.job == nil {
		return
	}
	sh := m.sh
	if m.next == 0 {
		m.next = now + int64(interval*sh.rng.Float64()) + 1
		return
	}
	for k := 0; m.next <= now && k < maxBurst; k++ {
		m.shareDue(now)
		if m.state != stateMining {
			return
		}
		m.next += int64(interval * (0.5 + sh.rng.Float64()))
	}
	if m.next <= now {
		sh.r.st.skippedLate.Add(1)
		m.next = now + int64(interval*(0.5+sh.rng.Float64()))
	}
}

// maxBurst bounds the shares one miner submits in one tick of its loop.
const maxBurst = 64

// shareDue produces one share: submitted at once in ModeBlind, handed to a
// hash worker in ModeValid.
func (m *miner) shareDue(now int64) {
	r := m.sh.r
	if m.npend >= len(m.pend) || m.hashing || m.pend[int(m.nextID)%len(m.pend)].id != 0 {
		r.st.skippedBacklog.Add(1)
		return
	}
	m.en2++
	if r.cfg.mode() == ModeValid {
		m.startHash()
		return
	}
	vbits := uint32(0)
	if m.mask != 0 {
		// Roll the version bits blindly inside the granted mask.
		vbits = uint32(m.en2<<13) & m.mask
	}
	m.submit(m.job, m.en2, uint32(m.sh.rng.Uint64()), vbits)
}

// submit writes mining.submit for job with extranonce2 counter en2, nonce
// and version bits, and records it as pending.
func (m *miner) submit(j *job, en2 uint64, nonce, vbits uint32) {
	sh := m.sh
	r := sh.r
	var scratch [maxExtranonce2]byte
	en2b := scratch[:m.en2Size]
	putCounter(en2b, en2)
	var w [4]byte

	p := append(sh.params0[:0], '[')
	p = codec.AppendStringS(p, m.user)
	p = append(p, ',')
	p = append(p, j.id...)
	p = append(p, ',')
	p = codec.AppendHexString(p, en2b)
	p = append(p, ',')
	p = append(p, j.ntime...)
	p = append(p, ',')
	binary.BigEndian.PutUint32(w[:], nonce)
	p = codec.AppendHexString(p, w[:])
	if m.mask != 0 {
		p = append(p, ',')
		binary.BigEndian.PutUint32(w[:], vbits)
		p = codec.AppendHexString(p, w[:])
	}
	p = append(p, ']')
	sh.params0 = p

	id := m.nextID
	m.nextID++
	if m.nextID == 0 || m.nextID < idFirstSubmit {
		m.nextID = idFirstSubmit
	}
	var idb [10]byte
	b := codec.AppendRequest(sh.wbuf[:0], codec.AppendUint(idb[:0], uint64(id)), codec.MethodSubmit, p)
	now := r.now()
	m.pend[int(id)%len(m.pend)] = pending{id: id, at: now}
	m.npend++
	r.st.outstanding.Add(1)
	r.st.sent.Add(1)
	m.write(b)
}

// putCounter writes v big-endian into b, keeping its low-order bytes.
func putCounter(b []byte, v uint64) {
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
}
