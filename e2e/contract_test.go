package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// fakeAPI answers the whole /api/v1 contract from memory, so the page's
// use of endpoints that the proxy does not have yet (stats, workers,
// history, pool and user management, kick) is tested today. It records
// every request as "METHOD path?query body".
type fakeAPI struct {
	mu      sync.Mutex
	log     []string
	workers []map[string]any
	pools   []map[string]any
}

func newFakeAPI() *fakeAPI {
	f := &fakeAPI{}
	since := time.Now().Add(-90 * time.Minute).UTC().Format(time.RFC3339)
	for i := 0; i < 250; i++ {
		rig := fmt.Sprintf("rig%03d", i)
		if i == 7 {
			rig = xssRig
		}
		f.workers = append(f.workers, map[string]any{
			"id": fmt.Sprintf("s%03d", i), "user": fmt.Sprintf("%016x", i%5), "rig": rig, "pool": "127.0.0.1:3333",
			"algorithm": "sha256", "dialect": "stratum", "difficulty": 65536.0, "hashrate": float64(100+i) * 1e12,
			"accepted": 1000 + i, "rejected": i % 3, "connected_since": since, "remote": fmt.Sprintf("127.0.0.%d:4%04d", 1+i%200, i),
		})
	}
	f.pools = []map[string]any{
		{"addr": "127.0.0.1:3333", "algorithm": "sha256", "tls": false, "mode": "split",
			"state": map[string]any{"up": true, "upstreams": 2, "miners": 250, "difficulty": 65536.0, "last_error": ""}},
		{"addr": "127.0.0.1:4444", "algorithm": "sha256", "tls": false, "mode": "",
			"state": map[string]any{"up": false, "upstreams": 0, "miners": 0, "difficulty": 0.0, "last_error": `dial: <b>refused</b>`}},
	}
	return f
}

