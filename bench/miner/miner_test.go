package miner_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratum-proxy/stratum-proxy/bench/miner"
	"github.com/stratum-proxy/stratum-proxy/bench/poolsim"
)

// testDiff makes a share cost about 4,300 hashes.
const testDiff = 1e-6

func pool(t *testing.T, cfg poolsim.Config) *poolsim.Server {
	t.Helper()
	if cfg.Difficulty == 0 {
		cfg.Difficulty = testDiff
	}
	s, err := poolsim.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func dial(t *testing.T, cfg miner.Config) *miner.Miner {
	t.Helper()
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	m, err := miner.Dial(cfg)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mineSubmit(t *testing.T, m *miner.Miner, diff float64) (miner.Share, bool, int) {
	t.Helper()
	ctx := ctxT(t)
	sh, err := m.Mine(ctx, diff)
	if err != nil {
		t.Fatalf("mine: %v", err)
	}
	ok, code, _, err := m.Submit(ctx, sh)
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	return sh, ok, code
}

func TestMineAccepted(t *testing.T) {
	p := pool(t, poolsim.Config{})
	m := dial(t, miner.Config{Addr: p.Addr(), User: "alice", Password: "x"})
	if len(m.Extranonce1()) != 4 || m.Extranonce2Size() != 8 || m.SessionID() == "" {
		t.Fatalf("layout %x/%d sid %q", m.Extranonce1(), m.Extranonce2Size(), m.SessionID())
	}
	for i := 0; i < 3; i++ {
		sh, ok, code := mineSubmit(t, m, 0)
		if !ok {
			t.Fatalf("share %d rejected with %d", i, code)
		}
		if sh.Difficulty < testDiff {
			t.Fatalf("share difficulty %g below %g", sh.Difficulty, testDiff)
		}
	}
	if m.Difficulty() != testDiff {
		t.Fatalf("difficulty %g", m.Difficulty())
	}
	if st := p.Stats(); st.Accepted != 3 || st.Rejected != 0 {
		t.Fatalf("pool stats %+v", st)
	}
}

func TestDuplicateStaleLow(t *testing.T) {
	p := pool(t, poolsim.Config{})
	m := dial(t, miner.Config{Addr: p.Addr(), User: "alice", SubmitID: 4})
	ctx := ctxT(t)
	sh, ok, _ := mineSubmit(t, m, 0)
	if !ok {
		t.Fatal("first submit rejected")
	}
	if ok, code, msg, err := m.Submit(ctx, sh); ok || code != 22 || err != nil {
		t.Fatalf("same share again: %v %d %q %v, want 22", ok, code, msg, err)
	}
	old, err := m.Mine(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	p.Notify(true)
	for j, _ := m.WaitJob(ctx); j.ID == old.JobID; j, _ = m.WaitJob(ctx) {
		time.Sleep(5 * time.Millisecond)
	}
	if ok, code, _, _ := m.Submit(ctx, old); ok || code != 21 {
		t.Fatalf("stale: %v %d, want 21", ok, code)
	}
	p.SetDifficulty(1)
	p.Notify(true)
	// Wait for the job sent after the change, not just set_difficulty:
	// the notify follows it on the wire, and a share on the older job
	// would be stale (21) instead.
	for j, _ := m.WaitJob(ctx); j.Difficulty != 1; j, _ = m.WaitJob(ctx) {
		time.Sleep(5 * time.Millisecond)
	}
	if _, ok, code := mineSubmit(t, m, 1e-12); ok || code != 23 {
		t.Fatalf("low difficulty: %v %d, want 23", ok, code)
	}
}

func TestManyMinersConcurrently(t *testing.T) {
	const n = 50
	p := pool(t, poolsim.Config{Difficulty: 1e-7})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	en1s := make([]string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := miner.Dial(miner.Config{Addr: p.Addr(), User: fmt.Sprintf("rig%d", i), SubmitID: 4, Timeout: 20 * time.Second})
			if err != nil {
				errs <- err
				return
			}
			defer m.Close()
			en1s[i] = fmt.Sprintf("%x", m.Extranonce1())
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			sh, err := m.Mine(ctx, 0)
			if err != nil {
				errs <- err
				return
			}
			if ok, code, msg, err := m.Submit(ctx, sh); !ok || err != nil {
				errs <- fmt.Errorf("miner %d: %d %q %v", i, code, msg, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	seen := map[string]bool{}
	for _, e := range en1s {
		if seen[e] {
			t.Fatalf("extranonce1 %s given twice", e)
		}
		seen[e] = true
	}
	if st := p.Stats(); st.Accepted != n || st.TotalConnections != n {
		t.Fatalf("pool stats %+v", st)
	}
}

func TestPipelinedSubmitsSameID(t *testing.T) {
	p := pool(t, poolsim.Config{ShareDelay: 20 * time.Millisecond})
	m := dial(t, miner.Config{Addr: p.Addr(), User: "alice", SubmitID: 4})
	ctx := ctxT(t)
	var shares []miner.Share
	for i := 0; i < 6; i++ {
		sh, err := m.Mine(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		shares = append(shares, sh)
	}
	shares = append(shares, shares[0]) // one duplicate
	var wg sync.WaitGroup
	codes := make([]int, len(shares))
	for i, sh := range shares {
		if i == len(shares)-1 {
			wg.Wait() // the duplicate goes last
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, code, _, err := m.Submit(ctx, sh)
			if err != nil || ok != (code == 0) {
				t.Errorf("submit %d: %v %d %v", i, ok, code, err)
			}
			codes[i] = code
		}()
	}
	wg.Wait()
	for i, c := range codes {
		if want := map[bool]int{true: 22, false: 0}[i == len(codes)-1]; c != want {
			t.Fatalf("submit %d answered %d, want %d (all %v)", i, c, want, codes)
		}
	}
}

func TestVersionRollingAndExtranonce(t *testing.T) {
	p := pool(t, poolsim.Config{VersionMask: 0x1fffe000, Extranonce2Size: 4})
	m := dial(t, miner.Config{Addr: p.Addr(), User: "alice", Configure: true, VersionMask: 0xffffffff, ExtranonceSubscribe: true})
	if m.VersionMask() != 0x1fffe000 {
		t.Fatalf("granted mask %08x", m.VersionMask())
	}
	for i := 0; i < 3; i++ {
		sh, ok, code := mineSubmit(t, m, 0)
		if !ok || !sh.Rolling || sh.VersionBits == 0 || sh.VersionBits&^0x1fffe000 != 0 {
			t.Fatalf("rolled share %+v: %v %d", sh, ok, code)
		}
	}
	// The pool narrows the mask, then changes the extranonce layout.
	p.SetVersionMask(0x00006000)
	deadline := time.Now().Add(10 * time.Second)
	for m.VersionMask() != 0x00006000 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	en1 := fmt.Sprintf("%x", m.Extranonce1())
	// extranonce.subscribe is sent without waiting for its answer: make
	// sure the pool has read it before changing the layout.
	if _, _, _, err := m.Call(ctxT(t), "mining.ping", ""); err != nil {
		t.Fatal(err)
	}
	if err := p.SetExtranonce(6); err != nil {
		t.Fatal(err)
	}
	for m.Extranonce2Size() != 6 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	ctx := ctxT(t)
	j, _ := m.WaitJob(ctx)
	for j.Extranonce2Size != 6 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		j, _ = m.WaitJob(ctx)
	}
	if fmt.Sprintf("%x", j.Extranonce1) == en1 || j.VersionMask != 0x00006000 {
		t.Fatalf("job layout en1 %x (was %s) mask %08x", j.Extranonce1, en1, j.VersionMask)
	}
	for i := 0; i < 3; i++ {
		sh, ok, code := mineSubmit(t, m, 0)
		if !ok || len(sh.Extranonce2) != 6 || sh.VersionBits&^0x00006000 != 0 {
			t.Fatalf("share after changes %+v: %v %d", sh, ok, code)
		}
	}
	if st := p.Stats(); st.Accepted != 6 || st.Rejected != 0 {
		t.Fatalf("pool stats %+v", st)
	}
}

func TestAuthorizeRejected(t *testing.T) {
	p := pool(t, poolsim.Config{User: "acct"})
	_, err := miner.Dial(miner.Config{Addr: p.Addr(), User: "mallory", Timeout: 5 * time.Second})
	var e *miner.Error
	if !errors.As(err, &e) || e.Code != 24 || e.Method != "mining.authorize" {
		t.Fatalf("dial as unknown user: %v", err)
	}
	if _, err := miner.Dial(miner.Config{Addr: "127.0.0.1:1", Timeout: time.Second}); err == nil {
		t.Fatal("dial to a closed port succeeded")
	}
}

func TestPoolGoesAway(t *testing.T) {
	p := pool(t, poolsim.Config{})
	m := dial(t, miner.Config{Addr: p.Addr(), User: "alice"})
	p.Reconnect("", 0, 0)
	deadline := time.Now().Add(10 * time.Second)
	for m.Reconnects() != 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if rc := m.ReconnectRequests(); len(rc) != 1 || rc[0] != (miner.Reconnect{}) {
		t.Fatalf("reconnects %+v", rc)
	}
	p.DropConnections()
	select {
	case <-m.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("miner did not notice the dropped connection")
	}
	if !m.Closed() || !errors.Is(m.Err(), miner.ErrClosed) {
		t.Fatalf("closed %v err %v", m.Closed(), m.Err())
	}
	if _, _, _, err := m.Submit(ctxT(t), miner.Share{JobID: "1"}); !errors.Is(err, miner.ErrClosed) {
		t.Fatalf("submit on a closed miner: %v", err)
	}
}

// fakePool is a scripted pool: it checks the miner's requests in order
// and sends what the test tells it to.
type fakePool struct {
	t     *testing.T
	ln    net.Listener
	conns chan net.Conn
}

func newFakePool(t *testing.T) *fakePool {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakePool{t: t, ln: ln, conns: make(chan net.Conn, 1)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.conns <- c
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return f
}

func TestProtocolDetails(t *testing.T) {
	f := newFakePool(t)
	type result struct {
		m   *miner.Miner
		err error
	}
	res := make(chan result, 1)
	go func() {
		m, err := miner.Dial(miner.Config{Addr: f.ln.Addr().String(), User: "u", Password: "p", UserAgent: "ua/2",
			SessionID: "cafe", Configure: true, ExtranonceSubscribe: true, Timeout: 10 * time.Second})
		res <- result{m, err}
	}()
	c := <-f.conns
	defer c.Close()
	r := bufio.NewReader(c)
	expect := func(want string) {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, err := r.ReadString('\n')
		if err != nil || !strings.Contains(line, want) {
			t.Fatalf("miner sent %q (%v), want %s", line, err, want)
		}
	}
	send := func(s string) {
		t.Helper()
		if _, err := c.Write([]byte(s + "\n")); err != nil {
			t.Fatal(err)
		}
	}
	expect(`"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"1fffe000","version-rolling.min-bit-count":2}]`)
	send(`{"id":1,"result":{"version-rolling":true,"version-rolling.mask":"00ffe000"},"error":null}`)
	expect(`{"id":2,"method":"mining.subscribe","params":["ua/2","cafe"]}`)
	// ckpool's form: only the notify subscription.
	send(`{"result":[[["mining.notify","6b00d164"]],"2000000464",3],"id":2,"error":null}`)
	expect(`{"id":3,"method":"mining.authorize","params":["u","p"]}`)
	send(`{"id":null,"method":"mining.set_difficulty","params":[0.5]}`)
	send(`{"id":3,"result":true,"error":null}`)
	expect(`"method":"mining.extranonce.subscribe","params":[]`)
	rr := <-res
	if rr.err != nil {
		t.Fatal(rr.err)
	}
	m := rr.m
	defer m.Close()
	if m.SessionID() != "6b00d164" || fmt.Sprintf("%x", m.Extranonce1()) != "2000000464" || m.Extranonce2Size() != 3 || m.VersionMask() != 0x00ffe000 {
		t.Fatalf("state sid %s en1 %x en2 %d mask %08x", m.SessionID(), m.Extranonce1(), m.Extranonce2Size(), m.VersionMask())
	}

	notify := func(id string) string {
		return `{"params":["` + id + `","01f7ebe2c010984ff9e242bfc001c355e51b3b4e96a5573d0326196900000000","01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff20016e04d5d3006b08","0f2f456c6f506f6f6c2e436c6f75642f00000000",[],"20000000","207fffff","6b00d3d5",true],"id":null,"method":"mining.notify"}`
	}
	send(notify("j1"))
	ctx := ctxT(t)
	j, err := m.WaitJob(ctx)
	if err != nil || j.ID != "j1" || j.Difficulty != 0.5 || j.Extranonce2Size != 3 || !j.Clean {
		t.Fatalf("job %+v %v", j, err)
	}
	// Layout and difficulty changes apply to the next job.
	send(`{"id":null,"method":"mining.set_extranonce","params":["aabb",4]}`)
	send(`{"id":null,"method":"mining.set_difficulty","params":[2]}`)
	send(`{"id":null,"method":"mining.set_version_mask","params":["00006000"]}`)
	send(notify("j2"))
	for j.ID != "j2" {
		time.Sleep(5 * time.Millisecond)
		j, _ = m.WaitJob(ctx)
	}
	if fmt.Sprintf("%x", j.Extranonce1) != "aabb" || j.Extranonce2Size != 4 || j.Difficulty != 2 || j.VersionMask != 0x6000 {
		t.Fatalf("job after changes %+v", j)
	}
	// Requests from the pool are answered with their ids.
	send(`{"params":[],"id":42,"method":"mining.ping"}`)
	expect(`{"id":42,"result":"pong","error":null}`)
	send(`{"id":"v","method":"client.get_version","params":[]}`)
	expect(`{"id":"v","result":"ua/2","error":null}`)
	send(`{"id":null,"method":"client.reconnect","params":["other.host","3334",5]}`)
	send(`{"id":null,"method":"client.show_message","params":["hello"]}`)
	send(`not json`)
	send(`{"id":99,"result":true,"error":null}`)
	for _, want := range []string{"not json", `{"id":99,"result":true,"error":null}`} {
		if l, err := m.ReadUnmatched(ctx); err != nil || l != want {
			t.Fatalf("unmatched %q %v, want %q", l, err, want)
		}
	}
	if rc := m.ReconnectRequests(); len(rc) != 1 || rc[0] != (miner.Reconnect{Host: "other.host", Port: 3334, Wait: 5}) {
		t.Fatalf("reconnects %+v", rc)
	}
	var methods []string
	for _, n := range m.Notifications() {
		methods = append(methods, n.Method)
	}
	if got := strings.Join(methods, " "); got != "mining.set_difficulty mining.set_extranonce mining.set_difficulty mining.set_version_mask mining.ping client.get_version client.reconnect client.show_message" {
		t.Fatalf("notifications %s", got)
	}

	// A submit with increasing ids and the version bits param; the answer
	// with an error object is understood too.
	go func() {
		expect(`{"id":5,"method":"mining.submit","params":["u","j2","00000001","6b00d3d5","0000002a","00002000"]}`)
		send(`{"id":5,"result":null,"error":{"code":23,"message":"low"}}`)
	}()
	ok, code, msg, err := m.Submit(ctx, miner.Share{JobID: "j2", Extranonce2: []byte{0, 0, 0, 1}, NTime: 0x6b00d3d5, Nonce: 42, VersionBits: 0x2000, Rolling: true})
	if ok || code != 23 || msg != "low" || err != nil {
		t.Fatalf("submit answered %v %d %q %v", ok, code, msg, err)
	}
	if err := m.SendRaw(`{"id":7,"method":"x"}`); err != nil {
		t.Fatal(err)
	}
	expect(`{"id":7,"method":"x"}`)
}
