package miner

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratum-proxy/stratum-proxy/codec"
	"github.com/stratum-proxy/stratum-proxy/proxy/pow"
)

// Config configures a Miner. Addr is required; every other zero value is
// usable.
type Config struct {
	// Addr is the pool's (or proxy's) host:port.
	Addr string
	// TLS, if set, connects with TLS (stratum+ssl) using this config.
	TLS *tls.Config
	// User and Password are sent with mining.authorize; User is also the
	// worker name of every submit.
	User, Password string
	// UserAgent is the first mining.subscribe param and the answer to
	// client.get_version. "" means "benchminer/1.0".
	UserAgent string
	// SessionID, if not "", is sent as the second mining.subscribe param
	// to ask for an earlier session back (session restore).
	SessionID string
	// ExtranonceSubscribe sends mining.extranonce.subscribe after
	// authorize, as cpuminer-opt does (pooler's minerd does not). Its
	// answer is not waited for: ckpool never answers it.
	ExtranonceSubscribe bool
	// Configure sends mining.configure with version-rolling before
	// subscribe (BIP310), asking for VersionMask.
	Configure bool
	// VersionMask is the version-rolling mask asked for by Configure.
	// 0 means 1fffe000 (the BIP320 general-purpose bits).
	VersionMask uint32
	// SubmitID, if > 0, is the id of every mining.submit (cpuminer uses
	// 4). 0 means every request gets the next id.
	SubmitID int
	// Timeout bounds the dial and each handshake answer. 0 means 30s.
	Timeout time.Duration
	// Algorithm is the proof of work Mine searches with: "" or "sha256d"
	// (SHA256d), or "scrypt" (Scrypt: Litecoin's scrypt, pow.ScryptHash,
	// where a share of difficulty d meets pow.ScryptTarget(d), 2^16 times
	// the sha256d target, as scrypt pools count difficulty). A scrypt hash
	// costs about a millisecond: keep scrypt difficulties low (1e-4 is
	// about 7 hashes, 0.01 about 655). Dial rejects other values.
	Algorithm string
}

// Defaults for Config.
const (
	defaultUserAgent   = "benchminer/1.0"
	defaultVersionMask = 0x1fffe000 // BIP320: bits 13-28 are free to roll
	defaultTimeout     = 30 * time.Second
	// readBufSize fits a mining.notify with a large coinbase; longer lines
	// are assembled up to maxLineSize.
	readBufSize = 4 << 10
	// maxLineSize is 4x the proxy's and codec's default line limit, so a
	// test can see what a peer sends even when it is oversized.
	maxLineSize = 4 * codec.DefaultMaxLineSize
	// maxNotes bounds the recorded notifications per miner (a flood of
	// show_message must not grow memory without bound).
	maxNotes = 256
	// unmatchedLen bounds lines kept for ReadUnmatched.
	unmatchedLen = 64
)

// Error is a request the pool answered with an error (or with false).
type Error struct {
	Method  string // the request's method
	Code    int    // stratum code (20..25) or JSON-RPC code; 0 for a bare false
	Message string
}

// Error formats the refused method, code and message.
func (e *Error) Error() string {
	return fmt.Sprintf("miner: %s rejected: %d %s", e.Method, e.Code, e.Message)
}

// ErrClosed is returned by calls on a Miner whose connection has ended.
var ErrClosed = errors.New("miner: connection closed")

// Notification is a pool notification or request the miner recorded
// (every method except mining.notify).
type Notification struct {
	Method string
	Params []byte // raw JSON params (a copy)
	Time   time.Time
}

// Reconnect is a recorded client.reconnect; Host "" and Port 0 when the
// pool sent empty params (reconnect to the same address).
type Reconnect struct {
	Host string
	Port int
	Wait int
}

// Miner is a connected, authorized test miner.
type Miner struct {
	// Static after Dial.
	cfg  Config
	nc   net.Conn
	done chan struct{} // closed when the reader ends

	wmu    sync.Mutex // serializes writes and call registration order
	nextID int        // guarded by wmu

	mu         sync.Mutex // guards the fields below
	pending    map[string][]pendingCall
	en1        []byte
	en2Size    int
	sid        string
	diff       float64
	mask       uint32
	job        *Job
	jobCh      chan struct{} // closed when a new job arrives
	notes      []Notification
	reconnects []Reconnect
	err        error // why the reader ended

	latest    atomic.Pointer[Job] // the newest job, read by Mine's loop
	unmatched chan string
	algo      *powFuncs // Config.Algorithm's hash, target and difficulty

	searchMu sync.Mutex // serializes Mine; guards the search state
	en2Ctr   uint64
	nonce    uint32
	checker  pow.Checker
}

