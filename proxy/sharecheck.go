package proxy

// Share checking at the proxy: a share's difficulty from its job, without
// allocating per share (sha256d), the ntime window, and per-job duplicate
// detection. The share path (handleSubmit) is expected to use them as:
//
//	w, err := j.check.work(j)                   // decoded once per job, shared
//	k, err := newShareKey(w, &in)               // decode + version bits vs mask
//	err = w.checkNTime(k.ntime)                 // window [job ntime, +2h]
//	d, err := l.hasher.difficulty(w, &k, algo)  // per loop, 0 allocs for sha256d
//	if d >= minerDiff && j.check.dups.add(&k) { /* 22 duplicate */ }
//
// Integration note: a job carries one *jobCheck (made in newJob, shared by
// resent, which is the same pool job), so both are dropped with the job.

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/stratum-proxy/stratum-proxy/codec"
	"github.com/stratum-proxy/stratum-proxy/proxy/pow"
)

// Errors of the share check, each answered to the miner as it is.
var (
	errShareFields  = errors.New("proxy: share: extranonce2, ntime or nonce malformed")
	errShareEn2Size = errors.New("proxy: share: prefix, extranonce2 and padding exceed 16 bytes")
	errVersionBits  = errors.New("proxy: share: version bits outside the granted mask")
	errNTimeOld     = errors.New("proxy: share: ntime before the job's ntime")
	errNTimeFuture  = errors.New("proxy: share: ntime more than 2 hours after the job's ntime")
	errUnknownAlgo  = errors.New("proxy: share: algorithm not checked at the proxy")
)

// hashAlgo is the proof-of-work function the pool hashes a header with.
type hashAlgo uint8

const (
	// algoSHA256d is Bitcoin's sha256(sha256(header)), difficulty 1 =
	// pow.Diff1.
	algoSHA256d hashAlgo = iota
	// algoScrypt is Litecoin's scrypt(header, header, N=1024, r=1, p=1,
	// 32 bytes). Its stratum pools take difficulty 1 as 2^16 expected
	// hashes, not 2^32 (a difficulty-1 target 65536 times sha256d's):
	// difficulty returns the raw Diff1/hash like sha256d, and the caller
	// compares it with the pool's difficulty divided by scryptDiffFactor
	// (cpuminer's diff/65536); raw*scryptDiffFactor is the difficulty in
	// the pool's terms.
	algoScrypt
)

// scryptDiffFactor is the divider of a scrypt pool's difficulty: a share
// of pool difficulty d meets Diff1/hash >= d/scryptDiffFactor (stratum
// scrypt pools use a difficulty-1 target 2^16 times the sha256d one).
const scryptDiffFactor = pow.ScryptDiffFactor

func (a hashAlgo) String() string {
	switch a {
	case algoSHA256d:
		return "sha256d"
	case algoScrypt:
		return "scrypt"
	}
	return "unknown"
}

// ntimeFuture is how far past the job's ntime a share's ntime may roll:
// Bitcoin nodes refuse a block more than 2 hours ahead of their clock
// (MAX_FUTURE_BLOCK_TIME = 7200 s), so a pool does too.
const ntimeFuture = 7200

// jobWork is a job decoded for hashing: built once per job, immutable
// after publication, shared by every loop.
type jobWork struct {
	// pj.Coinb1 is coinb1 || en1 (the pool's extranonce1) decoded;
	// pj.Coinb2 is coinb2 without the padding F.
	pj pow.Job
}

// jobCheck is the share-checking state of one pool job: the decoded form,
// built on the first share, and the keys of the shares seen on it. Safe
// for concurrent use by several loops. The zero value is ready to use.
type jobCheck struct {
	w    atomic.Pointer[jobWork] // published once, never replaced
	dups dupSet
}

// work returns j's decoded form, decoding it on first use. Two loops
// racing on the first share may both decode; one result is kept and both
// see it. It allocates only on that first call.
func (c *jobCheck) work(j *job) (*jobWork, error) {
	if w := c.w.Load(); w != nil {
		return w, nil
	}
	w, err := decodeJobWork(j)
	if err != nil {
		return nil, err
	}
	if !c.w.CompareAndSwap(nil, w) {
		w = c.w.Load()
	}
	return w, nil
}

