package proxy

import (
	"encoding/hex"
	"strconv"
	"testing"

	"github.com/stratum-proxy/stratum-proxy/store"
)

// newCNHotPath wires one logged-in CryptoNote upstream with n mining
// members, each with its nonce byte, without sockets.
func newCNHotPath(tb testing.TB, miners int) *hotPath {
	h := newHotPath(tb, 0)
	srv, l := h.srv, h.l
	a := &account{srv: srv, name: "cn", mode: ModeSplit, algo: "randomx", divider: 1 << 32,
		targets: []store.Account{{Pool: "127.0.0.1:2", User: "acct", Password: "x"}}}
	up := newUpstream(a, l, 2, joinReq{proto: protoCryptoNote})
	pool := &fakeConn{}
	up.conn = pool
	up.state = upHandshake
	up.newGeneration()
	cnPoolLine(up, []byte(`{"id":1,"jsonrpc":"2.0","error":null,"result":{"id":"pool-sid","job":{"blob":"`+
		"0707f7a4f0d605b303260816ba3f10902e1a145ac5fad3aa3af6ea44c11869dc4f853f002b2eea0000000077b206a02ca5b1d4ce6bbfdf0acac38bded34d2dcdeef95cd20cefc12f61d56109"+
		`","job_id":"j1","target":"ffffff07","algo":"rx/0","height":3000000,"seed_hash":"`+
		"8f7ab5c1e0d2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c"+`"},"status":"OK"}}`))
	up.loggedIn = true
	up.state = upReady
	up.ready.Store(true)
	h.up, h.pool = up, pool
	for i := 0; i < miners; i++ {
		mc := &minerConn{srv: srv, loop: l, c: &fakeConn{}, listIdx: -1, state: stateMining, hasWork: true, dialect: cnMiner{}, family: famCryptoNote}
		mc.answers.maxPending = 256
		s := &session{mc: mc, acct: a, up: up}
		s.name = "cn"
		s.setLayout(uint32(i), 1, 0)
		up.members[s.prefixVal] = s
		s.worker = srv.met.NewWorker("127.0.0.1:"+strconv.Itoa(i), "", "cn", "randomx", "127.0.0.1:2", 1<<32)
		mc.sess = s
		mc.up = up
		up.lists[0].add(mc)
		h.mcs = append(h.mcs, mc)
	}
	h.job = up.jobs.Load().last()
	if h.job == nil {
		tb.Fatal("login job not taken")
	}
	return h
}

func cnPoolLine(up *upstream, line []byte) { up.dialect.(*cnPool).handleLine(up, line) }

// A CryptoNote share (nonce byte and target checked, duplicate set,
// relayed under the pool's session id, answered) allocates nothing.
func TestCryptoNoteShareDoesNotAllocate(t *testing.T) {
	h := newCNHotPath(t, 1)
	mc := h.mcs[0]
	id := string(h.job.id)
	line := []byte(`{"id":9,"jsonrpc":"2.0","method":"submit","params":{"id":"x","job_id":` + id +
		`,"nonce":"00000000","result":"0000000000000000000000000000000000000000000000000000000000000000"}}`)
	at := len(`{"id":9,"jsonrpc":"2.0","method":"submit","params":{"id":"x","job_id":` + id + `,"nonce":"`)
	ans := make([]byte, 0, 96)
	n := uint32(0)
	share := func() {
		n++
		hex.Encode(line[at:at+6], []byte{byte(n), byte(n >> 8), byte(n >> 16)})
		mc.dialect.handleLine(mc, line)
		ans = append(ans[:0], `{"id":`...)
		ans = strconv.AppendUint(ans, h.up.nextID-1, 10)
		ans = append(ans, `,"jsonrpc":"2.0","error":null,"result":{"status":"OK"}}`...)
		cnPoolLine(h.up, ans)
	}
	for i := 0; i < 100; i++ {
		share()
	}
	sent, before := h.up.nextID, mc.c.(*fakeConn).n
	if a := testing.AllocsPerRun(1000, share); a != 0 {
		t.Fatalf("a CryptoNote share allocates %v times, want 0", a)
	}
	if h.up.nextID-sent != 1001 || mc.c.(*fakeConn).n == before {
		t.Fatalf("shares not relayed and answered (%d sent)", h.up.nextID-sent)
	}
}

// The CryptoNote fan-out encodes each miner's blob into the loop's
// scratch: nothing allocated per miner.
func TestCryptoNoteFanoutDoesNotAllocatePerMiner(t *testing.T) {
	h := newCNHotPath(t, 100)
	h.up.fanoutNotify(h.l, h.job)
	if a := testing.AllocsPerRun(100, func() {
		for _, mc := range h.mcs {
			mc.sess.lastJob = nil
		}
		h.up.fanoutNotify(h.l, h.job)
	}); a != 0 {
		t.Fatalf("CryptoNote fan-out to 100 miners allocates %v times, want 0", a)
	}
}

func BenchmarkCryptoNoteFanout256(b *testing.B) {
	h := newCNHotPath(b, 256)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, mc := range h.mcs {
			mc.sess.lastJob = nil
		}
		h.up.fanoutNotify(h.l, h.job)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/256, "ns/miner")
}
