// Command stratum-proxy is a Stratum mining proxy: miners connect to one
// port with a name issued by its HTTP API, and the proxy relays their work
// and shares to the pool account behind that name, sharing upstream
// connections by extranonce splitting and exporting per-worker hashrate to
// Prometheus.
//
// Usage:
//
//	stratum-proxy [flags]                       serve (stratum + HTTP API)
//	stratum-proxy [flags] pool add HOST:PORT ALGORITHM [--mode=split|passthrough] [--extranonce2-size=N]
//	stratum-proxy [flags] pool list
//	stratum-proxy [flags] algo list
//	stratum-proxy [flags] user list
//	stratum-proxy --version                     print "stratum-proxy <version>"
//	stratum-proxy -h                            print the flags
//
// Every flag can also be set from the environment: --web.addr is
// STRATUM_PROXY_WEB_ADDR, --session.grace is STRATUM_PROXY_SESSION_GRACE.
// A flag given on the command line wins over the environment.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/stratum-proxy/stratum-proxy/httpapi"
	"github.com/stratum-proxy/stratum-proxy/metrics"
	"github.com/stratum-proxy/stratum-proxy/proxy"
	"github.com/stratum-proxy/stratum-proxy/store"
)

// defaultDrainTimeout is the default of --shutdown.drain-timeout, and
// what the proxy uses for a zero one (proxy.Config.DrainTimeout).
const defaultDrainTimeout = 5 * time.Second

// stopGrace is how much longer than the drain serve lets Stop run: the
// drain is followed by closing every connection and the event loops.
const stopGrace = 5 * time.Second

// options are the command line flags, parsed only here.
type options struct {
	stratumAddr string
	webAddr     string
	webToken    string
	webRegister string
	usersTTL    time.Duration
	regRate     float64
	dbPath      string
	metricsTag  string
	workerLabel string
	window      time.Duration
	step        time.Duration
	logLevel    string
	logFormat   string
	version     bool

	proxy proxy.Config
	tls   tlsOptions
	store storeFlags // main_store.go
}

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "stratum-proxy:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	o, rest, err := parseFlags(args, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil // asked for: the usage went to stdout
	}
	if err != nil {
		return err
	}
	if o.version {
		_, err := fmt.Fprintln(stdout, "stratum-proxy", proxy.Version)
		return err
	}
	log, err := newLogger(o.logLevel, o.logFormat, stderr)
	if err != nil {
		return err
	}
	if ok, err := runStoreCommand(o, rest, stdout); ok {
		return err
	}
	st, closeStore, err := openStore(o, log)
	if err != nil {
		return err
	}
	defer closeStore()
	if len(rest) > 0 {
		return store.CommandIn(st, rest, os.Stdin, stdout)
	}
	return serve(o, st, log)
}

