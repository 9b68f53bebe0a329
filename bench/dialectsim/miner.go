package dialectsim

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// MinerConfig configures a simulated miner.
type MinerConfig struct {
	Kind Kind
	Addr string
	// User, Pass and Worker are the credentials; the stratum kinds
	// authorize as "User.Worker" (just User when Worker is ""), cryptonote
	// sends Worker as "rigid", ethproxy as the "worker" member.
	User, Pass, Worker string
	// Agent is the miner software string; "" means a realistic default
	// per kind (see DefaultAgent).
	Agent string
	// Algo is the cryptonote login "algo" list; nil omits the field.
	Algo []string
	// SessionID is sent as the third mining.subscribe parameter by an
	// ethstratum miner to resume a session; unused by the other kinds.
	SessionID string
	// Timeout bounds every wait for an answer or for work, and the
	// search for one share; 0 means 5s.
	Timeout time.Duration
}

// DefaultAgent is the agent string a miner of kind k sends when
// MinerConfig.Agent is "".
func DefaultAgent(k Kind) string {
	switch k {
	case CryptoNote:
		return "XMRig/6.21.0 (Linux x86_64) libuv/1.44.2 gcc/12.2.0"
	case EthStratum:
		return "ethminer 0.19.0"
	case EthProxy:
		return "ethminer 0.19.0"
	case KawPow:
		return "kawpowminer/1.2.4"
	case Equihash:
		return "nheqminer/0.5c"
	case KHeavyHash:
		return "BzMiner/v17.0.0"
	}
	return ""
}

// Bounds on the miner's loops.
const (
	maxTries       = 1 << 22 // stand-in hashes per share
	maxWorkChanges = 1000    // work changes while looking for one share
)

// Miner is a simulated miner on one connection. Mine, ResubmitLast,
// SubmitRaw and SubmitHashrate are meant for one goroutine at a time;
// the getters are safe to call from anywhere.
type Miner struct {
	cfg     MinerConfig
	timeout time.Duration
	conn    net.Conn
	wmu     sync.Mutex
	ids     atomic.Int64
	done    chan struct{} // closed when the reader stops
	workCh  chan struct{} // signalled on new work
	gen     atomic.Uint64 // current work generation
	base    uint64        // start of the nonce search

	mu       sync.Mutex
	pending  map[string]chan map[string]any
	readErr  error
	sid      string
	en       []byte
	diff     float64  // last set_difficulty
	target   *big.Int // last set_target
	nicehash bool
	work     *mwork
	jobs     int
	lastErr  string

	// owned by the mining goroutine
	cursorGen uint64
	cursor    uint64
	last      *mshare
}

// mwork is the work the miner searches, immutable once published.
type mwork struct {
	gen      uint64
	jobID    string
	diff     float64
	target   *big.Int // 256-bit kinds
	cnDiff   uint64   // cryptonote
	blob     []byte   // cryptonote
	nicehash bool     // cryptonote: keep byte 42
	header   []byte
	en       []byte
	ntime    string
}

// mshare is a share ready to submit.
type mshare struct {
	method string
	params any
}

// minerReq is a request; jsonrpc and worker appear only where the dialect
// has them.
type minerReq struct {
	ID      int64  `json:"id"`
	JSONRPC string `json:"jsonrpc,omitempty"`
	Method  string `json:"method"`
	Worker  string `json:"worker,omitempty"`
	Params  any    `json:"params"`
}

type cnLoginParams struct {
	Login string   `json:"login"`
	Pass  string   `json:"pass"`
	Agent string   `json:"agent"`
	Algo  []string `json:"algo,omitempty"`
	RigID string   `json:"rigid,omitempty"`
}

type cnSubmitParams struct {
	ID     string `json:"id"`
	JobID  string `json:"job_id"`
	Nonce  string `json:"nonce"`
	Result string `json:"result"`
}

