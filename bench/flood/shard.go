package flood

import (
	"bytes"
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/panjf2000/gnet/v2"

	"github.com/stratum-proxy/stratum-proxy/codec"
)

// jobCacheSize is how many distinct notify params a shard keeps parsed.
// Every miner of a loop gets the same few notifies (a proxy may send a
// couple of variants of one job), so a handful of entries turns 9,000
// parses per notify into one.
const jobCacheSize = 8

// job is one mining.notify as the miners of a shard see it. Immutable once
// built: hash workers read it concurrently.
type job struct {
	raw     []byte // a copy of the notify params; id and ntime alias it
	id      []byte // raw JSON token of the job id, quotes included
	ntime   []byte // raw JSON token of ntime
	version uint32
	first   int64 // run clock when any miner of the flood first got this job id
	sent    int64 // run clock when the pool sent it (Config.NotifySentAt)
	hasSent bool
	work    *work // ModeValid only: the parsed job for hashing
}

// shard is the flood's state for one gnet event loop.
type shard struct {
	// Static after construction.
	r  *runner
	el gnet.EventLoop

	// Owned by the event loop.
	miners     []*miner
	dirty      bool // some miners closed: compact miners on the next tick
	rng        *rand.Rand
	msg        codec.Message
	params     [][]byte
	wbuf       []byte // output line scratch
	params0    []byte // params / unquote scratch
	jobs       [jobCacheSize]*job
	jobNext    int
	done       []found   // drained inbox, reused
	target     *[32]byte // ModeValid: share target of targetDiff
	targetDiff float64

	// tickQueued is set while a tick is queued on the loop, so a lagging
	// loop never has more than one.
	tickQueued atomic.Bool

	// mu guards inbox: shares found by hash workers, waiting for the loop.
	mu    sync.Mutex
	inbox []found
}

// Run is the periodic tick, executed on the shard's event loop.
func (s *shard) Run(context.Context) error {
	s.tickQueued.Store(false)
	s.tick()
	return nil
}

func (s *shard) tick() {
	if s.dirty {
		s.compact()
	}
	r := s.r
	if !r.submitting.Load() || r.interval <= 0 {
		return
	}
	now := r.now()
	// Bounded by len(s.miners); a failed write only marks its miner closed.
	for _, m := range s.miners {
		m.schedule(now, r.interval)
	}
}

// compact drops closed miners, keeping order.
func (s *shard) compact() {
	s.dirty = false
	k := 0
	for _, m := range s.miners {
		if m.state != stateClosed {
			s.miners[k] = m
			k++
		}
	}
	clear(s.miners[k:])
	s.miners = s.miners[:k]
}

// lookupJob returns the job for notify params, parsing and registering it
// with the fan-out tracker if it is new to this shard; arrived is the run
// clock read under the tracker's lock for a new job, else 0.
func (s *shard) lookupJob(params []byte) (j *job, arrived int64, err error) {
	for _, c := range s.jobs {
		if c != nil && bytes.Equal(c.raw, params) {
			return c, 0, nil
		}
	}
	j = &job{raw: bytes.Clone(params)}
	p, err := codec.SplitArray(j.raw, s.params[:0])
	s.params = p[:0]
	if err != nil || len(p) < 9 {
		return nil, 0, errBadParams
	}
	if _, err := codec.Unquote(p[0], nil); err != nil {
		return nil, 0, errBadParams
	}
	if _, err := codec.ParseUint32Hex(p[7]); err != nil {
		return nil, 0, errBadParams
	}
	if j.version, err = codec.ParseUint32Hex(p[5]); err != nil {
		return nil, 0, errBadParams
	}
	j.id, j.ntime = p[0], p[7]
	if s.r.cfg.mode() == ModeValid {
		if j.work, err = parseWork(p); err != nil {
			return nil, 0, err
		}
	}
	arrived = s.r.tracker.register(j)
	s.jobs[s.jobNext] = j
	s.jobNext = (s.jobNext + 1) % jobCacheSize
	return j, arrived, nil
}

// post queues a found share for the loop; only the post into an empty
// inbox wakes the loop, so a burst costs one Execute.
func (s *shard) post(f found) {
	s.mu.Lock()
	wake := len(s.inbox) == 0
	s.inbox = append(s.inbox, f)
	s.mu.Unlock()
	if wake {
		_ = s.el.Execute(context.Background(), gnet.RunnableFunc(s.drainInbox))
	}
}

func (s *shard) drainInbox(context.Context) error {
	s.mu.Lock()
	s.done, s.inbox = s.inbox, s.done[:0]
	s.mu.Unlock()
	for i := range s.done {
		s.done[i].m.hashDone(&s.done[i])
		s.done[i] = found{}
	}
	s.done = s.done[:0]
	return nil
}

// tracker remembers, for the last few job ids, when the first miner of the
// flood got each: the fan-out reference. Safe for concurrent use.
type tracker struct {
	sentAt func([]byte) (int64, bool) // nil without Config.NotifySentAt
	now    func() int64

	mu   sync.Mutex
	ring [trackerSize]trackEntry
	next int
}

// trackerSize bounds the job ids remembered; pools rotate far fewer jobs
// than this within the seconds a fan-out takes.
const trackerSize = 64

type trackEntry struct {
	id      []byte
	first   int64
	sent    int64
	hasSent bool
}

// register fills j.first (and j.sent) from the entry of its id, creating
// one stamped with the current time; it returns that time.
func (t *tracker) register(j *job) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for i := range t.ring {
		e := &t.ring[i]
		if e.id != nil && bytes.Equal(e.id, j.id) {
			j.first, j.sent, j.hasSent = e.first, e.sent, e.hasSent
			return now
		}
	}
	e := &t.ring[t.next]
	t.next = (t.next + 1) % trackerSize
	*e = trackEntry{id: append(e.id[:0], j.id...), first: now}
	if t.sentAt != nil {
		if id, err := codec.Unquote(j.id, nil); err == nil {
			e.sent, e.hasSent = t.sentAt(id)
		}
	}
	j.first, j.sent, j.hasSent = e.first, e.sent, e.hasSent
	return now
}
