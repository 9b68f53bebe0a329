package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/stratum-proxy/stratum-proxy/metrics"
	"github.com/stratum-proxy/stratum-proxy/proxy"
	"github.com/stratum-proxy/stratum-proxy/store"
)

func TestAuthTokenFile(t *testing.T) {
	db := filepath.Join(t.TempDir(), "data", "proxy.db")
	tok, file, err := authToken("", db)
	if err != nil || len(tok) != 64 || file != filepath.Join(filepath.Dir(db), tokenFileName) {
		t.Fatalf("first start: %q %q %v", tok, file, err)
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v, %v; want 0600", fi.Mode(), err)
	}
	again, _, err := authToken("", db)
	if err != nil || again != tok {
		t.Fatalf("second start got another token (%v)", err)
	}
	if got, f, _ := authToken("given", db); got != "given" || f != "" {
		t.Fatalf("--web.auth-token ignored: %q %q", got, f)
	}
}

func TestUsersTTLExpiry(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "p.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reg := metrics.New(metrics.Config{Tag: "t"})
	srv, err := proxy.New(proxy.Config{Addr: "127.0.0.1:0", Store: st, Metrics: reg, Loops: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop(context.Background())
	pool := st.Pools()[0].Addr
	old, _, _ := st.RegisterUser(store.Account{Pool: pool, User: "old", Password: "x"}, nil)
	fresh, _, _ := st.RegisterUser(store.Account{Pool: pool, User: "fresh", Password: "x"}, nil)
	st.Touch(fresh, time.Now().Add(48*time.Hour))
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if u, _ := st.User(fresh); !u.LastSeen.IsZero() {
			break // Touch is written in the background
		}
		if time.Now().After(deadline) {
			t.Fatal("Touch never reached the store")
		}
	}
	var logs strings.Builder
	n := expireOnce(context.Background(), st, srv, reg, 24*time.Hour, time.Now().Add(36*time.Hour), zerolog.New(&logs))
	if n != 1 {
		t.Fatalf("expired %d users, want 1", n)
	}
	if _, ok := st.User(old); ok {
		t.Fatal("the unused name survived its ttl")
	}
	if _, ok := st.User(fresh); !ok {
		t.Fatal("a name seen within the ttl was expired")
	}
	if !strings.Contains(logs.String(), old) || !strings.Contains(logs.String(), "user expired") {
		t.Fatalf("expiry not logged: %s", logs.String())
	}
	var b strings.Builder
	reg.WritePrometheus(&b)
	if !strings.Contains(b.String(), "proxy_users_expired_total{proxy=\"t\"} 1") {
		t.Fatalf("expiry not counted:\n%s", grepLines(b.String(), "expired"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
