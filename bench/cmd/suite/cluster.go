package main

// The cluster scenario (issue #13, "Scale on this machine"): several proxy
// processes sharing one etcd and one stratum port (SO_REUSEPORT) hold
// --cluster-miners idle miners from several flood processes, each process
// within the machine's 20,000-descriptor limit. It is not part of the
// default run (it needs /usr/bin/etcd and a few minutes): select it with
// --scenarios cluster.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stratum-proxy/stratum-proxy/bench/flood"
)

// optionalScenarios run only when named in --scenarios.
var optionalScenarios = []string{"cluster"}

// clusterOpts are the cluster scenario's flags (registerClusterFlags).
var clusterOpts struct {
	miners    int
	instances int
	floods    int
	hold      time.Duration
	jobs      int
	every     time.Duration
	etcd      string
}

// registerClusterFlags adds the cluster scenario's flags to the suite's.
func registerClusterFlags(fs *flag.FlagSet) {
	fs.IntVar(&clusterOpts.miners, "cluster-miners", 100000, "cluster scenario: miners in all")
	fs.IntVar(&clusterOpts.instances, "cluster-instances", 6, "cluster scenario: proxy processes (one etcd, one SO_REUSEPORT port)")
	fs.IntVar(&clusterOpts.floods, "cluster-floods", 0, "cluster scenario: flood processes (0: enough for <= 17,000 miners each, at least --cluster-instances)")
	fs.DurationVar(&clusterOpts.hold, "cluster-hold", 60*time.Second, "cluster scenario: how long all miners are held connected (the notifies and scrapes happen inside it)")
	fs.IntVar(&clusterOpts.jobs, "cluster-jobs", 6, "cluster scenario: timed jobs the pool sends during the hold")
	fs.DurationVar(&clusterOpts.every, "cluster-job-every", 10*time.Second, "cluster scenario: interval of the timed jobs")
	fs.StringVar(&clusterOpts.etcd, "cluster-etcd", "etcd", "cluster scenario: etcd binary (PATH is searched)")
}

// Per-process bounds of the cluster layout: every process has 20,000
// descriptors; a proxy needs one per miner plus its upstreams, etcd client,
// API and log (a few dozen), a flood one per miner plus its event loops.
const (
	clusterMaxPerProxy = 17500
	clusterMaxPerFlood = 17000
)

// splitEven splits n into k parts that differ by at most one, largest first.
func splitEven(n, k int) []int {
	if k <= 0 {
		return nil
	}
	out := make([]int, k)
	for i := range out {
		out[i] = n / k
		if i < n%k {
			out[i]++
		}
	}
	return out
}

// clusterLayout checks the miner count against the per-process bounds and
// returns the flood sizes.
func clusterLayout(miners, instances, floods int) ([]int, error) {
	if miners < 1 || instances < 1 {
		return nil, fmt.Errorf("cluster: --cluster-miners %d and --cluster-instances %d must be positive", miners, instances)
	}
	// SO_REUSEPORT hashes connections over the instances' listeners: allow
	// a few percent of imbalance.
	if per := miners / instances; per+per/20 > clusterMaxPerProxy {
		return nil, fmt.Errorf("cluster: %d miners over %d proxies is ~%d each (+5%% imbalance), over %d per process (20,000 descriptors): use more --cluster-instances",
			miners, instances, per, clusterMaxPerProxy)
	}
	if floods <= 0 {
		floods = max(instances, (miners+clusterMaxPerFlood-1)/clusterMaxPerFlood)
	}
	sizes := splitEven(miners, floods)
	if sizes[0] > clusterMaxPerFlood {
		return nil, fmt.Errorf("cluster: %d miners per flood process is over %d: use more --cluster-floods", sizes[0], clusterMaxPerFlood)
	}
	return slices.DeleteFunc(sizes, func(n int) bool { return n == 0 }), nil
}

