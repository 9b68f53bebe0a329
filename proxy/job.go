package proxy

import (
	"bytes"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratum-proxy/stratum-proxy/codec"
)

// maxPad bounds the zero padding F = N-k-m moved into coinb2; pools give at
// most 16 extranonce2 bytes in practice, so 16 covers every layout.
const maxPad = 16

var (
	errBadNotify     = errors.New("proxy: malformed mining.notify from pool")
	errBadDifficulty = errors.New("proxy: mining.set_difficulty not a finite difficulty in (0, Diff1]")
)

// job is one mining.notify from the pool. It is immutable once published,
// except for its lazily encoded lines, which are published atomically.
type job struct {
	id       []byte  // raw JSON job id the miners see: the connection tag, then the pool's id
	poolID   []byte  // raw JSON job id of the pool, quotes included
	diff     float64 // the pool difficulty in force when the job was sent to miners
	clean    bool    // clean_jobs as forwarded (forced true after a reconnect)
	received time.Time

	// Raw JSON pieces of the pool's params (copies); coinb1/coinb2/en1 are
	// hex text without quotes.
	prevhash, branches, version, nbits, ntime []byte
	coinb1, coinb2, en1                       []byte

	check *jobCheck // share checking state, shared by resent copies
	alt   *altWork  // the work of a dialect other than stratum v1

	mu    sync.Mutex                            // serializes encoding only
	lines [maxPad + 1][2]atomic.Pointer[[]byte] // [pad][clean] -> notify line
}

// newJob checks a notify's params (SplitArray elements of the pool's line)
// and copies them into a job. en1 is the upstream's extranonce1 as hex and
// tag the connection's job id prefix. A notify that a miner could not mine
// on (a field of the wrong type or size) is refused with errBadNotify, so
// nothing the proxy would itself reject a share for reaches a miner.
func newJob(p [][]byte, en1, tag []byte, diff float64, forceClean bool, now time.Time, tmp []byte) (*job, error) {
	if len(p) < 9 || !isQuotedHex(p[0], 0) || len(p[0]) > maxJobIDLen ||
		!isQuotedHex(p[1], 64) || !isQuotedHex(p[5], 8) || !isQuotedHex(p[6], 8) || !isQuotedHex(p[7], 8) ||
		!validBranches(p[4]) {
		return nil, errBadNotify
	}
	coinb1, err := hexParam(p[2], tmp)
	if err != nil {
		return nil, err
	}
	coinb2, err := codec.Unquote(p[3], nil)
	if err != nil || !isHex(coinb2) {
		return nil, errBadNotify
	}
	clean, err := codec.ParseBool(p[8])
	if err != nil {
		return nil, errBadNotify
	}
	n := len(tag) + 2*len(p[0]) + len(p[1]) + len(coinb1) + len(coinb2) + len(p[4]) + len(p[5]) + len(p[6]) + len(p[7]) + len(en1)
	buf := make([]byte, 0, n)
	cut := func(parts ...[]byte) []byte {
		s := len(buf)
		for _, b := range parts {
			buf = append(buf, b...)
		}
		return buf[s:len(buf):len(buf)]
	}
	j := &job{diff: diff, clean: clean || forceClean, received: now, check: new(jobCheck)}
	j.poolID = cut(p[0])
	j.id = cut([]byte{'"'}, tag, p[0][1:])
	j.prevhash = cut(p[1])
	j.coinb1 = cut(coinb1)
	j.coinb2 = cut(coinb2)
	j.branches = cut(p[4])
	j.version = cut(p[5])
	j.nbits = cut(p[6])
	j.ntime = cut(p[7])
	j.en1 = cut(en1)
	return j, nil
}

// maxJobIDLen bounds a pool's job id (quotes included); real pools use 1
// to 16 characters.
const maxJobIDLen = 66

// validBranches reports whether raw is a JSON array of 64-digit hex strings.
func validBranches(raw []byte) bool {
	var tmp [16][]byte
	bs, err := codec.SplitArray(raw, tmp[:0])
	if err != nil || len(bs) > 32 {
		return false
	}
	for _, b := range bs {
		if !isQuotedHex(b, 64) {
			return false
		}
	}
	return true
}

// resent returns a copy of j sent again under difficulty diff and clean
// flag clean (a keepalive, or the pool's new difficulty without a new job).
// It shares j's immutable fields, not its encoded lines.
func (j *job) resent(diff float64, clean bool, now time.Time) *job {
	return &job{
		id: j.id, poolID: j.poolID, diff: diff, clean: clean, received: now,
		prevhash: j.prevhash, branches: j.branches, version: j.version, nbits: j.nbits, ntime: j.ntime,
		coinb1: j.coinb1, coinb2: j.coinb2, en1: j.en1, check: j.check, alt: j.alt,
	}
}

