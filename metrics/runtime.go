package metrics

import (
	"bytes"
	"strings"

	"github.com/VictoriaMetrics/metrics"
)

// runtimeFamilies gives HELP and TYPE to the go_* and process_* series that
// metrics.WriteProcessMetrics and metrics.WriteFDMetrics (v1.44.0) write without them.
// Descriptions follow the library's WriteProcessMetrics documentation.
//
// Types differ from the library's own (with ExposeMetadata) where promtool would object:
// cumulative process_io_*_total values are counters, not gauges; go_cgo_calls_count,
// go_gc_forced_count and go_cpu_count are "untyped", since a counter or gauge must not end in
// _count.
var runtimeFamilies = map[string]family{
	"go_sched_latencies_seconds":          {"", "histogram", "Time goroutines spent ready to run before running (Go runtime /sched/latencies; no _sum/_count)."},
	"go_mutex_wait_seconds_total":         {"", "counter", "Time goroutines spent blocked on a sync.Mutex or sync.RWMutex."},
	"go_gc_mark_assist_cpu_seconds_total": {"", "counter", "CPU time goroutines spent assisting the garbage collector's marking."},
	"go_gc_cpu_seconds_total":             {"", "counter", "CPU time spent in the garbage collector."},
	"go_gc_pauses_seconds":                {"", "histogram", "Stop-the-world pause durations of the garbage collector (Go runtime /gc/pauses; no _sum/_count)."},
	"go_scavenge_cpu_seconds_total":       {"", "counter", "CPU time spent returning memory to the operating system."},
	"go_memlimit_bytes":                   {"", "gauge", "The Go runtime memory limit (GOMEMLIMIT)."},
	"go_memstats_alloc_bytes":             {"", "gauge", "Bytes of allocated heap objects."},
	"go_memstats_alloc_bytes_total":       {"", "counter", "Cumulative bytes allocated for heap objects."},
	"go_memstats_buck_hash_sys_bytes":     {"", "gauge", "Bytes of memory in profiling bucket hash tables."},
	"go_memstats_frees_total":             {"", "counter", "Cumulative count of heap objects freed."},
	"go_memstats_gc_cpu_fraction":         {"", "gauge", "Fraction of CPU time used by the garbage collector since the program started."},
	"go_memstats_gc_sys_bytes":            {"", "gauge", "Bytes of memory in garbage collection metadata."},
	"go_memstats_heap_alloc_bytes":        {"", "gauge", "Bytes of allocated heap objects (same as go_memstats_alloc_bytes)."},
	"go_memstats_heap_idle_bytes":         {"", "gauge", "Bytes in idle (unused) heap spans."},
	"go_memstats_heap_inuse_bytes":        {"", "gauge", "Bytes in in-use heap spans."},
	"go_memstats_heap_objects":            {"", "gauge", "Number of allocated heap objects."},
	"go_memstats_heap_released_bytes":     {"", "gauge", "Bytes of physical memory returned to the operating system."},
	"go_memstats_heap_sys_bytes":          {"", "gauge", "Bytes of heap memory obtained from the operating system."},
	"go_memstats_last_gc_time_seconds":    {"", "gauge", "Unix time the last garbage collection finished."},
	"go_memstats_lookups_total":           {"", "counter", "Cumulative pointer lookups performed by the runtime."},
	"go_memstats_mallocs_total":           {"", "counter", "Cumulative count of heap objects allocated."},
	"go_memstats_mcache_inuse_bytes":      {"", "gauge", "Bytes of allocated mcache structures."},
	"go_memstats_mcache_sys_bytes":        {"", "gauge", "Bytes of memory obtained from the operating system for mcache structures."},
	"go_memstats_mspan_inuse_bytes":       {"", "gauge", "Bytes of allocated mspan structures."},
	"go_memstats_mspan_sys_bytes":         {"", "gauge", "Bytes of memory obtained from the operating system for mspan structures."},
	"go_memstats_next_gc_bytes":           {"", "gauge", "Heap size at which the next garbage collection starts."},
	"go_memstats_other_sys_bytes":         {"", "gauge", "Bytes of memory in miscellaneous off-heap runtime allocations."},
	"go_memstats_stack_inuse_bytes":       {"", "gauge", "Bytes in goroutine stack spans."},
	"go_memstats_stack_sys_bytes":         {"", "gauge", "Bytes of stack memory obtained from the operating system."},
	"go_memstats_sys_bytes":               {"", "gauge", "Total bytes of memory obtained from the operating system by the Go runtime."},
	"go_cgo_calls_count":                  {"", "untyped", "Cumulative number of cgo calls made by the process (a counter)."},
	"go_cpu_count":                        {"", "untyped", "Number of logical CPUs usable by the process (a gauge)."},
	"go_gc_duration_seconds":              {"", "summary", "Quantiles of the last 256 garbage collection pause durations."},
	"go_gc_forced_count":                  {"", "untyped", "Cumulative number of garbage collections forced by the application (a counter)."},
	"go_gomaxprocs":                       {"", "gauge", "The GOMAXPROCS setting."},
	"go_goroutines":                       {"", "gauge", "Number of goroutines."},
	"go_threads":                          {"", "gauge", "Number of operating system threads created."},
	"go_info":                             {"", "gauge", "Go version of the binary, in the version label; always 1."},
	"go_info_ext":                         {"", "gauge", "Go compiler, GOARCH, GOOS and GOROOT of the binary, in labels; always 1."},

	"process_cpu_seconds_system_total":              {"", "counter", "CPU time spent in system calls."},
	"process_cpu_seconds_total":                     {"", "counter", "CPU time spent by the process, user and system."},
	"process_cpu_seconds_user_total":                {"", "counter", "CPU time spent in user space."},
	"process_major_pagefaults_total":                {"", "counter", "Page faults that required disk I/O."},
	"process_minor_pagefaults_total":                {"", "counter", "Page faults resolved without disk I/O."},
	"process_num_threads":                           {"", "gauge", "Number of operating system threads of the process."},
	"process_resident_memory_bytes":                 {"", "gauge", "Resident set size (RSS) of the process."},
	"process_start_time_seconds":                    {"", "gauge", "Unix time the process started."},
	"process_virtual_memory_bytes":                  {"", "gauge", "Virtual memory size of the process."},
	"process_virtual_memory_peak_bytes":             {"", "gauge", "Peak virtual memory size of the process."},
	"process_resident_memory_peak_bytes":            {"", "gauge", "Peak resident set size of the process."},
	"process_resident_memory_anon_bytes":            {"", "gauge", "Resident anonymous memory of the process."},
	"process_resident_memory_file_bytes":            {"", "gauge", "Resident file-backed memory of the process."},
	"process_resident_memory_shared_bytes":          {"", "gauge", "Resident shared memory of the process."},
	"process_io_read_bytes_total":                   {"", "counter", "Bytes read through read-like system calls."},
	"process_io_written_bytes_total":                {"", "counter", "Bytes written through write-like system calls."},
	"process_io_read_syscalls_total":                {"", "counter", "Read-like system calls."},
	"process_io_write_syscalls_total":               {"", "counter", "Write-like system calls."},
	"process_io_storage_read_bytes_total":           {"", "counter", "Bytes actually read from storage."},
	"process_io_storage_written_bytes_total":        {"", "counter", "Bytes actually written to storage."},
	"process_pressure_cpu_waiting_seconds_total":    {"", "counter", "Time processes of the cgroup (v2) waited for a CPU (PSI some)."},
	"process_pressure_cpu_stalled_seconds_total":    {"", "counter", "Time all processes of the cgroup (v2) were stalled on CPU (PSI full)."},
	"process_pressure_io_waiting_seconds_total":     {"", "counter", "Time processes of the cgroup (v2) waited for I/O (PSI some)."},
	"process_pressure_io_stalled_seconds_total":     {"", "counter", "Time all processes of the cgroup (v2) were stalled on I/O (PSI full)."},
	"process_pressure_memory_waiting_seconds_total": {"", "counter", "Time processes of the cgroup (v2) waited for memory (PSI some)."},
	"process_pressure_memory_stalled_seconds_total": {"", "counter", "Time all processes of the cgroup (v2) were stalled on memory (PSI full)."},
	"process_max_fds":                               {"", "gauge", "Maximum number of open file descriptors (one per miner and per pool connection)."},
	"process_open_fds":                              {"", "gauge", "Number of open file descriptors."},
}

