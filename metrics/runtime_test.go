package metrics

import (
	"bufio"
	"bytes"
	"math"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

var libLabelRe = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// seriesKey is name{l1="v1",l2="v2"} with the labels sorted, ignoring the proxy label.
func seriesKey(name string, labels []labelPair) string {
	var ls []string
	for _, l := range labels {
		if l.name != "proxy" {
			ls = append(ls, l.name+"="+l.value)
		}
	}
	slices.Sort(ls)
	return name + "{" + strings.Join(ls, ",") + "}"
}

// librarySeries parses what github.com/VictoriaMetrics/metrics writes (only here, to compare).
func librarySeries(t *testing.T) map[string]float64 {
	t.Helper()
	var buf bytes.Buffer
	metrics.WriteProcessMetrics(&buf)
	metrics.WriteFDMetrics(&buf)
	out := map[string]float64{}
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		n := strings.IndexAny(line, "{ ")
		name, rest := line[:n], line[n:]
		var labels []labelPair
		if strings.HasPrefix(rest, "{") {
			end := strings.LastIndexByte(rest, '}')
			for _, m := range libLabelRe.FindAllStringSubmatch(rest[:end], -1) {
				labels = append(labels, labelPair{m[1], m[2]})
			}
			rest = rest[end+1:]
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err != nil {
			t.Fatalf("library line %q: %v", line, err)
		}
		out[seriesKey(name, labels)] = v
	}
	return out
}

func ourSeries(t *testing.T) (*exposition, map[string]float64) {
	t.Helper()
	x := parse(t, fixture(t))
	out := map[string]float64{}
	for _, name := range x.order {
		if !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") {
			continue
		}
		for _, s := range x.families[name].samples {
			if _, ok := s.label("proxy"); ok {
				t.Errorf("%s has a proxy label", s.name)
			}
			out[seriesKey(s.name, s.labels)] = s.value
		}
	}
	return x, out
}

// TestRuntimeSameSeriesAsLibrary checks that the proxy writes every series (name and labels,
// bucket boundaries included) that github.com/VictoriaMetrics/metrics writes, and no other, so
// dashboards built on the library's output keep working. It fails after a library upgrade that
// adds a series: add it to runtime.go.
func TestRuntimeSameSeriesAsLibrary(t *testing.T) {
	runtime.GC() // so that go_gc_duration_seconds has quantiles in both
	lib := librarySeries(t)
	_, ours := ourSeries(t)
	for k := range lib {
		if _, ok := ours[k]; !ok {
			t.Errorf("library series %s missing", k)
		}
	}
	for k := range ours {
		if _, ok := lib[k]; !ok {
			t.Errorf("series %s not written by the library", k)
		}
	}
	if len(ours) < 100 {
		t.Errorf("only %d runtime series", len(ours))
	}
	// Values that barely move between the two reads agree.
	for _, k := range []string{"go_cpu_count{}", "go_gomaxprocs{}", "process_max_fds{}", "go_memlimit_bytes{}", `go_info{version=` + runtime.Version() + `}`} {
		if lib[k] != ours[k] {
			t.Errorf("%s: library %v, ours %v", k, lib[k], ours[k])
		}
	}
	if _, err := os.Stat("/proc/self/stat"); err == nil {
		for _, k := range []string{"process_cpu_seconds_total{}", "process_resident_memory_bytes{}", "process_open_fds{}"} {
			if ours[k] <= 0 || math.Abs(ours[k]-lib[k]) > 0.5*lib[k]+1 {
				t.Errorf("%s: library %v, ours %v", k, lib[k], ours[k])
			}
		}
		if st := ours["process_start_time_seconds{}"]; math.Abs(st-float64(time.Now().Unix())) > 3600 {
			t.Errorf("process_start_time_seconds %v, now %v", st, time.Now().Unix())
		}
	}
}

// TestRuntimeHELPAndTypes checks every go_* and process_* family has its own HELP and the types
// promtool accepts.
func TestRuntimeHELPAndTypes(t *testing.T) {
	x, _ := ourSeries(t)
	want := map[string]string{
		"go_gc_duration_seconds":         "summary",
		"go_sched_latencies_seconds":     "histogram",
		"go_cgo_calls_count":             "untyped",
		"go_gc_forced_count":             "untyped",
		"go_cpu_count":                   "untyped",
		"process_io_read_bytes_total":    "counter",
		"process_cpu_seconds_total":      "counter",
		"process_open_fds":               "gauge",
		"go_memstats_heap_inuse_bytes":   "gauge",
		"go_memstats_alloc_bytes_total":  "counter",
		"process_resident_memory_bytes":  "gauge",
		"go_goroutines":                  "gauge",
		"go_mutex_wait_seconds_total":    "counter",
		"process_io_written_bytes_total": "counter",
	}
	for name, typ := range want {
		f := x.families[name]
		if f == nil {
			if strings.HasPrefix(name, "process_") && runtime.GOOS != "linux" {
				continue
			}
			t.Errorf("no family %s", name)
			continue
		}
		if f.typ != typ {
			t.Errorf("%s: type %s, want %s", name, f.typ, typ)
		}
	}
	for _, name := range x.order {
		f := x.families[name]
		if (strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_")) && (len(f.help) < 10 || strings.Contains(f.help, "VictoriaMetrics")) {
			t.Errorf("%s: HELP %q", name, f.help)
		}
	}
	gc := x.families["go_gc_duration_seconds"]
	var last float64
	for _, s := range gc.samples {
		if q, ok := s.label("quantile"); ok {
			if s.value < last {
				t.Errorf("quantile %s: %v below the previous %v", q, s.value, last)
			}
			last = s.value
		}
	}
}

