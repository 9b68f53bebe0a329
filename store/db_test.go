package store

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Child modes of the test binary, re-executed by tests that need a second
// process: the env var names the mode, its value the database path.
const (
	envHold     = "STORE_TEST_CHILD_HOLD"     // open, print "ready", wait for stdin EOF
	envRegister = "STORE_TEST_CHILD_REGISTER" // open, register, print the name, hang
)

func TestMain(m *testing.M) {
	if path := os.Getenv(envHold); path != "" {
		db, err := Open(path, nil)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("ready")
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		_ = db.Close()
		os.Exit(0)
	}
	if path := os.Getenv(envRegister); path != "" {
		db, err := Open(path, nil)
		if err == nil {
			err = db.PutPool(Pool{Addr: "127.0.0.1:3333", Algorithm: "sha256"})
		}
		var name string
		if err == nil {
			name, _, err = db.RegisterUser(Account{Pool: "127.0.0.1:3333", User: "kill.rig", Password: "durable-pw"}, nil)
		}
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println(name)
		select {} // wait for SIGKILL, without Close
	}
	os.Exit(m.Run())
}

// child starts the test binary in a child mode.
func child(t *testing.T, env, path string) (*exec.Cmd, *bufio.Reader, func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env+"="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop := func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	t.Cleanup(stop)
	return cmd, bufio.NewReader(out), stop
}

func readLine(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("child output: %q, %v", line, err)
	}
	return strings.TrimSpace(line)
}

func openTest(t *testing.T, opts *Options) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "data", "proxy.db")
	db, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db, path
}

func reopen(t *testing.T, db *DB, opts *Options) *DB {
	t.Helper()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db2, err := Open(db.Path(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db2.Close() })
	return db2
}

func mustPool(t *testing.T, st Store, addr, algo string) {
	t.Helper()
	if err := st.PutPool(Pool{Addr: addr, Algorithm: algo}); err != nil {
		t.Fatal(err)
	}
}

var nameRE = regexp.MustCompile(`^[0-9a-f]{16}$`)

func TestSeedContents(t *testing.T) {
	db, path := openTest(t, nil)

	f, err := os.Open("../testdata/pools-seed.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 66 || rows[0][0] != "host" {
		t.Fatalf("pools-seed.csv: %d rows, header %v", len(rows), rows[0])
	}
	for _, r := range rows[1:] {
		addr := r[0] + ":" + r[1]
		p, ok := db.Pool(addr)
		if !ok {
			t.Errorf("CSV pool %s missing", addr)
			continue
		}
		if p.Algorithm != r[2] {
			t.Errorf("pool %s: algorithm %q, CSV says %q", addr, p.Algorithm, r[2])
		}
		a, _ := db.Algorithm(p.Algorithm)
		if fmt.Sprint(a.Divider) != strings.TrimSuffix(r[3], ".0") {
			t.Errorf("pool %s: divider %v, CSV says %s", addr, a.Divider, r[3])
		}
	}

	want := map[string]float64{
		"sha256": 1, "scrypt": 65536, "x11": 1, "ethash": 1, "kawpow": 1,
		"randomx": 1 << 32, "equihash": 1 << 19, "kheavyhash": 1,
	}
	perAlgo := map[string]int{}
	for _, p := range db.Pools() {
		perAlgo[p.Algorithm]++
		if _, ok := db.Algorithm(p.Algorithm); !ok {
			t.Errorf("pool %s: algorithm %q not in the table", p.Addr, p.Algorithm)
		}
		if strings.HasPrefix(p.Addr, "127.") || strings.HasPrefix(p.Addr, "localhost") {
			t.Errorf("seed has a local pool %s", p.Addr)
		}
	}
	algos := db.Algorithms()
	if len(algos) != len(want) {
		t.Errorf("got %d algorithms, want %d", len(algos), len(want))
	}
	for name, div := range want {
		a, ok := db.Algorithm(name)
		if !ok || a.Name != name || a.Divider != div || len(a.Dialects) == 0 {
			t.Errorf("algorithm %s: %+v, %v; want divider %v", name, a, ok, div)
		}
		if perAlgo[name] == 0 {
			t.Errorf("no seeded pool for %s", name)
		}
	}
	for alias, canon := range map[string]string{"sha256d": "sha256", "SHA256D": "sha256", " Scrypt ": "scrypt"} {
		if a, ok := db.Algorithm(alias); !ok || a.Name != canon {
			t.Errorf("Algorithm(%q) = %q, %v; want %q", alias, a.Name, ok, canon)
		}
	}
	if a, _ := db.Algorithm("ethash"); strings.Join(a.Dialects, ",") != "ethstratum,ethproxy" {
		t.Errorf("ethash dialects %v", a.Dialects)
	}
	if a, _ := db.Algorithm("randomx"); strings.Join(a.Dialects, ",") != "cryptonote" {
		t.Errorf("randomx dialects %v", a.Dialects)
	}
	if p, _ := db.Pool("pool.supportxmr.com:3333"); p.Algorithm != "randomx" {
		t.Errorf("supportxmr: %+v", p)
	}
	if _, ok := db.Algorithm("sha3"); ok {
		t.Error("unknown algorithm found")
	}

	// The seed is written once: a pool removed from seed.json later, or
	// one the operator changed, is not overwritten on the next start.
	if err := db.PutPool(Pool{Addr: "btc.f2pool.com:3333", Algorithm: "sha256", Mode: ModePassthrough}); err != nil {
		t.Fatal(err)
	}
	db2 := reopen(t, db, nil)
	if p, _ := db2.Pool("btc.f2pool.com:3333"); p.Mode != ModePassthrough {
		t.Errorf("reseeded over an operator change: %+v", p)
	}
	if got := len(db2.Pools()); got != len(db.Pools()) {
		t.Errorf("pools after reopen %d, before %d", got, len(db.Pools()))
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(path), "proxy.key")); err != nil {
		t.Errorf("key file: %v", err)
	}
}

