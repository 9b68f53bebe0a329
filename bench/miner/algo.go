package miner

import (
	"fmt"

	"github.com/stratum-proxy/stratum-proxy/proxy/pow"
)

// Hash algorithms for Config.Algorithm.
const (
	SHA256d = pow.AlgoSHA256d // "sha256d": Bitcoin-family, the default
	Scrypt  = pow.AlgoScrypt  // "scrypt": Litecoin-family
)

// scryptCheckEvery is checkEvery for scrypt: a scrypt hash costs about a
// millisecond, so Mine looks at the context and for a newer job after
// every nonce.
const scryptCheckEvery = 1

// powFuncs are the hash, target and difficulty of one algorithm.
type powFuncs struct {
	scrypt     bool // hash with pow.ScryptHash, else pow.HeaderHash
	target     func(float64) [32]byte
	difficulty func([32]byte) float64
	checkEvery uint32 // a power of two
}

var (
	sha256dFuncs = powFuncs{false, pow.Target, pow.Difficulty, checkEvery}
	scryptFuncs  = powFuncs{true, pow.ScryptTarget, pow.ScryptDifficulty, scryptCheckEvery}
)

// hash returns the proof-of-work hash of hdr. The sha256d path is a direct
// call, so hdr stays on the caller's stack.
func (f *powFuncs) hash(hdr *[pow.HeaderSize]byte) [32]byte {
	if f.scrypt {
		return pow.ScryptHash(hdr)
	}
	return pow.HeaderHash(hdr)
}

// algoFuncs returns the functions of Config.Algorithm, or an error for an
// unknown one.
func algoFuncs(algo string) (*powFuncs, error) {
	switch algo {
	case "", SHA256d:
		return &sha256dFuncs, nil
	case Scrypt:
		return &scryptFuncs, nil
	}
	return nil, fmt.Errorf("miner: algorithm %q, want %q or %q", algo, SHA256d, Scrypt)
}
