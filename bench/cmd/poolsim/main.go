// Command poolsim runs the stratum v1 pool simulator (bench/poolsim)
// standalone, for benchmarks that need the pool in its own process and for
// pointing real miners or the proxy at a pool that checks every share:
//
//	go run ./bench/cmd/poolsim -addr 127.0.0.1:3333 -diff 0.001 -en2 8
//
// It prints "listening on HOST:PORT" first (useful with port 0), then one
// stats line per -stats interval, and final stats on SIGINT or SIGTERM.
// With -json every line is a JSON object instead.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/stratum-proxy/stratum-proxy/bench/poolsim"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "poolsim:", err)
		os.Exit(1)
	}
}

// hexFlag is a uint32 flag written in hex, like stratum's version masks.
type hexFlag uint32

// String implements flag.Value.
func (h *hexFlag) String() string { return fmt.Sprintf("%08x", uint32(*h)) }

// Set implements flag.Value.
func (h *hexFlag) Set(s string) error {
	v, err := strconv.ParseUint(s, 16, 32)
	*h = hexFlag(v)
	return err
}

func run(args []string) error {
	fs := flag.NewFlagSet("poolsim", flag.ContinueOnError)
	var mask hexFlag
	addr := fs.String("addr", "127.0.0.1:3333", "listen address (port 0 picks one)")
	diff := fs.Float64("diff", 1, "share difficulty sent with mining.set_difficulty (fractions allowed, e.g. 0.001)")
	en1 := fs.Int("en1", 4, "extranonce1 size in bytes (1..16)")
	en2 := fs.Int("en2", 8, "extranonce2 size in bytes (1..16)")
	notify := fs.Duration("notify", 0, "send a new job (clean_jobs=false) every interval; 0 never")
	block := fs.Duration("block", 0, "send a clean job (a new block) every interval; 0 never")
	fs.Var(&mask, "mask", "version-rolling mask granted to mining.configure, hex (e.g. 1fffe000); 0 disables")
	user := fs.String("user", "", "only this account may authorize (also as user.worker); empty allows anyone")
	password := fs.String("password", "", "required authorize password; empty accepts any")
	branches := fs.Int("branches", 2, "merkle branches per job (0..16)")
	history := fs.Int("history", 8, "jobs that stay valid for shares")
	prefix := fs.String("job-prefix", "", "prefix of job ids")
	delay := fs.Duration("share-delay", 0, "delay every share answer (a slow pool)")
	every := fs.Duration("stats", 10*time.Second, "print stats every interval; 0 only at exit")
	asJSON := fs.Bool("json", false, "print JSON lines instead of text")
	if err := fs.Parse(args); err != nil {
		return err
	}
	nb := *branches
	if nb == 0 {
		nb = -1 // Config.MerkleBranches: negative means none, 0 the default
	}
	s, err := poolsim.Start(poolsim.Config{
		Addr:            *addr,
		Extranonce1Size: *en1,
		Extranonce2Size: *en2,
		Difficulty:      *diff,
		NotifyInterval:  *notify,
		JobHistory:      *history,
		JobIDPrefix:     *prefix,
		MerkleBranches:  nb,
		VersionMask:     uint32(mask),
		User:            *user,
		Password:        *password,
		ShareDelay:      *delay,
	})
	if err != nil {
		return err
	}
	defer s.Close()

	start := time.Now()
	if *asJSON {
		printJSON(map[string]any{"ev": "ready", "addr": s.Addr(), "pid": os.Getpid()})
	} else {
		fmt.Printf("listening on %s (difficulty %g, extranonce1 %d, extranonce2 %d bytes)\n", s.Addr(), *diff, *en1, *en2)
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	var tick, blocks <-chan time.Time
	if *every > 0 {
		t := time.NewTicker(*every)
		defer t.Stop()
		tick = t.C
	}
	if *block > 0 {
		t := time.NewTicker(*block)
		defer t.Stop()
		blocks = t.C
	}
	last, lastAt := poolsim.Stats{}, start
	for {
		select {
		case <-sig:
			report(s.Stats(), poolsim.Stats{}, start, start, *asJSON, true)
			return nil
		case <-blocks:
			s.Notify(true)
		case now := <-tick:
			st := s.Stats()
			report(st, last, lastAt, start, *asJSON, false)
			last, lastAt = st, now
		}
	}
}

// report prints st, with rates over the time since prev was taken at
// prevAt.
func report(st, prev poolsim.Stats, prevAt, start time.Time, asJSON, final bool) {
	now := time.Now()
	dt := now.Sub(prevAt).Seconds()
	shareRate := float64(st.Submits-prev.Submits) / dt
	// Hashrate credited by the pool: 2^32 hashes per difficulty-1 share.
	hashrate := math.Ldexp(st.AcceptedDifficulty-prev.AcceptedDifficulty, 32) / dt
	if asJSON {
		st.UserDifficulty = nil // one entry per worker: too big for a line
		ev := "stats"
		if final {
			ev = "final"
		}
		printJSON(map[string]any{"ev": ev, "uptime_s": now.Sub(start).Seconds(), "submits_per_s": shareRate, "hashrate": hashrate, "stats": st})
		return
	}
	label := "stats"
	if final {
		label = "final"
	}
	fmt.Printf("%s up=%s conns=%d total_conns=%d jobs=%d submits=%d (%.0f/s) accepted=%d rejected=%d "+
		"[stale=%d dup=%d low=%d unauth=%d unsub=%d other=%d] hashrate=%.4g H/s workers=%d\n",
		label, now.Sub(start).Round(time.Second), st.Connections, st.TotalConnections, st.Jobs, st.Submits, shareRate,
		st.Accepted, st.Rejected, st.Stale, st.Duplicate, st.LowDifficulty, st.Unauthorized, st.NotSubscribed, st.Other,
		hashrate, len(st.UserDifficulty))
}

func printJSON(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		fmt.Fprintln(os.Stderr, "poolsim:", err)
		return
	}
	os.Stdout.Write(append(b, '\n'))
}
