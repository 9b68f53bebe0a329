package metrics

import (
	"bufio"
	"io"
	"strconv"
)

// WritePrometheus writes every series of r to w in the Prometheus text exposition format
// (version 0.0.4): the proxy's families, each with one HELP and one TYPE line and its samples
// together, then the go_* and process_* series of metrics.WriteProcessMetrics, given HELP and
// TYPE the same way. Write one Registry per /metrics page: two would repeat the go_* families.
//
// Why not metrics.Set.WritePrometheus: v1.44.0 can only emit an empty "# HELP name" (with the
// global metrics.ExposeMetadata switch), and one Set per worker would scatter each family's
// samples across Sets, while the format wants them together.
//
// WritePrometheus holds the registry's lock only while it sums the totals (O(workers) atomic
// loads); formatting and writing to w happen outside it, so a slow scraper blocks no one.
// Calls may run concurrently. Errors from w are ignored: the caller's connection reports them.
func (r *Registry) WritePrometheus(w io.Writer) {
	if r == nil {
		return
	}
	s := r.snapshot()
	e := expo{w: bufio.NewWriterSize(w, 64<<10), tag: *r.tag.Load()}
	e.proxy(r, s)
	writeRuntime(&e)
	e.w.Flush()
}

// snap is what WritePrometheus reads under the registry's lock.
type snap struct {
	workers    []*Worker
	groups     []*group
	groupTot   []totals // retired + live, per group
	groupSpeed []float64
	pools      []pool // copies
	poolTot    []totals
	poolSpeed  []float64
	algs       []*alg
	algTot     []totals
	endpoints  []endpoint // copies
	extraDrops []*extraDrop
}

func (r *Registry) snapshot() *snap {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := &snap{
		workers:    append([]*Worker(nil), r.workers...),
		groups:     append([]*group(nil), r.groupList...),
		groupTot:   make([]totals, len(r.groupList)),
		groupSpeed: make([]float64, len(r.groupList)),
		pools:      make([]pool, len(r.poolList)),
		poolTot:    make([]totals, len(r.poolList)),
		poolSpeed:  make([]float64, len(r.poolList)),
		algs:       append([]*alg(nil), r.algList...),
		algTot:     make([]totals, len(r.algList)),
		endpoints:  make([]endpoint, len(r.epList)),
		extraDrops: append([]*extraDrop(nil), r.extraDrops...),
	}
	// Totals are read under the lock that Close holds while it moves a worker's counts into
	// retired, so each count is in exactly one place and the totals never go down.
	for i, ep := range r.epList {
		s.endpoints[i] = *ep
		s.endpoints[i].invalid = append([]methodCount(nil), ep.invalid...)
	}
	for i, g := range r.groupList {
		s.groupTot[i] = g.retired
		s.groupSpeed[i] = g.speed
	}
	for _, w := range r.workers {
		w.load(&s.groupTot[w.grp.i])
	}
	for i, g := range r.groupList {
		s.poolTot[g.pool.i].add(&s.groupTot[i])
		s.poolSpeed[g.pool.i] += g.speed
	}
	for i, p := range r.poolList {
		s.pools[i] = *p
		s.algTot[p.alg.i].add(&s.poolTot[i])
	}
	return s
}

// expo formats samples into a buffered writer.
type expo struct {
	w   *bufio.Writer
	b   []byte // the line being built
	tag string // the `proxy` label value
}

// header writes the HELP and TYPE lines of f.
func (e *expo) header(f *family) {
	e.b = append(e.b[:0], "# HELP "...)
	e.b = append(e.b, f.name...)
	e.b = append(e.b, ' ')
	e.b = append(e.b, f.help...)
	e.b = append(e.b, "\n# TYPE "...)
	e.b = append(e.b, f.name...)
	e.b = append(e.b, ' ')
	e.b = append(e.b, f.typ...)
	e.b = append(e.b, '\n')
	e.w.Write(e.b)
}

