package metrics

import (
	"bytes"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// This file is a small checker of the Prometheus text exposition format (0.0.4), strict where
// Prometheus and promtool are: one HELP and one TYPE per family before its samples, all samples
// of a family together, sample names matching their family's type, valid and escaped labels,
// no duplicate series, cumulative histogram buckets ending in +Inf = _count.

type labelPair struct{ name, value string }

type sample struct {
	name   string
	labels []labelPair
	value  float64
}

func (s sample) label(name string) (string, bool) {
	for _, l := range s.labels {
		if l.name == name {
			return l.value, true
		}
	}
	return "", false
}

func (s sample) labelNames() []string {
	var n []string
	for _, l := range s.labels {
		n = append(n, l.name)
	}
	return n
}

type parsedFamily struct {
	name, help, typ string
	samples         []sample
}

type exposition struct {
	text     string
	families map[string]*parsedFamily
	order    []string
}

var metricNameRe = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
var labelNameRe = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// parse writes r's exposition and checks it.
func parse(t testing.TB, r *Registry) *exposition {
	t.Helper()
	var b bytes.Buffer
	r.WritePrometheus(&b)
	x, err := parseExposition(b.String())
	if err != nil {
		t.Fatalf("invalid exposition: %v", err)
	}
	return x
}

func parseExposition(text string) (*exposition, error) {
	x := &exposition{text: text, families: map[string]*parsedFamily{}}
	if text != "" && !strings.HasSuffix(text, "\n") {
		return nil, fmt.Errorf("does not end with a newline")
	}
	var cur *parsedFamily
	seen := map[string]bool{} // series
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		fail := func(format string, a ...any) error {
			return fmt.Errorf("line %d %q: %s", i+1, line, fmt.Sprintf(format, a...))
		}
		switch {
		case line == "":
			return nil, fail("empty line")
		case strings.HasPrefix(line, "# HELP "):
			name, help, _ := strings.Cut(line[len("# HELP "):], " ")
			if !metricNameRe.MatchString(name) {
				return nil, fail("bad family name")
			}
			if x.families[name] != nil {
				return nil, fail("second HELP for %s, or its samples are not together", name)
			}
			if help == "" {
				return nil, fail("empty HELP")
			}
			if strings.Contains(strings.ReplaceAll(strings.ReplaceAll(help, `\\`, ""), `\n`, ""), `\`) {
				return nil, fail("bad escape in HELP")
			}
			cur = &parsedFamily{name: name, help: help}
			x.families[name] = cur
			x.order = append(x.order, name)
		case strings.HasPrefix(line, "# TYPE "):
			name, typ, _ := strings.Cut(line[len("# TYPE "):], " ")
			if cur == nil || cur.name != name {
				return nil, fail("TYPE without HELP just before it")
			}
			if cur.typ != "" {
				return nil, fail("second TYPE")
			}
			switch typ {
			case "counter", "gauge", "histogram", "summary", "untyped":
			default:
				return nil, fail("unknown type")
			}
			cur.typ = typ
		case strings.HasPrefix(line, "#"):
			return nil, fail("unexpected comment")
		default:
			s, err := parseSample(line)
			if err != nil {
				return nil, fail("%v", err)
			}
			if cur == nil || cur.typ == "" {
				return nil, fail("sample before HELP and TYPE")
			}
			if !belongs(s.name, cur) {
				return nil, fail("sample of another family inside %s (%s): samples not together, or no HELP/TYPE", cur.name, cur.typ)
			}
			key := s.name + "{"
			ls := slices.Clone(s.labels)
			slices.SortFunc(ls, func(a, b labelPair) int { return strings.Compare(a.name, b.name) })
			for _, l := range ls {
				key += l.name + "=" + strconv.Quote(l.value) + ","
			}
			if seen[key] {
				return nil, fail("duplicate series")
			}
			seen[key] = true
			cur.samples = append(cur.samples, s)
		}
	}
	for _, name := range x.order {
		f := x.families[name]
		if len(f.samples) == 0 {
			return nil, fmt.Errorf("family %s has no samples", name)
		}
		if f.typ == "histogram" {
			if err := checkHistogram(f); err != nil {
				return nil, err
			}
		}
	}
	return x, nil
}

func belongs(name string, f *parsedFamily) bool {
	switch f.typ {
	case "histogram":
		return name == f.name+"_bucket" || name == f.name+"_sum" || name == f.name+"_count"
	case "summary":
		return name == f.name || name == f.name+"_sum" || name == f.name+"_count"
	}
	return name == f.name
}

// checkHistogram checks, per label set without le, that buckets are cumulative and that the
// +Inf bucket equals _count when _count is present (the Go runtime histograms have none).
func checkHistogram(f *parsedFamily) error {
	type series struct {
		last, inf, count float64
		hasInf, hasCount bool
	}
	all := map[string]*series{}
	get := func(s sample) *series {
		var k []string
		for _, l := range s.labels {
			if l.name != "le" {
				k = append(k, l.name+"="+l.value)
			}
		}
		key := strings.Join(k, ",")
		if all[key] == nil {
			all[key] = &series{}
		}
		return all[key]
	}
	for _, s := range f.samples {
		h := get(s)
		switch s.name {
		case f.name + "_bucket":
			le, ok := s.label("le")
			if !ok {
				return fmt.Errorf("%s: bucket without le", f.name)
			}
			if s.value < h.last {
				return fmt.Errorf("%s: buckets not cumulative at le=%s", f.name, le)
			}
			h.last = s.value
			if le == "+Inf" {
				h.inf, h.hasInf = s.value, true
			}
		case f.name + "_count":
			h.count, h.hasCount = s.value, true
		}
	}
	for k, h := range all {
		if !h.hasInf {
			return fmt.Errorf("%s{%s}: no +Inf bucket", f.name, k)
		}
		if h.hasCount && h.inf != h.count {
			return fmt.Errorf("%s{%s}: +Inf bucket %g != count %g", f.name, k, h.inf, h.count)
		}
	}
	return nil
}

func parseSample(line string) (sample, error) {
	var s sample
	n := strings.IndexAny(line, "{ ")
	if n <= 0 {
		return s, fmt.Errorf("no metric name")
	}
	s.name, line = line[:n], line[n:]
	if !metricNameRe.MatchString(s.name) {
		return s, fmt.Errorf("bad metric name %q", s.name)
	}
	if line[0] == '{' {
		line = line[1:]
		names := map[string]bool{}
		for {
			line = strings.TrimLeft(line, " ")
			if strings.HasPrefix(line, "}") {
				line = line[1:]
				break
			}
			eq := strings.IndexByte(line, '=')
			if eq <= 0 {
				return s, fmt.Errorf("bad label")
			}
			name := line[:eq]
			if !labelNameRe.MatchString(name) || names[name] {
				return s, fmt.Errorf("bad or repeated label name %q", name)
			}
			names[name] = true
			line = line[eq+1:]
			if !strings.HasPrefix(line, `"`) {
				return s, fmt.Errorf("label %s: value not quoted", name)
			}
			var v strings.Builder
			i := 1
			for ; i < len(line) && line[i] != '"'; i++ {
				if line[i] != '\\' {
					v.WriteByte(line[i])
					continue
				}
				i++
				if i == len(line) {
					return s, fmt.Errorf("label %s: dangling backslash", name)
				}
				switch line[i] {
				case '\\', '"':
					v.WriteByte(line[i])
				case 'n':
					v.WriteByte('\n')
				default:
					return s, fmt.Errorf("label %s: bad escape \\%c", name, line[i])
				}
			}
			if i == len(line) {
				return s, fmt.Errorf("label %s: unterminated value", name)
			}
			if !utf8.ValidString(v.String()) {
				return s, fmt.Errorf("label %s: invalid UTF-8", name)
			}
			s.labels = append(s.labels, labelPair{name, v.String()})
			line = strings.TrimLeft(line[i+1:], " ")
			if strings.HasPrefix(line, ",") {
				line = line[1:]
			} else if !strings.HasPrefix(line, "}") {
				return s, fmt.Errorf("expected , or } after label %s", name)
			}
		}
	}
	if !strings.HasPrefix(line, " ") {
		return s, fmt.Errorf("no space before the value")
	}
	v := line[1:]
	if strings.ContainsAny(v, " \t") {
		return s, fmt.Errorf("timestamp or trailing text: we write neither")
	}
	switch v {
	case "+Inf":
		s.value = math.Inf(1)
	case "-Inf":
		s.value = math.Inf(-1)
	case "NaN":
		s.value = math.NaN()
	default:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || strings.ContainsAny(v, "_xXpP") {
			return s, fmt.Errorf("bad value %q", v)
		}
		s.value = f
	}
	return s, nil
}