func TestRegisterUser(t *testing.T) {
	db, _ := openTest(t, nil)
	mustPool(t, db, "127.0.0.1:3333", "sha256")

	acct := Account{Pool: "127.0.0.1:3333", User: "wallet.rig1", Password: "x"}
	name, outcome, err := db.RegisterUser(acct, nil)
	if err != nil || outcome != RegisterCreated || !nameRE.MatchString(name) {
		t.Fatalf("RegisterUser = %q, %v, %v", name, outcome, err)
	}
	u, ok := db.User(name)
	if !ok || u.Name != name || u.Pool != acct.Pool || u.User != acct.User || u.Password.Reveal() != "x" {
		t.Fatalf("User(%s) = %+v, %v", name, u, ok)
	}
	if u.Created.IsZero() || time.Since(u.Created) > time.Minute || !u.LastSeen.IsZero() {
		t.Errorf("times: created %v last seen %v", u.Created, u.LastSeen)
	}

	again, outcome, err := db.RegisterUser(acct, nil)
	if err != nil || outcome != RegisterUnchanged || again != name {
		t.Errorf("same account again = %q, %v, %v; want %q, unchanged", again, outcome, err, name)
	}
	// The address is normalised before the duplicate check.
	if again, outcome, _ := db.RegisterUser(Account{Pool: "127.0.0.1:03333", User: "wallet.rig1", Password: "x"}, nil); outcome != RegisterUnchanged || again != name {
		t.Errorf("normalised address registered anew: %q", again)
	}

	other, outcome, err := db.RegisterUser(Account{Pool: acct.Pool, User: acct.User, Password: "y"}, nil)
	if err != nil || outcome != RegisterCreated || other == name {
		t.Errorf("different password = %q, %v, %v; want a new name", other, outcome, err)
	}
	empty, outcome, err := db.RegisterUser(Account{Pool: acct.Pool, User: acct.User}, nil)
	if err != nil || outcome != RegisterCreated || empty == name || empty == other {
		t.Errorf("empty password = %q, %v, %v; want a third name", empty, outcome, err)
	}
	if n := len(db.Users()); n != 3 {
		t.Errorf("%d users, want 3", n)
	}
	if _, ok := db.User("0000000000000000"); ok {
		t.Error("unknown user found")
	}
}

