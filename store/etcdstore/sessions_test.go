package etcdstore

import (
	"context"
	"testing"
	"time"

	"github.com/stratum-proxy/stratum-proxy/proxy"
)

func TestSessions(t *testing.T) {
	e := startEtcd(t)
	a := NewSessions(e.clientT(), SessionOptions{Prefix: "/test"})
	b := NewSessions(e.clientT(), SessionOptions{Prefix: "/test"})
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const ttl = 2 * time.Second
	rec := proxy.SessionRecord{ID: "s1", Prefix: 7, K: 2, M: 4, Name: "abc", Dialect: "stratum", Difficulty: 64, Instance: "a"}
	a.Save(rec, ttl)
	a.Save(proxy.SessionRecord{ID: "s2", Instance: "a"}, ttl)
	eventually(t, 2*time.Second, "saved on A, loaded on B", func() bool {
		got, ok, err := b.Load(ctx, "s1")
		return err == nil && ok && got == rec
	})
	a.Delete("s1")
	eventually(t, 2*time.Second, "deleted", func() bool {
		_, ok, err := b.Load(ctx, "s1")
		return err == nil && !ok
	})
	// Kept alive past its TTL while A runs.
	time.Sleep(ttl + time.Second)
	if _, ok, err := b.Load(ctx, "s2"); err != nil || !ok {
		t.Fatalf("record of a live instance expired: %v %v", ok, err)
	}
	// A stops: its records go about ttl later.
	a.Close()
	if _, ok, _ := b.Load(ctx, "s2"); !ok {
		t.Fatal("record gone at once after Close: should outlive it by ttl")
	}
	eventually(t, ttl+4*time.Second, "record expired after A stopped", func() bool {
		_, ok, err := b.Load(ctx, "s2")
		return err == nil && !ok
	})
	// Revoke ends them at once.
	b.Save(proxy.SessionRecord{ID: "s3"}, ttl)
	eventually(t, 2*time.Second, "s3 saved", func() bool { _, ok, _ := b.Load(ctx, "s3"); return ok })
	if err := b.Revoke(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := b.Load(ctx, "s3"); ok {
		t.Fatal("record outlived the revoked lease")
	}
	// Writes after Close are dropped and counted, never blocking.
	a.Save(rec, ttl)
	if a.Dropped() == 0 {
		t.Fatal("write after Close not counted")
	}
}

func TestSessionsQueueFullDrops(t *testing.T) {
	e := startEtcd(t)
	cli := e.clientT()
	e.kill() // nothing drains quickly: every write waits for its timeout
	s := NewSessions(cli, SessionOptions{Prefix: "/test", Queue: 4, Timeout: 200 * time.Millisecond})
	start := time.Now()
	for i := range 100 {
		s.Save(proxy.SessionRecord{ID: string(rune('a' + i%26))}, time.Second)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("100 Saves took %s: Save blocks", d)
	}
	if s.Dropped() < 90 {
		t.Fatalf("dropped %d of 100 with a queue of 4", s.Dropped())
	}
	s.Close()
}