// DialMiner connects to cfg.Addr and runs the dialect's login handshake;
// a refusal is an error carrying the pool's message.
func DialMiner(cfg MinerConfig) (*Miner, error) {
	if !cfg.Kind.valid() {
		return nil, fmt.Errorf("dialectsim: unknown kind %q", cfg.Kind)
	}
	if cfg.Agent == "" {
		cfg.Agent = DefaultAgent(cfg.Kind)
	}
	m := &Miner{
		cfg:     cfg,
		timeout: cfg.Timeout,
		done:    make(chan struct{}),
		workCh:  make(chan struct{}, 1),
		pending: make(map[string]chan map[string]any),
	}
	if m.timeout <= 0 {
		m.timeout = 5 * time.Second
	}
	if cfg.Kind != CryptoNote {
		m.base = binary.BigEndian.Uint64(randBytes(8))
	}
	conn, err := net.DialTimeout("tcp", cfg.Addr, m.timeout)
	if err != nil {
		return nil, err
	}
	m.conn = conn
	go m.readLoop()
	if err := m.handshake(); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// Close closes the connection and waits for the reader to stop.
func (m *Miner) Close() error {
	err := m.conn.Close()
	select {
	case <-m.done:
	case <-time.After(m.timeout):
	}
	return err
}

// SessionID is the cryptonote login id or the session id of a stratum
// subscribe answer.
func (m *Miner) SessionID() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sid
}

// Extranonce is the extranonce in force, in hex ("" for cryptonote and
// ethproxy).
func (m *Miner) Extranonce() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return hex.EncodeToString(m.en)
}

// Blob is the current cryptonote job blob in hex.
func (m *Miner) Blob() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.work == nil {
		return ""
	}
	return hex.EncodeToString(m.work.blob)
}

// JobID is the id of the current job (the header hex for ethproxy).
func (m *Miner) JobID() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.work == nil {
		return ""
	}
	return m.work.jobID
}

// Difficulty is the current difficulty in the dialect's unit: the last
// set_difficulty (ethstratum, kheavyhash), the last target (kawpow,
// equihash: set_target or notify; ethproxy: work) converted back, or the
// cryptonote job's effective difficulty.
func (m *Miner) Difficulty() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch m.cfg.Kind {
	case EthStratum, KHeavyHash:
		return m.diff
	case KawPow, Equihash:
		if m.target != nil {
			return difficultyOf(m.cfg.Kind, m.target)
		}
	}
	if m.work != nil {
		return m.work.diff
	}
	return 0
}

// Jobs is the number of jobs received.
func (m *Miner) Jobs() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.jobs
}

// LastError is the message of the last refusal.
func (m *Miner) LastError() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastErr
}

func (m *Miner) userWorker() string {
	if m.cfg.Worker == "" {
		return m.cfg.User
	}
	return m.cfg.User + "." + m.cfg.Worker
}

func (m *Miner) readLoop() {
	defer close(m.done)
	r := bufio.NewReader(m.conn)
	for i := 0; i < maxConnLines; i++ {
		m.conn.SetReadDeadline(time.Now().Add(connIdle))
		line, err := readLine(r)
		if err != nil {
			m.mu.Lock()
			m.readErr = err
			m.mu.Unlock()
			return
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.UseNumber()
		var msg map[string]any
		if dec.Decode(&msg) != nil {
			continue
		}
		m.dispatch(msg)
	}
	m.mu.Lock()
	m.readErr = errors.New("dialectsim: too many lines")
	m.mu.Unlock()
}

// idKey is the pending-map key of a JSON id: the number's text, the
// quoted string, or "null".
func idKey(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case json.Number:
		return x.String()
	case string:
		return strconv.Quote(x)
	}
	return fmt.Sprint(v)
}