// start begins a sample line: name{proxy="tag" and, if labels is not empty, ,labels.
// The caller appends any further labels, then calls endUint or endFloat.
func (e *expo) start(name, suffix, labels string) {
	e.b = append(e.b[:0], name...)
	e.b = append(e.b, suffix...)
	e.b = append(e.b, '{')
	e.b = appendLabel(e.b, "proxy", e.tag)
	if labels != "" {
		e.b = append(e.b, ',')
		e.b = append(e.b, labels...)
	}
}

func (e *expo) endUint(v uint64) {
	e.b = append(e.b, '}', ' ')
	e.b = strconv.AppendUint(e.b, v, 10)
	e.b = append(e.b, '\n')
	e.w.Write(e.b)
}

func (e *expo) endFloat(v float64) {
	e.b = append(e.b, '}', ' ')
	e.b = appendFloat(e.b, v)
	e.b = append(e.b, '\n')
	e.w.Write(e.b)
}

// appendFloat formats v as the exposition format wants: shortest exact decimal, +Inf, -Inf, NaN.
func appendFloat(b []byte, v float64) []byte {
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

func (e *expo) uint(f *family, labels string, v uint64) {
	e.start(f.name, "", labels)
	e.endUint(v)
}

func (e *expo) float(f *family, labels string, v float64) {
	e.start(f.name, "", labels)
	e.endFloat(v)
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// histogram writes a histogram family with only the proxy label.
func (e *expo) histogram(f *family, h *histogram) {
	var cum [len(latencyBuckets) + 1]uint64
	sum := h.snapshot(&cum)
	e.header(f)
	for i, ub := range latencyBuckets {
		e.start(f.name, "_bucket", "")
		e.b = append(e.b, `,le="`...)
		e.b = appendFloat(e.b, ub)
		e.b = append(e.b, '"')
		e.endUint(cum[i])
	}
	e.start(f.name, "_bucket", `le="+Inf"`)
	e.endUint(cum[len(latencyBuckets)])
	e.start(f.name, "_sum", "")
	e.endFloat(sum)
	e.start(f.name, "_count", "")
	e.endUint(cum[len(latencyBuckets)])
}

// proxy writes the proxy's families, in the order of proxyFamilies. Families without samples
// are left out, headers included.
func (e *expo) proxy(r *Registry, s *snap) {
	e.header(&famMinersConnected)
	e.float(&famMinersConnected, "", float64(r.miners.Load()))
	e.header(&famUpstreamsConnected)
	e.float(&famUpstreamsConnected, "", float64(r.upstreams.Load()))
	e.header(&famSessionsInGrace)
	e.float(&famSessionsInGrace, "", float64(r.inGrace.Load()))
	e.header(&famUsersExpired)
	e.float(&famUsersExpired, "", float64(r.usersExpired.Load()))

	e.header(&famMinersDropped)
	var reason []byte
	for i := range dropReasons {
		reason = appendLabel(reason[:0], "reason", dropReasons[i])
		e.uint(&famMinersDropped, string(reason), r.drops[i].Load())
	}
	for _, d := range s.extraDrops {
		e.uint(&famMinersDropped, d.labels, d.n.Load())
	}

	e.header(&famPanics)
	for i := range panicWheres {
		reason = appendLabel(reason[:0], "where", panicWheres[i])
		e.uint(&famPanics, string(reason), r.panics[i].Load())
	}

	e.endpoints(s.endpoints)

	e.histogram(&famNotifyFanout, &r.fanout)
	e.histogram(&famShareRTT, &r.rtt)

	e.pools(s)
	e.groups(s)
	e.workers(s.workers)
}

// endpoints writes the per-pool-address families.
func (e *expo) endpoints(eps []endpoint) {
	if len(eps) == 0 {
		return
	}
	other := len(attemptOutcomes) - 1
	e.header(&famUpstreamReconnects)
	for _, ep := range eps {
		for i, outcome := range attemptOutcomes {
			if i == other && ep.attempts[i] == 0 {
				continue
			}
			e.start(famUpstreamReconnects.name, "", ep.labels)
			e.b = append(e.b, ',')
			e.b = appendLabel(e.b, "outcome", outcome)
			e.endUint(ep.attempts[i])
		}
	}
	invalid := false
	for _, ep := range eps {
		invalid = invalid || len(ep.invalid) > 0
	}
	if !invalid {
		return
	}
	e.header(&famPoolInvalid)
	for _, ep := range eps {
		for _, m := range ep.invalid {
			e.start(famPoolInvalid.name, "", ep.labels)
			e.b = append(e.b, ',')
			e.b = appendLabel(e.b, "method", m.method)
			e.endUint(m.n)
		}
	}
}

func (e *expo) pools(s *snap) {
	known := 0
	for _, p := range s.pools {
		if p.known {
			known++
		}
	}
	if known > 0 {
		e.header(&famPoolUp)
		for _, p := range s.pools {
			if p.known {
				e.float(&famPoolUp, p.labels, boolFloat(p.logins > 0))
			}
		}
		e.header(&famPoolDivider)
		for _, p := range s.pools {
			if p.known {
				e.float(&famPoolDivider, p.labels, p.divider)
			}
		}
	}
	if len(s.groups) == 0 {
		return // pools without a worker yet have no totals
	}
	e.header(&famPoolSpeed)
	for i, p := range s.pools {
		e.float(&famPoolSpeed, p.labels, s.poolSpeed[i])
	}
	e.header(&famPoolAccepted)
	for i, p := range s.pools {
		e.uint(&famPoolAccepted, p.labels, s.poolTot[i].accepted)
	}
	e.header(&famPoolOneAccepted)
	for i, p := range s.pools {
		e.float(&famPoolOneAccepted, p.labels, s.poolTot[i].oneAccepted)
	}
	e.upstream(&poolUpstreamFamilies, len(s.pools), func(i int) (string, *upstreamTotals) {
		return s.pools[i].labels, &s.poolTot[i].up
	})
	e.header(&famAlgAccepted)
	for i, a := range s.algs {
		e.uint(&famAlgAccepted, a.labels, s.algTot[i].accepted)
	}
	e.header(&famAlgOneAccepted)
	for i, a := range s.algs {
		e.float(&famAlgOneAccepted, a.labels, s.algTot[i].oneAccepted)
	}
}

func (e *expo) groups(s *snap) {
	if len(s.groups) == 0 {
		return
	}
	e.header(&famUserSpeed)
	for i, g := range s.groups {
		e.float(&famUserSpeed, g.labels, s.groupSpeed[i])
	}
	e.header(&famUserAccepted)
	for i, g := range s.groups {
		e.uint(&famUserAccepted, g.labels, s.groupTot[i].accepted)
	}
	e.header(&famUserOneAccepted)
	for i, g := range s.groups {
		e.float(&famUserOneAccepted, g.labels, s.groupTot[i].oneAccepted)
	}
	e.header(&famSharesRejected)
	for i, g := range s.groups {
		for reason := range numReasons {
			e.start(famSharesRejected.name, "", g.labels)
			e.b = append(e.b, ',')
			e.b = appendLabel(e.b, "reason", reasonNames[reason])
			e.endUint(s.groupTot[i].rejected[reason])
		}
	}
	e.upstream(&userUpstreamFamilies, len(s.groups), func(i int) (string, *upstreamTotals) {
		return s.groups[i].labels, &s.groupTot[i].up
	})
}

// upstreamFamilies are the five families of the pool's side at one level (user or pool).
type upstreamFamilies struct{ sent, oneSent, accepted, oneAccepted, rejected *family }

var (
	poolUpstreamFamilies = upstreamFamilies{&famPoolUpstreamSent, &famPoolUpstreamOneSent,
		&famPoolUpstreamAccepted, &famPoolUpstreamOneAccepted, &famPoolUpstreamRejected}
	userUpstreamFamilies = upstreamFamilies{&famUserUpstreamSent, &famUserUpstreamOneSent,
		&famUserUpstreamAccepted, &famUserUpstreamOneAccepted, &famUserUpstreamRejected}
)

// upstream writes the upstream totals of n series, the i-th with labels and totals from at.
// Every reason the pool can give is written, at 0 until counted, so that increase() sees the
// first rejection; a proxy-side reason only once counted.
func (e *expo) upstream(f *upstreamFamilies, n int, at func(i int) (string, *upstreamTotals)) {
	e.header(f.sent)
	for i := range n {
		labels, t := at(i)
		e.uint(f.sent, labels, t.sent)
	}
	e.header(f.oneSent)
	for i := range n {
		labels, t := at(i)
		e.float(f.oneSent, labels, t.oneSent)
	}
	e.header(f.accepted)
	for i := range n {
		labels, t := at(i)
		e.uint(f.accepted, labels, t.accepted)
	}
	e.header(f.oneAccepted)
	for i := range n {
		labels, t := at(i)
		e.float(f.oneAccepted, labels, t.oneAccepted)
	}
	e.header(f.rejected)
	for i := range n {
		labels, t := at(i)
		for reason := range Reason(numReasons) {
			if v := t.rejected[reason]; v > 0 || reason.fromPool() {
				e.rejected(f.rejected, labels, reason, v)
			}
		}
	}
}

// rejected writes one sample of a family with a reason label.
func (e *expo) rejected(f *family, labels string, reason Reason, v uint64) {
	e.start(f.name, "", labels)
	e.b = append(e.b, ',')
	e.b = appendLabel(e.b, "reason", reasonNames[reason])
	e.endUint(v)
}

// workers writes the per-worker families. Values are read from the workers' atomics now,
// outside the lock: a worker closed since the snapshot is written one last time.
func (e *expo) workers(ws []*Worker) {
	if len(ws) == 0 {
		return
	}
	e.header(&famWorkerUp)
	for _, w := range ws {
		e.float(&famWorkerUp, w.upLabels(), boolFloat(!w.down.Load()))
	}
	e.header(&famWorkerSended)
	for _, w := range ws {
		e.uint(&famWorkerSended, w.labels, w.sent.Load())
	}
	e.header(&famWorkerOneSended)
	for _, w := range ws {
		e.float(&famWorkerOneSended, w.labels, w.oneSent.Load())
	}
	e.header(&famWorkerAccepted)
	for _, w := range ws {
		e.uint(&famWorkerAccepted, w.labels, w.accepted.Load())
	}
	e.header(&famWorkerOneAccepted)
	for _, w := range ws {
		e.float(&famWorkerOneAccepted, w.labels, w.oneAccepted.Load())
	}
	e.header(&famWorkerSpeed)
	for _, w := range ws {
		e.float(&famWorkerSpeed, w.labels, w.speed.Load())
	}
	e.header(&famWorkerDifficulty)
	for _, w := range ws {
		e.float(&famWorkerDifficulty, w.labels, w.difficulty.Load())
	}
	e.header(&famWorkerUpstreamSent)
	for _, w := range ws {
		e.uint(&famWorkerUpstreamSent, w.labels, w.up.sent.Load())
	}
	e.header(&famWorkerUpstreamOneSent)
	for _, w := range ws {
		e.float(&famWorkerUpstreamOneSent, w.labels, w.up.oneSent.Load())
	}
	e.header(&famWorkerUpstreamAccepted)
	for _, w := range ws {
		e.uint(&famWorkerUpstreamAccepted, w.labels, w.up.accepted.Load())
	}
	e.header(&famWorkerUpstreamOneAccepted)
	for _, w := range ws {
		e.float(&famWorkerUpstreamOneAccepted, w.labels, w.up.oneAccepted.Load())
	}
	e.workersRejected(ws)
}

// workersRejected writes proxy_worker_upstream_rejected_total: only the reasons a worker has
// been rejected for, so that a page of 20,000 workers whose pool rejects nothing does not grow
// by 100,000 zero lines (the per-pool and per-user totals have every reason from the start).
// The family is left out while no worker has a rejection. Counters only grow, so a worker seen
// rejected by the first pass has a sample in the second.
func (e *expo) workersRejected(ws []*Worker) {
	any := false
	for _, w := range ws {
		for i := range w.up.rejected {
			any = any || w.up.rejected[i].Load() > 0
		}
	}
	if !any {
		return
	}
	e.header(&famWorkerUpstreamRejected)
	for _, w := range ws {
		for reason := range Reason(numReasons) {
			if v := w.up.rejected[reason].Load(); v > 0 {
				e.rejected(&famWorkerUpstreamRejected, w.labels, reason, v)
			}
		}
	}
}
