package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratum-proxy/stratum-proxy/bench/miner"
	"github.com/stratum-proxy/stratum-proxy/bench/poolsim"
)

// Pool-side scenarios of issue 8: each test drives the proxy the way a
// misbehaving real pool does and checks what miners and metrics see.

// scrape returns the proxy's metrics exposition.
func (h *harness) scrape() string {
	var buf bytes.Buffer
	h.met.WritePrometheus(&buf)
	return buf.String()
}

// metricValue returns the value of the first sample of family name whose
// labels include every `k="v"` in labels, and whether there is one.
func metricValue(text, name string, labels ...string) (float64, bool) {
	for _, l := range strings.Split(text, "\n") {
		if !strings.HasPrefix(l, name+"{") && !strings.HasPrefix(l, name+" ") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if i < 0 {
			continue
		}
		set := l[:i]
		all := true
		for _, kv := range labels {
			all = all && strings.Contains(set, kv)
		}
		if !all {
			continue
		}
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err != nil {
			continue
		}
		return v, true
	}
	return 0, false
}

func poolLabel(addr string) string { return `pool="` + addr + `"` }

// poolUp returns proxy_pool_up for the pool at addr, -1 when absent.
func (h *harness) poolUp(addr string) float64 {
	v, ok := metricValue(h.scrape(), "proxy_pool_up", poolLabel(addr))
	if !ok {
		return -1
	}
	return v
}

// tryShare mines one share within d and submits it, for waits that must
// tolerate rejections during a transition. It reports acceptance.
func tryShare(m *miner.Miner, d time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	sh, err := m.Mine(ctx, 0)
	if err != nil {
		return false
	}
	ok, _, _, err := m.Submit(ctx, sh)
	return ok && err == nil
}

// newJobAfter waits for a job other than old (a pointer: a resent job
// with the same id is a new Job).
func newJobAfter(t *testing.T, m *miner.Miner, what string, old *miner.Job) *miner.Job {
	t.Helper()
	var got *miner.Job
	waitJob(t, m, what, func(j *miner.Job) bool { got = j; return j != old })
	return got
}

func latestJob(t *testing.T, m *miner.Miner) *miner.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	j, err := m.WaitJob(ctx)
	if err != nil {
		t.Fatalf("no job: %v", err)
	}
	return j
}

// poolCfg is fastCfg with the pool-side deadlines short enough for tests.
func poolCfg() Config {
	cfg := fastCfg()
	cfg.PoolHandshakeTimeout = 500 * time.Millisecond
	// Long enough that failovers on a loaded machine never race it; the
	// give-up test sets its own.
	cfg.GiveUp = 10 * time.Second
	cfg.AuthorizeWait = time.Second
	return cfg
}

// hangingPool accepts TCP and reads everything, answering nothing: a pool
// whose stratum server is wedged.
func hangingPool(c *spConn) {
	for {
		if _, err := c.read(); err != nil {
			return
		}
	}
}

func TestFailoverFromHungPool(t *testing.T) {
	h := newHarness(t, poolCfg())
	hung := h.spPool(hangingPool)
	backup := h.pool(poolsim.Config{})
	name := h.user(hung.Addr(), backup.Addr())
	m := h.dial(miner.Config{User: name, Password: "x"})
	// The hung primary is abandoned after PoolHandshakeTimeout and the
	// backup carries the miner.
	mineOne(t, m)
	mineOne(t, m)
	if st := backup.Stats(); st.Accepted != 2 {
		t.Fatalf("backup accepted %d, want 2 (%+v)", st.Accepted, st)
	}
	if hung.Accepted() == 0 {
		t.Fatal("the primary was never tried")
	}
}

func TestFailoverFromLoginRejectingPool(t *testing.T) {
	h := newHarness(t, poolCfg())
	// The primary answers authorize with [24,"Unauthorized worker"].
	primary := h.pool(poolsim.Config{User: "someone-else"})
	backup := h.pool(poolsim.Config{})
	name := h.user(primary.Addr(), backup.Addr())
	m := h.dial(miner.Config{User: name, Password: "x"})
	mineOne(t, m)
	if st := backup.Stats(); st.Accepted != 1 {
		t.Fatalf("backup accepted %d, want 1 (%+v)", st.Accepted, st)
	}
	if st := primary.Stats(); st.Submits != 0 {
		t.Fatalf("the rejecting primary got %d submits", st.Submits)
	}
}

// failToBackup mines on primary, kills it and waits until the backup
// accepted a share. It returns the primary's address.
func failToBackup(t *testing.T, h *harness, m *miner.Miner, primary, backup *poolsim.Server) string {
	t.Helper()
	mineOne(t, m)
	addr := primary.Addr()
	primary.Close()
	waitFor(t, "a share accepted by the backup", func() bool {
		tryShare(m, 2*time.Second)
		return backup.Stats().Accepted >= 1
	})
	return addr
}

func TestFailbackProbeNeedsFullLogin(t *testing.T) {
	h := newHarness(t, poolCfg())
	primary := h.pool(poolsim.Config{JobIDPrefix: "p"})
	backup := h.pool(poolsim.Config{JobIDPrefix: "b"})
	name := h.user(primary.Addr(), backup.Addr())
	m := h.dial(miner.Config{User: name, Password: "x"})
	addr := failToBackup(t, h, m, primary, backup)

	// The primary comes back TCP-up but wedged: probes must log in, fail,
	// and leave the upstream on the backup.
	hung := spStart(t, addr, hangingPool)
	waitFor(t, "two failback probes of the wedged primary", func() bool { return hung.Accepted() >= 2 })
	before := backup.Stats().Accepted
	for i := 0; i < 3; i++ {
		mineOne(t, m)
	}
	if got := backup.Stats().Accepted - before; got != 3 {
		t.Fatalf("backup accepted %d of 3 shares while the primary was wedged", got)
	}
	if c := backup.Conns(); c != 1 {
		t.Fatalf("backup connections %d, want 1 (kept through the probes)", c)
	}
}

