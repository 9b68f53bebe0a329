package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/stratum-proxy/stratum-proxy/bench/flood"
)

// floodRole is `suite --role=flood`: the gnet miner flood (bench/flood) in
// its own process. It prints a "progress" event every second and a
// "summary" event (flood.Summary) at the end. It stops at --duration, or
// earlier on "stop" or EOF on stdin. With --timed-jobs, jobs whose id
// carries the pool role's send time (see timedJobID) are measured from that
// send time too (Summary.NotifyLatency).
func floodRole(args []string) error {
	fs := flag.NewFlagSet("flood", flag.ContinueOnError)
	var c flood.Config
	var sources, mode string
	var timed bool
	fs.StringVar(&c.Target, "target", "", "stratum endpoint host:port")
	fs.IntVar(&c.Miners, "miners", 1, "miner connections")
	fs.StringVar(&sources, "sources", "", "source addresses, e.g. 127.0.0.2-127.0.0.9")
	fs.StringVar(&c.User, "user", "bench.rig%d", "authorize user (%d: miner index)")
	fs.Float64Var(&c.Rate, "rate", 0, "shares per second per miner")
	fs.DurationVar(&c.Duration, "duration", 30*time.Second, "run time, ramp included (upper bound: stop ends it earlier)")
	fs.DurationVar(&c.Drain, "drain", 2*time.Second, "wait for answers after the run")
	fs.StringVar(&mode, "mode", "blind", "share mode: blind or valid")
	fs.IntVar(&c.MaxPending, "max-pending", 16, "unanswered submits per miner at most")
	fs.IntVar(&c.ConnectConcurrency, "connect-concurrency", 256, "dials in flight")
	fs.BoolVar(&timed, "timed-jobs", false, "measure pool-send -> arrival latency of timed job ids")
	if err := fs.Parse(args); err != nil {
		return err
	}
	raiseOwnNoFile()
	srcs, err := flood.ParseSources(sources)
	if err != nil {
		return err
	}
	c.Sources = srcs
	c.Mode = flood.Mode(mode)
	c.Logger = stderrLogger{}
	out := newEmitter()
	c.Progress = func(p flood.Progress) { out.emit("progress", p) }
	if timed {
		c.NotifySentAt = parseTimedJobID
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		// Bounded: ends at EOF (the suite closed stdin or died) or "stop".
		for sc.Scan() {
			if strings.TrimSpace(sc.Text()) == "stop" {
				break
			}
		}
		cancel()
	}()
	out.emit("ready", map[string]any{"pid": os.Getpid()})
	sum, err := flood.Run(ctx, c)
	if err != nil {
		out.emit("error", err.Error())
		return err
	}
	out.emit("summary", sum)
	return nil
}

// stderrLogger passes gnet's warnings and errors to stderr and drops its
// info lines.
type stderrLogger struct{}

func (stderrLogger) Debugf(string, ...any) {}
func (stderrLogger) Infof(string, ...any)  {}
func (stderrLogger) Warnf(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "gnet: warn: "+f+"\n", a...)
}
func (stderrLogger) Errorf(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "gnet: error: "+f+"\n", a...)
}
func (stderrLogger) Fatalf(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "gnet: fatal: "+f+"\n", a...)
	os.Exit(1)
}
