package dialectsim

import (
	"encoding/binary"
	"encoding/hex"
	"math"
	"math/big"
	"strings"
	"testing"
	"time"
)

func TestTargets(t *testing.T) {
	if got := Target(EthStratum, 1); got.Cmp(two224) != 0 {
		t.Errorf("ethstratum diff 1: %x", got)
	}
	if got := hex64(Target(Equihash, 1)); got != "0007ffff"+strings.Repeat("0", 56) {
		t.Errorf("equihash diff 1: %s", got)
	}
	if got := Target(EthProxy, 1); got.Cmp(maxU256) != 0 {
		t.Errorf("ethproxy diff 1: %x", got)
	}
	if got := Target(KawPow, 2); got.Cmp(new(big.Int).Rsh(two224m1, 1)) != 0 {
		t.Errorf("kawpow diff 2: %x", got)
	}
	if Target(CryptoNote, 1) != nil {
		t.Error("cryptonote has a 256-bit target")
	}
	for _, k := range []Kind{EthStratum, EthProxy, KawPow, Equihash, KHeavyHash} {
		for _, d := range []float64{DefaultDifficulty(k), 1e-9, 3, 1e12} {
			if Target(k, d).Cmp(maxU256) == 0 {
				continue // capped: below the kind's lowest difficulty
			}
			if got := difficultyOf(k, Target(k, d)); math.Abs(got-d)/d > 1e-9 {
				t.Errorf("%s: difficultyOf(Target(%v)) = %v", k, d, got)
			}
		}
	}
	for _, c := range []struct {
		d    float64
		hex  string
		diff uint64
	}{
		{32, "ffffff07", 32}, {1, "ffffffff", 1}, {0, "ffffffff", 1}, {1000, "37894100", 1000},
		{1 << 40, "ffffff0000000000", 1<<40 + 1<<16}, // xmrig's rounding
	} {
		h, eff := CryptoNoteTarget(c.d)
		if h != c.hex || eff != c.diff {
			t.Errorf("CryptoNoteTarget(%v) = %s, %d; want %s, %d", c.d, h, eff, c.hex, c.diff)
		}
		if d, err := cnDiffFromTarget(h); err != nil || d != eff {
			t.Errorf("cnDiffFromTarget(%s) = %d, %v", h, d, err)
		}
	}
	// The boundary of cnMeets: the last 8 bytes little-endian <= (2^64-1)/d.
	h := make([]byte, 32)
	binary.LittleEndian.PutUint64(h[24:], math.MaxUint64/32)
	if !cnMeets(h, 32) {
		t.Error("boundary hash does not meet")
	}
	binary.LittleEndian.PutUint64(h[24:], math.MaxUint64/32+1)
	if cnMeets(h, 32) {
		t.Error("hash above the boundary meets")
	}
}

