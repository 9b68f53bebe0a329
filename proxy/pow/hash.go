package pow

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"
)

// HeaderSize is the size of a Bitcoin block header.
const HeaderSize = 80

// Offsets of the header fields (version 0, prevhash 4, merkle root 36).
const (
	offNTime = 68
	offNBits = 72
	offNonce = 76
)

// Checker hashes shares. It keeps a reusable SHA-256 state so that Hash
// and MerkleRoot do not allocate.
//
// The zero Checker is ready to use. A Checker is not safe for concurrent
// use: give each goroutine its own (or take them from a sync.Pool).
type Checker struct {
	h    hash.Hash // lazily sha256.New(); reused for every coinbase
	sum  [32]byte
	pair [64]byte // root || branch
}

// MerkleRoot returns the merkle root of job's block with the coinbase
// coinb1 || en1 || en2 || coinb2: sha256d of the coinbase, folded with each
// branch as root = sha256d(root || branch). It does not allocate.
func (c *Checker) MerkleRoot(job *Job, en1, en2 []byte) [32]byte {
	if c.h == nil {
		c.h = sha256.New()
	}
	c.h.Reset()
	c.h.Write(job.Coinb1)
	c.h.Write(en1)
	c.h.Write(en2)
	c.h.Write(job.Coinb2)
	c.h.Sum(c.sum[:0])
	root := sha256.Sum256(c.sum[:])
	for i := range job.Branches {
		copy(c.pair[:32], root[:])
		copy(c.pair[32:], job.Branches[i][:])
		root = Sha256d(c.pair[:])
	}
	return root
}

// Hash returns the sha256d header hash of a share: job's header with the
// merkle root of (en1, en2), the share's ntime and nonce, and the version
// RollVersion(job.Version, versionBits, versionMask). Pass versionMask 0
// when version rolling is not in use. It does not allocate.
//
// Hash does not check that versionBits stays inside versionMask: bits
// outside the mask are ignored, as the formula says. A pool should reject
// such a share before hashing it.
func (c *Checker) Hash(job *Job, en1, en2 []byte, ntime, nonce, versionBits, versionMask uint32) [32]byte {
	root := c.MerkleRoot(job, en1, en2)
	h := Header(job, &root, ntime, nonce, RollVersion(job.Version, versionBits, versionMask))
	return HeaderHash(&h)
}

// RollVersion returns the header version of a BIP310 version-rolling share:
// the job's version outside mask, the miner's bits inside it.
func RollVersion(jobVersion, bits, mask uint32) uint32 {
	return jobVersion&^mask | bits&mask
}

// Header builds the 80-byte block header of job with merkle root root and
// the given ntime, nonce and (already rolled) version, each stored
// little-endian. It does not allocate.
func Header(job *Job, root *[32]byte, ntime, nonce, version uint32) (h [HeaderSize]byte) {
	binary.LittleEndian.PutUint32(h[0:], version)
	copy(h[4:36], job.PrevHash[:])
	copy(h[36:68], root[:])
	binary.LittleEndian.PutUint32(h[offNTime:], ntime)
	binary.LittleEndian.PutUint32(h[offNBits:], job.NBits)
	binary.LittleEndian.PutUint32(h[offNonce:], nonce)
	return h
}

// PutNonce overwrites the nonce of header h: a nonce search builds the
// header once and then only changes these four bytes.
func PutNonce(h *[HeaderSize]byte, nonce uint32) {
	binary.LittleEndian.PutUint32(h[offNonce:], nonce)
}

// HeaderHash returns sha256d(header). It does not allocate.
func HeaderHash(header *[HeaderSize]byte) [32]byte {
	return Sha256d(header[:])
}

// Sha256d returns SHA-256(SHA-256(b)). It does not allocate.
func Sha256d(b []byte) [32]byte {
	first := sha256.Sum256(b)
	return sha256.Sum256(first[:])
}
