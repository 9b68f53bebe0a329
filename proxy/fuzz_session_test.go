package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/stratum-proxy/stratum-proxy/bench/poolsim"
	"github.com/stratum-proxy/stratum-proxy/metrics"
	"github.com/stratum-proxy/stratum-proxy/proxy/pow"
	"github.com/stratum-proxy/stratum-proxy/store"
)

// FuzzSessionStateMachine turns random bytes into a sequence of Stratum v1
// miner messages and connection events (subscribe with and without a
// session id, configure, authorize with known, second-account and unknown
// names, extranonce.subscribe, suggest_difficulty, good, garbled and
// repeated shares, garbage, oversized lines, early closes, reconnects,
// pool jobs) against one real proxy in front of a validating pool
// simulator, and checks after every input:
//
//   - no panic: proxy_panics_total stays 0;
//   - every request with an id is answered at most once under that id,
//     and exactly once when the connection is still open once the answers
//     had time to come;
//   - every line the proxy writes is JSON;
//   - no share reaches the pool twice (the simulator's duplicate count
//     stays 0) and none below the pool's difficulty (its low-difficulty
//     count stays 0).
//
// One proxy serves every input of a fuzzing process (it is built once per
// process, in the fuzz function); inputs use fresh connections.
//
//	go test -run='^$' -fuzz='^FuzzSessionStateMachine$' -fuzztime=2m ./proxy
func FuzzSessionStateMachine(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	rig := newFuzzRig(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		rig.run(t, data)
	})
}

// Operations: the low 4 bits of an op byte pick one; fuzzSync (the top
// bit) waits for every answer after it.
const (
	fopSubscribe = iota
	fopSubscribeSID
	fopConfigure
	fopAuthorize
	fopAuthorize2
	fopAuthorizeBad
	fopXNSubscribe
	fopSuggest
	fopSubmitGood
	fopSubmitGarbled
	fopSubmitAgain
	fopGarbage
	fopOversized
	fopReconnect
	fopMisc
	fopPool

	fuzzSync = 0x80
)

// Bounds of one input.
const (
	fuzzMaxOps     = 64
	fuzzAnswerWait = 4 * time.Second // > AuthorizeWait and ShareTimeout below
	fuzzJobWait    = 300 * time.Millisecond
	fuzzMaxHashes  = 1 << 21 // ~500 times the expectation at 1e-6
	fuzzMaxLine    = 4096
)

func fuzzSeeds() [][]byte {
	s := func(b ...byte) []byte { return b }
	const y = fuzzSync
	return [][]byte{
		// The happy path: subscribe, authorize, three shares, one again.
		s(fopSubscribe|y, fopAuthorize|y, fopSubmitGood|y, 1, 2, fopSubmitGood, 3, 4, fopSubmitGood|y, 5, 6, fopSubmitAgain|y),
		// Restore: mine, leave, come back with the session id, mine, repeat
		// the last share on the restored session.
		s(fopSubscribe|y, fopAuthorize|y, fopSubmitGood|y, 7, 7, fopReconnect|y, 0, fopSubscribeSID|y, 0, fopAuthorize|y, fopSubmitAgain|y, fopSubmitGood|y, 8, 8),
		// Configure first (version rolling), extranonce.subscribe,
		// suggest_difficulty, then garbled shares of each kind.
		s(fopConfigure|y, 0, 0x1f, 0xff, 0xe0, 0x00, fopSubscribe, fopXNSubscribe, fopSuggest, 1, fopAuthorize|y,
			fopSubmitGarbled, 0, fopSubmitGarbled, 1, fopSubmitGarbled, 2, fopSubmitGarbled, 3, fopSubmitGarbled, 4,
			fopSubmitGarbled, 5, fopSubmitGarbled, 6, fopSubmitGarbled, 7, fopSubmitGarbled|y, 8),
		// Garbage, misc requests, then an oversized line closes the miner.
		s(fopGarbage, 5, 'x', 'y', '[', '1', ']', fopMisc, 0, fopMisc, 1, fopMisc, 2, fopMisc, 3, fopSubscribe|y, fopGarbage|y, 3, 0, 0xff, '"', fopOversized, 9),
		// An unknown user is answered 24 and closed; the next op reconnects.
		s(fopSubscribe, fopAuthorizeBad|y, 0, fopSubscribe|y, fopAuthorize|y, fopSubmitGood|y, 9, 9),
		// Account switch on one connection, shares on both sides of it.
		s(fopSubscribe|y, fopAuthorize|y, fopSubmitGood|y, 10, 10, fopAuthorize2|y, fopSubmitGood|y, 11, 11, fopAuthorize|y),
		// An early close with shares in flight, a pool job in between, a
		// restore and a stale share.
		s(fopSubscribe|y, fopAuthorize|y, fopSubmitGood, 12, 12, fopSubmitGood, 13, 13, fopReconnect, 1, fopPool|y, 1,
			fopSubscribeSID|y, 0, fopAuthorize|y, fopSubmitAgain|y, fopSubmitGood|y, 14, 14),
		// Authorize before subscribe, submit before anything.
		s(fopSubmitGood|y, 1, 1, fopAuthorize|y, fopSubmitGood|y, 2, 2, fopSubscribe|y, fopSubmitGood|y, 3, 3),
	}
}

