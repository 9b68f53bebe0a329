package proxy

import (
	"net/netip"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/rs/zerolog"

	"github.com/stratum-proxy/stratum-proxy/codec"
	"github.com/stratum-proxy/stratum-proxy/metrics"
)

// connState is a miner connection's state. Transitions, all made by
// setState on the connection's loop:
//
//	state        event                                    -> state
//	connected    mining.subscribe answered (fresh or restored) -> subscribed
//	connected/subscribed
//	             mining.authorize of a known name; its upstream is logging in -> authorizing
//	connected/subscribed/authorizing
//	             the upstream logged in (or AuthorizeWait passed) -> mining: work flows
//	authorizing  every pool refused the login                 -> closing (answered [24, reason])
//	any          the proxy drops it (timeout, bad input, limits, unknown user)
//	                                                          -> closing: nothing more is read or written
//	any          the socket closed                            -> closed; an authorized session waits out its grace
//
// A restored session stays subscribed (no work, shares refused) until it
// authorizes with a name of its account. mining.configure is answered in
// any state before closed.
type connState uint8

const (
	stateConnected connState = iota
	stateSubscribed
	stateAuthorizing
	stateMining
	stateClosing
	stateClosed
)

var connStateNames = [...]string{"connected", "subscribed", "authorizing", "mining", "closing", "closed"}

func (s connState) String() string { return connStateNames[s] }

// Drop reasons, also the `reason` label of proxy_miners_dropped_total.
const (
	dropSlowReader       = metrics.DropSlowReader
	dropLineTooLong      = metrics.DropLineTooLong
	dropHandshakeTimeout = metrics.DropHandshakeTimeout
	dropIdleTimeout      = metrics.DropIdleTimeout
	dropMaxConnections   = metrics.DropMaxConnections
	dropBadInput         = metrics.DropBadInput
	dropUnknownUser      = metrics.DropUnknownUser
	dropRelayout         = metrics.DropRelayout
)

// maxBadLines is how many undecodable lines in a row a miner may send
// before it is dropped: a confused miner gets clear errors, a hostile one
// does not keep a loop busy.
const maxBadLines = 32

// minerDialect is the protocol a miner speaks on the one port: it handles
// a line and encodes a job, a difficulty and an answer. Stratum v1 is the
// first; the transport below (framing, output limit, timers, member
// lists) is shared by every dialect.
type minerDialect interface {
	handleLine(mc *minerConn, line []byte)
	// jobLine returns the bytes that hand j to mc (clean: drop older
	// jobs). Stratum v1 returns a line shared by every miner with mc's
	// padding; dialects whose work differs per miner encode into the
	// loop's scratch. The caller writes it before anything else is encoded.
	jobLine(mc *minerConn, j *job, clean bool) []byte
	appendDifficulty(b []byte, d float64) []byte
	appendAnswer(b, id []byte, ok bool, code int, msg string) []byte
}

// minerConn is one miner TCP connection: the transport. Only its loop
// touches it.
type minerConn struct {
	// Static after onOpen.
	srv     *Server
	loop    *loop
	c       gnet.Conn
	addr    string
	ip      netip.Addr // counted in the per-address limits
	log     zerolog.Logger
	dialect minerDialect
	family  family // the wire family its first line showed

	// Owned by the loop.
	state      connState
	sess       *session
	up         *upstream // whose member list holds mc, or nil
	listIdx    int
	connIdx    int
	opened     time.Time
	lastLine   time.Time // last complete line: the idle timer
	authBy     time.Time // answer a waiting authorize by then
	authID     []byte    // id of the authorize waiting for its answer
	authEarly  [][]byte  // ids of earlier authorizes still waiting (answered with it)
	rig        string
	versionReq uint32 // mask the miner asked for in mining.configure
	granted    uint32 // mask currently granted to the miner
	sentDiff   float64
	answers    answerRing // share answers, in submit order
	vd         vardiff    // the miner's own difficulty (checked algorithms)
	algo       hashAlgo   // how its shares are checked, when checked
	checked    bool       // its shares are hashed at the proxy (per-miner difficulty)
	jobDiffs   [8]jobDiff // difficulty each recent job was sent at, newest at jobDiffs[jdNext-1]
	jdNext     int
	aliases    [4]jobAlias // jobs resent to this miner under its own ids (retarget)
	aliasSeq   uint64
	suggestD   float64 // mining.suggest_difficulty, before its vardiff starts
	minDiff    float64 // BIP310 minimum-difficulty
	partial    int     // bytes of an incomplete line held in the inbound buffer
	outbound   int     // unread output counted in Server.outbound
	badLines   int
	lastSwitch time.Time // last move to another account
	hasWork    bool      // sent a job of its current upstream connection
	mustRelay  bool      // the layout changed before the miner learnt it (authorizing or mining)
	relayBy    time.Time // drop a miner still owing a relayout by then
	cnShare    bool      // cryptonote: it keeps the nonce's top byte (nicehash mode)
	cnAlgos    []byte    // cryptonote: its login's algo list, raw JSON
	sentEn     []byte    // ethstratum: the extranonce it was last told (hex)
	replay     bool      // relay: a restored session owes the pool's last lines
	restoring  bool      // its session is being looked up in the cluster's store
	held       [][]byte  // lines that arrived meanwhile, handled after it
}

