package proxy

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratum-proxy/stratum-proxy/store"
)

// A scripted pool is a raw TCP pool on 127.0.0.1 whose every connection is
// driven by a test's script, for exact byte sequencing that poolsim cannot
// give: a notify before the authorize answer, a notify in the same write as
// client.reconnect, ckpool's "reject-reason" answers, invalid notifies.
// It checks nothing: shares that must be validated by hashing go to
// poolsim. Helpers carry an sp prefix (miner_scenarios_test.go uses ms).

// spPool is a scripted pool. Each accepted connection runs script on its
// own goroutine; the connection is closed when script returns.
type spPool struct {
	t      *testing.T
	ln     net.Listener
	script func(c *spConn)
	n      atomic.Int64 // connections accepted
	open   atomic.Int64 // connections open now
	wg     sync.WaitGroup

	done chan struct{} // closed by Close

	mu    sync.Mutex
	conns []*spConn
}

// spStart listens on addr ("" means 127.0.0.1:0) and serves script. The
// pool is closed at the end of the test.
func spStart(t *testing.T, addr string, script func(c *spConn)) *spPool {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("scripted pool: listen %s: %v", addr, err)
	}
	p := &spPool{t: t, ln: ln, script: script, done: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// spPool starts a scripted pool and adds it to the harness's pool table.
func (h *harness) spPool(script func(c *spConn)) *spPool {
	h.t.Helper()
	p := spStart(h.t, "", script)
	if err := h.st.PutPool(store.Pool{Addr: p.Addr(), Algorithm: "sha256"}); err != nil {
		h.t.Fatal(err)
	}
	return p
}

func (p *spPool) Addr() string { return p.ln.Addr().String() }

// Accepted is the number of connections accepted so far.
func (p *spPool) Accepted() int { return int(p.n.Load()) }

// Open is the number of connections open now.
func (p *spPool) Open() int { return int(p.open.Load()) }

// Close stops listening, closes every connection and waits for the
// scripts. Calling it again does nothing.
func (p *spPool) Close() {
	p.mu.Lock()
	select {
	case <-p.done:
		p.mu.Unlock()
		return
	default:
	}
	close(p.done)
	p.mu.Unlock()
	p.ln.Close()
	p.dropAll()
	p.wg.Wait()
}

// closed is closed when the pool is closed: scripts that wait select on it.
func (p *spPool) closed() <-chan struct{} { return p.done }

// dropAll closes every current connection and keeps listening, like a
// pool restarting its stratum server.
func (p *spPool) dropAll() {
	p.mu.Lock()
	cs := append([]*spConn(nil), p.conns...)
	p.mu.Unlock()
	for _, c := range cs {
		c.nc.Close()
	}
}

func (p *spPool) accept() {
	defer p.wg.Done()
	for {
		nc, err := p.ln.Accept()
		if err != nil {
			return
		}
		c := &spConn{p: p, nc: nc, r: bufio.NewReader(nc), idx: int(p.n.Add(1))}
		p.mu.Lock()
		select {
		case <-p.done:
			p.mu.Unlock()
			nc.Close()
			return
		default:
		}
		p.conns = append(p.conns, c)
		p.mu.Unlock()
		p.open.Add(1)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.open.Add(-1)
			defer nc.Close()
			p.script(c)
		}()
	}
}

// spConn is one proxy connection to a scripted pool.
type spConn struct {
	p   *spPool
	nc  net.Conn
	r   *bufio.Reader
	idx int // 1 for the first connection the pool accepted

	mu      sync.Mutex
	methods []string // every request method read, in order
}

// spMsg is one request from the proxy.
type spMsg struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	Line   string          `json:"-"`
}

// errSpClosed ends a script whose connection closed.
var errSpClosed = errors.New("scripted pool: connection closed")

// read returns the next request; the error is errSpClosed once the proxy
// or the pool closed the connection. A read blocks for at most 20 s.
func (c *spConn) read() (spMsg, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return spMsg{}, errSpClosed
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		var m spMsg
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		m.Line = line
		if m.Method != "" {
			c.mu.Lock()
			c.methods = append(c.methods, m.Method)
			c.mu.Unlock()
		}
		return m, nil
	}
}

// Methods returns the request methods read so far.
func (c *spConn) Methods() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.methods...)
}

// send writes lines (each gets a "\n") in one write, so the proxy reads
// them together.
func (c *spConn) send(lines ...string) {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = c.nc.Write([]byte(b.String()))
}

// answer writes a result for request m.
func (c *spConn) answer(m spMsg, result string) {
	c.send(fmt.Sprintf(`{"id":%s,"result":%s,"error":null}`, m.ID, result))
}

// spEn1 is the scripted pool's extranonce1: 4 bytes, as ckpool.
const spEn1 = "f000000d"

// until answers the handshake requests (configure without version
// rolling, subscribe with spEn1 and 8 extranonce2 bytes as ckpool,
// extranonce.subscribe) until a request with method stop arrives, which it
// returns unanswered.
func (c *spConn) until(stop string) (spMsg, error) {
	for {
		m, err := c.read()
		if err != nil {
			return m, err
		}
		if m.Method == stop {
			return m, nil
		}
		c.handshakeAnswer(m)
	}
}

