package metrics

import (
	"bytes"
	"io"
	"math"
	"os"
	"runtime"
	rtmetrics "runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The go_* and process_* families are written here, from the runtime, runtime/metrics and /proc,
// each with its HELP and TYPE. Their names, label names, bucket boundaries and values are those
// of github.com/VictoriaMetrics/metrics v1.44.0 (WriteProcessMetrics and WriteFDMetrics), which
// the proxy used to call and re-parse, so dashboards and recording rules keep working;
// TestRuntimeSameSeriesAsLibrary compares the two.
//
// Types differ from the library's where promtool would object: cumulative process_io_*_total
// values are counters, not gauges; go_cgo_calls_count, go_gc_forced_count and go_cpu_count are
// "untyped", since a counter or gauge must not end in _count.
//
// On a system without /proc the process_* families are left out. None of them carries the
// `proxy` label: the scrape's `instance` tells processes apart.

// Go runtime histograms (runtime/metrics), in exposition order.
var (
	famSchedLatencies = family{"go_sched_latencies_seconds", "histogram", "Time goroutines spent ready to run before running (Go runtime /sched/latencies; no _sum/_count)."}
	famMutexWait      = family{"go_mutex_wait_seconds_total", "counter", "Time goroutines spent blocked on a sync.Mutex or sync.RWMutex."}
	famGCAssistCPU    = family{"go_gc_mark_assist_cpu_seconds_total", "counter", "CPU time goroutines spent assisting the garbage collector's marking."}
	famGCCPU          = family{"go_gc_cpu_seconds_total", "counter", "CPU time spent in the garbage collector."}
	famGCPauses       = family{"go_gc_pauses_seconds", "histogram", "Stop-the-world pause durations of the garbage collector (Go runtime /gc/pauses; no _sum/_count)."}
	famScavengeCPU    = family{"go_scavenge_cpu_seconds_total", "counter", "CPU time spent returning memory to the operating system."}
	famMemLimit       = family{"go_memlimit_bytes", "gauge", "The Go runtime memory limit (GOMEMLIMIT)."}
)

// runtimeSamples maps runtime/metrics names to families. A name the running Go version does not
// have is left out (runtimeKnown).
var runtimeSamples = []struct {
	name string
	f    *family
}{
	{"/sched/latencies:seconds", &famSchedLatencies},
	{"/sync/mutex/wait/total:seconds", &famMutexWait},
	{"/cpu/classes/gc/mark/assist:cpu-seconds", &famGCAssistCPU},
	{"/cpu/classes/gc/total:cpu-seconds", &famGCCPU},
	{"/gc/pauses:seconds", &famGCPauses},
	{"/cpu/classes/scavenge/total:cpu-seconds", &famScavengeCPU},
	{"/gc/gomemlimit:bytes", &famMemLimit},
}

var runtimeKnown = sync.OnceValue(func() []int {
	all := make(map[string]bool)
	for _, d := range rtmetrics.All() {
		all[d.Name] = true
	}
	var idx []int
	for i, s := range runtimeSamples {
		if all[s.name] {
			idx = append(idx, i)
		}
	}
	return idx
})

// runtime.MemStats.
var (
	famAlloc         = family{"go_memstats_alloc_bytes", "gauge", "Bytes of allocated heap objects."}
	famAllocTotal    = family{"go_memstats_alloc_bytes_total", "counter", "Cumulative bytes allocated for heap objects."}
	famBuckHash      = family{"go_memstats_buck_hash_sys_bytes", "gauge", "Bytes of memory in profiling bucket hash tables."}
	famFrees         = family{"go_memstats_frees_total", "counter", "Cumulative count of heap objects freed."}
	famGCCPUFraction = family{"go_memstats_gc_cpu_fraction", "gauge", "Fraction of CPU time used by the garbage collector since the program started."}
	famGCSys         = family{"go_memstats_gc_sys_bytes", "gauge", "Bytes of memory in garbage collection metadata."}
	famHeapAlloc     = family{"go_memstats_heap_alloc_bytes", "gauge", "Bytes of allocated heap objects (same as go_memstats_alloc_bytes)."}
	famHeapIdle      = family{"go_memstats_heap_idle_bytes", "gauge", "Bytes in idle (unused) heap spans."}
	famHeapInuse     = family{"go_memstats_heap_inuse_bytes", "gauge", "Bytes in in-use heap spans."}
	famHeapObjects   = family{"go_memstats_heap_objects", "gauge", "Number of allocated heap objects."}
	famHeapReleased  = family{"go_memstats_heap_released_bytes", "gauge", "Bytes of physical memory returned to the operating system."}
	famHeapSys       = family{"go_memstats_heap_sys_bytes", "gauge", "Bytes of heap memory obtained from the operating system."}
	famLastGC        = family{"go_memstats_last_gc_time_seconds", "gauge", "Unix time the last garbage collection finished."}
	famLookups       = family{"go_memstats_lookups_total", "counter", "Cumulative pointer lookups performed by the runtime."}
	famMallocs       = family{"go_memstats_mallocs_total", "counter", "Cumulative count of heap objects allocated."}
	famMCacheInuse   = family{"go_memstats_mcache_inuse_bytes", "gauge", "Bytes of allocated mcache structures."}
	famMCacheSys     = family{"go_memstats_mcache_sys_bytes", "gauge", "Bytes of memory obtained from the operating system for mcache structures."}
	famMSpanInuse    = family{"go_memstats_mspan_inuse_bytes", "gauge", "Bytes of allocated mspan structures."}
	famMSpanSys      = family{"go_memstats_mspan_sys_bytes", "gauge", "Bytes of memory obtained from the operating system for mspan structures."}
	famNextGC        = family{"go_memstats_next_gc_bytes", "gauge", "Heap size at which the next garbage collection starts."}
	famOtherSys      = family{"go_memstats_other_sys_bytes", "gauge", "Bytes of memory in miscellaneous off-heap runtime allocations."}
	famStackInuse    = family{"go_memstats_stack_inuse_bytes", "gauge", "Bytes in goroutine stack spans."}
	famStackSys      = family{"go_memstats_stack_sys_bytes", "gauge", "Bytes of stack memory obtained from the operating system."}
	famSys           = family{"go_memstats_sys_bytes", "gauge", "Total bytes of memory obtained from the operating system by the Go runtime."}
	famCgoCalls      = family{"go_cgo_calls_count", "untyped", "Cumulative number of cgo calls made by the process (a counter)."}
	famCPUCount      = family{"go_cpu_count", "untyped", "Number of logical CPUs usable by the process (a gauge)."}
	famGCDuration    = family{"go_gc_duration_seconds", "summary", "Quantiles of the last 256 garbage collection pause durations."}
	famGCForced      = family{"go_gc_forced_count", "untyped", "Cumulative number of garbage collections forced by the application (a counter)."}
	famGomaxprocs    = family{"go_gomaxprocs", "gauge", "The GOMAXPROCS setting."}
	famGoroutines    = family{"go_goroutines", "gauge", "Number of goroutines."}
	famThreads       = family{"go_threads", "gauge", "Number of operating system threads created."}
	famGoInfo        = family{"go_info", "gauge", "Go version of the binary, in the version label; always 1."}
	famGoInfoExt     = family{"go_info_ext", "gauge", "Go compiler, GOARCH, GOOS and GOROOT of the binary, in labels; always 1."}
)

// /proc.
var (
	famCPUSystem    = family{"process_cpu_seconds_system_total", "counter", "CPU time spent in system calls."}
	famCPU          = family{"process_cpu_seconds_total", "counter", "CPU time spent by the process, user and system."}
	famCPUUser      = family{"process_cpu_seconds_user_total", "counter", "CPU time spent in user space."}
	famMajFaults    = family{"process_major_pagefaults_total", "counter", "Page faults that required disk I/O."}
	famMinFaults    = family{"process_minor_pagefaults_total", "counter", "Page faults resolved without disk I/O."}
	famNumThreads   = family{"process_num_threads", "gauge", "Number of operating system threads of the process."}
	famRSS          = family{"process_resident_memory_bytes", "gauge", "Resident set size (RSS) of the process."}
	famStartTime    = family{"process_start_time_seconds", "gauge", "Unix time the process started."}
	famVirtual      = family{"process_virtual_memory_bytes", "gauge", "Virtual memory size of the process."}
	famVirtualPeak  = family{"process_virtual_memory_peak_bytes", "gauge", "Peak virtual memory size of the process."}
	famRSSPeak      = family{"process_resident_memory_peak_bytes", "gauge", "Peak resident set size of the process."}
	famRSSAnon      = family{"process_resident_memory_anon_bytes", "gauge", "Resident anonymous memory of the process."}
	famRSSFile      = family{"process_resident_memory_file_bytes", "gauge", "Resident file-backed memory of the process."}
	famRSSShared    = family{"process_resident_memory_shared_bytes", "gauge", "Resident shared memory of the process."}
	famIORead       = family{"process_io_read_bytes_total", "counter", "Bytes read through read-like system calls."}
	famIOWritten    = family{"process_io_written_bytes_total", "counter", "Bytes written through write-like system calls."}
	famIOReadCalls  = family{"process_io_read_syscalls_total", "counter", "Read-like system calls."}
	famIOWriteCalls = family{"process_io_write_syscalls_total", "counter", "Write-like system calls."}
	famIOStorRead   = family{"process_io_storage_read_bytes_total", "counter", "Bytes actually read from storage."}
	famIOStorWrite  = family{"process_io_storage_written_bytes_total", "counter", "Bytes actually written to storage."}
	famMaxFDs       = family{"process_max_fds", "gauge", "Maximum number of open file descriptors (one per miner and per pool connection)."}
	famOpenFDs      = family{"process_open_fds", "gauge", "Number of open file descriptors."}
)

// Cgroup v2 pressure stall information, in the order of psiFiles: some, then full, per file.
var famPSI = [...]family{
	{"process_pressure_cpu_waiting_seconds_total", "counter", "Time processes of the cgroup (v2) waited for a CPU (PSI some)."},
	{"process_pressure_cpu_stalled_seconds_total", "counter", "Time all processes of the cgroup (v2) were stalled on CPU (PSI full)."},
	{"process_pressure_io_waiting_seconds_total", "counter", "Time processes of the cgroup (v2) waited for I/O (PSI some)."},
	{"process_pressure_io_stalled_seconds_total", "counter", "Time all processes of the cgroup (v2) were stalled on I/O (PSI full)."},
	{"process_pressure_memory_waiting_seconds_total", "counter", "Time processes of the cgroup (v2) waited for memory (PSI some)."},
	{"process_pressure_memory_stalled_seconds_total", "counter", "Time all processes of the cgroup (v2) were stalled on memory (PSI full)."},
}

var psiFiles = [...]string{"cpu.pressure", "io.pressure", "memory.pressure"}

// writeRuntime writes the go_* and process_* families.
func writeRuntime(e *expo) {
	writeGo(e)
	writeProc(e)
}

// rtUint writes a family of one sample without labels: HELP, TYPE and "name v".
func (e *expo) rtUint(f *family, v uint64) {
	e.header(f)
	e.b = append(e.b[:0], f.name...)
	e.b = append(e.b, ' ')
	e.b = strconv.AppendUint(e.b, v, 10)
	e.b = append(e.b, '\n')
	e.w.Write(e.b)
}

// rtFloat is rtUint for a float value.
func (e *expo) rtFloat(f *family, v float64) {
	e.header(f)
	e.b = append(e.b[:0], f.name...)
	e.b = append(e.b, ' ')
	e.b = appendFloat(e.b, v)
	e.b = append(e.b, '\n')
	e.w.Write(e.b)
}

// rtBucket writes name_bucket{le="le"} v.
func (e *expo) rtBucket(f *family, le float64, v uint64) {
	e.b = append(e.b[:0], f.name...)
	e.b = append(e.b, `_bucket{le="`...)
	e.b = appendFloat(e.b, le)
	e.b = append(e.b, `"} `...)
	e.b = strconv.AppendUint(e.b, v, 10)
	e.b = append(e.b, '\n')
	e.w.Write(e.b)
}

// rtSample writes name suffix{label="value"} v, without a header.
func (e *expo) rtSample(f *family, suffix, label, value string, v float64) {
	e.b = append(e.b[:0], f.name...)
	e.b = append(e.b, suffix...)
	if label != "" {
		e.b = append(e.b, '{')
		e.b = appendLabel(e.b, label, value)
		e.b = append(e.b, '}')
	}
	e.b = append(e.b, ' ')
	e.b = appendFloat(e.b, v)
	e.b = append(e.b, '\n')
	e.w.Write(e.b)
}

func writeGo(e *expo) {
	known := runtimeKnown()
	samples := make([]rtmetrics.Sample, len(known))
	for i, k := range known {
		samples[i].Name = runtimeSamples[k].name
	}
	rtmetrics.Read(samples)
	for i, k := range known {
		f := runtimeSamples[k].f
		switch v := samples[i].Value; v.Kind() {
		case rtmetrics.KindUint64:
			e.rtUint(f, v.Uint64())
		case rtmetrics.KindFloat64:
			e.rtFloat(f, v.Float64())
		case rtmetrics.KindFloat64Histogram:
			writeRuntimeHistogram(e, f, v.Float64Histogram())
		}
	}

	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	e.rtUint(&famAlloc, ms.Alloc)
	e.rtUint(&famAllocTotal, ms.TotalAlloc)
	e.rtUint(&famBuckHash, ms.BuckHashSys)
	e.rtUint(&famFrees, ms.Frees)
	e.rtFloat(&famGCCPUFraction, ms.GCCPUFraction)
	e.rtUint(&famGCSys, ms.GCSys)
	e.rtUint(&famHeapAlloc, ms.HeapAlloc)
	e.rtUint(&famHeapIdle, ms.HeapIdle)
	e.rtUint(&famHeapInuse, ms.HeapInuse)
	e.rtUint(&famHeapObjects, ms.HeapObjects)
	e.rtUint(&famHeapReleased, ms.HeapReleased)
	e.rtUint(&famHeapSys, ms.HeapSys)
	e.rtFloat(&famLastGC, float64(ms.LastGC)/1e9)
	e.rtUint(&famLookups, ms.Lookups)
	e.rtUint(&famMallocs, ms.Mallocs)
	e.rtUint(&famMCacheInuse, ms.MCacheInuse)
	e.rtUint(&famMCacheSys, ms.MCacheSys)
	e.rtUint(&famMSpanInuse, ms.MSpanInuse)
	e.rtUint(&famMSpanSys, ms.MSpanSys)
	e.rtUint(&famNextGC, ms.NextGC)
	e.rtUint(&famOtherSys, ms.OtherSys)
	e.rtUint(&famStackInuse, ms.StackInuse)
	e.rtUint(&famStackSys, ms.StackSys)
	e.rtUint(&famSys, ms.Sys)
	e.rtUint(&famCgoCalls, uint64(runtime.NumCgoCall()))
	e.rtUint(&famCPUCount, uint64(runtime.NumCPU()))
	writeGCDuration(e, &ms)
	e.rtUint(&famGCForced, uint64(ms.NumForcedGC))
	e.rtUint(&famGomaxprocs, uint64(runtime.GOMAXPROCS(0)))
	e.rtUint(&famGoroutines, uint64(runtime.NumGoroutine()))
	threads, _ := runtime.ThreadCreateProfile(nil)
	e.rtUint(&famThreads, uint64(threads))

	e.header(&famGoInfo)
	e.rtSample(&famGoInfo, "", "version", runtime.Version(), 1)
	e.header(&famGoInfoExt)
	e.b = append(e.b[:0], famGoInfoExt.name...)
	e.b = append(e.b, '{')
	e.b = appendLabel(e.b, "compiler", runtime.Compiler)
	e.b = append(e.b, ',')
	e.b = appendLabel(e.b, "GOARCH", runtime.GOARCH)
	e.b = append(e.b, ',')
	e.b = appendLabel(e.b, "GOOS", runtime.GOOS)
	e.b = append(e.b, ',')
	e.b = appendLabel(e.b, "GOROOT", runtime.GOROOT()) //nolint:staticcheck // the library exposed it
	e.b = append(e.b, "} 1\n"...)
	e.w.Write(e.b)
}

// maxRuntimeBuckets bounds the bucket lines of a Go runtime histogram, as the library did: the
// runtime has about 160 buckets per histogram.
const maxRuntimeBuckets = 30

// writeRuntimeHistogram writes the cumulative buckets of h with the library's choice of
// boundaries: buckets above 1s are folded into +Inf for _seconds histograms, then every
// len/30-th boundary is kept. There is no _sum or _count: the runtime does not know the sum.
func writeRuntimeHistogram(e *expo, f *family, h *rtmetrics.Float64Histogram) {
	buckets, counts := h.Buckets, h.Counts
	if len(buckets) != len(counts)+1 {
		return // not what runtime/metrics documents
	}
	e.header(f)
	var tail uint64
	if strings.HasSuffix(f.name, "_seconds") {
		for len(buckets) > 0 && buckets[len(buckets)-1] > 1 {
			buckets = buckets[:len(buckets)-1]
			tail += counts[len(counts)-1]
			counts = counts[:len(counts)-1]
		}
	}
	step := float64(len(buckets)) / maxRuntimeBuckets
	var total uint64
	next := 0.0
	for i, c := range counts {
		total += c
		if float64(i) < next {
			continue
		}
		next += step
		if b := buckets[i+1]; !math.IsInf(b, 1) {
			e.rtBucket(f, b, total)
		}
	}
	e.rtBucket(f, math.Inf(1), total+tail)
}

// gcQuantiles are the quantiles of go_gc_duration_seconds.
var gcQuantiles = [...]struct {
	q     float64
	label string
}{{0, "0"}, {0.25, "0.25"}, {0.5, "0.5"}, {0.75, "0.75"}, {1, "1"}}

// writeGCDuration writes the quantiles of the recorded GC pauses (the last 256 at most; none
// before the first GC), their sum and count since start.
func writeGCDuration(e *expo, ms *runtime.MemStats) {
	f := &famGCDuration
	e.header(f)
	n := min(int(ms.NumGC), len(ms.PauseNs))
	if n > 0 {
		p := make([]uint64, n)
		copy(p, ms.PauseNs[:n]) // a ring filled from 0: the first NumGC entries, or all
		slices.Sort(p)
		for _, q := range gcQuantiles {
			i := int(math.Round(q.q * float64(n-1)))
			e.rtSample(f, "", "quantile", q.label, float64(p[i])/1e9)
		}
	}
	e.rtSample(f, "_sum", "", "", float64(ms.PauseTotalNs)/1e9)
	e.rtSample(f, "_count", "", "", float64(ms.NumGC))
}

// userHZ is the unit of the CPU times in /proc/self/stat (USER_HZ, 100 on every Linux ABI).
const userHZ = 100

func writeProc(e *expo) {
	var buf []byte
	read := func(path string) []byte {
		f, err := os.Open(path)
		if err != nil {
			return nil
		}
		defer f.Close()
		b := bytes.NewBuffer(buf[:0])
		if _, err := b.ReadFrom(f); err != nil {
			return nil
		}
		buf = b.Bytes()
		return buf
	}

	if st, ok := parseStat(read("/proc/self/stat")); ok {
		e.rtFloat(&famCPUSystem, float64(st.stime)/userHZ)
		e.rtFloat(&famCPU, float64(st.utime+st.stime)/userHZ)
		e.rtFloat(&famCPUUser, float64(st.utime)/userHZ)
		e.rtUint(&famMajFaults, st.majflt)
		e.rtUint(&famMinFaults, st.minflt)
		e.rtUint(&famNumThreads, st.threads)
		e.rtUint(&famRSS, st.rss*uint64(os.Getpagesize()))
		e.rtFloat(&famStartTime, startTime(st.start))
		e.rtUint(&famVirtual, st.vsize)
	}

	if data := read("/proc/self/status"); data != nil {
		// kB values of VmPeak, VmHWM, RssAnon, RssFile and RssShmem.
		var v [5]uint64
		keys := [...]string{"VmPeak:", "VmHWM:", "RssAnon:", "RssFile:", "RssShmem:"}
		forFields(data, func(key, val []byte) {
			for i, k := range keys {
				if string(key) == k {
					n, _ := strconv.ParseUint(string(val), 10, 64)
					v[i] = n * 1024
				}
			}
		})
		e.rtUint(&famVirtualPeak, v[0])
		e.rtUint(&famRSSPeak, v[1])
		e.rtUint(&famRSSAnon, v[2])
		e.rtUint(&famRSSFile, v[3])
		e.rtUint(&famRSSShared, v[4])
	}

	if data := read("/proc/self/io"); data != nil {
		var v [6]uint64
		keys := [...]string{"rchar:", "wchar:", "syscr:", "syscw:", "read_bytes:", "write_bytes:"}
		forFields(data, func(key, val []byte) {
			for i, k := range keys {
				if string(key) == k {
					v[i], _ = strconv.ParseUint(string(val), 10, 64)
				}
			}
		})
		e.rtUint(&famIORead, v[0])
		e.rtUint(&famIOWritten, v[1])
		e.rtUint(&famIOReadCalls, v[2])
		e.rtUint(&famIOWriteCalls, v[3])
		e.rtUint(&famIOStorRead, v[4])
		e.rtUint(&famIOStorWrite, v[5])
	}

	if start := psiStart(); start != nil {
		if now, ok := readPSI(start.dir); ok {
			for i := range famPSI {
				// Counted from the proxy's start, as the library did: the cgroup's totals
				// include whatever ran in it before.
				e.rtFloat(&famPSI[i], float64(now.total[i]-min(now.total[i], start.total[i]))/1e6)
			}
		}
	}

	maxFDs, okMax := maxOpenFiles(read("/proc/self/limits"))
	openFDs, okOpen := countOpenFDs()
	if okMax && okOpen {
		e.rtUint(&famMaxFDs, maxFDs)
		e.rtUint(&famOpenFDs, openFDs)
	}
}

// forFields calls fn with the first two fields of each line of data ("key: value unit").
func forFields(data []byte, fn func(key, val []byte)) {
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		key, rest, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue
		}
		fn(line[:len(key)+1], firstField(rest))
	}
}