// parseFlags parses args, then fills every flag not on the command line
// from its environment variable. For -h or --help it prints the usage to
// stdout and returns flag.ErrHelp; for a mistake, the usage goes to stderr.
func parseFlags(args []string, stdout, stderr io.Writer) (*options, []string, error) {
	o := &options{}
	fs := flag.NewFlagSet("stratum-proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	p := &o.proxy
	fs.StringVar(&o.stratumAddr, "stratum.addr", ":9332", "stratum listen address for miners")
	addTLSFlags(fs, &o.tls)
	fs.BoolVar(&p.ReusePort, "stratum.reuse-port", false, "bind --stratum.addr with SO_REUSEPORT: several instances on one machine share the port")
	fs.StringVar(&p.InstanceID, "cluster.instance", "", "this instance's id in a cluster: the prefix of its session ids (letters and digits)")
	addStoreFlags(fs, &o.store)
	fs.StringVar(&o.webAddr, "web.addr", ":12743", "HTTP listen address for the API and /metrics")
	fs.StringVar(&o.webToken, "web.auth-token", "", "bearer token of the management API; empty: a random one is kept in a 0600 file beside the store (its path is logged)")
	fs.StringVar(&o.webRegister, "web.register", "open", "registration (POST /api/v1/users): open, or token (needs the bearer token too)")
	fs.DurationVar(&o.usersTTL, "users.ttl", 0, "delete issued names no miner used for this long (0: never)")
	fs.StringVar(&o.dbPath, "db.path", "./data/proxy.db", "bbolt database file (created on first start)")
	fs.StringVar(&o.metricsTag, "metrics.tag", "", "value of the `proxy` label (default: the bound stratum address)")
	fs.StringVar(&o.workerLabel, "metrics.worker-label", "addr", "value of the `worker` label: addr (miner ip:port) or name (rig name)")
	fs.DurationVar(&o.window, "metrics.window", 5*time.Minute, "hashrate window of proxy_worker_speed")
	fs.DurationVar(&o.step, "metrics.step", time.Minute, "how often proxy_worker_speed is recomputed")
	fs.StringVar(&o.logLevel, "log.level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&o.logFormat, "log.format", "console", "log format: console or json")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	fs.StringVar(&p.Mode, "upstream.mode", proxy.ModeSplit, "upstream mode: split (shared upstreams) or passthrough (one per miner)")
	fs.IntVar(&p.Loops, "loops", 0, "gnet event loops (0: one per CPU)")
	fs.IntVar(&p.PrefixSize, "split.prefix-size", 2, "extranonce1 bytes handed to each miner in split mode")
	fs.IntVar(&p.Extranonce2Size, "split.extranonce2-size", 2, "extranonce2 size handed to miners")
	fs.IntVar(&p.MaxMinersPerUpstream, "split.max-miners", 0, "miners per upstream (0: the whole prefix space)")
	fs.DurationVar(&p.SessionGrace, "session.grace", 60*time.Second, "how long a disconnected miner's session is kept for restore")
	fs.DurationVar(&p.HandshakeTimeout, "limits.handshake-timeout", 15*time.Second, "close miners that do not authorize within this time")
	fs.DurationVar(&p.IdleTimeout, "limits.idle-timeout", 15*time.Minute, "close miners silent for this long")
	fs.IntVar(&p.MaxLineSize, "limits.max-line", 16<<10, "longest accepted line in bytes")
	fs.IntVar(&p.MaxConnections, "limits.max-connections", 100_000, "concurrent miner connections")
	fs.IntVar(&p.MaxOutbound, "limits.max-outbound", 256<<10, "bytes queued to a miner that does not read before it is dropped")
	fs.DurationVar(&p.ShareTimeout, "upstream.share-timeout", 15*time.Second, "answer error 20 'pool timeout' to shares the pool leaves unanswered")
	fs.DurationVar(&p.DialTimeout, "upstream.dial-timeout", 5*time.Second, "timeout of one pool connect")
	fs.DurationVar(&p.BackoffMax, "upstream.backoff-max", 30*time.Second, "longest wait between redial rounds")
	fs.DurationVar(&p.FailbackInterval, "upstream.failback-interval", 30*time.Second, "how often an upstream on a backup pool probes its primary")
	fs.DurationVar(&p.BackoffMin, "upstream.backoff-min", 250*time.Millisecond, "first wait after a failed round of redials (doubles up to --upstream.backoff-max)")
	fs.DurationVar(&p.PoolHandshakeTimeout, "upstream.handshake-timeout", 10*time.Second, "deadline of a pool login (connect to authorize answer); past it the next pool is tried")
	fs.DurationVar(&p.GiveUp, "upstream.give-up", 60*time.Second, "close the miners of an account that has had no working pool this long")
	fs.DurationVar(&p.Keepalive, "upstream.keepalive", 90*time.Second, "resend the current job to miners of a pool that sent no new job this long")
	fs.DurationVar(&p.AuthorizeWait, "upstream.authorize-wait", 10*time.Second, "how long a miner's authorize waits for its pool to log in before it is answered")
	fs.IntVar(&p.MaxPoolQueue, "limits.max-pool-queue", 1<<20, "bytes of shares queued to a pool connection that does not read; past it shares get error 20")
	fs.IntVar(&p.MaxInflight, "limits.max-inflight", 256, "shares of one miner not yet answered (answers keep submit order); past it shares get error 20")
	fs.Int64Var(&p.MaxPartialBytes, "limits.max-partial-bytes", 64<<20, "bytes of incomplete lines held for all miners of the process")
	fs.DurationVar(&p.AccountSwitchInterval, "limits.account-switch-interval", 5*time.Second, "shortest time between two account switches on one miner connection")
	fs.DurationVar(&p.DrainTimeout, "shutdown.drain-timeout", defaultDrainTimeout, "on SIGINT/SIGTERM, how long to wait for the pool's answers to shares in flight")
	fs.Int64Var(&p.MaxOutboundTotal, "limits.max-outbound-total", 1<<30, "bytes of output queued to all miners that do not read; past it the miner whose write passed it is dropped")
	fs.Float64Var(&o.regRate, "web.register-rate", 120, "registrations per minute from one client address, bursts of the same (0: no cap); past it: 429")
	fs.IntVar(&p.MaxConnsPerAddr, "limits.per-address-connections", 0, "miner connections from one source address (0: no cap; farms put many ASICs behind one NAT address)")
	fs.Float64Var(&p.ConnRatePerAddr, "limits.per-address-rate", 0, "new miner connections per second from one source address, bursts of twice it (0: no cap)")
	fs.IntVar(&p.MaxDetached, "session.max-detached", 200_000, "sessions waiting for restore; past it the oldest is forgotten")
	vardiff := fs.Bool("vardiff", true, "per-miner difficulty and share checking at the proxy for sha256 and scrypt pools (false: every share relayed at the pool's difficulty)")
	fs.Float64Var(&p.VardiffRate, "vardiff.rate", 15, "shares per minute a miner's own difficulty aims at (band 2/3 to 4/3 of it)")
	fs.Float64Var(&p.VardiffStart, "vardiff.start", 1, "difficulty of a miner that sent no mining.suggest_difficulty")
	fs.Float64Var(&p.VardiffFloor, "vardiff.floor", 0.001, "lowest difficulty handed to a miner")
	fs.DurationVar(&p.VardiffInterval, "vardiff.interval", 30*time.Second, "shortest time between two retargets of a miner")
	fs.Var(&configFlag{fs: fs}, "config", "read flags from `FILE`: one key = value a line, keys the flag names, # comments; the command line and the environment win over it")
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: stratum-proxy [flags] [pool add HOST:PORT ALGO | pool list | algo list | user list]\n\nFlags (each also from STRATUM_PROXY_<NAME>, e.g. STRATUM_PROXY_WEB_ADDR):\n")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(stderr)
	}
	// The flag package prints the usage for -h and for mistakes alike;
	// print it here instead, where the two can go to different places.
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout)
		} else {
			usage(stderr)
		}
		return nil, nil, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		// STRATUM_PROXY_VERSION is a likely name for an image's version
		// label; it must not turn the proxy into a version printer.
		if set[f.Name] || f.Name == "version" {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if err := f.Value.Set(v); err != nil && envErr == nil {
				envErr = fmt.Errorf("%s: %w", envName(f.Name), err)
			}
		}
	})
	p.NoVardiff = !*vardiff
	if envErr == nil && o.webRegister != "open" && o.webRegister != "token" {
		envErr = fmt.Errorf("--web.register=%q: want open or token", o.webRegister)
	}
	return o, fs.Args(), envErr
}