// TestReRegisterReplacesBackups: the same primary registered again with
// a backup list gets that list under the same name (it used to be
// dropped silently); nil backups keep the stored list.
func TestReRegisterReplacesBackups(t *testing.T) {
	db, _ := openTest(t, &Options{TouchInterval: time.Hour})
	for _, a := range []string{"127.0.0.1:1001", "127.0.0.1:1002", "127.0.0.1:1003"} {
		mustPool(t, db, a, "sha256")
	}
	primary := Account{Pool: "127.0.0.1:1001", User: "p", Password: "pw-p"}
	b2 := Account{Pool: "127.0.0.1:1002", User: "b2", Password: "pw-b2"}
	b3 := Account{Pool: "127.0.0.1:1003", User: "b3", Password: "pw-b3"}
	name, _, err := db.RegisterUser(primary, []Account{b2})
	if err != nil {
		t.Fatal(err)
	}
	seen := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	db.Touch(name, seen)
	if err := db.flushTouches(); err != nil {
		t.Fatal(err)
	}
	before, _ := db.User(name)

	f := func(st Store, backups []Account, wantOutcome RegisterOutcome, want ...Account) {
		t.Helper()
		got, outcome, err := st.RegisterUser(primary, backups)
		if err != nil || got != name || outcome != wantOutcome {
			t.Fatalf("RegisterUser(primary, %v) = %q, %v, %v; want %q, %v", backups, got, outcome, err, name, wantOutcome)
		}
		u, _ := st.User(name)
		if !slices.Equal(u.Backups, want) {
			t.Errorf("backups %v; want %v", u.Backups, want)
		}
		if u.Account != primary || !u.Created.Equal(before.Created) || !u.LastSeen.Equal(seen) {
			t.Errorf("re-registration changed the user: %+v; was %+v", u, before)
		}
	}
	f(db, nil, RegisterUnchanged, b2)                   // nil: keep
	f(db, []Account{b3, b2}, RegisterUpdated, b3, b2)   // another list: replace
	f(db, []Account{b3, b2}, RegisterUnchanged, b3, b2) // the same list: nothing to write
	db2 := reopen(t, db, nil)
	f(db2, nil, RegisterUnchanged, b3, b2) // on disk, passwords sealed for their new positions
	f(db2, []Account{}, RegisterUpdated)   // an empty list clears

	// A bad list on re-registration changes nothing.
	if _, _, err := db2.RegisterUser(primary, []Account{b2, {Pool: "127.0.0.1:9", User: "x"}}); !errors.Is(err, ErrUnknownPool) {
		t.Errorf("unknown backup pool: %v", err)
	}
	f(db2, nil, RegisterUnchanged)
	if n := len(db2.Users()); n != 1 {
		t.Errorf("%d users; want 1", n)
	}
}

func TestRegisterUserErrors(t *testing.T) {
	db, _ := openTest(t, nil)
	mustPool(t, db, "127.0.0.1:3333", "sha256")
	ok := Account{Pool: "127.0.0.1:3333", User: "u", Password: "p"}

	f := func(primary Account, backups []Account, want error, msg string) {
		t.Helper()
		name, outcome, err := db.RegisterUser(primary, backups)
		if !errors.Is(err, want) || name != "" || outcome != RegisterUnchanged {
			t.Errorf("RegisterUser(%+v, %+v) = %q, %v, %v; want %v", primary, backups, name, outcome, err, want)
			return
		}
		if !strings.Contains(err.Error(), msg) {
			t.Errorf("error %q does not mention %q", err, msg)
		}
	}
	f(Account{Pool: "127.0.0.1:1", User: "u"}, nil, ErrUnknownPool, `"127.0.0.1:1"`)
	f(Account{User: "u", Password: "p"}, nil, ErrInvalidAccount, "pool is required")
	f(Account{Pool: "127.0.0.1:3333", Password: "p"}, nil, ErrInvalidAccount, "user is required")
	f(Account{Pool: "no-port", User: "u"}, nil, ErrInvalidAccount, "host:port")
	f(Account{Pool: "127.0.0.1:3333", User: "a\nb"}, nil, ErrInvalidAccount, "control")
	f(Account{Pool: "127.0.0.1:3333", User: strings.Repeat("u", MaxFieldLen+1)}, nil, ErrInvalidAccount, "longer")
	f(Account{Pool: "127.0.0.1:3333", User: "u", Password: Secret(strings.Repeat("p", MaxFieldLen+1))}, nil, ErrInvalidAccount, "password")
	f(ok, []Account{{Pool: "127.0.0.1:3333", User: "b"}, {Pool: "127.0.0.1:9", User: "b"}}, ErrUnknownPool, "backup 2")
	f(ok, []Account{{Pool: "127.0.0.1:3333"}}, ErrInvalidAccount, "backup 1: user is required")
	f(ok, make([]Account, MaxBackups+1), ErrInvalidAccount, "backups")

	if n := len(db.Users()); n != 0 {
		t.Errorf("%d users stored by failed registrations", n)
	}
	if db2 := reopen(t, db, nil); len(db2.Users()) != 0 {
		t.Errorf("failed registrations reached the file: %+v", db2.Users())
	}
}

