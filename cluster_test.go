package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stratum-proxy/stratum-proxy/bench/miner"
	"github.com/stratum-proxy/stratum-proxy/bench/poolsim"
)

// needServer finds a server binary of a Debian package: skipped without
// it, a failure under CI=true (.ci/run installs it).
func needServer(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		for _, dir := range []string{"/usr/bin", "/usr/sbin"} {
			if _, err2 := os.Stat(filepath.Join(dir, name)); err2 == nil {
				return filepath.Join(dir, name)
			}
		}
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed (CI=true requires it: apt-get install %s)", name, pkg)
		}
		t.Skipf("%s is not installed (apt-get install %s): cluster test skipped", name, pkg)
	}
	return p
}

// etcdServer is a real etcd (Debian's etcd-server) on loopback ports.
type etcdServer struct {
	bin, dir, client, peer string
	cmd                    *exec.Cmd
}

func startEtcdServer(t *testing.T) *etcdServer {
	e := &etcdServer{bin: needServer(t, "etcd", "etcd-server"), dir: t.TempDir()}
	e.client, e.peer = "http://"+freePort(t), "http://"+freePort(t)
	e.start(t)
	t.Cleanup(e.stop)
	return e
}

func (e *etcdServer) start(t *testing.T) {
	t.Helper()
	e.cmd = exec.Command(e.bin, "--name", "it", "--data-dir", filepath.Join(e.dir, "data"),
		"--listen-client-urls", e.client, "--advertise-client-urls", e.client,
		"--listen-peer-urls", e.peer, "--initial-advertise-peer-urls", e.peer,
		"--initial-cluster", "it="+e.peer, "--log-level", "warn")
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitHTTP(t, e.client+"/health", 15*time.Second)
}

func (e *etcdServer) stop() {
	if e.cmd != nil && e.cmd.Process != nil {
		_ = e.cmd.Process.Kill()
		_ = e.cmd.Wait()
		e.cmd = nil
	}
}

func waitHTTP(t *testing.T, url string, d time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(d); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer: %v", url, err)
		}
	}
}

// apiCall sends an authenticated JSON request to an instance's API.
func apiCall(t *testing.T, web, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+web+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+itToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var v map[string]any
	_ = json.Unmarshal(b, &v)
	return resp.StatusCode, v
}

func minersOn(t *testing.T, web string) int {
	_, v := apiCall(t, web, "GET", "/api/v1/stats", "")
	n, _ := v["miners"].(float64)
	return int(n)
}

