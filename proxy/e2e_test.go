package proxy

import (
	"context"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/stratum-proxy/stratum-proxy/bench/miner"
	"github.com/stratum-proxy/stratum-proxy/bench/poolsim"
	"github.com/stratum-proxy/stratum-proxy/metrics"
	"github.com/stratum-proxy/stratum-proxy/store"
)

// harness is a real proxy on 127.0.0.1:0 in front of real pool simulators
// that validate every share by hashing, with a real bbolt store.
type harness struct {
	t     *testing.T
	st    *store.DB
	met   *metrics.Registry
	srv   *Server
	pools []*poolsim.Server
}

// testDiff is low enough that the test miner finds a share in a few
// thousand hashes.
const testDiff = 1e-6

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "proxy.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() }) // after the proxy stopped: cleanups run last first
	return newHarnessOn(t, cfg, st)
}

// newHarnessOn starts a proxy on an open store it does not own (two
// instances of a cluster share one).
func newHarnessOn(t *testing.T, cfg Config, st *store.DB) *harness {
	t.Helper()
	return newHarnessAt(t, cfg, st, "127.0.0.1:0")
}

// newHarnessAt is newHarnessOn on a given stratum address.
func newHarnessAt(t *testing.T, cfg Config, st *store.DB, addr string) *harness {
	t.Helper()
	h := &harness{t: t, st: st}
	h.met = metrics.New(metrics.Config{Tag: "test"})
	cfg.Addr = addr
	cfg.Store = st
	cfg.Metrics = h.met
	if cfg.Loops == 0 {
		cfg.Loops = 2
	}
	if testing.Verbose() {
		cfg.Log = zerolog.New(zerolog.ConsoleWriter{Out: testWriter{t}}).Level(zerolog.DebugLevel)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
		for _, p := range h.pools {
			p.Close()
		}
	})
	return h
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

var _ io.Writer = testWriter{}

// pool starts a pool simulator and adds it to the pool table.
func (h *harness) pool(cfg poolsim.Config) *poolsim.Server {
	h.t.Helper()
	if cfg.Difficulty == 0 {
		cfg.Difficulty = testDiff
	}
	p, err := poolsim.Start(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	h.pools = append(h.pools, p)
	if err := h.st.PutPool(store.Pool{Addr: p.Addr(), Algorithm: "sha256"}); err != nil {
		h.t.Fatal(err)
	}
	return p
}

// user registers an account on pool (with optional backups) and returns
// the issued name.
func (h *harness) user(pool string, backups ...string) string {
	h.t.Helper()
	var bs []store.Account
	for _, b := range backups {
		bs = append(bs, store.Account{Pool: b, User: "acct", Password: "x"})
	}
	name, _, err := h.st.RegisterUser(store.Account{Pool: pool, User: "acct", Password: "x"}, bs)
	if err != nil {
		h.t.Fatal(err)
	}
	return name
}

func (h *harness) dial(cfg miner.Config) *miner.Miner {
	h.t.Helper()
	cfg.Addr = h.srv.Addr()
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	m, err := miner.Dial(cfg)
	if err != nil {
		h.t.Fatalf("miner dial: %v", err)
	}
	h.t.Cleanup(func() { m.Close() })
	return m
}

// mineOne mines and submits one share and requires the pool to accept it.
func mineOne(t *testing.T, m *miner.Miner) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sh, err := m.Mine(ctx, 0)
	if err != nil {
		t.Fatalf("mine: %v", err)
	}
	ok, code, msg, err := m.Submit(ctx, sh)
	if err != nil || !ok {
		t.Fatalf("submit: ok=%v code=%d msg=%q err=%v", ok, code, msg, err)
	}
}

func TestSingleMinerEndToEnd(t *testing.T) {
	h := newHarness(t, Config{})
	p := h.pool(poolsim.Config{})
	name := h.user(p.Addr())
	m := h.dial(miner.Config{User: name + ".rig1", Password: "x"})
	for i := 0; i < 3; i++ {
		mineOne(t, m)
	}
	st := p.Stats()
	if st.Accepted != 3 {
		t.Fatalf("pool accepted %d shares, want 3 (stats %+v)", st.Accepted, st)
	}
}