func TestBackupSubmitsCarryBackupLogin(t *testing.T) {
	h := newHarness(t, poolCfg())
	// Each pool accepts only its own login: a submit with the other one is
	// answered 24 and counted Unauthorized.
	primary := h.pool(poolsim.Config{User: "pri", JobIDPrefix: "p"})
	backup := h.pool(poolsim.Config{User: "bak", JobIDPrefix: "b"})
	name := h.spUser([2]string{primary.Addr(), "pri"}, [2]string{backup.Addr(), "bak"})
	m := h.dial(miner.Config{User: name, Password: "x"})
	addr := failToBackup(t, h, m, primary, backup)

	// The primary returns while shares stream to the backup: every share
	// the backup gets, up to and across the failback, carries "bak".
	back, err := poolsim.Start(poolsim.Config{Addr: addr, Difficulty: testDiff, User: "pri", JobIDPrefix: "r"})
	if err != nil {
		t.Fatalf("restart primary: %v", err)
	}
	h.pools = append(h.pools, back)
	waitFor(t, "failback: a share accepted by the primary", func() bool {
		tryShare(m, 2*time.Second)
		return back.Stats().Accepted >= 1
	})
	for _, p := range []*poolsim.Server{backup, back} {
		if st := p.Stats(); st.Unauthorized != 0 {
			t.Errorf("pool %s answered %d submits unauthorized: a submit carried the other pool's login (%+v)", p.Addr(), st.Unauthorized, st)
		}
	}
	for u := range backup.Stats().UserDifficulty {
		if !strings.HasPrefix(u, "bak") {
			t.Errorf("backup credited user %q", u)
		}
	}
	for u := range back.Stats().UserDifficulty {
		if !strings.HasPrefix(u, "pri") {
			t.Errorf("primary credited user %q", u)
		}
	}
}

func TestPoolUpSeveralAccountsOnePool(t *testing.T) {
	cfg := poolCfg()
	cfg.SessionGrace = 300 * time.Millisecond
	h := newHarness(t, cfg)
	p := h.pool(poolsim.Config{})
	a := h.spUser([2]string{p.Addr(), "alice"})
	b := h.spUser([2]string{p.Addr(), "bob"})
	ma := h.dial(miner.Config{User: a, Password: "x"})
	mb := h.dial(miner.Config{User: b, Password: "x"})
	mineOne(t, ma)
	mineOne(t, mb)
	waitFor(t, "two upstreams on the pool", func() bool { return p.Conns() == 2 })
	if v := h.poolUp(p.Addr()); v != 1 {
		t.Fatalf("proxy_pool_up %v with two accounts mining, want 1", v)
	}
	// Alice leaves: her upstream closes after the grace period, Bob mines on.
	ma.Close()
	waitFor(t, "alice's upstream closed", func() bool { return p.Conns() == 1 && h.srv.Stats().Upstreams == 1 })
	mineOne(t, mb)
	if v := h.poolUp(p.Addr()); v != 1 {
		t.Fatalf("proxy_pool_up %v after one of two accounts left, want 1 (bob still mines)", v)
	}
}

func TestPoolUpAfterFailback(t *testing.T) {
	h := newHarness(t, poolCfg())
	primary := h.pool(poolsim.Config{JobIDPrefix: "p"})
	backup := h.pool(poolsim.Config{JobIDPrefix: "b"})
	name := h.user(primary.Addr(), backup.Addr())
	m := h.dial(miner.Config{User: name, Password: "x"})
	mineOne(t, m)
	// A pool in use (a target of a live upstream) that has no login shows 0.
	if v := h.poolUp(backup.Addr()); v != 0 {
		t.Fatalf("backup proxy_pool_up %v before failover, want 0 (absent is -1)", v)
	}
	addr := failToBackup(t, h, m, primary, backup)
	waitFor(t, "pool_up: backup 1, primary 0", func() bool { return h.poolUp(backup.Addr()) == 1 && h.poolUp(addr) == 0 })

	back, err := poolsim.Start(poolsim.Config{Addr: addr, Difficulty: testDiff, JobIDPrefix: "r"})
	if err != nil {
		t.Fatalf("restart primary: %v", err)
	}
	h.pools = append(h.pools, back)
	waitFor(t, "failback: a share accepted by the primary", func() bool {
		tryShare(m, 2*time.Second)
		return back.Stats().Accepted >= 1
	})
	waitFor(t, "backup released", func() bool { return backup.Conns() == 0 })
	waitFor(t, "pool_up: primary 1, backup 0", func() bool { return h.poolUp(addr) == 1 && h.poolUp(backup.Addr()) == 0 })
}