// TestRuntimeWithExposeMetadata checks that the page stays valid when something else in the
// process turns on the library's global metadata switch (it no longer matters: the library
// writes nothing on the page).
func TestRuntimeWithExposeMetadata(t *testing.T) {
	metrics.ExposeMetadata(true)
	defer metrics.ExposeMetadata(false)
	x := parse(t, fixture(t))
	for _, name := range []string{"go_goroutines", "go_gc_duration_seconds", "go_sched_latencies_seconds", "process_cpu_seconds_total", "process_open_fds"} {
		f := x.families[name]
		if f == nil {
			t.Errorf("no family %s", name)
			continue
		}
		if f.help == "" || f.help == name {
			t.Errorf("%s: HELP %q", name, f.help)
		}
	}
}

func TestParseStat(t *testing.T) {
	// proc(5); the command may hold ") " and spaces.
	line := "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 1234 0 5 0 250 75 0 0 20 0 9 0 3000 123456789 2048 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	st, ok := parseStat([]byte(line))
	if !ok {
		t.Fatal("not parsed")
	}
	want := procStat{minflt: 1234, majflt: 5, utime: 250, stime: 75, threads: 9, start: 3000, vsize: 123456789, rss: 2048}
	if st != want {
		t.Errorf("got %+v, want %+v", st, want)
	}
	if _, ok := parseStat([]byte("1 (x) S 1 2")); ok {
		t.Error("short line parsed")
	}
	if _, ok := parseStat(nil); ok {
		t.Error("nil parsed")
	}
}

func TestMaxOpenFiles(t *testing.T) {
	limits := "Limit                     Soft Limit           Hard Limit           Units\nMax cpu time              unlimited            unlimited            seconds\nMax open files            1048576              1048576              files\n"
	if v, ok := maxOpenFiles([]byte(limits)); !ok || v != 1048576 {
		t.Errorf("got %v %v", v, ok)
	}
	if v, ok := maxOpenFiles([]byte("Max open files            unlimited            unlimited            files\n")); !ok || v != math.MaxUint64 {
		t.Errorf("unlimited: got %v %v", v, ok)
	}
	if _, ok := maxOpenFiles([]byte("nothing\n")); ok {
		t.Error("found a limit in nothing")
	}
}

func TestForFields(t *testing.T) {
	got := map[string]string{}
	forFields([]byte("VmPeak:\t  12345 kB\nRssAnon:\t 77 kB\nName:\tstratum-proxy\nnocolon\nrchar: 9"), func(k, v []byte) {
		got[string(k)] = string(v)
	})
	want := map[string]string{"VmPeak:": "12345", "RssAnon:": "77", "Name:": "stratum-proxy", "rchar:": "9"}
	if len(got) != len(want) {
		t.Errorf("got %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
}

func TestCgroupV2Mount(t *testing.T) {
	mi := "22 1 0:21 / /proc rw - proc proc rw\n36 35 98:0 / /sys/fs/cgroup/unified rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate\n"
	if m := cgroupV2Mount(mi); m != "/sys/fs/cgroup/unified" {
		t.Errorf("got %q", m)
	}
	if m := cgroupV2Mount("22 1 0:21 / /proc rw - proc proc rw\n"); m != "" {
		t.Errorf("got %q", m)
	}
}

func TestReadPSI(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{
		"cpu.pressure":    "some avg10=0.00 avg60=0.00 avg300=0.00 total=100\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=200\n",
		"io.pressure":     "some avg10=0.00 avg60=0.00 avg300=0.00 total=300\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=400\n",
		"memory.pressure": "some avg10=0.00 avg60=0.00 avg300=0.00 total=500\n",
	} {
		if err := os.WriteFile(dir+"/"+name, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p, ok := readPSI(dir)
	if !ok || p.total != [6]uint64{100, 200, 300, 400, 500, 0} {
		t.Errorf("got %+v %v", p, ok)
	}
	if _, ok := readPSI(dir + "/missing"); ok {
		t.Error("read a missing directory")
	}
}

// BenchmarkWriteRuntime is the cost of the go_* and process_* part of a scrape.
func BenchmarkWriteRuntime(b *testing.B) {
	e := expo{w: bufio.NewWriterSize(discard{}, 64<<10)}
	b.ReportAllocs()
	for b.Loop() {
		writeRuntime(&e)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
