package store

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestCommand(t *testing.T) {
	db, _ := openTest(t, nil)
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := Command(db, args, &out)
		return out.String(), err
	}

	out, err := run("pool", "add", "127.0.0.1:3333", "sha256d", "--mode=passthrough", "--extranonce2-size", "4", "--tls")
	if err != nil || !strings.Contains(out, "127.0.0.1:3333 saved") {
		t.Fatalf("pool add = %q, %v", out, err)
	}
	want := Pool{Addr: "127.0.0.1:3333", Algorithm: "sha256", Mode: ModePassthrough, Extranonce2Size: 4, TLS: true}
	if p, _ := db.Pool("127.0.0.1:3333"); p != want {
		t.Errorf("stored %+v, want %+v", p, want)
	}
	if _, err := run("pool", "add", "--mode", "split", "127.0.0.1:4444", "scrypt"); err != nil {
		t.Errorf("flag before positionals: %v", err)
	}
	if p, _ := db.Pool("127.0.0.1:4444"); p.Mode != ModeSplit || p.Algorithm != "scrypt" {
		t.Errorf("stored %+v", p)
	}

	out, err = run("pool", "list")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(db.Pools())+1 || !strings.HasPrefix(lines[0], "ADDR ") {
		t.Fatalf("pool list: %d lines, header %q", len(lines), lines[0])
	}
	col := strings.Index(lines[0], "ALGORITHM")
	for _, l := range lines[1:] {
		if len(l) < col || l[col-1] != ' ' || l[col] == ' ' {
			t.Fatalf("pool list columns are not aligned:\n%s\n%s", lines[0], l)
		}
	}
	if !strings.Contains(out, "127.0.0.1:3333") || !strings.Contains(out, "passthrough") || !strings.Contains(out, "cn.ss.btc.com:443") {
		t.Errorf("pool list misses rows:\n%s", out)
	}

	out, err = run("algo", "list")
	if err != nil || !strings.Contains(out, "NAME") || !strings.Contains(out, "sha256d") || !strings.Contains(out, "65536") ||
		!strings.Contains(out, "4294967296") || !strings.Contains(out, "ethstratum,ethproxy") {
		t.Errorf("algo list = %q, %v", out, err)
	}

	name, _, err := db.RegisterUser(Account{Pool: "127.0.0.1:3333", User: "wallet.rig", Password: testPassword},
		[]Account{{Pool: "127.0.0.1:4444", User: "backup.rig", Password: testPassword + "-b"}})
	if err != nil {
		t.Fatal(err)
	}
	out, err = run("user", "list")
	if err != nil || !strings.Contains(out, name) || !strings.Contains(out, "wallet.rig") || !strings.Contains(out, "backup.rig@127.0.0.1:4444") {
		t.Errorf("user list = %q, %v", out, err)
	}
	if strings.Contains(out, testPassword) {
		t.Errorf("user list prints a password:\n%s", out)
	}

	f := func(msg string, args ...string) {
		t.Helper()
		out, err := run(args...)
		if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), msg) || !strings.Contains(err.Error(), "pool list") || out != "" {
			t.Errorf("Command(%q) = %q, %v; want ErrUsage mentioning %q", args, out, err, msg)
		}
	}
	f("missing subcommand")
	f("missing subcommand", "pool")
	f(`unknown subcommand "pool remove"`, "pool", "remove", "h:1")
	f(`unknown subcommand "users list"`, "users", "list")
	f("takes no arguments", "pool", "list", "extra")
	f("needs HOST:PORT and ALGORITHM", "pool", "add", "h:1")
	f("unknown flag", "pool", "add", "h:1", "sha256", "--fast")
	f("not a number", "pool", "add", "h:1", "sha256", "--extranonce2-size=x")
	f("needs a value", "pool", "add", "h:1", "sha256", "--mode")

	if _, err := run("pool", "add", "h:1", "sha3"); !errors.Is(err, ErrUnknownAlgorithm) {
		t.Errorf("pool add with unknown algorithm = %v", err)
	}
	if _, err := run("pool", "add", "h:1", "sha256", "--mode=fast"); !errors.Is(err, ErrInvalidPool) {
		t.Errorf("pool add with bad mode = %v", err)
	}
}

func TestCommandDeleteAndPasswd(t *testing.T) {
	db, _ := openTest(t, nil)
	pool := db.Pools()[0].Addr
	name, _, err := db.RegisterUser(Account{Pool: pool, User: "acct", Password: "old"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := CommandIn(db, []string{"user", "passwd", name}, strings.NewReader("new\n"), &out); err != nil {
		t.Fatal(err)
	}
	if u, _ := db.User(name); u.Password.Reveal() != "new" || strings.Contains(out.String(), "new\n") && !strings.Contains(out.String(), "changed") {
		t.Fatalf("passwd: %q, output %q", u.Password.Reveal(), out.String())
	}
	if err := CommandIn(db, []string{"pool", "delete", pool}, nil, &out); !errors.Is(err, ErrInUse) {
		t.Fatalf("pool delete in use: %v", err)
	}
	if err := CommandIn(db, []string{"user", "delete", name}, nil, &out); err != nil {
		t.Fatal(err)
	}
	if err := CommandIn(db, []string{"pool", "delete", pool}, nil, &out); err != nil {
		t.Fatal(err)
	}
	if err := CommandIn(db, []string{"user", "delete"}, nil, &out); !errors.Is(err, ErrUsage) {
		t.Fatalf("missing argument: %v", err)
	}
}