func TestUpstreamsGaugeNeverNegative(t *testing.T) {
	cfg := poolCfg()
	cfg.SessionGrace = 300 * time.Millisecond
	cfg.AccountSwitchInterval = time.Second
	h := newHarness(t, cfg)
	pa := h.pool(poolsim.Config{})
	pb := h.pool(poolsim.Config{})
	a := h.spUser([2]string{pa.Addr(), "alice"})
	b := h.spUser([2]string{pb.Addr(), "bob"})

	gauge := func() float64 {
		v, ok := metricValue(h.scrape(), "proxy_upstreams_connected")
		if !ok {
			t.Fatal("no proxy_upstreams_connected")
		}
		return v
	}
	// One connection alternating mining.authorize between two accounts'
	// names, 400 lines in a few writes, as the 8,000-line capture.
	r := h.raw()
	r.send(`{"id":1,"method":"mining.subscribe","params":["flip/1"]}` + "\n")
	r.line()
	var lines strings.Builder
	for i := 0; i < 400; i++ {
		n := a
		if i%2 == 1 {
			n = b
		}
		fmt.Fprintf(&lines, `{"id":%d,"method":"mining.authorize","params":["%s","x"]}`+"\n", 10+i, n)
		if i%50 == 49 {
			r.send(lines.String())
			lines.Reset()
			if g := gauge(); g < 0 {
				t.Fatalf("proxy_upstreams_connected %v during the flips", g)
			}
		}
	}
	minV := 0.0
	waitFor(t, "pool connects settle", func() bool {
		minV = math.Min(minV, gauge())
		return h.srv.Stats().Upstreams <= 1
	})
	if minV < 0 {
		t.Fatalf("proxy_upstreams_connected reached %v", minV)
	}
	if n := pa.Stats().TotalConnections + pb.Stats().TotalConnections; n > 6 {
		t.Errorf("%d pool connects for one miner switching accounts (rate limit AccountSwitchInterval)", n)
	}
	r.c.Close()
	waitFor(t, "upstreams closed after grace", func() bool {
		minV = math.Min(minV, gauge())
		return h.srv.Stats().Upstreams == 0 && pa.Conns()+pb.Conns() == 0
	})
	if g := gauge(); g != 0 || minV < 0 {
		t.Fatalf("proxy_upstreams_connected %v with no pool socket open (minimum seen %v)", g, minV)
	}
}

func TestNotifyAfterReconnectInSameReadDropped(t *testing.T) {
	h := newHarness(t, poolCfg())
	p := h.spPool(func(c *spConn) {
		if c.login(testDiff) != nil {
			return
		}
		if c.idx == 1 {
			c.send(spNotify("first1", true))
			// client.reconnect and a notify in one write: the notify must
			// not reach miners (the proxy is leaving this connection).
			c.send(`{"id":null,"method":"client.reconnect","params":[]}`, spNotify("dead1", true))
		} else {
			c.send(spNotify("again1", true))
		}
		c.serve()
	})
	r := h.spMiner(h.user(p.Addr()))
	lines := spReadUntil(t, r, "a notify from the second connection", 10*time.Second, func(l string) bool {
		return spIsNotify(l, "again1")
	})
	for _, l := range lines {
		if spIsNotify(l, "dead1") {
			t.Fatalf("the notify after client.reconnect reached the miner: %s", l)
		}
	}
}

