package poolsim_test

import (
	"encoding/binary"
	"testing"

	"github.com/stratum-proxy/stratum-proxy/bench/poolsim"
	"github.com/stratum-proxy/stratum-proxy/proxy/pow"
)

// scryptDiff makes a scrypt share cost about 6.5 scrypt hashes (2^16 *
// 1e-4) and a sha256d share at the same difficulty about 430,000 sha256d
// hashes (2^32 * 1e-4): both well under a second.
const scryptDiff = 1e-4

// mineWhere searches the current job for a share whose header satisfies
// cond, rolling version bits vbits within mask.
func (c *client) mineWhere(vbits, mask uint32, cond func(hdr *[pow.HeaderSize]byte) bool) share {
	c.t.Helper()
	c.en2ctr++
	en2 := make([]byte, c.en2Size)
	var ctr [8]byte
	binary.BigEndian.PutUint64(ctr[:], c.en2ctr)
	copy(en2, ctr[max(0, 8-c.en2Size):])
	var ch pow.Checker
	root := ch.MerkleRoot(c.job, c.en1, en2)
	hdr := pow.Header(c.job, &root, c.job.NTime, 0, pow.RollVersion(c.job.Version, vbits, mask))
	for nonce := uint32(0); nonce < 1<<26; nonce++ {
		pow.PutNonce(&hdr, nonce)
		if cond(&hdr) {
			return share{job: c.job, en2: en2, ntime: c.job.NTime, nonce: nonce, vbits: vbits, hasV: mask != 0}
		}
	}
	c.t.Fatal("no share found")
	return share{}
}

func meetsScrypt(diff float64) func(*[pow.HeaderSize]byte) bool {
	target := pow.ScryptTarget(diff)
	return func(hdr *[pow.HeaderSize]byte) bool { return pow.MeetsTarget(pow.ScryptHash(hdr), target) }
}

// TestScryptShares: a scrypt pool accepts shares by their scrypt hash at
// scrypt's difficulty convention, and rejects with 23 a share whose
// sha256d hash meets the difficulty (even sha256d's 2^16 times harder
// target) but whose scrypt hash does not.
func TestScryptShares(t *testing.T) {
	s := startPool(t, poolsim.Config{Algorithm: poolsim.Scrypt, Difficulty: scryptDiff, VersionMask: 0x1fffe000})
	c := dial(t, s)
	if m := c.call(1, "mining.configure", `[["version-rolling"],{"version-rolling.mask":"1fffe000"}]`); string(m.Result) != `{"version-rolling":true,"version-rolling.mask":"1fffe000"}` {
		t.Fatalf("configure answered %s", m.Result)
	}
	c.handshake("alice")
	if c.jobDiff != scryptDiff {
		t.Fatalf("difficulty %g, want %g", c.jobDiff, scryptDiff)
	}

	sh := c.mineWhere(0, 0, meetsScrypt(scryptDiff))
	c.mustSubmit("alice", sh, 0)
	c.mustSubmit("alice", sh, 22)
	c.mustSubmit("alice", c.mineWhere(0x0aaa6000, 0x1fffe000, meetsScrypt(scryptDiff)), 0)

	// A share meeting sha256d's target of the same difficulty, but not
	// scrypt's (much easier) one: a pool hashing with sha256d would take it.
	sha := pow.Target(scryptDiff)
	scryptOK := meetsScrypt(scryptDiff)
	bad := c.mineWhere(0, 0, func(hdr *[pow.HeaderSize]byte) bool {
		return pow.MeetsTarget(pow.HeaderHash(hdr), sha) && !scryptOK(hdr)
	})
	c.mustSubmit("alice", bad, 23)
	// And a plain scrypt miss.
	c.mustSubmit("alice", c.mineWhere(0, 0, func(hdr *[pow.HeaderSize]byte) bool { return !scryptOK(hdr) }), 23)

	st := s.Stats()
	if st.Accepted != 2 || st.Duplicate != 1 || st.LowDifficulty != 2 || st.Rejected != 3 {
		t.Fatalf("stats %+v", st)
	}
	if d := st.UserDifficulty["alice"]; d != 2*scryptDiff {
		t.Fatalf("alice's accepted difficulty %g", d)
	}

	// The default pool at the same difficulty is unchanged: sha256d.
	p := startPool(t, poolsim.Config{Algorithm: poolsim.SHA256d, Difficulty: scryptDiff})
	c2 := dial(t, p)
	c2.handshake("bob")
	c2.mustSubmit("bob", c2.mine(scryptDiff, true, 0, 0), 0)
	c2.mustSubmit("bob", c2.mineWhere(0, 0, func(hdr *[pow.HeaderSize]byte) bool {
		return scryptOK(hdr) && !pow.MeetsTarget(pow.HeaderHash(hdr), sha)
	}), 23)
}

func TestScryptConfig(t *testing.T) {
	if s, err := poolsim.Start(poolsim.Config{Algorithm: "x11"}); err == nil {
		s.Close()
		t.Fatal("unknown algorithm accepted")
	}
	// Scrypt's difficulty 1 is 2^16 times easier, so its maximum is higher.
	s, err := poolsim.Start(poolsim.Config{Algorithm: poolsim.Scrypt, Difficulty: 2 * pow.Diff1})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := poolsim.Start(poolsim.Config{Difficulty: 2 * pow.Diff1}); err == nil {
		s.Close()
		t.Fatal("sha256d difficulty above Diff1 accepted")
	}
}