// firstField returns the first space- or tab-separated field of b.
func firstField(b []byte) []byte {
	b = bytes.TrimLeft(b, " \t")
	if i := bytes.IndexAny(b, " \t\n"); i >= 0 {
		b = b[:i]
	}
	return b
}

type procStat struct {
	minflt, majflt, utime, stime, threads, start, vsize, rss uint64
}

// parseStat reads /proc/self/stat (proc(5)): the fields after the command's closing parenthesis,
// numbered from 3 (state).
func parseStat(data []byte) (procStat, bool) {
	var st procStat
	n := bytes.LastIndex(data, []byte(") "))
	if n < 0 {
		return st, false
	}
	fields := bytes.Fields(data[n+2:])
	if len(fields) < 22 {
		return st, false
	}
	get := func(field int) uint64 {
		v, _ := strconv.ParseUint(string(fields[field-3]), 10, 64)
		return v
	}
	st.minflt, st.majflt = get(10), get(12)
	st.utime, st.stime = get(14), get(15)
	st.threads, st.start = get(20), get(22)
	st.vsize = get(23)
	if rss, err := strconv.ParseInt(string(fields[24-3]), 10, 64); err == nil && rss > 0 {
		st.rss = uint64(rss)
	}
	return st, true
}

// processStart is when this package was initialised: process_start_time_seconds when the boot
// time is unknown.
var processStart = time.Now()

