// Command flood is the bundled stratum flood tool: it holds many simulated
// miners in one process, has them subscribe, authorize and submit shares,
// prints a progress line every second on stderr and a JSON summary on
// stdout. See package bench/flood for what is measured.
//
// Usage:
//
//	go run ./bench/cmd/flood --target 127.0.0.1:9332 --miners 18000 \
//	    --sources 127.0.0.2-127.0.0.9 --user NAME.rig%d --rate 0.2 --duration 60s
//
// With --dialect (cryptonote, ethstratum, ethproxy, kawpow, equihash,
// kheavyhash) the miners speak that dialect instead, one goroutine each
// (bench/dialectsim miners mining stand-in shares):
//
//	go run ./bench/cmd/flood --target 127.0.0.1:9332 --dialect cryptonote \
//	    --miners 500 --user NAME.rig%d --rate 1 --duration 30s
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stratum-proxy/stratum-proxy/bench/flood"
)

const usage = `flood: a stratum v1 miner flood in one process (gnet, no goroutine per miner).

Usage:
  flood --target HOST:PORT [flags]

Each miner connects, sends mining.configure (--configure) and mining.subscribe,
then mining.extranonce.subscribe (--extranonce-subscribe) and mining.authorize,
and submits shares at --rate per second (jittered) until --duration; then the
flood waits up to --drain for answers and exits. Progress goes to stderr every
--progress, the JSON summary to stdout (or --out).

Targets outside 127.0.0.0/8 and ::1 are refused without --allow-remote. The soft
RLIMIT_NOFILE is raised to the hard limit; a miner count that cannot fit is
refused before dialing. Use several --sources so ephemeral ports do not run out.

Dialects:
  --dialect stratum (the default) is Bitcoin stratum v1 as above. --dialect
  cryptonote, ethstratum, ethproxy, kawpow, equihash or kheavyhash runs one
  goroutine per miner with a bench/dialectsim miner instead: it logs in the
  dialect's way (cryptonote sends the algo list ["rx/0"]), mines a stand-in
  share (valid at a bench/dialectsim pool, not a real proof of work) and
  submits it every 1/--rate seconds (jittered) until --duration; a miner whose
  share fails stops (counted in shares.errors). --sources is refused; --mode,
  --configure, --extranonce-subscribe, --max-pending, --hash-* and
  --event-loops do not apply; --user-agent defaults to the dialect's usual
  miner; --connect-timeout also bounds each answer.

Share modes:
  blind  submit without hashing: every share valid at a pool difficulty of
         2.3e-10 or less (e.g. poolsim -diff 1e-10), else rejections measure relay
  valid  mine real sha256d shares at the current job and difficulty in
         --hash-workers goroutines: only at tiny difficulty (poolsim -diff 1e-6)

Examples:
  go run ./bench/cmd/poolsim -addr 127.0.0.1:3333 -diff 1e-10 &
  go run ./bench/cmd/flood --target 127.0.0.1:3333 --miners 18000 \
      --sources 127.0.0.2-127.0.0.9 --user NAME.rig%d --rate 0.2 --duration 60s

Flags:
`

type options struct {
	cfg      flood.Config
	sources  string
	mode     string
	progress time.Duration
	out      string
	quiet    bool
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("flood", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		_, _ = io.WriteString(stderr, usage)
		fs.PrintDefaults()
	}
	c := &o.cfg
	fs.StringVar(&c.Target, "target", "", "stratum endpoint `host:port` (required)")
	fs.BoolVar(&c.AllowRemote, "allow-remote", false, "allow a target outside 127.0.0.0/8 and ::1")
	fs.IntVar(&c.Miners, "miners", 1, "number of miner connections")
	fs.StringVar(&o.sources, "sources", "", "local source `addresses`, round robin: a range 127.0.0.2-127.0.0.9 and/or a comma list (default: kernel's choice)")
	fs.IntVar(&c.ConnectConcurrency, "connect-concurrency", 256, "dials in flight at most")
	fs.Float64Var(&c.ConnectRate, "connect-rate", 0, "new connections per second at most (0: unlimited)")
	fs.DurationVar(&c.ConnectTimeout, "connect-timeout", 10*time.Second, "timeout of one dial")
	fs.StringVar(&c.User, "user", "flood", "mining.authorize user; %d becomes the miner index (NAME.rig%d)")
	fs.StringVar(&c.Password, "password", "x", "mining.authorize password")
	fs.StringVar(&c.UserAgent, "user-agent", "", "subscribe user agent and client.get_version answer (default stratum-flood/1.0; with --dialect the dialect's usual miner)")
	fs.BoolVar(&c.Configure, "configure", false, "send mining.configure (version rolling) before subscribe")
	fs.BoolVar(&c.ExtranonceSubscribe, "extranonce-subscribe", false, "send mining.extranonce.subscribe")
	fs.StringVar(&c.Dialect, "dialect", flood.DialectStratum, "miner `dialect`: stratum, or "+strings.Join(flood.DialectKinds(), ", ")+" (a goroutine per miner)")
	fs.StringVar(&o.mode, "mode", "blind", "share `mode`: blind or valid")
	fs.Float64Var(&c.Rate, "rate", 0.2, "shares per second per miner (0: connect only)")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "run time from start, connect ramp included")
	fs.DurationVar(&c.Drain, "drain", 3*time.Second, "wait at most this long for outstanding answers after --duration")
	fs.IntVar(&c.MaxPending, "max-pending", 16, "unanswered submits per miner at most; further due shares are skipped")
	fs.IntVar(&c.HashWorkers, "hash-workers", 0, "valid mode hashing goroutines (0: one per CPU)")
	fs.IntVar(&c.HashQueue, "hash-queue", 4096, "valid mode shares waiting for a hash worker at most")
	fs.Uint64Var(&c.MaxHashes, "max-hashes", 1<<24, "valid mode nonces tried per share at most")
	fs.IntVar(&c.EventLoops, "event-loops", 0, "gnet event loops (0: one per CPU)")
	fs.DurationVar(&o.progress, "progress", time.Second, "progress line interval on stderr (0: none)")
	fs.StringVar(&o.out, "out", "", "write the JSON summary to this `file` instead of stdout")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress line")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	srcs, err := flood.ParseSources(o.sources)
	if err != nil {
		return nil, err
	}
	c.Sources = srcs
	c.Mode = flood.Mode(o.mode)
	c.ProgressInterval = o.progress
	return o, nil
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "flood:", err)
		return 2
	}
	if o.progress > 0 && !o.quiet {
		tty := isTerminal(os.Stderr)
		o.cfg.Progress = func(p flood.Progress) {
			if tty {
				fmt.Fprintf(stderr, "\r\033[K%s", p)
			} else {
				fmt.Fprintln(stderr, p)
			}
		}
		defer func() {
			if tty {
				fmt.Fprintln(stderr)
			}
		}()
	}
	o.cfg.Logger = quietLogger{w: stderr}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := flood.Run(ctx, o.cfg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	out := stdout
	if o.out != "" {
		f, err := os.Create(o.out)
		if err != nil {
			fmt.Fprintln(stderr, "flood:", err)
			return 1
		}
		defer f.Close()
		out = f
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	if err := enc.Encode(sum); err != nil {
		fmt.Fprintln(stderr, "flood: write summary:", err)
		return 1
	}
	return 0
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// quietLogger keeps gnet's warnings and errors, drops its info and debug
// lines (one per event loop at start).
type quietLogger struct{ w io.Writer }

func (quietLogger) Debugf(string, ...any) {}
func (quietLogger) Infof(string, ...any)  {}
func (l quietLogger) Warnf(f string, a ...any) {
	fmt.Fprintf(l.w, "gnet: warn: "+f+"\n", a...)
}
func (l quietLogger) Errorf(f string, a ...any) {
	fmt.Fprintf(l.w, "gnet: error: "+f+"\n", a...)
}
func (l quietLogger) Fatalf(f string, a ...any) {
	fmt.Fprintf(l.w, "gnet: fatal: "+f+"\n", a...)
	os.Exit(1)
}
