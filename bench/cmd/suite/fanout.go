package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stratum-proxy/stratum-proxy/bench/flood"
)

// fanoutResult is one side of the fan-out scenario.
type fanoutResult struct {
	sum         *flood.Summary
	broadcastMs []float64 // the pool's own time to write each job to all its connections
	proxyMeanMs float64   // proxy_notify_fanout_seconds mean over the timed jobs (proxy side only)
	proxyCount  float64
	// proxyBuckets are the timed jobs' proxy_notify_fanout_seconds
	// buckets (cumulative, le in seconds).
	proxyBuckets []bucket
	jobs         int
}

// fanout measures how long a job takes from the pool's send to every
// miner, with 18,000 idle miners straight on the pool and through the
// proxy (split mode: one upstream, so the pool writes one line and the
// proxy fans it out). The pool role sends timed jobs whose id carries the
// send time; the flood records, for each (job, miner) arrival, arrival -
// send on the same machine clock.
func (s *suite) fanout(ctx context.Context) error {
	n, jobs, every := 18000, 10, 1500*time.Millisecond
	if s.opts.quick {
		n, jobs, every = 5000, 4, time.Second
	}
	st, err := s.fanoutRun(ctx, n, jobs, every, false)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		s.anomaly("fanout", "straight: %v", err)
	}
	px, err := s.fanoutRun(ctx, n, jobs, every, true)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		s.anomaly("fanout", "proxy: %v", err)
	}
	cs := fmt.Sprintf("%d miners, %d jobs", n, jobs)
	lat := func(r fanoutResult, f func(q *flood.Quantiles) float64) *float64 {
		if r.sum == nil || r.sum.NotifyLatency == nil || r.sum.NotifyLatency.Count == 0 {
			return nil
		}
		return fp(f(r.sum.NotifyLatency))
	}
	for _, q := range []struct {
		name, key string
		f         func(*flood.Quantiles) float64
	}{
		{"send -> miner p50", "", func(q *flood.Quantiles) float64 { return q.P50Ms }},
		{"send -> miner p99", keyFanoutP99, func(q *flood.Quantiles) float64 { return q.P99Ms }},
		{"send -> miner p99.9", "", func(q *flood.Quantiles) float64 { return q.P999Ms }},
		{"send -> last miner (max)", "", func(q *flood.Quantiles) float64 { return q.MaxMs }},
	} {
		s.add(Row{Scenario: "fanout", Key: q.key, Case: cs, Metric: q.name, Unit: "ms", Straight: lat(st, q.f), Proxy: lat(px, q.f)})
	}
	arrivals := func(r fanoutResult) *float64 {
		if r.sum == nil || r.sum.NotifyLatency == nil {
			return nil
		}
		return fp(float64(r.sum.NotifyLatency.Count))
	}
	s.add(Row{Scenario: "fanout", Case: cs, Metric: "timed arrivals", Unit: "count",
		Straight: arrivals(st), Proxy: arrivals(px), Note: fmt.Sprintf("want %d (jobs x miners)", n*jobs)})
	spread := func(r fanoutResult) *float64 {
		if r.sum == nil || r.sum.NotifyFanout.Count == 0 {
			return nil
		}
		return fp(r.sum.NotifyFanout.P99Ms)
	}
	s.add(Row{Scenario: "fanout", Case: cs, Metric: "first -> miner p99", Unit: "ms", Straight: spread(st), Proxy: spread(px),
		Note: "spread after the first miner got the job"})
	bc := func(r fanoutResult) *float64 {
		if len(r.broadcastMs) == 0 {
			return nil
		}
		return fp(slices.Max(r.broadcastMs))
	}
	s.add(Row{Scenario: "fanout", Case: cs, Metric: "pool write time (max)", Unit: "ms", Straight: bc(st), Proxy: bc(px), NoRatio: true,
		Note: "pool simulator writing the job to its connections (every miner straight; one upstream through the proxy)"})
	if px.sum != nil && px.proxyCount > 0 {
		// The mean is exact (_sum / _count); the buckets are too coarse
		// (50-100-250 ms) for an interpolated p99 to mean much, so they are
		// listed instead.
		s.add(Row{Scenario: "fanout", Case: cs, Metric: "proxy_notify_fanout_seconds mean", Unit: "ms", Proxy: fp(px.proxyMeanMs),
			Note: fmt.Sprintf("proxy's own histogram (pool line in -> queued to every miner): %.0f timed-job observations (one per loop and job): %s",
				px.proxyCount, bucketText(px.proxyBuckets))})
	}
	s.add(Row{Scenario: "fanout", Key: keyFanoutMiners, Case: cs, Metric: "miners", Unit: "count",
		Straight: fp(float64(n)), Proxy: fp(float64(n)), NoRatio: true})
	s.note("fanout: the pool role sends %d jobs %s apart, each id carrying its send time (unix ns); quantiles are over every "+
		"(job, miner) arrival, so 'max' is the last miner of the slowest job and p99 the time by which 99%% of all deliveries "+
		"had arrived. The flood does not keep a per-job maximum, so per-job completion times are not split out.", jobs, every)
	return nil
}

