package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"
)

// Report is everything the suite measured; --json writes it as is, so runs
// of different commits can be compared field by field.
type Report struct {
	Date      string   `json:"date"`
	Commit    string   `json:"commit"`
	Command   string   `json:"command"`
	Quick     bool     `json:"quick"`
	Scenarios []string `json:"scenarios"`
	Proxy     string   `json:"proxy"` // "binary" or "pprof harness"
	Machine   Machine  `json:"machine"`
	ElapsedS  float64  `json:"elapsed_s"`

	Rows      []Row          `json:"rows"`
	Targets   []Target       `json:"targets"`
	Anomalies []Anomaly      `json:"anomalies"`
	Runs      []RunRecord    `json:"runs"`
	Benchmark []BenchResult  `json:"go_benchmarks,omitempty"`
	Notes     []string       `json:"notes,omitempty"`
	values    map[string]Row // by key, for the targets
}

// Machine describes where the numbers come from.
type Machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	MemTotal  string `json:"mem_total"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go_version"`
	FDLimit   uint64 `json:"fd_limit_hard"`
	// LoadStart and LoadEnd are /proc/loadavg before and after the run:
	// anything else busy on the machine skews the numbers.
	LoadStart string `json:"loadavg_start"`
	LoadEnd   string `json:"loadavg_end"`
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// Row is one line of the results table: a metric measured with miners
// straight to the pool and through the proxy. Straight or Proxy is nil when
// that side does not apply; Ratio is Proxy/Straight.
type Row struct {
	Key      string   `json:"key"`
	Scenario string   `json:"scenario"`
	Case     string   `json:"case"`
	Metric   string   `json:"metric"`
	Unit     string   `json:"unit"`
	Straight *float64 `json:"straight"`
	Proxy    *float64 `json:"proxy"`
	Ratio    *float64 `json:"ratio"`
	Note     string   `json:"note,omitempty"`
	// NoRatio leaves Ratio out where straight and proxy measure different
	// things (the pool's write time, a count set by the suite).
	NoRatio bool `json:"-"`
}

// Target is one of the project's benchmark targets and whether it was met.
type Target struct {
	Name     string `json:"name"`
	Goal     string `json:"goal"`
	Measured string `json:"measured"`
	Met      *bool  `json:"met"` // nil: not measured in this run
	Note     string `json:"note,omitempty"`
}

// Anomaly is something that looked like a bug.
type Anomaly struct {
	Scenario string `json:"scenario"`
	What     string `json:"what"`
}

// RunRecord is one load run: the exact child command lines and the flood's
// summary, so any number can be reproduced by hand.
type RunRecord struct {
	Scenario string          `json:"scenario"`
	Case     string          `json:"case"`
	Side     string          `json:"side"` // straight or proxy
	Commands []string        `json:"commands"`
	Flood    json.RawMessage `json:"flood_summary,omitempty"`
	Extra    map[string]any  `json:"extra,omitempty"`
}

// BenchResult is one Go benchmark line.
type BenchResult struct {
	Name        string             `json:"name"`
	Package     string             `json:"package"`
	N           int64              `json:"n"`
	NsPerOp     float64            `json:"ns_per_op"`
	BytesPerOp  float64            `json:"bytes_per_op"`
	AllocsPerOp float64            `json:"allocs_per_op"`
	Extra       map[string]float64 `json:"extra,omitempty"`
}

func (r *Report) init(s *suite, args []string) {
	r.Date = time.Now().UTC().Format(time.RFC3339)
	r.Command = cmdline(append([]string{"go", "run", "./bench/cmd/suite"}, args...))
	r.Quick = s.opts.quick
	r.Scenarios = s.opts.scenarios
	r.Proxy = "binary " + s.proxyBin
	if s.opts.profile != "" {
		r.Proxy = "pprof harness (--role=proxy)"
	}
	r.Commit = gitCommit(s.root)
	r.Machine = machine()
	r.values = map[string]Row{}
}