func TestJobIDsUniquePerPoolConnection(t *testing.T) {
	h := newHarness(t, poolCfg())
	// poolsim, like ckpool, keeps its job ids when it drops and re-accepts
	// a connection: the first job on the new connection has the old id but
	// a coinbase with the new extranonce1.
	p := h.pool(poolsim.Config{})
	m := h.dial(miner.Config{User: h.user(p.Addr()), Password: "x"})
	mineOne(t, m)
	old := latestJob(t, m)
	ctx := ctx10(t)
	sh, err := m.Mine(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if sh.Job != old {
		t.Fatal("a new job arrived while mining")
	}
	p.DropConnections()
	waitFor(t, "redial", func() bool { return p.Stats().TotalConnections == 2 && h.srv.Stats().Ready == 1 })
	j := newJobAfter(t, m, "a job from the new connection", old)
	if j.ID == old.ID {
		t.Fatalf("job id %q reused across pool connections: minerd and cpuminer keep hashing the old coinbase", j.ID)
	}
	submits := p.Stats().Submits
	ok, code, msg, err := m.Submit(ctx, sh)
	if err != nil || ok || code != 21 {
		t.Fatalf("share of the old connection's job answered ok=%v code=%d %q err=%v, want 21 stale", ok, code, msg, err)
	}
	if s := p.Stats().Submits; s != submits {
		t.Fatalf("a share of an old connection's job was forwarded (pool submits %d -> %d)", submits, s)
	}
	mineOne(t, m)
}

func TestNoNotifyBeforeLogin(t *testing.T) {
	cfg := poolCfg()
	// The pool below takes a second over the login: within the deadline.
	cfg.PoolHandshakeTimeout, cfg.GiveUp = 5*time.Second, 10*time.Second
	h := newHarness(t, cfg)
	var answered sync.Map // conn idx -> true once the authorize answer is being sent
	p := h.spPool(func(c *spConn) {
		if c.idx == 1 {
			if c.login(testDiff) != nil {
				return
			}
			c.send(spNotify("first1", true))
			c.serve()
			return
		}
		m, err := c.until("mining.authorize")
		if err != nil {
			return
		}
		// A pool that sends work before it answers the login (seen on
		// ckpool-derived pools): the proxy must not fan it out yet.
		c.send(spSetDifficulty(testDiff), spNotify("early1", true))
		select { // the pool takes its time over the login
		case <-time.After(time.Second):
		case <-c.p.closed():
		}
		answered.Store(c.idx, true)
		c.answer(m, "true")
		c.serve()
	})
	r := h.spMiner(h.user(p.Addr()))
	spReadUntil(t, r, "the first job", 10*time.Second, func(l string) bool { return spIsNotify(l, "first1") })
	// Drop the first connection: the miner, already mining, stays with the
	// proxy while it logs in again.
	p.dropAll()
	spReadUntil(t, r, "the early job, after the login", 10*time.Second, func(l string) bool {
		if !spIsNotify(l, "early1") {
			return false
		}
		if _, ok := answered.Load(2); !ok {
			t.Fatalf("a notify reached the miner before the pool accepted the login: %s", l)
		}
		return true
	})
}

// methodLog records the request methods a poolsim receives, per connection.
type methodLog struct {
	mu  sync.Mutex
	got map[uint64][]string
}

func (l *methodLog) intercept(conn uint64, method string) poolsim.Action {
	l.mu.Lock()
	if l.got == nil {
		l.got = make(map[uint64][]string)
	}
	l.got[conn] = append(l.got[conn], method)
	l.mu.Unlock()
	return poolsim.Handle
}

func (l *methodLog) count(method string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, ms := range l.got {
		for _, m := range ms {
			if m == method {
				n++
			}
		}
	}
	return n
}

func TestConfigureOnlyWhenAsked(t *testing.T) {
	h := newHarness(t, poolCfg())
	var log methodLog
	p := h.pool(poolsim.Config{VersionMask: 0x1fffe000, Intercept: log.intercept})
	m := h.dial(miner.Config{User: h.user(p.Addr()), Password: "x"})
	mineOne(t, m)
	// Strict pools (ckpool's proxy mode) drop a client that sends
	// mining.configure before subscribing: no miner asked, so none is sent.
	if n := log.count("mining.configure"); n != 0 {
		t.Fatalf("the pool got %d mining.configure though no miner asked for version rolling", n)
	}
}

func TestConfigureDroppedPoolRelogsWithout(t *testing.T) {
	h := newHarness(t, poolCfg())
	var log methodLog
	p := h.pool(poolsim.Config{Intercept: func(conn uint64, method string) poolsim.Action {
		log.intercept(conn, method)
		if method == "mining.configure" {
			return poolsim.Disconnect // ckpool in proxy mode
		}
		return poolsim.Handle
	}})
	m := h.dial(miner.Config{User: h.user(p.Addr()), Password: "x", Configure: true})
	mineOne(t, m)
	if n := log.count("mining.configure"); n != 1 {
		t.Fatalf("the pool got %d mining.configure, want 1 (then the proxy logs in without it)", n)
	}
	// The proxy remembers: the next connection to the pool has no configure.
	before := p.Stats().TotalConnections
	old := latestJob(t, m)
	p.DropConnections()
	waitFor(t, "redial", func() bool { return p.Stats().TotalConnections > before && h.srv.Stats().Ready == 1 })
	newJobAfter(t, m, "a job after the redial", old)
	mineOne(t, m)
	if n := log.count("mining.configure"); n != 1 {
		t.Fatalf("the pool got %d mining.configure after the redial, want still 1", n)
	}
}

func TestPoolRejectReasonRelayed(t *testing.T) {
	// ckpool answers a bad share with result false, error null and its
	// reason in "reject-reason".
	cases := []struct {
		reason string
		code   int
		label  string
	}{
		{"Above target", 23, "low_difficulty"},
		{"Stale", 21, "stale"},
		{"Duplicate", 22, "duplicate"},
		{"Invalid JobID", 20, "pool_error"},
	}
	reasons := make(chan string, 1)
	h := newHarness(t, poolCfg())
	p := h.spPool(func(c *spConn) {
		if c.login(testDiff) != nil {
			return
		}
		c.send(spNotify("rj1", true))
		for {
			m, err := c.read()
			if err != nil {
				return
			}
			if m.Method != "mining.submit" {
				c.handshakeAnswer(m)
				continue
			}
			r := <-reasons
			c.send(fmt.Sprintf(`{"id":%s,"result":false,"error":null,"reject-reason":%q}`, m.ID, r))
		}
	})
	name := h.user(p.Addr())
	m := h.dial(miner.Config{User: name, Password: "x"})
	ctx := ctx10(t)
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			sh, err := m.Mine(ctx, 0)
			if err != nil {
				t.Fatal(err)
			}
			reasons <- tc.reason
			ok, code, msg, err := m.Submit(ctx, sh)
			if err != nil || ok || code != tc.code || msg != tc.reason {
				t.Fatalf("answered ok=%v code=%d %q err=%v, want [%d,%q]", ok, code, msg, err, tc.code, tc.reason)
			}
			v, found := metricValue(h.scrape(), "proxy_shares_rejected_total", `user="`+name+`"`, `reason="`+tc.label+`"`)
			if !found || v != 1 {
				t.Fatalf("proxy_shares_rejected_total{reason=%q} = %v (found %v), want 1", tc.label, v, found)
			}
		})
	}
}

