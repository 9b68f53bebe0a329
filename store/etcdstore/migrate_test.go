package etcdstore

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/stratum-proxy/stratum-proxy/store"
)

func TestMigrateFromBbolt(t *testing.T) {
	dir := t.TempDir()
	dbPath, keyFile := filepath.Join(dir, "proxy.db"), filepath.Join(dir, "proxy.key")
	db, err := store.Open(dbPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.PutAlgorithm(store.Algorithm{Name: "mine", Divider: 3, Dialects: []string{store.DialectStratum}}); err != nil {
		t.Fatal(err)
	}
	if err := db.PutPool(store.Pool{Addr: "mine.example:1", Algorithm: "mine", Mode: store.ModePassthrough}); err != nil {
		t.Fatal(err)
	}
	n1, _, err := db.RegisterUser(store.Account{Pool: "mine.example:1", User: "u1", Password: "p1"},
		[]store.Account{{Pool: "mine.example:1", User: "b1", Password: "bp"}})
	if err != nil {
		t.Fatal(err)
	}
	seen := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	db.Touch(n1, seen)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	recs, err := store.ReadRecords(dbPath, nil)
	if err != nil {
		t.Fatal(err)
	}

	e := startEtcd(t)
	cli := e.clientT()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A seeded prefix is not overwritten without force.
	c := &cluster{e: e, keyFile: keyFile, prefix: "/test"}
	c.open(t).Close()
	if _, err := Migrate(ctx, cli, "/test", recs, false); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("migrate onto a seeded prefix: %v", err)
	}
	stats, err := Migrate(ctx, cli, "/test", recs, true)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Users != 1 || stats.Pools != len(recs.Pools) || stats.Algorithms != len(recs.Algorithms) {
		t.Fatalf("stats %+v", stats)
	}
	s := c.open(t)
	u, ok := s.User(n1)
	if !ok || u.Password != "p1" || len(u.Backups) != 1 || u.Backups[0].Password != "bp" || !u.LastSeen.Equal(seen) {
		t.Fatalf("migrated user: %+v %v", u, ok)
	}
	if p, ok := s.Pool("mine.example:1"); !ok || p.Mode != store.ModePassthrough {
		t.Fatalf("migrated pool %+v", p)
	}
	if n, out, err := s.RegisterUser(store.Account{Pool: "mine.example:1", User: "u1", Password: "p1"}, nil); err != nil || n != n1 || out != store.RegisterUnchanged {
		t.Fatalf("dedupe after migration: %s %v %v", n, out, err)
	}
	// The migrated prefix needs the bbolt store's key file.
	other := filepath.Join(t.TempDir(), "k")
	if _, err := store.LoadOrCreateKeys(other); err != nil {
		t.Fatal(err)
	}
	if _, err := c.tryOpen(t, other); !errors.Is(err, store.ErrKeyMismatch) {
		t.Fatalf("other key on a migrated prefix: %v", err)
	}
}