// pendingCall is a request waiting for its answer.
type pendingCall struct {
	method string
	ch     chan response // buffered: the reader never blocks on it
}

type response struct {
	result []byte
	code   int
	msg    string
	isErr  bool
	err    error
}

// Dial connects to cfg.Addr, (configures,) subscribes and authorizes, and
// returns once authorize is answered. A refused request returns an *Error
// with the pool's code (24 for an unknown user), and the connection is
// closed.
func Dial(cfg Config) (*Miner, error) {
	algo, err := algoFuncs(cfg.Algorithm)
	if err != nil {
		return nil, err
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = defaultUserAgent
	}
	if cfg.VersionMask == 0 {
		cfg.VersionMask = defaultVersionMask
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultTimeout
	}
	var nc net.Conn
	if cfg.TLS != nil {
		nc, err = tls.DialWithDialer(&net.Dialer{Timeout: cfg.Timeout}, "tcp", cfg.Addr, cfg.TLS)
	} else {
		nc, err = net.DialTimeout("tcp", cfg.Addr, cfg.Timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("miner: dial %s: %w", cfg.Addr, err)
	}
	m := &Miner{
		cfg:       cfg,
		nc:        nc,
		done:      make(chan struct{}),
		pending:   make(map[string][]pendingCall),
		diff:      1, // stratum's difficulty before any set_difficulty
		jobCh:     make(chan struct{}),
		unmatched: make(chan string, unmatchedLen),
		en2Ctr:    rand.Uint64(),
		algo:      algo,
	}
	go m.readLoop()
	if err := m.handshake(); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

func (m *Miner) handshake() error {
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.Timeout)
	defer cancel()
	if m.cfg.Configure {
		p := []byte(`[["version-rolling"],{"version-rolling.mask":"`)
		p = pow.AppendHex32(p, m.cfg.VersionMask)
		p = append(p, `","version-rolling.min-bit-count":2}]`...)
		// The granted mask is applied by the reader (see dispatch); a pool
		// without BIP310 answers an error, which only means no rolling.
		if _, err := m.request(ctx, codec.MethodConfigure, p, 0); err != nil {
			return err
		}
	}

	p := codec.AppendStringS([]byte{'['}, m.cfg.UserAgent)
	if m.cfg.SessionID != "" {
		p = append(p, ',')
		p = codec.AppendStringS(p, m.cfg.SessionID)
	}
	p = append(p, ']')
	r, err := m.request(ctx, codec.MethodSubscribe, p, 0)
	if err == nil {
		err = rejected(codec.MethodSubscribe, r)
	}
	if err != nil {
		return err // including a bad result, see dispatch
	}

	p = codec.AppendStringS([]byte{'['}, m.cfg.User)
	p = append(p, ',')
	p = codec.AppendStringS(p, m.cfg.Password)
	p = append(p, ']')
	r, err = m.request(ctx, codec.MethodAuthorize, p, 0)
	if err == nil {
		err = rejected(codec.MethodAuthorize, r)
	}
	if err != nil {
		return err
	}
	if m.cfg.ExtranonceSubscribe {
		if _, err := m.send(codec.MethodExtranonceSubscribe, nil, 0); err != nil {
			return err
		}
	}
	return nil
}

// rejected turns an error or false answer into an *Error.
func rejected(method string, r response) error {
	if r.isErr {
		return &Error{Method: method, Code: r.code, Message: r.msg}
	}
	if string(r.result) == "false" {
		return &Error{Method: method, Message: "false"}
	}
	return nil
}

// parseConfigure applies a mining.configure result's version-rolling mask.
func (m *Miner) parseConfigure(res []byte) {
	if v, ok := codec.ObjectField(res, "version-rolling"); !ok || string(v) != "true" {
		return
	}
	if raw, ok := codec.ObjectField(res, "version-rolling.mask"); ok {
		if mask, err := codec.ParseUint32Hex(raw); err == nil {
			m.mu.Lock()
			m.mask = mask
			m.mu.Unlock()
		}
	}
}

// parseSubscribe applies [subscriptions, extranonce1, extranonce2_size].
func (m *Miner) parseSubscribe(res []byte) error {
	p, err := codec.SplitArray(res, nil)
	if err != nil || len(p) < 3 {
		return fmt.Errorf("miner: bad subscribe result %s", res)
	}
	en1hex, err1 := codec.Unquote(p[1], nil)
	en1, err2 := hex.DecodeString(string(en1hex))
	n, err3 := codec.ParseInt(p[2])
	if err1 != nil || err2 != nil || err3 != nil || n < 0 {
		return fmt.Errorf("miner: bad subscribe result %s", res)
	}
	m.mu.Lock()
	m.en1, m.en2Size, m.sid = en1, int(n), subscriptionID(p[0])
	m.mu.Unlock()
	return nil
}

// subscriptionID finds the mining.notify subscription id in
// [["mining.set_difficulty",id],["mining.notify",id]] (or a flat
// ["mining.notify",id]); the first id found otherwise.
func subscriptionID(subs []byte) string {
	var first string
	var walk func(raw []byte) string
	walk = func(raw []byte) string {
		el, err := codec.SplitArray(raw, nil)
		if err != nil {
			return ""
		}
		if len(el) >= 2 {
			name, e1 := codec.Unquote(el[0], nil)
			id, e2 := codec.Unquote(el[1], nil)
			if e1 == nil && e2 == nil {
				if first == "" {
					first = string(id)
				}
				if string(name) == codec.MethodNotify {
					return string(id)
				}
			}
		}
		for _, e := range el {
			if s := walk(e); s != "" {
				return s
			}
		}
		return ""
	}
	if s := walk(subs); s != "" {
		return s
	}
	return first
}

// send writes a request and registers its answer channel, atomically with
// respect to other requests so that answers to equal ids stay FIFO. id 0
// takes the next id.
func (m *Miner) send(method string, params []byte, id int) (chan response, error) {
	ch := make(chan response, 1)
	m.wmu.Lock()
	defer m.wmu.Unlock()
	if id <= 0 {
		m.nextID++
		id = m.nextID
	}
	key := strconv.Itoa(id)
	m.mu.Lock()
	if m.err != nil {
		m.mu.Unlock()
		return nil, ErrClosed
	}
	m.pending[key] = append(m.pending[key], pendingCall{method, ch})
	m.mu.Unlock()
	line := codec.AppendRequest(nil, []byte(key), method, params)
	_ = m.nc.SetWriteDeadline(time.Now().Add(m.cfg.Timeout))
	if _, err := m.nc.Write(line); err != nil {
		m.nc.Close()
		return nil, fmt.Errorf("miner: write %s: %w", method, err)
	}
	return ch, nil
}

// request sends a request and waits for its answer.
func (m *Miner) request(ctx context.Context, method string, params []byte, id int) (response, error) {
	ch, err := m.send(method, params, id)
	if err != nil {
		return response{}, err
	}
	select {
	case r := <-ch:
		return r, r.err
	case <-ctx.Done():
		return response{}, fmt.Errorf("miner: %s: %w", method, ctx.Err())
	}
}

// Call sends any request (params is raw JSON; "" means []) and waits for
// its answer: the raw result, or the error code and message. For tests of
// methods the Miner has no helper for.
func (m *Miner) Call(ctx context.Context, method, params string) (result []byte, code int, msg string, err error) {
	r, err := m.request(ctx, method, []byte(params), 0)
	if err != nil {
		return nil, 0, "", err
	}
	return r.result, r.code, r.msg, nil
}

// SendRaw writes line as it is (a "\n" is added when missing), for
// bad-input tests. Its answer, if any, is not matched to a request unless
// its id happens to equal a pending one: read it with ReadUnmatched.
func (m *Miner) SendRaw(line string) error {
	b := []byte(line)
	if len(b) == 0 || b[len(b)-1] != '\n' {
		b = append(b, '\n')
	}
	m.wmu.Lock()
	defer m.wmu.Unlock()
	_ = m.nc.SetWriteDeadline(time.Now().Add(m.cfg.Timeout))
	_, err := m.nc.Write(b)
	return err
}

// ReadUnmatched returns the next line the miner could not match: a
// response to no pending request (such as an answer to SendRaw) or a line
// that is not valid JSON-RPC. At most 64 such lines are kept; later ones
// are dropped until they are read.
func (m *Miner) ReadUnmatched(ctx context.Context) (string, error) {
	select {
	case l := <-m.unmatched:
		return l, nil
	case <-ctx.Done():
		return "", ctx.Err()
	case <-m.done:
		select {
		case l := <-m.unmatched:
			return l, nil
		default:
			return "", ErrClosed
		}
	}
}

func (m *Miner) readLoop() {
	br := bufio.NewReaderSize(m.nc, readBufSize)
	var long []byte
	var msg codec.Message
	var err error
	for {
		var line []byte
		line, err = br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) || len(long) > 0 {
			long = append(long, line...)
			if len(long) > maxLineSize {
				err = codec.ErrLineTooLong
				break
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			if err != nil {
				break
			}
			line, long = long, long[:0]
		} else if err != nil {
			break
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if codec.Decode(line, &msg) != nil {
			m.unmatch(line)
			continue
		}
		m.dispatch(&msg, line)
	}
	m.nc.Close()
	m.mu.Lock()
	if err == nil || errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) {
		err = ErrClosed
	} else {
		err = fmt.Errorf("%w: %w", ErrClosed, err)
	}
	m.err = err
	pending := m.pending
	m.pending = nil
	m.mu.Unlock()
	for _, calls := range pending {
		for _, pc := range calls {
			pc.ch <- response{err: ErrClosed}
		}
	}
	close(m.done)
}

func (m *Miner) unmatch(line []byte) {
	select {
	case m.unmatched <- string(line):
	default:
	}
}

func (m *Miner) dispatch(msg *codec.Message, line []byte) {
	if msg.Method == nil {
		m.mu.Lock()
		key := string(msg.ID)
		calls := m.pending[key]
		var pc pendingCall
		if len(calls) > 0 {
			pc = calls[0]
			if len(calls) == 1 {
				delete(m.pending, key)
			} else {
				m.pending[key] = calls[1:]
			}
		}
		m.mu.Unlock()
		if pc.ch == nil {
			m.unmatch(line)
			return
		}
		r := response{result: append([]byte(nil), msg.Result...)}
		if code, text, ok, err := codec.ParseError(msg.Error); ok || err != nil {
			r.isErr, r.code, r.msg = true, code, string(text)
			if err != nil {
				r.code = codec.CodeOther
			}
		}
		// The layout and mask take effect here, in the reader, so that a
		// notify right behind the answer (a restored session's cached job)
		// is built with them.
		switch {
		case r.isErr:
		case pc.method == codec.MethodSubscribe:
			r.err = m.parseSubscribe(r.result)
		case pc.method == codec.MethodConfigure:
			m.parseConfigure(r.result)
		}
		pc.ch <- r
		return
	}
	method := string(msg.Method)
	switch method {
	case codec.MethodNotify:
		m.onNotify(msg.Params)
		return
	case codec.MethodSetDifficulty:
		if p, err := codec.SplitArray(msg.Params, nil); err == nil && len(p) > 0 {
			if d, err := codec.ParseFloat(p[0]); err == nil && d > 0 {
				m.mu.Lock()
				m.diff = d
				m.mu.Unlock()
			}
		}
	case codec.MethodSetExtranonce:
		if p, err := codec.SplitArray(msg.Params, nil); err == nil && len(p) > 0 {
			if h, err := codec.Unquote(p[0], nil); err == nil {
				if en1, err := hex.DecodeString(string(h)); err == nil {
					m.mu.Lock()
					m.en1 = en1
					if len(p) > 1 {
						if n, err := codec.ParseInt(p[1]); err == nil && n >= 0 {
							m.en2Size = int(n)
						}
					}
					m.mu.Unlock()
				}
			}
		}
	case codec.MethodSetVersionMask:
		if p, err := codec.SplitArray(msg.Params, nil); err == nil && len(p) > 0 {
			if v, err := codec.ParseUint32Hex(p[0]); err == nil {
				m.mu.Lock()
				m.mask = v
				m.mu.Unlock()
			}
		}
	case codec.MethodReconnect:
		var rc Reconnect
		if p, err := codec.SplitArray(msg.Params, nil); err == nil {
			if len(p) > 0 {
				if h, err := codec.Unquote(p[0], nil); err == nil {
					rc.Host = string(h)
				}
			}
			if len(p) > 1 {
				rc.Port = intParam(p[1])
			}
			if len(p) > 2 {
				rc.Wait = intParam(p[2])
			}
		}
		m.mu.Lock()
		m.reconnects = append(m.reconnects, rc)
		m.mu.Unlock()
	case codec.MethodGetVersion:
		m.answer(msg.ID, codec.AppendStringS(nil, m.cfg.UserAgent))
	case codec.MethodPing:
		m.answer(msg.ID, []byte(`"pong"`))
	}
	m.mu.Lock()
	if len(m.notes) == maxNotes {
		m.notes = append(m.notes[:0], m.notes[1:]...)
	}
	m.notes = append(m.notes, Notification{Method: method, Params: append([]byte(nil), msg.Params...), Time: time.Now()})
	m.mu.Unlock()
}

// intParam reads a port or wait that pools send as a number or a string.
func intParam(raw []byte) int {
	if n, err := codec.ParseInt(raw); err == nil {
		return int(n)
	}
	if s, err := codec.Unquote(raw, nil); err == nil {
		n, _ := strconv.Atoi(string(s))
		return n
	}
	return 0
}

// answer replies to a request from the pool (when it has an id).
func (m *Miner) answer(id, result []byte) {
	if codec.IsNull(id) {
		return
	}
	line := codec.AppendResult(nil, id, result)
	m.wmu.Lock()
	defer m.wmu.Unlock()
	_ = m.nc.SetWriteDeadline(time.Now().Add(m.cfg.Timeout))
	if _, err := m.nc.Write(line); err != nil {
		m.nc.Close()
	}
}

func (m *Miner) onNotify(params []byte) {
	p, err := codec.SplitArray(params, nil)
	if err != nil {
		return
	}
	pj, clean, err := pow.ParseNotify(p)
	if err != nil {
		return
	}
	m.mu.Lock()
	j := &Job{
		Job:             pj,
		Clean:           clean,
		Extranonce1:     m.en1,
		Extranonce2Size: m.en2Size,
		Difficulty:      m.diff,
		VersionMask:     m.mask,
		Received:        time.Now(),
	}
	m.job = j
	m.latest.Store(j)
	close(m.jobCh)
	m.jobCh = make(chan struct{})
	m.mu.Unlock()
}

// Close closes the connection and waits for the reader to end. It returns
// nil; calling it again does nothing.
func (m *Miner) Close() error {
	m.nc.Close()
	<-m.done
	return nil
}

// Closed reports whether the connection has ended (closed by either side).
func (m *Miner) Closed() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

// Done is closed when the connection has ended.
func (m *Miner) Done() <-chan struct{} { return m.done }

// Err returns why the connection ended, nil while it is open: ErrClosed
// for a close by either side, or a read failure wrapping ErrClosed (so
// errors.Is(err, ErrClosed) holds for every ended connection).
func (m *Miner) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// Extranonce1 returns the current extranonce1 (a copy): from subscribe,
// or the latest mining.set_extranonce.
func (m *Miner) Extranonce1() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]byte(nil), m.en1...)
}