func TestVersionMaskNotCarriedToBackup(t *testing.T) {
	h := newHarness(t, poolCfg())
	primary := h.pool(poolsim.Config{VersionMask: 0x1fffe000, JobIDPrefix: "p"})
	// The backup ignores mining.configure (no answer at all).
	backup := h.pool(poolsim.Config{JobIDPrefix: "b", Intercept: func(_ uint64, method string) poolsim.Action {
		if method == "mining.configure" {
			return poolsim.Ignore
		}
		return poolsim.Handle
	}})
	name := h.user(primary.Addr(), backup.Addr())
	m := h.dial(miner.Config{User: name, Password: "x", Configure: true, VersionMask: 0x1fffe000})
	mineOne(t, m)
	if m.VersionMask() != 0x1fffe000 {
		t.Fatalf("mask %08x on the primary", m.VersionMask())
	}
	primary.Close()
	waitFor(t, "set_version_mask 00000000 after failover", func() bool { return m.VersionMask() == 0 })
	waitFor(t, "a share accepted by the backup", func() bool {
		tryShare(m, 2*time.Second)
		return backup.Stats().Accepted >= 1
	})
	// A share with version bits is refused by the proxy, not forwarded.
	sh, err := m.Mine(ctx10(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	submits := backup.Stats().Submits
	sh.VersionBits, sh.Rolling = 0x2000, true
	if ok, code, _, err := m.Submit(ctx10(t), sh); ok || err != nil || code != 20 {
		t.Fatalf("share with version bits: ok=%v code=%d err=%v, want 20", ok, code, err)
	}
	if s := backup.Stats().Submits; s != submits {
		t.Fatalf("a share with version bits was forwarded to a pool without version rolling")
	}
	if st := backup.Stats(); st.Other != 0 {
		t.Fatalf("backup rejected %d shares as malformed (version bits carried over?) %+v", st.Other, st)
	}
}

func TestReconnectWaitZeroNoStorm(t *testing.T) {
	h := newHarness(t, poolCfg()) // BackoffMin 50ms, BackoffMax 200ms
	p := h.spPool(func(c *spConn) {
		if c.login(testDiff) != nil {
			return
		}
		c.send(spNotify(fmt.Sprintf("rc%d", c.idx), true))
		c.send(`{"id":null,"method":"client.reconnect","params":["",0,0]}`)
		c.serve()
	})
	r := h.spMiner(h.user(p.Addr()))
	waitFor(t, "the first connection", func() bool { return p.Accepted() >= 1 })
	// A measurement window, not a synchronisation: with the normal backoff
	// (50-200ms) 2 s hold about 15 redials; the storm made hundreds.
	start := time.Now()
	for time.Since(start) < 2*time.Second {
		if n := p.Accepted(); n > 40 {
			t.Fatalf("%d pool connects in %v after client.reconnect with wait 0: a redial storm", n, time.Since(start))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := p.Accepted(); n > 30 {
		t.Fatalf("%d pool connects in 2s, want at most ~15 (normal backoff)", n)
	}
	r.c.Close()
}

func TestReconnectWithWaitKeepsConnection(t *testing.T) {
	h := newHarness(t, poolCfg())
	p := h.pool(poolsim.Config{})
	m := h.dial(miner.Config{User: h.user(p.Addr()), Password: "x"})
	mineOne(t, m)
	before := p.Stats().TotalConnections
	host, port, _ := strings.Cut(p.Addr(), ":")
	pn, _ := strconv.Atoi(port)
	const wait = 3 // seconds
	p.Reconnect(host, pn, wait)
	start := time.Now()
	// During the wait the connection stays: shares are forwarded and
	// accepted (282 of 294 were answered "pool not connected" before).
	n := 0
	for time.Since(start) < wait*time.Second/2 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		sh, err := m.Mine(ctx, 0)
		if err == nil {
			var ok bool
			var code int
			var msg string
			ok, code, msg, err = m.Submit(ctx, sh)
			if err == nil && !ok {
				err = fmt.Errorf("code %d %q", code, msg)
			}
		}
		cancel()
		if err != nil {
			t.Fatalf("share %d, %v after client.reconnect with wait %ds: %v", n, time.Since(start), wait, err)
		}
		n++
	}
	if tc := p.Stats().TotalConnections; tc != before {
		t.Fatalf("the proxy redialled %v after a reconnect with wait %ds", time.Since(start), wait)
	}
	old := latestJob(t, m) // still the old connection's: the wait has not ended
	waitFor(t, "the redial after the wait", func() bool { return p.Stats().TotalConnections > before })
	newJobAfter(t, m, "a job on the new connection", old)
	mineOne(t, m)
	if m.Reconnects() != 0 || m.Closed() {
		t.Fatal("the pool's client.reconnect reached the miner")
	}
}

func TestInvalidNotifyDropped(t *testing.T) {
	hash := `"` + strings.Repeat("00", 28) + `0badcafe"`
	branches := `["` + strings.Repeat("11", 32) + `"]`
	ver, nbits, ntime := `"20000000"`, `"207fffff"`, `"66000000"`
	cases := []struct {
		name, marker, line string // marker is in the job id
	}{
		{"odd-length prevhash", "bad1", spNotifyRaw(`"bad1"`, `"`+strings.Repeat("0", 63)+`"`, branches, ver, nbits, ntime, false)},
		{"numeric job id", "4242", spNotifyRaw(`4242`, hash, branches, ver, nbits, ntime, false)},
		{"object job id", "bad3", spNotifyRaw(`{"bad3":1}`, hash, branches, ver, nbits, ntime, false)},
		{"null version", "bad4", spNotifyRaw(`"bad4"`, hash, branches, `null`, nbits, ntime, false)},
		{"array nbits", "bad5", spNotifyRaw(`"bad5"`, hash, branches, ver, `["207fffff"]`, ntime, false)},
		{"object ntime", "bad6", spNotifyRaw(`"bad6"`, hash, branches, ver, nbits, `{}`, false)},
		{"non-list merkle branch", "bad7", spNotifyRaw(`"bad7"`, hash, `"`+strings.Repeat("11", 32)+`"`, ver, nbits, ntime, false)},
	}
	lines := make(chan string)
	h := newHarness(t, poolCfg())
	p := h.spPool(func(c *spConn) {
		if c.login(testDiff) != nil {
			return
		}
		c.send(spNotify("good0", true))
		go c.serve()
		for {
			select {
			case l := <-lines:
				c.send(l)
			case <-c.p.closed():
				return
			}
		}
	})
	r := h.spMiner(h.user(p.Addr()))
	spReadUntil(t, r, "the first job", 10*time.Second, func(l string) bool { return spIsNotify(l, "good0") })
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// The invalid notify, then a valid sentinel: the miner reads
			// everything the proxy forwarded before the sentinel.
			sentinel := fmt.Sprintf("sentinel%cx", 'a'+i)
			lines <- tc.line
			lines <- spNotify(sentinel, false)
			got := spReadUntil(t, r, "the sentinel job", 10*time.Second, func(l string) bool { return spIsNotify(l, sentinel) })
			for _, l := range got {
				if spIsNotify(l, tc.marker) {
					t.Fatalf("an invalid notify (%s) was forwarded: %s", tc.name, l)
				}
			}
		})
	}
	v, ok := metricValue(h.scrape(), "proxy_pool_invalid_messages_total", poolLabel(p.Addr()), `method="mining.notify"`)
	if !ok || v != float64(len(cases)) {
		t.Fatalf("proxy_pool_invalid_messages_total{method=mining.notify} = %v (found %v), want %d", v, ok, len(cases))
	}
}

