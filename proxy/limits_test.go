package proxy

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stratum-proxy/stratum-proxy/bench/miner"
	"github.com/stratum-proxy/stratum-proxy/bench/poolsim"
)

// dialFrom opens a raw connection to the proxy from source address src
// (127.0.0.1, 127.0.0.2...: loopback takes any of 127/8).
func dialFrom(t *testing.T, h *harness, src string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", h.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// refused reports whether the proxy answered c with its per-address refusal
// and closed it; false when c stays open (a ping is answered).
func refused(t *testing.T, c net.Conn) bool {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(`{"id":1,"method":"mining.ping","params":[]}` + "\n")); err != nil {
		return true
	}
	l, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("no answer and no refusal: %v", err)
	}
	return strings.Contains(l, "too many connections from your address")
}

// --limits.per-address-connections: past the cap a source address gets a
// clear error and is closed (reason per_address); other addresses are not
// affected, and a closed connection frees its place.
func TestPerAddressConnectionLimit(t *testing.T) {
	cfg := fastCfg()
	cfg.MaxConnsPerAddr = 3
	h := newHarness(t, cfg)
	var open []net.Conn
	for i := 0; i < 3; i++ {
		c := dialFrom(t, h, "127.0.0.1")
		if refused(t, c) {
			t.Fatalf("connection %d of 3 refused", i+1)
		}
		open = append(open, c)
	}
	if !refused(t, dialFrom(t, h, "127.0.0.1")) {
		t.Fatal("a 4th connection from one address was admitted with a cap of 3")
	}
	if refused(t, dialFrom(t, h, "127.0.0.2")) {
		t.Fatal("another address was refused")
	}
	if v, _ := msValue(h, "proxy_miners_dropped_total", "reason", "per_address"); v != 1 {
		t.Fatalf("proxy_miners_dropped_total{reason=per_address} = %v, want 1", v)
	}
	open[0].Close()
	waitFor(t, "the closed connection's place", func() bool { return h.srv.Stats().Miners == 3 })
	if refused(t, dialFrom(t, h, "127.0.0.1")) {
		t.Fatal("a place freed by a close was not given to a new connection")
	}
}

// --limits.per-address-rate: an address opening connections faster than
// the rate (bursts of twice it) is refused (reason connection_rate); the
// bucket refills with time.
func TestPerAddressConnectionRate(t *testing.T) {
	cfg := fastCfg()
	cfg.ConnRatePerAddr = 2 // bursts of 4
	h := newHarness(t, cfg)
	admitted := 0
	start := time.Now()
	for i := 0; i < 10; i++ {
		if !refused(t, dialFrom(t, h, "127.0.0.3")) {
			admitted++
		}
	}
	// The burst, plus what the bucket refilled while the loop ran (slow
	// on a loaded machine).
	most := 4 + int(time.Since(start).Seconds()*cfg.ConnRatePerAddr) + 1
	if admitted < 4 || admitted > most {
		t.Fatalf("%d of 10 quick connections admitted, want the burst of 4 (at most %d with refill)", admitted, most)
	}
	if v, _ := msValue(h, "proxy_miners_dropped_total", "reason", "connection_rate"); v != float64(10-admitted) {
		t.Fatalf("proxy_miners_dropped_total{reason=connection_rate} = %v, want %d", v, 10-admitted)
	}
	waitFor(t, "the bucket to refill", func() bool { return !refused(t, dialFrom(t, h, "127.0.0.3")) })
}

// --session.max-detached: past the cap the oldest detached session is
// forgotten at once (reason restore_table_full), so churn cannot grow the
// restore table; restoring it gets a fresh session.
func TestRestoreTableCap(t *testing.T) {
	cfg := fastCfg()
	cfg.MaxDetached = 2
	cfg.SessionGrace = time.Hour
	h := newHarness(t, cfg)
	p := h.pool(poolsim.Config{})
	name := h.user(p.Addr())
	var sids []string
	for i := 0; i < 3; i++ {
		m := h.dial(miner.Config{User: name, Password: "x"})
		mineOne(t, m)
		sids = append(sids, m.SessionID())
		m.Close()
		waitFor(t, "the session detached", func() bool {
			h.srv.sess.mu.Lock()
			defer h.srv.sess.mu.Unlock()
			return h.srv.sess.byID[sids[i]] != nil && h.srv.sess.byID[sids[i]].mc == nil
		})
	}
	if st := h.srv.Stats(); st.InGrace != 2 {
		t.Fatalf("%d sessions in grace, want the cap of 2", st.InGrace)
	}
	if v, _ := msValue(h, "proxy_miners_dropped_total", "reason", "restore_table_full"); v != 1 {
		t.Fatalf("proxy_miners_dropped_total{reason=restore_table_full} = %v, want 1", v)
	}
	old := h.dial(miner.Config{User: name, Password: "x", SessionID: sids[0]})
	if old.SessionID() == sids[0] {
		t.Fatal("the evicted session was restored")
	}
	kept := h.dial(miner.Config{User: name, Password: "x", SessionID: sids[2]})
	if kept.SessionID() != sids[2] {
		t.Fatal("the newest detached session was not restored")
	}
	mineOne(t, kept)
}

// --limits.max-outbound-total: output queued to miners that do not read is
// bounded for the whole process, below the per-miner limit times the
// miners: past it the miner whose write passed it is dropped (reason
// output_memory) and a miner that reads mines on.
func TestOutputMemoryBudget(t *testing.T) {
	cfg := fastCfg()
	cfg.MaxOutbound = 1 << 20 // per miner: not the limit this test reaches
	cfg.MaxOutboundTotal = 64 << 10
	h := newHarness(t, cfg)
	p := h.pool(poolsim.Config{})
	name := h.user(p.Addr())
	good := h.dial(miner.Config{User: name, Password: "x"})
	for i := 0; i < 2; i++ {
		c := dialFrom(t, h, "127.0.0.1")
		_ = c.(*net.TCPConn).SetReadBuffer(4096)
		_, _ = c.Write([]byte(`{"id":1,"method":"mining.subscribe","params":["never-reads"]}` + "\n" +
			`{"id":2,"method":"mining.authorize","params":["` + name + `","x"]}` + "\n"))
	}
	waitFor(t, "three miners", func() bool { return h.srv.Stats().Miners == 3 })
	deadline := time.Now().Add(20 * time.Second)
	for h.srv.Stats().Miners == 3 && time.Now().Before(deadline) {
		for i := 0; i < 200; i++ {
			p.Notify(false)
		}
		time.Sleep(10 * time.Millisecond) // pacing of the load, not a synchronisation
	}
	if v, _ := msValue(h, "proxy_miners_dropped_total", "reason", "output_memory"); v < 1 {
		t.Fatalf("no miner dropped for the output budget (miners %d)", h.srv.Stats().Miners)
	}
	if v, _ := msValue(h, "proxy_miners_dropped_total", "reason", "slow_reader"); v != 0 {
		t.Fatalf("%v slow_reader drops: the per-miner limit was reached first", v)
	}
	p.Notify(true)
	waitJob(t, good, "the clean job after the storm", func(j *miner.Job) bool { return j.Clean })
	mineOne(t, good)
}