// fanoutRun runs one side of the fan-out scenario.
func (s *suite) fanoutRun(ctx context.Context, n, jobs int, every time.Duration, viaProxy bool) (fanoutResult, error) {
	res := fanoutResult{jobs: jobs}
	side := "straight"
	if viaProxy {
		side = "proxy"
	}
	tag := "fanout-" + side
	pl, err := s.startPool(ctx, tag, idleDiff, false)
	if err != nil {
		return res, err
	}
	defer s.stopPool(pl, "fanout")
	target, user := pl.addr, "bench.rig%d"
	var pi *proxyInst
	if viaProxy {
		if pi, err = s.startProxy(ctx, pl.addr, "split", tag); err != nil {
			return res, err
		}
		defer s.stopProxy(pi, "fanout")
		target, user = pi.stratum, pi.name+".rig%d"
	}
	sendTime := time.Duration(jobs) * every
	fl, err := s.startFlood(ctx, tag, floodOpts{target: target, user: user, miners: n, timed: true,
		duration: rampTimeout(n) + sendTime + 2*time.Minute})
	if err != nil {
		return res, err
	}
	repro := s.repro(pl, pi, fl)
	repro = append(repro, "(then on the pool's stdin: notify "+strconv.Itoa(jobs)+" "+strconv.Itoa(int(every/time.Millisecond))+")")
	rec := RunRecord{Scenario: "fanout", Case: fmt.Sprintf("%d miners", n), Side: side, Commands: repro}
	defer func() { s.addRun(rec) }()
	if _, err := s.waitAuthorized(ctx, fl, rampTimeout(n), 20*time.Second); err != nil {
		fl.p.stop(5*time.Second, false)
		return res, fmt.Errorf("%v; reproduce: %s", err, strings.Join(repro, " ; "))
	}
	if err := sleepCtx(ctx, s.settle()); err != nil {
		return res, err
	}
	profDone := make(chan struct{})
	if pi != nil && pi.harness {
		path := filepath.Join(s.opts.profile, tag+"-proxy.cpu.pprof")
		secs := max(int(sendTime.Seconds()), 1)
		go func() {
			defer close(profDone)
			if err := fetchProfile(ctx, pi.web, fmt.Sprintf("profile?seconds=%d", secs), path, time.Duration(secs+30)*time.Second); err != nil {
				s.logf("  cpu profile: %v", err)
			} else {
				s.logf("  cpu profile: %s", path)
			}
		}()
	} else {
		close(profDone)
	}
	var before *metricsSnap
	if pi != nil {
		// The job each miner got at login is in the proxy's histogram too;
		// only the timed jobs' fan-outs are compared below.
		if before, err = scrape(ctx, pi.web); err != nil {
			return res, err
		}
	}
	from := pl.p.eventCount()
	if err := pl.p.send(fmt.Sprintf("notify %d %d", jobs, every/time.Millisecond)); err != nil {
		return res, err
	}
	if _, _, err := pl.p.waitEvent(ctx, "notify_done", from, sendTime+30*time.Second, nil); err != nil {
		return res, err
	}
	<-profDone
	// Stragglers: a job reaches every miner within well under a second on
	// this machine; 2 s leaves room for the slowest.
	if err := sleepCtx(ctx, 2*time.Second); err != nil {
		return res, err
	}
	for _, ev := range pl.p.eventsNamed("notified") {
		var nt struct {
			BroadcastNs int64 `json:"broadcast_ns"`
		}
		if json.Unmarshal(ev.Data, &nt) == nil {
			res.broadcastMs = append(res.broadcastMs, float64(nt.BroadcastNs)/1e6)
		}
	}
	var ups float64
	if pi != nil {
		met, err := scrape(ctx, pi.web)
		if err != nil {
			return res, err
		}
		d := met.since(before, "proxy_notify_fanout_seconds")
		res.proxyCount = d.sums["proxy_notify_fanout_seconds_count"]
		if res.proxyCount > 0 {
			sum := met.sums["proxy_notify_fanout_seconds_sum"] - before.sums["proxy_notify_fanout_seconds_sum"]
			res.proxyMeanMs = sum / res.proxyCount * 1000
		}
		res.proxyBuckets = d.buckets["proxy_notify_fanout_seconds"]
		ups = met.sums["proxy_upstreams_connected"]
		if m := met.sums["proxy_miners_connected"]; int(m) != n {
			s.anomaly("fanout", "%s: proxy_miners_connected = %.0f with %d miners; reproduce: %s", tag, m, n, strings.Join(repro, " ; "))
		}
	}
	sum, err := fl.stopAndSummary(ctx)
	if err != nil {
		return res, err
	}
	res.sum = sum
	rec.Flood, _ = json.Marshal(sum)
	buckets := map[string]float64{}
	for _, b := range res.proxyBuckets {
		buckets[strconv.FormatFloat(b.le, 'g', -1, 64)] = b.count
	}
	rec.Extra = map[string]any{"pool_broadcast_ms": res.broadcastMs, "proxy_notify_fanout_mean_ms": res.proxyMeanMs,
		"proxy_notify_fanout_buckets": buckets, "proxy_upstreams_connected": ups}
	got := int64(0)
	if sum.NotifyLatency != nil {
		got = int64(sum.NotifyLatency.Count)
		s.logf("  %s: %d timed arrivals, p50 %.1f ms p99 %.1f ms max %.1f ms; pool write max %.1f ms",
			tag, got, sum.NotifyLatency.P50Ms, sum.NotifyLatency.P99Ms, sum.NotifyLatency.MaxMs, slices.Max(append(res.broadcastMs, 0)))
	}
	if want := int64(n * jobs); got != want || sum.Connect.Disconnects > 0 {
		msg := fmt.Sprintf("%s: %d of %d job deliveries measured, %d miners disconnected. Reproduce: %s",
			tag, got, want, sum.Connect.Disconnects, strings.Join(repro, " ; "))
		if viaProxy {
			s.anomaly("fanout", "%s", msg)
		} else {
			s.note("fanout (pool simulator, not the proxy): %s", msg)
		}
	}
	return res, nil
}

// bucketText renders the non-empty buckets of a cumulative histogram as
// "n<=le" counts, e.g. "12 in (25ms,50ms], 8 in (50ms,100ms]".
func bucketText(bs []bucket) string {
	var parts []string
	prevLe, prevC := 0.0, 0.0
	for _, b := range bs {
		if n := b.count - prevC; n > 0 {
			hi := "+Inf"
			if !math.IsInf(b.le, 1) {
				hi = fmt.Sprintf("%gms", b.le*1000)
			}
			parts = append(parts, fmt.Sprintf("%.0f in (%gms,%s]", n, prevLe*1000, hi))
		}
		prevLe, prevC = b.le, b.count
	}
	return strings.Join(parts, ", ")
}
