package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// proxyInst is one running proxy: the real binary, or the --role=proxy
// harness when profiling.
type proxyInst struct {
	p       *proc
	stratum string   // miners' address
	web     string   // HTTP address (/metrics; /debug/pprof/ on the harness)
	name    string   // the issued name miners authorize with
	setup   []string // the `pool add` command run before (binary only)
	harness bool
}

// startProxy starts a proxy for the pool at poolAddr in mode (split or
// passthrough), registers one account and returns once miners can connect.
func (s *suite) startProxy(ctx context.Context, poolAddr, mode, tag string) (*proxyInst, error) {
	dir, err := os.MkdirTemp(s.tmp, "proxy-"+tag+"-")
	if err != nil {
		return nil, err
	}
	if s.opts.profile != "" {
		return s.startHarness(ctx, dir, poolAddr, mode, tag)
	}
	db := filepath.Join(dir, "proxy.db")
	// bbolt is single-process: the pool is added before the server opens the
	// store.
	add := []string{s.proxyBin, "--db.path", db, "pool", "add", poolAddr, "sha256"}
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	out, err := exec.CommandContext(actx, add[0], add[1:]...).CombinedOutput()
	cancel()
	if err != nil {
		return nil, fmt.Errorf("%s: %v: %s", cmdline(add), err, bytes.TrimSpace(out))
	}
	argv := proxyArgv(s.proxyBin, db, mode, s.opts.proxyArgs)
	p, err := s.procs.start("proxy-"+tag, argv, s.root, filepath.Join(dir, "proxy.log"), proxyLogLine)
	if err != nil {
		return nil, err
	}
	ev, _, err := p.waitEvent(ctx, "ready", 0, 30*time.Second, nil)
	if err != nil {
		p.stop(5*time.Second, true)
		return nil, err
	}
	var ready struct{ Stratum, Web string }
	_ = json.Unmarshal(ev.Data, &ready)
	pi := &proxyInst{p: p, stratum: ready.Stratum, web: ready.Web, setup: add}
	if pi.name, err = registerUser(ctx, pi.web, poolAddr); err != nil {
		p.stop(5*time.Second, true)
		return nil, err
	}
	return pi, nil
}

// proxyArgv is the proxy binary's command line: the suite's own flags,
// then extra (--proxy-args), which come last so that they can override.
func proxyArgv(bin, db, mode string, extra []string) []string {
	argv := []string{bin, "--db.path", db,
		"--stratum.addr", "127.0.0.1:0", "--web.addr", "127.0.0.1:0",
		"--upstream.mode", mode, "--log.level", "info", "--log.format", "json"}
	return append(argv, extra...)
}

// proxyLogLine turns the proxy's JSON log line "stratum-proxy serving"
// into a "ready" event carrying its bound addresses.
func proxyLogLine(p *proc, line string) {
	if !strings.Contains(line, "stratum-proxy serving") {
		return
	}
	var l struct {
		Msg     string `json:"msg"`
		Message string `json:"message"`
		Stratum string `json:"stratum"`
		Web     string `json:"web"`
	}
	if json.Unmarshal([]byte(line), &l) != nil || l.Stratum == "" {
		return
	}
	raw, _ := json.Marshal(map[string]string{"stratum": l.Stratum, "web": l.Web})
	p.post(event{Ev: "ready", At: time.Now().UnixNano(), Data: raw})
}

func (s *suite) startHarness(ctx context.Context, dir, poolAddr, mode, tag string) (*proxyInst, error) {
	argv := []string{s.self, "--role=proxy", "--dir", dir, "--pool", poolAddr, "--mode", mode}
	p, err := s.procs.start("proxy-harness-"+tag, argv, s.root, filepath.Join(dir, "proxy.log"), nil)
	if err != nil {
		return nil, err
	}
	ev, _, err := p.waitEvent(ctx, "ready", 0, 30*time.Second, nil)
	if err != nil {
		p.stop(5*time.Second, true)
		return nil, err
	}
	var ready struct{ Stratum, Web, Name string }
	_ = json.Unmarshal(ev.Data, &ready)
	return &proxyInst{p: p, stratum: ready.Stratum, web: ready.Web, name: ready.Name, harness: true}, nil
}