// envName maps a flag name to its environment variable:
// web.addr -> STRATUM_PROXY_WEB_ADDR.
func envName(flagName string) string {
	r := strings.NewReplacer(".", "_", "-", "_")
	return "STRATUM_PROXY_" + strings.ToUpper(r.Replace(flagName))
}

func init() {
	// Durations in logs carry their unit ("1.5s", "250ms"), in both formats,
	// instead of zerolog's bare float of milliseconds. zerolog reads this
	// global; it is set once here, before any logger exists.
	zerolog.DurationFieldFormat = zerolog.DurationFormatString
}

// newLogger builds the process logger writing to w. The console format
// is coloured only when w is a terminal, so files and pipes get no escape
// codes.
func newLogger(level, format string, w io.Writer) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil {
		return zerolog.Nop(), fmt.Errorf("--log.level: %w", err)
	}
	switch format {
	case "json":
	case "console":
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339, NoColor: !isTerminal(w)}
	default:
		return zerolog.Nop(), fmt.Errorf("--log.format: %q is neither console nor json", format)
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

// drainTimeout is the drain proxy.Server.Stop does for cfg.
func drainTimeout(cfg proxy.Config) time.Duration {
	if cfg.DrainTimeout <= 0 {
		return defaultDrainTimeout
	}
	return cfg.DrainTimeout
}

