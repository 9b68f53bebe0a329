package metrics

import (
	"slices"
	"time"
)

// The short in-memory hashrate history of the operator's dashboard: at
// every Tick, the summed speed of each user and of each pool, the last
// historyPoints ticks, so the dashboard draws hashrate over time without
// Prometheus.

// historyPoints is how many ticks a series keeps (two hours at the
// default one-minute step).
const historyPoints = 120

// maxHistorySeries bounds the series per kind; past it new keys are not
// recorded until old ones go idle.
const maxHistorySeries = 4096

// Series is one user's or pool's hashrate over time, oldest first.
type Series struct {
	Key    string
	Points []Point
}

// Point is a hashrate (hashes/s) at a Unix time in seconds.
type Point struct {
	T int64
	V float64
}

type ring120 struct {
	pts  [historyPoints]Point
	next int
	n    int
	idle int // consecutive zero ticks
}

func (s *ring120) add(p Point) {
	s.pts[s.next] = p
	s.next = (s.next + 1) % historyPoints
	if s.n < historyPoints {
		s.n++
	}
	if p.V == 0 {
		s.idle++
	} else {
		s.idle = 0
	}
}

func (s *ring120) points() []Point {
	out := make([]Point, 0, s.n)
	start := (s.next - s.n + historyPoints) % historyPoints
	for i := 0; i < s.n; i++ {
		out = append(out, s.pts[(start+i)%historyPoints])
	}
	return out
}

type history struct {
	byUser, byPool   map[string]*ring120
	sumUser, sumPool map[string]float64 // scratch, reused every tick
}

// record adds this tick's per-user and per-pool speeds. The caller holds
// Registry.mu and has just computed the groups' speeds.
func (h *history) record(now time.Time, groups []*group) {
	if h.byUser == nil {
		h.byUser, h.byPool = map[string]*ring120{}, map[string]*ring120{}
		h.sumUser, h.sumPool = map[string]float64{}, map[string]float64{}
	}
	clear(h.sumUser)
	clear(h.sumPool)
	for _, g := range groups {
		h.sumUser[g.key.user] += g.speed
		h.sumPool[g.key.pool] += g.speed
	}
	t := now.Unix()
	h.add(h.byUser, h.sumUser, t)
	h.add(h.byPool, h.sumPool, t)
}

func (h *history) add(series map[string]*ring120, sums map[string]float64, t int64) {
	for k, s := range series {
		if _, live := sums[k]; !live {
			s.add(Point{T: t})
			if s.idle >= historyPoints {
				delete(series, k) // a whole window of nothing: forget it
			}
		}
	}
	for k, v := range sums {
		s := series[k]
		if s == nil {
			if len(series) >= maxHistorySeries {
				continue
			}
			s = new(ring120)
			series[k] = s
		}
		s.add(Point{T: t, V: v})
	}
}

// History returns the hashrate history per user (byPool false) or per
// pool, sorted by key, and the time between points.
func (r *Registry) History(byPool bool) (time.Duration, []Series) {
	if r == nil {
		return 0, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.hist.byUser
	if byPool {
		m = r.hist.byPool
	}
	out := make([]Series, 0, len(m))
	for k, s := range m {
		out = append(out, Series{Key: k, Points: s.points()})
	}
	slices.SortFunc(out, func(a, b Series) int {
		if a.Key < b.Key {
			return -1
		}
		if a.Key > b.Key {
			return 1
		}
		return 0
	})
	return r.step, out
}