func TestBackups(t *testing.T) {
	db, _ := openTest(t, nil)
	for _, a := range []string{"127.0.0.1:1001", "127.0.0.1:1002", "127.0.0.1:1003"} {
		mustPool(t, db, a, "sha256")
	}
	backups := []Account{
		{Pool: "127.0.0.1:1002", User: "b1", Password: "pw-b1"},
		{Pool: "127.0.0.1:1003", User: "b2", Password: ""},
	}
	name, _, err := db.RegisterUser(Account{Pool: "127.0.0.1:1001", User: "p", Password: "pw-p"}, backups)
	if err != nil {
		t.Fatal(err)
	}
	check := func(st Store) {
		t.Helper()
		u, _ := st.User(name)
		if len(u.Backups) != 2 {
			t.Fatalf("backups %+v", u.Backups)
		}
		for i, b := range u.Backups {
			if b.Pool != backups[i].Pool || b.User != backups[i].User || b.Password.Reveal() != backups[i].Password.Reveal() {
				t.Errorf("backup %d = %+v, want %+v", i, b, backups[i])
			}
		}
	}
	check(db)
	// Returned values are copies: changing them changes nothing stored.
	u, _ := db.User(name)
	u.Backups[0].User = "changed"
	list := db.Users()
	list[0].Backups[1].Pool = "changed"
	a, _ := db.Algorithm("sha256")
	a.Dialects[0] = "changed"
	a.Aliases[0] = "changed"
	check(db)
	if a, _ := db.Algorithm("sha256d"); a.Dialects[0] != DialectStratum {
		t.Error("Algorithm returned shared slices")
	}
	check(reopen(t, db, nil))
}

func TestPutPool(t *testing.T) {
	db, _ := openTest(t, nil)
	if err := db.PutPool(Pool{Addr: "Pool.Example.COM:03333", Algorithm: "SHA256D", Mode: ModeSplit, Extranonce2Size: 4, TLS: true}); err != nil {
		t.Fatal(err)
	}
	p, ok := db.Pool("pool.example.com:3333")
	want := Pool{Addr: "pool.example.com:3333", Algorithm: "sha256", Mode: ModeSplit, Extranonce2Size: 4, TLS: true}
	if !ok || p != want {
		t.Errorf("Pool = %+v, %v; want %+v", p, ok, want)
	}
	if p2, ok := db.Pool("POOL.example.com:3333"); !ok || p2 != want {
		t.Errorf("lookup is not normalised: %+v %v", p2, ok)
	}
	if err := db.PutPool(Pool{Addr: "[::1]:4444", Algorithm: "scrypt"}); err != nil {
		t.Errorf("IPv6: %v", err)
	}

	f := func(p Pool, want error) {
		t.Helper()
		before := len(db.Pools())
		if err := db.PutPool(p); !errors.Is(err, want) {
			t.Errorf("PutPool(%+v) = %v; want %v", p, err, want)
		}
		if len(db.Pools()) != before {
			t.Errorf("PutPool(%+v) stored something", p)
		}
	}
	f(Pool{Addr: "h:1", Algorithm: "sha3"}, ErrUnknownAlgorithm)
	f(Pool{Addr: "h", Algorithm: "sha256"}, ErrInvalidPool)
	f(Pool{Addr: ":1", Algorithm: "sha256"}, ErrInvalidPool)
	f(Pool{Addr: "h:0", Algorithm: "sha256"}, ErrInvalidPool)
	f(Pool{Addr: "h:65536", Algorithm: "sha256"}, ErrInvalidPool)
	f(Pool{Addr: "h:x", Algorithm: "sha256"}, ErrInvalidPool)
	f(Pool{Addr: "h h:1", Algorithm: "sha256"}, ErrInvalidPool)
	f(Pool{Addr: "h:1", Algorithm: "sha256", Mode: "fast"}, ErrInvalidPool)
	f(Pool{Addr: "h:1", Algorithm: "sha256", Extranonce2Size: -1}, ErrInvalidPool)
	f(Pool{Addr: "h:1", Algorithm: "sha256", Extranonce2Size: MaxExtranonce2Size + 1}, ErrInvalidPool)

	if p, _ := reopen(t, db, nil).Pool("pool.example.com:3333"); p != want {
		t.Errorf("after reopen: %+v", p)
	}
}