func (m *Miner) dispatch(msg map[string]any) {
	key := idKey(msg["id"])
	if method, _ := msg["method"].(string); method != "" {
		m.handlePush(method, msg["params"])
		return
	}
	if m.cfg.Kind == EthProxy && key == "0" {
		if arr, ok := msg["result"].([]any); ok {
			m.mu.Lock()
			m.epWorkLocked(arr)
			m.mu.Unlock()
			return
		}
	}
	m.mu.Lock()
	ch := m.pending[key]
	delete(m.pending, key)
	m.mu.Unlock()
	if ch != nil {
		ch <- msg
	}
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func num(v any) (float64, bool) {
	switch x := v.(type) {
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	case float64:
		return x, true
	}
	return 0, false
}

func parseTarget(v any) *big.Int {
	b, err := decodeHex(str(v), 32)
	if err != nil {
		return nil
	}
	return new(big.Int).SetBytes(b)
}

// setWorkLocked publishes w unless it is the work already in force.
func (m *Miner) setWorkLocked(w *mwork, newJob bool) {
	if old := m.work; old != nil && old.jobID == w.jobID && bytes.Equal(old.en, w.en) &&
		bytes.Equal(old.blob, w.blob) && old.diff == w.diff {
		return
	}
	if newJob {
		m.jobs++
	}
	w.gen = m.gen.Add(1)
	m.work = w
	select {
	case m.workCh <- struct{}{}:
	default:
	}
}

func (m *Miner) handlePush(method string, params any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	arr, _ := params.([]any)
	k := m.cfg.Kind
	if k == CryptoNote {
		if obj, ok := params.(map[string]any); ok && method == "job" {
			m.cnJobLocked(obj)
		}
		return
	}
	switch method {
	case "mining.set_difficulty":
		if len(arr) > 0 {
			if d, ok := num(arr[0]); ok && d > 0 {
				m.diff = d
			}
		}
	case "mining.set_target":
		if len(arr) > 0 {
			if t := parseTarget(arr[0]); t != nil {
				m.target = t
			}
		}
	case "mining.set_extranonce":
		if len(arr) > 0 {
			if en, err := decodeHex(str(arr[0]), -1); err == nil {
				m.en = en
				if m.work != nil {
					w := *m.work
					w.en = en
					m.setWorkLocked(&w, false)
				}
			}
		}
	case "mining.notify":
		m.notifyLocked(arr)
	}
}

func (m *Miner) notifyLocked(arr []any) {
	k := m.cfg.Kind
	want := map[Kind]int{EthStratum: 4, KawPow: 5, Equihash: 8, KHeavyHash: 3}[k]
	if len(arr) < want {
		return
	}
	w := &mwork{jobID: str(arr[0]), en: m.en}
	var err error
	switch k {
	case EthStratum:
		w.header, err = decodeHex(str(arr[2]), 32)
		w.diff, w.target = m.diff, Target(k, m.diff)
	case KawPow:
		w.header, err = decodeHex(str(arr[1]), 32)
		w.target = parseTarget(arr[3])
		if w.target == nil {
			w.target = m.target
		}
	case Equihash:
		w.header, err = decodeHex(str(arr[3]), 32)
		w.ntime = str(arr[5])
		w.target = m.target
	case KHeavyHash:
		w.header, err = decodeHex(str(arr[1]), 32)
		w.diff, w.target = m.diff, Target(k, m.diff)
	}
	if err != nil || w.target == nil {
		return
	}
	if w.diff == 0 {
		w.diff = difficultyOf(k, w.target)
	}
	m.setWorkLocked(w, true)
}

func (m *Miner) cnJobLocked(obj map[string]any) {
	blob, err := decodeHex(str(obj["blob"]), -1)
	if err != nil || len(blob) < cnNonceAt+4 {
		return
	}
	d, err := cnDiffFromTarget(str(obj["target"]))
	if err != nil {
		return
	}
	m.setWorkLocked(&mwork{
		jobID:    str(obj["job_id"]),
		blob:     blob,
		cnDiff:   d,
		diff:     float64(d),
		nicehash: m.nicehash || blob[cnNonceAt+3] != 0,
	}, true)
}

func (m *Miner) epWorkLocked(arr []any) {
	if len(arr) < 3 {
		return
	}
	header, err := decodeHex(str(arr[0]), 32)
	t := parseTarget(arr[2])
	if err != nil || t == nil {
		return
	}
	m.setWorkLocked(&mwork{jobID: hex.EncodeToString(header), header: header, target: t, diff: difficultyOf(EthProxy, t)}, true)
}

// call sends a request and waits for its answer.
func (m *Miner) call(method string, params any) (map[string]any, error) {
	id := m.ids.Add(1)
	req := minerReq{ID: id, Method: method, Params: params}
	if m.cfg.Kind == CryptoNote || m.cfg.Kind == EthProxy {
		req.JSONRPC = "2.0"
	}
	if m.cfg.Kind == EthProxy && method == "eth_submitLogin" {
		req.Worker = m.cfg.Worker
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	return m.roundTrip(strconv.FormatInt(id, 10), b)
}

func (m *Miner) roundTrip(key string, line []byte) (map[string]any, error) {
	ch := make(chan map[string]any, 1)
	m.mu.Lock()
	m.pending[key] = ch
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		if m.pending[key] == ch {
			delete(m.pending, key)
		}
		m.mu.Unlock()
	}()
	m.wmu.Lock()
	m.conn.SetWriteDeadline(time.Now().Add(m.timeout))
	_, err := m.conn.Write(append(line, '\n'))
	m.wmu.Unlock()
	if err != nil {
		return nil, err
	}
	t := time.NewTimer(m.timeout)
	defer t.Stop()
	select {
	case msg := <-ch:
		return msg, nil
	case <-m.done:
		select {
		case msg := <-ch:
			return msg, nil
		default:
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		return nil, fmt.Errorf("dialectsim: connection lost: %w", m.readErr)
	case <-t.C:
		return nil, fmt.Errorf("dialectsim: no answer to id %s within %v", key, m.timeout)
	}
}

// errText is the message of an error member: {"code","message"},
// [code, "message", ...] or a string.
func errText(v any) string {
	switch x := v.(type) {
	case map[string]any:
		if s := str(x["message"]); s != "" {
			return s
		}
	case []any:
		if len(x) > 1 {
			if s := str(x[1]); s != "" {
				return s
			}
		}
	case string:
		return x
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// answerOK reads an answer: ok when there is no error and the result is
// true, a cryptonote status "OK", or any other non-false non-null value.
func answerOK(msg map[string]any) (bool, string) {
	if e := msg["error"]; e != nil {
		return false, errText(e)
	}
	switch r := msg["result"].(type) {
	case nil:
		return false, "null result"
	case bool:
		if !r {
			return false, "result false"
		}
	case map[string]any:
		if s, ok := r["status"]; ok && s != "OK" && s != "KEEPALIVED" {
			return false, fmt.Sprintf("status %v", s)
		}
	}
	return true, ""
}

func (m *Miner) callOK(method string, params any) (map[string]any, error) {
	msg, err := m.call(method, params)
	if err != nil {
		return nil, err
	}
	if ok, e := answerOK(msg); !ok {
		m.mu.Lock()
		m.lastErr = e
		m.mu.Unlock()
		return nil, fmt.Errorf("dialectsim: %s refused: %s", method, e)
	}
	return msg, nil
}

func (m *Miner) handshake() error {
	k := m.cfg.Kind
	switch k {
	case CryptoNote:
		msg, err := m.callOK("login", cnLoginParams{Login: m.cfg.User, Pass: m.cfg.Pass, Agent: m.cfg.Agent, Algo: m.cfg.Algo, RigID: m.cfg.Worker})
		if err != nil {
			return err
		}
		res, _ := msg["result"].(map[string]any)
		job, _ := res["job"].(map[string]any)
		m.mu.Lock()
		defer m.mu.Unlock()
		m.sid = str(res["id"])
		exts, _ := res["extensions"].([]any)
		for _, e := range exts {
			if e == "nicehash" {
				m.nicehash = true
			}
		}
		m.cnJobLocked(job)
		if m.work == nil {
			return errors.New("dialectsim: login answer without a usable job")
		}
		return nil
	case EthProxy:
		if _, err := m.callOK("eth_submitLogin", []any{m.cfg.User, m.cfg.Pass}); err != nil {
			return err
		}
		msg, err := m.callOK("eth_getWork", []any{})
		if err != nil {
			return err
		}
		arr, _ := msg["result"].([]any)
		m.mu.Lock()
		defer m.mu.Unlock()
		m.epWorkLocked(arr)
		if m.work == nil {
			return errors.New("dialectsim: eth_getWork answer without usable work")
		}
		return nil
	}
	var sub []any
	switch k {
	case EthStratum:
		sub = []any{m.cfg.Agent, "EthereumStratum/1.0.0"}
		if m.cfg.SessionID != "" {
			sub = append(sub, m.cfg.SessionID)
		}
	case KawPow:
		sub = []any{m.cfg.Agent}
	case Equihash:
		host, port, _ := net.SplitHostPort(m.cfg.Addr)
		sub = []any{m.cfg.Agent, nil, host, port}
	case KHeavyHash:
		sub = []any{m.cfg.Agent, "EthereumStratum/1.0.0"}
	}
	msg, err := m.callOK("mining.subscribe", sub)
	if err != nil {
		return err
	}
	res, _ := msg["result"].([]any)
	if k != KHeavyHash {
		if len(res) < 2 {
			return fmt.Errorf("dialectsim: subscribe answer %v", msg["result"])
		}
		en, err := decodeHex(str(res[1]), -1)
		if err != nil || len(en) == 0 || len(en) >= fullNonceSize(k) {
			return fmt.Errorf("dialectsim: subscribe extranonce %v", res[1])
		}
		m.mu.Lock()
		m.en = en
		m.sid = str(res[0])
		if k == EthStratum {
			first, _ := res[0].([]any)
			m.sid = ""
			if len(first) > 1 {
				m.sid = str(first[1])
			}
		}
		m.mu.Unlock()
	}
	if k == EthStratum {
		if _, err := m.call("mining.extranonce.subscribe", []any{}); err != nil {
			return err
		}
	}
	_, err = m.callOK("mining.authorize", []any{m.userWorker(), m.cfg.Pass})
	return err
}

// waitWork returns the current work, waiting for some until deadline.
func (m *Miner) waitWork(deadline time.Time) (*mwork, error) {
	for i := 0; i < maxWorkChanges; i++ {
		m.mu.Lock()
		w := m.work
		m.mu.Unlock()
		if w != nil {
			return w, nil
		}
		d := time.Until(deadline)
		if d <= 0 {
			break
		}
		t := time.NewTimer(d)
		select {
		case <-m.workCh:
		case <-m.done:
			t.Stop()
			return nil, errors.New("dialectsim: connection lost while waiting for work")
		case <-t.C:
		}
		t.Stop()
	}
	return nil, errors.New("dialectsim: no work")
}

// eqSolution is the fixed stand-in equihash solution: fd4005 and 1344
// bytes.
var eqSolution = func() []byte {
	b := []byte{0xfd, 0x40, 0x05}
	for i := 0; i < 1344; i++ {
		b = append(b, byte(i*7+1))
	}
	return b
}()

var eqSolutionHex = hex.EncodeToString(eqSolution)

// try hashes nonce number n of w and returns the share and whether it
// meets w's target.
func (m *Miner) try(w *mwork, n uint64) (*mshare, bool) {
	k := m.cfg.Kind
	var c [8]byte
	binary.BigEndian.PutUint64(c[:], m.base+n)
	// tail fills the nonce bytes after the extranonce with the counter.
	tail := func(size int) []byte {
		t := make([]byte, size)
		if size >= 8 {
			copy(t[size-8:], c[:])
		} else {
			copy(t, c[8-size:])
		}
		return t
	}
	cat := func(a, b []byte) []byte { return append(append([]byte(nil), a...), b...) }
	switch k {
	case CryptoNote:
		blob := append([]byte(nil), w.blob...)
		nonce := uint32(n)
		if w.nicehash {
			nonce = uint32(w.blob[cnNonceAt+3])<<24 | uint32(n&0xFFFFFF)
		}
		binary.LittleEndian.PutUint32(blob[cnNonceAt:], nonce)
		h := standIn(blob)
		return &mshare{"submit", cnSubmitParams{
			ID: m.SessionID(), JobID: w.jobID,
			Nonce: hex.EncodeToString(blob[cnNonceAt : cnNonceAt+4]), Result: hex.EncodeToString(h),
		}}, cnMeets(h, w.cnDiff)
	case EthProxy:
		nonce := c[:]
		h := standIn(w.header, nonce)
		return &mshare{"eth_submitWork", []any{
			"0x" + hex.EncodeToString(nonce), "0x" + hex.EncodeToString(w.header),
			"0x" + hex.EncodeToString(standInMix(w.header, nonce)),
		}}, bigMeets(h, w.target)
	case Equihash:
		n2 := tail(32 - len(w.en))
		h := standIn(w.header, w.en, n2, eqSolution)
		return &mshare{"mining.submit", []any{m.userWorker(), w.jobID, w.ntime, hex.EncodeToString(n2), eqSolutionHex}},
			bigMeets(h, w.target)
	}
	t := tail(8 - len(w.en))
	full := cat(w.en, t)
	h := standIn(w.header, full)
	var params []any
	switch k {
	case EthStratum:
		params = []any{m.userWorker(), w.jobID, hex.EncodeToString(t)}
	case KawPow:
		params = []any{m.userWorker(), w.jobID, "0x" + hex.EncodeToString(full),
			"0x" + hex.EncodeToString(w.header), "0x" + hex.EncodeToString(standInMix(w.header, full))}
	case KHeavyHash:
		params = []any{m.userWorker(), w.jobID, "0x" + hex.EncodeToString(full)}
	}
	return &mshare{"mining.submit", params}, bigMeets(h, w.target)
}

// nonceSpace is how many nonces the miner may try on w.
func (m *Miner) nonceSpace(w *mwork) uint64 {
	bits := 64
	switch m.cfg.Kind {
	case CryptoNote:
		bits = 32
		if w.nicehash {
			bits = 24
		}
	case EthStratum, KawPow, KHeavyHash:
		bits = 8 * (8 - len(w.en))
	case Equihash:
		bits = 8 * (32 - len(w.en))
	}
	if bits >= 64 {
		return 1<<64 - 1
	}
	return 1 << bits
}

// search looks for a share on w that meets its target (want) or that
// does not (!want, for tests). It returns nil, nil when the work changed.
func (m *Miner) search(w *mwork, want bool, deadline time.Time) (*mshare, error) {
	if m.cursorGen != w.gen {
		m.cursorGen, m.cursor = w.gen, 0
	}
	space := m.nonceSpace(w)
	for i := 0; i < maxTries; i++ {
		if m.gen.Load() != w.gen {
			return nil, nil
		}
		if i&63 == 63 {
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("dialectsim: no share found within %v (%d hashes)", m.timeout, i)
			}
		}
		if m.cursor >= space {
			return nil, errors.New("dialectsim: nonce range exhausted")
		}
		n := m.cursor
		m.cursor++
		if sh, meets := m.try(w, n); meets == want {
			return sh, nil
		}
	}
	return nil, fmt.Errorf("dialectsim: no share found in %d hashes", maxTries)
}

// find returns a share on the current work that meets the target (want)
// or does not.
func (m *Miner) find(want bool) (*mshare, error) {
	deadline := time.Now().Add(m.timeout)
	for i := 0; i < maxWorkChanges; i++ {
		w, err := m.waitWork(deadline)
		if err != nil {
			return nil, err
		}
		sh, err := m.search(w, want, deadline)
		if err != nil || sh != nil {
			return sh, err
		}
	}
	return nil, errors.New("dialectsim: work changed too often")
}

// submit sends a share and reads the verdict.
func (m *Miner) submit(sh *mshare) (bool, error) {
	msg, err := m.call(sh.method, sh.params)
	if err != nil {
		return false, err
	}
	ok, e := answerOK(msg)
	if !ok {
		m.mu.Lock()
		m.lastErr = e
		m.mu.Unlock()
	}
	return ok, nil
}

// Mine finds and submits n shares on the current work, waiting for work if
// there is none yet and following pushed jobs, difficulty and extranonce
// as they come (a search restarts on new work). Each share is searched
// with the stand-in hash against the current job's target within the
// miner's nonce range: cryptonote varies blob bytes 39..41 and keeps byte
// 42 when the pool advertised "nicehash" or byte 42 is not zero (all four
// bytes otherwise); the stratum kinds vary only the bytes after the
// extranonce. As ethminer does, a set_difficulty applies from the next
// notify. Mine returns how many shares were accepted and rejected; err is
// a transport error or a timeout.
func (m *Miner) Mine(n int) (accepted, rejected int, err error) {
	for i := 0; i < n; i++ {
		sh, err := m.find(true)
		if err != nil {
			return accepted, rejected, err
		}
		m.last = sh
		ok, err := m.submit(sh)
		if err != nil {
			return accepted, rejected, err
		}
		if ok {
			accepted++
		} else {
			rejected++
		}
	}
	return accepted, rejected, nil
}

// ResubmitLast submits the last share Mine found once more (a pool must
// refuse it as a duplicate).
func (m *Miner) ResubmitLast() (ok bool, err error) {
	if m.last == nil {
		return false, errors.New("dialectsim: no share submitted yet")
	}
	return m.submit(m.last)
}

// SubmitRaw writes one line as is and returns the answer with the same id
// (pushed lines are skipped; a line without a readable id waits for an
// answer with id null). An ethproxy line with id 0 cannot be answered:
// id 0 is pushed work.
func (m *Miner) SubmitRaw(line string) (map[string]any, error) {
	key := "null"
	dec := json.NewDecoder(bytes.NewReader([]byte(line)))
	dec.UseNumber()
	var v struct {
		ID any `json:"id"`
	}
	if dec.Decode(&v) == nil {
		key = idKey(v.ID)
	}
	return m.roundTrip(key, []byte(line))
}

// SubmitHashrate sends eth_submitHashrate (ethproxy) with rate in hashes
// per second and a fixed client id.
func (m *Miner) SubmitHashrate(rate uint64) (bool, error) {
	msg, err := m.call("eth_submitHashrate", []any{
		"0x" + strconv.FormatUint(rate, 16), "0x" + hex.EncodeToString(standIn([]byte(m.cfg.User))),
	})
	if err != nil {
		return false, err
	}
	ok, _ := answerOK(msg)
	return ok, nil
}

// Keepalive sends a cryptonote keepalived with the session id and reports
// whether the pool answered {"status":"KEEPALIVED"}.
func (m *Miner) Keepalive() (bool, error) {
	msg, err := m.call("keepalived", map[string]string{"id": m.SessionID()})
	if err != nil {
		return false, err
	}
	res, _ := msg["result"].(map[string]any)
	return msg["error"] == nil && res["status"] == "KEEPALIVED", nil
}
