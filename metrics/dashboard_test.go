package metrics

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// dashboardQueries returns every PromQL expression of grafana-dashboard.json (panel targets)
// and every variable query (label_values(...), not PromQL).
func dashboardQueries(t *testing.T) (exprs, varQueries []string) {
	t.Helper()
	data, err := os.ReadFile("grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title      string `json:"title"`
		UID        string `json:"uid"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			ID      int    `json:"id"`
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	if d.Title == "" || d.UID == "" {
		t.Error("dashboard without title or uid")
	}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if tg.Expr == "" {
				t.Errorf("panel %q has an empty query", p.Title)
			}
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if v.Definition != "" {
			varQueries = append(varQueries, v.Definition)
		}
	}
	return exprs, varQueries
}

var seriesNameRe = regexp.MustCompile(`\b(?:proxy|go|process)_[a-zA-Z0-9_]+`)

// TestDashboard checks that the dashboard parses and that every series it queries exists in the
// exposition, so a renamed series cannot silently empty a panel.
func TestDashboard(t *testing.T) {
	exprs, vars := dashboardQueries(t)
	names := parse(t, fixture(t)).sampleNames()
	used := map[string]bool{}
	for _, q := range slices.Concat(exprs, vars) {
		for _, n := range seriesNameRe.FindAllString(q, -1) {
			used[n] = true
			if !names[n] {
				t.Errorf("dashboard query %q uses %s, which the exposition lacks", q, n)
			}
		}
	}
	// The dashboard shows the original's series, the totals and the health histograms.
	for _, n := range []string{
		"proxy_worker_speed", "proxy_worker_one_accepted", "proxy_worker_up", "proxy_pool_up",
		"proxy_user_speed", "proxy_pool_speed", "proxy_algorithm_one_accepted_total",
		"proxy_shares_rejected_total", "proxy_share_rtt_seconds_bucket", "proxy_notify_fanout_seconds_bucket",
	} {
		if !used[n] {
			t.Errorf("the dashboard does not use %s", n)
		}
	}
}

// TestDashboardPromQL parses every panel expression with `promtool check rules` (as recording
// rules). Skips without promtool, except under CI=true.
func TestDashboardPromQL(t *testing.T) {
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool not found in PATH; CI must install it (apt-get install -y prometheus)")
		}
		t.Skip("promtool not found in PATH: skipping the PromQL syntax check of the dashboard")
	}
	exprs, _ := dashboardQueries(t)
	var b strings.Builder
	b.WriteString("groups:\n- name: dashboard\n  rules:\n")
	for i, e := range exprs {
		q, _ := json.Marshal(e) // a JSON string is a valid YAML double-quoted string
		fmt.Fprintf(&b, "  - record: dashboard:expr_%d\n    expr: %s\n", i, q)
	}
	file := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(path, "check", "rules", file).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

// TestDocsList checks that docs/METRICS.md documents every family of the exposition.
func TestDocsList(t *testing.T) {
	data, err := os.ReadFile("../docs/METRICS.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	for _, f := range proxyFamilies {
		if !strings.Contains(doc, "`"+f.name+"`") && !strings.Contains(doc, "`"+f.name+"{") {
			t.Errorf("docs/METRICS.md does not document %s", f.name)
		}
	}
	for _, r := range reasonNames {
		if !strings.Contains(doc, "`"+r+"`") {
			t.Errorf("docs/METRICS.md does not list rejection reason %s", r)
		}
	}
	for _, r := range dropReasons {
		if !strings.Contains(doc, "`"+r+"`") {
			t.Errorf("docs/METRICS.md does not list drop reason %s", r)
		}
	}
	x := parse(t, fixture(t))
	names := x.sampleNames()
	for _, n := range seriesNameRe.FindAllString(doc, -1) {
		if strings.HasPrefix(n, "proxy_") && !names[n] && x.families[n] == nil &&
			!strings.HasSuffix(n, "_") && // a prefix such as proxy_worker_*
			!slices.Contains(reasonNames[:], n) { // the label value proxy_check
			t.Errorf("docs/METRICS.md mentions %s, which the exposition lacks", n)
		}
	}
}