// decodeJobWork decodes j's raw notify pieces through pow.ParseNotify, the
// conventions the pow tests prove on real shares, with coinb1 || en1 as
// coinb1. newJob has validated every piece, so an error here means a job
// built some other way.
func decodeJobWork(j *job) (*jobWork, error) {
	cb1 := make([]byte, 0, len(j.coinb1)+len(j.en1)+2)
	cb1 = append(cb1, '"')
	cb1 = append(cb1, j.coinb1...)
	cb1 = append(cb1, j.en1...)
	cb1 = append(cb1, '"')
	cb2 := make([]byte, 0, len(j.coinb2)+2)
	cb2 = append(append(append(cb2, '"'), j.coinb2...), '"')
	pj, _, err := pow.ParseNotify([][]byte{j.poolID, j.prevhash, cb1, cb2, j.branches, j.version, j.nbits, j.ntime})
	if err != nil {
		return nil, err
	}
	return &jobWork{pj: pj}, nil
}

// checkNTime reports whether ntime lies in the job's window
// [job ntime, job ntime + ntimeFuture], with an error saying which side
// it left.
func (w *jobWork) checkNTime(ntime uint32) error {
	switch {
	case ntime < w.pj.NTime:
		return errNTimeOld
	case uint64(ntime) > uint64(w.pj.NTime)+ntimeFuture:
		return errNTimeFuture
	}
	return nil
}

// shareIn is a submitted share as the miner's loop holds it after
// handleSubmit's checks. The slices alias the loop's read buffer: valid
// until the callback returns.
type shareIn struct {
	prefix []byte // the miner's extranonce prefix P (bytes)
	en2    []byte // the miner's extranonce2 X, hex digits without quotes, as sent
	pad    int    // zero bytes F after X
	ntime  []byte // raw JSON, quoted 8-digit hex as sent
	nonce  []byte // raw JSON, quoted 8-digit hex as sent
	vbits  uint32 // version bits as sent; 0 without version rolling
	mask   uint32 // the version-rolling mask granted; 0 without
}

// shareKey is a share decoded: everything that makes it unique within its
// job, the way a pool decides duplicates, and everything that goes into
// its header besides the job. It is a value: no pointers into buffers.
type shareKey struct {
	en2     [maxPad]byte // the upstream extranonce2 P || X || F, zero past n
	n       uint8        // its length
	ntime   uint32
	nonce   uint32
	version uint32 // the header version, rolled: (job &^ mask) | (bits & mask)
}

// newShareKey decodes in against job w. It does not allocate.
func newShareKey(w *jobWork, in *shareIn) (shareKey, error) {
	var k shareKey
	x := len(in.en2) / 2
	n := len(in.prefix) + x + in.pad
	if in.pad < 0 || n > maxPad {
		return k, errShareEn2Size
	}
	if len(in.en2)%2 != 0 || !isQuotedHex(in.ntime, 8) || !isQuotedHex(in.nonce, 8) {
		return k, errShareFields
	}
	copy(k.en2[:], in.prefix)
	if _, err := hex.Decode(k.en2[len(in.prefix):], in.en2); err != nil {
		return k, errShareFields
	}
	// k.en2[len(prefix)+x:n] is F: already zero.
	k.n = uint8(n)
	var err error
	if k.ntime, err = codec.ParseUint32Hex(in.ntime); err != nil {
		return k, errShareFields
	}
	if k.nonce, err = codec.ParseUint32Hex(in.nonce); err != nil {
		return k, errShareFields
	}
	if in.vbits&^in.mask != 0 {
		return k, errVersionBits
	}
	k.version = pow.RollVersion(w.pj.Version, in.vbits, in.mask)
	return k, nil
}

// shareHash hashes shares. It keeps the reusable state that makes the
// sha256d path allocation-free. Not safe for concurrent use: one per event
// loop. The zero value is ready to use.
type shareHash struct {
	c pow.Checker
	// Copies of the key's extranonce2 and of the header: hashing a stack
	// copy through the hash.Hash interface or scrypt.Key would move it
	// to the heap on every share.
	en2 [maxPad]byte
	hdr [pow.HeaderSize]byte
}

// shareDifficulty is the whole per-share check short of the target and
// duplicate decisions: j's decoded form (c is j's jobCheck), the share
// decoded and its version bits checked against the mask, its ntime window,
// then its difficulty as difficulty returns it. The key is for the
// duplicate check. After the job's first share it does not allocate for
// sha256d.
func (sh *shareHash) shareDifficulty(j *job, c *jobCheck, a hashAlgo, in *shareIn) (float64, shareKey, error) {
	w, err := c.work(j)
	if err != nil {
		return 0, shareKey{}, err
	}
	k, err := newShareKey(w, in)
	if err != nil {
		return 0, k, err
	}
	if err := w.checkNTime(k.ntime); err != nil {
		return 0, k, err
	}
	d, err := sh.difficulty(w, &k, a)
	return d, k, err
}

