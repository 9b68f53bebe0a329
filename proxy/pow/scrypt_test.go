package pow

import (
	"crypto/sha256"
	"math/big"
	"testing"
)

// litecoinGenesis is the header of the Litecoin genesis block.
func litecoinGenesis(t testing.TB) [HeaderSize]byte {
	job := &Job{Version: 1, NBits: 0x1e0ffff0} // prevhash zero
	root := reversed(t, "97ddfbbae6be97fd6cdf3e7ca13232a3afff2353e29badfab7f73011edd4ced9")
	return Header(job, &root, 1317972665, 2084524493, job.Version)
}

// TestScryptLitecoinGenesis pins ScryptHash on the Litecoin genesis block.
// The expected hash was computed with Python's hashlib.scrypt(header,
// salt=header, n=1024, r=1, p=1, dklen=32); the header itself is checked
// through the block's well-known sha256d id.
func TestScryptLitecoinGenesis(t *testing.T) {
	h := litecoinGenesis(t)
	if got, want := HeaderHash(&h), reversed(t, "12a765e31ffd4059bada1e25190f6e98c99d9714d334efa41a195a7e7e04bfe2"); got != want {
		t.Fatalf("genesis block id %x, want %x: the header is wrong", got, want)
	}
	got := ScryptHash(&h)
	want := reversed(t, "0000050c34a64b415b6b15b37f2216634b5b1669cb9a2e38d76f7213b0671e00")
	if got != want {
		t.Fatalf("scrypt hash %x, want %x", got, want)
	}
	// The block meets its own nbits 0x1e0ffff0: 0x0ffff0 * 2^(8*(0x1e-3)).
	nbits := new(big.Int).Lsh(big.NewInt(0x0ffff0), 8*(0x1e-3))
	if leInt(got).Cmp(nbits) > 0 {
		t.Fatal("genesis scrypt hash above its nbits target")
	}
	// That target is scrypt pool difficulty 2^16 * Diff1 / target =
	// 2^16 * 0xffff / (0x0ffff0 * 2^8) = 15.9998 (Litecoin's minimum
	// difficulty, 0.000244 on the sha256d scale of getdifficulty).
	if d := ScryptDifficulty(got); d < 15.9998 {
		t.Fatalf("genesis scrypt difficulty %g, want at least 15.9998", d)
	}
	if !MeetsTarget(got, ScryptTarget(15.9998)) || MeetsTarget(got, Target(15.9998)) {
		t.Fatal("genesis share: want scrypt difficulty 16 met, sha256d-scale difficulty 16 not")
	}
	if !MeetsTarget(got, ScryptTarget(ScryptDifficulty(got)*0.999999)) ||
		MeetsTarget(got, ScryptTarget(ScryptDifficulty(got)*1.000001)) {
		t.Fatal("ScryptTarget disagrees with ScryptDifficulty")
	}
	// The header is not modified and the hash is deterministic.
	if litecoinGenesis(t) != h || ScryptHash(&h) != got {
		t.Fatal("ScryptHash is not a pure function of the header")
	}
}

func TestScryptTarget(t *testing.T) {
	// Scrypt difficulty 1 is 0xFFFF * 2^224: 0x0000ffff00...00.
	var want [32]byte
	want[28], want[29] = 0xff, 0xff
	if got := ScryptTarget(1); got != want {
		t.Fatalf("ScryptTarget(1) = %x, want %x", got, want)
	}
	if ScryptTarget(ScryptDiffFactor) != Diff1Target {
		t.Fatal("ScryptTarget(65536) != Diff1Target")
	}
	// Below 2^-16 (a scrypt target above 2^256) the target saturates.
	if ScryptTarget(1e-6) != Target(1e-20) {
		t.Fatal("ScryptTarget(1e-6) is not the all-ones target")
	}
	for _, d := range []float64{0.001, 0.5, 3, 1024, 1e6} {
		if ScryptTarget(d) != Target(d/ScryptDiffFactor) {
			t.Fatalf("ScryptTarget(%g) != Target(%g/65536)", d, d)
		}
		num := new(big.Int).Lsh(big.NewInt(0xFFFF), 224)
		r := new(big.Rat).SetFloat64(d)
		num.Mul(num, r.Denom())
		num.Quo(num, r.Num())
		if got := ScryptTarget(d); leInt(got).Cmp(num) != 0 {
			t.Fatalf("ScryptTarget(%g) = %x, want %x", d, got, num)
		}
	}
}

// A hash near the sha256d boundary: every sha256d share of difficulty d is
// far below the scrypt target of d, never the other way round.
func TestScryptDifficultyFactor(t *testing.T) {
	h := sha256.Sum256([]byte("x"))
	if got, want := ScryptDifficulty(h), Difficulty(h)*65536; got != want {
		t.Fatalf("ScryptDifficulty %g, want %g", got, want)
	}
}

func BenchmarkScryptHash(b *testing.B) {
	h := litecoinGenesis(b)
	for b.Loop() {
		PutNonce(&h, uint32(b.N))
		ScryptHash(&h)
	}
}