// fuzzRig is the proxy, pool and two accounts every input runs against.
type fuzzRig struct {
	met   *metrics.Registry
	srv   *Server
	pool  *poolsim.Server
	user  string // an issued name
	user2 string // a name of another account on the same pool
}

func newFuzzRig(f *testing.F) *fuzzRig {
	st, err := store.Open(filepath.Join(f.TempDir(), "proxy.db"), nil)
	if err != nil {
		f.Fatal(err)
	}
	pool, err := poolsim.Start(poolsim.Config{Difficulty: testDiff})
	if err != nil {
		f.Fatal(err)
	}
	if err := st.PutPool(store.Pool{Addr: pool.Addr(), Algorithm: "sha256"}); err != nil {
		f.Fatal(err)
	}
	r := &fuzzRig{met: metrics.New(metrics.Config{Tag: "fuzz"}), pool: pool}
	if r.user, _, err = st.RegisterUser(store.Account{Pool: pool.Addr(), User: "acct", Password: "x"}, nil); err != nil {
		f.Fatal(err)
	}
	if r.user2, _, err = st.RegisterUser(store.Account{Pool: pool.Addr(), User: "acct2", Password: "x"}, nil); err != nil {
		f.Fatal(err)
	}
	cfg := fastCfg()
	cfg.Addr = "127.0.0.1:0"
	cfg.Store = st
	cfg.Metrics = r.met
	cfg.Loops = 2
	cfg.SessionGrace = 2 * time.Second
	cfg.AuthorizeWait = time.Second
	cfg.ShareTimeout = 2 * time.Second
	cfg.MaxLineSize = fuzzMaxLine
	if testing.Verbose() {
		cfg.Log = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).Level(zerolog.WarnLevel)
	}
	srv, err := New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		f.Fatal(err)
	}
	r.srv = srv
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			f.Errorf("stop: %v", err)
		}
		pool.Close()
		st.Close()
	})
	return r
}

// fuzzRun is one input in progress.
type fuzzRun struct {
	t     *testing.T
	rig   *fuzzRig
	data  []byte
	pos   int
	trace []string
	conn  *fuzzConn
	sid   string // the last session id the proxy handed out in this input
	good  string // params of the last mined share, for fopSubmitAgain
	conns int
}

func (r *fuzzRig) run(t *testing.T, data []byte) {
	fr := &fuzzRun{t: t, rig: r, data: data}
	defer func() {
		if fr.conn != nil {
			fr.conn.c.Close()
		}
	}()
	for ops := 0; fr.pos < len(data) && ops < fuzzMaxOps; ops++ {
		op := fr.next()
		fr.step(op&0x0f, op&fuzzSync != 0)
	}
	if fr.conn != nil {
		fr.finish(true)
	}
	text := fr.scrape()
	if v, _ := fuzzSample(text, "proxy_panics_total"); v != 0 {
		fr.fail("proxy_panics_total = %v", v)
	}
	st := r.pool.Stats()
	if st.Duplicate != 0 || st.LowDifficulty != 0 {
		fr.fail("the pool saw %d duplicate and %d low-difficulty shares (stats %+v)", st.Duplicate, st.LowDifficulty, st)
	}
	if testing.Verbose() {
		t.Logf("%d ops, %d connections; pool so far: %d submits, %d accepted, %d stale", len(fr.trace), fr.conns, st.Submits, st.Accepted, st.Stale)
	}
}

