package pow

import (
	"golang.org/x/crypto/scrypt"
)

// Parameters of Litecoin's scrypt proof of work: scrypt(header, header,
// N=1024, r=1, p=1) with a 32-byte output, the header as both password and
// salt.
const (
	ScryptN      = 1024
	ScryptR      = 1
	ScryptP      = 1
	scryptKeyLen = 32
)

// ScryptDiffFactor is how much easier a stratum difficulty is on scrypt
// pools than on sha256d pools: their difficulty-1 target is 2^16 times
// Diff1 (the convention of cpuminer and of every scrypt stratum pool), so
// a share of scrypt pool difficulty d meets Diff1 / (d / ScryptDiffFactor).
// Use ScryptTarget and ScryptDifficulty rather than the factor directly.
const ScryptDiffFactor = 65536

// Algorithm names used by configs (poolsim.Config, miner.Config).
const (
	AlgoSHA256d = "sha256d"
	AlgoScrypt  = "scrypt"
)

// ScryptHash returns the scrypt proof-of-work hash of header, in the same
// layout as HeaderHash (a 256-bit little-endian integer, compared with
// MeetsTarget against ScryptTarget). It costs about a millisecond and
// allocates scrypt's 128 KiB working memory per call: it is for tests and
// simulators, not a hot path.
func ScryptHash(header *[HeaderSize]byte) (h [32]byte) {
	// A copy, so that header does not escape (scrypt.Key's password and
	// salt do): a caller's header stays on its stack.
	b := *header
	k, err := scrypt.Key(b[:], b[:], ScryptN, ScryptR, ScryptP, scryptKeyLen)
	if err != nil {
		// Only bad parameters fail, and these are constants.
		panic("pow: scrypt: " + err.Error())
	}
	copy(h[:], k)
	return h
}

// ScryptTarget returns the share target of scrypt pool difficulty diff:
// Target(diff / ScryptDiffFactor), i.e. 2^16 * Diff1 / diff. Like Target
// it allocates: compute it when the difficulty changes.
func ScryptTarget(diff float64) [32]byte {
	return Target(diff / ScryptDiffFactor)
}

// ScryptDifficulty returns the scrypt pool difficulty of a scrypt hash:
// Difficulty(hash) * ScryptDiffFactor. It does not allocate.
func ScryptDifficulty(hash [32]byte) float64 {
	return Difficulty(hash) * ScryptDiffFactor
}
