package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/stratum-proxy/stratum-proxy/bench/flood"
	"github.com/stratum-proxy/stratum-proxy/bench/poolsim"
)

// Difficulties of the simulated pool.
const (
	// blindDiff makes every blind share valid: the flood's made-up shares
	// meet any difficulty at or below 2^-32 (~2.3e-10).
	blindDiff = 1e-10
	// idleDiff is the pool's difficulty where no shares are sent.
	idleDiff = 1
)

// poolInst is a running pool role.
type poolInst struct {
	p    *proc
	addr string
	pid  int
}

// startPool starts the pool simulator role at difficulty diff. With
// --profile, cpuprofile names the file for its CPU profile ("" for none).
func (s *suite) startPool(ctx context.Context, tag string, diff float64, cpuprofile bool) (*poolInst, error) {
	argv := []string{s.self, "--role=pool", "--diff", strconv.FormatFloat(diff, 'g', -1, 64)}
	if cpuprofile && s.opts.profile != "" {
		argv = append(argv, "--cpuprofile", filepath.Join(s.opts.profile, tag+"-pool.cpu.pprof"))
	}
	p, err := s.procs.start("pool-"+tag, argv, s.root, filepath.Join(s.tmp, "pool-"+tag+".log"), nil)
	if err != nil {
		return nil, err
	}
	ev, _, err := p.waitEvent(ctx, "ready", 0, 20*time.Second, nil)
	if err != nil {
		p.stop(5*time.Second, false)
		return nil, err
	}
	var r struct {
		Addr string
		Pid  int
	}
	if err := json.Unmarshal(ev.Data, &r); err != nil {
		p.stop(5*time.Second, false)
		return nil, err
	}
	return &poolInst{p: p, addr: r.Addr, pid: p.cmd.Process.Pid}, nil
}

// stats asks the pool for its counters.
func (pl *poolInst) stats(ctx context.Context) (poolsim.Stats, error) {
	var st poolsim.Stats
	from := pl.p.eventCount()
	if err := pl.p.send("stats"); err != nil {
		return st, err
	}
	ev, _, err := pl.p.waitEvent(ctx, "stats", from, 20*time.Second, nil)
	if err != nil {
		return st, err
	}
	err = json.Unmarshal(ev.Data, &st)
	return st, err
}

// stop closes the pool (EOF on stdin) and waits for it.
func (s *suite) stopPool(pl *poolInst, scenario string) {
	if pl == nil {
		return
	}
	if !pl.p.stop(20*time.Second, false) {
		s.anomaly(scenario, "pool simulator did not exit within 20s (killed); log %s", pl.p.logPath)
	}
}

// floodOpts are a flood role's parameters.
type floodOpts struct {
	target     string
	user       string // authorize name; "%d" becomes the miner index
	miners     int
	rate       float64       // shares/s per miner; 0: none
	duration   time.Duration // upper bound; stop ends it earlier
	maxPending int           // 0: the flood's default (16)
	timed      bool          // measure timed job ids (fan-out)
}

// floodInst is a running flood role.
type floodInst struct {
	p    *proc
	opts floodOpts
}

// startFlood starts a flood role.
func (s *suite) startFlood(ctx context.Context, tag string, fo floodOpts) (*floodInst, error) {
	argv := []string{s.self, "--role=flood",
		"--target", fo.target,
		"--miners", strconv.Itoa(fo.miners),
		"--sources", s.opts.sources,
		"--user", fo.user,
		"--rate", strconv.FormatFloat(fo.rate, 'g', -1, 64),
		"--duration", fo.duration.String(),
	}
	if fo.maxPending > 0 {
		argv = append(argv, "--max-pending", strconv.Itoa(fo.maxPending))
	}
	if fo.timed {
		argv = append(argv, "--timed-jobs")
	}
	p, err := s.procs.start("flood-"+tag, argv, s.root, filepath.Join(s.tmp, "flood-"+tag+".log"), nil)
	if err != nil {
		return nil, err
	}
	if _, _, err := p.waitEvent(ctx, "ready", 0, 20*time.Second, nil); err != nil {
		p.stop(5*time.Second, false)
		return nil, err
	}
	return &floodInst{p: p, opts: fo}, nil
}

// progress decodes a progress event.
func progressOf(ev event) (flood.Progress, error) {
	var pr flood.Progress
	err := json.Unmarshal(ev.Data, &pr)
	return pr, err
}

// waitAuthorized waits until every miner is authorized. It gives up after
// timeout, or earlier when the count has not moved for stall, returning the
// last progress and an error saying how many made it.
func (s *suite) waitAuthorized(ctx context.Context, f *floodInst, timeout, stall time.Duration) (flood.Progress, error) {
	deadline := time.Now().Add(timeout)
	var last flood.Progress
	lastChange := time.Now()
	from := 0
	// Bounded by the deadline: every wait below ends by it.
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return last, fmt.Errorf("%d of %d miners authorized after %s (connected %d, connect errors %d)",
				last.Authorized, f.opts.miners, timeout, last.Connected, last.ConnectErrors)
		}
		ev, i, err := f.p.waitEvent(ctx, "progress", from, left, nil)
		if err != nil {
			return last, err
		}
		from = i + 1
		pr, err := progressOf(ev)
		if err != nil {
			return last, err
		}
		if pr.Authorized != last.Authorized {
			lastChange = time.Now()
		}
		last = pr
		if s.opts.verbose {
			s.logf("  %s: %s", f.p.name, pr)
		}
		if pr.Authorized >= int64(f.opts.miners) {
			return pr, nil
		}
		if time.Since(lastChange) > stall {
			return last, fmt.Errorf("%d of %d miners authorized, no progress for %s (connected %d, connect errors %d)",
				last.Authorized, f.opts.miners, stall, last.Connected, last.ConnectErrors)
		}
	}
}

// rampTimeout bounds the connect ramp of n miners: generous for 2 cores
// (18,000 miners take ~5-10 s through the proxy).
func rampTimeout(n int) time.Duration {
	return 30*time.Second + time.Duration(n)*5*time.Millisecond
}

// stopFlood tells the flood to stop and returns its summary.
func (f *floodInst) stopAndSummary(ctx context.Context) (*flood.Summary, error) {
	_ = f.p.send("stop")
	return f.summary(ctx, 60*time.Second)
}

// summary waits for the flood's summary (its natural end) and for it to
// exit.
func (f *floodInst) summary(ctx context.Context, timeout time.Duration) (*flood.Summary, error) {
	ev, _, err := f.p.waitEvent(ctx, "summary", 0, timeout, nil)
	if err != nil {
		f.p.stop(5*time.Second, true)
		return nil, err
	}
	var sum flood.Summary
	if err := json.Unmarshal(ev.Data, &sum); err != nil {
		return nil, err
	}
	f.p.stop(30*time.Second, false)
	return &sum, nil
}

// progressSeries returns every progress event of the flood, decoded.
func (f *floodInst) progressSeries() []flood.Progress {
	var out []flood.Progress
	for _, ev := range f.p.eventsNamed("progress") {
		if pr, err := progressOf(ev); err == nil {
			out = append(out, pr)
		}
	}
	return out
}

// sleepCtx sleeps d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