func (fr *fuzzRun) next() byte {
	if fr.pos >= len(fr.data) {
		return 0
	}
	b := fr.data[fr.pos]
	fr.pos++
	return b
}

func (fr *fuzzRun) bytesN(n int) []byte {
	end := min(fr.pos+n, len(fr.data))
	b := fr.data[fr.pos:end]
	fr.pos = end
	return b
}

func (fr *fuzzRun) fail(format string, args ...any) {
	fr.t.Helper()
	fr.t.Fatalf("%s\nops:\n  %s", fmt.Sprintf(format, args...), strings.Join(fr.trace, "\n  "))
}

func (fr *fuzzRun) scrape() string {
	var buf bytes.Buffer
	fr.rig.met.WritePrometheus(&buf)
	return buf.String()
}

func (fr *fuzzRun) note(format string, args ...any) {
	fr.trace = append(fr.trace, fmt.Sprintf(format, args...))
}

// c returns the current connection, dialing one when there is none or
// the proxy closed the last one.
func (fr *fuzzRun) c() *fuzzConn {
	if fr.conn != nil && fr.conn.isClosed() {
		fr.finish(false)
	}
	if fr.conn == nil {
		c, err := net.Dial("tcp", fr.rig.srv.Addr())
		if err != nil {
			fr.fail("dial: %v", err)
		}
		fr.conn = newFuzzConn(c)
		fr.conns++
		fr.note("-- connection %d", fr.conns)
	}
	return fr.conn
}

// finish ends the current connection: when wait, it first waits for the
// answers; then it checks the answer invariants and closes the socket.
func (fr *fuzzRun) finish(wait bool) {
	fr.t.Helper()
	fc := fr.conn
	fr.conn = nil
	if wait {
		fc.settle(fuzzAnswerWait)
	}
	fc.mu.Lock()
	if sid := fc.sid; sid != "" {
		fr.sid = sid
	}
	msg := fc.checkLocked(wait)
	fc.mu.Unlock()
	fc.c.Close()
	<-fc.done
	if msg == "" {
		fc.mu.Lock()
		msg = fc.checkLocked(false) // answers that came while closing
		fc.mu.Unlock()
	}
	if msg != "" {
		fr.fail("%s", msg)
	}
}

