package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// needVictoriaMetrics returns the path of Debian's victoria-metrics binary
// (single-node server), skipping the test without it, except under CI=true.
func needVictoriaMetrics(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("victoria-metrics")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("victoria-metrics is not installed (CI=true requires it: apt-get install victoria-metrics)")
		}
		t.Skip("victoria-metrics is not installed; install Debian's victoria-metrics package to run this test")
	}
	return p
}

// vmQuery runs an instant query against VictoriaMetrics' Prometheus API and
// returns the first result's value, or -1 when there is none (yet).
func vmQuery(addr, q string) float64 {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if json.NewDecoder(resp.Body).Decode(&r) != nil || r.Status != "success" || len(r.Data.Result) == 0 {
		return -1
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return -1
	}
	return v
}

// TestVictoriaMetricsScrapesWorkerSeries starts a real VictoriaMetrics
// single-node server scraping the proxy's /metrics every second (with its
// default Accept-Encoding: gzip) and waits until it answers a mining
// worker's accepted shares and hashrate through its Prometheus query API.
func TestVictoriaMetricsScrapesWorkerSeries(t *testing.T) {
	vm := needVictoriaMetrics(t)
	p, _, name := setup(t, "--metrics.window", "10s", "--metrics.step", "1s")
	m := mine(t, p.stratum, name, 5)
	defer m.Close()

	// Keep the worker mining (a share every 300 ms) so that its hashrate
	// stays above zero however long VictoriaMetrics takes to start.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	mined := make(chan error, 1)
	go func() {
		defer close(mined)
		for ctx.Err() == nil {
			sh, err := m.Mine(ctx, 0)
			if err == nil {
				var ok bool
				ok, _, _, err = m.Submit(ctx, sh)
				if err == nil && !ok {
					err = fmt.Errorf("share rejected")
				}
			}
			if err != nil {
				if ctx.Err() == nil {
					mined <- err
				}
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
	defer func() {
		cancel()
		if err := <-mined; err != nil {
			t.Errorf("background mining: %v", err)
		}
	}()

	dir := t.TempDir()
	cfg := filepath.Join(dir, "scrape.yml")
	scrape := fmt.Sprintf("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: stratum-proxy\n    static_configs:\n      - targets: [%q]\n", p.web)
	if err := os.WriteFile(cfg, []byte(scrape), 0o644); err != nil {
		t.Fatal(err)
	}
	vmAddr := freePort(t)
	cmd := exec.Command(vm,
		"-promscrape.config="+cfg,
		"-storageDataPath="+filepath.Join(dir, "data"),
		"-httpListenAddr="+vmAddr,
		"-search.latencyOffset=0s", // answer samples as soon as they are stored (default: 30s old)
		"-memory.allowedPercent=5",
	)
	var vlog syncBuffer
	cmd.Stdout, cmd.Stderr = &vlog, &vlog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}()

	accepted := fmt.Sprintf(`proxy_worker_accepted{job="stratum-proxy",user=%q}`, name)
	speed := fmt.Sprintf(`proxy_worker_speed{job="stratum-proxy",user=%q}`, name)
	rate := fmt.Sprintf(`rate(proxy_worker_one_accepted{job="stratum-proxy",user=%q}[10s])`, name)
	deadline := time.Now().Add(60 * time.Second)
	var a, s, r float64
	for time.Now().Before(deadline) {
		a, s, r = vmQuery(vmAddr, accepted), vmQuery(vmAddr, speed), vmQuery(vmAddr, rate)
		if a >= 5 && s > 0 && r > 0 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if a < 5 || s <= 0 || r <= 0 {
		t.Fatalf("VictoriaMetrics never saw the mining worker: accepted=%v speed=%v rate=%v\nVictoriaMetrics log:\n%s", a, s, r, vlog.String())
	}
	t.Logf("VictoriaMetrics sees proxy_worker_accepted=%v proxy_worker_speed=%v H/s, rate(proxy_worker_one_accepted[10s])=%v/s", a, s, r)

	// The runtime families came along, and the scrapes were gzip-compressed:
	// nothing else in this test reads /metrics, so every "metrics page"
	// debug line of the proxy is VictoriaMetrics'.
	if v := vmQuery(vmAddr, `process_open_fds{job="stratum-proxy"}`); v <= 0 {
		t.Errorf("process_open_fds in VictoriaMetrics: %v", v)
	}
	gz := 0
	sc := bufio.NewScanner(strings.NewReader(p.logs.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec struct {
			Message, Encoding string
			Bytes             int64
			CompressedBytes   int64 `json:"compressed_bytes"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Message == "metrics page" {
			if rec.Encoding != "gzip" || rec.CompressedBytes <= 0 || rec.CompressedBytes >= rec.Bytes {
				t.Errorf("scrape not compressed: %s", sc.Text())
			}
			gz++
		}
	}
	if gz == 0 {
		t.Error(`the proxy logged no gzip-compressed "metrics page": VictoriaMetrics did not send Accept-Encoding: gzip`)
	}
	t.Logf("%d gzip-compressed scrapes", gz)
}