// histQuantile estimates quantile q (0..1) of a cumulative histogram the
// way Prometheus' histogram_quantile does: linear interpolation inside the
// bucket holding the rank, the lower bound of the first bucket being 0. A
// rank in the +Inf bucket returns the highest finite bound. NaN if empty.
func histQuantile(bs []bucket, q float64) float64 {
	if len(bs) == 0 {
		return math.NaN()
	}
	total := bs[len(bs)-1].count
	if total <= 0 {
		return math.NaN()
	}
	rank := q * total
	prevLe, prevC := 0.0, 0.0
	for _, b := range bs {
		if b.count >= rank && b.count > prevC {
			if math.IsInf(b.le, 1) {
				return prevLe
			}
			return prevLe + (b.le-prevLe)*(rank-prevC)/(b.count-prevC)
		}
		prevLe, prevC = b.le, b.count
	}
	return prevLe
}

// addBuckets sums cumulative histograms with the same bounds.
func addBuckets(a, b []bucket) []bucket {
	if len(a) == 0 {
		return slices.Clone(b)
	}
	m := map[float64]float64{}
	for _, x := range a {
		m[x.le] += x.count
	}
	for _, x := range b {
		m[x.le] += x.count
	}
	out := make([]bucket, 0, len(m))
	for le, c := range m {
		out = append(out, bucket{le, c})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].le < out[j].le })
	return out
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// etcdInst is the cluster's etcd.
type etcdInst struct {
	p        *proc
	endpoint string
}

// etcdArgv is a single-member etcd on 127.0.0.1 with its data in dir.
func etcdArgv(bin, dir string, clientPort, peerPort int) []string {
	cu := "http://127.0.0.1:" + strconv.Itoa(clientPort)
	pu := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	return []string{bin, "--name", "bench", "--data-dir", dir,
		"--listen-client-urls", cu, "--advertise-client-urls", cu,
		"--listen-peer-urls", pu, "--initial-advertise-peer-urls", pu,
		"--initial-cluster", "bench=" + pu, "--log-level", "warn"}
}

func (s *suite) startEtcd(ctx context.Context) (*etcdInst, error) {
	bin, err := exec.LookPath(clusterOpts.etcd)
	if err != nil {
		return nil, fmt.Errorf("cluster: etcd binary: %w (install etcd-server or pass --cluster-etcd)", err)
	}
	cp, err := freePort()
	if err != nil {
		return nil, err
	}
	pp, err := freePort()
	if err != nil {
		return nil, err
	}
	if pp == cp {
		return nil, errors.New("cluster: got the same free port twice")
	}
	dir := filepath.Join(s.tmp, "etcd")
	p, err := s.procs.start("etcd", etcdArgv(bin, dir, cp, pp), s.tmp, filepath.Join(s.tmp, "etcd.log"), nil)
	if err != nil {
		return nil, err
	}
	e := &etcdInst{p: p, endpoint: "http://127.0.0.1:" + strconv.Itoa(cp)}
	// Bounded: 30 s of 200 ms polls.
	for try := 0; try < 150; try++ {
		if p.exited() {
			return nil, fmt.Errorf("etcd exited: %s (log %s)", p.exitDesc(), p.logPath)
		}
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		req, _ := http.NewRequestWithContext(rctx, http.MethodGet, e.endpoint+"/health", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if strings.Contains(string(b), `"health":"true"`) {
				cancel()
				return e, nil
			}
		}
		cancel()
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return nil, err
		}
	}
	p.stop(5*time.Second, true)
	return nil, fmt.Errorf("etcd not healthy within 30 s (log %s)", p.logPath)
}

// scrapeTiming is one timed GET /metrics.
type scrapeTiming struct {
	Gzip  bool    `json:"gzip"`
	Ms    float64 `json:"ms"`
	Bytes int     `json:"bytes"` // on the wire (compressed with gzip)
}

