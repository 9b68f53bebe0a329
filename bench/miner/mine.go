package miner

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/stratum-proxy/stratum-proxy/codec"
	"github.com/stratum-proxy/stratum-proxy/proxy/pow"
)

// Job is a mining.notify with the layout and difficulty in force when it
// arrived, which is what real miners build their work from. Immutable.
type Job struct {
	pow.Job
	// Clean is the notify's clean_jobs.
	Clean bool
	// Extranonce1 and Extranonce2Size are the layout when the job arrived
	// (a later mining.set_extranonce applies to later jobs).
	Extranonce1     []byte
	Extranonce2Size int
	// Difficulty is the latest mining.set_difficulty before the job.
	Difficulty float64
	// VersionMask is the granted version-rolling mask when the job arrived.
	VersionMask uint32
	// Received is when the notify was read.
	Received time.Time
}

// Share is a solved share, ready for Submit.
type Share struct {
	JobID       string
	Extranonce2 []byte
	NTime       uint32
	Nonce       uint32
	// VersionBits are the rolled version bits (inside the granted mask);
	// sent as the sixth submit param when the miner rolls versions.
	VersionBits uint32
	// Rolling says whether VersionBits is sent.
	Rolling bool
	// Difficulty is the share's own difficulty (pow.Difficulty of Hash, or
	// pow.ScryptDifficulty with scrypt).
	Difficulty float64
	// Hash is the header hash, sha256d or scrypt (little-endian integer
	// layout).
	Hash [32]byte
	// Job is the job the share was mined on.
	Job *Job
}

// WaitJob returns the latest job, waiting for the first one if none has
// arrived yet.
func (m *Miner) WaitJob(ctx context.Context) (*Job, error) {
	for {
		m.mu.Lock()
		j, ch := m.job, m.jobCh
		m.mu.Unlock()
		if j != nil {
			return j, nil
		}
		select {
		case <-ch:
		case <-m.done:
			return nil, ErrClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// checkEvery is how many nonces Mine tries between looks at the context
// and for a newer job: about a millisecond of sha256d hashing (scrypt:
// scryptCheckEvery). A power of two.
const checkEvery = 1 << 10

// Mine searches nonces on the latest job until a share meets diff, or,
// when diff is 0, the job's difficulty or the current one, whichever is
// higher (so the share is valid whichever a pool applies). Each call starts
// on a new extranonce2 (a counter from a random start, big-endian in the
// job's extranonce2 size) at a random nonce, so successive shares differ,
// also between two Miners given the same extranonce1 (session restore);
// with version rolling the version bits are that counter spread over the
// granted mask. When a newer job arrives during the search, Mine moves to
// it. Calls are serialized.
func (m *Miner) Mine(ctx context.Context, diff float64) (Share, error) {
	m.searchMu.Lock()
	defer m.searchMu.Unlock()
	job, err := m.WaitJob(ctx)
	if err != nil {
		return Share{}, err
	}
	for {
		d := diff
		if d == 0 {
			d = max(job.Difficulty, m.Difficulty())
		}
		target := m.algo.target(d)
		mask := job.VersionMask
		if cur := m.VersionMask(); cur != mask {
			mask &= cur // a narrower set_version_mask arrived since the job
		}
		if job.Extranonce2Size > 0 || m.nonce == 0 {
			m.en2Ctr++
			// A random start: two Miners on the same extranonce1 and job (a
			// restored session, a replayed test) must not find the same
			// shares.
			m.nonce = rand.Uint32()
		}
		en2 := make([]byte, job.Extranonce2Size)
		var ctr [8]byte
		binary.BigEndian.PutUint64(ctr[:], m.en2Ctr)
		if n := len(en2); n <= 8 {
			copy(en2, ctr[8-n:])
		} else {
			copy(en2[n-8:], ctr[:])
		}
		vbits := deposit(m.en2Ctr, mask)
		root := m.checker.MerkleRoot(&job.Job, job.Extranonce1, en2)
		hdr := pow.Header(&job.Job, &root, job.NTime, 0, pow.RollVersion(job.Version, vbits, mask))
		every := m.algo.checkEvery
		for n := m.nonce; ; n++ {
			pow.PutNonce(&hdr, n)
			h := m.algo.hash(&hdr)
			if pow.MeetsTarget(h, target) {
				m.nonce = n + 1
				return Share{
					JobID: job.ID, Extranonce2: en2, NTime: job.NTime, Nonce: n,
					VersionBits: vbits, Rolling: mask != 0,
					Difficulty: m.algo.difficulty(h), Hash: h, Job: job,
				}, nil
			}
			if n&(every-1) == every-1 {
				if err := ctx.Err(); err != nil {
					m.nonce = n + 1
					return Share{}, err
				}
				if j := m.latest.Load(); j != job {
					job = j
					break
				}
			}
			if n == math.MaxUint32 {
				m.nonce = 0 // nonce space exhausted: next extranonce2
				break
			}
		}

	}
}

// deposit spreads the low bits of v over the set bits of mask (like the
// PDEP instruction): 1 -> the lowest mask bit, 2 -> the next, ...
func deposit(v uint64, mask uint32) uint32 {
	var out uint32
	for bit := uint32(1); mask != 0 && bit != 0; bit <<= 1 {
		if mask&bit == 0 {
			continue
		}
		if v&1 != 0 {
			out |= bit
		}
		v >>= 1
	}
	return out
}

// Submit sends sh as mining.submit with Config.User as the worker and
// waits for the answer: accepted, or the pool's error code and message.
// err is only for transport failures (closed connection, ctx).
func (m *Miner) Submit(ctx context.Context, sh Share) (accepted bool, code int, msg string, err error) {
	p := codec.AppendStringS([]byte{'['}, m.cfg.User)
	p = append(p, ',')
	p = codec.AppendStringS(p, sh.JobID)
	p = append(p, ',')
	p = codec.AppendHexString(p, sh.Extranonce2)
	p = append(p, ',', '"')
	p = pow.AppendHex32(p, sh.NTime)
	p = append(p, '"', ',', '"')
	p = pow.AppendHex32(p, sh.Nonce)
	p = append(p, '"')
	if sh.Rolling || sh.VersionBits != 0 {
		p = append(p, ',', '"')
		p = pow.AppendHex32(p, sh.VersionBits)
		p = append(p, '"')
	}
	p = append(p, ']')
	r, err := m.request(ctx, codec.MethodSubmit, p, m.cfg.SubmitID)
	if err != nil {
		return false, 0, "", err
	}
	if r.isErr {
		return false, r.code, r.msg, nil
	}
	if string(r.result) != "true" {
		return false, 0, fmt.Sprintf("result %s", r.result), nil
	}
	return true, 0, "", nil
}