func (fr *fuzzRun) step(op byte, sync bool) {
	fr.t.Helper()
	switch op {
	case fopSubscribe:
		fr.request("mining.subscribe", `["fuzz/1.0"]`)
	case fopSubscribeSID:
		sel := fr.next()
		sid := fr.sid
		if fc := fr.conn; fc != nil {
			fc.mu.Lock()
			if fc.sid != "" {
				sid = fc.sid
			}
			fc.mu.Unlock()
		}
		var p string
		switch {
		case sel%4 == 0 && sid != "":
			p = fmt.Sprintf(`["fuzz/1.0",%q]`, sid)
		case sel%4 == 1:
			p = fmt.Sprintf(`["fuzz/1.0",%s]`, fuzzQuote(fr.bytesN(int(sel>>2)%24)))
		case sel%4 == 2:
			p = `["fuzz/1.0",12345]`
		default:
			p = fmt.Sprintf(`["fuzz/1.0",%q,"127.0.0.1",3333]`, hex.EncodeToString(fr.bytesN(8)))
		}
		fr.request("mining.subscribe", p)
	case fopConfigure:
		sel := fr.next()
		mask := binary.BigEndian.Uint32(append(fr.bytesN(4), 0, 0, 0, 0))
		var p string
		switch sel % 6 {
		case 0:
			p = fmt.Sprintf(`[["version-rolling"],{"version-rolling.mask":"%08x","version-rolling.min-bit-count":2}]`, mask)
		case 1:
			p = fmt.Sprintf(`[["minimum-difficulty","version-rolling"],{"minimum-difficulty.value":%g,"version-rolling.mask":"%08x"}]`, float64(mask)/1e9, mask)
		case 2:
			p = `[["subscribe-extranonce","info"],{}]`
		case 3:
			p = `[["version-rolling"]]`
		case 4:
			p = `[{"version-rolling":1}]`
		default:
			p = `[]`
		}
		fr.request("mining.configure", p)
	case fopAuthorize, fopAuthorize2:
		name := fr.rig.user
		if op == fopAuthorize2 {
			name = fr.rig.user2
		}
		fr.request("mining.authorize", fmt.Sprintf(`[%q,"x"]`, name+".rig1"))
	case fopAuthorizeBad:
		sel := fr.next()
		var p string
		switch sel % 4 {
		case 0:
			p = `["0123456789abcdef.rig","x"]`
		case 1:
			p = `[]`
		case 2:
			p = `[17,"x"]`
		default:
			p = fmt.Sprintf(`[%s,"x"]`, fuzzQuote(fr.bytesN(int(sel>>2)%24)))
		}
		fr.request("mining.authorize", p)
	case fopXNSubscribe:
		fr.request("mining.extranonce.subscribe", `[]`)
	case fopSuggest:
		sel := fr.next()
		ps := []string{`[1e-6]`, `[0]`, `[-1]`, `[1e300]`, `["abc"]`, `[]`, `[0.5]`, `[1e-300]`}
		fr.request("mining.suggest_difficulty", ps[int(sel)%len(ps)])
	case fopSubmitGood:
		fr.request("mining.submit", fr.mine(fr.bytesN(2)))
	case fopSubmitAgain:
		if fr.good == "" {
			fr.good = fr.mine(nil)
		}
		fr.request("mining.submit", fr.good)
	case fopSubmitGarbled:
		fr.request("mining.submit", fr.garble(fr.next()))
	case fopGarbage:
		n := int(fr.next() % 64)
		b := fr.bytesN(n)
		if len(b) > 0 && b[0]&1 == 1 {
			// A request of a made-up method with made-up params: it has an
			// id, so it must be answered.
			method := fuzzMethod(b[1:])
			fr.request(method, fmt.Sprintf(`[%s,%d,null,true]`, fuzzQuote(b), len(b)))
			break
		}
		// Not an object: answered under a null id, or not at all.
		line := bytes.Map(func(r rune) rune {
			switch r {
			case '\n', '{', '}':
				return -1
			}
			return r
		}, b)
		fr.note("garbage %q", line)
		fr.c().send(append(line, '\n'))
	case fopOversized:
		n := fuzzMaxLine + 1 + int(fr.next())*16
		fr.note("oversized line of %d bytes", n)
		fr.c().send(append(bytes.Repeat([]byte{'a'}, n), '\n'))
	case fopReconnect:
		wait := fr.next()%2 == 0
		fr.note("close (wait for answers: %v)", wait)
		if fr.conn != nil {
			fr.finish(wait)
		}
		fr.c()
	case fopMisc:
		sel := fr.next()
		switch sel % 5 {
		case 0:
			fr.request("mining.ping", `[]`)
		case 1:
			fr.request("client.get_version", `[]`)
		case 2:
			fr.request("mining.frobnicate", `[1,2]`)
		case 3:
			fr.note("notification without an id")
			fr.c().send([]byte(`{"id":null,"method":"mining.suggest_difficulty","params":[0.001]}` + "\n"))
		default:
			fr.note("answer-shaped line")
			fr.c().send([]byte(`{"id":null,"result":"stratum-fuzz/1.0","error":null}` + "\n"))
		}
	case fopPool:
		clean := fr.next()%2 == 1
		fr.note("pool notify clean=%v", clean)
		fr.rig.pool.Notify(clean)
	}
	if sync && fr.conn != nil {
		fr.note("(sync)")
		if !fr.conn.settle(fuzzAnswerWait) && !fr.conn.isClosed() {
			fr.conn.mu.Lock()
			msg := fr.conn.checkLocked(true)
			fr.conn.mu.Unlock()
			fr.fail("%s", msg)
		}
	}
}

// request sends a request under the connection's next id.
func (fr *fuzzRun) request(method, params string) {
	fr.t.Helper()
	fc := fr.c()
	fc.mu.Lock()
	fc.seq++
	var id string
	switch {
	case fc.seq%3 == 0:
		id = strconv.Itoa(fc.seq)
	case fc.seq%3 == 2:
		// Longer than the answer ring keeps inline.
		id = fmt.Sprintf(`"%d-%s"`, fc.seq, strings.Repeat("L", 40))
	default:
		id = fmt.Sprintf(`"s%d"`, fc.seq)
	}
	fc.sent[id]++
	switch method {
	case "mining.subscribe":
		fc.subIDs[id] = true
	case "mining.authorize":
		fc.authorizing = true
	}
	fc.mu.Unlock()
	line := fmt.Sprintf(`{"id":%s,"method":%s,"params":%s}`, id, fuzzQuote([]byte(method)), params)
	fr.note("%s", line)
	fc.send([]byte(line + "\n"))
}

