package main

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/stratum-proxy/stratum-proxy/bench/dialectsim"
)

func TestDialectCounts(t *testing.T) {
	s := &suite{opts: &options{}}
	q := &suite{opts: &options{quick: true}}
	for _, k := range dialectsim.Kinds() {
		if _, ok := dialectAlgo[k]; !ok {
			t.Errorf("%s has no algorithm", k)
		}
	}
	if s.dialectMiners(dialectsim.CryptoNote) != 500 || q.dialectMiners(dialectsim.EthStratum) != 50 ||
		s.dialectMiners(dialectsim.KawPow) != 100 || q.dialectMiners(dialectsim.EthProxy) != 20 {
		t.Error("miner counts")
	}
	if dialectUpstreams(dialectsim.CryptoNote, 500) != 2 || dialectUpstreams(dialectsim.EthStratum, 256) != 1 ||
		dialectUpstreams(dialectsim.Equihash, 100) != 100 {
		t.Error("upstream counts")
	}
	if o, err := parseFlags([]string{"--scenarios", "dialects"}, io.Discard); err != nil || len(o.scenarios) != 1 {
		t.Errorf("--scenarios dialects: %v", err)
	}
}

// TestDialMineAll runs the scenario's straight side helpers against a
// simulator.
func TestDialMineAll(t *testing.T) {
	pool, err := dialectsim.StartPool(dialectsim.PoolConfig{Kind: dialectsim.CryptoNote})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ms, err := dialMiners(ctx, dialectsim.CryptoNote, pool.Addr(), "bench", 10)
	defer closeMiners(ms)
	if err != nil || len(ms) != 10 || pool.Conns() != 10 {
		t.Fatalf("dialed %d: %v; pool conns %d", len(ms), err, pool.Conns())
	}
	if ok, e := mineAll(ms, 2); ok != 10 || e != "" {
		t.Fatalf("mined %d: %s", ok, e)
	}
	if st := pool.Stats(); st.Accepted != 20 || st.Rejected != 0 {
		t.Fatalf("pool %+v", st)
	}
}
