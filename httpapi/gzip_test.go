package httpapi

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/stratum-proxy/stratum-proxy/store"
)

// writeBigPage writes an exposition shaped like the proxy's: per-worker
// series of four families (about 600 bytes per worker).
func writeBigPage(w io.Writer, workers int) {
	for _, f := range []string{"proxy_worker_sended", "proxy_worker_accepted", "proxy_worker_speed", "proxy_worker_up"} {
		fmt.Fprintf(w, "# HELP %s Test family.\n# TYPE %s gauge\n", f, f)
		for i := range workers {
			fmt.Fprintf(w, "%s{proxy=\"127.0.0.1:3333\",worker=\"10.0.%d.%d:4000\",name=\"rig%d\",user=\"user%07d\",hash=\"sha256\",pool=\"pool.example:3333\"} %d\n",
				f, i/256, i%256, i, i, i*7919%100003)
		}
	}
}

func gunzip(t testing.TB, b []byte) string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not gzip: %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("bad gzip stream: %v", err)
	}
	return string(out)
}

// TestMetricsGzip scrapes a real server over loopback with a client that
// neither adds nor strips Accept-Encoding, so every header is the test's.
func TestMetricsGzip(t *testing.T) {
	const workers = 2000
	var want bytes.Buffer
	writeBigPage(&want, workers)
	ts := start(t, func(c *Config) { c.Metrics = func(w io.Writer) { writeBigPage(w, workers) } })
	ts.client = &http.Client{Transport: &http.Transport{DisableCompression: true}}

	get := func(method, acceptEncoding string) answer {
		t.Helper()
		var hdr []string
		if acceptEncoding != "" {
			hdr = []string{"Accept-Encoding", acceptEncoding}
		}
		a := ts.do(t, method, "/metrics", nil, hdr...)
		if a.status != 200 {
			t.Fatalf("%s /metrics (Accept-Encoding %q): %d %s", method, acceptEncoding, a.status, a.body)
		}
		if a.header.Get("Content-Type") != contentMetrics || a.header.Get("Vary") != "Accept-Encoding" {
			t.Errorf("Accept-Encoding %q: headers %v", acceptEncoding, a.header)
		}
		return a
	}

	plain := get(http.MethodGet, "")
	if plain.body != want.String() || plain.header.Get("Content-Encoding") != "" {
		t.Fatalf("plain page: Content-Encoding %q, %d bytes, want %d", plain.header.Get("Content-Encoding"), len(plain.body), want.Len())
	}
	for _, ae := range []string{"gzip", "gzip, deflate, br", "br;q=1.0, gzip;q=0.5", "x-gzip", "*", "GZIP"} {
		a := get(http.MethodGet, ae)
		if a.header.Get("Content-Encoding") != "gzip" {
			t.Errorf("Accept-Encoding %q: Content-Encoding %q", ae, a.header.Get("Content-Encoding"))
			continue
		}
		if got := gunzip(t, []byte(a.body)); got != want.String() {
			t.Errorf("Accept-Encoding %q: decompressed page differs (%d bytes, want %d)", ae, len(got), want.Len())
		}
		if len(a.body)*4 > want.Len() {
			t.Errorf("Accept-Encoding %q: %d compressed bytes for %d", ae, len(a.body), want.Len())
		}
	}
	for _, ae := range []string{"identity", "deflate, br", "gzip;q=0", "*, gzip;q=0", "*;q=0"} {
		a := get(http.MethodGet, ae)
		if a.header.Get("Content-Encoding") != "" || a.body != want.String() {
			t.Errorf("Accept-Encoding %q: Content-Encoding %q, %d bytes", ae, a.header.Get("Content-Encoding"), len(a.body))
		}
	}
	if a := get(http.MethodHead, "gzip"); a.body != "" || a.header.Get("Content-Encoding") != "gzip" {
		t.Errorf("HEAD: %q %v", a.body, a.header)
	}
	if logs := ts.logs.String(); !strings.Contains(logs, `"encoding":"gzip"`) || !strings.Contains(logs, fmt.Sprintf(`"bytes":%d`, want.Len())) {
		t.Errorf("no debug line for the gzip page:\n%.2000s", logs)
	}
}

// TestMetricsGzipPoolReuse checks that a pooled writer left in any state
// gives a complete, independent stream to the next scrape.
func TestMetricsGzipPoolReuse(t *testing.T) {
	n := 0
	s := New(Config{Store: openStore(t), Metrics: func(w io.Writer) {
		n++
		fmt.Fprintf(w, "up %d\n", n)
	}})
	h := s.Handler()
	for i := 1; i <= 5; i++ {
		ctx := metricsCtx(i%2 == 0)
		h(ctx)
		body := ctx.Response.Body()
		if i%2 == 0 {
			body = []byte(gunzip(t, body))
		}
		if got, want := string(body), fmt.Sprintf("up %d\n", i); got != want {
			t.Errorf("scrape %d: %q, want %q", i, got, want)
		}
	}
}

func TestAcceptsGzip(t *testing.T) {
	for h, want := range map[string]bool{
		"":                        false,
		"gzip":                    true,
		" gzip ":                  true,
		"Gzip":                    true,
		"x-gzip":                  true,
		"deflate, gzip":           true,
		"gzip;q=0.001":            true,
		"gzip; q=1":               true,
		"gzip;q=0":                false,
		"gzip;q=0.0":              false,
		"gzip; Q=0":               false,
		"gzip;q=bogus":            true,
		"gzip;level=1;q=0":        false,
		"*":                       true,
		"*;q=0":                   false,
		"*, gzip;q=0":             false,
		"gzip;q=0, *":             false,
		"identity":                false,
		"br, zstd":                false,
		"gzipx":                   false,
		"deflate;q=0.5, identity": false,
	} {
		if got := acceptsGzip([]byte(h)); got != want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", h, got, want)
		}
	}
}

func openStore(tb testing.TB) *store.DB {
	tb.Helper()
	st, err := store.Open(filepath.Join(tb.TempDir(), "proxy.db"), nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	return st
}

func metricsCtx(gz bool) *fasthttp.RequestCtx {
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/metrics")
	ctx.Request.Header.SetMethod(fasthttp.MethodGet)
	if gz {
		ctx.Request.Header.Set(fasthttp.HeaderAcceptEncoding, "gzip")
	}
	return &ctx
}

// BenchmarkMetricsPage serves a page of about 15 MB (the size of a proxy's
// with 15,000 to 20,000 workers) through the handler, plain and
// gzip-compressed; MB/s is of the plain page, resp_bytes the body sent.
func BenchmarkMetricsPage(b *testing.B) {
	const workers = 25000
	var page bytes.Buffer
	writeBigPage(&page, workers)
	for _, gz := range []bool{false, true} {
		name := "plain"
		if gz {
			name = "gzip"
		}
		b.Run(name, func(b *testing.B) {
			s := New(Config{Store: openStore(b), Metrics: func(w io.Writer) {
				// In chunks, as the registry's 64 KB bufio.Writer writes.
				for p := page.Bytes(); len(p) > 0; {
					n := min(len(p), 64<<10)
					w.Write(p[:n])
					p = p[n:]
				}
			}})
			h := s.Handler()
			ctx := metricsCtx(gz)
			b.SetBytes(int64(page.Len()))
			b.ReportAllocs()
			var out int
			for b.Loop() {
				ctx.Response.Reset()
				h(ctx)
				out = len(ctx.Response.Body())
			}
			b.ReportMetric(float64(out), "resp_bytes")
		})
	}
}
