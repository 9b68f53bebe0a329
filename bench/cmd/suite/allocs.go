package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// benchPackages are the packages whose micro-benchmarks the suite runs.
var benchPackages = []string{"./codec", "./proxy", "./metrics"}

// allocs runs the Go micro-benchmarks with -benchmem and reports
// allocations (and time) per operation: per relayed share
// (BenchmarkRelayShare), per notify to 1,000 miners
// (BenchmarkNotifyFanout1000), per decoded line, per metrics update.
func (s *suite) allocs(ctx context.Context) error {
	benchtime := "1s"
	if s.opts.quick {
		benchtime = "100ms"
	}
	args := append([]string{"test", "-run", "^$", "-bench", ".", "-benchmem", "-count", "1", "-benchtime", benchtime}, benchPackages...)
	cctx, cancel := context.WithTimeout(ctx, 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, goTool(), args...)
	cmd.Dir = s.root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	s.logf("  go %s", strings.Join(args, " "))
	out, err := cmd.Output()
	results := parseBench(out)
	if err != nil {
		s.anomaly("allocs", "go %s: %v\n%s%s", strings.Join(args, " "), err, tail(out, 20), tail(stderr.Bytes(), 20))
	}
	if len(results) == 0 {
		return fmt.Errorf("no benchmark results")
	}
	s.mu.Lock()
	s.report.Benchmark = results
	s.mu.Unlock()
	for _, b := range results {
		r := Row{Scenario: "allocs", Case: path.Base(b.Package), Metric: strings.TrimPrefix(b.Name, "Benchmark") + " allocs/op",
			Unit: "allocs", Proxy: fp(b.AllocsPerOp),
			Note: fmt.Sprintf("%.1f ns/op, %.0f B/op", b.NsPerOp, b.BytesPerOp)}
		for k, v := range b.Extra {
			r.Note += fmt.Sprintf(", %.4g %s", v, k)
		}
		if b.Name == "BenchmarkRelayShare" {
			r.Key = keyRelayAllocs
		}
		if b.Name == "BenchmarkNotifyFanout1000" {
			r.Note += fmt.Sprintf("; per notify target: %.3g allocs, %.1f ns", b.AllocsPerOp/1000, b.NsPerOp/1000)
		}
		s.add(r)
	}
	s.note("allocs: go %s (benchmarks have no 'straight' side: the figures are per operation of the proxy's own code)",
		strings.Join(args, " "))
	return nil
}

var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+(.*)$`)

// parseBench reads `go test -bench` output.
func parseBench(out []byte) []BenchResult {
	var res []BenchResult
	pkg := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		m := benchLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		b := BenchResult{Name: m[1], Package: pkg}
		b.N, _ = strconv.ParseInt(m[2], 10, 64)
		f := strings.Fields(m[3])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				b.NsPerOp = v
			case "B/op":
				b.BytesPerOp = v
			case "allocs/op":
				b.AllocsPerOp = v
			default:
				if b.Extra == nil {
					b.Extra = map[string]float64{}
				}
				b.Extra[f[i+1]] = v
			}
		}
		res = append(res, b)
	}
	return res
}

// tail returns the last n lines of b.
func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n") + "\n"
}