// bootTime is btime of /proc/stat, the Unix time the system booted, or 0.
var bootTime = sync.OnceValue(func() uint64 {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
})

// startTime is the process's start in Unix seconds, from its start in clock ticks after boot.
func startTime(ticks uint64) float64 {
	if bt := bootTime(); bt != 0 && ticks != 0 {
		return float64(bt) + float64(ticks)/userHZ
	}
	return float64(processStart.Unix())
}

// maxOpenFiles returns the soft limit of "Max open files" in /proc/self/limits.
func maxOpenFiles(data []byte) (uint64, bool) {
	const prefix = "Max open files"
	for line := range bytes.SplitSeq(data, []byte{'\n'}) {
		rest, ok := bytes.CutPrefix(line, []byte(prefix))
		if !ok {
			continue
		}
		soft := firstField(rest)
		if string(soft) == "unlimited" {
			return math.MaxUint64, true
		}
		v, err := strconv.ParseUint(string(soft), 10, 64)
		return v, err == nil
	}
	return 0, false
}

// countOpenFDs counts the entries of /proc/self/fd (the directory's own descriptor included,
// as the library counted it).
func countOpenFDs() (uint64, bool) {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return 0, false
	}
	defer d.Close()
	var n uint64
	for range 1 << 16 { // 32M descriptors at most: far above any limit
		names, err := d.Readdirnames(512)
		n += uint64(len(names))
		if err == io.EOF {
			return n, true
		}
		if err != nil {
			return 0, false
		}
	}
	return n, true
}

