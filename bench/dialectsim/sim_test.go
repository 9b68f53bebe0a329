package dialectsim

import (
	"strings"
	"testing"
	"time"
)

const testTimeout = 10 * time.Second

func startPool(t *testing.T, cfg PoolConfig) *Pool {
	t.Helper()
	p, err := StartPool(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, k Kind, addr string) *Miner {
	t.Helper()
	m, err := DialMiner(MinerConfig{Kind: k, Addr: addr, User: "user", Pass: "x", Worker: "rig1", Timeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// waitFor polls cond until it holds or the test timeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for i := 0; i < 10000 && time.Now().Before(deadline); i++ {
		if cond() {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func mineAll(t *testing.T, m *Miner, n int) {
	t.Helper()
	a, r, err := m.Mine(n)
	if err != nil || a != n || r != 0 {
		t.Fatalf("Mine(%d) = %d accepted, %d rejected, %v; last error %q", n, a, r, err, m.LastError())
	}
}

// withJob returns a copy of sh naming another job (another header for
// ethproxy).
func withJob(k Kind, sh *mshare, id string) *mshare {
	out := &mshare{method: sh.method}
	switch p := sh.params.(type) {
	case cnSubmitParams:
		p.JobID = id
		out.params = p
	case []any:
		q := append([]any(nil), p...)
		if k == EthProxy {
			q[1] = "0x" + strings.Repeat("ab", 32)
		} else {
			q[1] = id
		}
		out.params = q
	}
	return out
}

func TestEveryKind(t *testing.T) {
	for _, k := range Kinds() {
		t.Run(string(k), func(t *testing.T) {
			p := startPool(t, PoolConfig{Kind: k})
			m := dial(t, k, p.Addr())
			mineAll(t, m, 5)
			st := p.Stats()
			if st.Accepted != 5 || st.Rejected != 0 {
				t.Fatalf("stats %+v", st)
			}
			if want := 5 * DefaultDifficulty(k); st.AcceptedDiff < want*0.99 || st.AcceptedDiff > want*1.01 {
				t.Errorf("AcceptedDiff %v, want about %v", st.AcceptedDiff, want)
			}

			// The last share again: a duplicate.
			if ok, err := m.ResubmitLast(); err != nil || ok {
				t.Fatalf("resubmit: ok %v, err %v", ok, err)
			}
			if st := p.Stats(); st.Duplicate != 1 || st.Rejected != 1 {
				t.Fatalf("after resubmit: %+v", st)
			}

			// A good share on a job the pool never issued: stale.
			sh, err := m.find(true)
			if err != nil {
				t.Fatal(err)
			}
			if ok, err := m.submit(withJob(k, sh, "deadbeef")); err != nil || ok {
				t.Fatalf("unknown job: ok %v, err %v", ok, err)
			}
			if st := p.Stats(); st.Stale != 1 {
				t.Fatalf("after unknown job: %+v", st)
			}

			// A share that does not meet the target: low difficulty.
			low, err := m.find(false)
			if err != nil {
				t.Fatal(err)
			}
			if ok, err := m.submit(low); err != nil || ok {
				t.Fatalf("low share: ok %v, err %v", ok, err)
			}
			if st := p.Stats(); st.LowDiff != 1 {
				t.Fatalf("after low share: %+v", st)
			}

			// Pushed work.
			jobs := m.Jobs()
			p.NewJob(true)
			waitFor(t, "pushed job", func() bool { return m.Jobs() > jobs })
			mineAll(t, m, 2)

			logins := p.Logins()
			if len(logins) != 1 || logins[0].User != "user" || logins[0].Worker != "rig1" {
				t.Errorf("logins %+v", logins)
			}
			if m.LastError() == "" {
				t.Error("no LastError after rejects")
			}
			if st := p.Stats(); st.Accepted != 7 || st.Rejected != 3 || st.Conns != 1 || st.Logins != 1 {
				t.Errorf("final stats %+v", st)
			}
		})
	}
}
