package poolsim

import (
	"fmt"

	"github.com/stratum-proxy/stratum-proxy/proxy/pow"
)

// Hash algorithms for Config.Algorithm.
const (
	SHA256d = pow.AlgoSHA256d // "sha256d": Bitcoin-family, the default
	Scrypt  = pow.AlgoScrypt  // "scrypt": Litecoin-family
)

// scrypt reports whether shares are hashed with scrypt.
func (c *Config) scrypt() bool { return c.Algorithm == Scrypt }

func (c *Config) validateAlgorithm() error {
	switch c.Algorithm {
	case "", SHA256d, Scrypt:
		return nil
	}
	return fmt.Errorf("%w: algorithm %q, want %q or %q", errConfig, c.Algorithm, SHA256d, Scrypt)
}

// maxDifficulty is the highest difficulty whose target is at least 1:
// above it no share could ever be accepted.
func (c *Config) maxDifficulty() float64 {
	if c.scrypt() {
		return pow.Diff1 * pow.ScryptDiffFactor
	}
	return pow.Diff1
}

// newDiffState precomputes the share target of difficulty d: pow.Target,
// or pow.ScryptTarget (d / 65536) for scrypt.
func (c *Config) newDiffState(d float64) *diffState {
	if c.scrypt() {
		return &diffState{diff: d, target: pow.ScryptTarget(d)}
	}
	return &diffState{diff: d, target: pow.Target(d)}
}

// scryptShareHash is the scrypt hash of a share: the same header as
// pow.Checker.Hash, hashed with pow.ScryptHash. It allocates (scrypt's
// working memory); the sha256d path does not come here.
func scryptShareHash(ch *pow.Checker, j *pow.Job, en1, en2 []byte, ntime, nonce, vbits, mask uint32) [32]byte {
	root := ch.MerkleRoot(j, en1, en2)
	hdr := pow.Header(j, &root, ntime, nonce, pow.RollVersion(j.Version, vbits, mask))
	return pow.ScryptHash(&hdr)
}