func gitCommit(root string) string {
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		c += "+dirty"
	}
	return c
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				var kb uint64
				fmt.Sscan(rest, &kb)
				m.MemTotal = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	m.LoadStart = loadavg()
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil {
		m.FDLimit = rl.Max
	}
	return m
}

func fp(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// add records a row; key identifies it for the targets.
func (s *suite) add(r Row) {
	if r.Straight != nil && r.Proxy != nil && *r.Straight != 0 && !r.NoRatio {
		r.Ratio = fp(*r.Proxy / *r.Straight)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.report.Rows = append(s.report.Rows, r)
	if r.Key != "" {
		s.report.values[r.Key] = r
	}
	s.logf("  %-22s %-34s straight %-10s proxy %-10s ratio %s %s", r.Case, r.Metric+" ("+r.Unit+")",
		fmtVal(r.Straight), fmtVal(r.Proxy), fmtRatio(r.Ratio), r.Note)
}

func (s *suite) addRun(rr RunRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.report.Runs = append(s.report.Runs, rr)
}

func (s *suite) note(format string, a ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.report.Notes = append(s.report.Notes, fmt.Sprintf(format, a...))
}

func fmtVal(v *float64) string {
	if v == nil {
		return "-"
	}
	x := *v
	switch a := math.Abs(x); {
	case a == 0:
		return "0"
	case a >= 100000:
		return fmt.Sprintf("%.0f", x)
	case a >= 100:
		return fmt.Sprintf("%.1f", x)
	case a >= 1:
		return fmt.Sprintf("%.2f", x)
	default:
		return fmt.Sprintf("%.3g", x)
	}
}

func fmtRatio(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.2fx", *v)
}

// Keys of the rows the targets read.
const (
	keyRSS18000      = "memory.split.18000.rss_per_miner"
	keyFanoutP99     = "fanout.latency.p99"
	keyFanoutMiners  = "fanout.miners"
	keyRelaySat      = "relay.saturation.accepted_per_s"
	keyRelayAllocs   = "allocs.BenchmarkRelayShare"
	keyUpstreams     = "upstreams.split.upstreams"
	keyUpstreamMiner = "upstreams.split.miners"
)

// evaluateTargets compares the rows with the project's targets. They are
// benchmarks, not pass/fail: a missed one is reported with its margin.
func (r *Report) evaluateTargets() {
	yes, no := true, false
	met := func(ok bool) *bool {
		if ok {
			return &yes
		}
		return &no
	}
	get := func(k string) (Row, bool) { v, ok := r.values[k]; return v, ok }

	t := Target{Name: "memory", Goal: "<= 4 KiB RSS per miner at 18,000 miners (split)"}
	if v, ok := get(keyRSS18000); ok && v.Proxy != nil {
		kib := *v.Proxy
		t.Measured = fmt.Sprintf("%.2f KiB per miner", kib)
		t.Met = met(kib <= 4)
		if kib > 4 {
			t.Note = fmt.Sprintf("over by %.2f KiB (%.0f%%)", kib-4, (kib/4-1)*100)
		}
	}
	r.Targets = append(r.Targets, t)

	t = Target{Name: "notify fan-out", Goal: "p99 <= 50 ms at 18,000 miners (pool send -> miner)"}
	if v, ok := get(keyFanoutP99); ok && v.Proxy != nil {
		n, _ := get(keyFanoutMiners)
		t.Measured = fmt.Sprintf("p99 %.1f ms", *v.Proxy)
		if n.Proxy != nil {
			t.Measured += fmt.Sprintf(" at %.0f miners", *n.Proxy)
		}
		t.Met = met(*v.Proxy <= 50)
		if *v.Proxy > 50 {
			t.Note = fmt.Sprintf("over by %.1f ms", *v.Proxy-50)
		}
		if n.Proxy != nil && *n.Proxy < 18000 {
			t.Note = strings.TrimSpace(t.Note + " (fewer miners than the target's 18,000: --quick)")
		}
	}
	r.Targets = append(r.Targets, t)

	t = Target{Name: "share throughput", Goal: ">= 0.8x of miners straight to the pool"}
	if v, ok := get(keyRelaySat); ok && v.Ratio != nil {
		t.Measured = fmt.Sprintf("%.2fx (%.0f vs %.0f shares/s)", *v.Ratio, *v.Proxy, *v.Straight)
		t.Met = met(*v.Ratio >= 0.8)
		if *v.Ratio < 0.8 {
			t.Note = fmt.Sprintf("short by %.2fx", 0.8-*v.Ratio)
		}
	}
	r.Targets = append(r.Targets, t)

	t = Target{Name: "allocations", Goal: "0 allocations per relayed share in steady state"}
	if v, ok := get(keyRelayAllocs); ok && v.Proxy != nil {
		t.Measured = fmt.Sprintf("%.0f allocs/op (BenchmarkRelayShare)", *v.Proxy)
		t.Met = met(*v.Proxy == 0)
	}
	r.Targets = append(r.Targets, t)

	t = Target{Name: "upstreams", Goal: "one upstream per 65,536 miners of an account"}
	if v, ok := get(keyUpstreams); ok && v.Proxy != nil {
		n, _ := get(keyUpstreamMiner)
		want := 1.0
		if n.Proxy != nil {
			want = math.Max(1, math.Ceil(*n.Proxy/65536))
			t.Measured = fmt.Sprintf("%.0f upstream(s) for %.0f miners", *v.Proxy, *n.Proxy)
		} else {
			t.Measured = fmt.Sprintf("%.0f upstream(s)", *v.Proxy)
		}
		t.Met = met(*v.Proxy == want)
		if *v.Proxy != want {
			t.Note = fmt.Sprintf("expected %.0f", want)
		}
	}
	r.Targets = append(r.Targets, t)
}

// writeTable prints the human report.
func (r *Report) writeTable(w io.Writer) {
	fmt.Fprintf(w, "\nstratum-proxy benchmark suite  %s  commit %s  %s\n", r.Date, r.Commit, r.Command)
	fmt.Fprintf(w, "machine: %d CPUs %s, %s RAM, kernel %s, %s, fd limit %d per process; load %s -> %s; proxy: %s\n\n",
		r.Machine.CPUs, r.Machine.CPUModel, r.Machine.MemTotal, r.Machine.Kernel, r.Machine.GoVersion, r.Machine.FDLimit,
		r.Machine.LoadStart, r.Machine.LoadEnd, r.Proxy)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tcase\tmetric\tunit\tstraight\tproxy\tratio\tnote")
	for _, x := range r.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", x.Scenario, x.Case, x.Metric, x.Unit,
			fmtVal(x.Straight), fmtVal(x.Proxy), fmtRatio(x.Ratio), x.Note)
	}
	tw.Flush()
	fmt.Fprintln(w, "\ntargets (benchmarks, not pass/fail):")
	tw = tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	for _, t := range r.Targets {
		st := "not measured"
		if t.Met != nil && *t.Met {
			st = "MET"
		} else if t.Met != nil {
			st = "MISSED"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", t.Name, t.Goal, st, t.Measured, t.Note)
	}
	tw.Flush()
	if len(r.Notes) > 0 {
		fmt.Fprintln(w, "\nnotes:")
		for _, n := range r.Notes {
			fmt.Fprintln(w, "  -", n)
		}
	}
	fmt.Fprintln(w)
	if len(r.Anomalies) == 0 {
		fmt.Fprintln(w, "anomalies: none (no crash, hang, dropped miner or wrong count seen)")
	} else {
		fmt.Fprintln(w, "anomalies (possible proxy bugs; reproduction in the JSON runs / logs):")
		for _, a := range r.Anomalies {
			fmt.Fprintf(w, "  - [%s] %s\n", a.Scenario, a.What)
		}
	}
	fmt.Fprintf(w, "\nsuite ran %s\n", time.Duration(r.ElapsedS*float64(time.Second)).Round(time.Second))
}

func (r *Report) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
