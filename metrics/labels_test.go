package metrics

import (
	"slices"
	"strings"
	"testing"
)

func TestAppendLabel(t *testing.T) {
	f := func(value, want string) {
		t.Helper()
		if got := string(appendLabel(nil, "worker", value)); got != want {
			t.Errorf("appendLabel(%q) = %s, want %s", value, got, want)
		}
	}
	f("", `worker=""`)
	f("10.0.0.1:4000", `worker="10.0.0.1:4000"`)
	f(`rig"1`, `worker="rig\"1"`)
	f(`C:\rig`, `worker="C:\\rig"`)
	f("two\nlines", `worker="two\nlines"`)
	f("\\\"\n", `worker="\\\"\n"`)
	f("ферма-1", `worker="ферма-1"`)
}

func TestCleanLabel(t *testing.T) {
	f := func(in string, max int, want string) {
		t.Helper()
		if got := cleanLabel(in, max); got != want {
			t.Errorf("cleanLabel(%q, %d) = %q, want %q", in, max, got, want)
		}
	}
	f("rig1", 64, "rig1")
	f("", 64, "")
	f("keep\nnewline", 0, "keep\nnewline")
	f("tab\there", 0, "tab\uFFFDhere")
	f("cr\r", 0, "cr\uFFFD")
	f("del\x7f", 0, "del\uFFFD")
	f("bad\xffutf8", 0, "bad\uFFFDutf8")
	f(strings.Repeat("a", 100), 64, strings.Repeat("a", 64))
	f(strings.Repeat("a", 63)+"ж", 64, strings.Repeat("a", 63)) // never split a rune
	f("жжж", 5, "жж")
	f("\xff\xff\xff", 4, "\uFFFD") // replacements count towards the cap
	f("abc", 0, "abc")
}

func TestCleanLabelDoesNotAllocateWhenClean(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { cleanLabel("rig-01.farm", 64) }); n != 0 {
		t.Fatalf("cleanLabel allocates %v times for a clean value", n)
	}
}

func TestRigName(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := RigName(in); got != want {
			t.Errorf("RigName(%q) = %q, want %q", in, got, want)
		}
	}
	f("acct.rig1", "rig1")
	f("acct.rig.1", "rig.1")
	f("acct", "")
	f("acct.", "")
	f(".rig", "rig")
	f("", "")
}

