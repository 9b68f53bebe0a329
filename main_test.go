package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stratum-proxy/stratum-proxy/bench/miner"
	"github.com/stratum-proxy/stratum-proxy/bench/poolsim"
	"github.com/stratum-proxy/stratum-proxy/proxy"
)

// binPath is the stratum-proxy binary built once for these tests.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "stratum-proxy-bin")
	if err != nil {
		panic(err)
	}
	binPath = filepath.Join(dir, "stratum-proxy")
	if out, err := exec.Command("go", "build", "-race", "-o", binPath, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// needTool returns the path of an installed program, skipping the test
// when it is absent, except under CI=true where its absence is a failure.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed (CI=true requires it: apt-get install prometheus)", name)
		}
		t.Skipf("%s is not installed; install Debian's prometheus package to run this test", name)
	}
	return p
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// proxyProc is the real binary serving on loopback.
type proxyProc struct {
	stratum, web string
	version      string // from the start log line
	cmd          *exec.Cmd
	logs         *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func runCLI(t *testing.T, db string, args ...string) string {
	t.Helper()
	out, err := exec.Command(binPath, append([]string{"--db.path", db}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("stratum-proxy %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func startProxy(t *testing.T, db string, extra ...string) *proxyProc {
	t.Helper()
	web := freePort(t)
	args := append([]string{"--db.path", db, "--stratum.addr", "127.0.0.1:0", "--web.addr", web,
		"--log.format", "json", "--log.level", "debug", "--metrics.tag", "it", "--web.auth-token", itToken}, extra...)
	cmd := exec.Command(binPath, args...)
	logs := &syncBuffer{}
	pr, pw := io.Pipe()
	cmd.Stderr = io.MultiWriter(logs, pw)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proxyProc{web: web, cmd: cmd, logs: logs}
	t.Cleanup(func() {
		if cmd.ProcessState != nil { // the test stopped and waited for it
			pw.Close()
			return
		}
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("proxy exit: %v\n%s", err, logs.String())
			}
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("proxy did not stop on SIGINT")
		}
		pw.Close()
	})
	type startLine struct{ Message, Stratum, Version string }
	found := make(chan startLine, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			var rec startLine
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Message == "stratum-proxy serving" {
				found <- rec
			}
		}
	}()
	select {
	case rec := <-found:
		p.stratum, p.version = rec.Stratum, rec.Version
	case <-time.After(20 * time.Second):
		t.Fatalf("proxy did not start:\n%s", logs.String())
	}
	go io.Copy(io.Discard, pr)
	return p
}

func (p *proxyProc) post(t *testing.T, body string) (int, map[string]string) {
	t.Helper()
	resp, err := http.Post("http://"+p.web+"/api/v1/users", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("answer is not JSON: %v", err)
	}
	return resp.StatusCode, out
}

func (p *proxyProc) scrape(t *testing.T) string {
	t.Helper()
	resp, err := http.Get("http://" + p.web + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// setup starts a validating pool simulator, adds it with the pool
// subcommand, starts the binary and registers a user through the API.
func setup(t *testing.T, extra ...string) (*proxyProc, *poolsim.Server, string) {
	t.Helper()
	pool, err := poolsim.Start(poolsim.Config{Difficulty: 1e-6})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	db := filepath.Join(t.TempDir(), "proxy.db")
	runCLI(t, db, "pool", "add", pool.Addr(), "sha256")
	if out := runCLI(t, db, "pool", "list"); !strings.Contains(out, pool.Addr()) {
		t.Fatalf("pool list lacks the new pool:\n%s", out)
	}
	p := startProxy(t, db, extra...)
	code, ans := p.post(t, fmt.Sprintf(`{"pool":%q,"user":"acct","password":"s3cret-pw"}`, pool.Addr()))
	if code != http.StatusCreated || len(ans["name"]) != 16 {
		t.Fatalf("register: %d %v", code, ans)
	}
	return p, pool, ans["name"]
}

func mine(t *testing.T, addr, user string, shares int) *miner.Miner {
	t.Helper()
	m, err := miner.Dial(miner.Config{Addr: addr, User: user, Password: "x", Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < shares; i++ {
		sh, err := m.Mine(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if ok, code, msg, err := m.Submit(ctx, sh); !ok || err != nil {
			t.Fatalf("share: %v %d %s %v", ok, code, msg, err)
		}
	}
	return m
}

func TestBinaryRegistersMinesAndExports(t *testing.T) {
	p, pool, name := setup(t)
	if p.version != proxy.Version {
		t.Errorf("start log line has version %q; want %q", p.version, proxy.Version)
	}
	// Registering the same account again gives the same name.
	code, ans := p.post(t, fmt.Sprintf(`{"pool":%q,"user":"acct","password":"s3cret-pw"}`, pool.Addr()))
	if code != http.StatusOK || ans["name"] != name {
		t.Fatalf("re-register: %d %v", code, ans)
	}
	for _, bad := range []string{`{"pool":"nowhere.example:1","user":"a","password":"x"}`, `{"user":"a"}`, `{not json`} {
		if code, ans := p.post(t, bad); code < 400 || code > 499 || ans["error"] == "" || ans["name"] != "" {
			t.Fatalf("bad registration %s answered %d %v", bad, code, ans)
		}
	}
	m := mine(t, p.stratum, name+".rig7", 3)
	defer m.Close()
	if pool.Stats().Accepted != 3 {
		t.Fatalf("pool stats %+v", pool.Stats())
	}
	text := p.scrape(t)
	for _, want := range []string{
		`proxy_worker_accepted{proxy="it",worker="`,
		`proxy_worker_up{proxy="it",worker="`,
		`proxy_pool_up{proxy="it",hash="sha256",pool="` + pool.Addr() + `"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Fatalf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(text, "s3cret-pw") || strings.Contains(p.logs.String(), "s3cret-pw") {
		t.Fatal("the pool password leaked into /metrics or the logs")
	}
}

// TestPromtoolChecksLiveScrape runs promtool on /metrics with a miner
// connected: only the four original counter names may be flagged.
func TestPromtoolChecksLiveScrape(t *testing.T) {
	promtool := needTool(t, "promtool")
	p, _, name := setup(t)
	m := mine(t, p.stratum, name, 2)
	defer m.Close()
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(p.scrape(t))
	out, _ := cmd.CombinedOutput()
	allowed := []string{"proxy_worker_sended", "proxy_worker_one_sended", "proxy_worker_accepted", "proxy_worker_one_accepted"}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		ok := false
		for _, a := range allowed {
			if strings.HasPrefix(line, a+" ") && strings.Contains(line, "_total") {
				ok = true
			}
		}
		if !ok {
			t.Errorf("promtool: %s", line)
		}
	}
}

// TestPrometheusScrapesWorkerSeries starts a real Prometheus scraping the
// proxy every second and waits until it has a mining worker's accepted
// counter and hashrate.
func TestPrometheusScrapesWorkerSeries(t *testing.T) {
	prom := needTool(t, "prometheus")
	p, _, name := setup(t, "--metrics.window", "10s", "--metrics.step", "1s")
	m := mine(t, p.stratum, name, 5)
	defer m.Close()

	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: proxy\n    static_configs:\n      - targets: [%q]\n", p.web)), 0o644)
	promAddr := freePort(t)
	cmd := exec.Command(prom, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr)
	var plog syncBuffer
	cmd.Stdout, cmd.Stderr = &plog, &plog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	query := func(q string) float64 {
		resp, err := http.Get("http://" + promAddr + "/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			return -1
		}
		defer resp.Body.Close()
		var r struct {
			Data struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if json.NewDecoder(resp.Body).Decode(&r) != nil || len(r.Data.Result) == 0 {
			return -1
		}
		var v float64
		fmt.Sscan(fmt.Sprint(r.Data.Result[0].Value[1]), &v)
		return v
	}
	deadline := time.Now().Add(60 * time.Second)
	accepted, speed := -1.0, -1.0
	for time.Now().Before(deadline) {
		accepted = query(fmt.Sprintf(`proxy_worker_accepted{user=%q}`, name))
		speed = query(fmt.Sprintf(`proxy_worker_speed{user=%q}`, name))
		if accepted >= 5 && speed > 0 {
			t.Logf("Prometheus sees proxy_worker_accepted=%v proxy_worker_speed=%v H/s", accepted, speed)
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("Prometheus never saw the worker: accepted=%v speed=%v\n%s", accepted, speed, plog.String())
}

// runBinary runs the binary with args and extra environment and returns
// its stdout, stderr and exit code.
func runBinary(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("stratum-proxy %v: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

func TestVersionFlag(t *testing.T) {
	db := filepath.Join(t.TempDir(), "proxy.db")
	want := "stratum-proxy " + proxy.Version + "\n"
	for _, arg := range []string{"--version", "-version"} {
		out, errOut, code := runBinary(t, nil, "--db.path", db, arg)
		if code != 0 || out != want || errOut != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 0 and %q", arg, code, out, errOut, want)
		}
	}
	if _, err := os.Stat(db); err == nil {
		t.Error("--version opened (created) the database")
	}
	// An image's version label in the environment is not --version: the
	// proxy goes on to its subcommand.
	out, _, code := runBinary(t, []string{"STRATUM_PROXY_VERSION=1.2.3"}, "--db.path", db, "algo", "list")
	if code != 0 || !strings.Contains(out, "sha256") {
		t.Errorf("STRATUM_PROXY_VERSION set: exit %d, stdout %q; want the algorithm list", code, out)
	}
}

func TestHelpFlag(t *testing.T) {
	for _, arg := range []string{"-h", "--help", "-help"} {
		out, errOut, code := runBinary(t, nil, arg)
		if code != 0 || !strings.HasPrefix(out, "Usage: stratum-proxy") || !strings.Contains(out, "-upstream.give-up") || errOut != "" {
			t.Errorf("%s: exit %d, stderr %q, stdout:\n%s\nwant exit 0 and the usage on stdout", arg, code, errOut, out)
		}
	}
	// A mistake still fails, with the usage on stderr.
	out, errOut, code := runBinary(t, nil, "--no-such-flag")
	if code == 0 || out != "" || !strings.Contains(errOut, "no-such-flag") || !strings.Contains(errOut, "Usage: stratum-proxy") {
		t.Errorf("unknown flag: exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}
}

// TestConsoleLogPlainOffTerminal: a log written to a buffer, a file or a
// pipe has no colour escapes, and durations carry their unit.
func TestConsoleLogPlainOffTerminal(t *testing.T) {
	var buf bytes.Buffer
	log, err := newLogger("info", "console", &buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Info().Err(io.EOF).Dur("wait", 1500*time.Millisecond).Msg("pool asked to reconnect")
	out := buf.String()
	if strings.ContainsRune(out, 0x1b) {
		t.Errorf("console log to a buffer has escape codes: %q", out)
	}
	if !strings.Contains(out, "wait=1.5s") || !strings.Contains(out, "pool asked to reconnect") {
		t.Errorf("console log %q; want wait=1.5s and the message", out)
	}

	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Error("a regular file counts as a terminal")
	}

	buf.Reset()
	if log, err = newLogger("info", "json", &buf); err != nil {
		t.Fatal(err)
	}
	log.Info().Dur("took", 250*time.Millisecond).Msg("x")
	if !strings.Contains(buf.String(), `"took":"250ms"`) {
		t.Errorf("json log %q; want \"took\":\"250ms\"", buf.String())
	}
}

// TestUpstreamLimitDrainFlags checks each flag of the pool handshake,
// give-up, keepalive, queue and drain settings: its default, the command
// line and its STRATUM_PROXY_* variable.
func TestUpstreamLimitDrainFlags(t *testing.T) {
	type field func(*proxy.Config) any
	cases := []struct {
		flag     string
		get      field
		def      any
		arg, env string
		fromArg  any
		fromEnv  any
	}{
		{"upstream.handshake-timeout", func(c *proxy.Config) any { return c.PoolHandshakeTimeout }, 10 * time.Second, "3s", "4s", 3 * time.Second, 4 * time.Second},
		{"upstream.give-up", func(c *proxy.Config) any { return c.GiveUp }, 60 * time.Second, "2m", "90s", 2 * time.Minute, 90 * time.Second},
		{"upstream.keepalive", func(c *proxy.Config) any { return c.Keepalive }, 90 * time.Second, "30s", "45s", 30 * time.Second, 45 * time.Second},
		{"upstream.authorize-wait", func(c *proxy.Config) any { return c.AuthorizeWait }, 10 * time.Second, "1s", "2s", time.Second, 2 * time.Second},
		{"upstream.backoff-min", func(c *proxy.Config) any { return c.BackoffMin }, 250 * time.Millisecond, "1s", "500ms", time.Second, 500 * time.Millisecond},
		{"limits.max-pool-queue", func(c *proxy.Config) any { return c.MaxPoolQueue }, 1 << 20, "4096", "8192", 4096, 8192},
		{"limits.max-inflight", func(c *proxy.Config) any { return c.MaxInflight }, 256, "16", "32", 16, 32},
		{"limits.max-partial-bytes", func(c *proxy.Config) any { return c.MaxPartialBytes }, int64(64 << 20), "1048576", "2097152", int64(1 << 20), int64(2 << 20)},
		{"limits.account-switch-interval", func(c *proxy.Config) any { return c.AccountSwitchInterval }, 5 * time.Second, "1s", "10s", time.Second, 10 * time.Second},
		{"shutdown.drain-timeout", func(c *proxy.Config) any { return c.DrainTimeout }, 5 * time.Second, "20s", "30s", 20 * time.Second, 30 * time.Second},
		{"limits.max-outbound-total", func(c *proxy.Config) any { return c.MaxOutboundTotal }, int64(1 << 30), "65536", "131072", int64(65536), int64(131072)},
		{"limits.per-address-connections", func(c *proxy.Config) any { return c.MaxConnsPerAddr }, 0, "100", "200", 100, 200},
		{"limits.per-address-rate", func(c *proxy.Config) any { return c.ConnRatePerAddr }, 0.0, "5", "2.5", 5.0, 2.5},
		{"session.max-detached", func(c *proxy.Config) any { return c.MaxDetached }, 200_000, "1000", "5000", 1000, 5000},
		{"vardiff.rate", func(c *proxy.Config) any { return c.VardiffRate }, 15.0, "6", "30", 6.0, 30.0},
		{"vardiff.start", func(c *proxy.Config) any { return c.VardiffStart }, 1.0, "1000", "0.5", 1000.0, 0.5},
		{"vardiff.floor", func(c *proxy.Config) any { return c.VardiffFloor }, 0.001, "1e-6", "0.01", 1e-6, 0.01},
		{"vardiff.interval", func(c *proxy.Config) any { return c.VardiffInterval }, 30 * time.Second, "10s", "1m", 10 * time.Second, time.Minute},
	}
	parse := func(args ...string) *options {
		t.Helper()
		o, _, err := parseFlags(args, io.Discard, io.Discard)
		if err != nil {
			t.Fatalf("parseFlags(%v): %v", args, err)
		}
		return o
	}
	for _, c := range cases {
		t.Run(c.flag, func(t *testing.T) {
			if got := c.get(&parse().proxy); got != c.def {
				t.Errorf("default %v; want %v", got, c.def)
			}
			if got := c.get(&parse("--"+c.flag, c.arg).proxy); got != c.fromArg {
				t.Errorf("--%s=%s gives %v; want %v", c.flag, c.arg, got, c.fromArg)
			}
			t.Setenv(envName(c.flag), c.env)
			if got := c.get(&parse().proxy); got != c.fromEnv {
				t.Errorf("%s=%s gives %v; want %v", envName(c.flag), c.env, got, c.fromEnv)
			}
			if got := c.get(&parse("--"+c.flag, c.arg).proxy); got != c.fromArg {
				t.Errorf("flag and environment: %v; want the flag's %v", got, c.fromArg)
			}
		})
	}
}

// TestVardiffFlag: --vardiff=false (or STRATUM_PROXY_VARDIFF=false) turns
// per-miner difficulty and share checking off; it is on by default.
func TestVardiffFlag(t *testing.T) {
	parse := func(args ...string) bool {
		t.Helper()
		o, _, err := parseFlags(args, io.Discard, io.Discard)
		if err != nil {
			t.Fatalf("parseFlags(%v): %v", args, err)
		}
		return o.proxy.NoVardiff
	}
	if parse() {
		t.Error("vardiff off by default")
	}
	if !parse("--vardiff=false") {
		t.Error("--vardiff=false leaves it on")
	}
	t.Setenv("STRATUM_PROXY_VARDIFF", "false")
	if !parse() {
		t.Error("STRATUM_PROXY_VARDIFF=false leaves it on")
	}
	if parse("--vardiff=true") {
		t.Error("the flag does not win over the environment")
	}
}

// TestStopTimeoutOutlastsDrain: serve gives Stop the drain plus five
// seconds, for the default drain (a zero DrainTimeout) too.
func TestStopTimeoutOutlastsDrain(t *testing.T) {
	f := func(drain, want time.Duration) {
		t.Helper()
		if got := stopTimeout(proxy.Config{DrainTimeout: drain}); got != want {
			t.Errorf("stopTimeout(drain %v) = %v; want %v", drain, got, want)
		}
	}
	f(0, 10*time.Second)
	f(5*time.Second, 10*time.Second)
	f(time.Minute, time.Minute+5*time.Second)
	f(100*time.Millisecond, 5100*time.Millisecond)
}

// TestBinaryBusyStratumPort starts the binary on a stratum port another
// listener holds: it must exit 1 at once and say "address already in
// use" with the address, not gnet's "setsockopt: bad file descriptor".
func TestBinaryBusyStratumPort(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	addr := held.Addr().String()
	db := filepath.Join(t.TempDir(), "proxy.db")
	_, errOut, code := runBinary(t, nil, "--db.path", db, "--stratum.addr", addr, "--web.addr", freePort(t), "--log.format", "json")
	want := "stratum-proxy: proxy: listen " + addr + ": address already in use\n"
	if code != 1 || !strings.HasSuffix(errOut, want) {
		t.Errorf("busy stratum port: exit %d, stderr:\n%s\nwant exit 1 ending in %q", code, errOut, want)
	}
}

// TestBinarySIGTERMDrainsShares: SIGTERM with shares in flight to a slow
// pool: the binary waits for the pool's answers, every miner hears its
// share accepted, and the process exits 0 (before: 75 in flight, 0
// answered, exit in 0.52 s).
func TestBinarySIGTERMDrainsShares(t *testing.T) {
	pool, err := poolsim.Start(poolsim.Config{Difficulty: 1e-6, ShareDelay: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	db := filepath.Join(t.TempDir(), "proxy.db")
	runCLI(t, db, "pool", "add", pool.Addr(), "sha256")
	p := startProxy(t, db, "--shutdown.drain-timeout", "10s")
	code, ans := p.post(t, fmt.Sprintf(`{"pool":%q,"user":"acct","password":"x"}`, pool.Addr()))
	if code != http.StatusCreated {
		t.Fatalf("register: %d %v", code, ans)
	}
	const n = 5
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	type result struct {
		ok  bool
		err error
	}
	results := make(chan result, n)
	for i := 0; i < n; i++ {
		m, err := miner.Dial(miner.Config{Addr: p.stratum, User: fmt.Sprintf("%s.rig%d", ans["name"], i), Password: "x", Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		sh, err := m.Mine(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			ok, _, _, err := m.Submit(ctx, sh)
			results <- result{ok, err}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for pool.Stats().Submits < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling the pool, which holds the answers for 1 s
	}
	if pool.Stats().Submits < n {
		t.Fatalf("only %d of %d shares reached the pool", pool.Stats().Submits, n)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if r := <-results; !r.ok || r.err != nil {
			t.Errorf("a share in flight at SIGTERM: ok=%v err=%v, want accepted", r.ok, r.err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the proxy did not exit after SIGTERM")
	}
}

// TestBinaryKillDuringRegistrations: kill -9 the binary at a random moment
// of a registration loop, ten times; after each restart on the same
// database every name that was answered 201 still resolves, with its pool.
func TestBinaryKillDuringRegistrations(t *testing.T) {
	if testing.Short() {
		t.Skip("ten kill -9 rounds: skipped in -short")
	}
	db := filepath.Join(t.TempDir(), "proxy.db")
	const pool = "127.0.0.1:3333"
	runCLI(t, db, "pool", "add", pool, "sha256")
	var names []string
	seq := 0
	for round := 0; round < 10; round++ {
		p := startProxy(t, db)
		stop := make(chan struct{})
		got := make(chan []string, 1)
		go func() {
			var ok []string
			client := &http.Client{Timeout: 2 * time.Second}
			for i := 0; ; i++ {
				select {
				case <-stop:
					got <- ok
					return
				default:
				}
				body := fmt.Sprintf(`{"pool":%q,"user":"kill%d.r%d","password":"x"}`, pool, seq+i, round)
				resp, err := client.Post("http://"+p.web+"/api/v1/users", "application/json", strings.NewReader(body))
				if err != nil {
					continue // the kill landed: keep going until told to stop
				}
				var ans map[string]string
				_ = json.NewDecoder(resp.Body).Decode(&ans)
				resp.Body.Close()
				if resp.StatusCode == http.StatusCreated {
					ok = append(ok, ans["name"])
				}
			}
		}()
		time.Sleep(time.Duration(20+rand.IntN(180)) * time.Millisecond) // the random moment: the scenario, not a synchronisation
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = p.cmd.Wait()
		close(stop)
		names = append(names, <-got...)
		seq += 1000

		// Restart on the same file: every acknowledged name is there.
		q := startProxy(t, db)
		for _, name := range names {
			req, _ := http.NewRequest(http.MethodGet, "http://"+q.web+"/api/v1/users/"+name, nil)
			req.Header.Set("Authorization", "Bearer "+itToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), pool) {
				t.Fatalf("round %d: %s was answered 201 before kill -9, now %d %s", round, name, resp.StatusCode, b)
			}
		}
		_ = q.cmd.Process.Signal(os.Interrupt)
		_ = q.cmd.Wait()
	}
	if len(names) == 0 {
		t.Fatal("no registration was acknowledged in ten rounds")
	}
	t.Logf("%d acknowledged registrations survived 10 kill -9 rounds", len(names))
}

// itToken is the management API token the binary tests start the proxy with.
const itToken = "it-token"

// TestBinaryManagementTokenFile: started without --web.auth-token, the
// proxy keeps a random token in a 0600 file beside its store, logs the
// file's path and never the token, and the management API needs it.
func TestBinaryManagementTokenFile(t *testing.T) {
	dir := t.TempDir()
	p := startProxy(t, filepath.Join(dir, "proxy.db"), "--web.auth-token", "")
	file := filepath.Join(dir, tokenFileName)
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(b))
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v", fi.Mode())
	}
	if logs := p.logs.String(); !strings.Contains(logs, file) || strings.Contains(logs, token) {
		t.Fatalf("the log must name the file and not the token:\n%s", logs)
	}
	get := func(tok string) int {
		req, _ := http.NewRequest(http.MethodGet, "http://"+p.web+"/api/v1/users", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := get(""); c != 401 {
		t.Fatalf("listing without the token: %d", c)
	}
	if c := get(token); c != 200 {
		t.Fatalf("listing with the file's token: %d", c)
	}
}