// timeScrape GETs /metrics once and reads the whole body, asking for gzip
// or not (the client does not decompress: the time is the proxy's).
func timeScrape(ctx context.Context, web string, gz bool) (scrapeTiming, error) {
	cl := &http.Client{Transport: &http.Transport{DisableCompression: true, DisableKeepAlives: true}}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(rctx, http.MethodGet, "http://"+web+"/metrics", nil)
	if gz {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	t0 := time.Now()
	resp, err := cl.Do(req)
	if err != nil {
		return scrapeTiming{}, err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d := time.Since(t0)
	if err != nil {
		return scrapeTiming{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return scrapeTiming{}, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	if gz && resp.Header.Get("Content-Encoding") != "gzip" {
		return scrapeTiming{}, errors.New("GET /metrics with Accept-Encoding: gzip was not compressed")
	}
	return scrapeTiming{Gzip: gz, Ms: float64(d) / 1e6, Bytes: int(n)}, nil
}

// clusterProxy is one instance of the cluster and what was measured on it.
type clusterProxy struct {
	*proxyInst
	pid                 int
	rssIdle, rssLoaded  uint64
	rssEnd              uint64
	fds                 int
	miners, ups         float64
	before, after       *metricsSnap
	fanoutBuckets       []bucket
	fanoutCount, fanSum float64
}

// cluster runs the cluster scenario.
func (s *suite) cluster(ctx context.Context) error {
	co := clusterOpts
	if s.opts.quick {
		co.miners, co.instances, co.floods, co.hold, co.jobs, co.every = 10000, 2, 2, 20*time.Second, 4, 2*time.Second
	}
	if s.opts.profile != "" {
		return errors.New("cluster: runs the proxy binary only (not with --profile)")
	}
	sizes, err := clusterLayout(co.miners, co.instances, co.floods)
	if err != nil {
		return err
	}
	n := co.miners
	cs := fmt.Sprintf("%d miners, %d proxies, %d floods", n, co.instances, len(sizes))
	s.logf("  cluster: %s (floods of %v), hold %s, %d jobs every %s", cs, sizes, co.hold, co.jobs, co.every)

	et, err := s.startEtcd(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if !et.p.stop(10*time.Second, true) {
			s.anomaly("cluster", "etcd did not exit within 10 s of SIGTERM (killed)")
		}
	}()
	pl, err := s.startPool(ctx, "cluster", idleDiff, false)
	if err != nil {
		return err
	}
	defer s.stopPool(pl, "cluster")

	// The pool, added once to the shared etcd; this also creates the key
	// file every instance reads.
	key := filepath.Join(s.tmp, "cluster.key")
	storeFlags := []string{"--store", "etcd", "--etcd.endpoints", et.endpoint, "--store.key", key}
	add := append(append([]string{s.proxyBin}, storeFlags...), "--db.path", filepath.Join(s.tmp, "cluster-add.db"), "pool", "add", pl.addr, "sha256")
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	out, err := exec.CommandContext(actx, add[0], add[1:]...).CombinedOutput()
	cancel()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", cmdline(add), err, strings.TrimSpace(string(out)))
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	stratum := "127.0.0.1:" + strconv.Itoa(port)
	repro := []string{s.userCmd(et.p.argv), s.userCmd(pl.p.argv), s.userCmd(add)}

	var pxs []*clusterProxy
	defer func() {
		var wg sync.WaitGroup
		for _, px := range pxs {
			if px.p.exited() {
				continue
			}
			wg.Add(1)
			go func() { defer wg.Done(); s.stopProxy(px.proxyInst, "cluster") }()
		}
		wg.Wait()
	}()
	for i := range co.instances {
		dir, err := os.MkdirTemp(s.tmp, fmt.Sprintf("cluster-p%d-", i+1))
		if err != nil {
			return err
		}
		argv := append(append([]string{s.proxyBin}, storeFlags...),
			"--db.path", filepath.Join(dir, "proxy.db"),
			"--cluster.instance", fmt.Sprintf("p%d", i+1),
			"--stratum.addr", stratum, "--stratum.reuse-port",
			"--web.addr", "127.0.0.1:0", "--web.auth-token", "bench-cluster-token",
			"--upstream.mode", "split", "--log.level", "info", "--log.format", "json")
		argv = append(argv, s.opts.proxyArgs...)
		p, err := s.procs.start(fmt.Sprintf("proxy-cluster-p%d", i+1), argv, s.root, filepath.Join(dir, "proxy.log"), proxyLogLine)
		if err != nil {
			return err
		}
		ev, _, err := p.waitEvent(ctx, "ready", 0, 30*time.Second, nil)
		if err != nil {
			p.stop(5*time.Second, true)
			return err
		}
		var ready struct{ Stratum, Web string }
		_ = json.Unmarshal(ev.Data, &ready)
		pxs = append(pxs, &clusterProxy{proxyInst: &proxyInst{p: p, stratum: ready.Stratum, web: ready.Web}, pid: p.cmd.Process.Pid})
		repro = append(repro, s.userCmd(argv))
	}
	// One account for the whole cluster, registered on one instance: the
	// others see it through etcd.
	name, err := registerUser(ctx, pxs[0].web, pl.addr)
	if err != nil {
		return err
	}
	repro = append(repro, fmt.Sprintf(`curl -s -XPOST http://%s/api/v1/users -d '{"pool":"%s","user":"bench","password":"x"}'`, pxs[0].web, pl.addr))
	if err := sleepCtx(ctx, 2*time.Second); err != nil {
		return err
	}
	for _, px := range pxs {
		if px.rssIdle, err = rssBytes(px.pid); err != nil {
			return err
		}
	}
	etcdIdle, _ := rssBytes(et.p.cmd.Process.Pid)
	poolIdle, _ := rssBytes(pl.pid)

	// The floods, all at once, each miner authorizing as <name>.f<i>r<k>.
	holdTotal := rampTimeout(n) + co.hold + time.Duration(co.jobs)*co.every + 3*time.Minute
	var fls []*floodInst
	rampStart := time.Now()
	for i, m := range sizes {
		fl, err := s.startFlood(ctx, fmt.Sprintf("cluster-f%d", i+1), floodOpts{target: stratum,
			user: fmt.Sprintf("%s.f%dr%%d", name, i+1), miners: m, timed: true, duration: holdTotal})
		if err != nil {
			for _, f := range fls {
				f.p.stop(5*time.Second, true)
			}
			return err
		}
		fls = append(fls, fl)
		repro = append(repro, s.userCmd(fl.p.argv))
	}
	repro = append(repro, fmt.Sprintf("(during the hold, on the pool's stdin: notify %d %d)", co.jobs, co.every/time.Millisecond))
	rec := RunRecord{Scenario: "cluster", Case: cs, Side: "proxy", Commands: repro}
	defer func() { s.addRun(rec) }()
	stopFloods := func() {
		var wg sync.WaitGroup
		for _, f := range fls {
			wg.Add(1)
			go func() { defer wg.Done(); f.p.stop(10*time.Second, true) }()
		}
		wg.Wait()
	}
	// The ramps run concurrently; waiting on them in turn is enough (the
	// events are buffered), with the whole cluster's ramp as the bound.
	for _, fl := range fls {
		left := rampTimeout(n) - time.Since(rampStart)
		if _, err := s.waitAuthorized(ctx, fl, max(left, 20*time.Second), 30*time.Second); err != nil {
			stopFloods()
			return fmt.Errorf("%s: %v; reproduce: %s", fl.p.name, err, strings.Join(repro, " ; "))
		}
	}
	ramp := time.Since(rampStart)
	s.logf("  cluster: %d miners authorized in %s", n, ramp.Round(100*time.Millisecond))

	// The hold: settle, RSS, notifies, scrapes, then the rest of the hold.
	holdStart := time.Now()
	if err := sleepCtx(ctx, s.settle()); err != nil {
		stopFloods()
		return err
	}
	for _, px := range pxs {
		px.rssLoaded, _ = rssBytes(px.pid)
		px.fds = fdCount(px.pid)
		if px.before, err = scrape(ctx, px.web); err != nil {
			stopFloods()
			return fmt.Errorf("%s: %v", px.p.name, err)
		}
	}
	from := pl.p.eventCount()
	if err := pl.p.send(fmt.Sprintf("notify %d %d", co.jobs, co.every/time.Millisecond)); err != nil {
		stopFloods()
		return err
	}
	if _, _, err := pl.p.waitEvent(ctx, "notify_done", from, time.Duration(co.jobs)*co.every+30*time.Second, nil); err != nil {
		stopFloods()
		return err
	}
	if err := sleepCtx(ctx, 3*time.Second); err != nil { // stragglers
		stopFloods()
		return err
	}
	var fanAll []bucket
	var fanCount, fanSum, ups, miners float64
	for _, px := range pxs {
		if px.after, err = scrape(ctx, px.web); err != nil {
			stopFloods()
			return fmt.Errorf("%s: %v", px.p.name, err)
		}
		d := px.after.since(px.before, "proxy_notify_fanout_seconds")
		px.fanoutBuckets = d.buckets["proxy_notify_fanout_seconds"]
		px.fanoutCount = d.sums["proxy_notify_fanout_seconds_count"]
		px.fanSum = px.after.sums["proxy_notify_fanout_seconds_sum"] - px.before.sums["proxy_notify_fanout_seconds_sum"]
		px.miners, px.ups = px.after.sums["proxy_miners_connected"], px.after.sums["proxy_upstreams_connected"]
		fanAll = addBuckets(fanAll, px.fanoutBuckets)
		fanCount += px.fanoutCount
		fanSum += px.fanSum
		ups += px.ups
		miners += px.miners
	}
	// /metrics of the busiest instance, 5 times each way, once all miners
	// are on and after the timed jobs (so the fan-out is not disturbed).
	busiest := pxs[0]
	for _, px := range pxs {
		if px.miners > busiest.miners {
			busiest = px
		}
	}
	var scrapes []scrapeTiming
	for range 5 {
		for _, gz := range []bool{false, true} {
			t, err := timeScrape(ctx, busiest.web, gz)
			if err != nil {
				s.anomaly("cluster", "%s: timed GET /metrics (gzip %v): %v", busiest.p.name, gz, err)
				continue
			}
			scrapes = append(scrapes, t)
		}
	}
	pst, err := pl.stats(ctx)
	if err != nil {
		stopFloods()
		return err
	}
	if rest := co.hold - time.Since(holdStart); rest > 0 {
		if err := sleepCtx(ctx, rest); err != nil {
			stopFloods()
			return err
		}
	}
	var rssEndTotal, rssIdleTotal, rssLoadedTotal uint64
	maxFDs := 0
	for _, px := range pxs {
		px.rssEnd, _ = rssBytes(px.pid)
		rssEndTotal += px.rssEnd
		rssIdleTotal += px.rssIdle
		rssLoadedTotal += px.rssLoaded
		maxFDs = max(maxFDs, fdCount(px.pid), px.fds)
	}
	etcdLoaded, _ := rssBytes(et.p.cmd.Process.Pid)
	poolLoaded, _ := rssBytes(pl.pid)
	held := time.Since(holdStart)

	// Stop the floods and collect their summaries.
	sums := make([]*flood.Summary, len(fls))
	var wg sync.WaitGroup
	errs := make([]error, len(fls))
	for i, fl := range fls {
		wg.Add(1)
		go func() { defer wg.Done(); sums[i], errs[i] = fl.stopAndSummary(ctx) }()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	var p50s, p99s, maxs []float64
	var arrivals, disconnects int64
	floodRec := []any{}
	for _, sum := range sums {
		disconnects += sum.Connect.Disconnects
		if q := sum.NotifyLatency; q != nil && q.Count > 0 {
			p50s = append(p50s, q.P50Ms)
			p99s = append(p99s, q.P99Ms)
			maxs = append(maxs, q.MaxMs)
			arrivals += int64(q.Count)
		}
		floodRec = append(floodRec, map[string]any{"miners": sum.Miners, "ramp_s": sum.RampS, "connect": sum.Connect,
			"handshake": sum.Handshake, "notify_latency": sum.NotifyLatency, "notify_fanout": sum.NotifyFanout, "rss_bytes": sum.RSSBytes})
	}
	rec.Flood, _ = json.Marshal(floodRec)

	// Stop the proxies (SIGTERM, all at once) now that the miners have
	// left: each saves the detached sessions to etcd before it exits.
	exitS := make([]float64, len(pxs))
	wasKilled := make([]bool, len(pxs))
	for i, px := range pxs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			wasKilled[i] = !px.p.stop(clusterExitGrace, true)
			exitS[i] = time.Since(t0).Seconds()
		}()
	}
	wg.Wait()
	killed := 0
	for _, k := range wasKilled {
		if k {
			killed++
		}
	}
	sessions, sessErr := etcdCount(ctx, et.endpoint, "/stratum-proxy/"+"sessions/")

	// Rows.
	perMiner := 0.0
	if miners > 0 && rssLoadedTotal > rssIdleTotal {
		perMiner = float64(rssLoadedTotal-rssIdleTotal) / miners / 1024
	}
	var perInst []string
	minM, maxM := math.Inf(1), 0.0
	for _, px := range pxs {
		perInst = append(perInst, fmt.Sprintf("%s %.0f miners %.0f->%.0f MiB (%.2f KiB/miner, %d fds)", px.p.name[len("proxy-cluster-"):],
			px.miners, mib(px.rssIdle), mib(px.rssLoaded), memResult{idle: px.rssIdle, loaded: px.rssLoaded, miners: int(px.miners)}.perMinerKiB(), px.fds))
		minM, maxM = min(minM, px.miners), max(maxM, px.miners)
	}
	row := func(metric, unit string, v float64, note string) {
		s.add(Row{Scenario: "cluster", Case: cs, Metric: metric, Unit: unit, Proxy: fp(v), Note: note})
	}
	row("miners connected (all proxies)", "count", miners,
		fmt.Sprintf("want %d; per proxy %.0f-%.0f (SO_REUSEPORT on %s); ramp %.1f s", n, minM, maxM, stratum, ramp.Seconds()))
	row("RSS per miner", "KiB", perMiner,
		fmt.Sprintf("(sum of loaded - idle VmRSS) / miners, %s after the ramp: %.0f -> %.0f MiB over %d proxies; %s",
			s.settle(), mib(rssIdleTotal), mib(rssLoadedTotal), len(pxs), strings.Join(perInst, "; ")))
	row("proxy RSS at the end of the hold (all proxies)", "MiB", mib(rssEndTotal), fmt.Sprintf("held %.0f s", held.Seconds()))
	row("descriptors of the busiest proxy", "count", float64(maxFDs), "limit 20,000 per process")
	row("upstreams (proxy_upstreams_connected, all proxies)", "count", ups,
		fmt.Sprintf("pool simulator connections: %d; one account in split mode: one upstream per proxy expected", pst.Connections))
	if len(p99s) > 0 {
		row("notify pool send -> miner p50 (worst flood)", "ms", slices.Max(p50s), fmt.Sprintf("per flood %s", fmtList(p50s)))
		row("notify pool send -> miner p99 (worst flood)", "ms", slices.Max(p99s), fmt.Sprintf("per flood %s", fmtList(p99s)))
		row("notify pool send -> last miner (max)", "ms", slices.Max(maxs), "")
	}
	row("timed arrivals", "count", float64(arrivals), fmt.Sprintf("want %d (jobs x miners)", int64(n)*int64(co.jobs)))
	if fanCount > 0 {
		row("proxy_notify_fanout_seconds p50 (all proxies)", "ms", histQuantile(fanAll, 0.5)*1000,
			fmt.Sprintf("interpolated in the summed buckets (histogram_quantile); %.0f observations, mean %.2f ms: %s",
				fanCount, fanSum/fanCount*1000, bucketText(fanAll)))
		row("proxy_notify_fanout_seconds p99 (all proxies)", "ms", histQuantile(fanAll, 0.99)*1000, "")
	}
	for _, gz := range []bool{false, true} {
		var ms []float64
		bytes := 0
		for _, t := range scrapes {
			if t.Gzip == gz {
				ms = append(ms, t.Ms)
				bytes = t.Bytes
			}
		}
		if len(ms) == 0 {
			continue
		}
		slices.Sort(ms)
		label := "GET /metrics"
		if gz {
			label += " (Accept-Encoding: gzip)"
		}
		row(label+" median", "ms", ms[len(ms)/2],
			fmt.Sprintf("%s with %.0f miners, %d bytes on the wire; 5 scrapes: %s", busiest.p.name, busiest.miners, bytes, fmtList(ms)))
	}
	row("proxy exit after SIGTERM (slowest)", "s", slices.Max(exitS),
		fmt.Sprintf("per proxy %s; SIGTERM after the floods closed their miners; grace %s", fmtList(exitS), clusterExitGrace))
	if sessErr == nil {
		row("session records in etcd after the stop", "count", float64(sessions),
			fmt.Sprintf("one per miner expected (%d); --session.grace keeps them 1 min", n))
	} else {
		s.anomaly("cluster", "count the session records in etcd: %v", sessErr)
	}
	row("etcd RSS", "MiB", mib(etcdLoaded), fmt.Sprintf("%.1f MiB before the miners", mib(etcdIdle)))
	row("pool simulator RSS", "MiB", mib(poolLoaded), fmt.Sprintf("%.1f MiB before the miners", mib(poolIdle)))
	s.note("cluster: %d proxy processes on one etcd (%s) share %s with SO_REUSEPORT; one account registered once; "+
		"%d flood processes (sources %s) hold %d idle miners for %s; the pool sends %d timed jobs %s apart during the hold.",
		len(pxs), et.endpoint, stratum, len(fls), s.opts.sources, n, co.hold, co.jobs, co.every)

	instRec := []map[string]any{}
	for _, px := range pxs {
		instRec = append(instRec, map[string]any{"name": px.p.name, "web": px.web, "miners": px.miners, "upstreams": px.ups,
			"rss_idle": px.rssIdle, "rss_loaded": px.rssLoaded, "rss_end": px.rssEnd, "fds": px.fds,
			"fanout_count": px.fanoutCount, "fanout_sum_s": px.fanSum, "fanout_buckets": bucketMap(px.fanoutBuckets)})
	}
	rec.Extra = map[string]any{"instances": instRec, "pool_connections": pst.Connections, "scrapes": scrapes,
		"etcd_rss_idle": etcdIdle, "etcd_rss_loaded": etcdLoaded, "pool_rss_idle": poolIdle, "pool_rss_loaded": poolLoaded,
		"ramp_s": ramp.Seconds(), "hold_s": held.Seconds(), "proxy_exit_s": exitS, "etcd_session_records": sessions}

	// Checks.
	if int(miners) != n {
		s.anomaly("cluster", "proxy_miners_connected sums to %.0f with %d miners authorized", miners, n)
	}
	if int(ups) != len(pxs) || pst.Connections != len(pxs) {
		s.anomaly("cluster", "proxy_upstreams_connected sums to %.0f, pool connections %d, want %d (one per proxy)", ups, pst.Connections, len(pxs))
	}
	if want := int64(n) * int64(co.jobs); arrivals != want {
		s.anomaly("cluster", "%d of %d job deliveries measured", arrivals, want)
	}
	if killed > 0 {
		s.anomaly("cluster", "%d proxies did not exit within %s of SIGTERM (killed)", killed, clusterExitGrace)
	} else if m := slices.Max(exitS); m > 5 {
		s.anomaly("cluster", "a proxy took %.1f s to exit after SIGTERM (the miners had left: session saves to etcd)", m)
	}
	if disconnects > 0 {
		s.anomaly("cluster", "the proxies closed %d idle miners", disconnects)
	}
	s.logf("  cluster: miners %.0f (%.0f-%.0f per proxy), %.2f KiB/miner, upstreams %.0f (pool %d), fan-out p99 worst flood %s ms, proxy hist p99 %.1f ms",
		miners, minM, maxM, perMiner, ups, pst.Connections, fmtList(p99s), histQuantile(fanAll, 0.99)*1000)
	return nil
}

// clusterExitGrace is how long a cluster proxy may take to exit after
// SIGTERM before it is killed.
const clusterExitGrace = 180 * time.Second

// etcdCount counts the keys under prefix through etcd's v3 JSON gateway.
func etcdCount(ctx context.Context, endpoint, prefix string) (int64, error) {
	end := []byte(prefix)
	end[len(end)-1]++
	body, _ := json.Marshal(map[string]any{"key": []byte(prefix), "range_end": end, "count_only": true})
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(rctx, http.MethodPost, endpoint+"/v3/kv/range", strings.NewReader(string(body)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("etcd range: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	var r struct {
		Count string `json:"count"` // int64 as a JSON string; absent when 0
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return 0, fmt.Errorf("etcd range: %v: %s", err, b)
	}
	if r.Count == "" {
		return 0, nil
	}
	return strconv.ParseInt(r.Count, 10, 64)
}

func fmtList(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = strconv.FormatFloat(x, 'f', 1, 64)
	}
	return strings.Join(parts, ", ")
}

func bucketMap(bs []bucket) map[string]float64 {
	m := map[string]float64{}
	for _, b := range bs {
		m[strconv.FormatFloat(b.le, 'g', -1, 64)] = b.count
	}
	return m
}