func (f *fakeAPI) requests(prefix string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, l := range f.log {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	f.mu.Lock()
	defer f.mu.Unlock()
	line := r.Method + " " + r.URL.Path
	if r.URL.RawQuery != "" {
		line += "?" + r.URL.RawQuery
	}
	f.log = append(f.log, strings.TrimSpace(line+" "+string(body)))
	reply := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	if r.Header.Get("Authorization") != "Bearer "+token && !(r.Method == "POST" && r.URL.Path == "/api/v1/users") {
		reply(401, map[string]string{"error": "missing or wrong bearer token"})
		return
	}
	p := r.URL.Path
	switch {
	case r.Method == "GET" && p == "/api/v1/stats":
		reply(200, map[string]any{"miners": len(f.workers), "sessions": len(f.workers), "upstreams": 2, "hashrate": 3.2e16,
			"accepted_per_min": 4210.5, "rejected_per_min": 3.25, "stratum_addr": "0.0.0.0:9555", "version": "v-test"})
	case r.Method == "GET" && p == "/api/v1/workers":
		q := r.URL.Query()
		var list []map[string]any
		for _, w := range f.workers {
			if s := q.Get("q"); s != "" && !strings.Contains(fmt.Sprint(w["rig"]), s) {
				continue
			}
			list = append(list, w)
		}
		col := q.Get("sort")
		sort.SliceStable(list, func(i, j int) bool {
			a, b := list[i][col], list[j][col]
			var less bool
			if x, ok := a.(float64); ok {
				less = x < b.(float64)
			} else {
				less = fmt.Sprint(a) < fmt.Sprint(b)
			}
			if q.Get("order") == "desc" {
				return !less && fmt.Sprint(a) != fmt.Sprint(b)
			}
			return less
		})
		off, _ := strconv.Atoi(q.Get("offset"))
		lim, _ := strconv.Atoi(q.Get("limit"))
		total := len(list)
		off = min(off, total)
		end := min(off+lim, total)
		reply(200, map[string]any{"total": total, "workers": list[off:end]})
	case r.Method == "DELETE" && strings.HasPrefix(p, "/api/v1/workers/"):
		id := strings.TrimPrefix(p, "/api/v1/workers/")
		for i, w := range f.workers {
			if w["id"] == id {
				f.workers = append(f.workers[:i], f.workers[i+1:]...)
				reply(200, map[string]any{"kicked": true})
				return
			}
		}
		reply(404, map[string]string{"error": "unknown worker"})
	case r.Method == "GET" && p == "/api/v1/history":
		now := time.Now().Unix()
		var series []map[string]any
		keys := []string{"0000000000000001", "0000000000000002", "<i>user</i>"}
		if r.URL.Query().Get("by") == "pool" {
			keys = []string{"127.0.0.1:3333", "127.0.0.1:4444"}
		}
		for k, key := range keys {
			var pts [][2]float64
			for i := 0; i < 60; i++ {
				pts = append(pts, [2]float64{float64(now - int64(60-i)*60), float64(k+1) * 1e15 * (1 + 0.2*float64(i%7)/7)})
			}
			series = append(series, map[string]any{"key": key, "points": pts})
		}
		reply(200, map[string]any{"step_seconds": 60, "series": series})
	case r.Method == "GET" && p == "/api/v1/pools":
		reply(200, map[string]any{"pools": f.pools})
	case r.Method == "POST" && p == "/api/v1/pools":
		var pool map[string]any
		_ = json.Unmarshal(body, &pool)
		f.pools = append(f.pools, pool)
		reply(201, pool)
	case r.Method == "DELETE" && strings.HasPrefix(p, "/api/v1/pools/"):
		reply(409, map[string]string{"error": "pool is used by 5 users"})
	case r.Method == "GET" && p == "/api/v1/algorithms":
		reply(200, map[string]any{"algorithms": []map[string]any{{"name": "sha256"}, {"name": "randomx"}}})
	case r.Method == "GET" && p == "/api/v1/users":
		reply(200, map[string]any{"users": []map[string]any{
			{"name": "0000000000000001", "pool": "127.0.0.1:3333", "user": "wallet.a", "backups": []any{}, "created": "2026-11-01T10:00:00Z", "last_seen": nil},
		}})
	case r.Method == "POST" && p == "/api/v1/users":
		reply(201, map[string]string{"name": "00000000000000ff", "error": ""})
	case (r.Method == "PATCH" || r.Method == "DELETE") && strings.HasPrefix(p, "/api/v1/users/"):
		reply(200, map[string]any{})
	default:
		reply(404, map[string]string{"error": "no such endpoint: " + p})
	}
}

// TestDashboardContract drives the page against fakeAPI: every panel,
// paging, sorting, filtering and the management actions, with the
// request each one must send.
func TestDashboardContract(t *testing.T) {
	exe := chromiumPath(t)
	root := repoRoot(t)
	api := newFakeAPI()
	base := serveLocal(t, uiHandler(root, api))
	b := newBrowser(t, exe)

	b.do(t, "load", chromedp.Navigate(base+"/"), chromedp.WaitVisible("#token-form"),
		chromedp.SendKeys("#token", token), chromedp.Click(`#token-form button[type="submit"]`))
	waitJS(t, b, "totals", `document.getElementById('t-miners').textContent === '250'`, 10*time.Second)
	if got := eval[string](t, b, `document.getElementById('t-hashrate').textContent`); got != "32.0 PH/s" {
		t.Errorf("hashrate shows %q, want 32.0 PH/s", got)
	}

	// Paging: 100 rows, then the next page asks for offset=100.
	waitJS(t, b, "100 rows", `document.querySelectorAll('#workers-body tr.worker').length === 100`, 10*time.Second)
	if got := eval[string](t, b, `document.getElementById('w-range').textContent`); got != "1–100 of 250" {
		t.Errorf("range %q", got)
	}
	if len(api.requests("GET /api/v1/workers?sort=hashrate&order=desc&offset=0&limit=100")) == 0 {
		t.Errorf("no default workers request; got %q", api.requests("GET /api/v1/workers"))
	}
	b.do(t, "next page", chromedp.Click("#w-next"))
	waitJS(t, b, "page 2", `document.getElementById('w-range').textContent === '101–200 of 250'`, 10*time.Second)

	// Sorting by rig ascending restarts at offset 0; '<' sorts before 'r'.
	b.do(t, "sort by rig", chromedp.Click(`#workers-table th button[data-sort="rig"]`))
	waitJS(t, b, "rig sort", `document.querySelector('#workers-body tr.worker td:nth-child(2)').textContent === `+jsString(xssRig), 10*time.Second)
	if len(api.requests("GET /api/v1/workers?sort=rig&order=asc&offset=0&limit=100")) == 0 {
		t.Errorf("no rig-sorted request; got %q", api.requests("GET /api/v1/workers"))
	}
	if n := eval[int](t, b, `document.querySelectorAll('#workers-table img, main img').length`); n != 0 {
		t.Fatalf("%d <img> elements: a rig name became markup", n)
	}

	// Filtering sends q.
	b.do(t, "filter", chromedp.SendKeys("#f-q", "rig01"))
	waitJS(t, b, "filtered rows", `document.getElementById('w-range').textContent === '1–10 of 10'`, 10*time.Second)
	if len(api.requests("GET /api/v1/workers?q=rig01&")) == 0 {
		t.Errorf("no q=rig01 request")
	}

	// Kick: two clicks (arm, confirm) send DELETE for that session.
	row := `[...document.querySelectorAll('#workers-body tr.worker')].find(tr => tr.dataset.id === 's012')`
	waitJS(t, b, "row s012", row, 5*time.Second)
	eval[bool](t, b, "("+row+".querySelector('button.danger').click(), true)")
	eval[bool](t, b, "("+row+".querySelector('button.danger').click(), true)")
	waitJS(t, b, "row s012 gone", "!"+row, 10*time.Second)
	if len(api.requests("DELETE /api/v1/workers/s012")) != 1 {
		t.Errorf("kick requests: %q", api.requests("DELETE /api/v1/workers/"))
	}

	// History: legends for both charts, keys as text.
	waitJS(t, b, "legends", `document.querySelectorAll('#legend-user li').length === 3 && document.querySelectorAll('#legend-pool li').length === 2`, 10*time.Second)
	if !eval[bool](t, b, `[...document.querySelectorAll('#legend-user li')].some(li => li.textContent.startsWith('<i>user</i>'))`) {
		t.Error("a history key is not shown as text")
	}

	// Pools: state and last error as text; add through the form; a 409 on
	// delete is shown.
	waitJS(t, b, "pool states", `document.querySelectorAll('#pools-body td.up').length === 1 && document.querySelectorAll('#pools-body td.down').length === 1`, 10*time.Second)
	if !eval[bool](t, b, `[...document.querySelectorAll('#pools-body td')].some(td => td.textContent === 'dial: <b>refused</b>')`) {
		t.Error("last_error is not shown as text")
	}
	b.do(t, "add pool", chromedp.SendKeys("#pa-addr", "127.0.0.9:3333"), chromedp.SetValue("#pa-algo", "randomx"),
		chromedp.SetValue("#pa-mode", "passthrough"), chromedp.Click("#pa-tls"), chromedp.Click(`#pool-add button[type="submit"]`))
	waitJS(t, b, "new pool row", `[...document.querySelectorAll('#pools-body tr.pool')].some(tr => tr.dataset.addr === '127.0.0.9:3333')`, 10*time.Second)
	if got := api.requests("POST /api/v1/pools"); len(got) != 1 || !strings.HasSuffix(got[0], `{"addr":"127.0.0.9:3333","algorithm":"randomx","tls":true,"mode":"passthrough"}`) {
		t.Errorf("add pool request: %q", got)
	}
	prow := `[...document.querySelectorAll('#pools-body tr.pool')].find(tr => tr.dataset.addr === '127.0.0.1:4444')`
	eval[bool](t, b, "("+prow+".querySelector('button.danger').click(), true)")
	eval[bool](t, b, "("+prow+".querySelector('button.danger').click(), true)")
	waitJS(t, b, "409 shown", `document.getElementById('status').textContent.includes('pool is used by 5 users')`, 10*time.Second)

	// Users: change the password (PATCH with the body), delete.
	urow := `document.querySelector('#users-body tr.user')`
	waitJS(t, b, "user row", urow, 10*time.Second)
	b.do(t, "new password", chromedp.SendKeys(`#users-body tr.user input[type="password"]`, "n3w-pw"))
	eval[bool](t, b, "([..."+urow+".querySelectorAll('button')].find(b => b.textContent === 'set').click(), true)")
	waitJS(t, b, "PATCH", `document.querySelector('#users-body tr.user .msg').textContent === 'changed'`, 10*time.Second)
	if got := api.requests("PATCH /api/v1/users/0000000000000001"); len(got) != 1 || !strings.HasSuffix(got[0], `{"password":"n3w-pw"}`) {
		t.Errorf("password change request: %q", got)
	}

	// Registration: commands use the page host and the stats' stratum port;
	// a randomx pool gets the xmrig line.
	b.do(t, "register", chromedp.SetValue("#reg-pool", "127.0.0.9:3333"), chromedp.SendKeys("#reg-user", "wallet"),
		chromedp.Click(`#reg-form button[type="submit"]`), chromedp.WaitVisible("#reg-result"))
	waitJS(t, b, "xmrig line", `document.getElementById('reg-commands').textContent.includes('xmrig -o 127.0.0.1:9555 -u 00000000000000ff -p x --nicehash')`, 10*time.Second)

	b.check(t)
	shot, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	art := os.Getenv("E2E_ARTIFACTS")
	if art == "" {
		art = filepath.Join(os.TempDir(), "stratum-proxy-e2e")
	}
	_ = os.MkdirAll(art, 0o755)
	path := filepath.Join(art, "dashboard-contract.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}
