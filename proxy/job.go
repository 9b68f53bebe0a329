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

var errBadNotify = errors.New("proxy: malformed mining.notify from pool")

// job is one mining.notify from the pool. It is immutable once published,
// except for its lazily encoded lines, which are published atomically.
type job struct {
	id       []byte  // raw JSON job id, quotes included
	diff     float64 // the pool difficulty in force when the job arrived
	clean    bool    // clean_jobs as forwarded (forced true after a reconnect)
	received time.Time

	// Raw JSON pieces of the pool's params (copies); coinb1/coinb2/en1 are
	// hex text without quotes.
	prevhash, branches, version, nbits, ntime []byte
	coinb1, coinb2, en1                       []byte

	mu    sync.Mutex                            // serializes encoding only
	lines [maxPad + 1][2]atomic.Pointer[[]byte] // [pad][clean] -> notify line
}

// newJob copies a notify's params (SplitArray elements of the pool's line)
// into a job. en1 is the upstream's extranonce1 as hex.
func newJob(p [][]byte, en1 []byte, diff float64, forceClean bool, now time.Time, tmp []byte) (*job, error) {
	if len(p) < 9 {
		return nil, errBadNotify
	}
	coinb1, err := hexParam(p[2], tmp)
	if err != nil {
		return nil, err
	}
	n := len(p[0]) + len(p[1]) + len(coinb1) + len(p[4]) + len(p[5]) + len(p[6]) + len(p[7]) + len(en1)
	coinb2, err := codec.Unquote(p[3], nil)
	if err != nil || !isHex(coinb2) {
		return nil, errBadNotify
	}
	clean, err := codec.ParseBool(p[8])
	if err != nil {
		return nil, errBadNotify
	}
	buf := make([]byte, 0, n+len(coinb2))
	cut := func(b []byte) []byte {
		s := len(buf)
		buf = append(buf, b...)
		return buf[s:len(buf):len(buf)]
	}
	j := &job{diff: diff, clean: clean || forceClean, received: now}
	j.id = cut(p[0])
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
	b := make([]byte, 0, 96+len(j.id)+len(j.prevhash)+len(j.coinb1)+len(j.en1)+2*pad+len(j.coinb2)+
		len(j.branches)+len(j.version)+len(j.nbits)+len(j.ntime))
	b = append(b, `{"id":null,"method":"mining.notify","params":[`...)
	b = append(b, j.id...)
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
		b = append(b, ",true]}\n"...)
	} else {
		b = append(b, ",false]}\n"...)
	}
	j.lines[pad][c].Store(&b)
	return b
}

// jobSet is an immutable snapshot of an upstream's recent jobs, newest last.
type jobSet struct {
	jobs []*job
}

// maxJobs is how many recent jobs an upstream remembers to look up the
// difficulty a share was mined at; pools keep fewer than this valid.
const maxJobs = 16

func (s *jobSet) with(j *job) *jobSet {
	n := &jobSet{jobs: make([]*job, 0, maxJobs)}
	if s != nil {
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