// handshakeAnswer answers one request the way ckpool does when it has no
// script for it.
func (c *spConn) handshakeAnswer(m spMsg) {
	switch m.Method {
	case "mining.configure":
		c.answer(m, `{"version-rolling":false}`)
	case "mining.subscribe":
		c.answer(m, `[[["mining.set_difficulty","5c"],["mining.notify","5c"]],"`+spEn1+`",8]`)
	case "mining.extranonce.subscribe", "mining.suggest_difficulty":
		c.answer(m, "true")
	case "mining.submit":
		c.answer(m, "true") // accepted: scripted pools check nothing
	case "":
	default:
		c.send(fmt.Sprintf(`{"id":%s,"result":null,"error":[20,"Unknown method",null]}`, m.ID))
	}
}

// login runs a whole handshake, answers authorize true and sends the
// difficulty diff.
func (c *spConn) login(diff float64) error {
	m, err := c.until("mining.authorize")
	if err != nil {
		return err
	}
	c.answer(m, "true")
	c.send(spSetDifficulty(diff))
	return nil
}

// serve answers every later request (submits true) until the connection
// closes.
func (c *spConn) serve() {
	for {
		m, err := c.read()
		if err != nil {
			return
		}
		c.handshakeAnswer(m)
	}
}

// spNotify is a valid mining.notify for job id (a JSON string). Its fields
// parse (pow.ParseNotify), so a miner can hash it.
func spNotify(id string, clean bool) string {
	return spNotifyRaw(`"`+id+`"`, `"`+strings.Repeat("00", 28)+`0badcafe"`,
		`["`+strings.Repeat("11", 32)+`"]`, `"20000000"`, `"207fffff"`, `"66000000"`, clean)
}

// spNotifyRaw builds a notify from raw JSON fields, for invalid ones.
func spNotifyRaw(id, prevhash, branches, version, nbits, ntime string, clean bool) string {
	coinb1 := "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff20"
	coinb2 := "ffffffff0100f2052a010000001976a914cf757c67706ad6275e5b29864fb227788423b8ab88ac00000000"
	return fmt.Sprintf(`{"id":null,"method":"mining.notify","params":[%s,%s,"%s","%s",%s,%s,%s,%s,%v]}`,
		id, prevhash, coinb1, coinb2, branches, version, nbits, ntime, clean)
}

func spSetDifficulty(d float64) string {
	return fmt.Sprintf(`{"id":null,"method":"mining.set_difficulty","params":[%v]}`, d)
}

// spDeadAddr returns a 127.0.0.1 address nothing listens on, registered
// as a pool: connects to it are refused.
func (h *harness) spDeadAddr() string {
	h.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if err := h.st.PutPool(store.Pool{Addr: addr, Algorithm: "sha256"}); err != nil {
		h.t.Fatal(err)
	}
	return addr
}

// spUser registers an account with its own pool logins: logins[0] is the
// primary (pool, user), the rest backups.
func (h *harness) spUser(logins ...[2]string) string {
	h.t.Helper()
	var accts []store.Account
	for _, l := range logins {
		accts = append(accts, store.Account{Pool: l[0], User: l[1], Password: "x"})
	}
	name, _, err := h.st.RegisterUser(accts[0], accts[1:])
	if err != nil {
		h.t.Fatal(err)
	}
	return name
}

// spMiner is a raw miner on the proxy that subscribed and authorized as
// name; the authorize answer is read by the caller (it may be held).
func (h *harness) spMiner(name string) *rawConn {
	h.t.Helper()
	r := h.raw()
	r.send(`{"id":1,"method":"mining.subscribe","params":["sp/1"]}` + "\n")
	if l := r.line(); !strings.Contains(l, `"id":1`) {
		h.t.Fatalf("subscribe answered %q", l)
	}
	r.send(`{"id":2,"method":"mining.authorize","params":["` + name + `","x"]}` + "\n")
	return r
}

// spReadUntil reads the raw miner's lines until stop returns true for one
// (returned last) or the deadline passes (a test failure). Every line read
// is returned.
func spReadUntil(t *testing.T, r *rawConn, what string, d time.Duration, stop func(line string) bool) []string {
	t.Helper()
	deadline := time.Now().Add(d)
	var lines []string
	for {
		_ = r.c.SetReadDeadline(deadline)
		s, err := r.r.ReadString('\n')
		if err != nil {
			t.Fatalf("waiting for %s: %v; lines read:\n%s", what, err, strings.Join(lines, ""))
		}
		lines = append(lines, s)
		if stop(s) {
			return lines
		}
	}
}

// spIsNotify reports whether a miner line is a mining.notify whose job id
// contains marker (the proxy may tag the pool's job ids).
func spIsNotify(line, marker string) bool {
	return strings.Contains(line, `"mining.notify"`) && spJobID(line) != "" && strings.Contains(spJobID(line), marker)
}

// spJobID returns the job id of a mining.notify line as raw JSON, "" for
// other lines.
func spJobID(line string) string {
	var m struct {
		Method string            `json:"method"`
		Params []json.RawMessage `json:"params"`
	}
	if json.Unmarshal([]byte(line), &m) != nil || m.Method != "mining.notify" || len(m.Params) == 0 {
		return ""
	}
	return string(m.Params[0])
}

// spExpectClosed reads until EOF within d, failing if the proxy keeps the
// socket open.
func spExpectClosed(t *testing.T, r *rawConn, d time.Duration) {
	t.Helper()
	_ = r.c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 64<<10)
	for {
		if _, err := r.c.Read(buf); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("connection still open after %v", d)
			}
			return
		}
	}
}
