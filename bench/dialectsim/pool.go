package dialectsim

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"sync"
	"time"
)

// PoolConfig configures a simulated pool.
type PoolConfig struct {
	Kind Kind
	// Addr is the listen address; "" means 127.0.0.1:0.
	Addr string
	// Difficulty is the share difficulty in the dialect's unit; 0 means
	// DefaultDifficulty(Kind).
	Difficulty float64
	// ExtranonceSize is the extranonce size in bytes for ethstratum,
	// kawpow, kheavyhash (default 2, 1..6) and equihash (nonce1, default
	// 4, 1..31); ignored by the other kinds.
	ExtranonceSize int
	// JobInterval pushes a new (not clean) job this often; 0 means jobs
	// change only on NewJob and SetDifficulty.
	JobInterval time.Duration
	// JobHistory is how many jobs stay valid for shares; 0 means 4. A
	// clean job invalidates every older one.
	JobHistory int
	// WorkAfterAuthorize sends the first work after the authorize answer.
	// By default (false) the pool sends the difficulty/target and the
	// first job right after reading mining.authorize and before answering
	// it, as real pools do. Ignored by cryptonote (the job is in the login
	// answer) and ethproxy (the miner asks with eth_getWork).
	WorkAfterAuthorize bool
	// RejectLogin refuses every login/authorize.
	RejectLogin bool
	// SilentLogin never answers login/subscribe/authorize (a hung pool).
	SilentLogin bool
}

// Login is one login or authorize request the pool has seen.
type Login struct {
	User, Pass, Worker, Agent string
	Algo                      []string
}

// PoolStats are the pool's counters. Rejected counts every rejected
// share; Duplicate, LowDiff, Stale (job id unknown or no longer valid),
// BadFormat (malformed share fields) and BadResult (a result or mix digest
// that is not the stand-in hash) count them by reason. BadFormat also
// counts lines that are not JSON at all, which are not shares.
type PoolStats struct {
	Conns     uint64 // connections accepted so far (Pool.Conns: open now)
	Logins    uint64 // logins/authorizes seen, refused ones included
	Accepted  uint64
	Rejected  uint64
	Duplicate uint64
	LowDiff   uint64
	Stale     uint64
	BadFormat uint64
	BadResult uint64
	// AcceptedDiff is the sum of the difficulty (dialect unit) of the
	// accepted shares' jobs.
	AcceptedDiff float64
	// Hashrate is the rate string of the last eth_submitHashrate.
	Hashrate string
}

// Bounds on every loop of the pool.
const (
	maxAccepts   = 1 << 20
	maxConnLines = 1 << 24
	maxTicks     = 1 << 24
	connIdle     = 10 * time.Minute
	writeTimeout = 5 * time.Second
)

// Pool is a simulated pool of one dialect. Its methods are safe for
// concurrent use.
type Pool struct {
	cfg  PoolConfig
	ln   net.Listener
	done chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	conns    map[*pconn]struct{}
	stats    PoolStats
	logins   []Login
	diff     float64
	enSize   int
	enNext   uint64
	jobSeq   uint64
	cnHeight int     // cryptonote: the chain height; only a clean job moves it
	jobs     jobBook // shared jobs: every kind but cryptonote
	seed     []byte
	sessions map[string][]byte // ethstratum session id -> extranonce
}

// pconn is one miner connection; its fields are guarded by Pool.mu
// except c and wmu.
type pconn struct {
	c   net.Conn
	wmu sync.Mutex

	sid        string
	en         []byte
	agent      string
	subscribed bool
	authed     bool
	users      map[string]bool
	jobs       jobBook // cryptonote: this connection's jobs
	sentDiff   float64
}

// job is one unit of work.
type job struct {
	id     string
	clean  bool
	diff   float64  // dialect unit
	target *big.Int // 256-bit kinds
	cnDiff uint64   // cryptonote effective difficulty
	cnHex  string   // cryptonote target hex
	blob   []byte   // cryptonote
	header []byte   // headerhash / header / merkle root (equihash)
	prev   []byte   // equihash previous block hash
	height int
	ntime  uint32
	seen   map[string]bool
}