// altWork is the work of an EthereumStratum or CryptoNote job, raw JSON
// values as the pool sent them (quotes included) unless said otherwise.
type altWork struct {
	// EthereumStratum/1.0.0: mining.notify [job_id, seedhash, headerhash, clean].
	// en is the pool's extranonce (hex) the job was published under: a
	// new one starts a new generation of jobs.
	seed, header, en []byte
	// CryptoNote: the blob (decoded; byte 42 is the nonce's top byte),
	// target, algo, height and seed_hash.
	blob                      []byte
	target, algo, height, sdh []byte
}

// newAltJob makes a job of another dialect with the pool's job id poolID
// (raw JSON string) under the connection's tag.
func newAltJob(poolID, tag []byte, diff float64, clean bool, now time.Time, w *altWork) *job {
	id := make([]byte, 0, 1+len(tag)+len(poolID))
	id = append(append(append(id, '"'), tag...), poolID[1:]...)
	return &job{id: id, poolID: append([]byte(nil), poolID...), diff: diff, clean: clean, received: now,
		check: new(jobCheck), alt: w}
}

// sameWork reports whether o is j or a copy of it sent again.
func (j *job) sameWork(o *job) bool { return o != nil && o.check == j.check }

// line returns the miner-facing notify for padding pad, encoding it once.
// The result is shared by every miner with that padding and never modified.
func (j *job) line(pad int, clean bool) []byte {
	c := 0
	if clean {
		c = 1
	}
	if p := j.lines[pad][c].Load(); p != nil {
		return *p
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if p := j.lines[pad][c].Load(); p != nil {
		return *p
	}
	b := j.appendLine(nil, j.id, pad, clean)
	j.lines[pad][c].Store(&b)
	return b
}

// appendLine appends j's notify for padding pad under job id id (raw JSON).
func (j *job) appendLine(b, id []byte, pad int, clean bool) []byte {
	if b == nil {
		b = make([]byte, 0, 96+len(id)+len(j.prevhash)+len(j.coinb1)+len(j.en1)+2*pad+len(j.coinb2)+
			len(j.branches)+len(j.version)+len(j.nbits)+len(j.ntime))
	}
	b = append(b, `{"id":null,"method":"mining.notify","params":[`...)
	b = append(b, id...)
	b = append(b, ',')
	b = append(b, j.prevhash...)
	b = append(b, ',', '"')
	b = append(b, j.coinb1...)
	b = append(b, j.en1...)
	b = append(b, '"', ',', '"')
	for i := 0; i < pad; i++ {
		b = append(b, '0', '0')
	}
	b = append(b, j.coinb2...)
	b = append(b, '"', ',')
	b = append(b, j.branches...)
	b = append(b, ',')
	b = append(b, j.version...)
	b = append(b, ',')
	b = append(b, j.nbits...)
	b = append(b, ',')
	b = append(b, j.ntime...)
	if clean {
		return append(b, ",true]}\n"...)
	}
	return append(b, ",false]}\n"...)
}

// jobSet is an immutable snapshot of an upstream's recent jobs, newest last.
type jobSet struct {
	jobs []*job
}

// maxJobs is how many recent jobs an upstream remembers to look up the
// difficulty a share was mined at; pools keep fewer than this valid.
const maxJobs = 16

// with returns the set plus j; a clean job starts a new set, since the
// pool has just invalidated every older one.
func (s *jobSet) with(j *job) *jobSet {
	n := &jobSet{jobs: make([]*job, 0, maxJobs)}
	if s != nil && !j.clean {
		old := s.jobs
		if len(old) >= maxJobs {
			old = old[len(old)-maxJobs+1:]
		}
		n.jobs = append(n.jobs, old...)
	}
	n.jobs = append(n.jobs, j)
	return n
}

// find returns the job with raw id, newest first.
func (s *jobSet) find(id []byte) *job {
	if s == nil {
		return nil
	}
	for i := len(s.jobs) - 1; i >= 0; i-- {
		if bytes.Equal(s.jobs[i].id, id) {
			return s.jobs[i]
		}
	}
	return nil
}

// holds reports whether j (or a copy of it sent again) is still in the
// set: its pool has not made it stale.
func (s *jobSet) holds(j *job) bool {
	if s == nil {
		return false
	}
	for _, o := range s.jobs {
		if o.sameWork(j) {
			return true
		}
	}
	return false
}

func (s *jobSet) last() *job {
	if s == nil || len(s.jobs) == 0 {
		return nil
	}
	return s.jobs[len(s.jobs)-1]
}

func hexParam(raw, tmp []byte) ([]byte, error) {
	s, err := codec.Unquote(raw, tmp)
	if err != nil || !isHex(s) {
		return nil, errBadNotify
	}
	return s, nil
}

func isHex(b []byte) bool {
	if len(b)%2 != 0 {
		return false
	}
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}