// mine returns submit params of a share of the connection's latest job
// that meets its difficulty, with extranonce2 from seed; without a job
// (none came within fuzzJobWait) it returns plausible params for an
// unknown job.
func (fr *fuzzRun) mine(seed []byte) string {
	fc := fr.c()
	deadline := time.Now().Add(fuzzJobWait)
	fc.mu.Lock()
	// Wait for a job only once per authorize: an input of many shares
	// on a connection that gets no work must not spend fuzzJobWait on each.
	wait := fc.authorizing
	fc.authorizing = false
	for wait && fc.job == nil && !fc.closed && time.Now().Before(deadline) {
		fc.mu.Unlock()
		time.Sleep(2 * time.Millisecond) // polling the reader's state
		fc.mu.Lock()
	}
	job, en1, en2Size, diff := fc.job, fc.en1, fc.en2Size, max(fc.jobDiff, fc.diff)
	fc.mu.Unlock()
	if job == nil || en2Size <= 0 || en2Size > 16 {
		return `["w","1-1","0000","00000000","00000000"]`
	}
	en2 := make([]byte, en2Size)
	copy(en2, seed)
	target := pow.Target(diff)
	var c pow.Checker
	root := c.MerkleRoot(job, en1, en2)
	hdr := pow.Header(job, &root, job.NTime, 0, job.Version)
	nonce := uint32(0)
	for ; nonce < fuzzMaxHashes; nonce++ {
		pow.PutNonce(&hdr, nonce)
		if pow.MeetsTarget(pow.HeaderHash(&hdr), target) {
			break
		}
	}
	p := fmt.Sprintf(`["w",%q,"%x","%08x","%08x"]`, job.ID, en2, job.NTime, nonce)
	fr.good = p
	return p
}

// garble returns submit params broken in the way sel picks.
func (fr *fuzzRun) garble(sel byte) string {
	fc := fr.c()
	fc.mu.Lock()
	jobID, en2Size, ntime := "1-1", fc.en2Size, uint32(0x5f5e1000)
	if fc.job != nil {
		jobID, ntime = fc.job.ID, fc.job.NTime
	}
	fc.mu.Unlock()
	en2 := strings.Repeat("00", max(en2Size, 1))
	switch sel % 12 {
	case 0:
		en2 += "00" // wrong size
	case 1:
		en2 = strings.Repeat("zz", max(en2Size, 1))
	case 2:
		return fmt.Sprintf(`["w",%q,%q,"%06x","00000000"]`, jobID, en2, ntime)
	case 3:
		return fmt.Sprintf(`["w",%q,%q,"%08x","0000"]`, jobID, en2, ntime)
	case 4:
		jobID = "nope"
	case 5:
		return fmt.Sprintf(`["w","a\"b\\c",%q,"%08x","00000000"]`, en2, ntime)
	case 6:
		return fmt.Sprintf(`["w",%q,%q,"%08x","00000000","ffffffff"]`, jobID, en2, ntime)
	case 7:
		return fmt.Sprintf(`["w",%q,%q,"%08x"]`, jobID, en2, ntime)
	case 8:
		return `{"worker":"w"}`
	case 9:
		return fmt.Sprintf(`["w",%q,%q,%d,0]`, jobID, en2, ntime)
	case 10:
		return fmt.Sprintf(`["w",%q,%q,"%08x","00000000",null,"extra"]`, jobID, en2, ntime)
	default:
		ntime += 7200 // outside the ntime window
	}
	return fmt.Sprintf(`["w",%q,%q,"%08x","00000000"]`, jobID, en2, ntime)
}

// fuzzQuote returns b as a JSON string.
func fuzzQuote(b []byte) string {
	q, _ := json.Marshal(string(b))
	return string(q)
}

// fuzzMethod makes a method name from b that stays in the Stratum v1
// dialect: the CryptoNote and ETHProxy first-line methods get a prefix.
func fuzzMethod(b []byte) string {
	m := strings.ToValidUTF8(string(b), "?")
	if m == "" || m[0]%3 == 0 {
		m = "mining." + m
	}
	switch m {
	case "login", "getjob", "submit", "keepalived", "eth_submitLogin":
		m = "x" + m
	}
	return m
}