func TestPersistence(t *testing.T) {
	db, _ := openTest(t, &Options{TouchInterval: time.Hour})
	mustPool(t, db, "127.0.0.1:3333", "sha256")
	name, _, err := db.RegisterUser(Account{Pool: "127.0.0.1:3333", User: "u", Password: "pw"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := time.Date(2030, 1, 2, 3, 4, 5, 6000, time.UTC)
	db.Touch(name, seen) // flushed by Close, not by the hourly ticker
	before, _ := db.User(name)

	db2 := reopen(t, db, nil)
	u, ok := db2.User(name)
	if !ok || u.Password.Reveal() != "pw" || !u.Created.Equal(before.Created) || !u.LastSeen.Equal(seen) {
		t.Errorf("after reopen: %+v %v (last seen %v)", u, ok, u.LastSeen)
	}
	again, outcome, err := db2.RegisterUser(Account{Pool: "127.0.0.1:3333", User: "u", Password: "pw"}, nil)
	if err != nil || outcome != RegisterUnchanged || again != name {
		t.Errorf("dedupe index lost on reopen: %q %v %v", again, outcome, err)
	}
	if err := db2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db2.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := db2.PutPool(Pool{Addr: "h:1", Algorithm: "sha256"}); !errors.Is(err, ErrClosed) {
		t.Errorf("write after Close = %v", err)
	}
	if _, ok := db2.User(name); !ok {
		t.Error("reads after Close should still answer from the snapshot")
	}
}

func TestPasswordsNotInFile(t *testing.T) {
	db, path := openTest(t, nil)
	mustPool(t, db, "127.0.0.1:3333", "sha256")
	mustPool(t, db, "127.0.0.1:4444", "sha256")
	const primary, backup = "Pr1mary-Secret-Passw0rd", "B4ckup-Secret-Passw0rd"
	name, _, err := db.RegisterUser(Account{Pool: "127.0.0.1:3333", User: "plain-user", Password: primary},
		[]Account{{Pool: "127.0.0.1:4444", User: "plain-user", Password: backup}})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte(name)) || !bytes.Contains(raw, []byte("plain-user")) {
		t.Fatal("sanity: the record is not in the file at all")
	}
	for _, pw := range []string{primary, backup} {
		if bytes.Contains(raw, []byte(pw)) {
			t.Errorf("password %q is in the database file in plain text", pw)
		}
	}
	st, err := os.Stat(filepath.Join(filepath.Dir(path), "proxy.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v, mode %v", err, st.Mode())
	}
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "proxy.db")
	custom := filepath.Join(dir, "keys", "custom.key")
	if err := os.MkdirAll(filepath.Dir(custom), 0o700); err != nil {
		t.Fatal(err)
	}
	db, err := Open(path, &Options{KeyFile: custom})
	if err != nil {
		t.Fatal(err)
	}
	mustPool(t, db, "127.0.0.1:3333", "sha256")
	name, _, _ := db.RegisterUser(Account{Pool: "127.0.0.1:3333", User: "u", Password: "pw"}, nil)
	_ = db.Close()
	if _, err := os.Stat(filepath.Join(dir, "proxy.key")); !os.IsNotExist(err) {
		t.Errorf("default key file created although KeyFile was set: %v", err)
	}

	// The default key file (missing) does not belong to this database.
	if _, err := Open(path, nil); !errors.Is(err, ErrKeyMismatch) || !strings.Contains(err.Error(), "missing") {
		t.Errorf("Open without the key file = %v; want ErrKeyMismatch", err)
	}
	// Another key.
	other := filepath.Join(dir, "other.key")
	if _, err := createKeyFile(other); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, &Options{KeyFile: other}); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("Open with another key = %v; want ErrKeyMismatch", err)
	}
	// A malformed key file.
	if err := os.WriteFile(other, []byte("not hex"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, &Options{KeyFile: other}); err == nil || !strings.Contains(err.Error(), "hex") {
		t.Errorf("Open with a malformed key = %v", err)
	}
	// The right key still works.
	db, err = Open(path, &Options{KeyFile: custom})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if u, _ := db.User(name); u.Password.Reveal() != "pw" {
		t.Errorf("password after reopen: %q", u.Password.Reveal())
	}
}

