package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/stratum-proxy/stratum-proxy/bench/miner"
	"github.com/stratum-proxy/stratum-proxy/bench/poolsim"
	"github.com/stratum-proxy/stratum-proxy/metrics"
	"github.com/stratum-proxy/stratum-proxy/proxy"
	"github.com/stratum-proxy/stratum-proxy/store"
)

// liveEnv is a running proxy with its management API, as main wires them.
type liveEnv struct {
	*testServer
	srv *proxy.Server
}

func startLive(t *testing.T) *liveEnv {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "proxy.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	reg := metrics.New(metrics.Config{Tag: "live"})
	srv, err := proxy.New(proxy.Config{Addr: "127.0.0.1:0", Store: st, Metrics: reg, Loops: 2, NoVardiff: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Stop(ctx)
	})
	ts := &testServer{st: st, logs: &syncBuffer{}, client: &http.Client{Transport: &http.Transport{}}, token: defaultTestToken}
	api := New(Config{Store: st, Log: zerolog.New(ts.logs), AuthToken: defaultTestToken, Live: srv, Registry: reg})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.url = "http://" + ln.Addr().String()
	go func() { _ = api.Serve(ln) }()
	t.Cleanup(func() { _ = api.Shutdown() })
	return &liveEnv{testServer: ts, srv: srv}
}