// fuzzConn is one miner connection and what its reader saw.
type fuzzConn struct {
	c    net.Conn
	done chan struct{}

	mu      sync.Mutex
	seq     int
	sent    map[string]int // request id (raw JSON) -> requests sent
	answers map[string]int // request id (raw JSON) -> answers read
	nulls   int            // answers under a null id
	closed  bool           // read or write failed: the proxy closed it
	bad     []string       // lines that are not JSON
	sid     string
	en1     []byte
	en2Size int
	diff    float64
	jobDiff float64
	job     *pow.Job
	subIDs  map[string]bool // ids of subscribe requests
	// authorizing: an authorize was sent since the last wait for a job.
	authorizing bool
	lastLine    string
}

func newFuzzConn(c net.Conn) *fuzzConn {
	fc := &fuzzConn{c: c, done: make(chan struct{}), sent: map[string]int{}, answers: map[string]int{}, subIDs: map[string]bool{}}
	go fc.read()
	return fc
}

func (fc *fuzzConn) isClosed() bool {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return fc.closed
}

func (fc *fuzzConn) send(b []byte) {
	_ = fc.c.SetWriteDeadline(time.Now().Add(2 * time.Second))
	if _, err := fc.c.Write(b); err != nil {
		fc.mu.Lock()
		fc.closed = true
		fc.mu.Unlock()
	}
}

// fuzzLine is any line the proxy writes to a miner.
type fuzzLine struct {
	ID     json.RawMessage   `json:"id"`
	Method string            `json:"method"`
	Params []json.RawMessage `json:"params"`
	Result json.RawMessage   `json:"result"`
	Error  json.RawMessage   `json:"error"`
}

func (fc *fuzzConn) read() {
	defer close(fc.done)
	r := bufio.NewReaderSize(fc.c, 64<<10)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			fc.mu.Lock()
			fc.closed = true
			fc.mu.Unlock()
			return
		}
		var m fuzzLine
		fc.mu.Lock()
		fc.lastLine = string(line)
		if err := json.Unmarshal(line, &m); err != nil {
			fc.bad = append(fc.bad, fmt.Sprintf("%q: %v", line, err))
		} else {
			fc.handleLocked(&m)
		}
		fc.mu.Unlock()
	}
}

func (fc *fuzzConn) handleLocked(m *fuzzLine) {
	switch m.Method {
	case "":
		id := string(bytes.TrimSpace(m.ID))
		if id == "" || id == "null" {
			fc.nulls++
			return
		}
		fc.answers[id]++
		if fc.subIDs[id] {
			fc.parseSubscribe(m.Result)
		}
	case "mining.notify":
		ps := make([][]byte, len(m.Params))
		for i, p := range m.Params {
			ps[i] = p
		}
		if j, _, err := pow.ParseNotify(ps); err == nil {
			fc.job, fc.jobDiff = &j, fc.diff
		}
	case "mining.set_difficulty":
		if len(m.Params) > 0 {
			_ = json.Unmarshal(m.Params[0], &fc.diff)
		}
	case "mining.set_extranonce":
		if len(m.Params) >= 2 {
			var en1 string
			if json.Unmarshal(m.Params[0], &en1) == nil {
				fc.en1, _ = hex.DecodeString(en1)
			}
			_ = json.Unmarshal(m.Params[1], &fc.en2Size)
			fc.job = nil // the next job is in the new layout
		}
	}
}

// parseSubscribe reads [[["mining.set_difficulty",sid],...],en1,en2size].
func (fc *fuzzConn) parseSubscribe(res json.RawMessage) {
	var r []json.RawMessage
	if json.Unmarshal(res, &r) != nil || len(r) < 3 {
		return
	}
	var subs [][]string
	if json.Unmarshal(r[0], &subs) == nil && len(subs) > 0 && len(subs[0]) > 1 {
		fc.sid = subs[0][1]
	}
	var en1 string
	if json.Unmarshal(r[1], &en1) == nil {
		fc.en1, _ = hex.DecodeString(en1)
	}
	_ = json.Unmarshal(r[2], &fc.en2Size)
	fc.job = nil // jobs of an earlier subscription may be in another layout
}

// settle waits until every request is answered (true) or the connection
// closed or d passed (false).
func (fc *fuzzConn) settle(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		fc.mu.Lock()
		all := true
		for id, n := range fc.sent {
			if fc.answers[id] < n {
				all = false
				break
			}
		}
		closed := fc.closed
		fc.mu.Unlock()
		if all {
			return true
		}
		if closed || time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond) // polling the reader's state
	}
}

