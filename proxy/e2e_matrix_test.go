package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratum-proxy/stratum-proxy/bench/miner"
	"github.com/stratum-proxy/stratum-proxy/bench/poolsim"
)

// fastCfg shortens the housekeeping periods so timeouts show in tests.
func fastCfg() Config {
	return Config{
		TickInterval:     50 * time.Millisecond,
		BackoffMin:       50 * time.Millisecond,
		BackoffMax:       200 * time.Millisecond,
		DialTimeout:      time.Second,
		FailbackInterval: 300 * time.Millisecond,
	}
}

func ctx10(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestThousandMinersShareOneUpstream(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 miners: skipped in -short")
	}
	const n = 1000
	h := newHarness(t, fastCfg())
	p := h.pool(poolsim.Config{Difficulty: 1e-7})
	name := h.user(p.Addr())

	miners := make([]*miner.Miner, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	errs := make(chan error, n)
	for i := range miners {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			m, err := miner.Dial(miner.Config{Addr: h.srv.Addr(), User: fmt.Sprintf("%s.rig%d", name, i), Password: "x", Timeout: 30 * time.Second})
			if err != nil {
				errs <- err
				return
			}
			miners[i] = m
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			sh, err := m.Mine(ctx, 0)
			if err != nil {
				errs <- fmt.Errorf("miner %d mine: %w", i, err)
				return
			}
			if ok, code, msg, err := m.Submit(ctx, sh); err != nil || !ok {
				errs <- fmt.Errorf("miner %d submit: ok=%v code=%d %q err=%v", i, ok, code, msg, err)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for i, m := range miners {
		defer m.Close()
		en1 := fmt.Sprintf("%x", m.Extranonce1())
		if j, dup := seen[en1]; dup {
			t.Fatalf("miners %d and %d share extranonce1 %s", j, i, en1)
		}
		seen[en1] = i
	}
	st := p.Stats()
	if st.Accepted != n || st.Submits != n {
		t.Fatalf("pool accepted %d of %d submits, want %d (stats %+v)", st.Accepted, st.Submits, n, st)
	}
	if c := p.Conns(); c != 1 {
		t.Fatalf("pool sees %d connections for one account, want 1", c)
	}
	if s := h.srv.Stats(); s.Upstreams != 1 || s.Miners != n {
		t.Fatalf("proxy stats %+v, want 1 upstream and %d miners", s, n)
	}
}

func TestConfigureBeforeSubscribeVersionRolling(t *testing.T) {
	h := newHarness(t, fastCfg())
	p := h.pool(poolsim.Config{VersionMask: 0x1fffe000})
	name := h.user(p.Addr())
	m := h.dial(miner.Config{User: name, Password: "x", Configure: true, VersionMask: 0xffffffff})
	if got := m.VersionMask(); got != 0x1fffe000 {
		t.Fatalf("granted mask %08x, want 1fffe000", got)
	}
	for i := 0; i < 3; i++ {
		mineOne(t, m)
	}

	// A pool that grants fewer bits: the miner is told the intersection.
	h2 := newHarness(t, fastCfg())
	p2 := h2.pool(poolsim.Config{VersionMask: 0x00ffe000})
	m2 := h2.dial(miner.Config{User: h2.user(p2.Addr()), Password: "x", Configure: true, VersionMask: 0x1fffe000})
	waitFor(t, "set_version_mask with the pool's intersection", func() bool { return m2.VersionMask() == 0x00ffe000 })
	mineOne(t, m2)
	if st := p2.Stats(); st.Accepted != 1 {
		t.Fatalf("pool stats %+v", st)
	}
}

func TestMinerWithoutExtranonceSubscribe(t *testing.T) {
	// Pools giving 8 (ckpool) and 4 (node stratum-pool) extranonce2 bytes:
	// a cpuminer-style miner mines without ever being disconnected.
	for _, en2 := range []int{8, 4} {
		t.Run(fmt.Sprintf("en2=%d", en2), func(t *testing.T) {
			h := newHarness(t, fastCfg())
			p := h.pool(poolsim.Config{Extranonce2Size: en2})
			m := h.dial(miner.Config{User: h.user(p.Addr()), Password: "x"})
			for i := 0; i < 3; i++ {
				mineOne(t, m)
			}
			if r := m.Reconnects(); r != 0 {
				t.Fatalf("miner saw %d reconnect requests", r)
			}
		})
	}
}

func TestSmallPoolExtranonceRelayout(t *testing.T) {
	// ckpool in proxy mode gives 3 bytes: k+m=4 does not fit.
	h := newHarness(t, fastCfg())
	p := h.pool(poolsim.Config{Extranonce2Size: 3})
	name := h.user(p.Addr())

	// A miner that subscribed to extranonce changes is told the new layout.
	m := h.dial(miner.Config{User: name, Password: "x", ExtranonceSubscribe: true})
	waitJob(t, m, "a job in the set_extranonce layout", func(j *miner.Job) bool {
		return len(j.Extranonce1) == 1 && j.Extranonce2Size == 2
	})
	mineOne(t, m)

	// One that did not is disconnected once, and comes back with its
	// session id to the new layout.
	m2, err := miner.Dial(miner.Config{Addr: h.srv.Addr(), User: name, Password: "x", Timeout: 5 * time.Second})
	if err == nil {
		sid := m2.SessionID()
		waitFor(t, "disconnect", func() bool { return m2.Closed() })
		m2 = h.dial(miner.Config{User: name, Password: "x", SessionID: sid})
	} else {
		t.Logf("first dial ended early: %v", err)
		t.FailNow()
	}
	if len(m2.Extranonce1()) != 1 || m2.Extranonce2Size() != 2 {
		t.Fatalf("restored layout en1=%x en2size=%d", m2.Extranonce1(), m2.Extranonce2Size())
	}
	mineOne(t, m2)
	if st := p.Stats(); st.Accepted != 2 || st.Submits != 2 {
		t.Fatalf("pool stats %+v", st)
	}
}

func TestRestoreWithinGrace(t *testing.T) {
	h := newHarness(t, fastCfg())
	p := h.pool(poolsim.Config{})
	name := h.user(p.Addr())
	m := h.dial(miner.Config{User: name, Password: "x"})
	mineOne(t, m)
	sid, en1, diff := m.SessionID(), m.Extranonce1(), m.Difficulty()
	m.Close()
	waitFor(t, "session in grace", func() bool { return h.srv.Stats().InGrace == 1 })

	m2 := h.dial(miner.Config{User: name, Password: "x", SessionID: sid})
	if m2.SessionID() != sid || !bytes.Equal(m2.Extranonce1(), en1) {
		t.Fatalf("restored session %s en1 %x, want %s %x", m2.SessionID(), m2.Extranonce1(), sid, en1)
	}
	// The last job and difficulty come at once, not at the pool's next notify.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := m2.WaitJob(ctx); err != nil {
		t.Fatalf("no cached job after restore: %v", err)
	}
	if m2.Difficulty() != diff {
		t.Fatalf("difficulty %v after restore, want %v", m2.Difficulty(), diff)
	}
	mineOne(t, m2)
	if c := p.Conns(); c != 1 {
		t.Fatalf("pool connections %d, want the same single upstream", c)
	}
}

func TestRestoreAfterGrace(t *testing.T) {
	cfg := fastCfg()
	cfg.SessionGrace = 300 * time.Millisecond
	h := newHarness(t, cfg)
	p := h.pool(poolsim.Config{})
	name := h.user(p.Addr())
	m := h.dial(miner.Config{User: name, Password: "x"})
	mineOne(t, m)
	sid := m.SessionID()
	m.Close()
	waitFor(t, "session expiry and upstream close", func() bool {
		s := h.srv.Stats()
		return s.Sessions == 0 && s.Upstreams == 0
	})
	waitFor(t, "pool connection closed", func() bool { return p.Conns() == 0 })
	m2 := h.dial(miner.Config{User: name, Password: "x", SessionID: sid})
	if m2.SessionID() == sid {
		t.Fatal("an expired session was restored")
	}
	mineOne(t, m2)
}

func TestRestoreWithAnotherUserMovesPool(t *testing.T) {
	h := newHarness(t, fastCfg())
	pa := h.pool(poolsim.Config{})
	pb := h.pool(poolsim.Config{JobIDPrefix: "b"})
	a, b := h.user(pa.Addr()), h.user(pb.Addr())
	m := h.dial(miner.Config{User: a, Password: "x"})
	mineOne(t, m)
	sid := m.SessionID()
	m.Close()
	waitFor(t, "grace", func() bool { return h.srv.Stats().InGrace == 1 })
	m2 := h.dial(miner.Config{User: b, Password: "x", SessionID: sid})
	waitJob(t, m2, "a job from pool B", func(j *miner.Job) bool { return strings.Contains(j.ID, "-b") })
	mineOne(t, m2)
	mineOne(t, m2)
	if sa, sb := pa.Stats(), pb.Stats(); sa.Accepted != 1 || sb.Accepted != 2 {
		t.Fatalf("pool A accepted %d (want 1), pool B %d (want 2)", sa.Accepted, sb.Accepted)
	}
	waitFor(t, "pool A released", func() bool { return pa.Conns() == 0 })
}

func TestRedialFailoverFailback(t *testing.T) {
	h := newHarness(t, fastCfg())
	// Distinct job ids: a share of one pool's job can never be taken for
	// another pool's job of the same id, whatever the timing.
	primary := h.pool(poolsim.Config{JobIDPrefix: "pri-"})
	backup := h.pool(poolsim.Config{JobIDPrefix: "bak-"})
	name := h.user(primary.Addr(), backup.Addr())
	m := h.dial(miner.Config{User: name, Password: "x"})
	mineOne(t, m)

	// A dropped connection is redialled; the miner stays and gets new work.
	old := latestJob(t, m)
	primary.DropConnections()
	waitFor(t, "redial to primary", func() bool {
		return primary.Stats().TotalConnections == 2 && primary.Conns() == 1 && h.srv.Stats().Ready == 1
	})
	newJobAfter(t, m, "a job of the new connection", old)
	mineOne(t, m)

	// The primary dies: fail over to the backup within seconds.
	addr := primary.Addr()
	primary.Close()
	start := time.Now()
	waitFor(t, "failover to backup", func() bool { return backup.Conns() == 1 && h.srv.Stats().Ready == 1 })
	t.Logf("failover took %v", time.Since(start))
	waitJob(t, m, "a job of the backup", func(j *miner.Job) bool { return strings.Contains(j.ID, "bak-") })
	mineOne(t, m)
	if backup.Stats().Accepted != 1 {
		t.Fatalf("backup stats %+v", backup.Stats())
	}

	// The primary returns: fail back. A probe's connection alone proves
	// nothing (the old bare-connect probe satisfied a wait on Conns): wait
	// for a share the restarted primary accepted.
	back, err := poolsim.Start(poolsim.Config{Addr: addr, Difficulty: testDiff, JobIDPrefix: "ret-"})
	if err != nil {
		t.Fatalf("restart primary on %s: %v", addr, err)
	}
	h.pools = append(h.pools, back)
	waitFor(t, "failback: a share accepted by the primary", func() bool {
		tryShare(m, 2*time.Second)
		return back.Stats().Accepted >= 1
	})
	waitFor(t, "backup released", func() bool { return backup.Conns() == 0 })
	before := back.Stats().Accepted
	mineOne(t, m)
	if got := back.Stats().Accepted; got != before+1 {
		t.Fatalf("primary after failback: %+v", back.Stats())
	}
	if m.Closed() {
		t.Fatal("the miner was disconnected by pool failover")
	}
}

func TestPoolRejectionsReachMiner(t *testing.T) {
	h := newHarness(t, fastCfg())
	p := h.pool(poolsim.Config{})
	m := h.dial(miner.Config{User: h.user(p.Addr()), Password: "x"})
	ctx := ctx10(t)

	sh, err := m.Mine(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _, _, err := m.Submit(ctx, sh); !ok || err != nil {
		t.Fatalf("first submit: %v %v", ok, err)
	}
	if ok, code, _, _ := m.Submit(ctx, sh); ok || code != 22 {
		t.Fatalf("duplicate: ok=%v code=%d, want 22", ok, code)
	}

	old, err := m.Mine(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	p.Notify(true)
	waitFor(t, "clean job", func() bool { j, _ := m.WaitJob(ctx); return j != nil && j.ID != old.JobID })
	if ok, code, _, _ := m.Submit(ctx, old); ok || code != 21 {
		t.Fatalf("stale: ok=%v code=%d, want 21", ok, code)
	}

	p.SetDifficulty(1)
	p.Notify(true)
	waitJob(t, m, "a job at difficulty 1", func(j *miner.Job) bool { return j.Difficulty == 1 })
	low, err := m.Mine(ctx, 1e-12)
	if err != nil {
		t.Fatal(err)
	}
	if ok, code, _, _ := m.Submit(ctx, low); ok || code != 23 {
		t.Fatalf("low difficulty: ok=%v code=%d, want 23", ok, code)
	}
}

func TestSameIDPipelinedSubmits(t *testing.T) {
	h := newHarness(t, fastCfg())
	p := h.pool(poolsim.Config{})
	m := h.dial(miner.Config{User: h.user(p.Addr()), Password: "x", SubmitID: 4})
	ctx := ctx10(t)
	var shares []miner.Share
	for len(shares) < 5 {
		sh, err := m.Mine(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		shares = append(shares, sh)
	}
	var wg sync.WaitGroup
	res := make(chan bool, len(shares))
	for _, sh := range shares {
		wg.Add(1)
		go func(sh miner.Share) {
			defer wg.Done()
			ok, _, _, err := m.Submit(ctx, sh)
			res <- ok && err == nil
		}(sh)
	}
	wg.Wait()
	close(res)
	for ok := range res {
		if !ok {
			t.Fatal("a pipelined submit with a repeated id was not accepted")
		}
	}
	if st := p.Stats(); st.Accepted != 5 {
		t.Fatalf("pool stats %+v", st)
	}
}

// rawConn is a line-level client for bad-input tests.
type rawConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func (h *harness) raw() *rawConn {
	c, err := net.Dial("tcp", h.srv.Addr())
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { c.Close() })
	return &rawConn{t: h.t, c: c, r: bufio.NewReaderSize(c, 64<<10)}
}

func (r *rawConn) send(s string) {
	r.t.Helper()
	if _, err := r.c.Write([]byte(s)); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawConn) line() string {
	r.t.Helper()
	_ = r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	s, err := r.r.ReadString('\n')
	if err != nil {
		r.t.Fatalf("read: %v (got %q)", err, s)
	}
	return s
}

// expectClosed reads until EOF, failing if the proxy keeps the socket open.
func (r *rawConn) expectClosed() {
	r.t.Helper()
	_ = r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64<<10)
	for {
		if _, err := r.c.Read(buf); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				r.t.Fatal("connection still open")
			}
			return
		}
	}
}

func TestUnknownUserClosed(t *testing.T) {
	h := newHarness(t, fastCfg())
	h.pool(poolsim.Config{})
	r := h.raw()
	r.send(`{"id":1,"method":"mining.subscribe","params":["x"]}` + "\n")
	r.line()
	r.send(`{"id":2,"method":"mining.authorize","params":["0123456789abcdef","x"]}` + "\n")
	if l := r.line(); !strings.Contains(l, `"id":2`) || !strings.Contains(l, "[24,") {
		t.Fatalf("answer %q, want error 24", l)
	}
	r.expectClosed()
}

func TestBadInputKeepsConnection(t *testing.T) {
	h := newHarness(t, fastCfg())
	p := h.pool(poolsim.Config{})
	name := h.user(p.Addr())
	r := h.raw()
	for _, bad := range []string{"garbage", `{"id":1,`, `[1,2,3]`, `{"id":{},"method":"x"}`, "\x00\xff"} {
		r.send(bad + "\n")
		if l := r.line(); !strings.Contains(l, `"error":[`) {
			t.Fatalf("bad line %q answered %q", bad, l)
		}
	}
	r.send("\r\n\n")
	r.send(`{"id":7,"method":"mining.frobnicate","params":[]}` + "\n")
	if l := r.line(); !strings.Contains(l, `"id":7`) || !strings.Contains(l, "unknown method") {
		t.Fatalf("unknown method answered %q", l)
	}
	r.send(`{"id":1,"method":"mining.subscribe","params":["raw/1"]}` + "\r\n")
	if l := r.line(); !strings.Contains(l, "mining.notify") {
		t.Fatalf("subscribe after garbage answered %q", l)
	}
	r.send(`{"id":2,"method":"mining.authorize","params":["` + name + `","x"]}` + "\n")
	if l := r.line(); !strings.Contains(l, `"result":true`) {
		t.Fatalf("authorize answered %q", l)
	}
	// An oversized line closes this connection only.
	r.send(strings.Repeat("a", 20<<10) + "\n")
	r.expectClosed()
	m := h.dial(miner.Config{User: name, Password: "x"})
	mineOne(t, m)
}

func TestHandshakeTimeout(t *testing.T) {
	cfg := fastCfg()
	cfg.HandshakeTimeout = 200 * time.Millisecond
	h := newHarness(t, cfg)
	r := h.raw()
	r.send(`{"id":1,"method":"mining.subscribe","params":["slow"]}` + "\n")
	r.line()
	r.expectClosed()
}

func TestSlowMinerDropped(t *testing.T) {
	cfg := fastCfg()
	cfg.MaxOutbound = 16 << 10
	h := newHarness(t, cfg)
	p := h.pool(poolsim.Config{})
	name := h.user(p.Addr())
	good := h.dial(miner.Config{User: name, Password: "x"})

	c, err := net.Dial("tcp", h.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(c, `{"id":1,"method":"mining.subscribe","params":["never-reads"]}`+"\n")
	fmt.Fprintf(c, `{"id":2,"method":"mining.authorize","params":["%s","x"]}`+"\n", name)
	waitFor(t, "two miners", func() bool { return h.srv.Stats().Miners == 2 })
	deadline := time.Now().Add(20 * time.Second)
	for h.srv.Stats().Miners == 2 && time.Now().Before(deadline) {
		for i := 0; i < 200; i++ {
			p.Notify(false)
		}
		time.Sleep(10 * time.Millisecond) // pacing of the load, not a synchronisation
	}
	if h.srv.Stats().Miners != 1 {
		t.Fatal("a miner that never reads was not dropped")
	}
	var buf bytes.Buffer
	h.met.WritePrometheus(&buf)
	if !strings.Contains(buf.String(), `reason="slow_reader"} 1`) {
		t.Fatalf("no slow_reader drop counted:\n%s", grep(buf.String(), "dropped"))
	}
	// The healthy miner is unaffected once the notify storm is over (its
	// jobs were replaced faster than it could mine during the storm): a
	// clean job after the storm (the storm's were not clean) is its work.
	p.Notify(true)
	waitJob(t, good, "the clean job after the storm", func(j *miner.Job) bool { return j.Clean })
	mineOne(t, good)
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitJob waits until the miner's latest job satisfies cond: a miner mines
// on jobs, so state changes (difficulty, layout) count from the next job.
func waitJob(t *testing.T, m *miner.Miner, what string, cond func(*miner.Job) bool) {
	t.Helper()
	waitFor(t, what, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		j, err := m.WaitJob(ctx)
		return err == nil && j != nil && cond(j)
	})
}

func TestSharesInFlightWhenPoolDies(t *testing.T) {
	h := newHarness(t, fastCfg())
	p := h.pool(poolsim.Config{ShareDelay: 3 * time.Second})
	m := h.dial(miner.Config{User: h.user(p.Addr()), Password: "x"})
	ctx := ctx10(t)
	sh, err := m.Mine(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	type answer struct {
		ok       bool
		code     int
		msg      string
		err      error
		answered time.Time
	}
	res := make(chan answer, 1)
	go func() {
		ok, code, msg, err := m.Submit(ctx, sh)
		res <- answer{ok, code, msg, err, time.Now()}
	}()
	// The pool holds its answer for 3 s: drop it once the share is in flight.
	waitFor(t, "the share in flight", func() bool { return h.srv.Stats().Pending == 1 })
	dropped := time.Now()
	p.DropConnections()
	a := <-res
	if a.err != nil || a.ok || a.code != 20 || !strings.Contains(a.msg, "pool connection lost") {
		t.Fatalf("in-flight share answered ok=%v code=%d %q err=%v, want error 20 pool connection lost", a.ok, a.code, a.msg, a.err)
	}
	if d := a.answered.Sub(dropped); d > 2*time.Second {
		t.Fatalf("answer took %v: it waited for the pool instead of failing at once", d)
	}
	if m.Closed() {
		t.Fatal("the miner was disconnected")
	}
}

func TestPoolTimeout(t *testing.T) {
	cfg := fastCfg()
	cfg.ShareTimeout = 300 * time.Millisecond
	h := newHarness(t, cfg)
	p := h.pool(poolsim.Config{ShareDelay: 5 * time.Second})
	m := h.dial(miner.Config{User: h.user(p.Addr()), Password: "x"})
	ctx := ctx10(t)
	sh, err := m.Mine(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	ok, code, msg, err := m.Submit(ctx, sh)
	if err != nil || ok || code != 20 || msg != "pool timeout" {
		t.Fatalf("unanswered share: ok=%v code=%d %q err=%v, want error 20 pool timeout", ok, code, msg, err)
	}
	var buf bytes.Buffer
	h.met.WritePrometheus(&buf)
	if !strings.Contains(buf.String(), `reason="pool_timeout"} 1`) {
		t.Fatalf("timeout not counted:\n%s", grep(buf.String(), "rejected"))
	}
	// The pool's side adds up: the share sent upstream is counted rejected.
	if v, _ := msValue(h, "proxy_worker_upstream_rejected_total", "reason", "pool_timeout"); v != 1 {
		t.Fatalf("proxy_worker_upstream_rejected_total{reason=pool_timeout} = %v, want 1", v)
	}
}

func TestMaxConnections(t *testing.T) {
	cfg := fastCfg()
	cfg.MaxConnections = 1
	h := newHarness(t, cfg)
	first := h.raw()
	first.send(`{"id":1,"method":"mining.subscribe","params":["a"]}` + "\n")
	first.line()
	second := h.raw()
	if l := second.line(); !strings.Contains(l, "proxy full") {
		t.Fatalf("over the limit: %q", l)
	}
	second.expectClosed()
}

func TestWorkerSeriesRemovedAfterGrace(t *testing.T) {
	cfg := fastCfg()
	cfg.SessionGrace = 300 * time.Millisecond
	h := newHarness(t, cfg)
	p := h.pool(poolsim.Config{})
	name := h.user(p.Addr())
	m := h.dial(miner.Config{User: name + ".rigA", Password: "x"})
	mineOne(t, m)
	series := func() string {
		var buf bytes.Buffer
		h.met.WritePrometheus(&buf)
		return buf.String()
	}
	if !strings.Contains(series(), "proxy_worker_accepted{") {
		t.Fatal("no worker series while mining")
	}
	m.Close()
	waitFor(t, "worker series removed", func() bool { return !strings.Contains(series(), "proxy_worker_accepted{") })
	if !strings.Contains(series(), `proxy_user_accepted_total{proxy="test",user="`+name+`"`) {
		t.Fatal("the user's totals went with the worker")
	}
}
