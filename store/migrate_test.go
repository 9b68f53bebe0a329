package store

import (
	"path/filepath"
	"testing"
)

func TestReadRecordsAndExports(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(filepath.Join(dir, "proxy.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	pool := db.Pools()[0].Addr
	name, _, err := db.RegisterUser(Account{Pool: pool, User: "u", Password: "secret"}, []Account{{Pool: pool, User: "b", Password: "bp"}})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	r, err := ReadRecords(filepath.Join(dir, "proxy.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Users) != 1 || len(r.Pools) == 0 || len(r.Algorithms) == 0 || len(r.KeyCheck) == 0 {
		t.Fatalf("records: %d users %d pools %d algorithms", len(r.Users), len(r.Pools), len(r.Algorithms))
	}
	k, err := ReadKeys(filepath.Join(dir, DefaultKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if string(k.Check()) != string(r.KeyCheck) {
		t.Fatal("key check differs")
	}
	u, digest, err := k.DecodeUser(name, r.Users[name])
	if err != nil || u.Password != "secret" || u.Backups[0].Password != "bp" {
		t.Fatalf("decode: %+v %v", u, err)
	}
	if digest != k.Dedupe(u.Account) {
		t.Fatal("dedupe digest differs")
	}
	d2, pools, err := RecordInfo(r.Users[name])
	if err != nil || d2 != digest || len(pools) != 2 {
		t.Fatal(d2, pools, err)
	}
	raw, d3, err := k.EncodeUser(u)
	if err != nil || d3 != digest {
		t.Fatal(err)
	}
	if u2, _, err := k.DecodeUser(name, raw); err != nil || u2.Password != "secret" {
		t.Fatal(err)
	}
	if _, _, err := k.DecodeUser("other", raw); err == nil {
		t.Fatal("a record opened under another name")
	}
	algos, pools2, _ := Seed()
	tb := NewTables(algos, map[string]Pool{}, map[string]User{}, map[string]string{})
	tb = tb.WithPools(map[string]Pool{pools2[0].Addr: pools2[0]})
	if _, err := tb.CheckAccount(Account{Pool: pools2[0].Addr, User: "x"}, "primary"); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.CheckPool(Pool{Addr: "a:1", Algorithm: "nope"}); err == nil {
		t.Fatal("unknown algorithm accepted")
	}
}

func TestLoadOrCreateKeysConcurrently(t *testing.T) {
	for round := range 20 {
		path := filepath.Join(t.TempDir(), "k")
		errs := make(chan error, 4)
		checks := make(chan string, 4)
		for range 4 {
			go func() {
				k, err := LoadOrCreateKeys(path)
				if err == nil {
					checks <- string(k.Check())
				} else {
					checks <- ""
				}
				errs <- err
			}()
		}
		first := ""
		for range 4 {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			c := <-checks
			if first == "" {
				first = c
			} else if c != first {
				t.Fatalf("round %d: different keys", round)
			}
		}
	}
}
