package etcdstore

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/stratum-proxy/stratum-proxy/store"
)

// TestClientAgainstServer checks the client features the store relies on
// against the etcd server installed here (Debian's 3.4): KV, a Txn with a
// range comparison and a nested Txn, Watch from a revision, and a lease.
func TestClientAgainstServer(t *testing.T) {
	e := startEtcd(t)
	cli := e.clientT()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	put, err := cli.Put(ctx, "/p/a", "1")
	if err != nil {
		t.Fatal(err)
	}
	w := cli.Watch(ctx, "/p/", clientv3.WithPrefix(), clientv3.WithRev(put.Header.Revision))
	resp, err := cli.Txn(ctx).If(
		clientv3.Compare(clientv3.ModRevision("/p/"), "<", put.Header.Revision+1).WithPrefix(),
	).Then(clientv3.OpTxn(
		[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision("/p/a"), ">", 0)},
		[]clientv3.Op{clientv3.OpPut("/p/b", "2")}, nil)).Commit()
	if err != nil || !resp.Succeeded || !resp.Responses[0].GetResponseTxn().Succeeded {
		t.Fatalf("txn: %v %+v", err, resp)
	}
	var got []string
	for len(got) < 2 {
		select {
		case wr := <-w:
			for _, ev := range wr.Events {
				got = append(got, string(ev.Kv.Key))
			}
		case <-ctx.Done():
			t.Fatalf("watch: got %v", got)
		}
	}
	lease, err := cli.Grant(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "/p/l", "x", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Revoke(ctx, lease.ID); err != nil {
		t.Fatal(err)
	}
	if r, _ := cli.Get(ctx, "/p/l"); len(r.Kvs) != 0 {
		t.Fatal("leased key outlived its revoked lease")
	}
}

type cluster struct {
	e       *etcdProc
	keyFile string
	prefix  string
}

func newCluster(t *testing.T) *cluster {
	return &cluster{e: startEtcd(t), keyFile: filepath.Join(t.TempDir(), "proxy.key"), prefix: "/test"}
}

// open opens one instance with its own client.
func (c *cluster) open(t *testing.T) *Store {
	t.Helper()
	s, err := c.tryOpen(t, c.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (c *cluster) tryOpen(t *testing.T, keyFile string) (*Store, error) {
	cli := c.e.clientT()
	s, err := Open(cli, Options{Prefix: c.prefix, KeyFile: keyFile, Timeout: time.Second, TouchInterval: 100 * time.Millisecond})
	if err == nil {
		t.Cleanup(func() { s.Close() })
	}
	return s, err
}

// eventually polls cond every 10ms for at most d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSeededOnceConcurrently(t *testing.T) {
	c := newCluster(t)
	// The key file must exist before concurrent first opens (each would
	// otherwise race to create it; loadOrCreateKey settles that too).
	var wg sync.WaitGroup
	stores := make([]*Store, 3)
	errs := make([]error, 3)
	for i := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = c.tryOpen(t, c.keyFile)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	algos, pools, _ := store.Seed()
	for i, s := range stores {
		if len(s.Algorithms()) != len(algos) || len(s.Pools()) != len(pools) {
			t.Fatalf("store %d: %d algorithms, %d pools; want %d, %d", i, len(s.Algorithms()), len(s.Pools()), len(algos), len(pools))
		}
	}
	cli := c.e.clientT()
	r, err := cli.Get(context.Background(), c.prefix+"/meta/seeded")
	if err != nil || len(r.Kvs) != 1 || r.Kvs[0].Version != 1 {
		t.Fatalf("meta/seeded written more than once: %v %+v", err, r)
	}
	// A deleted seed pool is not seeded again by a later instance.
	if err := stores[0].DeletePool(pools[0].Addr); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.open(t).Pool(pools[0].Addr); ok {
		t.Fatal("deleted seed pool came back")
	}
}

func TestRegistrationVisibleEverywhere(t *testing.T) {
	c := newCluster(t)
	a, b := c.open(t), c.open(t)
	_, pools, _ := store.Seed()
	acct := store.Account{Pool: pools[0].Addr, User: "wallet.rig1", Password: "x"}
	name, out, err := a.RegisterUser(acct, nil)
	if err != nil || out != store.RegisterCreated {
		t.Fatal(out, err)
	}
	if _, ok := a.User(name); !ok {
		t.Fatal("own registration not readable at once")
	}
	eventually(t, time.Second, "registration on A visible on B", func() bool {
		u, ok := b.User(name)
		return ok && u.Password == "x" && u.User == "wallet.rig1"
	})
	n2, out, err := b.RegisterUser(acct, nil)
	if err != nil || n2 != name || out != store.RegisterUnchanged {
		t.Fatal(n2, out, err)
	}
	// Backups through B, seen on A; Touch through A, seen on B.
	n3, out, err := b.RegisterUser(acct, []store.Account{{Pool: pools[1].Addr, User: "w2"}})
	if err != nil || n3 != name || out != store.RegisterUpdated {
		t.Fatal(n3, out, err)
	}
	eventually(t, time.Second, "backups visible on A", func() bool {
		u, _ := a.User(name)
		return len(u.Backups) == 1 && u.Backups[0].User == "w2"
	})
	seen := time.Now().UTC().Round(0).Truncate(time.Millisecond)
	a.Touch(name, seen)
	eventually(t, 2*time.Second, "last seen on B", func() bool {
		u, _ := b.User(name)
		return u.LastSeen.Equal(seen)
	})
	if err := a.SetPassword(name, "y"); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "new password on B", func() bool {
		u, _ := b.User(name)
		return u.Password == "y"
	})
	n4, out, err := b.RegisterUser(store.Account{Pool: pools[0].Addr, User: "wallet.rig1", Password: "y"}, nil)
	if err != nil || n4 != name || out != store.RegisterUnchanged {
		t.Fatal("dedupe after SetPassword:", n4, out, err)
	}
	if err := b.DeleteUser(name); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "delete visible on A", func() bool { _, ok := a.User(name); return !ok })
	n5, out, err := a.RegisterUser(acct, nil)
	if err != nil || n5 == name || out != store.RegisterCreated {
		t.Fatal("registration after delete:", n5, out, err)
	}
	// Pools and algorithms too.
	if err := a.PutAlgorithm(store.Algorithm{Name: "testalgo", Divider: 2, Dialects: []string{store.DialectStratum}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "algorithm on B", func() bool { _, ok := b.Algorithm("testalgo"); return ok })
	if err := b.PutPool(store.Pool{Addr: "Pool.Example:3333", Algorithm: "testalgo"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "pool on A", func() bool { p, ok := a.Pool("pool.example:3333"); return ok && p.Algorithm == "testalgo" })
	if err := a.DeleteAlgorithm("testalgo"); !errors.Is(err, store.ErrInUse) {
		t.Fatalf("delete algorithm in use: %v", err)
	}
	if err := a.DeletePool("pool.example:3333"); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteAlgorithm("testalgo"); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "algorithm gone on B", func() bool { _, ok := b.Algorithm("testalgo"); return !ok })
}

func TestConcurrentRegistrationOneName(t *testing.T) {
	c := newCluster(t)
	a, b := c.open(t), c.open(t)
	_, pools, _ := store.Seed()
	for i := range 5 {
		acct := store.Account{Pool: pools[0].Addr, User: "same", Password: store.Secret(rune('a' + i))}
		var wg sync.WaitGroup
		var na, nb string
		var ea, eb error
		wg.Add(2)
		go func() { defer wg.Done(); na, _, ea = a.RegisterUser(acct, nil) }()
		go func() { defer wg.Done(); nb, _, eb = b.RegisterUser(acct, nil) }()
		wg.Wait()
		if ea != nil || eb != nil || na != nb {
			t.Fatalf("round %d: A %q %v, B %q %v", i, na, ea, nb, eb)
		}
		if _, ok := a.User(na); !ok {
			t.Fatal("A cannot read the name it returned")
		}
		if _, ok := b.User(nb); !ok {
			t.Fatal("B cannot read the name it returned")
		}
	}
	eventually(t, time.Second, "5 users on both", func() bool { return len(a.Users()) == 5 && len(b.Users()) == 5 })
}

