package flood

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratum-proxy/stratum-proxy/bench/poolsim"
)

func startPool(t *testing.T, cfg poolsim.Config) *poolsim.Server {
	t.Helper()
	s, err := poolsim.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestValidShares floods a validating simulator with 200 miners from two
// source addresses, mining real shares: every one must be accepted.
func TestValidShares(t *testing.T) {
	pool := startPool(t, poolsim.Config{Difficulty: 1e-6, VersionMask: 0x1fffe000})
	const miners = 200
	sum := run(t, Config{
		Target:              pool.Addr(),
		Miners:              miners,
		Sources:             []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")},
		User:                "tester.rig%d",
		Configure:           true,
		ExtranonceSubscribe: true,
		Mode:                ModeValid,
		Rate:                1,
		Duration:            3 * time.Second,
		Drain:               5 * time.Second,
		ExtraFDs:            miners,
	})
	if sum.Connect.Connected != miners || sum.Handshake.Subscribed != miners || sum.Handshake.Authorized != miners {
		t.Fatalf("connect %+v handshake %+v", sum.Connect, sum.Handshake)
	}
	if sum.Handshake.ConfigureGranted != miners {
		t.Errorf("configure granted to %d miners, want %d", sum.Handshake.ConfigureGranted, miners)
	}
	sh := sum.Shares
	// How many shares the hashing workers find in 3 s depends on the
	// machine's load (a starved run skips its backlog); every one sent must
	// be accepted and answered.
	if sh.Sent == 0 || sh.Accepted != sh.Sent || sh.Rejected != 0 || sh.Unanswered != 0 || sh.Unmatched != 0 {
		t.Fatalf("shares %+v", sh)
	}
	if sum.Hashing == nil || sum.Hashing.Found < sh.Sent || sum.Hashing.Exhausted != 0 {
		t.Fatalf("hashing %+v", sum.Hashing)
	}
	if sum.AnswerLatency.Count != uint64(sh.Sent) || sum.AnswerLatency.P50Ms <= 0 {
		t.Fatalf("answer latency %+v", sum.AnswerLatency)
	}
	if sum.Connect.Disconnects != 0 || sum.Messages.ProtocolErrors != 0 {
		t.Fatalf("connect %+v messages %+v", sum.Connect, sum.Messages)
	}
	st := pool.Stats()
	if st.Accepted != uint64(sh.Accepted) || st.Rejected != 0 || st.TotalConnections != miners {
		t.Fatalf("pool stats %+v", st)
	}
}

// TestBlindRejections submits unhashed shares to a simulator at a high
// difficulty: every share is rejected as low difficulty (23), and the
// flood's counts match the pool's.
func TestBlindRejections(t *testing.T) {
	pool := startPool(t, poolsim.Config{Difficulty: 1e6})
	const miners = 20
	sum := run(t, Config{
		Target:   pool.Addr(),
		Miners:   miners,
		Rate:     10,
		Duration: 1500 * time.Millisecond,
		ExtraFDs: miners,
	})
	sh := sum.Shares
	if sh.Sent == 0 || sh.Accepted != 0 || sh.Rejected != sh.Sent || sh.RejectedByCode["23"] != sh.Sent || len(sh.RejectedByCode) != 1 {
		t.Fatalf("shares %+v", sh)
	}
	st := pool.Stats()
	if st.Submits != uint64(sh.Sent) || st.LowDifficulty != uint64(sh.Sent) || st.Accepted != 0 {
		t.Fatalf("pool stats %+v, flood sent %d", st, sh.Sent)
	}
}

// TestBlindAccepted: at difficulty 2^-32 or less every hash meets the
// target, so blind shares are all valid.
func TestBlindAccepted(t *testing.T) {
	pool := startPool(t, poolsim.Config{Difficulty: 1e-10, Extranonce2Size: 4})
	const miners = 50
	sum := run(t, Config{
		Target:   pool.Addr(),
		Miners:   miners,
		Rate:     10,
		Duration: 1500 * time.Millisecond,
		ExtraFDs: miners,
	})
	sh := sum.Shares
	if sh.Sent == 0 || sh.Accepted != sh.Sent || sh.Rejected != 0 || sh.Unanswered != 0 {
		t.Fatalf("shares %+v", sh)
	}
	if st := pool.Stats(); st.Accepted != uint64(sh.Sent) {
		t.Fatalf("pool stats %+v", st)
	}
}

// TestNotifyFanout broadcasts jobs once every miner mines: each miner's
// arrival is measured against the first, and against the pool's send time.
func TestNotifyFanout(t *testing.T) {
	pool := startPool(t, poolsim.Config{Difficulty: 1e-10})
	const miners = 100
	var sentAt atomic.Int64 // unix nanos of the last broadcast
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var authorized atomic.Int64
	type result struct {
		sum *Summary
		err error
	}
	done := make(chan result, 1)
	go func() {
		sum, err := Run(ctx, Config{
			Target:           pool.Addr(),
			Miners:           miners,
			Duration:         20 * time.Second,
			ExtraFDs:         miners,
			ProgressInterval: 20 * time.Millisecond,
			Progress:         func(p Progress) { authorized.Store(p.Authorized) },
			NotifySentAt: func([]byte) (time.Time, bool) {
				if ns := sentAt.Load(); ns != 0 {
					return time.Unix(0, ns), true
				}
				return time.Time{}, false
			},
		})
		done <- result{sum, err}
	}()
	if !waitFor(10*time.Second, func() bool { return authorized.Load() == miners }) {
		t.Fatalf("only %d miners authorized", authorized.Load())
	}
	// Let the login notifies land before the broadcasts.
	time.Sleep(100 * time.Millisecond)
	const jobs = 3
	for range jobs {
		sentAt.Store(time.Now().UnixNano())
		pool.Notify(true)
		time.Sleep(100 * time.Millisecond)
	}
	cancel() // stops the flood early, like Ctrl-C
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	sum := res.sum
	t.Logf("fan-out %+v notify latency %+v", sum.NotifyFanout, sum.NotifyLatency)
	if sum.Messages.NotifiesMeasured != jobs*miners || sum.NotifyFanout.Count != jobs*miners {
		t.Fatalf("messages %+v fan-out %+v", sum.Messages, sum.NotifyFanout)
	}
	if sum.NotifyLatency == nil || sum.NotifyLatency.Count != jobs*miners || sum.NotifyLatency.P50Ms <= 0 {
		t.Fatalf("notify latency %+v", sum.NotifyLatency)
	}
	if sum.NotifyFanout.MaxMs > sum.NotifyLatency.MaxMs {
		t.Fatalf("fan-out max %v above pool->miner max %v", sum.NotifyFanout.MaxMs, sum.NotifyLatency.MaxMs)
	}
	if sum.Messages.SetDifficulty < miners || sum.Messages.Notifies != (jobs+1)*miners {
		t.Fatalf("messages %+v", sum.Messages)
	}
}

// TestDurationStopWithPendingAnswers: a pool that never answers submits
// leaves them unanswered; the flood still stops after Duration + Drain.
func TestDurationStopWithPendingAnswers(t *testing.T) {
	pool := startPool(t, poolsim.Config{
		Difficulty: 1e-10,
		Intercept: func(_ uint64, method string) poolsim.Action {
			if method == "mining.submit" {
				return poolsim.Ignore
			}
			return poolsim.Handle
		},
	})
	start := time.Now()
	sum := run(t, Config{
		Target:     pool.Addr(),
		Miners:     10,
		Rate:       20,
		MaxPending: 4,
		Duration:   time.Second,
		Drain:      300 * time.Millisecond,
		ExtraFDs:   10,
	})
	took := time.Since(start)
	if took > 3*time.Second {
		t.Fatalf("took %v", took)
	}
	sh := sum.Shares
	if sh.Sent != 10*4 || sh.Unanswered != sh.Sent || sh.SkippedBacklog == 0 || sum.DrainS < 0.3 {
		t.Fatalf("shares %+v drain %v", sh, sum.DrainS)
	}
}

// TestPoolRequests: the flood follows set_extranonce (a new extranonce2
// size), answers pings and get_version, counts reconnects and messages,
// and every share it mines stays valid throughout.
func TestPoolRequests(t *testing.T) {
	pool := startPool(t, poolsim.Config{Difficulty: 1e-6, Extranonce2Size: 8})
	const miners = 20
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var authorized, accepted atomic.Int64
	type result struct {
		sum *Summary
		err error
	}
	done := make(chan result, 1)
	go func() {
		sum, err := Run(ctx, Config{
			Target:              pool.Addr(),
			Miners:              miners,
			ExtranonceSubscribe: true,
			Mode:                ModeValid,
			Rate:                5,
			Duration:            30 * time.Second,
			ExtraFDs:            miners,
			ProgressInterval:    20 * time.Millisecond,
			Progress: func(p Progress) {
				authorized.Store(p.Authorized)
				accepted.Store(p.Accepted)
			},
		})
		done <- result{sum, err}
	}()
	if !waitFor(10*time.Second, func() bool { return authorized.Load() == miners && accepted.Load() > 0 }) {
		t.Fatalf("authorized %d accepted %d", authorized.Load(), accepted.Load())
	}
	if err := pool.SetExtranonce(3); err != nil {
		t.Fatal(err)
	}
	pool.BroadcastLine([]byte(`{"id":42,"method":"mining.ping","params":[]}`))
	pool.BroadcastLine([]byte(`{"id":"v1","method":"client.get_version","params":[]}`))
	pool.BroadcastLine([]byte(`{"id":null,"method":"client.show_message","params":["hello"]}`))
	pool.BroadcastLine([]byte(`{"id":7,"method":"mining.frobnicate","params":[]}`))
	pool.Reconnect("", 0, 0)
	before := accepted.Load()
	if !waitFor(10*time.Second, func() bool { return accepted.Load() > before+miners }) {
		t.Fatalf("no shares after set_extranonce: %d", accepted.Load())
	}
	cancel()
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	sum := res.sum
	msg := sum.Messages
	if msg.SetExtranonce != miners || msg.Pings != miners || msg.GetVersion != miners || msg.ShowMessage != miners ||
		msg.Reconnects != miners || msg.Unknown != miners || msg.ProtocolErrors != 0 {
		t.Fatalf("messages %+v", msg)
	}
	sh := sum.Shares
	if sh.Rejected != 0 || sh.Accepted != sh.Sent || sh.Unanswered != 0 {
		t.Fatalf("shares %+v", sh)
	}
	if st := pool.Stats(); st.Rejected != 0 || st.Accepted != uint64(sh.Accepted) {
		t.Fatalf("pool stats %+v", st)
	}
}