func waitCond(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestClusterBehindHAProxy runs two instances on one real etcd behind a
// real haproxy: a pool added and a name registered through instance A
// work on B; miners reach B through haproxy; B is killed with kill -9 and
// its miners come back through haproxy to A with their sessions (same
// extranonce1 and size, found in etcd) and keep mining with no duplicate
// at the pool; etcd stopped for 10 s leaves mining untouched while
// registrations answer 503, and registrations work again after.
func TestClusterBehindHAProxy(t *testing.T) {
	haproxy := needServer(t, "haproxy", "haproxy")
	etcd := startEtcdServer(t)
	pool, err := poolsim.Start(poolsim.Config{Difficulty: 1e-6})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	dir := t.TempDir()
	key := filepath.Join(dir, "proxy.key")
	cluster := func(id string) []string {
		return []string{"--store", "etcd", "--etcd.endpoints", etcd.client, "--store.key", key,
			"--cluster.instance", id, "--session.grace", "2m"}
	}
	a := startProxy(t, filepath.Join(dir, "a.db"), cluster("a")...)
	b := startProxy(t, filepath.Join(dir, "b.db"), cluster("b")...)

	// Changes through A are seen by B.
	if code, v := apiCall(t, a.web, "POST", "/api/v1/pools", fmt.Sprintf(`{"addr":%q,"algorithm":"sha256"}`, pool.Addr())); code != 201 {
		t.Fatalf("pool add on A: %d %v", code, v)
	}
	code, v := apiCall(t, a.web, "POST", "/api/v1/users", fmt.Sprintf(`{"pool":%q,"user":"acct","password":"x"}`, pool.Addr()))
	name, _ := v["name"].(string)
	if code != 201 || name == "" {
		t.Fatalf("register on A: %d %v", code, v)
	}
	waitCond(t, "B to see the name", 3*time.Second, func() bool {
		c, _ := apiCall(t, b.web, "GET", "/api/v1/users/"+name, "")
		return c == 200
	})

	// haproxy: B first, A when B is down (balance first keeps the test
	// deterministic; production uses source affinity, deploy/haproxy.cfg).
	front := freePort(t)
	cfg := fmt.Sprintf(`global
    maxconn 1000
defaults
    mode tcp
    timeout connect 2s
    timeout client 5m
    timeout server 5m
    timeout check 1s
frontend stratum
    bind %s
    default_backend proxies
backend proxies
    balance first
    option httpchk GET /healthz
    http-check expect status 200
    default-server inter 300ms fall 2 rise 2 on-marked-down shutdown-sessions
    server b %s check port %s
    server a %s check port %s
`, front, b.stratum, portOf(b.web), a.stratum, portOf(a.web))
	cfgFile := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	hp := exec.Command(haproxy, "-db", "-f", cfgFile)
	hp.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var hpLog syncBuffer
	hp.Stdout, hp.Stderr = &hpLog, &hpLog
	if err := hp.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = hp.Process.Kill(); _ = hp.Wait() }()

	dial := func(rig, sid string) *miner.Miner {
		t.Helper()
		var m *miner.Miner
		var err error
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			m, err = miner.Dial(miner.Config{Addr: front, User: name + "." + rig, Password: "x", SessionID: sid, Timeout: 5 * time.Second})
			if err == nil {
				return m
			}
			if time.Now().After(deadline) {
				t.Fatalf("miner %s through haproxy: %v\n%s", rig, err, hpLog.String())
			}
		}
	}
	mineShare := func(m *miner.Miner) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		sh, err := m.Mine(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if ok, c, msg, err := m.Submit(ctx, sh); !ok || err != nil {
			t.Fatalf("share refused: %d %s %v", c, msg, err)
		}
	}
	m1, m2 := dial("r1", ""), dial("r2", "")
	defer func() { m1.Close(); m2.Close() }()
	mineShare(m1)
	mineShare(m2)
	if nb, na := minersOn(t, b.web), minersOn(t, a.web); nb != 2 || na != 0 {
		t.Fatalf("miners on B %d, on A %d: want both on B", nb, na)
	}
	type layout struct {
		sid, en1 string
		en2      int
	}
	before := []layout{{m1.SessionID(), fmt.Sprintf("%x", m1.Extranonce1()), m1.Extranonce2Size()},
		{m2.SessionID(), fmt.Sprintf("%x", m2.Extranonce1()), m2.Extranonce2Size()}}
	if !strings.HasPrefix(before[0].sid, "b") {
		t.Fatalf("session %s lacks B's prefix", before[0].sid)
	}

	// kill -9 B: its miners come back through haproxy to A.
	_ = b.cmd.Process.Kill()
	_ = b.cmd.Wait()
	for _, m := range []*miner.Miner{m1, m2} {
		select {
		case <-m.Done():
		case <-time.After(15 * time.Second):
			t.Fatal("a miner of the killed instance was not disconnected")
		}
	}
	m1 = dial("r1", before[0].sid)
	m2 = dial("r2", before[1].sid)
	for i, m := range []*miner.Miner{m1, m2} {
		got := layout{m.SessionID(), fmt.Sprintf("%x", m.Extranonce1()), m.Extranonce2Size()}
		if got != before[i] {
			t.Fatalf("miner %d restored on A as %+v, want %+v", i, got, before[i])
		}
	}
	if na := minersOn(t, a.web); na != 2 {
		t.Fatalf("miners on A after the failover: %d", na)
	}
	for range 3 {
		mineShare(m1)
		mineShare(m2)
	}

	// etcd down for 10 s: mining goes on; registrations answer 503.
	etcd.stop()
	stopped := time.Now()
	code, v = apiCall(t, a.web, "POST", "/api/v1/users", fmt.Sprintf(`{"pool":%q,"user":"other","password":"x"}`, pool.Addr()))
	if code != 503 {
		t.Fatalf("registration with etcd down: %d %v", code, v)
	}
	for time.Since(stopped) < 10*time.Second {
		mineShare(m1)
		mineShare(m2)
		time.Sleep(500 * time.Millisecond)
	}
	etcd.start(t)
	waitCond(t, "registrations to work again", 20*time.Second, func() bool {
		c, _ := apiCall(t, a.web, "POST", "/api/v1/users", fmt.Sprintf(`{"pool":%q,"user":"other","password":"x"}`, pool.Addr()))
		return c == 201 || c == 200
	})
	mineShare(m1)

	st := pool.Stats()
	if st.RejectedCode(22) != 0 || st.Rejected != 0 {
		t.Fatalf("the pool rejected shares across the failover: %+v", st)
	}
	t.Logf("pool: %d shares accepted, %d connections over the run", st.Accepted, pool.Conns())
}

func portOf(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }
