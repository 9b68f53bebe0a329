// Command suite is the benchmark suite of the proxy (`make bench`): it runs
// each scenario twice, miners straight to the pool simulator and miners
// through the proxy, and reports both and their ratio.
//
// Every party is its own process with its own file descriptor budget (the
// machine allows 20,000 per process): the pool simulator and the miner
// flood are roles of this same binary (--role=pool, --role=flood, built
// on bench/poolsim and bench/flood), the proxy is the real binary built
// from the module root (or, with --profile, a harness of the proxy package
// with net/http/pprof, --role=proxy). Each child gets its own process
// group, SIGKILL when the suite dies, and is stopped at the end, on an error
// and on Ctrl-C.
//
// Usage:
//
//	go run ./bench/cmd/suite                       # everything, < 10 minutes on 2 cores
//	go run ./bench/cmd/suite --quick               # ~2 minute smoke run
//	go run ./bench/cmd/suite --scenarios relay,fanout --json out.json
//	go run ./bench/cmd/suite --profile prof/        # proxied runs on the pprof harness
//
// Scenarios: memory (proxy RSS per miner, split and passthrough), relay
// (shares/s at saturation and answer latency at a fixed rate), fanout
// (pool send -> last miner at 18,000 miners), upstreams (pool connections
// per account at 18,000 miners), dialects (upstreams, proxy RSS per miner
// and shares of the CryptoNote, EthereumStratum, ETHProxy, kawpow, equihash
// and kHeavyHash miners), allocs (the Go micro-benchmarks with -benchmem).
// See docs/BENCHMARKS.md for the results and how to read them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/stratum-proxy/stratum-proxy/bench/flood"
)

// options are the suite's flags.
type options struct {
	quick     bool
	scenarios []string
	jsonOut   string
	proxyBin  string
	proxyArgs []string // extra flags appended to the proxy binary's command line
	profile   string
	sources   string
	keep      bool
	verbose   bool
	timeout   time.Duration
}

// allScenarios in the order they run.
var allScenarios = []string{"memory", "relay", "fanout", "upstreams", "dialects", "allocs"}

func main() {
	if len(os.Args) > 1 && strings.HasPrefix(os.Args[1], "--role=") {
		role := strings.TrimPrefix(os.Args[1], "--role=")
		var err error
		switch role {
		case "pool":
			err = poolRole(os.Args[2:])
		case "flood":
			err = floodRole(os.Args[2:])
		case "proxy":
			err = proxyRole(os.Args[2:])
		default:
			err = fmt.Errorf("unknown role %q", role)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "suite:", role+":", err)
			os.Exit(1)
		}
		return
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `suite: the proxy's benchmark suite, miners straight to the pool simulator vs through the proxy.

Usage:
  go run ./bench/cmd/suite [--quick] [--scenarios memory,relay,fanout,upstreams,dialects,allocs] [--json FILE]

Flags:
`

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("suite", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		_, _ = io.WriteString(stderr, usage)
		fs.PrintDefaults()
	}
	var scen, proxyArgs string
	fs.BoolVar(&o.quick, "quick", false, "smoke run (~2 minutes): fewer miners, shorter runs")
	fs.StringVar(&scen, "scenarios", strings.Join(allScenarios, ","), "comma-separated scenarios to run")
	fs.StringVar(&o.jsonOut, "json", "", "also write the results as JSON to this `file`")
	fs.StringVar(&o.proxyBin, "proxy-bin", "", "proxy binary to run (default: go build from the module root)")
	fs.StringVar(&proxyArgs, "proxy-args", "", "extra `flags` for the proxy binary, space-separated (e.g. \"--vardiff=false\"); not with --profile")
	fs.StringVar(&o.profile, "profile", "", "run proxied cases on the pprof harness and write CPU/heap profiles to this `dir`")
	fs.StringVar(&o.sources, "sources", "127.0.0.2-127.0.0.9", "source addresses of the flood's connections")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (stores, logs)")
	fs.BoolVar(&o.verbose, "v", false, "print the flood's progress lines")
	fs.DurationVar(&o.timeout, "timeout", 20*time.Minute, "abort the whole suite after this long")
	registerClusterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	o.proxyArgs = strings.Fields(proxyArgs)
	if len(o.proxyArgs) > 0 && o.profile != "" {
		return nil, errors.New("--proxy-args applies to the proxy binary; the --profile harness does not take them")
	}
	known := map[string]bool{}
	for _, n := range append(slices.Clone(allScenarios), optionalScenarios...) {
		known[n] = true
	}
	for _, n := range strings.Split(scen, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if !known[n] {
			return nil, fmt.Errorf("unknown scenario %q (have %s)", n, strings.Join(append(slices.Clone(allScenarios), optionalScenarios...), ", "))
		}
		o.scenarios = append(o.scenarios, n)
	}
	if len(o.scenarios) == 0 {
		return nil, errors.New("no scenario selected")
	}
	if _, err := flood.ParseSources(o.sources); err != nil {
		return nil, err
	}
	return o, nil
}

// suite is one run of the benchmark suite.
type suite struct {
	// Static after setup.
	opts     *options
	self     string // this binary, re-executed for the roles
	root     string // module root
	tmp      string // stores, logs, the built proxy
	proxyBin string
	procs    procSet
	stderr   io.Writer
	started  time.Time

	mu     sync.Mutex // guards report
	report Report
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "suite:", err)
		return 2
	}
	raiseOwnNoFile()
	sigCtx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(sigCtx, o.timeout)
	defer cancel()

	s := &suite{opts: o, stderr: stderr, started: time.Now()}
	defer s.procs.stopAll() // also on panic: no child outlives the suite
	if err := s.setup(ctx); err != nil {
		fmt.Fprintln(stderr, "suite:", err)
		s.cleanup()
		return 1
	}
	s.report.init(s, args)
	failed := false
	for _, name := range o.scenarios {
		if ctx.Err() != nil {
			break
		}
		s.logf("== %s", name)
		t0 := time.Now()
		err := s.scenario(ctx, name)
		s.procs.stopAll() // whatever a failed scenario left running
		if err != nil {
			failed = true
			if ctx.Err() != nil {
				s.logf("!! %s stopped: %v", name, err)
			} else {
				s.anomaly(name, "scenario failed: %v", err)
			}
		}
		s.logf("== %s done in %s", name, time.Since(t0).Round(time.Second))
	}
	s.report.ElapsedS = time.Since(s.started).Seconds()
	s.report.Machine.LoadEnd = loadavg()
	s.report.evaluateTargets()
	s.report.writeTable(stdout)
	if o.jsonOut != "" {
		if err := s.report.writeJSON(o.jsonOut); err != nil {
			fmt.Fprintln(stderr, "suite:", err)
			failed = true
		}
	}
	s.cleanup()
	switch {
	case sigCtx.Err() != nil:
		fmt.Fprintln(stderr, "suite: interrupted")
		return 130
	case ctx.Err() != nil:
		fmt.Fprintln(stderr, "suite: timed out after", o.timeout)
		return 1
	case failed:
		return 1
	}
	return 0
}

func (s *suite) scenario(ctx context.Context, name string) error {
	switch name {
	case "memory":
		return s.memory(ctx)
	case "relay":
		return s.relay(ctx)
	case "fanout":
		return s.fanout(ctx)
	case "upstreams":
		return s.upstreams(ctx)
	case "dialects":
		return s.dialects(ctx)
	case "allocs":
		return s.allocs(ctx)
	case "cluster":
		return s.cluster(ctx)
	}
	return fmt.Errorf("unknown scenario %q", name)
}

// setup finds the module root, builds the proxy (unless --proxy-bin) and
// creates the temporary directory.
func (s *suite) setup(ctx context.Context) error {
	var err error
	if s.self, err = os.Executable(); err != nil {
		return err
	}
	if s.root, err = moduleRoot(); err != nil {
		return err
	}
	if s.tmp, err = os.MkdirTemp("", "stratum-bench-"); err != nil {
		return err
	}
	if s.opts.profile != "" {
		if err := os.MkdirAll(s.opts.profile, 0o755); err != nil {
			return err
		}
		if s.opts.profile, err = filepath.Abs(s.opts.profile); err != nil {
			return err
		}
	}
	s.proxyBin = s.opts.proxyBin
	if s.proxyBin == "" && s.opts.profile == "" && s.needsProxy() {
		s.proxyBin = filepath.Join(s.tmp, "stratum-proxy")
		s.logf("building the proxy: go build -o %s .", s.proxyBin)
		bctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(bctx, goTool(), "build", "-o", s.proxyBin, ".")
		cmd.Dir = s.root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build the proxy: %v\n%s", err, out)
		}
	} else if s.proxyBin != "" {
		if s.proxyBin, err = filepath.Abs(s.proxyBin); err != nil {
			return err
		}
	}
	s.logf("temporary files in %s", s.tmp)
	return nil
}

func (s *suite) needsProxy() bool {
	for _, n := range s.opts.scenarios {
		if n != "allocs" {
			return true
		}
	}
	return false
}

func (s *suite) cleanup() {
	s.procs.stopAll()
	if s.tmp != "" && !s.opts.keep {
		_ = os.RemoveAll(s.tmp)
	} else if s.tmp != "" {
		s.logf("kept %s", s.tmp)
	}
}

// moduleRoot walks up from the working directory to the go.mod of this
// module.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	// Bounded by the depth of the path.
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/stratum-proxy/stratum-proxy\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run the suite inside the stratum-proxy module (no go.mod found above the working directory)")
		}
		dir = parent
	}
}

// goTool returns the go command: the one that built this binary if it is
// still there, else "go" from PATH.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
}

// logf prints a progress line on stderr with the suite's elapsed time.
func (s *suite) logf(format string, a ...any) {
	fmt.Fprintf(s.stderr, "[%6.1fs] %s\n", time.Since(s.started).Seconds(), fmt.Sprintf(format, a...))
}

// anomaly records something a scenario revealed that looks like a bug (a
// crash, a hang, dropped miners, wrong counts) for the report.
func (s *suite) anomaly(scenario, format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	s.logf("!! %s: %s", scenario, msg)
	s.mu.Lock()
	s.report.Anomalies = append(s.report.Anomalies, Anomaly{Scenario: scenario, What: msg})
	s.mu.Unlock()
}
