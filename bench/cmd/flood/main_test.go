package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stratum-proxy/stratum-proxy/bench/dialectsim"
	"github.com/stratum-proxy/stratum-proxy/bench/flood"
)

func TestParseFlags(t *testing.T) {
	var stderr bytes.Buffer
	o, err := parseFlags(strings.Fields(`--target 127.0.0.1:9332 --miners 18000 --sources 127.0.0.2-127.0.0.9
		--user NAME.rig%d --rate 0.2 --duration 60s --mode valid --configure --extranonce-subscribe
		--connect-concurrency 64 --connect-rate 500`), &stderr)
	if err != nil {
		t.Fatal(err, stderr.String())
	}
	c := o.cfg
	if c.Target != "127.0.0.1:9332" || c.Miners != 18000 || len(c.Sources) != 8 || c.User != "NAME.rig%d" ||
		c.Rate != 0.2 || c.Duration != time.Minute || c.Mode != flood.ModeValid || !c.Configure ||
		!c.ExtranonceSubscribe || c.ConnectConcurrency != 64 || c.ConnectRate != 500 {
		t.Fatalf("config %+v", c)
	}

	bad := func(args string) {
		t.Helper()
		if _, err := parseFlags(strings.Fields(args), &stderr); err == nil {
			t.Errorf("parseFlags(%q): no error", args)
		}
	}
	bad("--target 127.0.0.1:1 --sources 127.0.0.9-127.0.0.2")
	bad("--target 127.0.0.1:1 extra")
	bad("--nope")

	stderr.Reset()
	if _, err := parseFlags([]string{"-help"}, &stderr); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-help: %v", err)
	}
	for _, want := range []string{"--allow-remote", "-sources", "-connect-concurrency", "blind", "valid", "-dialect", "cryptonote"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("usage lacks %q", want)
		}
	}
}

func TestRunRefusesRemote(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--target", "192.0.2.1:3333", "--quiet"}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(stderr.String(), "--allow-remote") || stdout.Len() != 0 {
		t.Fatalf("stderr %q stdout %q", stderr.String(), stdout.String())
	}
}

// TestRunDialect runs the command against a kawpow simulator and reads
// the JSON summary.
func TestRunDialect(t *testing.T) {
	o, err := parseFlags(strings.Fields("--target 127.0.0.1:1 --dialect cryptonote"), io.Discard)
	if err != nil || o.cfg.Dialect != "cryptonote" {
		t.Fatalf("parse --dialect: %v %+v", err, o)
	}
	pool, err := dialectsim.StartPool(dialectsim.PoolConfig{Kind: dialectsim.KawPow})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var stdout, stderr bytes.Buffer
	args := []string{"--target", pool.Addr(), "--dialect", "kawpow", "--miners", "3", "--rate", "5",
		"--duration", "1s", "--drain", "1s", "--quiet"}
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var sum flood.Summary
	if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil {
		t.Fatal(err, stdout.String())
	}
	if sum.Dialect != "kawpow" || sum.Handshake.Authorized != 3 || sum.Shares.Accepted == 0 ||
		sum.Shares.Accepted != int64(pool.Stats().Accepted) {
		t.Fatalf("summary %+v %+v, pool %+v", sum.Handshake, sum.Shares, pool.Stats())
	}
	stderr.Reset()
	if code := run([]string{"--target", pool.Addr(), "--dialect", "scrypt", "--quiet"}, &stdout, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "scrypt") {
		t.Fatalf("unknown dialect: exit %d, %q", code, stderr.String())
	}
}
