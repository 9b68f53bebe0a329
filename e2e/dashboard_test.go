// Package e2e drives the operator dashboard in a real headless Chromium
// against the real proxy binary, a pool simulator and test miners, all on
// 127.0.0.1.
//
//	go test ./e2e -run Dashboard                     # screenshot in the log's artifact path
//	UPDATE_SCREENSHOT=1 go test ./e2e -run Dashboard # also rewrites docs/dashboard.png
//
// Without /usr/bin/chromium (or $CHROMIUM) the test skips, except under
// CI=true, where that is a failure.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/stratum-proxy/stratum-proxy/bench/miner"
	"github.com/stratum-proxy/stratum-proxy/bench/poolsim"
)

const (
	token    = "e2e-token-5d1c"
	xssRig   = `<img src=x onerror=alert(1)>`
	xssUser  = `<img src=x onerror=alert(2)>`
	tokenKey = "stratum-proxy.token"
)

var nameRE = regexp.MustCompile(`^[0-9a-f]{16}$`)

// transport carries every HTTP request of the test (API calls and the
// front server's forwarding); its idle connections are closed before the
// proxy stops, so the proxy's shutdown does not answer on them.
var transport = &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 8}

// chromiumPath finds the browser or skips (fails under CI=true).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed at /usr/bin/chromium (CI=true requires it: apt-get install -y chromium)")
	}
	t.Skip("chromium is not installed at /usr/bin/chromium; apt-get install -y chromium (or set $CHROMIUM) to run the dashboard test")
	return ""
}

// repoRoot is the module root: the parent of this package's directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(wd)
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no go.mod above %s", wd)
	}
	return root
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
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

// proxyProc is the real binary serving on loopback.
type proxyProc struct {
	stratum, web string
	logs         *syncBuffer
}

// startProxy builds the binary, adds pool with the pool subcommand and
// starts serving with the auth token.
func startProxy(t *testing.T, root, pool string) *proxyProc {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "stratum-proxy")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	db := filepath.Join(dir, "proxy.db")
	if out, err := exec.Command(bin, "--db.path", db, "pool", "add", pool, "sha256").CombinedOutput(); err != nil {
		t.Fatalf("pool add: %v\n%s", err, out)
	}
	web := freeAddr(t)
	cmd := exec.Command(bin, "--db.path", db, "--stratum.addr", "127.0.0.1:0", "--web.addr", web,
		"--web.auth-token", token, "--log.format", "json", "--metrics.window", "20s", "--metrics.step", "1s",
		"--vardiff.start", "0.000001", "--vardiff.floor", "0.000001")
	logs := &syncBuffer{}
	pr, pw := io.Pipe()
	cmd.Stderr = io.MultiWriter(logs, pw)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("proxy did not stop on SIGINT")
		}
		pw.Close()
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			var rec struct{ Message, Stratum string }
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Message == "stratum-proxy serving" {
				select {
				case found <- rec.Stratum:
				default:
				}
			}
		}
	}()
	select {
	case s := <-found:
		return &proxyProc{stratum: s, web: web, logs: logs}
	case <-time.After(20 * time.Second):
		t.Fatalf("proxy did not start:\n%s", logs.String())
	}
	return nil
}

