package metrics

import (
	"bytes"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// promtoolAccepted are the only findings `promtool check metrics` may report: the original's
// counter names, which dashboards depend on (PROTOCOL.md section 7).
var promtoolAccepted = []string{
	`proxy_worker_accepted counter metrics should have "_total" suffix`,
	`proxy_worker_one_accepted counter metrics should have "_total" suffix`,
	`proxy_worker_one_sended counter metrics should have "_total" suffix`,
	`proxy_worker_sended counter metrics should have "_total" suffix`,
}

// TestPromtool runs `promtool check metrics` on a full page. Without promtool it skips, except
// under CI=true, where it fails. Install: apt-get install prometheus (Debian ships promtool in it).
func TestPromtool(t *testing.T) {
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool not found in PATH; CI must install it (apt-get install -y prometheus)")
		}
		t.Skip("promtool not found in PATH: skipping the promtool check (install the Debian package prometheus); the built-in checker still ran")
	}
	var page bytes.Buffer
	fixture(t).WritePrometheus(&page)
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = &page
	out, err := cmd.CombinedOutput()
	// promtool exits 3 when it has lint findings and 1 on a parse error.
	if err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
			t.Fatalf("promtool check metrics: %v\n%s", err, out)
		}
	}
	var findings []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			findings = append(findings, l)
		}
	}
	slices.Sort(findings)
	if !slices.Equal(findings, promtoolAccepted) {
		t.Errorf("promtool check metrics reported\n%s\nwant exactly\n%s", strings.Join(findings, "\n"), strings.Join(promtoolAccepted, "\n"))
	}
}
