package main

import (
	"bufio"
	"context"
	"flag"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/stratum-proxy/stratum-proxy/metrics"
	"github.com/stratum-proxy/stratum-proxy/proxy"
	"github.com/stratum-proxy/stratum-proxy/store"
)

// proxyRole is `suite --role=proxy`: the proxy package wired like main.go
// (same store, metrics registry and proxy.Config defaults) but with
// net/http/pprof beside /metrics instead of the fasthttp API, so a
// scenario run with --profile can take CPU and heap profiles of the proxy
// under load. It registers the pool and one account itself and prints
// {"ev":"ready","data":{"stratum":..,"web":..,"name":..}}; EOF or "quit"
// on stdin stops it.
func proxyRole(args []string) error {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	dir := fs.String("dir", "", "directory for the bbolt store")
	pool := fs.String("pool", "", "pool host:port")
	mode := fs.String("mode", proxy.ModeSplit, "upstream mode: split or passthrough")
	stratumAddr := fs.String("stratum", "127.0.0.1:0", "stratum listen address")
	webAddr := fs.String("web", "127.0.0.1:0", "HTTP address for /metrics and /debug/pprof/")
	if err := fs.Parse(args); err != nil {
		return err
	}
	raiseOwnNoFile()
	st, err := store.Open(filepath.Join(*dir, "proxy.db"), nil)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.PutPool(store.Pool{Addr: *pool, Algorithm: "sha256"}); err != nil {
		return err
	}
	name, _, err := st.RegisterUser(store.Account{Pool: *pool, User: "bench", Password: "x"}, nil)
	if err != nil {
		return err
	}
	reg := metrics.New(metrics.Config{})
	log := zerolog.New(os.Stderr).Level(zerolog.WarnLevel).With().Timestamp().Logger()
	srv, err := proxy.New(proxy.Config{Addr: *stratumAddr, Mode: *mode, Store: st, Metrics: reg, Log: log})
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	reg.SetTag(srv.Addr())
	reg.Start()
	defer reg.Stop()

	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) { reg.WritePrometheus(w) })
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	ln, err := net.Listen("tcp", *webAddr)
	if err != nil {
		_ = srv.Stop(context.Background())
		return err
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()

	out := newEmitter()
	out.emit("ready", map[string]any{"stratum": srv.Addr(), "web": ln.Addr().String(), "name": name, "pid": os.Getpid()})
	sc := bufio.NewScanner(os.Stdin)
	// Bounded: ends at EOF (the suite closed stdin or died) or "quit".
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "quit" {
			break
		}
	}
	_ = hs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Stop(ctx)
}