// TestLabelSets checks the exact label names, in order, of every family.
func TestLabelSets(t *testing.T) {
	x := parse(t, fixture(t))
	want := map[string][]string{
		"proxy_miners_connected":                   {"proxy"},
		"proxy_upstreams_connected":                {"proxy"},
		"proxy_sessions_in_grace":                  {"proxy"},
		"proxy_miners_dropped_total":               {"proxy", "reason"},
		"proxy_panics_total":                       {"proxy", "where"},
		"proxy_upstream_reconnects_total":          {"proxy", "pool", "outcome"},
		"proxy_pool_invalid_messages_total":        {"proxy", "pool", "method"},
		"proxy_notify_fanout_seconds":              {"proxy"},
		"proxy_share_rtt_seconds":                  {"proxy"},
		"proxy_pool_up":                            {"proxy", "hash", "pool"},
		"proxy_pool_divider":                       {"proxy", "hash", "pool"},
		"proxy_pool_speed":                         {"proxy", "hash", "pool"},
		"proxy_pool_accepted_total":                {"proxy", "hash", "pool"},
		"proxy_pool_one_accepted_total":            {"proxy", "hash", "pool"},
		"proxy_pool_upstream_sent_total":           {"proxy", "hash", "pool"},
		"proxy_pool_upstream_one_sent_total":       {"proxy", "hash", "pool"},
		"proxy_pool_upstream_accepted_total":       {"proxy", "hash", "pool"},
		"proxy_pool_upstream_one_accepted_total":   {"proxy", "hash", "pool"},
		"proxy_pool_upstream_rejected_total":       {"proxy", "hash", "pool", "reason"},
		"proxy_algorithm_accepted_total":           {"proxy", "hash"},
		"proxy_algorithm_one_accepted_total":       {"proxy", "hash"},
		"proxy_user_speed":                         {"proxy", "user", "hash", "pool"},
		"proxy_user_accepted_total":                {"proxy", "user", "hash", "pool"},
		"proxy_user_one_accepted_total":            {"proxy", "user", "hash", "pool"},
		"proxy_shares_rejected_total":              {"proxy", "user", "hash", "pool", "reason"},
		"proxy_user_upstream_sent_total":           {"proxy", "user", "hash", "pool"},
		"proxy_user_upstream_one_sent_total":       {"proxy", "user", "hash", "pool"},
		"proxy_user_upstream_accepted_total":       {"proxy", "user", "hash", "pool"},
		"proxy_user_upstream_one_accepted_total":   {"proxy", "user", "hash", "pool"},
		"proxy_user_upstream_rejected_total":       {"proxy", "user", "hash", "pool", "reason"},
		"proxy_worker_up":                          {"proxy", "worker", "user"},
		"proxy_worker_sended":                      {"proxy", "worker", "user", "hash", "pool"},
		"proxy_worker_one_sended":                  {"proxy", "worker", "user", "hash", "pool"},
		"proxy_worker_accepted":                    {"proxy", "worker", "user", "hash", "pool"},
		"proxy_worker_one_accepted":                {"proxy", "worker", "user", "hash", "pool"},
		"proxy_worker_speed":                       {"proxy", "worker", "user", "hash", "pool"},
		"proxy_worker_difficulty":                  {"proxy", "worker", "user", "hash", "pool"},
		"proxy_worker_upstream_sent_total":         {"proxy", "worker", "user", "hash", "pool"},
		"proxy_worker_upstream_one_sent_total":     {"proxy", "worker", "user", "hash", "pool"},
		"proxy_worker_upstream_accepted_total":     {"proxy", "worker", "user", "hash", "pool"},
		"proxy_worker_upstream_one_accepted_total": {"proxy", "worker", "user", "hash", "pool"},
		"proxy_worker_upstream_rejected_total":     {"proxy", "worker", "user", "hash", "pool", "reason"},
		"proxy_users_expired_total":                {"proxy"},
	}
	var order []string
	for _, name := range x.order {
		if !strings.HasPrefix(name, "proxy_") {
			continue
		}
		order = append(order, name)
		f := x.families[name]
		w, ok := want[name]
		if !ok {
			t.Errorf("unexpected family %s", name)
			continue
		}
		for _, s := range f.samples {
			got := s.labelNames()
			if f.typ == "histogram" && s.name == name+"_bucket" {
				got = slices.DeleteFunc(got, func(n string) bool { return n == "le" })
			}
			if !slices.Equal(got, w) {
				t.Errorf("%s labels %v, want %v", s.name, got, w)
				break
			}
		}
	}
	var wantOrder []string
	for _, f := range proxyFamilies {
		wantOrder = append(wantOrder, f.name)
		if _, ok := want[f.name]; !ok {
			t.Errorf("family %s has no expected label set in this test", f.name)
		}
	}
	if !slices.Equal(order, wantOrder) {
		t.Errorf("families\n%v\nwant\n%v", order, wantOrder)
	}
}

