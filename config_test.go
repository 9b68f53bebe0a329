package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeConfig writes text to a config file in a temporary directory and
// returns its path.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustParse(t *testing.T, args ...string) *options {
	t.Helper()
	o, _, err := parseFlags(args, io.Discard, io.Discard)
	if err != nil {
		t.Fatalf("parseFlags(%v): %v", args, err)
	}
	return o
}

// TestConfigPrecedence: command line > environment > config file >
// defaults, wherever --config stands on the command line.
func TestConfigPrecedence(t *testing.T) {
	path := writeConfig(t, "web.addr = :2000\nstratum.addr = :3000\nsession.grace = 2m\nlog.level = debug\n")

	o := mustParse(t)
	if o.webAddr != ":12743" || o.proxy.SessionGrace != time.Minute {
		t.Fatalf("defaults: web %q grace %v", o.webAddr, o.proxy.SessionGrace)
	}

	o = mustParse(t, "--config", path)
	if o.webAddr != ":2000" || o.stratumAddr != ":3000" || o.proxy.SessionGrace != 2*time.Minute || o.logLevel != "debug" {
		t.Fatalf("file: web %q stratum %q grace %v level %q", o.webAddr, o.stratumAddr, o.proxy.SessionGrace, o.logLevel)
	}
	if o.logFormat != "console" {
		t.Errorf("a key not in the file: %q; want the default", o.logFormat)
	}

	// The command line wins, before and after --config.
	o = mustParse(t, "--web.addr", ":1000", "--config", path, "--stratum.addr=:1001")
	if o.webAddr != ":1000" || o.stratumAddr != ":1001" {
		t.Errorf("command line around --config: web %q stratum %q; want :1000 :1001", o.webAddr, o.stratumAddr)
	}
	if o.proxy.SessionGrace != 2*time.Minute {
		t.Errorf("grace %v; want the file's 2m", o.proxy.SessionGrace)
	}

	// The environment wins over the file, the command line over both.
	t.Setenv("STRATUM_PROXY_WEB_ADDR", ":4000")
	t.Setenv("STRATUM_PROXY_SESSION_GRACE", "3m")
	o = mustParse(t, "--config", path, "--session.grace", "4m")
	if o.webAddr != ":4000" {
		t.Errorf("web %q; want the environment's :4000", o.webAddr)
	}
	if o.proxy.SessionGrace != 4*time.Minute {
		t.Errorf("grace %v; want the command line's 4m", o.proxy.SessionGrace)
	}
	if o.stratumAddr != ":3000" {
		t.Errorf("stratum %q; want the file's :3000", o.stratumAddr)
	}

	// The file named by STRATUM_PROXY_CONFIG keeps the same order.
	t.Setenv("STRATUM_PROXY_CONFIG", path)
	o = mustParse(t, "--log.level", "warn")
	if o.webAddr != ":4000" || o.stratumAddr != ":3000" || o.logLevel != "warn" || o.proxy.SessionGrace != 3*time.Minute {
		t.Errorf("STRATUM_PROXY_CONFIG: web %q stratum %q level %q grace %v; want :4000 :3000 warn 3m",
			o.webAddr, o.stratumAddr, o.logLevel, o.proxy.SessionGrace)
	}
	// --config on the command line replaces the environment's file.
	other := writeConfig(t, "stratum.addr = :5000\n")
	o = mustParse(t, "--config", other)
	if o.stratumAddr != ":5000" || o.logLevel != "info" {
		t.Errorf("--config over STRATUM_PROXY_CONFIG: stratum %q level %q; want :5000 info", o.stratumAddr, o.logLevel)
	}
}

