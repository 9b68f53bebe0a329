package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseMigrate(t *testing.T) {
	from, to, force, err := parseMigrate([]string{"--from", "bbolt:/x/proxy.db", "--to=etcd:http://127.0.0.1:2379, http://127.0.0.2:2379", "--force"})
	if err != nil || from != "/x/proxy.db" || !force || !slices.Equal(to, []string{"http://127.0.0.1:2379", "http://127.0.0.2:2379"}) {
		t.Fatal(from, to, force, err)
	}
	for _, bad := range [][]string{
		{"--from", "/x", "--to", "etcd:a"},
		{"--from", "bbolt:/x", "--to", "a"},
		{"--from", "bbolt:/x"},
		{"--from", "bbolt:/x", "--to", "etcd:"},
		{"--from", "bbolt:/x", "--to", "etcd:a", "--bogus"},
		{"--from"},
	} {
		if _, _, _, err := parseMigrate(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestStoreFlags(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "proxy.db")
	key := filepath.Join(dir, "elsewhere", "my.key")
	if err := os.MkdirAll(filepath.Dir(key), 0o700); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run([]string{"--db.path", db, "--store.key", key, "pool", "list"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(key); err != nil {
		t.Fatalf("--store.key not used: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "proxy.key")); err == nil {
		t.Fatal("default key file created despite --store.key")
	}
	if err := run([]string{"--db.path", db, "--store", "bogus", "pool", "list"}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "bbolt or etcd") {
		t.Fatalf("--store=bogus: %v", err)
	}
	if err := run([]string{"--db.path", db, "--store", "etcd", "pool", "list"}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "--etcd.endpoints") {
		t.Fatalf("--store=etcd without endpoints: %v", err)
	}
	if err := run([]string{"--db.path", db, "store", "migrate", "--from", "bbolt:" + filepath.Join(dir, "none.db"), "--to", "etcd:127.0.0.1:1"}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "none.db") {
		t.Fatalf("migrate from a missing file: %v", err)
	}
	if err := run([]string{"--db.path", db, "store", "bogus"}, io.Discard, io.Discard); err == nil {
		t.Fatal("store bogus accepted")
	}
}