type psi struct {
	dir   string
	total [2 * len(psiFiles)]uint64 // µs: some, full per file
}

// psiStart is the pressure totals when the proxy started (the first call), or nil without
// cgroup v2 pressure files.
var psiStart = sync.OnceValue(func() *psi {
	dir := cgroupV2Dir()
	if dir == "" {
		return nil
	}
	p, ok := readPSI(dir)
	if !ok {
		return nil
	}
	return &p
})

func init() { go psiStart() } // the baseline at start, off the main goroutine (see cgroupV2Dir)

func readPSI(dir string) (psi, bool) {
	p := psi{dir: dir}
	for i, name := range psiFiles {
		data, err := os.ReadFile(dir + "/" + name)
		if err != nil {
			return p, false
		}
		for line := range bytes.SplitSeq(data, []byte{'\n'}) {
			kind, rest, ok := bytes.Cut(line, []byte{' '})
			if !ok {
				continue
			}
			_, total, ok := bytes.Cut(rest, []byte("total="))
			if !ok {
				continue
			}
			v, err := strconv.ParseUint(string(firstField(total)), 10, 64)
			if err != nil {
				return p, false
			}
			switch string(kind) {
			case "some":
				p.total[2*i] = v
			case "full":
				p.total[2*i+1] = v
			}
		}
	}
	return p, true
}