func (e *liveEnv) pool(t *testing.T, cfg poolsim.Config) *poolsim.Server {
	t.Helper()
	if cfg.Difficulty == 0 {
		cfg.Difficulty = 1e-6
	}
	p, err := poolsim.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func (e *liveEnv) json(t *testing.T, method, path, body string, want int, v any) {
	t.Helper()
	a := e.do(t, method, path, strings.NewReader(body), "Content-Type", "application/json")
	if a.status != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, a.status, a.body, want)
	}
	if v != nil {
		if err := json.Unmarshal([]byte(a.body), v); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

func (e *liveEnv) miner(t *testing.T, user string) (*miner.Miner, error) {
	m, err := miner.Dial(miner.Config{Addr: e.srv.Addr(), User: user, Password: "x", Timeout: 10 * time.Second})
	if err == nil {
		t.Cleanup(func() { m.Close() })
	}
	return m, err
}

func mineShare(t *testing.T, m *miner.Miner) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sh, err := m.Mine(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if ok, code, msg, err := m.Submit(ctx, sh); !ok || err != nil {
		t.Fatalf("share refused: %d %s %v", code, msg, err)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestLiveManagement drives the running proxy through the API only, as an
// operator on a fresh start would: add a pool, register on it, see the
// miner, change the password (used at the next pool login), kick, delete
// the user (its miner disconnected), all without a restart.
func TestLiveManagement(t *testing.T) {
	e := startLive(t)
	pool := e.pool(t, poolsim.Config{Password: "p2"})

	e.json(t, "POST", "/api/v1/pools", fmt.Sprintf(`{"addr":%q,"algorithm":"sha256"}`, pool.Addr()), 201, nil)
	var reg struct{ Name string }
	e.json(t, "POST", "/api/v1/users", fmt.Sprintf(`{"pool":%q,"user":"acct","password":"p1"}`, pool.Addr()), 201, &reg)

	// The pool wants p2: the login fails and the miner is told so.
	if m, err := e.miner(t, reg.Name+".rig1"); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = m.Mine(ctx, 0)
		cancel()
		if err == nil {
			t.Fatal("a miner mined with the wrong pool password")
		}
	}
	e.json(t, "PATCH", "/api/v1/users/"+reg.Name, `{"password":"p2"}`, 200, nil)
	m, err := e.miner(t, reg.Name+".rig1")
	if err != nil {
		t.Fatalf("after the password change: %v", err)
	}
	mineShare(t, m)

	var ws struct {
		Total   int
		Workers []proxy.WorkerInfo
	}
	e.json(t, "GET", "/api/v1/workers?user="+reg.Name, "", 200, &ws)
	if ws.Total != 1 || ws.Workers[0].Rig != "rig1" || ws.Workers[0].Pool != pool.Addr() || ws.Workers[0].Accepted != 1 ||
		ws.Workers[0].Algorithm != "sha256" || ws.Workers[0].Dialect != "stratum" {
		t.Fatalf("workers: %+v", ws)
	}
	var stats struct{ Miners, Upstreams int }
	e.json(t, "GET", "/api/v1/stats", "", 200, &stats)
	if stats.Miners != 1 || stats.Upstreams != 1 {
		t.Fatalf("stats: %+v", stats)
	}
	var pools struct {
		Pools []struct {
			Addr  string
			State proxy.PoolState
		}
	}
	e.json(t, "GET", "/api/v1/pools", "", 200, &pools)
	found := false
	for _, p := range pools.Pools {
		if p.Addr == pool.Addr() {
			found = p.State.Up && p.State.Miners == 1 && p.State.Upstreams == 1 && p.State.LoginMs > 0
		}
	}
	if !found {
		t.Fatalf("pool state not live: %+v", pools)
	}

	// A pool in use cannot go; a kicked miner is closed.
	e.json(t, "DELETE", "/api/v1/pools/"+url.PathEscape(pool.Addr()), "", 409, nil)
	e.json(t, "DELETE", "/api/v1/workers/"+ws.Workers[0].ID, "", 200, nil)
	waitUntil(t, "the kicked miner to close", m.Closed)

	// Deleting the user closes its miners and its name stops working.
	m2, err := e.miner(t, reg.Name+".rig2")
	if err != nil {
		t.Fatal(err)
	}
	mineShare(t, m2)
	var del struct {
		MinersClosed int `json:"miners_closed"`
	}
	e.json(t, "DELETE", "/api/v1/users/"+reg.Name, "", 200, &del)
	if del.MinersClosed != 1 {
		t.Fatalf("user delete closed %d miners, want 1", del.MinersClosed)
	}
	waitUntil(t, "the deleted user's miner to close", m2.Closed)
	if _, err := e.miner(t, reg.Name+".rig3"); err == nil {
		t.Fatal("a deleted name still authorizes")
	}
	e.json(t, "DELETE", "/api/v1/pools/"+url.PathEscape(pool.Addr()), "", 200, nil)
}

// TestWorkersPaging: the listing is filtered, sorted and paged on the
// server side.
func TestWorkersPaging(t *testing.T) {
	e := startLive(t)
	pool := e.pool(t, poolsim.Config{})
	if err := e.st.PutPool(store.Pool{Addr: pool.Addr(), Algorithm: "sha256"}); err != nil {
		t.Fatal(err)
	}
	var reg struct{ Name string }
	e.json(t, "POST", "/api/v1/users", fmt.Sprintf(`{"pool":%q,"user":"acct","password":"x"}`, pool.Addr()), 201, &reg)
	for i := 0; i < 5; i++ {
		m, err := e.miner(t, fmt.Sprintf("%s.rig%d", reg.Name, i))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, _ = m.WaitJob(ctx)
		cancel()
	}
	var ws struct {
		Total   int
		Workers []proxy.WorkerInfo
	}
	e.json(t, "GET", "/api/v1/workers?sort=rig&order=desc&offset=1&limit=2", "", 200, &ws)
	if ws.Total != 5 || len(ws.Workers) != 2 || ws.Workers[0].Rig != "rig3" || ws.Workers[1].Rig != "rig2" {
		t.Fatalf("page: %+v", ws)
	}
	e.json(t, "GET", "/api/v1/workers?q=RIG4", "", 200, &ws)
	if ws.Total != 1 || ws.Workers[0].Rig != "rig4" {
		t.Fatalf("filter: %+v", ws)
	}
	e.json(t, "GET", "/api/v1/workers?sort=password", "", 400, nil)
	e.json(t, "GET", "/api/v1/workers?limit=100000", "", 400, nil)
}
