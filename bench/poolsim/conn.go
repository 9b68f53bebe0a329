package poolsim

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stratum-proxy/stratum-proxy/codec"
	"github.com/stratum-proxy/stratum-proxy/proxy/pow"
)

// readBufSize is the per-connection read buffer: a miner's longest usual
// line (mining.configure or a submit) is well under 300 bytes; longer lines
// are still read, through an overflow buffer, up to codec.DefaultMaxLineSize.
const readBufSize = 1024

// maxUsers bounds the worker names remembered per connection (a proxy
// authorizes one account; a farm miner a few rigs).
const maxUsers = 64

// conn is one miner (or proxy upstream) connection.
type conn struct {
	// Static after construction.
	s   *Server
	id  uint64
	nc  net.Conn
	sid string // subscription id

	// Owned by serve, the connection's goroutine.
	br     *bufio.Reader
	long   []byte // a line longer than br's buffer, being assembled
	msg    codec.Message
	params [][]byte
	out    []byte
	en2    [maxExtranonceSize]byte
	replyq chan delayedLine // only with Config.ShareDelay

	wmu sync.Mutex // serializes writes to nc

	mu         sync.Mutex // guards the fields below
	subscribed bool
	xnsub      bool // sent mining.extranonce.subscribe
	working    bool // received its first set_difficulty and notify
	rolling    bool // negotiated version rolling
	reqMask    uint32
	mask       uint32 // granted version-rolling mask
	en1        []byte
	en2Size    int
	users      []string
	diff       *diffState
	sent       []sentJob // ring of the last jobs sent, with their layout
	sentPos    int
}

// sentJob is a job as sent to one connection: shares are checked against
// the difficulty and extranonce layout in force when the job was sent.
type sentJob struct {
	j       *job
	diff    *diffState
	en1     []byte
	en2Size int
}

// delayedLine is an answer held back by Config.ShareDelay.
type delayedLine struct {
	due  time.Time
	line []byte
}

// replyQueueLen bounds answers waiting out ShareDelay; a fuller queue
// makes the reader wait (back pressure on a flooding client).
const replyQueueLen = 1024

func (s *Server) newConn(nc net.Conn) *conn {
	s.mu.Lock()
	s.connSeq++
	id := s.connSeq
	s.mu.Unlock()
	return &conn{
		s:  s,
		id: id,
		nc: nc,
		// A random high half, so ids differ between simulator runs (a
		// proxy must not restore a session id of a previous pool process),
		// and the connection counter in the low 32 bits.
		sid: strconv.FormatUint(uint64(s.sidTag)<<32|id&0xffffffff, 16),
		br:  bufio.NewReaderSize(nc, readBufSize),
	}
}

// write sends one or more complete lines. A failed or timed-out write
// closes the connection; serve then ends.
func (c *conn) write(b []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.writeTimeout()))
	if _, err := c.nc.Write(b); err != nil {
		c.nc.Close()
	}
}

// reply sends an answer, after delay when ShareDelay is set (answers stay
// in order: the queue is FIFO and delays are equal).
func (c *conn) reply(b []byte, delay time.Duration) {
	if c.replyq == nil {
		c.write(b)
		return
	}
	c.replyq <- delayedLine{time.Now().Add(delay), append([]byte(nil), b...)}
}

func (c *conn) replyWriter(done chan<- struct{}) {
	defer close(done)
	for d := range c.replyq {
		if w := time.Until(d.due); w > 0 {
			time.Sleep(w)
		}
		c.write(d.line)
	}
}

func (c *conn) serve() {
	defer c.nc.Close()
	if c.s.cfg.ShareDelay > 0 {
		c.replyq = make(chan delayedLine, replyQueueLen)
		done := make(chan struct{})
		go c.replyWriter(done)
		defer func() { close(c.replyq); <-done }()
	}
	for {
		line, err := c.readLine()
		if err != nil {
			return
		}
		if !c.handle(line) {
			return
		}
	}
}

var errLineTooLong = errors.New("poolsim: line too long")

// readLine returns the next non-blank line without "\r\n". It is valid
// until the next call.
func (c *conn) readLine() ([]byte, error) {
	for {
		line, err := c.br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) || len(c.long) > 0 {
			c.long = append(c.long, line...)
			if len(c.long) > codec.DefaultMaxLineSize {
				return nil, errLineTooLong
			}
			if err != nil {
				if errors.Is(err, bufio.ErrBufferFull) {
					continue
				}
				return nil, err
			}
			line = c.long
			c.long = c.long[:0]
			if cap(c.long) > 4*readBufSize {
				c.long = nil // do not keep a rare big buffer per connection
			}
		} else if err != nil {
			return nil, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(bytes.TrimSpace(line)) > 0 {
			return line, nil
		}
	}
}

// handle answers one line; false closes the connection.
func (c *conn) handle(line []byte) bool {
	m := &c.msg
	if err := codec.Decode(line, m); err != nil {
		c.reply(codec.AppendError(c.out[:0], nil, codec.CodeOther, "Parse error"), 0)
		return true
	}
	if m.Method == nil {
		return true // an answer to a request we broadcast (ping, get_version)
	}
	if f := c.s.cfg.Intercept; f != nil {
		switch f(c.id, string(m.Method)) {
		case Ignore:
			return true
		case Disconnect:
			return false
		}
	}
	switch string(m.Method) {
	case codec.MethodSubmit:
		c.submit(m)
	case codec.MethodSubscribe:
		c.subscribe(m)
	case codec.MethodAuthorize:
		c.authorize(m)
	case codec.MethodConfigure:
		c.configure(m)
	case codec.MethodExtranonceSubscribe:
		c.mu.Lock()
		c.xnsub = true
		c.mu.Unlock()
		c.result(m.ID, "true")
	case codec.MethodSuggestDifficulty:
		c.result(m.ID, "true") // accepted and ignored, as ckpool with a fixed difficulty
	case codec.MethodPing:
		c.result(m.ID, `"pong"`)
	default:
		c.fail(m.ID, codec.CodeOther, "Unknown method", 0)
	}
	return true
}

func (c *conn) result(id []byte, result string) {
	c.out = codec.AppendResult(c.out[:0], id, []byte(result))
	c.reply(c.out, 0)
}

func (c *conn) fail(id []byte, code int, msg string, delay time.Duration) {
	c.out = codec.AppendError(c.out[:0], id, code, msg)
	c.reply(c.out, delay)
}

func (c *conn) subscribe(m *codec.Message) {
	c.mu.Lock()
	ok := c.subscribed
	c.mu.Unlock()
	if !ok {
		en1, err := c.s.nextExtranonce1()
		if err != nil {
			c.fail(m.ID, codec.CodeOther, "Extranonce space exhausted", 0)
			return
		}
		c.mu.Lock()
		c.subscribed, c.en1, c.en2Size = true, en1, c.s.cfg.en2Size()
		c.mu.Unlock()
	}
	c.mu.Lock()
	r := append([]byte(nil), `[[["mining.set_difficulty",`...)
	r = codec.AppendStringS(r, c.sid)
	r = append(r, `],["mining.notify",`...)
	r = codec.AppendStringS(r, c.sid)
	r = append(r, "]],"...)
	r = codec.AppendHexString(r, c.en1)
	r = append(r, ',')
	r = codec.AppendUint(r, uint64(c.en2Size))
	r = append(r, ']')
	authorized := len(c.users) > 0
	c.mu.Unlock()
	c.out = codec.AppendResult(c.out[:0], m.ID, r)
	c.reply(c.out, 0)
	if authorized {
		c.startWork()
	}
}

func (c *conn) authorize(m *codec.Message) {
	p, err := codec.SplitArray(m.Params, c.params[:0])
	if err == nil {
		c.params = p[:0]
	}
	if err != nil || len(p) < 1 {
		c.fail(m.ID, codec.CodeOther, "Malformed authorize", 0)
		return
	}
	user, err1 := codec.Unquote(p[0], nil)
	var pass []byte
	var err2 error
	if len(p) > 1 && !codec.IsNull(p[1]) {
		pass, err2 = codec.Unquote(p[1], nil)
	}
	cfg := &c.s.cfg
	if err1 != nil || err2 != nil || len(user) == 0 ||
		cfg.User != "" && string(user) != cfg.User && !strings.HasPrefix(string(user), cfg.User+".") ||
		cfg.Password != "" && string(pass) != cfg.Password {
		c.fail(m.ID, codec.CodeUnauthorized, "Unauthorized worker", 0)
		return
	}
	c.mu.Lock()
	known := false
	for _, u := range c.users {
		known = known || u == string(user)
	}
	if !known && len(c.users) < maxUsers {
		c.users = append(c.users, string(user))
	}
	subscribed := c.subscribed
	c.mu.Unlock()
	c.result(m.ID, "true")
	if subscribed {
		c.startWork()
	}
}

// startWork sends the first set_difficulty and a clean notify of the
// current job, once, and makes the connection part of broadcasts.
func (c *conn) startWork() {
	s := c.s
	s.bmu.Lock()
	defer s.bmu.Unlock()
	s.mu.Lock()
	ds, j := s.diff, s.jobs[len(s.jobs)-1]
	s.mu.Unlock()
	c.mu.Lock()
	if c.working {
		c.mu.Unlock()
		return
	}
	c.working, c.diff = true, ds
	c.mu.Unlock()
	c.write(setDifficultyLine(nil, ds.diff))
	c.sendJob(j, codec.AppendNotification(nil, codec.MethodNotify, pow.AppendNotifyParams(nil, &j.Job, true)))
}

// sendJob records j with the connection's current difficulty and layout,
// then writes its notify line.
func (c *conn) sendJob(j *job, line []byte) {
	c.mu.Lock()
	if c.sent == nil {
		c.sent = make([]sentJob, c.s.cfg.jobHistory())
	}
	c.sent[c.sentPos] = sentJob{j: j, diff: c.diff, en1: c.en1, en2Size: c.en2Size}
	c.sentPos = (c.sentPos + 1) % len(c.sent)
	c.mu.Unlock()
	c.write(line)
}

func (c *conn) configure(m *codec.Message) {
	p, err := codec.SplitArray(m.Params, c.params[:0])
	if err == nil {
		c.params = p[:0]
	}
	var exts [][]byte
	if err == nil && len(p) >= 1 {
		exts, err = codec.SplitArray(p[0], nil)
	}
	if err != nil || len(p) < 1 {
		c.fail(m.ID, codec.CodeOther, "Malformed configure", 0)
		return
	}
	c.s.mu.Lock()
	allowed := c.s.cfg.VersionMask
	c.s.mu.Unlock()
	r := []byte{'{'}
	for _, e := range exts {
		name, err := codec.Unquote(e, nil)
		if err != nil {
			continue
		}
		if len(r) > 1 {
			r = append(r, ',')
		}
		r = codec.AppendString(r, name)
		if string(name) != "version-rolling" {
			r = append(r, ":false"...)
			continue
		}
		req := uint32(0xffffffff) // no mask param: the miner can roll any bit
		if len(p) > 1 {
			if raw, ok := codec.ObjectField(p[1], "version-rolling.mask"); ok {
				if v, err := codec.ParseUint32Hex(raw); err == nil {
					req = v
				}
			}
		}
		granted := req & allowed
		if granted == 0 {
			r = append(r, ":false"...)
			continue
		}
		c.mu.Lock()
		c.rolling, c.reqMask, c.mask = true, req, granted
		c.mu.Unlock()
		r = append(r, `:true,"version-rolling.mask":"`...)
		r = pow.AppendHex32(r, granted)
		r = append(r, '"')
	}
	r = append(r, '}')
	c.out = codec.AppendResult(c.out[:0], m.ID, r)
	c.reply(c.out, 0)
}

// submit checks a share like a real pool and answers it.
func (c *conn) submit(m *codec.Message) {
	s := c.s
	s.submits.Add(1)
	code, msg, user, diff := c.check(m)
	if code != 0 {
		s.rejected[code-codec.CodeOther].Add(1)
		c.fail(m.ID, code, msg, s.cfg.ShareDelay)
		return
	}
	s.accepted.Add(1)
	s.statsMu.Lock()
	s.sumDiff += diff
	s.userDiff[user] += diff
	s.statsMu.Unlock()
	c.out = codec.AppendResult(c.out[:0], m.ID, []byte("true"))
	c.reply(c.out, s.cfg.ShareDelay)
}

