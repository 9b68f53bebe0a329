package miner_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stratum-proxy/stratum-proxy/bench/miner"
	"github.com/stratum-proxy/stratum-proxy/bench/poolsim"
	"github.com/stratum-proxy/stratum-proxy/proxy/pow"
)

// scryptDiff makes a scrypt share cost about 6.5 scrypt hashes (2^16 *
// 1e-4) and a sha256d share at the same difficulty about 430,000 sha256d
// hashes (2^32 * 1e-4).
const scryptDiff = 1e-4

// shareHeader rebuilds the header of sh.
func shareHeader(sh miner.Share) [pow.HeaderSize]byte {
	var ch pow.Checker
	root := ch.MerkleRoot(&sh.Job.Job, sh.Job.Extranonce1, sh.Extranonce2)
	return pow.Header(&sh.Job.Job, &root, sh.NTime, sh.Nonce, pow.RollVersion(sh.Job.Version, sh.VersionBits, sh.Job.VersionMask))
}

// TestScryptRoundTrip: a scrypt miner's shares are accepted by a scrypt
// pool, with and without version rolling, within a bounded time.
func TestScryptRoundTrip(t *testing.T) {
	const diff = 1e-3 // about 66 scrypt hashes per share
	p := pool(t, poolsim.Config{Algorithm: poolsim.Scrypt, Difficulty: diff, VersionMask: 0x1fffe000})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, cfg := range []miner.Config{
		{Addr: p.Addr(), User: "alice", Algorithm: miner.Scrypt},
		{Addr: p.Addr(), User: "bob", Algorithm: miner.Scrypt, Configure: true, SubmitID: 4},
	} {
		m := dial(t, cfg)
		for i := 0; i < 3; i++ {
			sh, err := m.Mine(ctx, 0)
			if err != nil {
				t.Fatalf("%s: mine: %v", cfg.User, err)
			}
			if sh.Difficulty < diff || sh.Rolling != cfg.Configure {
				t.Fatalf("%s: share difficulty %g (want >= %g), rolling %v", cfg.User, sh.Difficulty, diff, sh.Rolling)
			}
			hdr := shareHeader(sh)
			if h := pow.ScryptHash(&hdr); h != sh.Hash || pow.ScryptDifficulty(h) != sh.Difficulty {
				t.Fatalf("%s: share hash %x difficulty %g, header hashes to %x", cfg.User, sh.Hash, sh.Difficulty, h)
			}
			ok, code, msg, err := m.Submit(ctx, sh)
			if err != nil || !ok {
				t.Fatalf("%s: share %d: %v %d %q %v", cfg.User, i, ok, code, msg, err)
			}
		}
	}
	st := p.Stats()
	if st.Accepted != 6 || st.Rejected != 0 || st.UserDifficulty["alice"] != 3*diff || st.UserDifficulty["bob"] != 3*diff {
		t.Fatalf("pool stats %+v", st)
	}
}

// TestScryptPoolRejectsSha256dShare: on the job and extranonce2 of a share
// the scrypt miner found (and the pool accepted), a nonce whose sha256d
// hash meets the difficulty, even at sha256d's 2^16 times harder target,
// but whose scrypt hash does not is rejected with 23. A scrypt share sent
// to a sha256d pool is rejected too.
func TestScryptPoolRejectsSha256dShare(t *testing.T) {
	p := pool(t, poolsim.Config{Algorithm: poolsim.Scrypt, Difficulty: scryptDiff})
	m := dial(t, miner.Config{Addr: p.Addr(), User: "alice", Algorithm: miner.Scrypt})
	ctx := ctxT(t)
	sh, ok, code := mineSubmit(t, m, 0)
	if !ok {
		t.Fatalf("scrypt share rejected with %d", code)
	}

	bad := sh
	hdr := shareHeader(sh)
	sha, scr := pow.Target(scryptDiff), pow.ScryptTarget(scryptDiff)
	for n := sh.Nonce + 1; ; n++ {
		pow.PutNonce(&hdr, n)
		if pow.MeetsTarget(pow.HeaderHash(&hdr), sha) && !pow.MeetsTarget(pow.ScryptHash(&hdr), scr) {
			bad.Nonce = n
			break
		}
		if n == sh.Nonce+1<<26 {
			t.Fatal("no sha256d-only share found")
		}
	}
	if ok, code, msg, err := m.Submit(ctx, bad); ok || code != 23 || err != nil {
		t.Fatalf("sha256d-only share: %v %d %q %v, want 23", ok, code, msg, err)
	}

	// The other way round: a scrypt share on a sha256d pool of the same
	// difficulty is rejected (unless its sha256d hash happens to meet the
	// target too, probability 2^-32 / 1e-4 = 2.3e-6: then it is not sent).
	q := pool(t, poolsim.Config{Difficulty: scryptDiff})
	m2 := dial(t, miner.Config{Addr: q.Addr(), User: "bob", Algorithm: miner.Scrypt})
	sh2, err := m2.Mine(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	hdr = shareHeader(sh2)
	if !pow.MeetsTarget(pow.HeaderHash(&hdr), sha) {
		if ok, code, _, _ := m2.Submit(ctx, sh2); ok || code != 23 {
			t.Fatalf("scrypt share on a sha256d pool: %v %d, want 23", ok, code)
		}
	}
	if st := p.Stats(); st.Accepted != 1 || st.LowDifficulty != 1 {
		t.Fatalf("scrypt pool stats %+v", st)
	}
}

// TestScryptMineCancel: a scrypt search at an unreachable difficulty ends
// soon after its context does (the context is checked every nonce).
func TestScryptMineCancel(t *testing.T) {
	p := pool(t, poolsim.Config{Algorithm: poolsim.Scrypt, Difficulty: 1e6})
	m := dial(t, miner.Config{Addr: p.Addr(), User: "alice", Algorithm: miner.Scrypt})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := m.Mine(ctx, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("mine: %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("mine took %v after a 100ms deadline", d)
	}
}

func TestUnknownAlgorithm(t *testing.T) {
	if m, err := miner.Dial(miner.Config{Addr: "127.0.0.1:1", Algorithm: "x11"}); err == nil {
		m.Close()
		t.Fatal("Dial accepted algorithm x11")
	}
}