// TestCryptoNoteByte42 mines as two proxy miners sharing one upstream
// session: the same job, the blob's byte 42 set to 1 and 2. Shares of both
// are accepted and none is a duplicate, even with the same bytes 39..41.
func TestCryptoNoteByte42(t *testing.T) {
	p := startPool(t, PoolConfig{Kind: CryptoNote})
	m := dial(t, CryptoNote, p.Addr())
	m.mu.Lock()
	base := m.work
	m.mu.Unlock()
	if !base.nicehash {
		t.Fatal("login answer advertises nicehash but the miner ignores it")
	}
	variant := func(top byte) *mwork {
		w := *base
		w.blob = append([]byte(nil), base.blob...)
		w.blob[cnNonceAt+3] = top
		return &w
	}
	for _, top := range []byte{1, 2} {
		m.mu.Lock()
		m.setWorkLocked(variant(top), true)
		m.mu.Unlock()
		mineAll(t, m, 5)
		blob, _ := hex.DecodeString(m.last.params.(cnSubmitParams).Nonce)
		if blob[3] != top {
			t.Fatalf("nonce %x does not keep byte 42 = %d", blob, top)
		}
	}
	// Same bytes 39..41 under two top bytes not mined above: both
	// accepted.
	w1, w2 := variant(3), variant(4)
	found := false
	for n := uint64(0); n < 1<<16 && !found; n++ {
		s1, ok1 := m.try(w1, n)
		s2, ok2 := m.try(w2, n)
		if !ok1 || !ok2 {
			continue
		}
		found = true
		if n1, n2 := s1.params.(cnSubmitParams).Nonce, s2.params.(cnSubmitParams).Nonce; n1[:6] != n2[:6] || n1 == n2 {
			t.Fatalf("nonces %s, %s", n1, n2)
		}
		for _, s := range []*mshare{s1, s2} {
			if ok, err := m.submit(s); err != nil || !ok {
				t.Fatalf("submit %v: %v %v (%s)", s.params, ok, err, m.LastError())
			}
		}
		if ok, _ := m.submit(s2); ok {
			t.Fatal("a real duplicate accepted")
		}
	}
	if !found {
		t.Fatal("no nonce meets under both top bytes")
	}
	if st := p.Stats(); st.Accepted != 12 || st.Duplicate != 1 || st.Rejected != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestDistinctWork: each connection gets its own blob or extranonce.
func TestDistinctWork(t *testing.T) {
	for _, k := range Kinds() {
		if k == EthProxy {
			continue // ETHProxy gives everyone the same work
		}
		t.Run(string(k), func(t *testing.T) {
			p := startPool(t, PoolConfig{Kind: k})
			seen := map[string]bool{}
			for i := 0; i < 4; i++ {
				m := dial(t, k, p.Addr())
				key := m.Extranonce()
				if k == CryptoNote {
					key = m.Blob()
				}
				if key == "" || seen[key] {
					t.Fatalf("miner %d: %q again", i, key)
				}
				seen[key] = true
				if k != CryptoNote && len(key) != 2*defaultExtranonceSize(k) {
					t.Fatalf("extranonce %q", key)
				}
				mineAll(t, m, 2)
			}
			if st := p.Stats(); st.Accepted != 8 || st.Conns != 4 || p.Conns() != 4 {
				t.Fatalf("stats %+v, conns %d", st, p.Conns())
			}
		})
	}
}

func TestSetExtranonce(t *testing.T) {
	for _, k := range []Kind{EthStratum, KHeavyHash} {
		t.Run(string(k), func(t *testing.T) {
			p := startPool(t, PoolConfig{Kind: k})
			m := dial(t, k, p.Addr())
			mineAll(t, m, 2)
			old, jobs := m.Extranonce(), m.Jobs()
			p.SetExtranonce(3)
			waitFor(t, "new extranonce and job", func() bool {
				return len(m.Extranonce()) == 6 && m.Jobs() > jobs
			})
			if m.Extranonce() == old {
				t.Fatal("same extranonce")
			}
			mineAll(t, m, 5)
			if k == EthStratum {
				if n := m.last.params.([]any)[2].(string); len(n) != 10 {
					t.Fatalf("nonce %q after a 3-byte extranonce", n)
				}
			} else if n := m.last.params.([]any)[2].(string); !strings.HasPrefix(n, "0x"+m.Extranonce()) {
				t.Fatalf("nonce %q, extranonce %s", n, m.Extranonce())
			}
			if st := p.Stats(); st.Accepted != 7 || st.Rejected != 0 {
				t.Fatalf("stats %+v", st)
			}
			// A nonce outside the new range is refused.
			sh, err := m.find(true)
			if err != nil {
				t.Fatal(err)
			}
			q := append([]any(nil), sh.params.([]any)...)
			if k == EthStratum {
				q[2] = q[2].(string)[2:] // 2 bytes short of the new size
			} else {
				q[2] = "0x" + old + q[2].(string)[2+len(old):]
			}
			if ok, _ := m.submit(&mshare{sh.method, q}); ok {
				t.Fatal("a nonce of the old extranonce accepted")
			}
			if st := p.Stats(); st.BadFormat != 1 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestEthStratumResume(t *testing.T) {
	p := startPool(t, PoolConfig{Kind: EthStratum, ExtranonceSize: 3})
	a := dial(t, EthStratum, p.Addr())
	sid, en := a.SessionID(), a.Extranonce()
	if sid == "" || len(en) != 6 {
		t.Fatalf("session %q, extranonce %q", sid, en)
	}
	// While a holds it, the session cannot be taken.
	b, err := DialMiner(MinerConfig{Kind: EthStratum, Addr: p.Addr(), User: "u", SessionID: sid, Timeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	if b.Extranonce() == en {
		t.Fatal("extranonce in use given again")
	}
	b.Close()
	a.Close()
	waitFor(t, "closed connections", func() bool { return p.Conns() == 0 })
	c, err := DialMiner(MinerConfig{Kind: EthStratum, Addr: p.Addr(), User: "u", SessionID: sid, Timeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.SessionID() != sid || c.Extranonce() != en {
		t.Fatalf("resumed %s/%s, want %s/%s", c.SessionID(), c.Extranonce(), sid, en)
	}
	mineAll(t, c, 2)
}

func TestCorruptResult(t *testing.T) {
	for _, k := range []Kind{CryptoNote, EthProxy, KawPow} {
		t.Run(string(k), func(t *testing.T) {
			p := startPool(t, PoolConfig{Kind: k})
			m := dial(t, k, p.Addr())
			sh, err := m.find(true)
			if err != nil {
				t.Fatal(err)
			}
			flip := func(s string) string {
				return s[:len(s)-1] + map[bool]string{true: "1", false: "0"}[s[len(s)-1] == '0']
			}
			bad := &mshare{method: sh.method}
			switch p := sh.params.(type) {
			case cnSubmitParams:
				p.Result = flip(p.Result)
				bad.params = p
			case []any:
				q := append([]any(nil), p...)
				q[len(q)-1] = flip(q[len(q)-1].(string))
				bad.params = q
			}
			if ok, err := m.submit(bad); ok || err != nil {
				t.Fatalf("corrupt result: %v %v", ok, err)
			}
			if st := p.Stats(); st.BadResult != 1 || st.Rejected != 1 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestSetDifficulty(t *testing.T) {
	for _, k := range Kinds() {
		t.Run(string(k), func(t *testing.T) {
			p := startPool(t, PoolConfig{Kind: k})
			m := dial(t, k, p.Addr())
			mineAll(t, m, 1)
			d0 := DefaultDifficulty(k)
			d := 2 * d0
			p.SetDifficulty(d)
			waitFor(t, "new difficulty", func() bool { return math.Abs(m.Difficulty()-d)/d < 1e-9 })
			waitFor(t, "new job", func() bool {
				return math.Abs(m.Difficulty()-d)/d < 1e-9 && m.JobID() != "" && jobDiff(m) == m.Difficulty()
			})
			mineAll(t, m, 3)
			if st := p.Stats(); math.Abs(st.AcceptedDiff-(d0+3*d))/d > 1e-6 {
				t.Fatalf("AcceptedDiff %v, want %v", st.AcceptedDiff, d0+3*d)
			}
		})
	}
}

func jobDiff(m *Miner) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.work.diff
}

func TestLoginRefused(t *testing.T) {
	for _, k := range Kinds() {
		t.Run(string(k), func(t *testing.T) {
			p := startPool(t, PoolConfig{Kind: k, RejectLogin: true})
			_, err := DialMiner(MinerConfig{Kind: k, Addr: p.Addr(), User: "u", Timeout: testTimeout})
			if err == nil || !(strings.Contains(err.Error(), "rejected") || strings.Contains(err.Error(), "Unauthorized")) {
				t.Fatalf("err %v", err)
			}
			if len(p.Logins()) != 1 {
				t.Fatalf("logins %+v", p.Logins())
			}

			hung := startPool(t, PoolConfig{Kind: k, SilentLogin: true})
			start := time.Now()
			_, err = DialMiner(MinerConfig{Kind: k, Addr: hung.Addr(), User: "u", Timeout: 100 * time.Millisecond})
			if err == nil || !strings.Contains(err.Error(), "no answer") || time.Since(start) > testTimeout {
				t.Fatalf("silent pool: %v after %v", err, time.Since(start))
			}
		})
	}
}

func TestMalformedRaw(t *testing.T) {
	p := startPool(t, PoolConfig{Kind: CryptoNote})
	m := dial(t, CryptoNote, p.Addr())
	r, err := m.SubmitRaw(`{"id":77,"jsonrpc":"2.0","method":"submit","params":{"id":"` + m.SessionID() + `","job_id":"` + m.JobID() + `","nonce":"zzzzzzzz","result":"00"}}`)
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := r["error"].(map[string]any); e["message"] != "Malformed nonce" {
		t.Fatalf("answer %v", r)
	}
	r, err = m.SubmitRaw(`{{{`)
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := r["error"].(map[string]any); e["message"] != "Parse error" {
		t.Fatalf("answer %v", r)
	}
	r, err = m.SubmitRaw(`{"id":"s1","jsonrpc":"2.0","method":"bogus","params":{}}`)
	if err != nil || r["id"] != "s1" {
		t.Fatalf("answer %v, %v", r, err)
	}
	if st := p.Stats(); st.BadFormat != 2 || st.Rejected != 1 {
		t.Fatalf("stats %+v", st)
	}

	ep := startPool(t, PoolConfig{Kind: EthProxy})
	em := dial(t, EthProxy, ep.Addr())
	if ok, err := em.SubmitHashrate(500000000); !ok || err != nil {
		t.Fatalf("hashrate: %v %v", ok, err)
	}
	if st := ep.Stats(); st.Hashrate != "0x1dcd6500" {
		t.Fatalf("hashrate %q", st.Hashrate)
	}
}

func TestDropAndJobInterval(t *testing.T) {
	p := startPool(t, PoolConfig{Kind: KawPow, JobInterval: 20 * time.Millisecond})
	a := dial(t, KawPow, p.Addr())
	b := dial(t, KawPow, p.Addr())
	waitFor(t, "interval jobs", func() bool { return a.Jobs() >= 4 && b.Jobs() >= 4 })
	mineAll(t, a, 3)
	mineAll(t, b, 3)
	if p.Conns() != 2 {
		t.Fatalf("conns %d", p.Conns())
	}
	p.DropConnections()
	waitFor(t, "dropped connections", func() bool { return p.Conns() == 0 })
	if _, _, err := a.Mine(1); err == nil {
		t.Fatal("mining on a dropped connection")
	}
	c := dial(t, KawPow, p.Addr())
	mineAll(t, c, 1)
	if st := p.Stats(); st.Conns != 3 || st.Accepted != 7 {
		t.Fatalf("stats %+v", st)
	}
}

// TestWaitForWork: with work after the authorize answer, Mine waits for it.
func TestWaitForWork(t *testing.T) {
	for _, k := range []Kind{EthStratum, Equihash} {
		p := startPool(t, PoolConfig{Kind: k, WorkAfterAuthorize: true, ExtranonceSize: 1})
		m := dial(t, k, p.Addr())
		mineAll(t, m, 3)
	}
}

func TestStartPoolErrors(t *testing.T) {
	for _, cfg := range []PoolConfig{
		{Kind: "bitcoin"},
		{Kind: EthStratum, ExtranonceSize: 7},
		{Kind: Equihash, ExtranonceSize: 32},
		{Kind: KawPow, Difficulty: -1},
	} {
		if p, err := StartPool(cfg); err == nil {
			p.Close()
			t.Errorf("%+v: no error", cfg)
		}
	}
	if _, err := DialMiner(MinerConfig{Kind: "bitcoin"}); err == nil {
		t.Error("DialMiner of an unknown kind")
	}
}

// TestJobHistory: a share on a job stays valid for JobHistory jobs, a
// clean job ends it at once.
func TestJobHistory(t *testing.T) {
	for _, k := range []Kind{CryptoNote, EthStratum, EthProxy} {
		t.Run(string(k), func(t *testing.T) {
			p := startPool(t, PoolConfig{Kind: k, JobHistory: 2})
			m := dial(t, k, p.Addr())
			next := func(clean bool) {
				jobs := m.Jobs()
				p.NewJob(clean)
				waitFor(t, "job", func() bool { return m.Jobs() > jobs })
			}
			a, err := m.find(true)
			if err != nil {
				t.Fatal(err)
			}
			next(false)
			b, err := m.find(true)
			if err != nil {
				t.Fatal(err)
			}
			next(false)
			c, err := m.find(true)
			if err != nil {
				t.Fatal(err)
			}
			// History 2: b's job is still valid, a's is not.
			if ok, err := m.submit(b); !ok || err != nil {
				t.Fatalf("previous job: %v %v (%s)", ok, err, m.LastError())
			}
			if ok, _ := m.submit(a); ok {
				t.Fatal("a job beyond the history accepted")
			}
			next(true)
			if ok, _ := m.submit(c); ok {
				t.Fatal("a job before a clean one accepted")
			}
			if st := p.Stats(); st.Accepted != 1 || st.Stale != 2 || st.Rejected != 2 {
				t.Fatalf("stats %+v", st)
			}
			if k == CryptoNote {
				if ok, err := m.Keepalive(); !ok || err != nil {
					t.Fatalf("keepalive: %v %v", ok, err)
				}
			}
		})
	}
}
