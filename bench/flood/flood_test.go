package flood

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

func run(t *testing.T, cfg Config) *Summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sum, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("shares %+v", sum.Shares)
	t.Logf("answer latency %+v", sum.AnswerLatency)
	return sum
}

// waitFor polls cond every 10 ms for at most d.
func waitFor(d time.Duration, cond func() bool) bool {
	for i := 0; i < int(d/(10*time.Millisecond)); i++ {
		if cond() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cond()
}

// TestDurationStop: a flood stops by itself at Duration plus a bounded
// drain, even when nothing answers (the target refuses connections).
func TestDurationStop(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: every dial is refused

	start := time.Now()
	sum := run(t, Config{
		Target:         addr,
		Miners:         50,
		Rate:           1,
		Duration:       500 * time.Millisecond,
		Drain:          200 * time.Millisecond,
		ConnectRate:    40,
		ConnectTimeout: time.Second,
	})
	took := time.Since(start)
	if took < 500*time.Millisecond || took > 5*time.Second {
		t.Fatalf("took %v", took)
	}
	if sum.DurationS < 0.5 || sum.DurationS > 1.5 {
		t.Fatalf("duration %v", sum.DurationS)
	}
	// Paced at 40/s, at most ~21 dials fit in 0.5 s; each is refused.
	c := sum.Connect
	if c.Attempts < 5 || c.Attempts > 22 || c.Connected != 0 || c.Errors["refused"] < c.Attempts-2 || len(c.Errors) != 1 {
		t.Fatalf("connect %+v", c)
	}
}

func TestRefusesRemote(t *testing.T) {
	f := func(cfg Config, want error) {
		t.Helper()
		sum, err := Run(context.Background(), cfg)
		if !errors.Is(err, want) || sum != nil {
			t.Errorf("Run(%s, sources %v) = %v, want %v", cfg.Target, cfg.Sources, err, want)
		}
	}
	f(Config{Target: "192.0.2.1:3333"}, ErrRemoteTarget)
	f(Config{Target: "10.0.0.1:3333"}, ErrRemoteTarget)
	f(Config{Target: "[2001:db8::1]:3333"}, ErrRemoteTarget)
	f(Config{Target: "[::ffff:192.0.2.1]:3333"}, ErrRemoteTarget)
	f(Config{Target: "127.0.0.1:3333", Sources: []netip.Addr{netip.MustParseAddr("192.0.2.7")}}, ErrRemoteTarget)
	f(Config{Target: "127.0.0.1:3333", Sources: []netip.Addr{netip.MustParseAddr("::1")}}, ErrConfig)
	f(Config{Target: ""}, ErrConfig)
	f(Config{Target: "127.0.0.1"}, ErrConfig)
	f(Config{Target: "127.0.0.1:3333", Mode: "fast"}, ErrConfig)
	f(Config{Target: "127.0.0.1:3333", Rate: -1}, ErrConfig)
	f(Config{Target: "127.0.0.1:3333", Miners: 10_000_000}, ErrTooManyMiners)

	// Loopback targets pass the check (resolving only, no dial).
	for _, target := range []string{"127.0.0.1:3333", "127.1.2.3:1", "[::1]:3333", "localhost:3333"} {
		cfg := Config{Target: target}
		if _, err := cfg.resolveTarget(context.Background()); err != nil {
			t.Errorf("resolveTarget(%s): %v", target, err)
		}
	}
	cfg := Config{Target: "192.0.2.1:3333", AllowRemote: true}
	if _, err := cfg.resolveTarget(context.Background()); err != nil {
		t.Errorf("AllowRemote: %v", err)
	}
}

func TestUserNumbering(t *testing.T) {
	r := &runner{cfg: Config{Miners: 3, User: "acct.rig%d-%d", MaxPending: 2}}
	r.buildMiners()
	for i, want := range []string{"acct.rig0-0", "acct.rig1-1", "acct.rig2-2"} {
		if got := r.miners[i].user; got != want {
			t.Errorf("miner %d user %q, want %q", i, got, want)
		}
		if len(r.miners[i].pend) != 2 || cap(r.miners[i].pend) != 2 {
			t.Errorf("miner %d pending window %d/%d", i, len(r.miners[i].pend), cap(r.miners[i].pend))
		}
	}
}
