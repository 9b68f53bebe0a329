package metrics

import (
	"bytes"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"
)

// TestRuntimeFamiliesKnown fails when the library writes a series the HELP table does not
// know, e.g. after an upgrade: add it to runtimeFamilies.
func TestRuntimeFamiliesKnown(t *testing.T) {
	var buf bytes.Buffer
	metrics.WriteProcessMetrics(&buf)
	metrics.WriteFDMetrics(&buf)
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		name := line[:strings.IndexAny(line, "{ ")]
		if f := runtimeFamily(name); f.help == "Reported by github.com/VictoriaMetrics/metrics." {
			t.Errorf("runtimeFamilies lacks %s", name)
		}
	}
	if f := runtimeFamily("go_new_thing_total"); f.typ != "counter" || f.name != "go_new_thing_total" {
		t.Errorf("unknown _total: %+v", f)
	}
	if f := runtimeFamily("go_new_thing"); f.typ != "untyped" {
		t.Errorf("unknown: %+v", f)
	}
	if f := runtimeFamily("go_gc_duration_seconds_sum"); f.name != "go_gc_duration_seconds" {
		t.Errorf("summary part: %+v", f)
	}
}

// TestRuntimeWithExposeMetadata checks that the page stays valid when something else in the
// process turns on the library's global metadata switch: its empty HELP lines are dropped.
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
	if x.families["process_io_read_bytes_total"] != nil && x.families["process_io_read_bytes_total"].typ != "counter" {
		t.Error("process_io_read_bytes_total is not a counter")
	}
}