// relayWait is how long an authorized miner whose layout must change may
// take to send mining.extranonce.subscribe: real miners (cpuminer-opt,
// cpuminer-multi) send it right after the authorize answer, within
// milliseconds.
const relayWait = time.Second

// ending reports whether the connection is closing or closed: nothing more
// is read from or written to it.
func (mc *minerConn) ending() bool { return mc.state >= stateClosing }

func (mc *minerConn) setState(st connState) {
	if mc.state == st {
		return
	}
	mc.log.Debug().Stringer("from", mc.state).Stringer("to", st).Msg("state")
	mc.state = st
}

// write queues b to the miner and drops a miner whose unread output grew
// past the limit.
func (mc *minerConn) write(b []byte) {
	if mc.ending() || len(b) == 0 {
		return
	}
	_, _ = mc.c.Write(b)
	n := mc.c.OutboundBuffered()
	if n > mc.srv.cfg.maxOutbound() {
		mc.drop(dropSlowReader)
		return
	}
	if n != mc.outbound && !mc.noteOutbound(n) {
		mc.log.Info().Int("queued", n).Msg("output memory budget of the process exhausted; dropping a miner that does not read")
		mc.drop(metrics.DropOutputMemory)
	}
}

// noteOutbound records the bytes queued to this miner in the process-wide
// total; it reports false when the total passed MaxOutboundTotal. The
// total counts unread output as of each miner's last write or sweep (gnet
// tells no one when a socket drains), so it errs high between sweeps.
func (mc *minerConn) noteOutbound(n int) bool {
	total := mc.srv.outbound.Add(int64(n - mc.outbound))
	mc.outbound = n
	return n == 0 || total <= mc.srv.cfg.maxOutboundTotal()
}

func (mc *minerConn) drop(reason string) {
	if mc.ending() {
		return
	}
	mc.setState(stateClosing)
	mc.srv.met.Dropped(reason)
	mc.log.Debug().Str("reason", reason).Msg("dropping miner")
	_ = mc.c.Close()
}

func (mc *minerConn) replyResult(id, result []byte) {
	if id == nil || codec.IsNull(id) {
		return
	}
	l := mc.loop
	if mc.family == famCryptoNote {
		l.wbuf = appendCNResult(l.wbuf[:0], id, result)
	} else {
		l.wbuf = codec.AppendResult(l.wbuf[:0], id, result)
	}
	mc.write(l.wbuf)
}

func (mc *minerConn) replyError(id []byte, code int, msg string) {
	if id == nil {
		id = nullID
	}
	l := mc.loop
	if mc.family == famCryptoNote {
		l.wbuf = cnMiner{}.appendAnswer(l.wbuf[:0], id, false, code, msg)
	} else {
		l.wbuf = codec.AppendError(l.wbuf[:0], id, code, msg)
	}
	mc.write(l.wbuf)
}

var (
	nullID     = []byte("null")
	trueResult = []byte("true")
)

// testHookMinerLine, when set by a test, is called with every line a miner
// sends before it is handled (tests use it to inject a panic).
var testHookMinerLine func(line []byte)

// onTraffic frames the miner's lines and hands them to its dialect. It
// returns gnet.Close when the connection must end after what was written
// is flushed. Only complete lines reset the idle timer, and the bytes of
// an incomplete line count against the process's partial-line budget.
func (mc *minerConn) onTraffic() gnet.Action {
	buf, _ := mc.c.Peek(-1)
	off := 0
	max := mc.srv.cfg.maxLineSize()
	lines := 0
	for off < len(buf) && !mc.ending() {
		line, n, err := codec.NextLine(buf[off:], max)
		if err != nil {
			mc.replyError(nil, codec.CodeOther, "line too long")
			mc.srv.met.Dropped(dropLineTooLong)
			mc.setState(stateClosing)
			_, _ = mc.c.Discard(len(buf))
			mc.setPartial(0)
			return gnet.Close
		}
		off += n
		if line == nil {
			break
		}
		lines++
		if testHookMinerLine != nil {
			testHookMinerLine(line)
		}
		if mc.restoring {
			mc.holdLine(line)
			continue
		}
		mc.dialect.handleLine(mc, line)
	}
	if lines > 0 {
		mc.lastLine = time.Now()
	}
	if off > 0 {
		_, _ = mc.c.Discard(off) // gnet's Discard(0) would drop a partial line
	}
	if mc.ending() {
		mc.setPartial(0)
		return gnet.Close
	}
	if !mc.setPartial(len(buf) - off) {
		mc.log.Info().Int("partial", len(buf)-off).Msg("partial-line memory budget exhausted; dropping miner")
		mc.srv.met.Dropped(metrics.DropMemoryLimit)
		mc.setState(stateClosing)
		mc.setPartial(0)
		return gnet.Close
	}
	return gnet.None
}