// Extranonce2Size returns the current extranonce2 size.
func (m *Miner) Extranonce2Size() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.en2Size
}

// SessionID returns the subscription id the pool gave (the id of the
// mining.notify subscription), to pass as Config.SessionID to restore.
func (m *Miner) SessionID() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sid
}

// Difficulty returns the latest mining.set_difficulty (1 before any).
// It changes as soon as set_difficulty is read, before the notify that
// usually follows it: to wait for work at a new difficulty, wait for a
// Job whose Difficulty is the new one (WaitJob), or a share mined now may
// be on the previous job.
func (m *Miner) Difficulty() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.diff
}

// VersionMask returns the granted version-rolling mask: from
// mining.configure, or the latest mining.set_version_mask; 0 without
// version rolling.
func (m *Miner) VersionMask() uint32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mask
}

// Notifications returns a copy of the recorded notifications and pool
// requests (all but mining.notify; the latest 256), oldest first.
func (m *Miner) Notifications() []Notification {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Notification(nil), m.notes...)
}

// Reconnects returns the number of client.reconnect received.
func (m *Miner) Reconnects() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.reconnects)
}

// ReconnectRequests returns the client.reconnect requests received.
func (m *Miner) ReconnectRequests() []Reconnect {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Reconnect(nil), m.reconnects...)
}

// LocalAddr is the miner's end of its connection (ip:port).
func (m *Miner) LocalAddr() string { return m.nc.LocalAddr().String() }
