package proxy

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratum-proxy/stratum-proxy/bench/miner"
	"github.com/stratum-proxy/stratum-proxy/bench/poolsim"
)

// memSessions is an in-process SessionStore shared by two proxies of one
// test: it stands in for etcd, which store/etcdstore tests for real
// (records, leases, expiry) and the cluster test runs behind haproxy.
type memSessions struct {
	mu    sync.Mutex
	recs  map[string]SessionRecord
	loads int
}

func (m *memSessions) Save(r SessionRecord, _ time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recs[r.ID] = r
}

func (m *memSessions) Delete(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.recs, id)
}

func (m *memSessions) Load(_ context.Context, id string) (SessionRecord, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.loads++
	r, ok := m.recs[id]
	return r, ok, nil
}

// twoInstances starts two proxies sharing a store file's content (one
// store opened once, as the etcd backend gives every instance the same
// users) and one session store.
func twoInstances(t *testing.T) (a, b *harness, sessions *memSessions) {
	sessions = &memSessions{recs: map[string]SessionRecord{}}
	cfgA, cfgB := fastCfg(), fastCfg()
	cfgA.Sessions, cfgA.InstanceID = sessions, "a1"
	cfgB.Sessions, cfgB.InstanceID = sessions, "b2"
	a = newHarness(t, cfgA)
	b = newHarnessOn(t, cfgB, a.st)
	return a, b, sessions
}

// TestSessionRestoredOnAnotherInstance: a miner whose instance is gone
// reconnects to another one with its session id and gets its extranonce1,
// extranonce2 size and difficulty back there; it mines on that instance's
// own pool login, and the pool sees no duplicate between the two.
func TestSessionRestoredOnAnotherInstance(t *testing.T) {
	a, b, sessions := twoInstances(t)
	pool := a.pool(poolsim.Config{})
	name := a.user(pool.Addr())
	m := a.dial(miner.Config{User: name + ".rig", Password: "x"})
	mineOne(t, m)
	sid, en1, en2 := m.SessionID(), fmt.Sprintf("%x", m.Extranonce1()), m.Extranonce2Size()
	if sid[:2] != "a1" {
		t.Fatalf("session id %s lacks the instance prefix", sid)
	}
	m.Close()
	waitFor(t, "the record saved on close", func() bool {
		sessions.mu.Lock()
		defer sessions.mu.Unlock()
		_, ok := sessions.recs[sid]
		return ok
	})

	// The same miner comes back through the balancer, to B.
	mb := b.dial(miner.Config{User: name + ".rig", Password: "x", SessionID: sid})
	if got := fmt.Sprintf("%x", mb.Extranonce1()); got != en1 || mb.Extranonce2Size() != en2 || mb.SessionID() != sid {
		t.Fatalf("on B: session %s en1 %s/%d, want %s %s/%d", mb.SessionID(), got, mb.Extranonce2Size(), sid, en1, en2)
	}
	mineOne(t, mb)
	// A miner of the same account on A keeps mining beside it.
	ma := a.dial(miner.Config{User: name + ".other", Password: "x"})
	mineOne(t, ma)
	for range 3 {
		mineOne(t, mb)
		mineOne(t, ma)
	}
	st := pool.Stats()
	if st.RejectedCode(22) != 0 || st.Rejected != 0 {
		t.Fatalf("pool rejected shares across instances: %+v", st)
	}
	if c := pool.Conns(); c != 2 {
		t.Fatalf("pool connections %d, want one per instance", c)
	}
	// An unknown id is a fresh session, after one lookup.
	mc := b.dial(miner.Config{User: name + ".new", Password: "x", SessionID: "zz0000000000000000"})
	if mc.SessionID() == "zz0000000000000000" || mc.SessionID()[:2] != "b2" {
		t.Fatalf("unknown id gave session %s", mc.SessionID())
	}
}

// TestRestoreLookupHoldsPipelinedLines: lines a miner sends while its
// session is looked up are handled after the subscribe answer, in order.
func TestRestoreLookupHoldsPipelinedLines(t *testing.T) {
	_, b, sessions := twoInstances(t)
	pool := b.pool(poolsim.Config{})
	name := b.user(pool.Addr())
	sessions.Save(SessionRecord{ID: "a1ffffffffffffffff", Prefix: 0x1234, K: 2, M: 2, Name: name, Instance: "a1"}, time.Minute)
	r := b.raw()
	r.send(`{"id":1,"method":"mining.subscribe","params":["x","a1ffffffffffffffff"]}` + "\n" +
		`{"id":2,"method":"mining.authorize","params":["` + name + `","x"]}` + "\n")
	sub := r.line()
	if !strings.Contains(sub, `"id":1`) || !strings.Contains(sub, `"1234",2`) {
		t.Fatalf("subscribe answered %s", sub)
	}
	for i := 0; i < 4; i++ {
		if l := r.line(); strings.Contains(l, `"id":2`) {
			if !strings.Contains(l, "true") {
				t.Fatalf("authorize answered %s", l)
			}
			return
		}
	}
	t.Fatal("the pipelined authorize was not answered")
}

// TestSessionTakenOverFromSilentConnection: a miner whose connection died
// silently (behind NAT) reconnects with its session id while the proxy
// still holds the old connection: the old one is closed (counted as
// session_taken_over) and the new one gets the session, same extranonce.
func TestSessionTakenOverFromSilentConnection(t *testing.T) {
	h := newHarness(t, fastCfg())
	pool := h.pool(poolsim.Config{})
	name := h.user(pool.Addr())
	old := h.dial(miner.Config{User: name + ".rig", Password: "x"})
	mineOne(t, old)
	sid, en1 := old.SessionID(), fmt.Sprintf("%x", old.Extranonce1())
	// The old connection stays open: the new one comes first.
	m := h.dial(miner.Config{User: name + ".rig", Password: "x", SessionID: sid})
	if m.SessionID() != sid || fmt.Sprintf("%x", m.Extranonce1()) != en1 {
		t.Fatalf("new connection got session %s en1 %x, want %s %s", m.SessionID(), m.Extranonce1(), sid, en1)
	}
	select {
	case <-old.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the old connection was not closed")
	}
	mineOne(t, m)
	if v, _ := metricValue(h.scrape(), "proxy_miners_dropped_total", `reason="session_taken_over"`); v != 1 {
		t.Fatalf("session_taken_over drops = %v", v)
	}
	if st := pool.Stats(); st.Rejected != 0 {
		t.Fatalf("pool: %+v", st)
	}
}
