package metrics_test

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/stratum-proxy/stratum-proxy/metrics"
)

func Example() {
	// main: one Registry per /metrics page.
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	reg := metrics.New(metrics.Config{
		Tag:         "0.0.0.0:3333",
		WorkerLabel: metrics.WorkerLabelName,
		Now:         func() time.Time { return now }, // tests only
	})
	// reg.Start() in main; here Tick is called by hand.

	// A miner authorizes as "alice.rig1" on a sha256 pool.
	w := reg.NewWorker("10.0.0.7:50123", metrics.RigName("alice.rig1"), "alice", "sha256", "pool.example:3333", 1)
	defer w.Close() // when the session ends (after its restore grace period)

	// Per share, from the event loops: no lock, no allocation. The miner's side, at the miner's
	// difficulty: 60 shares met the miner's target, one was stale.
	w.SetDifficulty(65536)
	for range 60 {
		w.Sent(65536)
		w.Accepted(65536)
	}
	w.Sent(65536)
	w.Rejected(metrics.ReasonStale)
	// The pool's side, at the pool's difficulty 2^20: four of those shares met it and went
	// upstream; the pool accepted three and answered the fourth as stale.
	for range 4 {
		w.Forwarded(1 << 20)
	}
	for range 3 {
		w.PoolAccepted(1 << 20)
	}
	w.PoolRejected(metrics.ReasonStale)

	now = now.Add(time.Minute)
	reg.Tick(now)

	var page bytes.Buffer
	reg.WritePrometheus(&page)
	for _, line := range strings.Split(page.String(), "\n") {
		if strings.HasPrefix(line, "proxy_worker_") {
			fmt.Println(line)
		}
	}
	// Output:
	// proxy_worker_up{proxy="0.0.0.0:3333",worker="rig1",user="alice"} 1
	// proxy_worker_sended{proxy="0.0.0.0:3333",worker="rig1",user="alice",hash="sha256",pool="pool.example:3333"} 61
	// proxy_worker_one_sended{proxy="0.0.0.0:3333",worker="rig1",user="alice",hash="sha256",pool="pool.example:3333"} 3.997696e+06
	// proxy_worker_accepted{proxy="0.0.0.0:3333",worker="rig1",user="alice",hash="sha256",pool="pool.example:3333"} 60
	// proxy_worker_one_accepted{proxy="0.0.0.0:3333",worker="rig1",user="alice",hash="sha256",pool="pool.example:3333"} 3.93216e+06
	// proxy_worker_speed{proxy="0.0.0.0:3333",worker="rig1",user="alice",hash="sha256",pool="pool.example:3333"} 2.81474976710656e+14
	// proxy_worker_difficulty{proxy="0.0.0.0:3333",worker="rig1",user="alice",hash="sha256",pool="pool.example:3333"} 65536
	// proxy_worker_upstream_sent_total{proxy="0.0.0.0:3333",worker="rig1",user="alice",hash="sha256",pool="pool.example:3333"} 4
	// proxy_worker_upstream_one_sent_total{proxy="0.0.0.0:3333",worker="rig1",user="alice",hash="sha256",pool="pool.example:3333"} 4.194304e+06
	// proxy_worker_upstream_accepted_total{proxy="0.0.0.0:3333",worker="rig1",user="alice",hash="sha256",pool="pool.example:3333"} 3
	// proxy_worker_upstream_one_accepted_total{proxy="0.0.0.0:3333",worker="rig1",user="alice",hash="sha256",pool="pool.example:3333"} 3.145728e+06
	// proxy_worker_upstream_rejected_total{proxy="0.0.0.0:3333",worker="rig1",user="alice",hash="sha256",pool="pool.example:3333",reason="stale"} 1
}