// checkLocked returns a description of the broken invariants: answers to
// ids never sent or more answers than requests, lines that are not JSON,
// and, when complete is set and the proxy did not close the connection,
// requests left unanswered.
func (fc *fuzzConn) checkLocked(complete bool) string {
	var out []string
	for id, n := range fc.answers {
		if n > fc.sent[id] {
			out = append(out, fmt.Sprintf("id %s answered %d times, sent %d times", id, n, fc.sent[id]))
		}
	}
	if complete && !fc.closed {
		for id, n := range fc.sent {
			if fc.answers[id] < n {
				out = append(out, fmt.Sprintf("id %s unanswered after %v on an open connection", id, fuzzAnswerWait))
			}
		}
	}
	for _, b := range fc.bad {
		out = append(out, "the proxy wrote a line that is not JSON: "+b)
	}
	return strings.Join(out, "\n")
}

// fuzzSample adds the samples of family name in a Prometheus text
// exposition.
func fuzzSample(text, name string) (float64, bool) {
	var sum float64
	ok := false
	for _, l := range strings.Split(text, "\n") {
		if !strings.HasPrefix(l, name+"{") && !strings.HasPrefix(l, name+" ") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if v, err := strconv.ParseFloat(l[i+1:], 64); err == nil {
			sum += v
			ok = true
		}
	}
	return sum, ok
}

// TestLongShareIDAnswered: a mining.submit whose id is longer than
// maxInlineID (38 bytes of raw JSON) must be answered under that id. Found
// by FuzzSessionStateMachine: answerRing.flush sliced s.id[:s.idn] before
// it looked at s.idn == 255 (the long-id mark), so the answer panicked with
// "slice bounds out of range [:255] with capacity 38"; the loop recovered,
// counted proxy_panics_total{where="miner"} and closed the miner, whose
// share was never answered. Fixed in fb0c841.
func TestLongShareIDAnswered(t *testing.T) {
	h := newHarness(t, fastCfg())
	r := h.raw()
	long := `"` + strings.Repeat("L", 40) + `"`
	r.send(`{"id":` + long + `,"method":"mining.submit","params":[]}` + "\n")
	if l := r.line(); !strings.Contains(l, `"id":`+long) || !strings.Contains(l, "[25,") {
		t.Fatalf("answer %q, want error 25 under the long id", l)
	}
	if v, _ := fuzzSample(h.scrape(), "proxy_panics_total"); v != 0 {
		t.Fatalf("proxy_panics_total = %v", v)
	}
}

// TestAuthorizeWhileLoggingInAnswered: two mining.authorize on one
// connection while the account's upstream is still logging in to its pool
// must both be answered. Found by FuzzSessionStateMachine (minimized input
// "C\x83": authorize, authorize, wait, as the first input of a fresh
// proxy): login stored the id of the authorize waiting for the pool in
// mc.authID, and a second authorize overwrote it, so the first was never
// answered. Fixed in fb0c841.
func TestAuthorizeWhileLoggingInAnswered(t *testing.T) {
	h := newHarness(t, fastCfg())
	// The pool holds its login answer, so both authorizes find the
	// upstream logging in.
	p := h.pool(poolsim.Config{Intercept: func(_ uint64, method string) poolsim.Action {
		if method == "mining.authorize" {
			time.Sleep(300 * time.Millisecond) // the pool's slow login: the scenario
		}
		return poolsim.Handle
	}})
	name := h.user(p.Addr())
	r := h.raw()
	r.send(`{"id":1,"method":"mining.authorize","params":["` + name + `.a","x"]}` + "\n" +
		`{"id":2,"method":"mining.authorize","params":["` + name + `.a","x"]}` + "\n")
	var got []string
	seen := map[string]bool{}
	_ = r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for len(seen) < 2 {
		l, err := r.r.ReadString('\n')
		if err != nil {
			t.Fatalf("answered %v of ids 1 and 2 within 5 s (%v); lines:\n%s", seen, err, strings.Join(got, ""))
		}
		got = append(got, l)
		for _, id := range []string{`"id":1,`, `"id":2,`} {
			if strings.Contains(l, id) {
				seen[id] = true
			}
		}
	}
}