// call sends an API request with the token; body may be nil. It returns
// the status and the decoded JSON (nil when the answer is not JSON).
func call(t *testing.T, base, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	c := &http.Client{Transport: transport, Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// endpointMissing reports whether an answer means the endpoint is not in
// this proxy version (404 from the router, or 405 for a route that has
// only other methods).
func endpointMissing(status int) bool {
	return status == http.StatusNotFound || status == http.StatusMethodNotAllowed
}

// dashboardBase is where the browser loads the page. Once the router
// calls serveUI it is the binary itself. Until then a small front server
// here serves httpapi/ui from disk, with the same headers, and forwards
// everything else to the binary: one origin, so the page's CSP and API
// calls work as they will.
func dashboardBase(t *testing.T, root, web string) string {
	t.Helper()
	base := "http://" + web
	resp, err := (&http.Client{Transport: transport, Timeout: 10 * time.Second}).Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK && bytes.Contains(b, []byte(`/ui/app.js`)) {
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("GET / has Content-Security-Policy %q", csp)
		}
		return base
	}
	t.Fatalf("the binary does not serve the dashboard at / (status %d)", resp.StatusCode)
	return ""
}

// uiHandler serves httpapi/ui from disk as serveUI does ("/" and
// "/ui/<file>", same CSP) and passes every other request to next.
func uiHandler(root string, next http.Handler) http.Handler {
	ui := filepath.Join(root, "httpapi", "ui")
	types := map[string]string{".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := ""
		switch {
		case r.URL.Path == "/":
			name = "index.html"
		case strings.HasPrefix(r.URL.Path, "/ui/") && !strings.Contains(r.URL.Path[4:], "/"):
			name = r.URL.Path[4:]
		default:
			next.ServeHTTP(w, r)
			return
		}
		b, err := os.ReadFile(filepath.Join(ui, name))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", types[filepath.Ext(name)])
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(b)
	})
}

// serveLocal serves h on a free 127.0.0.1 port until the test ends and
// returns its base URL.
func serveLocal(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// keepMining connects a miner as user and submits shares until ctx ends
// (at most 2 per second, at most 600 in all), so the proxy has hashrate.
func keepMining(t *testing.T, ctx context.Context, wg *sync.WaitGroup, addr, user string) *miner.Miner {
	t.Helper()
	m, err := miner.Dial(miner.Config{Addr: addr, User: user, Password: "x", UserAgent: "e2e/" + user, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("miner %s: %v", user, err)
	}
	t.Cleanup(func() { _ = m.Close() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 600 && ctx.Err() == nil && !m.Closed(); i++ {
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if sh, err := m.Mine(sctx, 0); err == nil {
				_, _, _, _ = m.Submit(sctx, sh)
			}
			cancel()
			select {
			case <-ctx.Done():
			case <-m.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	return m
}

// browser is one headless Chromium tab with the dialog and exception
// watchers attached.
type browser struct {
	ctx        context.Context
	mu         sync.Mutex
	dialogs    []string
	exceptions []string
}

func newBrowser(t *testing.T, exe string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox, // root in CI containers
		chromedp.DisableGPU,
		chromedp.WindowSize(1400, 1000),
		chromedp.Flag("no-proxy-server", true),
		chromedp.Flag("lang", "en-US"),
	)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(acancel)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancel)
	ctx, tcancel := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(tcancel)
	b := &browser{ctx: ctx}
	if err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *page.EventJavascriptDialogOpening:
			b.mu.Lock()
			b.dialogs = append(b.dialogs, string(ev.Type)+": "+ev.Message)
			b.mu.Unlock()
			// A dialog blocks the page: close it from another goroutine
			// (no command may run inside the listener).
			go func() {
				_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
			}()
		case *runtime.EventExceptionThrown:
			b.mu.Lock()
			msg := ev.ExceptionDetails.Text
			if ev.ExceptionDetails.Exception != nil && ev.ExceptionDetails.Exception.Description != "" {
				msg += " " + ev.ExceptionDetails.Exception.Description
			}
			b.exceptions = append(b.exceptions, msg)
			b.mu.Unlock()
		}
	}); err != nil {
		t.Fatalf("chromedp.Listen: %v", err)
	}
	return b
}

func (b *browser) check(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.dialogs) > 0 {
		t.Fatalf("the page opened JavaScript dialogs (injected markup ran?): %q", b.dialogs)
	}
	if len(b.exceptions) > 0 {
		t.Fatalf("uncaught exceptions in the page: %q", b.exceptions)
	}
}

