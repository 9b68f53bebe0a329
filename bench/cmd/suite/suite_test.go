package main

import (
	"io"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/stratum-proxy/stratum-proxy/bench/flood"
)

func TestTimedJobID(t *testing.T) {
	at := time.Unix(1_795_000_000, 123_456_789)
	got, ok := parseTimedJobID([]byte(timedJobID(at)))
	if !ok || !got.Equal(at) {
		t.Fatalf("round trip: %v %v, want %v", got, ok, at)
	}
	// Through the proxy the id carries its pool connection's tag.
	if got, ok := parseTimedJobID([]byte("3z-" + timedJobID(at))); !ok || !got.Equal(at) {
		t.Fatalf("tagged by the proxy: %v %v, want %v", got, ok, at)
	}
	f := func(id string) {
		t.Helper()
		if _, ok := parseTimedJobID([]byte(id)); ok {
			t.Errorf("parseTimedJobID(%q) ok, want not a timed id", id)
		}
	}
	f("")
	f("t")
	f("1a2b")     // the simulator's own hex counter ids
	f("tzz")      // not hex
	f("t-1")      // negative
	f("6b00d15f") // a captured pool id
}

func TestParseBench(t *testing.T) {
	out := []byte(`goos: linux
pkg: github.com/stratum-proxy/stratum-proxy/proxy
cpu: AMD EPYC
BenchmarkRelayShare-2         	 2000000	       584.9 ns/op	       0 B/op	       0 allocs/op
BenchmarkNotifyFanout1000-2   	  150000	      7083 ns/op	         7.083 ns/miner	    1808 B/op	       6 allocs/op
PASS
ok  	github.com/stratum-proxy/stratum-proxy/proxy	3.1s
`)
	rs := parseBench(out)
	if len(rs) != 2 {
		t.Fatalf("got %d results, want 2: %+v", len(rs), rs)
	}
	r := rs[1]
	if r.Name != "BenchmarkNotifyFanout1000" || r.Package != "github.com/stratum-proxy/stratum-proxy/proxy" ||
		r.N != 150000 || r.NsPerOp != 7083 || r.BytesPerOp != 1808 || r.AllocsPerOp != 6 || r.Extra["ns/miner"] != 7.083 {
		t.Errorf("got %+v", r)
	}
	if rs[0].Name != "BenchmarkRelayShare" || rs[0].AllocsPerOp != 0 {
		t.Errorf("got %+v", rs[0])
	}
}

func TestHistogramSince(t *testing.T) {
	m := &metricsSnap{sums: map[string]float64{}, buckets: map[string][]bucket{}}
	m.buckets["h"] = []bucket{{0.01, 0}, {0.025, 10}, {0.05, 20}, {math.Inf(1), 20}}
	prev := &metricsSnap{sums: map[string]float64{"h_count": 10}, buckets: map[string][]bucket{
		"h": {{0.01, 0}, {0.025, 10}, {0.05, 10}, {math.Inf(1), 10}}}}
	m.sums["h_count"] = 20
	d := m.since(prev, "h")
	if d.sums["h_count"] != 10 {
		t.Errorf("since count = %v, want 10", d.sums["h_count"])
	}
	if got := bucketText(d.buckets["h"]); got != "10 in (25ms,50ms]" {
		t.Errorf("bucketText = %q", got)
	}
}

func TestParseSample(t *testing.T) {
	f := func(line, name, le string, val float64) {
		t.Helper()
		n, labels, v, ok := parseSample(line)
		if !ok || n != name || v != val || labelValue(labels, "le") != le {
			t.Errorf("parseSample(%q) = %q %q %v %v", line, n, labels, v, ok)
		}
	}
	f(`proxy_upstreams_connected{proxy="127.0.0.1:1"} 1`, "proxy_upstreams_connected", "", 1)
	f(`proxy_notify_fanout_seconds_bucket{proxy="x",le="0.05"} 20`, "proxy_notify_fanout_seconds_bucket", "0.05", 20)
	f(`go_goroutines 12`, "go_goroutines", "", 12)
}

func TestSteadyRate(t *testing.T) {
	p := func(sec float64, auth, acc int64) flood.Progress {
		return flood.Progress{Elapsed: time.Duration(sec * float64(time.Second)), Authorized: auth, Accepted: acc}
	}
	ps := []flood.Progress{
		p(1, 50, 0), p(2, 100, 100), // all authorized at 2 s: the window starts at 4 s
		p(3, 100, 1000), p(4, 100, 2000), p(5, 100, 3000), p(6, 100, 4000),
		p(11, 100, 4100), // after the duration: left out
	}
	if got := steadyRate(ps, 100, 10*time.Second); got != 1000 {
		t.Errorf("steadyRate = %v, want 1000", got)
	}
	if got := steadyRate(ps[:3], 100, 10*time.Second); got != 0 {
		t.Errorf("steadyRate without a window = %v, want 0", got)
	}
}

func TestProxyArgs(t *testing.T) {
	o, err := parseFlags([]string{"--scenarios", "relay", "--proxy-args", " --vardiff=false  --vardiff.rate=30 "}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"--vardiff=false", "--vardiff.rate=30"}
	if !slices.Equal(o.proxyArgs, want) {
		t.Fatalf("proxyArgs %q, want %q", o.proxyArgs, want)
	}
	argv := proxyArgv("/bin/px", "/tmp/db", "split", o.proxyArgs)
	if argv[0] != "/bin/px" || !slices.Equal(argv[len(argv)-2:], want) || !slices.Contains(argv, "split") {
		t.Fatalf("argv %q: want the binary first and the extra flags last", argv)
	}
	if o, err = parseFlags(nil, io.Discard); err != nil || len(o.proxyArgs) != 0 {
		t.Fatalf("default: %q, %v; want no extra flags", o.proxyArgs, err)
	}
	if len(proxyArgv("/bin/px", "/tmp/db", "split", nil)) != 13 {
		t.Fatal("without --proxy-args the command line changed")
	}
	if _, err := parseFlags([]string{"--proxy-args", "--vardiff=false", "--profile", t.TempDir()}, io.Discard); err == nil {
		t.Fatal("--proxy-args with --profile: no error")
	}
}
