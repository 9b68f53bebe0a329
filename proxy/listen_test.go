package proxy

import (
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCheckListenBusyPort holds a port open and expects the readable
// "address already in use", not gnet's "setsockopt: bad file descriptor".
func TestCheckListenBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()

	err = checkListen(addr)
	if err == nil {
		t.Fatalf("checkListen(%s) on a held port = nil", addr)
	}
	if want := "proxy: listen " + addr + ": address already in use"; err.Error() != want {
		t.Errorf("checkListen(%s) = %q; want %q", addr, err, want)
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("checkListen(%s) = %v; does not wrap EADDRINUSE", addr, err)
	}
}

// TestCheckListenFreePort checks that a free port passes and is released:
// the real bind right after must succeed.
func TestCheckListenFreePort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	if err := checkListen(addr); err != nil {
		t.Fatalf("checkListen(%s) on a free port = %v", addr, err)
	}
	again, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("port %s still held after checkListen: %v", addr, err)
	}
	again.Close()
}

func TestCheckListenBadAddress(t *testing.T) {
	f := func(addr, want string) {
		t.Helper()
		err := checkListen(addr)
		if err == nil || !strings.HasPrefix(err.Error(), "proxy: listen "+addr+": ") || !strings.Contains(err.Error(), want) {
			t.Errorf("checkListen(%q) = %v; want an error with %q", addr, err, want)
		}
	}
	f("127.0.0.1", "missing port")
	f("127.0.0.1:65536", "invalid port")
}

// TestReusePortSharesOnePort: two instances bind one port with
// SO_REUSEPORT and both take miners (the kernel spreads connections).
func TestReusePortSharesOnePort(t *testing.T) {
	cfg := fastCfg()
	cfg.ReusePort = true
	a := newHarness(t, cfg)
	cfg2 := fastCfg()
	cfg2.ReusePort = true
	b := newHarnessAt(t, cfg2, a.st, a.srv.Addr())
	deadline := time.Now().Add(10 * time.Second)
	for a.srv.Stats().Miners == 0 || b.srv.Stats().Miners == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("connections never reached both instances: %d and %d", a.srv.Stats().Miners, b.srv.Stats().Miners)
		}
		c, err := net.Dial("tcp", a.srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		time.Sleep(5 * time.Millisecond)
	}
}
