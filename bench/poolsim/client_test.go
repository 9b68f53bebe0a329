package poolsim_test

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/stratum-proxy/stratum-proxy/bench/poolsim"
	"github.com/stratum-proxy/stratum-proxy/proxy/pow"
)

// client is a line-level stratum client for the simulator's tests: it
// speaks the protocol by hand so that these tests do not depend on the
// bench/miner package.
type client struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader

	en1     []byte
	en2Size int
	diff    float64
	job     *pow.Job
	jobDiff float64 // difficulty in force when job arrived
	notes   []msg   // notifications other than notify/set_difficulty
	en2ctr  uint64
}

type msg struct {
	ID     json.RawMessage   `json:"id"`
	Method string            `json:"method"`
	Params []json.RawMessage `json:"params"`
	Result json.RawMessage   `json:"result"`
	Error  json.RawMessage   `json:"error"`
}

// code returns the stratum error code of a response, 0 for none.
func (m msg) code() int {
	var e []json.RawMessage
	if json.Unmarshal(m.Error, &e) != nil || len(e) == 0 {
		return 0
	}
	var c int
	json.Unmarshal(e[0], &c)
	return c
}

func startPool(t *testing.T, cfg poolsim.Config) *poolsim.Server {
	t.Helper()
	s, err := poolsim.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func dial(t *testing.T, s *poolsim.Server) *client {
	t.Helper()
	nc, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc, r: bufio.NewReader(nc), diff: 1}
}

func (c *client) send(format string, args ...any) {
	c.t.Helper()
	if _, err := fmt.Fprintf(c.nc, format+"\n", args...); err != nil {
		c.t.Fatal(err)
	}
}

// read returns the next line, tracking notifications.
func (c *client) read() msg {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		c.t.Fatalf("read: %v (%q)", err, line)
	}
	var m msg
	if err := json.Unmarshal(line, &m); err != nil {
		c.t.Fatalf("bad line %q: %v", line, err)
	}
	switch m.Method {
	case "mining.set_difficulty":
		json.Unmarshal(m.Params[0], &c.diff)
	case "mining.notify":
		raw := make([][]byte, len(m.Params))
		for i := range m.Params {
			raw[i] = m.Params[i]
		}
		j, _, err := pow.ParseNotify(raw)
		if err != nil {
			c.t.Fatalf("notify %s: %v", line, err)
		}
		c.job, c.jobDiff = &j, c.diff
	case "mining.set_extranonce":
		var en1 string
		json.Unmarshal(m.Params[0], &en1)
		json.Unmarshal(m.Params[1], &c.en2Size)
		c.en1, _ = hex.DecodeString(en1)
		c.notes = append(c.notes, m)
	case "":
	default:
		c.notes = append(c.notes, m)
	}
	return m
}

// response reads until a response (a line without method).
func (c *client) response() msg {
	c.t.Helper()
	for {
		if m := c.read(); m.Method == "" {
			return m
		}
	}
}

// call sends a request and returns its response.
func (c *client) call(id int, method, params string) msg {
	c.t.Helper()
	c.send(`{"id":%d,"method":%q,"params":%s}`, id, method, params)
	return c.response()
}

// waitJob reads until a notify with a job other than old arrives.
func (c *client) waitJob(old *pow.Job) *pow.Job {
	c.t.Helper()
	for c.job == nil || c.job == old {
		c.read()
	}
	return c.job
}

func (c *client) subscribe() {
	c.t.Helper()
	m := c.call(1, "mining.subscribe", `["test/1"]`)
	var res []json.RawMessage
	var en1 string
	if json.Unmarshal(m.Result, &res) != nil || len(res) != 3 || json.Unmarshal(res[1], &en1) != nil ||
		json.Unmarshal(res[2], &c.en2Size) != nil {
		c.t.Fatalf("subscribe result %s", m.Result)
	}
	c.en1, _ = hex.DecodeString(en1)
}

// handshake subscribes, authorizes as user and waits for the first job.
func (c *client) handshake(user string) {
	c.t.Helper()
	c.subscribe()
	if m := c.call(2, "mining.authorize", fmt.Sprintf(`[%q,"x"]`, user)); string(m.Result) != "true" {
		c.t.Fatalf("authorize: %s %s", m.Result, m.Error)
	}
	c.waitJob(nil)
}

// share is a submit's fields.
type share struct {
	job          *pow.Job
	en2          []byte
	ntime, nonce uint32
	vbits        uint32
	hasV         bool
}

func (sh share) params(user string) string {
	p := fmt.Sprintf(`[%q,%q,"%x","%08x","%08x"`, user, sh.job.ID, sh.en2, sh.ntime, sh.nonce)
	if sh.hasV {
		p += fmt.Sprintf(`,"%08x"`, sh.vbits)
	}
	return p + "]"
}

// mine searches the current job for a share meeting diff (meets) or
// failing it (!meets), rolling version bits vbits within mask.
func (c *client) mine(diff float64, meets bool, vbits, mask uint32) share {
	c.t.Helper()
	target := pow.Target(diff)
	c.en2ctr++
	en2 := make([]byte, c.en2Size)
	var ctr [8]byte
	binary.BigEndian.PutUint64(ctr[:], c.en2ctr)
	copy(en2, ctr[max(0, 8-c.en2Size):])
	var ch pow.Checker
	root := ch.MerkleRoot(c.job, c.en1, en2)
	hdr := pow.Header(c.job, &root, c.job.NTime, 0, pow.RollVersion(c.job.Version, vbits, mask))
	for nonce := uint32(0); ; nonce++ {
		pow.PutNonce(&hdr, nonce)
		if pow.MeetsTarget(pow.HeaderHash(&hdr), target) == meets {
			return share{job: c.job, en2: en2, ntime: c.job.NTime, nonce: nonce, vbits: vbits, hasV: mask != 0}
		}
		if nonce == 1<<28 {
			c.t.Fatal("no share found")
		}
	}
}

// submit sends a share and returns (accepted, code).
func (c *client) submit(user string, sh share) (bool, int) {
	c.t.Helper()
	m := c.call(4, "mining.submit", sh.params(user))
	return string(m.Result) == "true", m.code()
}

func (c *client) mustSubmit(user string, sh share, wantCode int) {
	c.t.Helper()
	ok, code := c.submit(user, sh)
	if wantCode == 0 && !ok || code != wantCode {
		c.t.Fatalf("submit %s: accepted=%v code=%d, want code %d", sh.params(user), ok, code, wantCode)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