// jobBook keeps the jobs valid for shares, oldest first.
type jobBook struct {
	jobs []*job
	max  int
}

func (b *jobBook) add(j *job) {
	if j.clean {
		b.jobs = b.jobs[:0]
	}
	b.jobs = append(b.jobs, j)
	if n := len(b.jobs) - b.max; b.max > 0 && n > 0 {
		b.jobs = append(b.jobs[:0], b.jobs[n:]...)
	}
}

func (b *jobBook) find(id string) *job {
	for _, j := range b.jobs {
		if j.id == id {
			return j
		}
	}
	return nil
}

func (b *jobBook) last() *job {
	if len(b.jobs) == 0 {
		return nil
	}
	return b.jobs[len(b.jobs)-1]
}

// StartPool starts a pool listening on cfg.Addr.
func StartPool(cfg PoolConfig) (*Pool, error) {
	if !cfg.Kind.valid() {
		return nil, fmt.Errorf("dialectsim: unknown kind %q", cfg.Kind)
	}
	if cfg.Difficulty < 0 {
		return nil, fmt.Errorf("dialectsim: difficulty %v < 0", cfg.Difficulty)
	}
	if cfg.Difficulty == 0 {
		cfg.Difficulty = DefaultDifficulty(cfg.Kind)
	}
	if cfg.ExtranonceSize == 0 {
		cfg.ExtranonceSize = defaultExtranonceSize(cfg.Kind)
	}
	if err := checkExtranonceSize(cfg.Kind, cfg.ExtranonceSize); err != nil {
		return nil, err
	}
	if cfg.JobHistory <= 0 {
		cfg.JobHistory = 4
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	p := &Pool{
		cfg:      cfg,
		ln:       ln,
		done:     make(chan struct{}),
		conns:    make(map[*pconn]struct{}),
		diff:     cfg.Difficulty,
		enSize:   cfg.ExtranonceSize,
		enNext:   binary.BigEndian.Uint64(randBytes(8)),
		jobs:     jobBook{max: cfg.JobHistory},
		seed:     randBytes(32),
		sessions: make(map[string][]byte),
	}
	if cfg.Kind != CryptoNote {
		p.mu.Lock()
		p.newSharedJobLocked(true)
		p.mu.Unlock()
	}
	p.wg.Add(1)
	go p.acceptLoop()
	if cfg.JobInterval > 0 {
		p.wg.Add(1)
		go p.tickLoop()
	}
	return p, nil
}

func checkExtranonceSize(k Kind, n int) error {
	switch k {
	case EthStratum, KawPow, KHeavyHash:
		if n < 1 || n > 6 {
			return fmt.Errorf("dialectsim: %s extranonce size %d, want 1..6", k, n)
		}
	case Equihash:
		if n < 1 || n > 31 {
			return fmt.Errorf("dialectsim: equihash nonce1 size %d, want 1..31", n)
		}
	}
	return nil
}

// Addr is the address the pool listens on.
func (p *Pool) Addr() string { return p.ln.Addr().String() }

// Close stops the pool and closes every connection.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	p.mu.Unlock()
	err := p.ln.Close()
	p.DropConnections()
	p.wg.Wait()
	return err
}

// DropConnections closes every open connection; the pool keeps listening.
func (p *Pool) DropConnections() {
	for _, c := range p.connList(false) {
		c.c.Close()
	}
}

// Conns is the number of connections open now.
func (p *Pool) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Stats returns a copy of the counters.
func (p *Pool) Stats() PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// Logins returns every login/authorize seen, in order.
func (p *Pool) Logins() []Login {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Login, len(p.logins))
	for i, l := range p.logins {
		l.Algo = append([]string(nil), l.Algo...)
		out[i] = l
	}
	return out
}