// stopTimeout bounds proxy.Server.Stop: longer than its drain, so that a
// drain that takes its whole time is not cut short by our own deadline.
func stopTimeout(cfg proxy.Config) time.Duration { return drainTimeout(cfg) + stopGrace }

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

func serve(o *options, st store.Store, log zerolog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	// The `proxy` label defaults to the bound stratum address, known only
	// after binding; the registry takes its tag before any series exists.
	mcfg := metrics.Config{WorkerLabel: o.workerLabel, Window: o.window, Step: o.step}
	if err := mcfg.Validate(); err != nil {
		return err
	}
	reg := metrics.New(mcfg)
	certs, poolRoots, err := o.tls.setup()
	if err != nil {
		return err
	}
	cfg := o.proxy
	cfg.Addr = o.stratumAddr
	cfg.PoolRootCAs = poolRoots
	if o.tls.stratumAddr != "" {
		cfg.TLSAddr, cfg.TLSCertificate = o.tls.stratumAddr, certs.get
	}
	// SIGHUP reloads the TLS certificate; without one it is only logged
	// (never the default: exit).
	hupDone := make(chan struct{})
	defer close(hupDone)
	go certs.watchSIGHUP(hupDone, log)
	cfg.Store = st
	cfg.Metrics = reg
	cfg.Log = log
	srv, err := proxy.New(cfg)
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	tag := o.metricsTag
	if tag == "" {
		tag = srv.Addr()
	}
	reg.SetTag(tag)
	reg.Start()
	defer reg.Stop()

	token, tokenFile, err := authToken(o.webToken, o.dbPath)
	if err != nil {
		_ = srv.Stop(context.Background())
		return err
	}
	if tokenFile != "" {
		log.Info().Str("file", tokenFile).Msg("management API token (--web.auth-token was not given)")
	}
	if o.usersTTL > 0 {
		go expireUsers(ctx, st, srv, reg, o.usersTTL, log)
	}
	api := httpapi.New(httpapi.Config{
		Addr:               o.webAddr,
		Store:              st,
		Metrics:            reg.WritePrometheus,
		Log:                log,
		AuthToken:          token,
		RegisterNeedsToken: o.webRegister == "token",
		Live:               srv,
		Registry:           reg,
		Version:            proxy.Version,
		// Registrations past the rate are counted with the proxy's other
		// refusals, so one alert covers hostile load.
		RegisterRate:  o.regRate,
		OnRateLimited: func() { reg.Dropped(metrics.DropRegistrationRate) },
	})
	ln, err := net.Listen("tcp", o.webAddr)
	if err != nil {
		_ = srv.Stop(context.Background())
		return fmt.Errorf("web listen %s: %w", o.webAddr, err)
	}
	if o.tls.web {
		ln = tls.NewListener(ln, &tls.Config{GetCertificate: certs.get, MinVersion: tls.VersionTLS12})
	}
	apiErr := make(chan error, 1)
	go func() { apiErr <- api.Serve(ln) }()
	log.Info().Str("version", proxy.Version).Str("stratum", srv.Addr()).Str("stratum_tls", srv.TLSAddr()).
		Str("web", ln.Addr().String()).Bool("web_tls", o.tls.web).Str("db", o.dbPath).
		Str("mode", cfg.Mode).Msg("stratum-proxy serving")

	select {
	case <-ctx.Done():
	case err := <-apiErr:
		if err != nil {
			log.Error().Err(err).Msg("HTTP server failed")
		}
	}
	log.Info().Dur("drain_timeout", drainTimeout(cfg)).Msg("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), stopTimeout(cfg))
	defer cancel()
	_ = api.Shutdown()
	if err := srv.Stop(sctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
