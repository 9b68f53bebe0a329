package proxy

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stratum-proxy/stratum-proxy/bench/miner"
	"github.com/stratum-proxy/stratum-proxy/bench/poolsim"
	"github.com/stratum-proxy/stratum-proxy/codec"
)

// A panic while handling a pool's line is recovered at the connection
// boundary: it is counted as proxy_panics_total{where="pool"}, only that
// pool socket closes, the upstream redials, and its miners mine on.
func TestPanicInPoolHandlerRedials(t *testing.T) {
	const marker = "hard-inject-pool-panic"
	// Registered before the harness, so it runs after the proxy stopped.
	t.Cleanup(func() { testHookPoolLine = nil })
	testHookPoolLine = func(line []byte) {
		if bytes.Contains(line, []byte(marker)) {
			panic("hard: injected panic in a pool handler")
		}
	}
	h := newHarness(t, fastCfg())
	p := h.pool(poolsim.Config{})
	m := h.dial(miner.Config{User: h.user(p.Addr()), Password: "x"})
	mineOne(t, m)
	before := p.Stats().TotalConnections
	old := latestJob(t, m)

	p.BroadcastLine([]byte(`{"id":null,"method":"client.show_message","params":["` + marker + `"]}` + "\n"))
	waitFor(t, "the panic counted", func() bool {
		v, _ := msValue(h, "proxy_panics_total", "where", "pool")
		return v == 1
	})
	waitFor(t, "the upstream redialled", func() bool { return p.Stats().TotalConnections > before })
	newJobAfter(t, m, "a job from the new connection", old)
	mineOne(t, m)
	if m.Closed() {
		t.Fatal("the miner was closed by a panic on its pool's socket")
	}
	if v, _ := msValue(h, "proxy_panics_total", "where", "miner"); v != 0 {
		t.Fatalf("proxy_panics_total{where=miner} = %v, want 0", v)
	}
}

// A pool line that arrives in two TCP reads is put together, not lost: a
// notify split across segments (large coinbases, slow links) reaches the
// miner whole. gnet's Discard(0) discards everything, which lost the first
// part of every split line before.
func TestPoolLineSplitAcrossReads(t *testing.T) {
	h := newHarness(t, fastCfg())
	p := h.spPool(func(c *spConn) {
		if c.login(testDiff) != nil {
			return
		}
		c.send(spNotify("whole1", true))
		// Pacing, so that the first half is a read of its own and the
		// second half another.
		time.Sleep(100 * time.Millisecond)
		line := spNotify("split2", true) + "\n"
		cut := len(line) / 2
		_, _ = c.nc.Write([]byte(line[:cut]))
		time.Sleep(100 * time.Millisecond)
		_, _ = c.nc.Write([]byte(line[cut:]))
		c.serve()
	})
	r := h.spMiner(h.user(p.Addr()))
	spReadUntil(t, r, "the job sent in two pieces", 10*time.Second, func(l string) bool {
		if strings.Contains(l, "codec:") {
			t.Fatalf("the proxy saw a broken line: %s", l)
		}
		return spIsNotify(l, "split2")
	})
	if v, _ := msValue(h, "proxy_pool_invalid_messages_total"); v != 0 {
		t.Fatalf("%v pool lines dropped as invalid, want 0", v)
	}
}

// A miner that asks for version rolling joins an upstream that logged in
// without mining.configure (its first miner did not ask): the proxy asks
// the pool on the live connection and hands the miner the pool's grant, so
// its rolled shares are accepted. Until then it is granted nothing the pool
// did not grant.
func TestVersionRollingMinerJoinsLiveUpstream(t *testing.T) {
	var log methodLog
	h := newHarness(t, fastCfg())
	p := h.pool(poolsim.Config{VersionMask: 0x00ffe000, Intercept: log.intercept})
	name := h.user(p.Addr())
	plain := h.dial(miner.Config{User: name + ".plain", Password: "x"})
	mineOne(t, plain)
	if n := log.count("mining.configure"); n != 0 {
		t.Fatalf("%d mining.configure sent for a miner that did not ask", n)
	}
	vr := h.dial(miner.Config{User: name + ".vr", Password: "x", Configure: true, VersionMask: 0x1fffe000})
	waitFor(t, "the pool's grant on the live connection", func() bool { return vr.VersionMask() == 0x00ffe000 })
	if n := log.count("mining.configure"); n != 1 {
		t.Fatalf("%d mining.configure sent, want 1 on the live connection", n)
	}
	if tc := p.Stats().TotalConnections; tc != 1 {
		t.Fatalf("%d pool connections, want the one live connection", tc)
	}
	for i := 0; i < 3; i++ {
		mineOne(t, vr)
	}
	mineOne(t, plain)
}

