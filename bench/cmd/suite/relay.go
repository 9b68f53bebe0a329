package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/stratum-proxy/stratum-proxy/bench/flood"
)

// relayCase is one share relay load.
type relayCase struct {
	name     string
	miners   int
	rate     float64 // shares/s per miner
	duration time.Duration
	rounds   int // alternating straight/proxy runs; each side reports its median
}

// relayResult is what one side of a relay case measured.
type relayResult struct {
	steady float64 // answered shares/s after the ramp
	sum    *flood.Summary
}

// warmup is left out of the steady-state window after every miner is
// authorized.
const warmup = 2 * time.Second

// relay measures answered shares/s at saturation (blind shares at a rate
// far above what two cores relay, every share valid at the pool's tiny
// difficulty) and the submit -> answer latency at a fixed moderate rate,
// straight to the pool and through the proxy (split mode: every miner on
// one upstream connection).
func (s *suite) relay(ctx context.Context) error {
	// 500 miners x 1,000/s offers 500,000 shares/s, several times what the
	// machine can relay (~150,000/s straight); 16 in flight per miner (8,000 in all) keeps every
	// party busy without unbounded queues.
	sat := relayCase{name: "saturation", miners: 500, rate: 1000, duration: 15 * time.Second, rounds: 3}
	// 1,000 miners x 2/s = 2,000 shares/s: a large farm's real share rate
	// is far lower; this is moderate for a proxy and leaves CPU idle, so
	// latency is the relay's, not a queue's.
	mod := relayCase{name: "fixed rate", miners: 1000, rate: 2, duration: 15 * time.Second, rounds: 1}
	if s.opts.quick {
		sat.duration, mod.duration, sat.rounds = 8*time.Second, 8*time.Second, 1
	}
	for _, c := range []relayCase{sat, mod} {
		// Rounds alternate straight and proxy so that a disturbance (another
		// process on the machine) hits both sides alike; each side reports
		// its median round.
		var sts, pxs []relayResult
		for round := 1; round <= c.rounds; round++ {
			st, err := s.relayRun(ctx, c, round, false)
			if err != nil {
				if ctx.Err() != nil {
					return err
				}
				s.anomaly("relay", "%s straight: %v", c.name, err)
			} else {
				sts = append(sts, st)
			}
			px, err := s.relayRun(ctx, c, round, true)
			if err != nil {
				if ctx.Err() != nil {
					return err
				}
				s.anomaly("relay", "%s proxy: %v", c.name, err)
			} else {
				pxs = append(pxs, px)
			}
		}
		st, px := medianRound(sts), medianRound(pxs)
		cs := fmt.Sprintf("%s: %d miners x %g/s", c.name, c.miners, c.rate)
		thr := Row{Scenario: "relay", Case: cs, Metric: "answered shares/s", Unit: "1/s",
			Straight: st.steadyPtr(), Proxy: px.steadyPtr()}
		if c.name == "saturation" {
			thr.Key = keyRelaySat
			thr.Note = fmt.Sprintf("steady state; median of %d rounds: straight %s, proxy %s", c.rounds, rates(sts), rates(pxs))
		} else {
			thr.Note = fmt.Sprintf("offered %.0f/s", float64(c.miners)*c.rate)
		}
		s.add(thr)
		for _, q := range []struct {
			name string
			f    func(flood.Quantiles) float64
		}{
			{"answer latency p50", func(q flood.Quantiles) float64 { return q.P50Ms }},
			{"answer latency p99", func(q flood.Quantiles) float64 { return q.P99Ms }},
		} {
			s.add(Row{Scenario: "relay", Case: cs, Metric: q.name, Unit: "ms",
				Straight: st.latency(q.f), Proxy: px.latency(q.f)})
		}
	}
	s.note("relay: shares are the flood's blind shares at pool difficulty 1e-10 (every one valid; the pool still hashes each); " +
		"'answered shares/s' counts answers per second over the steady window; latency is submit -> answer over the whole run. " +
		"Pool, proxy and flood share the same 2 CPUs, so the proxied run has one more busy process.")
	return nil
}

func (r relayResult) steadyPtr() *float64 {
	if r.sum == nil {
		return nil
	}
	return fp(r.steady)
}

func (r relayResult) latency(f func(flood.Quantiles) float64) *float64 {
	if r.sum == nil || r.sum.AnswerLatency.Count == 0 {
		return nil
	}
	return fp(f(r.sum.AnswerLatency))
}

// medianRound returns the round with the median steady rate (the lower
// middle one for an even count); the zero result for none.
func medianRound(rs []relayResult) relayResult {
	if len(rs) == 0 {
		return relayResult{}
	}
	rs = slices.Clone(rs)
	slices.SortFunc(rs, func(a, b relayResult) int { return cmp.Compare(a.steady, b.steady) })
	return rs[(len(rs)-1)/2]
}

