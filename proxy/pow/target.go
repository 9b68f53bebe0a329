package pow

import (
	"encoding/binary"
	"math"
	"math/big"
)

// Diff1 is the difficulty-1 target of sha256d as a number: 0xFFFF * 2^208,
// i.e. 0x00000000FFFF0000...0000 (the target of nbits 0x1d00ffff, the
// Bitcoin genesis difficulty). A share of difficulty d meets Diff1 / d.
const Diff1 = 0xFFFF * (1 << 208)

// Diff1Target is Diff1 as a target (see Target). Do not modify it.
var Diff1Target = Target(1)

// diff1Int is Diff1 as a big.Int, for Target. Read-only after init.
var diff1Int = new(big.Int).Lsh(big.NewInt(0xFFFF), 208)

// Target returns the share target of difficulty diff: floor(Diff1 / diff)
// as a 256-bit little-endian integer (byte 31 most significant, the same
// layout as a header hash). Fractional difficulties such as 0.01 or 1e-6
// are exact: diff is converted to a rational, not rounded. A difficulty so
// small that the target exceeds 2^256-1 gives the all-ones target (every
// hash meets it). diff <= 0, NaN or +Inf gives the zero target, which no
// real hash meets: callers validate difficulties before this point.
//
// Target allocates (it uses math/big). Call it when the difficulty
// changes and keep the result; compare hashes with MeetsTarget.
func Target(diff float64) (t [32]byte) {
	if !(diff > 0) || math.IsInf(diff, 1) {
		return t
	}
	r := new(big.Rat).SetFloat64(diff) // exact: a float64 is a dyadic rational
	num := new(big.Int).Mul(diff1Int, r.Denom())
	num.Quo(num, r.Num())
	if num.BitLen() > 256 {
		for i := range t {
			t[i] = 0xff
		}
		return t
	}
	var be [32]byte
	num.FillBytes(be[:])
	for i := range be {
		t[i] = be[31-i]
	}
	return t
}

// MeetsTarget reports whether hash, read as a 256-bit little-endian integer,
// is at most target. It does not allocate.
func MeetsTarget(hash, target [32]byte) bool {
	for i := 24; i >= 0; i -= 8 {
		h := binary.LittleEndian.Uint64(hash[i:])
		t := binary.LittleEndian.Uint64(target[i:])
		if h != t {
			return h < t
		}
	}
	return true
}

// Difficulty returns the share difficulty of hash: Diff1 / hash, the
// highest difficulty the share meets (up to float64 rounding). A zero hash
// gives +Inf. It does not allocate.
func Difficulty(hash [32]byte) float64 {
	v := 0.0
	for i := 24; i >= 0; i -= 8 {
		v = v*0x1p64 + float64(binary.LittleEndian.Uint64(hash[i:]))
	}
	if v == 0 {
		return math.Inf(1)
	}
	return Diff1 / v
}