// find returns the samples named name whose labels include labels.
func (x *exposition) find(name string, labels map[string]string) []sample {
	var out []sample
	for _, f := range x.families {
		for _, s := range f.samples {
			if s.name != name {
				continue
			}
			ok := true
			for k, v := range labels {
				if got, has := s.label(k); !has || got != v {
					ok = false
					break
				}
			}
			if ok {
				out = append(out, s)
			}
		}
	}
	return out
}

// value returns the value of the one sample named name with labels, failing otherwise.
func (x *exposition) value(t testing.TB, name string, labels map[string]string) float64 {
	t.Helper()
	s := x.find(name, labels)
	if len(s) != 1 {
		t.Fatalf("%d samples %s%v, want 1", len(s), name, labels)
	}
	return s[0].value
}

// sampleNames returns every sample name in x.
func (x *exposition) sampleNames() map[string]bool {
	n := map[string]bool{}
	for _, f := range x.families {
		for _, s := range f.samples {
			n[s.name] = true
		}
	}
	return n
}

// TestChecker makes sure the checker rejects what it should, so that passing it means something.
func TestChecker(t *testing.T) {
	f := func(text, wantErr string) {
		t.Helper()
		_, err := parseExposition(text)
		switch {
		case wantErr == "" && err != nil:
			t.Errorf("%q: unexpected error %v", text, err)
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
			t.Errorf("%q: error %v, want one containing %q", text, err, wantErr)
		}
	}
	ok := "# HELP a_total A.\n# TYPE a_total counter\n"
	f(ok+"a_total{x=\"1\"} 2\n", "")
	f(ok+"a_total{x=\"\\\\ \\\" \\n\"} 2\n", "")
	f(ok+"a_total 2\n# HELP b B.\n# TYPE b gauge\nb 1\na_total{x=\"1\"} 2\n", "samples not together")
	f(ok+"a_total 2\n"+ok, "second HELP")
	f("a_total 2\n", "before HELP")
	f("# HELP a_total \n# TYPE a_total counter\na_total 2\n", "empty HELP")
	f(ok+"a_total{x=\"a\\tb\"} 2\n", "bad escape")
	f(ok+"a_total{x=\"1\"} 2\na_total{x=\"1\"} 3\n", "duplicate series")
	f(ok+"a_total{x=1} 2\n", "not quoted")
	f(ok+"a_total 2 1700000000\n", "timestamp")
	f(ok+"a_total 2", "newline")
	f(ok, "no samples")
	f("# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n", "not cumulative")
	f("# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_count 2\n", "!= count")
	f("# HELP h H.\n# TYPE h histogram\nh 1\n", "another family")
}