// cgroupV2Dir is the process's cgroup v2 directory, or "" when it runs under none. The mount
// point comes from /proc/self/mountinfo, /sys/fs/cgroup when that does not say. Reading
// mountinfo can block on a hung mount: after a second the default is used.
func cgroupV2Dir() string {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return ""
	}
	rel := ""
	found := false
	for line := range strings.SplitSeq(string(data), "\n") {
		if r, ok := strings.CutPrefix(line, "0::"); ok {
			rel, found = strings.TrimSpace(r), true
			break
		}
	}
	if !found {
		return ""
	}
	mount := "/sys/fs/cgroup"
	ch := make(chan []byte, 1)
	go func() {
		b, _ := os.ReadFile("/proc/self/mountinfo")
		ch <- b
	}()
	select {
	case mi := <-ch:
		if m := cgroupV2Mount(string(mi)); m != "" {
			mount = m
		}
	case <-time.After(time.Second):
	}
	return strings.TrimSuffix(mount+"/"+strings.TrimPrefix(rel, "/"), "/")
}

// cgroupV2Mount returns the mount point of the cgroup2 file system in mountinfo (proc(5):
// "36 35 98:0 / /sys/fs/cgroup rw,... - cgroup2 cgroup2 rw,...").
func cgroupV2Mount(mountinfo string) string {
	for line := range strings.SplitSeq(mountinfo, "\n") {
		before, after, ok := strings.Cut(line, " - ")
		if !ok || !strings.HasPrefix(after, "cgroup2 ") {
			continue
		}
		if f := strings.Fields(before); len(f) >= 5 {
			return f[4]
		}
	}
	return ""
}