func TestDeletePoolInUse(t *testing.T) {
	c := newCluster(t)
	a, b := c.open(t), c.open(t)
	_, pools, _ := store.Seed()
	if _, _, err := a.RegisterUser(store.Account{Pool: pools[0].Addr, User: "u"}, []store.Account{{Pool: pools[2].Addr, User: "b"}}); err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{pools[0].Addr, pools[2].Addr} {
		if err := a.DeletePool(addr); !errors.Is(err, store.ErrInUse) {
			t.Fatalf("A delete %s: %v", addr, err)
		}
		// B may not have the user yet: the check in etcd refuses it too.
		if err := b.DeletePool(addr); !errors.Is(err, store.ErrInUse) {
			t.Fatalf("B delete %s: %v", addr, err)
		}
	}
	if err := b.DeletePool("nowhere.example:1"); !errors.Is(err, store.ErrUnknownPool) {
		t.Fatal(err)
	}
	if err := b.DeletePool(pools[1].Addr); err != nil {
		t.Fatal(err)
	}
	// Registering with the pool just deleted on another instance fails.
	if _, _, err := a.RegisterUser(store.Account{Pool: pools[1].Addr, User: "late"}, nil); !errors.Is(err, store.ErrUnknownPool) {
		t.Fatalf("register on a deleted pool: %v", err)
	}
}

func TestWrongKeyFileRefused(t *testing.T) {
	c := newCluster(t)
	c.open(t)
	other := filepath.Join(t.TempDir(), "other.key")
	if _, err := store.LoadOrCreateKeys(other); err != nil {
		t.Fatal(err)
	}
	if _, err := c.tryOpen(t, other); !errors.Is(err, store.ErrKeyMismatch) {
		t.Fatalf("wrong key: %v", err)
	}
	if _, err := c.tryOpen(t, filepath.Join(t.TempDir(), "missing.key")); !errors.Is(err, store.ErrKeyMismatch) {
		t.Fatalf("missing key: %v", err)
	}
}

func TestEtcdDownAndBack(t *testing.T) {
	c := newCluster(t)
	a, b := c.open(t), c.open(t)
	_, pools, _ := store.Seed()
	name, _, err := a.RegisterUser(store.Account{Pool: pools[0].Addr, User: "before"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "user on B", func() bool { _, ok := b.User(name); return ok })

	c.e.kill()
	if _, ok := a.User(name); !ok || len(a.Pools()) != len(pools) {
		t.Fatal("reads stopped while etcd is down")
	}
	start := time.Now()
	_, _, err = a.RegisterUser(store.Account{Pool: pools[0].Addr, User: "during"}, nil)
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("write while etcd is down: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("write took %s to fail (timeout 1s)", d)
	}
	if err := a.PutPool(store.Pool{Addr: "x.example:1", Algorithm: "sha256"}); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("put pool while down: %v", err)
	}
	a.Touch(name, time.Now()) // dropped, not blocking anything

	c.e.start()
	var n2 string
	eventually(t, 10*time.Second, "B writes again after restart", func() bool {
		var err error
		n2, _, err = b.RegisterUser(store.Account{Pool: pools[0].Addr, User: "after"}, nil)
		return err == nil
	})
	eventually(t, 5*time.Second, "A's watch caught up", func() bool { _, ok := a.User(n2); return ok })
}

// TestCompactedWatchEnds checks the path taken when the revision a watch
// resumes from was compacted: the watch ends (instead of waiting forever)
// and a reload brings the current tables.
func TestCompactedWatchEnds(t *testing.T) {
	c := newCluster(t)
	s := c.open(t)
	cli := c.e.clientT()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := cli.Put(ctx, c.prefix+"/pools/zz.example:1", `{"addr":"zz.example:1","algorithm":"sha256"}`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, r.Header.Revision); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { s.watchFrom(1); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a watch from a compacted revision did not end")
	}
	if _, err := s.reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Pool("zz.example:1"); !ok {
		t.Fatal("reload missed the pool")
	}
}