// check validates a share and returns 0 and the share's worker and
// difficulty, or the stratum error code and message.
func (c *conn) check(m *codec.Message) (code int, msg, user string, diff float64) {
	p, err := codec.SplitArray(m.Params, c.params[:0])
	if err == nil {
		c.params = p[:0]
	}
	c.mu.Lock()
	subscribed, mask := c.subscribed, c.mask
	worker := -1
	if err == nil && len(p) > 0 {
		if w, err := codec.Unquote(p[0], nil); err == nil {
			for i, u := range c.users {
				if u == string(w) {
					worker = i
				}
			}
		}
	}
	if worker >= 0 {
		user = c.users[worker]
	}
	c.mu.Unlock()
	switch {
	case !subscribed:
		return codec.CodeNotSubscribed, "Not subscribed", "", 0
	case err != nil || len(p) < 5:
		return codec.CodeOther, "Malformed submit", "", 0
	case worker < 0:
		return codec.CodeUnauthorized, "Unauthorized worker", "", 0
	}
	jobID, err := codec.Unquote(p[1], nil)
	if err != nil {
		return codec.CodeOther, "Malformed submit", "", 0
	}
	sj, ok := c.lookup(jobID)
	if !ok || sj.j.stale.Load() {
		return codec.CodeJobNotFound, "Job not found", "", 0
	}
	en2hex, err := codec.Unquote(p[2], nil)
	if err != nil || len(en2hex) != 2*sj.en2Size {
		return codec.CodeOther, "Incorrect size of extranonce2", "", 0
	}
	en2 := c.en2[:sj.en2Size]
	if _, err := hex.Decode(en2, en2hex); err != nil {
		return codec.CodeOther, "Malformed extranonce2", "", 0
	}
	ntime, err := hex32(p[3])
	if err != nil {
		return codec.CodeOther, "Incorrect size of ntime", "", 0
	}
	if ntime < sj.j.NTime || ntime-sj.j.NTime > maxNTimeAhead {
		return codec.CodeOther, "ntime out of range", "", 0
	}
	nonce, err := hex32(p[4])
	if err != nil {
		return codec.CodeOther, "Incorrect size of nonce", "", 0
	}
	var vbits uint32
	if len(p) > 5 && !codec.IsNull(p[5]) {
		if vbits, err = codec.ParseUint32Hex(p[5]); err != nil {
			return codec.CodeOther, "Malformed version bits", "", 0
		}
		if vbits&^mask != 0 {
			return codec.CodeOther, "Invalid version bits", "", 0
		}
	}
	ch := c.s.checkers.Get().(*pow.Checker)
	var h [32]byte
	if c.s.cfg.scrypt() {
		h = scryptShareHash(ch, &sj.j.Job, sj.en1, en2, ntime, nonce, vbits, mask)
	} else {
		h = ch.Hash(&sj.j.Job, sj.en1, en2, ntime, nonce, vbits, mask)
	}
	c.s.checkers.Put(ch)
	if !pow.MeetsTarget(h, sj.diff.target) {
		return codec.CodeLowDifficulty, "Low difficulty share", "", 0
	}
	sj.j.mu.Lock()
	_, dup := sj.j.seen[h]
	if !dup {
		sj.j.seen[h] = struct{}{}
	}
	sj.j.mu.Unlock()
	if dup {
		return codec.CodeDuplicate, "Duplicate share", "", 0
	}
	return 0, "", user, sj.diff.diff
}

// lookup finds a job sent to this connection.
func (c *conn) lookup(id []byte) (sentJob, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, sj := range c.sent {
		if sj.j != nil && sj.j.ID == string(id) {
			return sj, true
		}
	}
	return sentJob{}, false
}

var errHex32 = errors.New("poolsim: want 8 hex digits")

// hex32 parses a JSON string of exactly 8 hex digits (ntime, nonce).
func hex32(raw []byte) (uint32, error) {
	s, err := codec.Unquote(raw, nil)
	if err != nil || len(s) != 8 {
		return 0, errHex32
	}
	return codec.ParseUint32Hex(raw)
}
