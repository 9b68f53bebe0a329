package poolsim

import (
	"encoding/binary"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratum-proxy/stratum-proxy/proxy/pow"
)

// Header constants of the simulated chain: a regtest-like chain, the same
// as the captured sessions (litecoind regtest).
const (
	jobVersion = 0x20000000 // BIP9 version bits, as every current pool sends
	jobNBits   = 0x207fffff // regtest's minimum-difficulty nbits
	// maxNTimeAhead is how far a share's ntime may run ahead of its job's:
	// two hours, Bitcoin's limit on a block's timestamp in the future.
	maxNTimeAhead = 2 * 60 * 60
	// coinbaseValue is the 50-coin subsidy in satoshis.
	coinbaseValue = 50 * 100_000_000
)

// poolTag is the pool's signature in the coinbase script, as real pools
// put theirs ("/ckpool/", "/EloPool.Cloud/").
var poolTag = []byte("/poolsim/")

// payoutScript is a P2PKH output script (OP_DUP OP_HASH160 <20 bytes>
// OP_EQUALVERIFY OP_CHECKSIG) to a fixed key hash taken from a capture.
var payoutScript = []byte{
	0x76, 0xa9, 0x14,
	0xcf, 0x75, 0x7c, 0x67, 0x70, 0x6a, 0xd6, 0x27, 0x5e, 0x5b,
	0x29, 0x86, 0x4f, 0xb2, 0x27, 0x78, 0x84, 0x23, 0xb8, 0xab,
	0x88, 0xac,
}

// job is one job the pool sent. Static after construction except seen and
// stale.
type job struct {
	pow.Job
	seq uint64

	// stale is set when the job leaves the pool's history (a clean job or
	// age); shares for it are answered 21.
	stale atomic.Bool

	mu   sync.Mutex
	seen map[[32]byte]struct{} // hashes of accepted shares; guarded by mu
}

// diffState is a difficulty and its precomputed target (for the pool's
// algorithm: see Config.newDiffState). Immutable.
type diffState struct {
	diff   float64
	target [32]byte
}

// chain is the simulated block chain the jobs build on. Guarded by
// Server.mu.
type chain struct {
	prev   [32]byte // header order
	height uint32
	ntime  uint32
}

// newJobLocked builds the next job like a real pool builds a block
// template: coinb1 ends right before extranonce1, coinb2 follows
// extranonce2, and a new prevhash when clean (a new block). s.mu is held.
func (s *Server) newJobLocked(clean bool) *job {
	if clean || s.chain.height == 0 {
		s.chain.height++
		for i := 0; i < 32; i += 8 {
			binary.LittleEndian.PutUint64(s.chain.prev[i:], rand.Uint64())
		}
	}
	now := uint32(time.Now().Unix())
	if now > s.chain.ntime {
		s.chain.ntime = now
	}
	s.jobSeq++
	j := &job{seq: s.jobSeq, seen: make(map[[32]byte]struct{})}
	j.ID = s.cfg.JobIDPrefix + strconv.FormatUint(s.jobSeq, 16)
	j.PrevHash = s.chain.prev
	j.Version = jobVersion
	j.NBits = jobNBits
	j.NTime = s.chain.ntime
	j.Coinb1, j.Coinb2 = coinbase(s.chain.height, s.chain.ntime, s.cfg.en1Size()+s.cfg.en2Size())
	j.Branches = make([][32]byte, s.cfg.branches())
	for i := range j.Branches {
		for k := 0; k < 32; k += 8 {
			binary.LittleEndian.PutUint64(j.Branches[i][k:], rand.Uint64())
		}
	}
	return j
}

// coinbase returns the two halves of a coinbase transaction around an
// extranonce of n bytes (n <= 32, so every push fits one opcode byte).
func coinbase(height, ntime uint32, n int) (coinb1, coinb2 []byte) {
	// Script: <height: 3-byte BIP34 push> <ntime: 4-byte push> <n-byte
	// push of extranonce1||extranonce2> <pool tag push>.
	scriptLen := 1 + 3 + 1 + 4 + 1 + n + 1 + len(poolTag)
	b := make([]byte, 0, 64)
	b = binary.LittleEndian.AppendUint32(b, 1) // tx version
	b = append(b, 1)                           // one input
	b = append(b, make([]byte, 32)...)         // null prevout hash
	b = append(b, 0xff, 0xff, 0xff, 0xff)      // prevout index -1
	b = append(b, byte(scriptLen))
	b = append(b, 3, byte(height), byte(height>>8), byte(height>>16))
	b = append(b, 4)
	b = binary.LittleEndian.AppendUint32(b, ntime)
	b = append(b, byte(n))
	coinb1 = b

	b = make([]byte, 0, 64)
	b = append(b, byte(len(poolTag)))
	b = append(b, poolTag...)
	b = append(b, 0xff, 0xff, 0xff, 0xff) // sequence
	b = append(b, 1)                      // one output
	b = binary.LittleEndian.AppendUint64(b, coinbaseValue)
	b = append(b, byte(len(payoutScript)))
	b = append(b, payoutScript...)
	b = append(b, 0, 0, 0, 0) // lock time
	return coinb1, b
}
