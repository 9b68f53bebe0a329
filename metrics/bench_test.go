package metrics

import (
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkAccepted runs Accepted from GOMAXPROCS goroutines, each on its own worker as event
// loops are.
func BenchmarkAccepted(b *testing.B) {
	r := New(Config{})
	var n atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := r.NewWorker(fmt.Sprintf("10.0.0.%d:1", n.Add(1)), "", "alice", "sha256", "p:1", 1)
		for pb.Next() {
			w.Accepted(1024)
		}
	})
}

// BenchmarkAcceptedSharedWorker is the worst case: every goroutine on one worker, so all CAS
// loops contend on one cache line.
func BenchmarkAcceptedSharedWorker(b *testing.B) {
	r := New(Config{})
	w := r.NewWorker("10.0.0.1:1", "", "alice", "sha256", "p:1", 1)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w.Accepted(1024)
		}
	})
}

// BenchmarkShare is the per-share sequence of calls the proxy makes for an accepted share.
func BenchmarkShare(b *testing.B) {
	r := New(Config{})
	var n atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := r.NewWorker(fmt.Sprintf("10.0.0.%d:1", n.Add(1)), "", "alice", "sha256", "p:1", 1)
		for pb.Next() {
			w.Sent(1024)
			r.ShareRTT(3 * time.Millisecond)
			w.Accepted(1024)
		}
	})
}

// BenchmarkForwardedShare is the per-share sequence for a share that met the pool's difficulty
// too: both sides counted, the pool's answer timed.
func BenchmarkForwardedShare(b *testing.B) {
	r := New(Config{})
	var n atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := r.NewWorker(fmt.Sprintf("10.0.0.%d:1", n.Add(1)), "", "alice", "sha256", "p:1", 1)
		for pb.Next() {
			w.Sent(1024)
			w.Accepted(1024)
			w.Forwarded(1 << 20)
			r.ShareRTT(3 * time.Millisecond)
			w.PoolAccepted(1 << 20)
		}
	})
}

// BenchmarkShareRTT observes from GOMAXPROCS goroutines into the one histogram of the registry.
func BenchmarkShareRTT(b *testing.B) {
	r := New(Config{})
	var seed atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		d := time.Duration(seed.Add(1) * 7919)
		for pb.Next() {
			d = (d*6364136223846793005 + 1442695040888963407) & (1<<24 - 1) // varying durations under 17 ms, as measured ones vary
			r.ShareRTT(d)
		}
	})
}

func BenchmarkRejected(b *testing.B) {
	r := New(Config{})
	w := r.NewWorker("10.0.0.1:1", "", "alice", "sha256", "p:1", 1)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		w.Rejected(Reason(i % int(numReasons)))
	}
}

// registryWith returns a registry with n workers of 100 users on 4 pools, each with some
// shares on both sides and one in 100 with a share the pool rejected, after one Tick.
func registryWith(n int) (*Registry, []*Worker) {
	r := New(Config{Tag: "192.168.100.100:3333", WorkerLabel: "name"})
	ws := make([]*Worker, n)
	for i := range ws {
		ws[i] = r.NewWorker(fmt.Sprintf("10.%d.%d.%d:%d", i>>16, i>>8&255, i&255, 40000+i%20000),
			fmt.Sprintf("rig-%05d", i), fmt.Sprintf("user%03d", i%100), "sha256",
			fmt.Sprintf("pool%d.example.com:3333", i%4), 1)
		ws[i].SetDifficulty(65536)
		ws[i].Sent(65536)
		ws[i].Accepted(65536)
		ws[i].Forwarded(1 << 20)
		ws[i].PoolAccepted(1 << 20)
		if i%100 == 0 { // a pool rejects rarely once the proxy checks shares
			ws[i].PoolRejected(ReasonStale)
		}
	}
	for p := range 4 {
		r.PoolLogin("sha256", fmt.Sprintf("pool%d.example.com:3333", p), 1, +1)
	}
	r.Tick(time.Now())
	return r, ws
}

// countingWriter counts bytes and discards them.
type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// BenchmarkWritePrometheus20000Workers measures one /metrics scrape with 20,000 workers and
// reports the size of the page.
func BenchmarkWritePrometheus20000Workers(b *testing.B) {
	r, _ := registryWith(20000)
	var c countingWriter
	r.WritePrometheus(&c)
	b.SetBytes(c.n)
	b.ReportAllocs()
	for b.Loop() {
		r.WritePrometheus(io.Discard)
	}
	b.ReportMetric(float64(c.n), "bytes/scrape") // after the loop, which resets extra metrics
}

// BenchmarkTick20000Workers measures one recompute step: it holds the registry's lock.
func BenchmarkTick20000Workers(b *testing.B) {
	r, _ := registryWith(20000)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Minute)
		r.Tick(now)
	}
}

// BenchmarkNewWorkerClose20000 creates 20,000 workers and closes them all, in an order that
// moves the swap-remove around, per op. O(1) Close makes ns/op grow linearly with the count;
// compare with BenchmarkNewWorkerClose2000 (a tenth of it): the ratio should be ~10, not ~100.
func BenchmarkNewWorkerClose20000(b *testing.B) { benchNewWorkerClose(b, 20000) }

func BenchmarkNewWorkerClose2000(b *testing.B) { benchNewWorkerClose(b, 2000) }

func benchNewWorkerClose(b *testing.B, n int) {
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("10.%d.%d.%d:4000", i>>16, i>>8&255, i&255)
	}
	ws := make([]*Worker, n)
	b.ReportAllocs()
	for b.Loop() {
		r := New(Config{})
		for i := range ws {
			ws[i] = r.NewWorker(addrs[i], "", "alice", "sha256", "p:1", 1)
		}
		for i := 0; i < n; i += 2 {
			ws[i].Close()
		}
		for i := n - 1; i >= 0; i -= 2 {
			ws[i].Close()
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/worker")
}

// BenchmarkSnapshot20000Workers measures the part of a scrape that holds the registry's lock
// (NewWorker and Close wait for it; the share path never does).
func BenchmarkSnapshot20000Workers(b *testing.B) {
	r, _ := registryWith(20000)
	b.ReportAllocs()
	for b.Loop() {
		r.snapshot()
	}
}