func TestHugeDifficultyBounded(t *testing.T) {
	h := newHarness(t, poolCfg())
	p := h.spPool(func(c *spConn) {
		if c.login(testDiff) != nil {
			return
		}
		c.send(spNotify("hd1", true))
		// 1.8e308 is past float64's range, and 1.7e308 is finite but far
		// above pow.Diff1's difficulty, which no share can meet: both are
		// dropped. Two accepted shares at 1.7e308 made every *_one_accepted*
		// counter +Inf for the life of the process.
		c.send(`{"id":null,"method":"mining.set_difficulty","params":[1.8e308]}`,
			`{"id":null,"method":"mining.set_difficulty","params":[1.7e308]}`, spNotify("hd2", false))
		c.serve() // submits answered true: the proxy's counters are checked
	})
	name := h.user(p.Addr())
	r := h.spMiner(name + ".rig")
	got := spReadUntil(t, r, "the job after the difficulty", 10*time.Second, func(l string) bool { return spIsNotify(l, "hd2") })
	for _, l := range got {
		if strings.Contains(l, "set_difficulty") && strings.Contains(l, "e+308") {
			t.Errorf("a difficulty above Diff1 forwarded: %s", l)
		}
	}
	id := spJobID(got[len(got)-1])
	for i := 0; i < 2; i++ {
		r.send(fmt.Sprintf(`{"id":%d,"method":"mining.submit","params":["%s.rig",%s,"%04x","66000000","00000000"]}`+"\n", 100+i, name, id, i))
		l := spReadUntil(t, r, "the submit answer", 10*time.Second, func(l string) bool { return strings.Contains(l, fmt.Sprintf(`"id":%d`, 100+i)) })
		t.Logf("submit answered %s", l[len(l)-1])
	}
	text := h.scrape()
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, "one_accepted") && !strings.HasPrefix(l, "#") {
			i := strings.LastIndexByte(l, ' ')
			v, err := strconv.ParseFloat(l[i+1:], 64)
			if err != nil || math.IsInf(v, 0) || math.IsNaN(v) || v > 1e6 {
				t.Errorf("counter not bounded: %s", l)
			}
		}
	}
	v, ok := metricValue(text, "proxy_pool_invalid_messages_total", poolLabel(p.Addr()), `method="mining.set_difficulty"`)
	if !ok || v != 2 {
		t.Errorf("proxy_pool_invalid_messages_total{method=mining.set_difficulty} = %v (found %v), want 2", v, ok)
	}
}

func TestAllPoolsRejectLoginAnswersFalse(t *testing.T) {
	cfg := poolCfg()
	cfg.AuthorizeWait = 2 * time.Second
	h := newHarness(t, cfg)
	primary := h.pool(poolsim.Config{User: "someone-else"})
	backup := h.pool(poolsim.Config{User: "someone-else"})
	name := h.user(primary.Addr(), backup.Addr())
	// An ASIC moves to its own backup pool only when told false.
	m, err := miner.Dial(miner.Config{Addr: h.srv.Addr(), User: name, Password: "x", Timeout: 10 * time.Second})
	if err == nil {
		m.Close()
		t.Fatal("authorize answered true though every pool rejected the account's login")
	}
	var me *miner.Error
	if !errors.As(err, &me) || me.Code != 24 || !strings.Contains(me.Message, "Unauthorized worker") {
		t.Fatalf("authorize: %v, want error 24 with the pool's reason", err)
	}
}

func TestGiveUpClosesMiners(t *testing.T) {
	cfg := poolCfg()
	cfg.GiveUp = time.Second
	// The first miner is answered before the give-up and its session
	// stays for restore, keeping the dead upstream, which the late miner
	// below joins.
	cfg.AuthorizeWait, cfg.SessionGrace = 200*time.Millisecond, time.Minute
	h := newHarness(t, cfg)
	name := h.user(h.spDeadAddr(), h.spDeadAddr())
	// No pool of the account works: after GiveUp its miner is closed so
	// that it moves to its own backup pool.
	r := h.spMiner(name)
	spExpectClosed(t, r, 10*time.Second)
	// A miner of the account that arrives while it is still dead is not
	// left waiting either.
	late := h.spMiner(name)
	spExpectClosed(t, late, 10*time.Second)
	if v := msDropped(h, "no_pool"); v < 2 {
		t.Fatalf("proxy_miners_dropped_total{reason=no_pool} = %v, want 2", v)
	}
}