// TestConfigComments: blank lines, comment lines, trailing comments,
// quoted values and spacing around '='.
func TestConfigComments(t *testing.T) {
	path := writeConfig(t, `
# The proxy's ports.
   # indented comment
web.addr=:2000
stratum.addr   =   :3000   # trailing comment
metrics.tag = ""
web.auth-token = "tok # not a comment"
log.format	=	json	# tab-separated
vardiff = false

limits.max-connections = 250000
`)
	o := mustParse(t, "--metrics.tag", "x", "--config", path)
	if o.webAddr != ":2000" || o.stratumAddr != ":3000" || o.logFormat != "json" {
		t.Errorf("web %q stratum %q format %q", o.webAddr, o.stratumAddr, o.logFormat)
	}
	if o.metricsTag != "x" {
		t.Errorf("metrics.tag %q; want the command line's", o.metricsTag)
	}
	if o.webToken != "tok # not a comment" {
		t.Errorf("quoted token %q", o.webToken)
	}
	if !o.proxy.NoVardiff || o.proxy.MaxConnections != 250000 {
		t.Errorf("vardiff off %v, max connections %d", o.proxy.NoVardiff, o.proxy.MaxConnections)
	}

	o = mustParse(t, "--config", writeConfig(t, "metrics.tag = \"\"\nweb.auth-token =\n"))
	if o.metricsTag != "" || o.webToken != "" {
		t.Errorf("empty values: tag %q token %q", o.metricsTag, o.webToken)
	}
}

// TestConfigErrors: every mistake names the file, the line and the key.
func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name, text string
		want       []string
	}{
		{"unknown key", "web.addr = :1\n\n# c\nweb.adress = :2\n", []string{":4:", `unknown key "web.adress"`}},
		{"bad duration", "session.grace = 5 minutes\n", []string{":1:", "session.grace", "5 minutes"}},
		{"bad int", "# x\nlimits.max-connections = lots\n", []string{":2:", "limits.max-connections", "lots"}},
		{"bad bool", "vardiff = maybe\n", []string{":1:", "vardiff"}},
		{"config in the file", "config = /etc/other\n", []string{":1:", `"config" cannot be set`}},
		{"version in the file", "version = true\n", []string{":1:", `"version"`}},
		{"no equals", "web.addr :1\n", []string{":1:", "want key = value"}},
		{"dashes", "--web.addr = :1\n", []string{":1:", "without dashes"}},
		{"empty key", "= :1\n", []string{":1:", "bad key"}},
		{"twice", "web.addr = :1\nweb.addr = :2\n", []string{":2:", `"web.addr" given twice`, "line 1"}},
		{"bad quote", "web.auth-token = \"abc\n", []string{":1:", "web.auth-token"}},
		{"after quote", "web.auth-token = \"abc\" def\n", []string{":1:", "web.auth-token"}},
		{"web.register checked", "web.register = closed\n", []string{"web.register"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeConfig(t, c.text)
			_, _, err := parseFlags([]string{"--config", path}, io.Discard, io.Discard)
			if err == nil {
				t.Fatalf("%q: no error", c.text)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q: error %q lacks %q", c.text, err, w)
				}
			}
		})
	}

	// A key set elsewhere is still checked in the file.
	t.Run("unknown key beside a flag", func(t *testing.T) {
		path := writeConfig(t, "nope = 1\n")
		if _, _, err := parseFlags([]string{"--nope=1", "--config", path}, io.Discard, io.Discard); err == nil {
			t.Fatal("no error")
		}
	})
	t.Run("missing file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "absent")
		_, _, err := parseFlags([]string{"--config", path}, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Fatalf("error %v; want one naming %s", err, path)
		}
	})
	t.Run("two files", func(t *testing.T) {
		a, b := writeConfig(t, ""), writeConfig(t, "")
		if _, _, err := parseFlags([]string{"--config", a, "--config", b}, io.Discard, io.Discard); err == nil {
			t.Fatal("no error")
		}
	})
	t.Run("environment's file", func(t *testing.T) {
		t.Setenv("STRATUM_PROXY_CONFIG", writeConfig(t, "x = 1\n"))
		_, _, err := parseFlags(nil, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "STRATUM_PROXY_CONFIG") || !strings.Contains(err.Error(), `"x"`) {
			t.Fatalf("error %v; want one naming STRATUM_PROXY_CONFIG and the key", err)
		}
	})
}

// TestConfigExample: deploy/config.example, installed by make install
// as /etc/stratum-proxy/config, is a valid file for this binary.
func TestConfigExample(t *testing.T) {
	o := mustParse(t, "--config", filepath.Join("deploy", "config.example"))
	if o.dbPath != "/var/lib/stratum-proxy/proxy.db" {
		t.Errorf("db.path %q; want the systemd unit's state directory", o.dbPath)
	}
}