func TestSchemaVersion(t *testing.T) {
	db, path := openTest(t, nil)
	_ = db.Close()

	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = bdb.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if got := string(meta.Get(metaSchema)); got != fmt.Sprint(SchemaVersion) {
			return fmt.Errorf("recorded schema %q, want %d", got, SchemaVersion)
		}
		return meta.Put(metaSchema, []byte(fmt.Sprint(SchemaVersion+1)))
	})
	_ = bdb.Close()
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(path, nil)
	if !errors.Is(err, ErrSchemaTooNew) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), fmt.Sprint(SchemaVersion+1)) {
		t.Errorf("Open of a newer schema = %v", err)
	}
}

func TestLockTimeout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "proxy.db")
	_, out, stop := child(t, envHold, path)
	if got := readLine(t, out); got != "ready" {
		t.Fatalf("child: %s", got)
	}

	start := time.Now()
	_, err := Open(path, nil)
	took := time.Since(start)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), path) {
		t.Errorf("Open of a locked file = %v; want ErrLocked naming %s", err, path)
	}
	if took < 800*time.Millisecond || took > 3*time.Second {
		t.Errorf("Open gave up after %v; want about 1s", took)
	}

	stop()
	db, err := Open(path, nil)
	if err != nil {
		t.Fatalf("Open after the other process exited: %v", err)
	}
	defer db.Close()

	// bbolt's flock belongs to the open file description, so a second Open
	// in the same process waits for the lock just like another process.
	start = time.Now()
	if _, err := Open(path, &Options{Timeout: 200 * time.Millisecond}); !errors.Is(err, ErrLocked) {
		t.Errorf("second Open in the same process = %v; want ErrLocked", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("second Open took %v", took)
	}
}