// rates lists the rounds' steady rates, e.g. "[190k 201k 195k]".
func rates(rs []relayResult) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("%.0fk", r.steady/1000)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// relayRun runs one side of one round of a relay case.
func (s *suite) relayRun(ctx context.Context, c relayCase, round int, viaProxy bool) (relayResult, error) {
	var res relayResult
	side := "straight"
	if viaProxy {
		side = "proxy"
	}
	tag := fmt.Sprintf("relay-%s-%d-%s", strings.ReplaceAll(c.name, " ", "-"), round, side)
	pl, err := s.startPool(ctx, tag, blindDiff, true)
	if err != nil {
		return res, err
	}
	defer s.stopPool(pl, "relay")
	target, user := pl.addr, "bench.rig%d"
	var pi *proxyInst
	if viaProxy {
		if pi, err = s.startProxy(ctx, pl.addr, "split", tag); err != nil {
			return res, err
		}
		defer s.stopProxy(pi, "relay")
		target, user = pi.stratum, pi.name+".rig%d"
	}
	fl, err := s.startFlood(ctx, tag, floodOpts{target: target, user: user, miners: c.miners, rate: c.rate,
		duration: c.duration, maxPending: 16})
	if err != nil {
		return res, err
	}
	repro := s.repro(pl, pi, fl)
	rec := RunRecord{Scenario: "relay", Case: fmt.Sprintf("%s round %d", c.name, round), Side: side, Commands: repro}
	defer func() { s.addRun(rec) }()
	if _, err := s.waitAuthorized(ctx, fl, rampTimeout(c.miners), 15*time.Second); err != nil {
		fl.p.stop(5*time.Second, false)
		return res, fmt.Errorf("%v; reproduce: %s", err, strings.Join(repro, " ; "))
	}
	profDone := make(chan struct{})
	if pi != nil && pi.harness && c.name == "saturation" && round == 1 {
		secs := int((c.duration - warmup*3).Seconds())
		path := filepath.Join(s.opts.profile, tag+"-proxy.cpu.pprof")
		go func() {
			defer close(profDone)
			if secs < 2 {
				return
			}
			_ = sleepCtx(ctx, warmup)
			if err := fetchProfile(ctx, pi.web, fmt.Sprintf("profile?seconds=%d", secs), path, time.Duration(secs+30)*time.Second); err != nil {
				s.logf("  cpu profile: %v", err)
			} else {
				s.logf("  cpu profile: %s", path)
			}
		}()
	} else {
		close(profDone)
	}
	sum, err := fl.summary(ctx, c.duration+time.Minute)
	<-profDone
	if err != nil {
		return res, err
	}
	res.sum = sum
	res.steady = steadyRate(fl.progressSeries(), c.miners, c.duration)
	if res.steady == 0 {
		res.steady = sum.Shares.AcceptedPerSec
	}
	rec.Flood, _ = json.Marshal(sum)
	st, err := pl.stats(ctx)
	if err != nil {
		return res, err
	}
	rec.Extra = map[string]any{"steady_answered_per_s": res.steady, "pool_accepted": st.Accepted, "pool_rejected": st.Rejected,
		"pool_submits": st.Submits}
	answered := sum.Shares.Accepted + sum.Shares.Rejected
	s.logf("  %s: sent %d, accepted %d, rejected %d %v, unanswered %d, steady %.0f answered/s; pool accepted %d rejected %d",
		tag, sum.Shares.Sent, sum.Shares.Accepted, sum.Shares.Rejected, sum.Shares.RejectedByCode, sum.Shares.Unanswered,
		res.steady, st.Accepted, st.Rejected)
	if viaProxy {
		if sum.Shares.Rejected > 0 {
			s.anomaly("relay", "%s: %d of %d shares rejected through the proxy (%v; pool rejected %d); every blind share is valid straight to the pool. Reproduce: %s",
				tag, sum.Shares.Rejected, answered, sum.Shares.RejectedByCode, st.Rejected, strings.Join(repro, " ; "))
		}
		if sum.Shares.Accepted > int64(st.Accepted) {
			s.anomaly("relay", "%s: miners saw %d accepted, the pool accepted only %d (answers not from the pool?). Reproduce: %s",
				tag, sum.Shares.Accepted, st.Accepted, strings.Join(repro, " ; "))
		}
	}
	if sum.Shares.Unanswered > 0 || sum.Connect.Disconnects > 0 || sum.Shares.Unmatched > 0 {
		msg := fmt.Sprintf("%s: %d shares unanswered after the %.1fs drain, %d miners disconnected, %d unmatched answers. Reproduce: %s",
			tag, sum.Shares.Unanswered, sum.DrainS, sum.Connect.Disconnects, sum.Shares.Unmatched, strings.Join(repro, " ; "))
		if viaProxy {
			s.anomaly("relay", "%s", msg)
		} else {
			s.note("relay (pool simulator, not the proxy): %s", msg)
		}
	}
	return res, nil
}

// steadyRate is the answered shares/s between the first progress line
// at least warmup after every miner was authorized and the last one before
// submitting stopped; 0 without two such lines.
func steadyRate(ps []flood.Progress, miners int, duration time.Duration) float64 {
	var t0 time.Duration = -1
	var first, last *flood.Progress
	for i := range ps {
		p := &ps[i]
		if t0 < 0 {
			if p.Authorized >= int64(miners) {
				t0 = p.Elapsed + warmup
			}
			continue
		}
		if p.Elapsed < t0 || p.Elapsed > duration {
			continue
		}
		if first == nil {
			first = p
		}
		last = p
	}
	if first == nil || last == first {
		return 0
	}
	dt := (last.Elapsed - first.Elapsed).Seconds()
	return float64((last.Accepted+last.Rejected)-(first.Accepted+first.Rejected)) / dt
}