// connList returns the open connections, only the logged-in ones when
// authed.
func (p *Pool) connList(authed bool) []*pconn {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*pconn, 0, len(p.conns))
	for c := range p.conns {
		if !authed || c.authed {
			out = append(out, c)
		}
	}
	return out
}

func (p *Pool) acceptLoop() {
	defer p.wg.Done()
	for i := 0; i < maxAccepts; i++ {
		nc, err := p.ln.Accept()
		if err != nil {
			return
		}
		c := &pconn{c: nc, users: make(map[string]bool), jobs: jobBook{max: p.cfg.JobHistory}}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			nc.Close()
			return
		}
		p.conns[c] = struct{}{}
		p.stats.Conns++
		p.mu.Unlock()
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *Pool) tickLoop() {
	defer p.wg.Done()
	t := time.NewTicker(p.cfg.JobInterval)
	defer t.Stop()
	for i := 0; i < maxTicks; i++ {
		select {
		case <-p.done:
			return
		case <-t.C:
			p.NewJob(false)
		}
	}
}

func (p *Pool) serve(c *pconn) {
	defer p.wg.Done()
	defer func() {
		c.c.Close()
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
	}()
	r := bufio.NewReader(c.c)
	for i := 0; i < maxConnLines; i++ {
		c.c.SetReadDeadline(time.Now().Add(connIdle))
		line, err := readLine(r)
		if err != nil {
			return
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var req rpcReq
		if err := json.Unmarshal(line, &req); err != nil || req.Method == "" {
			p.count(&p.stats.BadFormat)
			p.parseError(c)
			continue
		}
		switch p.cfg.Kind {
		case CryptoNote:
			p.cnHandle(c, &req)
		case EthProxy:
			p.epHandle(c, &req)
		default:
			p.stHandle(c, &req)
		}
	}
}

// rpcReq is any request a miner sends.
type rpcReq struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	Worker string          `json:"worker"`
}

func (p *Pool) count(f *uint64) {
	p.mu.Lock()
	*f++
	p.mu.Unlock()
}

// rejectLocked counts a rejected share with its reason counter.
func (p *Pool) rejectLocked(reason *uint64) {
	p.stats.Rejected++
	if reason != nil {
		*reason++
	}
}

func (p *Pool) acceptLocked(j *job) {
	p.stats.Accepted++
	p.stats.AcceptedDiff += j.diff
}

// send writes v as one JSON line.
func (c *pconn) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.sendRaw(b)
}

func (c *pconn) sendRaw(lines ...[]byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.c.SetWriteDeadline(time.Now().Add(writeTimeout))
	for _, b := range lines {
		if _, err := c.c.Write(append(b, '\n')); err != nil {
			return err
		}
	}
	return nil
}

func (p *Pool) parseError(c *pconn) {
	switch p.cfg.Kind {
	case CryptoNote, EthProxy:
		c.send(cnReply{JSONRPC: "2.0", Error: &rpcError{Code: -32700, Message: "Parse error"}})
	default:
		c.send(stReply{Error: []any{20, "Parse error", nil}})
	}
}

// newJobID returns a fresh job id; the caller holds p.mu.
func (p *Pool) newJobIDLocked() string {
	p.jobSeq++
	return fmt.Sprintf("%08x", p.jobSeq)
}

// newSharedJobLocked makes and records a job of a shared-job kind.
func (p *Pool) newSharedJobLocked(clean bool) *job {
	j := &job{
		id:     p.newJobIDLocked(),
		clean:  clean,
		diff:   p.diff,
		target: Target(p.cfg.Kind, p.diff),
		header: randBytes(32),
		height: 3000000 + int(p.jobSeq),
		ntime:  uint32(time.Now().Unix()),
		seen:   make(map[string]bool),
	}
	if p.cfg.Kind == Equihash {
		j.prev = randBytes(32)
	}
	if p.cfg.Kind == EthProxy {
		j.id = fmt.Sprintf("%x", j.header)
	}
	p.jobs.add(j)
	return j
}