// setPartial records the bytes of the miner's incomplete line in the
// process-wide budget; it reports false when the budget would pass
// MaxPartialBytes.
func (mc *minerConn) setPartial(n int) bool {
	d := int64(n - mc.partial)
	if d == 0 {
		return true
	}
	total := mc.srv.partialBytes.Add(d)
	if d > 0 && total > mc.srv.cfg.maxPartialBytes() {
		mc.srv.partialBytes.Add(-d)
		return false
	}
	mc.partial = n
	return true
}

// setDifficulty sends an encoded set_difficulty for d; the caller sends a
// job right after it (cgminer-family firmware applies a difficulty only at
// the next mining.notify).
func (mc *minerConn) setDifficulty(d float64, line []byte) {
	mc.sentDiff = d
	if w := mc.sess.worker; w != nil {
		w.SetDifficulty(d)
	}
	mc.write(line)
}

// sendWork hands the miner the current job of its upstream, forced clean
// so it starts on it at once, preceded by its difficulty when that
// changed. Without a job nothing is sent: difficulty travels with work.
func (mc *minerConn) sendWork() {
	s := mc.sess
	up := s.up
	if up == nil || !up.ready.Load() {
		return
	}
	j := up.jobs.Load().last()
	if j == nil {
		return
	}
	l := mc.loop
	d := mc.targetFor(j, time.Now())
	if mc.sentDiff != d {
		l.dbuf = mc.dialect.appendDifficulty(l.dbuf[:0], d)
		mc.setDifficulty(d, l.dbuf)
	}
	mc.sentJob(j, d)
	s.lastJob = j
	mc.hasWork = true
	mc.write(mc.dialect.jobLine(mc, j, true))
}

// deliverAnswer settles a share the pool (or the pool's absence) answered.
func (mc *minerConn) deliverAnswer(ev *event) {
	mc.answer(ev.seq, ev.ok, int(ev.code), ev.msg)
}

// sweep closes this loop's miners that missed a deadline and answers
// authorizes that waited long enough for their upstream.
func (l *loop) sweep() {
	now := time.Now()
	cfg := &l.srv.cfg
	for _, mc := range l.conns {
		if mc.outbound != 0 && !mc.ending() {
			mc.noteOutbound(mc.c.OutboundBuffered()) // drained since the last write
		}
		switch {
		case mc.ending():
		case mc.state < stateAuthorizing && mc.up == nil && now.Sub(mc.opened) > cfg.handshakeTimeout():
			// Not authorized on this connection (a restored session too).
			mc.drop(dropHandshakeTimeout)
		case now.Sub(mc.lastLine) > cfg.idleTimeout():
			mc.drop(dropIdleTimeout)
		case mc.mustRelay && mc.state == stateMining && now.After(mc.relayBy):
			mc.relay() // never sent mining.extranonce.subscribe: reconnect once
		case mc.state == stateAuthorizing && now.After(mc.authBy):
			mc.authorized()
		default:
			mc.vardiffTick(now)
		}
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// undecodable answers a line the codec refused: under its id when the
// line is JSON with one (a request whose params are of the wrong type),
// otherwise under null, and counts it towards the bad-line drop.
func (mc *minerConn) undecodable(line []byte, err error) {
	id, ok := codec.ObjectField(line, "id")
	if !ok || len(id) > maxInlineID || len(id) == 0 || id[0] == '{' || id[0] == '[' {
		id = nil
	}
	mc.replyError(id, codec.CodeParseError, err.Error())
	mc.badLine(dropBadInput)
}

// request decodes a miner's line into the loop's message: an undecodable
// one is answered and counted, an answer to a request of ours (no method)
// is skipped; ok reports a request to handle.
func (mc *minerConn) request(line []byte) (m *codec.Message, ok bool) {
	m = &mc.loop.msg
	if err := codec.Decode(line, m); err != nil {
		mc.undecodable(line, err)
		return m, false
	}
	mc.badLines = 0
	return m, len(m.Method) > 0
}
