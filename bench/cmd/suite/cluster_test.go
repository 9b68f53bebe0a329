package main

import (
	"io"
	"math"
	"slices"
	"strings"
	"testing"
)

func TestSplitEven(t *testing.T) {
	got := splitEven(100000, 6)
	if !slices.Equal(got, []int{16667, 16667, 16667, 16667, 16666, 16666}) {
		t.Errorf("splitEven(100000, 6) = %v", got)
	}
	sum := 0
	for _, n := range splitEven(17, 5) {
		sum += n
	}
	if sum != 17 {
		t.Errorf("splitEven(17, 5) sums to %d", sum)
	}
}

func TestClusterLayout(t *testing.T) {
	sizes, err := clusterLayout(100000, 6, 0)
	if err != nil || len(sizes) != 6 || sizes[0] != 16667 {
		t.Errorf("100,000 over 6: %v %v", sizes, err)
	}
	// More floods than proxies when a flood would be over its bound.
	if sizes, err := clusterLayout(100000, 7, 0); err != nil || len(sizes) != 7 {
		t.Errorf("100,000 over 7: %v %v", sizes, err)
	}
	if _, err := clusterLayout(100000, 5, 0); err == nil || !strings.Contains(err.Error(), "--cluster-instances") {
		t.Errorf("100,000 over 5 proxies (20,000 each): err %v, want a descriptor-limit error", err)
	}
	if _, err := clusterLayout(100000, 6, 5); err == nil || !strings.Contains(err.Error(), "--cluster-floods") {
		t.Errorf("5 floods of 20,000: err %v, want a flood-size error", err)
	}
	if sizes, err := clusterLayout(3, 6, 0); err != nil || len(sizes) != 3 {
		t.Errorf("3 miners: %v %v (empty floods dropped)", sizes, err)
	}
}

func TestHistQuantile(t *testing.T) {
	inf := math.Inf(1)
	bs := []bucket{{0.1, 0}, {0.25, 10}, {0.5, 20}, {inf, 20}}
	if got := histQuantile(bs, 0.5); math.Abs(got-0.25) > 1e-9 {
		t.Errorf("p50 = %v, want 0.25 (rank 10 at the top of (0.1,0.25])", got)
	}
	if got := histQuantile(bs, 0.25); math.Abs(got-0.175) > 1e-9 {
		t.Errorf("p25 = %v, want 0.175", got)
	}
	if got := histQuantile(bs, 0.99); math.Abs(got-0.495) > 1e-9 {
		t.Errorf("p99 = %v, want 0.495", got)
	}
	// In the +Inf bucket: the highest finite bound.
	if got := histQuantile([]bucket{{0.1, 1}, {inf, 10}}, 0.99); got != 0.1 {
		t.Errorf("+Inf p99 = %v, want 0.1", got)
	}
	if got := histQuantile(nil, 0.5); !math.IsNaN(got) {
		t.Errorf("empty = %v, want NaN", got)
	}
	if got := histQuantile([]bucket{{0.1, 0}, {inf, 0}}, 0.5); !math.IsNaN(got) {
		t.Errorf("no observations = %v, want NaN", got)
	}
}

func TestAddBuckets(t *testing.T) {
	inf := math.Inf(1)
	a := []bucket{{0.1, 1}, {inf, 2}}
	b := []bucket{{0.1, 3}, {inf, 5}}
	got := addBuckets(addBuckets(nil, a), b)
	if !slices.Equal(got, []bucket{{0.1, 4}, {inf, 7}}) {
		t.Errorf("got %v", got)
	}
}

func TestEtcdArgv(t *testing.T) {
	a := strings.Join(etcdArgv("etcd", "/d", 2379, 2380), " ")
	for _, want := range []string{"--data-dir /d", "--listen-client-urls http://127.0.0.1:2379", "--advertise-client-urls http://127.0.0.1:2379",
		"--listen-peer-urls http://127.0.0.1:2380", "--initial-cluster bench=http://127.0.0.1:2380"} {
		if !strings.Contains(a, want) {
			t.Errorf("%q lacks %q", a, want)
		}
	}
}

func TestClusterScenarioSelectable(t *testing.T) {
	o, err := parseFlags([]string{"--scenarios", "cluster", "--cluster-miners", "5000", "--cluster-instances", "2"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.scenarios, []string{"cluster"}) || clusterOpts.miners != 5000 || clusterOpts.instances != 2 {
		t.Errorf("scenarios %v, miners %d, instances %d", o.scenarios, clusterOpts.miners, clusterOpts.instances)
	}
	// Not in the default run.
	o, err = parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(o.scenarios, "cluster") {
		t.Errorf("default scenarios %v include cluster", o.scenarios)
	}
}
