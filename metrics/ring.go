package metrics

import (
	"math"
	"sync/atomic"
)

// atomicFloat is a float64 updated with atomics: Add is a compare-and-swap loop on the bits.
// The zero value is 0. It is safe for concurrent use and never allocates.
//
// Why not metrics.FloatCounter: its Add takes a mutex. Why not metrics.Gauge: it works (its Add
// is the same loop), but a counter that reads "Gauge" in the code invites Set calls.
type atomicFloat struct {
	bits atomic.Uint64
}

func (f *atomicFloat) Load() float64   { return math.Float64frombits(f.bits.Load()) }
func (f *atomicFloat) Store(v float64) { f.bits.Store(math.Float64bits(v)) }

func (f *atomicFloat) Add(v float64) {
	for {
		old := f.bits.Load()
		if f.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// ring is a worker's hashrate window: per-Step sums of d_i/divider over accepted shares.
//
// It has n+1 slots for a window of n Steps: one open slot that Accepted adds to (index cur) and
// the n closed slots of the last n Steps. rotate, called once per Step by Tick, closes the open
// slot and opens the oldest closed one after zeroing it, so a share leaves the window exactly n
// Steps after the Step it was accepted in. Memory is constant: 8*(n+1) bytes per worker.
//
// add may run on any goroutine concurrently with rotate: an add that read cur just before a
// rotation lands in the slot that has just closed, which stays in the window, so no share is
// lost or counted twice. Only an add delayed by n whole Steps could hit a slot being zeroed.
type ring struct {
	cur   atomic.Uint32 // index of the open slot; written only by rotate (under Registry.mu)
	slots []atomicFloat // static length after newRing
}

func newRing(n int) ring {
	return ring{slots: make([]atomicFloat, n+1)}
}

// add adds v to the open slot. Safe for concurrent use; does not allocate.
func (r *ring) add(v float64) {
	r.slots[r.cur.Load()].Add(v)
}

// rotate closes the open slot and opens the oldest closed one, emptied.
// Callers serialize rotate (Tick holds Registry.mu).
func (r *ring) rotate() {
	next := r.cur.Load() + 1
	if int(next) == len(r.slots) {
		next = 0
	}
	r.slots[next].Store(0)
	r.cur.Store(next)
}

// closedSum returns the sum of the n closed slots: the window that ended at the last rotate.
func (r *ring) closedSum() float64 {
	cur := int(r.cur.Load())
	var s float64
	for i := range r.slots {
		if i != cur {
			s += r.slots[i].Load()
		}
	}
	return s
}