// hash returns the proof-of-work hash of share k on job w with algorithm
// a, as a 256-bit little-endian integer (pow's convention).
//
// Cost (BenchmarkShare*, one core of the 2-core CI machine): sha256d
// 2.4 µs on a job without branches, 8.7 µs with 12 branches, no
// allocation. scrypt about 1.1 ms and 28 allocations (133 KB) per share,
// all inside golang.org/x/crypto/scrypt (its 128*r*N-byte scratch and
// PBKDF2 state): too slow for the event loop at any real share rate, it
// belongs on a bounded worker pool.
func (sh *shareHash) hash(w *jobWork, k *shareKey, a hashAlgo) ([32]byte, error) {
	sh.en2 = k.en2
	root := sh.c.MerkleRoot(&w.pj, nil, sh.en2[:k.n])
	sh.hdr = pow.Header(&w.pj, &root, k.ntime, k.nonce, k.version)
	switch a {
	case algoSHA256d:
		return pow.HeaderHash(&sh.hdr), nil
	case algoScrypt:
		return pow.ScryptHash(&sh.hdr), nil
	}
	return [32]byte{}, errUnknownAlgo
}

// difficulty returns the share difficulty of k: pow.Diff1 / hash, the
// highest difficulty it meets. For algoScrypt multiply by
// scryptDiffFactor to get it in a scrypt pool's terms.
func (sh *shareHash) difficulty(w *jobWork, k *shareKey, a hashAlgo) (float64, error) {
	h, err := sh.hash(w, k, a)
	if err != nil {
		return 0, err
	}
	return pow.Difficulty(h), nil
}

// maxDupKeys bounds the share keys a job remembers. A job is mined for
// about a minute; 65536 shares is 1,000 miners at the top rate of
// 20 shares a minute for over 3 minutes, in about 1.2 MB (an 8-byte key in
// the map and in the ring).
const maxDupKeys = 1 << 16

// dupSet remembers the shares seen on one job, to answer a resubmitted
// share 22 instead of sending the pool a duplicate. It is bounded: past
// maxDupKeys it forgets the oldest key for each new one (a miner
// resubmits recent shares, after a reconnect; an old share slipping
// through is rejected by the pool, no worse than without the check, while
// a set that stopped remembering would let every later duplicate through).
//
// Keys are kept as 64-bit seeded hashes (hash/maphash, a random seed per
// job so no miner can aim at a collision): a new share is taken for a
// duplicate by mistake with probability below 2^16/2^64 = 2^-48.
//
// Safe for concurrent use; the lock is per job (a map operation under it),
// never global. The zero value is ready to use; memory grows with use.
type dupSet struct {
	mu   sync.Mutex
	seed maphash.Seed        // set on first use; guarded by mu
	seen map[uint64]struct{} // guarded by mu
	ring []uint64            // insertion order, up to maxDupKeys; guarded by mu
	next int                 // once the ring is full, its oldest entry; guarded by mu
}

// add records k and reports whether it had been seen already (a
// duplicate, which is not recorded again).
func (d *dupSet) add(k *shareKey) (dup bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.seen == nil {
		d.seed = maphash.MakeSeed()
		d.seen = make(map[uint64]struct{})
	}
	h := k.sum(d.seed)
	if _, ok := d.seen[h]; ok {
		return true
	}
	if len(d.ring) < maxDupKeys {
		d.ring = append(d.ring, h)
	} else {
		delete(d.seen, d.ring[d.next])
		d.ring[d.next] = h
		d.next = (d.next + 1) % maxDupKeys
	}
	d.seen[h] = struct{}{}
	return false
}

// len returns how many keys d remembers.
func (d *dupSet) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.seen)
}

// sum hashes k with seed. It does not allocate.
func (k *shareKey) sum(seed maphash.Seed) uint64 {
	var b [maxPad + 1 + 12]byte
	copy(b[:], k.en2[:])
	b[maxPad] = k.n
	binary.LittleEndian.PutUint32(b[maxPad+1:], k.ntime)
	binary.LittleEndian.PutUint32(b[maxPad+5:], k.nonce)
	binary.LittleEndian.PutUint32(b[maxPad+9:], k.version)
	return maphash.Bytes(seed, b[:])
}