func TestKillDurability(t *testing.T) {
	path := filepath.Join(t.TempDir(), "proxy.db")
	cmd, out, _ := child(t, envRegister, path)
	name := readLine(t, out)
	if !nameRE.MatchString(name) {
		t.Fatalf("child: %s", name)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	db, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	u, ok := db.User(name)
	if !ok || u.User != "kill.rig" || u.Password.Reveal() != "durable-pw" {
		t.Fatalf("after kill -9: User(%s) = %+v, %v", name, u, ok)
	}
}

func TestTouch(t *testing.T) {
	db, _ := openTest(t, &Options{TouchInterval: 10 * time.Millisecond})
	mustPool(t, db, "127.0.0.1:3333", "sha256")
	name, _, _ := db.RegisterUser(Account{Pool: "127.0.0.1:3333", User: "u"}, nil)

	t1 := time.Now().Add(-time.Minute)
	db.Touch(name, t1)
	db.Touch(name, t1.Add(-time.Hour)) // older: ignored
	db.Touch("ffffffffffffffff", t1)   // unknown: ignored
	waitFor(t, func() bool { u, _ := db.User(name); return u.LastSeen.Equal(t1) })

	db.Touch(name, t1.Add(-time.Second)) // older than stored: ignored
	t2 := t1.Add(30 * time.Second)
	db.Touch(name, t2)
	waitFor(t, func() bool { u, _ := db.User(name); return u.LastSeen.Equal(t2) })
	time.Sleep(50 * time.Millisecond)
	if u, _ := db.User(name); !u.LastSeen.Equal(t2) {
		t.Errorf("last seen went back to %v", u.LastSeen)
	}
	if _, ok := db.User("ffffffffffffffff"); ok {
		t.Error("Touch created a user")
	}
	if u, _ := reopen(t, db, nil).User(name); !u.LastSeen.Equal(t2) {
		t.Errorf("after reopen last seen %v, want %v", u.LastSeen, t2)
	}

	// Touch never waits for a writer: it is a map write under a mutex held
	// for no I/O. Hold the writer lock and time it.
	db3, _ := openTest(t, &Options{TouchInterval: time.Hour})
	mustPool(t, db3, "127.0.0.1:3333", "sha256")
	n3, _, _ := db3.RegisterUser(Account{Pool: "127.0.0.1:3333", User: "u"}, nil)
	db3.writeMu.Lock()
	done := make(chan struct{})
	go func() { db3.Touch(n3, time.Now()); _, _ = db3.User(n3); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Error("Touch or User blocked on the writer lock")
	}
	db3.writeMu.Unlock()
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestConcurrentReadersWhileWriting runs readers against a stream of
// writes (run with -race). Every snapshot a reader sees must be whole: a
// listed user can be looked up, its pool exists, and counts only grow.
func TestConcurrentReadersWhileWriting(t *testing.T) {
	db, _ := openTest(t, &Options{TouchInterval: 20 * time.Millisecond})
	mustPool(t, db, "127.0.0.1:3333", "sha256")

	const writes = 25 // each write fsyncs; enough to interleave with many reads and flushes
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lastUsers, lastPools := 0, 0
			for !stop.Load() {
				users, pools := db.Users(), db.Pools()
				if len(users) < lastUsers || len(pools) < lastPools {
					errs <- fmt.Errorf("counts went back: users %d->%d pools %d->%d", lastUsers, len(users), lastPools, len(pools))
					return
				}
				lastUsers, lastPools = len(users), len(pools)
				for _, u := range users {
					if _, ok := db.User(u.Name); !ok {
						errs <- fmt.Errorf("listed user %s not found", u.Name)
						return
					}
					if _, ok := db.Pool(u.Pool); !ok {
						errs <- fmt.Errorf("user %s: pool %s not found", u.Name, u.Pool)
						return
					}
					db.Touch(u.Name, time.Now())
				}
				_, _ = db.Algorithm("sha256d")
			}
		}()
	}
	for i := 0; i < writes; i++ {
		addr := fmt.Sprintf("127.0.0.1:%d", 10000+i)
		mustPool(t, db, addr, "sha256")
		if _, _, err := db.RegisterUser(Account{Pool: addr, User: fmt.Sprint("u", i), Password: "x"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(db.Users()); n != writes {
		t.Errorf("%d users, want %d", n, writes)
	}
}

// TestConcurrentRegistration registers the same accounts from many
// goroutines: each account gets exactly one name.
func TestConcurrentRegistration(t *testing.T) {
	db, _ := openTest(t, nil)
	mustPool(t, db, "127.0.0.1:3333", "sha256")
	const accounts, workers = 5, 8
	names := make([][accounts]string, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < accounts; i++ {
				n, _, err := db.RegisterUser(Account{Pool: "127.0.0.1:3333", User: fmt.Sprint("u", i)}, nil)
				if err != nil {
					t.Error(err)
				}
				names[w][i] = n
			}
		}()
	}
	wg.Wait()
	for w := 1; w < workers; w++ {
		if names[w] != names[0] {
			t.Errorf("worker %d got %v, worker 0 %v", w, names[w], names[0])
		}
	}
	if n := len(db.Users()); n != accounts {
		t.Errorf("%d users, want %d", n, accounts)
	}
}