// runtimeFamily returns the family a library sample named name belongs to.
// A name this table does not know (a newer library) is exposed as untyped, or as a counter when
// it ends in _total, with a generic HELP.
func runtimeFamily(name string) family {
	if f, ok := runtimeFamilies[name]; ok {
		f.name = name
		return f
	}
	for _, suffix := range [...]string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		if f, ok := runtimeFamilies[base]; ok && (f.typ == "histogram" || f.typ == "summary") {
			f.name = base
			return f
		}
	}
	typ := "untyped"
	if strings.HasSuffix(name, "_total") {
		typ = "counter"
	}
	return family{name, typ, "Reported by github.com/VictoriaMetrics/metrics."}
}

// writeRuntime writes the library's go_* and process_* series with HELP and TYPE, each family's
// samples together. Comment lines the library writes when metrics.ExposeMetadata is on are
// dropped: the HELP they carry is empty.
func writeRuntime(e *expo) {
	var buf bytes.Buffer
	metrics.WriteProcessMetrics(&buf)
	metrics.WriteFDMetrics(&buf)

	var order []family
	lines := make(map[string][]byte)
	for data := buf.Bytes(); len(data) > 0; {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i+1], data[i+1:]
		} else {
			line, data = append(line, '\n'), nil
		}
		if line[0] == '#' || line[0] == '\n' {
			continue
		}
		n := bytes.IndexAny(line, "{ ")
		if n <= 0 {
			continue // not a sample line; the library writes none
		}
		f := runtimeFamily(string(line[:n]))
		if _, seen := lines[f.name]; !seen {
			order = append(order, f)
		}
		lines[f.name] = append(lines[f.name], line...)
	}
	for i := range order {
		e.header(&order[i])
		e.w.Write(lines[order[i].name])
	}
}