func TestLateJoinerDifficulty(t *testing.T) {
	h := newHarness(t, poolCfg())
	p := h.pool(poolsim.Config{})
	name := h.user(p.Addr())
	a := h.dial(miner.Config{User: name + ".a", Password: "x"})
	mineOne(t, a)
	const d1 = 4 * testDiff
	p.SetDifficulty(d1) // no notify after it
	waitFor(t, "miner a got the new difficulty", func() bool { return a.Difficulty() == d1 })
	// Miner b joins between the pool's set_difficulty and its next notify:
	// its first job must come at d1, or it mines below the pool's target.
	b := h.dial(miner.Config{User: name + ".b", Password: "x"})
	if j := latestJob(t, b); j.Difficulty != d1 {
		t.Fatalf("late joiner's first job at difficulty %v, want %v", j.Difficulty, d1)
	}
	p.Notify(false)
	waitJob(t, b, "the pool's next job", func(j *miner.Job) bool { return !j.Clean })
	mineOne(t, b)
}

func TestSetDifficultyAlwaysFollowedByNotify(t *testing.T) {
	h := newHarness(t, poolCfg())
	p := h.pool(poolsim.Config{})
	m := h.dial(miner.Config{User: h.user(p.Addr()), Password: "x"})
	mineOne(t, m)
	jobs := p.Stats().Jobs
	// cgminer-family firmware applies a new difficulty only at the next
	// mining.notify: the proxy resends the current job (clean=false).
	const d1 = 2 * testDiff
	p.SetDifficulty(d1)
	j := waitJobAt(t, m, d1)
	if j.Clean {
		t.Fatal("the resent job is clean: miners would throw away their work")
	}
	if p.Stats().Jobs != jobs {
		t.Fatal("the pool sent a job: the test proves nothing")
	}
	mineOne(t, m)
}

func waitJobAt(t *testing.T, m *miner.Miner, d float64) *miner.Job {
	t.Helper()
	var got *miner.Job
	waitJob(t, m, fmt.Sprintf("a job at difficulty %v", d), func(j *miner.Job) bool { got = j; return j.Difficulty == d })
	return got
}

func TestKeepaliveResendsJob(t *testing.T) {
	cfg := poolCfg()
	cfg.Keepalive = 500 * time.Millisecond
	h := newHarness(t, cfg)
	p := h.pool(poolsim.Config{}) // sends no job after the first
	m := h.dial(miner.Config{User: h.user(p.Addr()), Password: "x"})
	first := latestJob(t, m)
	// cpuminer drops a connection silent for 120 s: a quiet pool's job is
	// resent (clean=false) every Keepalive.
	j := newJobAfter(t, m, "the job resent by keepalive", first)
	if j.Clean {
		t.Fatal("keepalive resend is clean")
	}
	if j.PrevHash != first.PrevHash || !bytes.Equal(j.Coinb1, first.Coinb1) {
		t.Fatal("keepalive sent other work than the current job")
	}
	mineOne(t, m)
}

func TestReconnectOutcomesCounted(t *testing.T) {
	h := newHarness(t, poolCfg()) // PoolHandshakeTimeout 500ms
	p := h.spPool(func(c *spConn) {
		switch c.idx {
		case 1: // logs in, then the pool restarts (dropAll below)
			if c.login(testDiff) == nil {
				c.send(spNotify("oc1", true))
				c.serve()
			}
		case 2: // wedged
			hangingPool(c)
		case 3: // rejects the login
			if m, err := c.until("mining.authorize"); err == nil {
				c.send(fmt.Sprintf(`{"id":%s,"result":null,"error":[24,"Unauthorized worker",null]}`, m.ID))
				c.serve()
			}
		case 4: // closes during the handshake
			c.until("mining.authorize")
		default:
			if c.login(testDiff) == nil {
				c.send(spNotify("oc5", true))
				c.serve()
			}
		}
	})
	dead := h.spDeadAddr()
	name := h.user(p.Addr(), dead)
	r := h.spMiner(name)
	spReadUntil(t, r, "the first job", 10*time.Second, func(l string) bool { return spIsNotify(l, "oc1") })
	p.dropAll() // conn 1 closes after login
	spReadUntil(t, r, "a job after every failure", 15*time.Second, func(l string) bool { return spIsNotify(l, "oc5") })
	text := h.scrape()
	for _, w := range []struct{ pool, outcome string }{
		{p.Addr(), "ok"}, {p.Addr(), "handshake_timeout"}, {p.Addr(), "login_rejected"},
		{p.Addr(), "closed"}, {dead, "connect_failed"},
	} {
		v, ok := metricValue(text, "proxy_upstream_reconnects_total", poolLabel(w.pool), `outcome="`+w.outcome+`"`)
		if !ok || v < 1 {
			t.Errorf("proxy_upstream_reconnects_total{pool=%s,outcome=%s} = %v (found %v), want >= 1", w.pool, w.outcome, v, ok)
		}
	}
	if t.Failed() {
		t.Logf("exposition:\n%s", grep(text, "reconnects"))
	}
}

func TestWorkerSeriesFollowPool(t *testing.T) {
	h := newHarness(t, poolCfg())
	primary := h.pool(poolsim.Config{JobIDPrefix: "p"})
	backup := h.pool(poolsim.Config{JobIDPrefix: "b"})
	name := h.user(primary.Addr(), backup.Addr())
	m := h.dial(miner.Config{User: name + ".rig1", Password: "x"})
	pa := primary.Addr()
	failToBackup(t, h, m, primary, backup)
	mineOne(t, m)
	ba := backup.Stats().Accepted
	text := h.scrape()
	want := []struct {
		name string
		pool string
		v    float64
	}{
		{"proxy_worker_accepted", backup.Addr(), float64(ba)},
		{"proxy_pool_accepted_total", backup.Addr(), float64(ba)},
		{"proxy_pool_accepted_total", pa, 1},
		{"proxy_user_accepted_total", backup.Addr(), float64(ba)},
	}
	for _, w := range want {
		if v, ok := metricValue(text, w.name, poolLabel(w.pool)); !ok || v != w.v {
			t.Errorf("%s{pool=%s} = %v (found %v), want %v", w.name, w.pool, v, ok, w.v)
		}
	}
	if v, ok := metricValue(text, "proxy_worker_accepted", poolLabel(pa)); ok && v != 0 {
		t.Errorf("proxy_worker_accepted{pool=primary} = %v: shares of the backup credited to the primary", v)
	}
	if t.Failed() {
		t.Logf("exposition:\n%s", grep(text, "accepted"))
	}
}