// The last miner leaves (on its own loop) while its upstream is logging in
// (on the upstream's loop): the login's answer must not bring the closed
// upstream back. Before, onLogin set the state to ready over "closed", the
// socket close that followed was taken for a lost connection, and the
// upstream redialled a pool nobody used, forever. The interleaving is too
// narrow to hit over sockets, so the two steps run here in that order.
func TestUpstreamClosedDuringLoginStaysClosed(t *testing.T) {
	h := newHotPath(t, 0)
	up := h.up
	up.loggedIn = false
	up.mu.Lock()
	up.state = upHandshake
	up.mu.Unlock()
	up.ready.Store(false)

	up.mu.Lock()
	up.state = upClosed // what leave does when the last member goes
	up.mu.Unlock()
	up.onLogin()
	up.mu.Lock()
	st := up.state
	up.mu.Unlock()
	if st != upClosed || up.loggedIn || up.ready.Load() {
		t.Fatalf("after a login answer on a closed upstream: state %v, loggedIn %v, ready %v; want closed",
			st, up.loggedIn, up.ready.Load())
	}
	up.schedule(0) // a redial of a closed upstream is refused too
	up.mu.Lock()
	st = up.state
	up.mu.Unlock()
	if st != upClosed {
		t.Fatalf("schedule revived a closed upstream: state %v", st)
	}
}

// recConn records what the proxy writes to a miner.
type recConn struct {
	fakeConn
	out bytes.Buffer
}

func (r *recConn) Write(b []byte) (int, error) { return r.out.Write(b) }

// A retarget resends the current job under an id of the miner's own:
// cpuminer starts new work (and so mines at the new difficulty) only when
// the job id changes. Shares under that id are the pool's job; once the
// pool makes the job stale (a clean notify), the id is stale too.
func TestRetargetResendsUnderOwnJobID(t *testing.T) {
	h := newHotPath(t, 0)
	rc := &recConn{}
	mc := &minerConn{srv: h.srv, loop: h.l, c: rc, listIdx: -1, state: stateMining, hasWork: true, dialect: v1Miner{}}
	mc.answers.maxPending = 16
	s := &session{mc: mc, acct: h.up.acct, up: h.up}
	s.name = "bench"
	s.setLayout(7, 2, 2)
	h.up.members[s.prefixVal] = s
	s.pad = h.up.padLocked(s)
	s.worker = h.srv.met.NewWorker("127.0.0.1:9", "", "bench", "sha256", "127.0.0.1:1", 1)
	mc.sess, mc.up = s, h.up
	h.up.lists[0].add(mc)
	mc.checked, mc.algo = true, algoSHA256d
	mc.vd.init(h.srv.vdcfg, time.Now(), 0, 0)
	mc.sendWork()
	first := lastNotifyID(t, rc.out.String())

	mc.retarget(mc.sentDiff / 1024)
	alias := lastNotifyID(t, rc.out.String())
	if alias == first || !strings.HasPrefix(alias, strings.TrimSuffix(first, `"`)) {
		t.Fatalf("retarget resent job %s as %s; want an id of the miner's own", first, alias)
	}
	submit := func(nonce string) string {
		rc.out.Reset()
		mc.dialect.handleLine(mc, []byte(`{"id":9,"method":"mining.submit","params":["bench",`+alias+`,"0000","6b00d263","`+nonce+`"]}`))
		return rc.out.String()
	}
	if got := submit("00000001"); strings.Contains(got, "job not found") || !strings.Contains(got, `"id":9`) {
		t.Fatalf("a share under the miner's own job id: %s", got)
	}
	// The pool moves on with a clean job: the alias goes stale with its job.
	poolLine(h.up, []byte(`{"params":["6b00d15f0000000f","70ae1ef699e477ade257473a07e0cc12146a95850f1235fb9c9f86d55e947646","01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff2f016a000481d2006b04d82cee300c","0a636b706f6f6c0d2f636b706f6f6c2d746573742fffffffff0200f2052a010000001976a914cf757c67706ad6275e5b29864fb227788423b8ab88ac0000000000000000266a24aa21a9ede2f61c3f71d1defd3fa999dfa36953755c690689799962b48bebd836974e8cf900000000",[],"20000000","207fffff","6b00d281",true],"id":null,"method":"mining.notify"}`))
	if got := submit("00000002"); !strings.Contains(got, "job not found") {
		t.Fatalf("a share under a stale alias: %s; want 21", got)
	}
}

// lastNotifyID returns the raw job id of the last mining.notify in out.
func lastNotifyID(t *testing.T, out string) string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		var m codec.Message
		if codec.Decode([]byte(lines[i]), &m) == nil && string(m.Method) == codec.MethodNotify {
			p, _ := codec.SplitArray(m.Params, nil)
			return string(p[0])
		}
	}
	t.Fatalf("no notify in %q", out)
	return ""
}
