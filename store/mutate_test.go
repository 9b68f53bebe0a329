package store

import (
	"errors"
	"testing"
)

func TestPoolAndAlgorithmLifecycle(t *testing.T) {
	db, path := openTest(t, nil)
	if err := db.PutAlgorithm(Algorithm{Name: "Blake3", Divider: 256, Dialects: []string{DialectStratum}, Aliases: []string{"b3"}}); err != nil {
		t.Fatal(err)
	}
	if a, ok := db.Algorithm("b3"); !ok || a.Name != "blake3" || a.Divider != 256 {
		t.Fatalf("alias lookup: %+v %v", a, ok)
	}
	for _, bad := range []Algorithm{
		{Name: "x", Divider: 0, Dialects: []string{DialectStratum}},
		{Name: "x", Divider: 1},
		{Name: "x", Divider: 1, Dialects: []string{"smtp"}},
		{Name: "bad name", Divider: 1, Dialects: []string{DialectStratum}},
		{Name: "y", Divider: 1, Dialects: []string{DialectStratum}, Aliases: []string{"sha256d"}}, // sha256's alias
	} {
		if err := db.PutAlgorithm(bad); !errors.Is(err, ErrInvalidAlgorithm) {
			t.Errorf("PutAlgorithm(%+v) = %v, want ErrInvalidAlgorithm", bad, err)
		}
	}
	if err := db.PutPool(Pool{Addr: "b3.example:3333", Algorithm: "b3"}); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteAlgorithm("blake3"); !errors.Is(err, ErrInUse) {
		t.Fatalf("delete of a used algorithm: %v", err)
	}
	name, _, err := db.RegisterUser(Account{Pool: "b3.example:3333", User: "u", Password: "p"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.DeletePool("B3.example:3333"); !errors.Is(err, ErrInUse) {
		t.Fatalf("delete of a used pool: %v", err)
	}
	if err := db.DeleteUser(name); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteUser(name); !errors.Is(err, ErrUnknownUser) {
		t.Fatalf("second delete: %v", err)
	}
	if err := db.DeletePool("b3.example:3333"); err != nil {
		t.Fatal(err)
	}
	if err := db.DeletePool("b3.example:3333"); !errors.Is(err, ErrUnknownPool) {
		t.Fatalf("second pool delete: %v", err)
	}
	if err := db.DeleteAlgorithm("b3"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	// Every change survived the reopen.
	db2, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if _, ok := db2.Algorithm("blake3"); ok {
		t.Fatal("deleted algorithm came back")
	}
	if _, ok := db2.Pool("b3.example:3333"); ok {
		t.Fatal("deleted pool came back")
	}
	if _, ok := db2.User(name); ok {
		t.Fatal("deleted user came back")
	}
}

func TestSetPasswordKeepsTheName(t *testing.T) {
	db, path := openTest(t, nil)
	pool := db.Pools()[0].Addr
	name, _, err := db.RegisterUser(Account{Pool: pool, User: "acct", Password: "old"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SetPassword(name, "new"); err != nil {
		t.Fatal(err)
	}
	if u, _ := db.User(name); u.Password.Reveal() != "new" {
		t.Fatal("password not changed")
	}
	// The new login registers to the same name; the old one is a new name.
	if again, _, _ := db.RegisterUser(Account{Pool: pool, User: "acct", Password: "new"}, nil); again != name {
		t.Fatalf("same login with the new password got %s, want %s", again, name)
	}
	if other, _, _ := db.RegisterUser(Account{Pool: pool, User: "acct", Password: "old"}, nil); other == name {
		t.Fatal("the old password still resolves to the name")
	}
	if err := db.SetBackups(name, []Account{{Pool: db.Pools()[1].Addr, User: "b", Password: "c"}}); err != nil {
		t.Fatal(err)
	}
	if err := db.SetBackups(name, []Account{{Pool: "nowhere:1", User: "b"}}); !errors.Is(err, ErrUnknownPool) {
		t.Fatalf("backup on an unknown pool: %v", err)
	}
	if err := db.SetPassword("0000000000000000", "x"); !errors.Is(err, ErrUnknownUser) {
		t.Fatalf("unknown user: %v", err)
	}
	db.Close()
	db2, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	u, _ := db2.User(name)
	if u.Password.Reveal() != "new" || len(u.Backups) != 1 || u.Backups[0].User != "b" {
		t.Fatalf("after reopen: %+v", u)
	}
}