func TestPassthroughEndToEnd(t *testing.T) {
	cfg := poolCfg()
	cfg.Mode = ModePassthrough
	h := newHarness(t, cfg)
	p := h.pool(poolsim.Config{})
	name := h.user(p.Addr())
	m1 := h.dial(miner.Config{User: name + ".a", Password: "x"})
	m2 := h.dial(miner.Config{User: name + ".b", Password: "x"})
	for i := 0; i < 2; i++ {
		mineOne(t, m1)
		mineOne(t, m2)
	}
	if c := p.Conns(); c != 2 {
		t.Fatalf("pool sees %d connections for two passthrough miners, want 2", c)
	}
	// The pool restarts: each miner's own upstream redials and it mines on.
	j1, j2 := latestJob(t, m1), latestJob(t, m2)
	p.DropConnections()
	waitFor(t, "both upstreams redialled", func() bool { return p.Stats().TotalConnections == 4 && h.srv.Stats().Ready == 2 })
	newJobAfter(t, m1, "m1's job after the redial", j1)
	newJobAfter(t, m2, "m2's job after the redial", j2)
	mineOne(t, m1)
	mineOne(t, m2)
	if st := p.Stats(); st.Accepted != 6 || st.Rejected != 0 {
		t.Fatalf("pool stats %+v, want 6 accepted, 0 rejected", st)
	}
	if m1.Closed() || m2.Closed() {
		t.Fatal("a passthrough miner was disconnected by the pool restart")
	}
}

func TestPoolPushedSetExtranonce(t *testing.T) {
	h := newHarness(t, poolCfg())
	p := h.pool(poolsim.Config{})
	m := h.dial(miner.Config{User: h.user(p.Addr()), Password: "x", ExtranonceSubscribe: true})
	mineOne(t, m)
	// A new extranonce1, same size: the layout holds; new work carries it.
	old := latestJob(t, m)
	if err := p.SetExtranonce(0); err != nil {
		t.Fatal(err)
	}
	newJobAfter(t, m, "a job with the pool's new extranonce1", old)
	mineOne(t, m)

	// A smaller extranonce2 (ckpool's proxy mode, 3 bytes): the miner gets
	// a new layout, and a share of a job of the old layout is stale at the
	// proxy, never forwarded.
	ctx := ctx10(t)
	sh, err := m.Mine(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SetExtranonce(3); err != nil {
		t.Fatal(err)
	}
	waitJob(t, m, "a job in the new layout", func(j *miner.Job) bool {
		return len(j.Extranonce1) == 1 && j.Extranonce2Size == 2
	})
	submits := p.Stats().Submits
	if ok, code, msg, err := m.Submit(ctx, sh); ok || err != nil || code != 21 {
		t.Fatalf("share of the old layout answered ok=%v code=%d %q err=%v, want 21 stale", ok, code, msg, err)
	}
	if s := p.Stats().Submits; s != submits {
		t.Fatal("a share of the old layout was forwarded")
	}
	mineOne(t, m)
	if st := p.Stats(); st.Rejected != 0 {
		t.Fatalf("pool rejected shares: %+v", st)
	}
}

func TestPoolPushedSetVersionMask(t *testing.T) {
	h := newHarness(t, poolCfg())
	p := h.pool(poolsim.Config{VersionMask: 0x1fffe000})
	m := h.dial(miner.Config{User: h.user(p.Addr()), Password: "x", Configure: true, VersionMask: 0x1fffe000})
	mineOne(t, m)
	p.SetVersionMask(0x00ffe000)
	waitFor(t, "the pool's narrower mask", func() bool { return m.VersionMask() == 0x00ffe000 })
	mineOne(t, m)
	// Bits the pool no longer allows are refused by the proxy.
	sh, err := m.Mine(ctx10(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	submits := p.Stats().Submits
	sh.VersionBits, sh.Rolling = 0x10000000, true
	if ok, code, _, err := m.Submit(ctx10(t), sh); ok || err != nil || code != 20 {
		t.Fatalf("share outside the mask: ok=%v code=%d err=%v, want 20", ok, code, err)
	}
	if s := p.Stats().Submits; s != submits {
		t.Fatal("a share outside the pool's mask was forwarded")
	}
	if st := p.Stats(); st.Rejected != 0 {
		t.Fatalf("pool rejected shares: %+v", st)
	}
}

func TestPoolPushedReconnect(t *testing.T) {
	h := newHarness(t, poolCfg())
	p := h.pool(poolsim.Config{})
	m := h.dial(miner.Config{User: h.user(p.Addr()), Password: "x"})
	mineOne(t, m)
	old := latestJob(t, m)
	p.Reconnect("", 0, 0) // ckpool: empty params, reconnect to the same pool
	waitFor(t, "the redial", func() bool { return p.Stats().TotalConnections == 2 && h.srv.Stats().Ready == 1 })
	newJobAfter(t, m, "a job on the new connection", old)
	mineOne(t, m)
	if m.Reconnects() != 0 || m.Closed() {
		t.Fatal("the pool's client.reconnect reached the miner")
	}
	if st := p.Stats(); st.Rejected != 0 {
		t.Fatalf("pool rejected shares: %+v", st)
	}
}