// registerUser issues a name for account "bench" on poolAddr through the
// proxy's API.
func registerUser(ctx context.Context, web, poolAddr string) (string, error) {
	body, _ := json.Marshal(map[string]string{"pool": poolAddr, "user": "bench", "password": "x"})
	var lastErr error
	// Bounded: a few tries while the API comes up.
	for try := 0; try < 10; try++ {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		req, _ := http.NewRequestWithContext(rctx, http.MethodPost, "http://"+web+"/api/v1/users", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			cancel()
			var r struct{ Name, Error string }
			if json.Unmarshal(b, &r) == nil && r.Name != "" {
				return r.Name, nil
			}
			lastErr = fmt.Errorf("POST /api/v1/users: %s: %s", resp.Status, bytes.TrimSpace(b))
		} else {
			cancel()
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return "", lastErr
}

// stop ends the proxy (SIGTERM, 15s grace) and reports a hang as an anomaly.
func (s *suite) stopProxy(pi *proxyInst, scenario string) {
	if pi == nil {
		return
	}
	if pi.harness {
		_ = pi.p.send("quit")
	}
	start := time.Now()
	if !pi.p.stop(15*time.Second, true) {
		s.anomaly(scenario, "proxy did not exit within 15s of SIGTERM (killed); log %s", pi.p.logPath)
	} else if d := time.Since(start); d > 5*time.Second {
		s.anomaly(scenario, "proxy took %s to exit after SIGTERM; log %s", d.Round(time.Millisecond), pi.p.logPath)
	}
	if w := pi.p.warningLines(); len(w) > 0 {
		s.logf("  proxy %s: %d warning/error log lines, last: %s", pi.p.name, len(w), w[len(w)-1])
	}
}

// metricsSnap is one scrape of /metrics: the sum of each family's samples
// over their labels, and classic histogram buckets.
type metricsSnap struct {
	sums    map[string]float64
	buckets map[string][]bucket // family -> cumulative buckets, sorted by le
}

type bucket struct {
	le    float64
	count float64
}

// scrape reads http://web/metrics.
func scrape(ctx context.Context, web string) (*metricsSnap, error) {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(rctx, http.MethodGet, "http://"+web+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	m := &metricsSnap{sums: map[string]float64{}, buckets: map[string][]bucket{}}
	les := map[string]map[float64]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	// Bounded by the response (tens of MB at most with 18,000 workers).
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, labels, val, ok := parseSample(line)
		if !ok {
			continue
		}
		m.sums[name] += val
		if fam, isBucket := strings.CutSuffix(name, "_bucket"); isBucket {
			le, err := strconv.ParseFloat(labelValue(labels, "le"), 64)
			if err != nil && labelValue(labels, "le") == "+Inf" {
				le = math.Inf(1)
			} else if err != nil {
				continue
			}
			if les[fam] == nil {
				les[fam] = map[float64]float64{}
			}
			les[fam][le] += val
		}
	}
	for fam, bs := range les {
		for le, c := range bs {
			m.buckets[fam] = append(m.buckets[fam], bucket{le, c})
		}
		sort.Slice(m.buckets[fam], func(i, j int) bool { return m.buckets[fam][i].le < m.buckets[fam][j].le })
	}
	return m, sc.Err()
}

// parseSample splits `name{labels} value [ts]`.
func parseSample(line string) (name, labels string, val float64, ok bool) {
	rest := line
	if i := strings.IndexByte(line, '{'); i >= 0 {
		j := strings.LastIndexByte(line, '}')
		if j < i {
			return "", "", 0, false
		}
		name, labels, rest = line[:i], line[i+1:j], line[j+1:]
	} else {
		sp := strings.IndexByte(line, ' ')
		if sp < 0 {
			return "", "", 0, false
		}
		name, rest = line[:sp], line[sp:]
	}
	f := strings.Fields(rest)
	if len(f) < 1 {
		return "", "", 0, false
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return "", "", 0, false
	}
	return name, labels, v, true
}

// labelValue returns the value of label key in a `k="v",...` list (values
// are assumed not to contain `",`).
func labelValue(labels, key string) string {
	for _, kv := range strings.Split(labels, `",`) {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.TrimSpace(k) == key {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// since returns fam's histogram buckets and count of m minus those of an
// earlier scrape prev: the observations made in between.
func (m *metricsSnap) since(prev *metricsSnap, fam string) *metricsSnap {
	out := &metricsSnap{sums: map[string]float64{}, buckets: map[string][]bucket{}}
	before := map[float64]float64{}
	if prev != nil {
		for _, b := range prev.buckets[fam] {
			before[b.le] = b.count
		}
	}
	for _, b := range m.buckets[fam] {
		out.buckets[fam] = append(out.buckets[fam], bucket{b.le, b.count - before[b.le]})
	}
	c := fam + "_count"
	out.sums[c] = m.sums[c]
	if prev != nil {
		out.sums[c] -= prev.sums[c]
	}
	return out
}

// fetchProfile saves http://web/debug/pprof/<what> (harness only) to path.
func fetchProfile(ctx context.Context, web, what, path string, timeout time.Duration) error {
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(rctx, http.MethodGet, "http://"+web+"/debug/pprof/"+what, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /debug/pprof/%s: %s", what, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
