package proxy

import (
	"bytes"
	"context"
	"encoding/hex"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/stratum-proxy/stratum-proxy/metrics"
	"github.com/stratum-proxy/stratum-proxy/store"
)

// fakeConn is the part of gnet.Conn the hot path uses; it counts written
// bytes and keeps nothing, like a socket that always has room.
type fakeConn struct {
	gnet.Conn
	n int
}

func (f *fakeConn) Write(b []byte) (int, error) { f.n += len(b); return len(b), nil }
func (f *fakeConn) OutboundBuffered() int       { return 0 }
func (f *fakeConn) RemoteAddr() net.Addr        { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }

// inlineLoop runs Execute'd work at once, standing in for gnet's loop.
type inlineLoop struct{ gnet.EventLoop }

func (inlineLoop) Execute(ctx context.Context, r gnet.Runnable) error { return r.Run(ctx) }

// hotPath wires one loop, one ready upstream and n mining miners without
// sockets, so the per-share and per-notify work can be measured alone.
type hotPath struct {
	srv  *Server
	l    *loop
	up   *upstream
	pool *fakeConn
	mcs  []*minerConn
	job  *job
}

func newHotPath(tb testing.TB, miners int) *hotPath {
	st, err := store.Open(filepath.Join(tb.TempDir(), "p.db"), nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	srv, err := New(Config{Store: st, Metrics: metrics.New(metrics.Config{Tag: "bench"}), Loops: 1})
	if err != nil {
		tb.Fatal(err)
	}
	l := &loop{srv: srv, el: inlineLoop{}}
	srv.loops[l.el] = l
	srv.loopList.Store(&[]*loop{l})
	a := &account{srv: srv, name: "bench", mode: ModeSplit, algo: "sha256", divider: 1,
		targets: []store.Account{{Pool: "127.0.0.1:1", User: "acct", Password: "x"}}}
	up := newUpstream(a, l, 1, joinReq{})
	pool := &fakeConn{}
	up.conn = pool
	up.state, up.n, up.en1, up.diff = upReady, 8, []byte("60d1006b"), 1
	up.loggedIn = true
	up.ready.Store(true)
	a.ups = []*upstream{up}
	h := &hotPath{srv: srv, l: l, up: up, pool: pool}
	for i := 0; i < miners; i++ {
		mc := &minerConn{srv: srv, loop: l, c: &fakeConn{}, listIdx: -1, state: stateMining, hasWork: true, dialect: v1Miner{}}
		mc.answers.maxPending = 256
		s := &session{mc: mc, acct: a, up: up}
		s.name = "bench"
		s.setLayout(uint32(i), 2, 2)
		up.members[s.prefixVal] = s
		s.pad = up.padLocked(s)
		s.worker = srv.met.NewWorker("127.0.0.1:"+strconv.Itoa(i), "", "bench", "sha256", "127.0.0.1:1", 1)
		mc.sess = s
		mc.up = up
		up.lists[0].add(mc)
		h.mcs = append(h.mcs, mc)
	}
	notify := []byte(`{"params":["6b00d15f0000000e","70ae1ef699e477ade257473a07e0cc12146a95850f1235fb9c9f86d55e947646","01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff2f016a000463d2006b045baae9300c","0a636b706f6f6c0d2f636b706f6f6c2d746573742fffffffff0200f2052a010000001976a914cf757c67706ad6275e5b29864fb227788423b8ab88ac0000000000000000266a24aa21a9ede2f61c3f71d1defd3fa999dfa36953755c690689799962b48bebd836974e8cf900000000",[],"20000000","207fffff","6b00d263",true],"id":null,"method":"mining.notify"}`)
	poolLine(up, notify)
	h.job = up.jobs.Load().last()
	if h.job == nil {
		tb.Fatal("notify not taken")
	}
	return h
}

var submitLine = []byte(`{"method": "mining.submit", "params": ["bench.rig", "6b00d15f0000000e", "0000", "6b00d263", "5f0b7516"], "id":4}`)

// relayOne runs one share through the proxy: the miner's submit, the flush
// to the pool, the pool's answer and its delivery to the miner.
func (h *hotPath) relayOne(ans []byte) []byte {
	mc := h.mcs[0]
	mc.dialect.handleLine(mc, submitLine)
	id := h.up.nextID - 1
	ans = append(ans[:0], `{"result":true,"error":null,"id":`...)
	ans = strconv.AppendUint(ans, id, 10)
	ans = append(ans, '}')
	poolLine(h.up, ans)
	return ans
}

// poolLine hands one line from the pool to the upstream's dialect.
func poolLine(up *upstream, line []byte) {
	up.dialect.(*v1Pool).handleLine(up, line)
}

func TestRelayedShareDoesNotAllocate(t *testing.T) {
	h := newHotPath(t, 1)
	ans := make([]byte, 0, 64)
	for i := 0; i < 100; i++ { // warm the reused buffers and the pending free list
		ans = h.relayOne(ans)
	}
	before, poolBefore, sent := h.mcs[0].c.(*fakeConn).n, h.pool.n, h.up.nextID
	if a := testing.AllocsPerRun(1000, func() { ans = h.relayOne(ans) }); a != 0 {
		t.Fatalf("a relayed share allocates %v times, want 0", a)
	}
	if h.up.nextID-sent != 1001 || h.pool.n == poolBefore {
		t.Fatalf("shares were not relayed to the pool (%d upstream ids used)", h.up.nextID-sent)
	}
	if h.mcs[0].c.(*fakeConn).n == before || len(h.up.pending) != 0 {
		t.Fatal("answers did not reach the miner")
	}
}

func TestNotifyFanoutDoesNotAllocatePerMiner(t *testing.T) {
	h := newHotPath(t, 100)
	h.up.fanoutNotify(h.l, h.job) // builds the shared line once
	if a := testing.AllocsPerRun(100, func() { h.up.fanoutNotify(h.l, h.job) }); a != 0 {
		t.Fatalf("fan-out to 100 miners allocates %v times, want 0", a)
	}
}

func BenchmarkRelayShare(b *testing.B) {
	h := newHotPath(b, 1)
	ans := make([]byte, 0, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ans = h.relayOne(ans)
	}
}

// BenchmarkNotifyFanout1000 fans one job out to 1,000 miners per op: a
// notify costs one job (a few allocations, per notify) plus nothing per
// miner.
func BenchmarkNotifyFanout1000(b *testing.B) {
	h := newHotPath(b, 1000)
	notify := []byte(`{"params":["6b00d15f0000000f","70ae1ef699e477ade257473a07e0cc12146a95850f1235fb9c9f86d55e947646","01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff2f016a000481d2006b04d82cee300c","0a636b706f6f6c0d2f636b706f6f6c2d746573742fffffffff0200f2052a010000001976a914cf757c67706ad6275e5b29864fb227788423b8ab88ac0000000000000000266a24aa21a9ede2f61c3f71d1defd3fa999dfa36953755c690689799962b48bebd836974e8cf900000000",[],"20000000","207fffff","6b00d281",false],"id":null,"method":"mining.notify"}`)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		poolLine(h.up, notify)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/miner")
}

// A checked share (sha256d hashed on the loop, judged against the miner's
// difficulty, put in the job's duplicate set) allocates nothing either.
func TestCheckedShareDoesNotAllocate(t *testing.T) {
	h := newHotPath(t, 1)
	mc := h.mcs[0]
	mc.checked, mc.algo = true, algoSHA256d
	mc.vd.init(h.srv.vdcfg, time.Now(), 0, 0)
	mc.sentJob(h.job, 1e-9)
	line := []byte(`{"method":"mining.submit","params":["bench.rig","6b00d15f0000000e","0000","6b00d263","00000000"],"id":4}`)
	nonce := bytes.Index(line, []byte(`"00000000"`)) + 1
	n := uint32(0)
	submit := func() {
		n++
		hex.Encode(line[nonce:nonce+8], []byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
		mc.dialect.handleLine(mc, line)
	}
	for i := 0; i < 100; i++ {
		submit() // decodes the job once, grows the answer ring and the duplicate set
	}
	before := mc.c.(*fakeConn).n
	if a := testing.AllocsPerRun(1000, submit); a != 0 {
		t.Fatalf("a checked share allocates %v times, want 0", a)
	}
	if mc.c.(*fakeConn).n == before {
		t.Fatal("checked shares were not answered")
	}
}
