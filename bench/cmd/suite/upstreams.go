package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// upstreams counts the proxy's pool connections for one account with
// 18,000 miners submitting shares in split mode (expected: one, as a
// 2-byte prefix gives 65,536 miners per upstream), checks that every miner
// stays connected and every share is answered, and reads the pool's own
// connection count. Straight to the pool, each miner is its own pool
// connection by construction, so that side is not run.
func (s *suite) upstreams(ctx context.Context) error {
	n, rate, dur := 18000, 0.1, 30*time.Second
	if s.opts.quick {
		n, rate, dur = 5000, 0.2, 15*time.Second
	}
	tag := "upstreams-split"
	pl, err := s.startPool(ctx, tag, blindDiff, false)
	if err != nil {
		return err
	}
	defer s.stopPool(pl, "upstreams")
	pi, err := s.startProxy(ctx, pl.addr, "split", tag)
	if err != nil {
		return err
	}
	defer s.stopProxy(pi, "upstreams")
	fl, err := s.startFlood(ctx, tag, floodOpts{target: pi.stratum, user: pi.name + ".rig%d", miners: n, rate: rate,
		duration: rampTimeout(n) + dur + time.Minute})
	if err != nil {
		return err
	}
	repro := s.repro(pl, pi, fl)
	rec := RunRecord{Scenario: "upstreams", Case: fmt.Sprintf("split %d miners", n), Side: "proxy", Commands: repro}
	defer func() { s.addRun(rec) }()
	_, err = s.waitAuthorized(ctx, fl, rampTimeout(n), 20*time.Second)
	if err != nil {
		fl.p.stop(5*time.Second, false)
		return fmt.Errorf("%v; reproduce: %s", err, strings.Join(repro, " ; "))
	}
	// Let shares flow for a while with everyone connected before counting.
	if err := sleepCtx(ctx, min(dur/2, 10*time.Second)); err != nil {
		return err
	}
	met, err := scrape(ctx, pi.web)
	if err != nil {
		return err
	}
	pst, err := pl.stats(ctx)
	if err != nil {
		return err
	}
	ups, miners := met.sums["proxy_upstreams_connected"], met.sums["proxy_miners_connected"]
	// The rest of the steady load, then stop (the flood's own duration is
	// only an upper bound that includes the worst-case ramp).
	if err := sleepCtx(ctx, dur-min(dur/2, 10*time.Second)); err != nil {
		return err
	}
	sum, err := fl.stopAndSummary(ctx)
	if err != nil {
		return err
	}
	rec.Flood, _ = json.Marshal(sum)
	rec.Extra = map[string]any{"proxy_upstreams_connected": ups, "proxy_miners_connected": miners,
		"pool_connections": pst.Connections, "pool_accepted": pst.Accepted}
	s.add(Row{Scenario: "upstreams", Key: keyUpstreams, Case: fmt.Sprintf("split, %d miners of one account", n),
		Metric: "pool connections", Unit: "count", Proxy: fp(ups),
		Note: fmt.Sprintf("straight: %d (one per miner); pool saw %d; ceil(%d/65536) = %d expected", n, pst.Connections, n, (n+65535)/65536)})
	s.add(Row{Scenario: "upstreams", Key: keyUpstreamMiner, Case: fmt.Sprintf("split, %d miners of one account", n),
		Metric: "proxy_miners_connected", Unit: "count", Proxy: fp(miners)})
	s.add(Row{Scenario: "upstreams", Case: fmt.Sprintf("split, %d miners of one account", n),
		Metric: "shares answered", Unit: "count", Proxy: fp(float64(sum.Shares.Accepted + sum.Shares.Rejected)),
		Note: fmt.Sprintf("of %d sent at %g/s per miner; %d rejected %v", sum.Shares.Sent, rate, sum.Shares.Rejected, sum.Shares.RejectedByCode)})
	want := (n + 65535) / 65536
	if int(ups) != want || pst.Connections != want {
		s.anomaly("upstreams", "%d miners of one account: proxy_upstreams_connected = %.0f, pool connections = %d, want %d. Reproduce: %s",
			n, ups, pst.Connections, want, strings.Join(repro, " ; "))
	}
	if int(miners) != n {
		s.anomaly("upstreams", "proxy_miners_connected = %.0f with %d miners authorized. Reproduce: %s", miners, n, strings.Join(repro, " ; "))
	}
	if sum.Connect.Disconnects > 0 || sum.Shares.Unanswered > 0 || sum.Shares.Rejected > 0 {
		s.anomaly("upstreams", "%d miners disconnected, %d shares unanswered, %d rejected %v (all blind shares are valid at the pool). Reproduce: %s",
			sum.Connect.Disconnects, sum.Shares.Unanswered, sum.Shares.Rejected, sum.Shares.RejectedByCode, strings.Join(repro, " ; "))
	}
	s.logf("  %s: upstreams %.0f, pool connections %d, miners %.0f, sent %d answered %d",
		tag, ups, pst.Connections, miners, sum.Shares.Sent, sum.Shares.Accepted+sum.Shares.Rejected)
	return nil
}
