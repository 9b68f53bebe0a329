package flood

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/stratum-proxy/stratum-proxy/bench/dialectsim"
	"github.com/stratum-proxy/stratum-proxy/metrics"
	"github.com/stratum-proxy/stratum-proxy/proxy"
	"github.com/stratum-proxy/stratum-proxy/store"
)

func startDialectPool(t *testing.T, k dialectsim.Kind) *dialectsim.Pool {
	t.Helper()
	p, err := dialectsim.StartPool(dialectsim.PoolConfig{Kind: k})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// checkDialectSummary checks a flood of n dialect miners that all stayed
// connected and had every share accepted.
func checkDialectSummary(t *testing.T, sum *Summary, k dialectsim.Kind, n int) {
	t.Helper()
	if sum.Dialect != string(k) || sum.Miners != n {
		t.Fatalf("dialect %q miners %d", sum.Dialect, sum.Miners)
	}
	c, h, sh := sum.Connect, sum.Handshake, sum.Shares
	if c.Attempts != int64(n) || c.Connected != int64(n) || c.PeakConnected != int64(n) || len(c.Errors) != 0 || c.Disconnects != 0 {
		t.Fatalf("connect %+v", c)
	}
	if h.Authorized != int64(n) || h.PeakAuthorized != int64(n) || h.AuthorizeRejected != 0 {
		t.Fatalf("handshake %+v", h)
	}
	// 5 shares/s for 2 s: about 10 per miner; at least a few each.
	if sh.Accepted < int64(3*n) || sh.Rejected != 0 || sh.Errors != 0 || sh.Sent != sh.Accepted+sh.Unanswered {
		t.Fatalf("shares %+v", sh)
	}
	if sum.AnswerLatency.Count != uint64(sh.Accepted) || sum.AnswerLatency.P50Ms <= 0 {
		t.Fatalf("answer latency %+v", sum.AnswerLatency)
	}
}

// TestDialectFloodStraight floods a simulator of every dialect directly
// with 5 miners for 2 s: every share the flood counts as accepted is one
// the pool accepted.
func TestDialectFloodStraight(t *testing.T) {
	for _, k := range dialectsim.Kinds() {
		t.Run(string(k), func(t *testing.T) {
			t.Parallel()
			pool := startDialectPool(t, k)
			const n = 5
			sum := run(t, Config{
				Target:   pool.Addr(),
				Dialect:  string(k),
				Miners:   n,
				User:     "tester.rig%d",
				Rate:     5,
				Duration: 2 * time.Second,
				Drain:    2 * time.Second,
				ExtraFDs: n,
			})
			checkDialectSummary(t, sum, k, n)
			ps := pool.Stats()
			if ps.Conns != n || int64(ps.Accepted) != sum.Shares.Accepted || ps.Rejected != 0 {
				t.Fatalf("pool %+v, flood accepted %d", ps, sum.Shares.Accepted)
			}
			users := map[string]bool{}
			for _, l := range pool.Logins() {
				users[l.User+"/"+l.Worker] = true
			}
			if len(users) != n {
				t.Fatalf("pool saw %d distinct logins, want %d: %v", len(users), n, users)
			}
		})
	}
}

// TestDialectFloodThroughProxy floods an in-process proxy with 20
// CryptoNote miners of one account: the pool sees one login (they share
// one pool connection) and accepts every share.
func TestDialectFloodThroughProxy(t *testing.T) {
	pool := startDialectPool(t, dialectsim.CryptoNote)
	st, err := store.Open(filepath.Join(t.TempDir(), "proxy.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.PutPool(store.Pool{Addr: pool.Addr(), Algorithm: "randomx"}); err != nil {
		t.Fatal(err)
	}
	name, _, err := st.RegisterUser(store.Account{Pool: pool.Addr(), User: "acct", Password: "x"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := proxy.New(proxy.Config{Addr: "127.0.0.1:0", Loops: 2, Store: st, Metrics: metrics.New(metrics.Config{Tag: "t"})})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			t.Errorf("proxy stop: %v", err)
		}
	}()

	const n = 20
	var upstreams int
	sum := run(t, Config{
		Target:   srv.Addr(),
		Dialect:  string(dialectsim.CryptoNote),
		Miners:   n,
		User:     name + ".rig%d",
		Rate:     5,
		Duration: 2 * time.Second,
		Drain:    2 * time.Second,
		ExtraFDs: 2 * n, // the proxy's miner side and the pool's
		Progress: func(p Progress) {
			if p.Authorized == n {
				upstreams = pool.Conns()
			}
		},
		ProgressInterval: 500 * time.Millisecond,
	})
	checkDialectSummary(t, sum, dialectsim.CryptoNote, n)
	ps := pool.Stats()
	if int64(ps.Accepted) != sum.Shares.Accepted || ps.Rejected != 0 {
		t.Fatalf("pool %+v, flood accepted %d", ps, sum.Shares.Accepted)
	}
	if ps.Logins != 1 || upstreams != 1 {
		t.Fatalf("pool logins %d, connections with every miner up %d: want 1 shared login", ps.Logins, upstreams)
	}
	for _, l := range pool.Logins() {
		if l.User != "acct" {
			t.Fatalf("pool login %+v, want the stored account", l)
		}
	}
}

func TestDialectConfig(t *testing.T) {
	f := func(cfg Config) {
		t.Helper()
		if sum, err := Run(context.Background(), cfg); !errors.Is(err, ErrConfig) || sum != nil {
			t.Errorf("Run(dialect %q, sources %v) = %v, want ErrConfig", cfg.Dialect, cfg.Sources, err)
		}
	}
	f(Config{Target: "127.0.0.1:1", Dialect: "scrypt"})
	f(Config{Target: "127.0.0.1:1", Dialect: "cryptonote", Sources: []netip.Addr{netip.MustParseAddr("127.0.0.2")}})
	// A remote target is refused for dialects too.
	if _, err := Run(context.Background(), Config{Target: "192.0.2.1:1", Dialect: "ethproxy"}); !errors.Is(err, ErrRemoteTarget) {
		t.Errorf("remote dialect target: %v", err)
	}
	// "stratum" is stratum v1.
	if err := (&Config{Target: "127.0.0.1:1", Dialect: DialectStratum}).validate(); err != nil {
		t.Errorf("stratum: %v", err)
	}
}
