package httpapi

import (
	"sync"
	"time"
)

// shareRates turns the proxy's accepted and rejected totals into per-minute
// rates for the dashboard: it keeps the samples the stats requests bring
// (at most one per rateEvery) over the last minute and divides the change
// since the oldest one.
type shareRates struct {
	mu      sync.Mutex
	samples []rateSample
}

type rateSample struct {
	t        time.Time
	acc, rej uint64
}

const (
	rateSpan  = time.Minute
	rateEvery = time.Second
)

func (r *shareRates) per(now time.Time, acc, rej uint64) (accPerMin, rejPerMin float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.samples); n == 0 || now.Sub(r.samples[n-1].t) >= rateEvery {
		r.samples = append(r.samples, rateSample{now, acc, rej})
	}
	i := 0
	for i < len(r.samples)-1 && now.Sub(r.samples[i].t) > rateSpan {
		i++
	}
	r.samples = append(r.samples[:0], r.samples[i:]...)
	old := r.samples[0]
	dt := now.Sub(old.t).Minutes()
	if dt <= 0 || acc < old.acc || rej < old.rej {
		return 0, 0
	}
	return float64(acc-old.acc) / dt, float64(rej-old.rej) / dt
}