// allocExtranonceLocked returns an extranonce of n bytes that is not a
// prefix of, nor prefixed by, any open connection's extranonce.
func (p *Pool) allocExtranonceLocked(n int) []byte {
	var en []byte
	for i := 0; i < 1<<16; i++ {
		p.enNext++
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], p.enNext)
		en = append([]byte(nil), b[8-min(n, 8):]...)
		for len(en) < n {
			en = append([]byte{0}, en...)
		}
		if !p.extranonceInUseLocked(en, nil) {
			return en
		}
	}
	return en
}

func (p *Pool) extranonceInUseLocked(en []byte, except *pconn) bool {
	for c := range p.conns {
		if c == except || c.en == nil {
			continue
		}
		if bytes.HasPrefix(c.en, en) || bytes.HasPrefix(en, c.en) {
			return true
		}
	}
	return false
}

// NewJob pushes a new job to every logged-in connection; clean
// invalidates the older jobs.
func (p *Pool) NewJob(clean bool) {
	if p.cfg.Kind == CryptoNote {
		for _, c := range p.connList(true) {
			p.mu.Lock()
			j := p.cnNewJobLocked(c, clean)
			p.mu.Unlock()
			c.send(cnPush{JSONRPC: "2.0", Method: "job", Params: cnJobOf(j, p.seed)})
		}
		return
	}
	p.mu.Lock()
	j := p.newSharedJobLocked(clean)
	type out struct {
		c     *pconn
		lines [][]byte
	}
	var outs []out
	for c := range p.conns {
		if c.authed {
			outs = append(outs, out{c, p.workLinesLocked(c, j)})
		}
	}
	p.mu.Unlock()
	for _, o := range outs {
		o.c.sendRaw(o.lines...)
	}
}

// SetDifficulty changes the difficulty and pushes it in the dialect's way:
// set_difficulty (ethstratum, kheavyhash) or set_target (kawpow, equihash)
// followed by a new job, or a new job carrying the new target (cryptonote,
// ethproxy). Older jobs stay valid at their own difficulty. d <= 0 is
// ignored.
func (p *Pool) SetDifficulty(d float64) {
	if !(d > 0) {
		return
	}
	p.mu.Lock()
	p.diff = d
	p.mu.Unlock()
	p.NewJob(false)
}

// SetExtranonce gives every subscribed connection a new distinct
// extranonce of size bytes, pushes it with mining.set_extranonce, then
// pushes a clean job. Only ethstratum and kheavyhash have
// mining.set_extranonce; for the other kinds it does nothing.
func (p *Pool) SetExtranonce(size int) {
	if p.cfg.Kind != EthStratum && p.cfg.Kind != KHeavyHash {
		return
	}
	if checkExtranonceSize(p.cfg.Kind, size) != nil {
		return
	}
	type out struct {
		c    *pconn
		line []byte
	}
	var outs []out
	p.mu.Lock()
	p.enSize = size
	for c := range p.conns {
		c.en = nil
	}
	for c := range p.conns {
		if !c.subscribed {
			continue
		}
		c.en = p.allocExtranonceLocked(size)
		if c.sid != "" {
			p.sessions[c.sid] = c.en
		}
		outs = append(outs, out{c, p.setExtranonceLineLocked(c)})
	}
	p.mu.Unlock()
	for _, o := range outs {
		o.c.sendRaw(o.line)
	}
	p.NewJob(true)
}

func (p *Pool) setExtranonceLineLocked(c *pconn) []byte {
	params := []any{fmt.Sprintf("%x", c.en)}
	if p.cfg.Kind == KHeavyHash {
		params = append(params, 8-len(c.en))
	}
	b, _ := json.Marshal(stPush{Method: "mining.set_extranonce", Params: params})
	return b
}

// recordLoginLocked records a login.
func (p *Pool) recordLoginLocked(l Login) {
	p.logins = append(p.logins, l)
	p.stats.Logins++
}