// TestWorkerLabel checks both modes of the `worker` label, the cap on rig names and the
// escaping of hostile rig names, by reading the exposition back.
func TestWorkerLabel(t *testing.T) {
	f := func(mode, addr, rig, want string) {
		t.Helper()
		r, _ := newTestRegistry(t, Config{Tag: "px", WorkerLabel: mode})
		r.NewWorker(addr, rig, "alice", "sha256", "p:1", 1)
		x := parse(t, r)
		for _, name := range []string{"proxy_worker_up", "proxy_worker_sended", "proxy_worker_speed"} {
			s := x.find(name, nil)
			if len(s) != 1 {
				t.Fatalf("%d %s samples", len(s), name)
			}
			if got, _ := s[0].label("worker"); got != want {
				t.Errorf("mode %q addr %q rig %q: %s worker=%q, want %q", mode, addr, rig, name, got, want)
			}
			if got, _ := s[0].label("proxy"); got != "px" {
				t.Errorf("proxy=%q", got)
			}
		}
	}
	f("", "10.0.0.1:4000", "rig1", "10.0.0.1:4000")
	f("addr", "10.0.0.1:4000", "rig1", "10.0.0.1:4000")
	f("name", "10.0.0.1:4000", "rig1", "rig1")
	f("name", "10.0.0.1:4000", "", "10.0.0.1:4000") // no rig name: ip:port
	f("name", "[2001:db8::1]:4000", "", "[2001:db8::1]:4000")
	f("name", "10.0.0.1:4000", `a"b\c`+"\nd", `a"b\c`+"\nd")
	f("name", "10.0.0.1:4000", "}\" 1\nproxy_pool_up{x=\"", "}\" 1\nproxy_pool_up{x=\"") // no injection
	f("name", "10.0.0.1:4000", strings.Repeat("r", 200), strings.Repeat("r", 64))
	f("name", "10.0.0.1:4000", "tab\tbad\xff", "tab\uFFFDbad\uFFFD")
	f("name", "10.0.0.1:4000", "ферма", "ферма")

	// MaxLabelLen is configurable.
	r, _ := newTestRegistry(t, Config{WorkerLabel: "name", MaxLabelLen: 8})
	r.NewWorker("10.0.0.1:4000", "0123456789abc", "alice", "sha256", "p:1", 1)
	if got, _ := parse(t, r).find("proxy_worker_up", nil)[0].label("worker"); got != "01234567" {
		t.Errorf("MaxLabelLen 8: worker=%q", got)
	}

	// The exact text of an escaped sample.
	r, _ = newTestRegistry(t, Config{Tag: `t"1`, WorkerLabel: "name"})
	w := r.NewWorker("10.0.0.1:4000", "a\"b\\c\nd", "us\"er", "sha256", "p:1", 1)
	w.Sent(2)
	text := parse(t, r).text
	want := `proxy_worker_sended{proxy="t\"1",worker="a\"b\\c\nd",user="us\"er",hash="sha256",pool="p:1"} 1` + "\n"
	if !strings.Contains(text, want) {
		t.Errorf("exposition lacks %q", want)
	}
}

// TestUniqueLabelSets checks that live workers never share a label set.
func TestUniqueLabelSets(t *testing.T) {
	r, _ := newTestRegistry(t, Config{WorkerLabel: "name"})
	a := r.NewWorker("10.0.0.1:1", "rig", "alice", "sha256", "p:1", 1)
	b := r.NewWorker("10.0.0.2:1", "rig", "alice", "sha256", "p:1", 1)
	c := r.NewWorker("10.0.0.3:1", "rig", "alice", "sha256", "p:1", 1)
	d := r.NewWorker("10.0.0.4:1", "rig", "bob", "sha256", "p:1", 1) // other user: no clash
	workers := func() []string {
		var n []string
		for _, s := range parse(t, r).find("proxy_worker_up", nil) {
			w, _ := s.label("worker")
			u, _ := s.label("user")
			n = append(n, u+"/"+w)
		}
		slices.Sort(n)
		return n
	}
	if got, want := workers(), []string{"alice/rig", "alice/rig#2", "alice/rig#3", "bob/rig"}; !slices.Equal(got, want) {
		t.Fatalf("workers %v, want %v", got, want)
	}
	a.Close()
	e := r.NewWorker("10.0.0.5:1", "rig", "alice", "sha256", "p:1", 1) // takes the freed name
	if got, want := workers(), []string{"alice/rig", "alice/rig#2", "alice/rig#3", "bob/rig"}; !slices.Equal(got, want) {
		t.Fatalf("after Close: workers %v, want %v", got, want)
	}
	_, _, _ = b, c, d
	_ = e

	// Same ip:port twice in addr mode (a reconnect while the old session is in grace).
	r2, _ := newTestRegistry(t, Config{})
	r2.NewWorker("10.0.0.1:1", "", "alice", "sha256", "p:1", 1)
	r2.NewWorker("10.0.0.1:1", "", "alice", "sha256", "p:1", 1)
	parse(t, r2) // no duplicate series
}