// do runs actions, failing the test on error.
func (b *browser) do(t *testing.T, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression for a value of type T.
func eval[T any](t *testing.T, b *browser, expr string) T {
	t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitJS polls a JavaScript condition every 200 ms for up to d.
func waitJS(t *testing.T, b *browser, what, cond string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool]("!!("+cond+")"))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s (%s); last error %v", d, what, cond, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestDashboard(t *testing.T) {
	exe := chromiumPath(t)
	root := repoRoot(t)

	pool, err := poolsim.Start(poolsim.Config{Difficulty: 1e-6})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	p := startProxy(t, root, pool.Addr())
	t.Cleanup(transport.CloseIdleConnections) // runs before the proxy stops
	api := "http://" + p.web

	// A login through the API, and one whose pool user is markup.
	code, ans := call(t, api, "POST", "/api/v1/users", map[string]string{"pool": pool.Addr(), "user": "acct", "password": "pw"})
	name, _ := ans["name"].(string)
	if code != http.StatusCreated || !nameRE.MatchString(name) {
		t.Fatalf("register: %d %v", code, ans)
	}
	if code, ans := call(t, api, "POST", "/api/v1/users", map[string]string{"pool": pool.Addr(), "user": xssUser, "password": "pw"}); code != http.StatusCreated {
		t.Fatalf("register %q: %d %v", xssUser, code, ans)
	}

	mctx, mcancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { mcancel(); wg.Wait() })
	keepMining(t, mctx, &wg, p.stratum, name+".rig1")
	kickMe := keepMining(t, mctx, &wg, p.stratum, name+".rig2")
	keepMining(t, mctx, &wg, p.stratum, name+"."+xssRig)

	base := dashboardBase(t, root, p.web)
	b := newBrowser(t, exe)

	// Load the page, enter the token through the form (kept in localStorage).
	b.do(t, "load the page", chromedp.Navigate(base+"/"), chromedp.WaitVisible("#token-form"))
	b.do(t, "enter the token", chromedp.SendKeys("#token", token), chromedp.Click(`#token-form button[type="submit"]`))
	if got := eval[string](t, b, "localStorage.getItem("+jsString(tokenKey)+")"); got != token {
		t.Fatalf("token in localStorage is %q", got)
	}

	// Users: both logins listed; the markup user name is plain text.
	waitJS(t, b, "the users table", `document.querySelectorAll('#users-body tr.user').length >= 2`, 15*time.Second)
	if !eval[bool](t, b, `[...document.querySelectorAll('#users-body tr.user td')].some(td => td.textContent === `+jsString(xssUser)+`)`) {
		t.Errorf("no users cell has the text %q", xssUser)
	}
	// Pools: the simulator's pool is listed.
	waitJS(t, b, "the pool row", `[...document.querySelectorAll('#pools-body tr.pool')].some(tr => tr.dataset.addr === `+jsString(pool.Addr())+`)`, 15*time.Second)

	// Totals and workers need the stats and workers endpoints.
	statsStatus, stats := call(t, api, "GET", "/api/v1/stats", nil)
	workersStatus, _ := call(t, api, "GET", "/api/v1/workers?limit=1", nil)
	t.Run("totals", func(t *testing.T) {
		if endpointMissing(statsStatus) {
			t.Fatalf("GET /api/v1/stats answers %d: the management API must answer", statsStatus)
		}
		waitJS(t, b, "3 miners in the totals", `document.getElementById('t-miners').textContent === '3'`, 20*time.Second)
		waitJS(t, b, "a hashrate in H/s units", `/ [kMGTPE]?H\/s$/.test(document.getElementById('t-hashrate').textContent)`, 20*time.Second)
	})
	if !endpointMissing(statsStatus) {
		// the panel must not claim to be unavailable
		if txt := eval[string](t, b, `document.querySelector('.panel-status[data-for="totals"]').textContent`); txt != "" {
			t.Errorf("totals panel says %q", txt)
		}
	} else if txt := eval[string](t, b, `document.querySelector('.panel-status[data-for="totals"]').textContent`); !strings.Contains(txt, "not available") {
		t.Errorf("totals panel without /api/v1/stats says %q; want 'not available'", txt)
	}

	t.Run("workers", func(t *testing.T) {
		if endpointMissing(workersStatus) {
			t.Fatalf("GET /api/v1/workers answers %d: the management API must answer", workersStatus)
		}
		waitJS(t, b, "3 worker rows", `document.querySelectorAll('#workers-body tr.worker').length === 3`, 20*time.Second)
		cells := eval[[]string](t, b, `[...document.querySelectorAll('#workers-body tr.worker')].map(tr => tr.children[1].textContent)`)
		found := false
		for _, c := range cells {
			found = found || c == xssRig
		}
		if !found {
			t.Errorf("rig cells %q lack the literal text %q", cells, xssRig)
		}
		if n := eval[int](t, b, `document.querySelectorAll('#workers-table img').length`); n != 0 {
			t.Errorf("the workers table has %d <img> elements: a rig name became markup", n)
		}
		// Sorting by rig ascending puts the '<img...' rig (0x3C) before 'rig1'.
		b.do(t, "sort by rig", chromedp.Click(`#workers-table th button[data-sort="rig"]`))
		waitJS(t, b, "rig sort", `document.querySelector('#workers-body tr.worker td:nth-child(2)').textContent === `+jsString(xssRig), 10*time.Second)
	})

	// No markup from data anywhere on the page.
	if n := eval[int](t, b, `document.querySelectorAll('main img, main script').length`); n != 0 {
		t.Errorf("the page has %d <img>/<script> elements under main: data became markup", n)
	}

	// Registration through the form.
	b.do(t, "fill the registration form",
		chromedp.SetValue("#reg-pool", pool.Addr()),
		chromedp.SendKeys("#reg-user", "browser-acct"),
		chromedp.SendKeys("#reg-pass", "browser-pw"),
		chromedp.Click(`#reg-form button[type="submit"]`),
		chromedp.WaitVisible("#reg-result"),
	)
	waitJS(t, b, "the issued name", `document.getElementById('reg-name').textContent.length === 16`, 10*time.Second)
	regName := eval[string](t, b, `document.getElementById('reg-name').textContent`)
	if !nameRE.MatchString(regName) {
		t.Fatalf("the page shows name %q", regName)
	}
	if code, u := call(t, api, "GET", "/api/v1/users/"+regName, nil); code != http.StatusOK || u["user"] != "browser-acct" {
		t.Errorf("GET /api/v1/users/%s: %d %v", regName, code, u)
	}
	cmds := eval[string](t, b, `[...document.querySelectorAll('#reg-commands pre')].map(p => p.textContent).join('\n')`)
	port := "9332"
	if sa, ok := stats["stratum_addr"].(string); ok && !endpointMissing(statsStatus) {
		port = sa[strings.LastIndex(sa, ":")+1:]
	}
	wantCmd := fmt.Sprintf("cpuminer -a sha256d -o stratum+tcp://127.0.0.1:%s -u %s.rig1 -p x", port, regName)
	if !strings.Contains(cmds, wantCmd) || !strings.Contains(cmds, "Worker:   "+regName+".rig1") {
		t.Errorf("miner commands:\n%s\nwant a line %q and an ASIC block", cmds, wantCmd)
	}

	// History charts: drawn once the endpoint exists.
	t.Run("history", func(t *testing.T) {
		if code, _ := call(t, api, "GET", "/api/v1/history?by=user", nil); endpointMissing(code) {
			t.Fatalf("GET /api/v1/history answers %d: the management API must answer", code)
		}
		waitJS(t, b, "a legend entry per user", `document.querySelectorAll('#legend-user li').length >= 1`, 20*time.Second)
	})

	// Let a refresh or two run (graphs, hashrate) and take the screenshot.
	time.Sleep(1500 * time.Millisecond)
	b.check(t)
	shot, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	art := os.Getenv("E2E_ARTIFACTS")
	if art == "" {
		art = filepath.Join(os.TempDir(), "stratum-proxy-e2e")
	}
	if err := os.MkdirAll(art, 0o755); err != nil {
		t.Fatal(err)
	}
	shotPath := filepath.Join(art, "dashboard.png")
	if err := os.WriteFile(shotPath, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", shotPath, len(shot))
	if os.Getenv("UPDATE_SCREENSHOT") == "1" {
		doc := filepath.Join(root, "docs", "dashboard.png")
		if err := os.WriteFile(doc, shot, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("updated %s", doc)
	}

	// Management through the page.
	t.Run("a pool added through the page takes a miner", func(t *testing.T) {
		pool2, err := poolsim.Start(poolsim.Config{Difficulty: 1e-6})
		if err != nil {
			t.Fatal(err)
		}
		defer pool2.Close()
		addr := pool2.Addr()
		b.do(t, "fill the pool form",
			chromedp.SendKeys("#pa-addr", addr),
			chromedp.SetValue("#pa-algo", "sha256"),
			chromedp.SetValue("#pa-mode", "passthrough"),
			chromedp.Click(`#pool-add button[type="submit"]`),
		)
		row := `[...document.querySelectorAll('#pools-body tr.pool')].find(tr => tr.dataset.addr === ` + jsString(addr) + `)`
		waitJS(t, b, "the new pool row", row, 15*time.Second)
		// No restart: a name on the new pool mines at once.
		code, ans := call(t, api, "POST", "/api/v1/users", map[string]string{"pool": addr, "user": "acct2", "password": "pw"})
		name2, _ := ans["name"].(string)
		if code != http.StatusCreated {
			t.Fatalf("register on the new pool: %d %v", code, ans)
		}
		m, err := miner.Dial(miner.Config{Addr: p.stratum, User: name2 + ".new", Password: "x", Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		sh, err := m.Mine(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if ok, c, msg, err := m.Submit(ctx, sh); !ok || err != nil {
			t.Fatalf("share on the pool added through the page: %d %s %v", c, msg, err)
		}
		if st := pool2.Stats(); st.Accepted == 0 {
			t.Fatalf("the new pool accepted nothing: %+v", st)
		}
		m.Close()
		if code, ans := call(t, api, "DELETE", "/api/v1/users/"+name2, nil); code != http.StatusOK {
			t.Errorf("DELETE user: %d %v", code, ans)
		}
		if code, ans := call(t, api, "DELETE", "/api/v1/pools/"+url.PathEscape(addr), nil); code != http.StatusOK {
			t.Errorf("DELETE /api/v1/pools/%s: %d %v", addr, code, ans)
		}
	})

	t.Run("delete pool from the page", func(t *testing.T) {
		if code, _ := call(t, api, "POST", "/api/v1/pools", map[string]any{}); endpointMissing(code) {
			t.Fatalf("POST /api/v1/pools answers %d: the management API must answer", code)
		}
		const addr = "127.0.0.1:2"
		if code, ans := call(t, api, "POST", "/api/v1/pools", map[string]any{"addr": addr, "algorithm": "sha256"}); code != http.StatusCreated {
			t.Fatalf("POST /api/v1/pools: %d %v", code, ans)
		}
		row := `[...document.querySelectorAll('#pools-body tr.pool')].find(tr => tr.dataset.addr === ` + jsString(addr) + `)`
		waitJS(t, b, "the pool row", row, 15*time.Second)
		btn := row + `.querySelector('button.danger')`
		eval[bool](t, b, "("+btn+".click(), true)") // arm
		eval[bool](t, b, "("+btn+".click(), true)") // confirm
		waitJS(t, b, "the pool row to go", "!"+row, 15*time.Second)
	})

	t.Run("kick", func(t *testing.T) {
		if endpointMissing(workersStatus) {
			t.Fatalf("GET /api/v1/workers answers %d: the management API must answer", workersStatus)
		}
		row := `[...document.querySelectorAll('#workers-body tr.worker')].find(tr => tr.children[1].textContent === 'rig2')`
		waitJS(t, b, "the rig2 row", row, 15*time.Second)
		btn := row + `.querySelector('button.danger')`
		eval[bool](t, b, "("+btn+".click(), true)") // arm
		eval[bool](t, b, "("+btn+".click(), true)") // confirm
		time.Sleep(time.Second)
		status := eval[string](t, b, `document.getElementById('status').textContent`)
		if strings.Contains(status, "not available") {
			t.Fatalf("DELETE /api/v1/workers/{id} the management API must answer (%s)", status)
		}
		select {
		case <-kickMe.Done():
		case <-time.After(15 * time.Second):
			t.Fatalf("the kicked miner is still connected; page status %q", status)
		}
	})

	b.check(t)
}
