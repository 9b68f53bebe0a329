package flood

import (
	"sync"

	"github.com/stratum-proxy/stratum-proxy/proxy/pow"
)

// work is a job parsed for hashing (ModeValid). Immutable.
type work struct {
	job pow.Job
}

func parseWork(params [][]byte) (*work, error) {
	j, _, err := pow.ParseNotify(params)
	if err != nil {
		return nil, err
	}
	return &work{job: j}, nil
}

// hashTask is one ModeValid share for a hash worker. Every field is a copy
// or immutable (the job, en1), so workers never touch loop-owned state.
type hashTask struct {
	m       *miner
	seq     uint32 // m.jobSeq when the task was made
	j       *job
	en1     []byte
	en2     uint64
	en2Size int
	target  *[32]byte
	mask    uint32
	vbits   uint32
}

// found is a hash worker's result, handed back to the miner's loop.
type found struct {
	m     *miner
	seq   uint32
	j     *job
	en2   uint64
	nonce uint32
	vbits uint32
	ok    bool
}

// hashStopCheck is how many nonces a worker tries between looks at the
// stop signal: ~1 ms of sha256d on one core.
const hashStopCheck = 4096

// startHashers starts the ModeValid worker pool; they exit on r.hashStop.
func (r *runner) startHashers(wg *sync.WaitGroup) {
	r.hashQ = make(chan hashTask, r.cfg.hashQueue())
	r.hashStop = make(chan struct{})
	for i := 0; i < r.cfg.hashWorkers(); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c pow.Checker
			for {
				select {
				case <-r.hashStop:
					return
				case t := <-r.hashQ:
					f, ok := r.mine(&c, &t)
					if !ok {
						continue // stopping: nobody waits for it
					}
					t.m.sh.post(f)
				}
			}
		}()
	}
}

// mine searches nonces for t, at most MaxHashes of them; ok is false when
// the flood is stopping.
func (r *runner) mine(c *pow.Checker, t *hashTask) (f found, ok bool) {
	f = found{m: t.m, seq: t.seq, j: t.j, en2: t.en2, vbits: t.vbits}
	var scratch [maxExtranonce2]byte
	en2 := scratch[:t.en2Size]
	putCounter(en2, t.en2)
	wj := &t.j.work.job
	root := c.MerkleRoot(wj, t.en1, en2)
	h := pow.Header(wj, &root, wj.NTime, 0, pow.RollVersion(wj.Version, t.vbits, t.mask))
	limit := r.cfg.maxHashes()
	var n uint64
	// Bounded by limit (at most 2^32 nonces exist for one extranonce2).
	for nonce := uint32(0); n < limit; nonce++ {
		pow.PutNonce(&h, nonce)
		n++
		if pow.MeetsTarget(pow.HeaderHash(&h), *t.target) {
			f.nonce, f.ok = nonce, true
			break
		}
		if n%hashStopCheck == 0 {
			if r.stopping.Load() {
				r.st.hashes.Add(int64(n))
				return f, false
			}
		}
		if nonce == ^uint32(0) {
			break
		}
	}
	r.st.hashes.Add(int64(n))
	if f.ok {
		r.st.found.Add(1)
	} else {
		r.st.exhausted.Add(1)
	}
	return f, true
}

// startHash hands the due share to the worker pool (on the miner's loop).
func (m *miner) startHash() {
	sh := m.sh
	r := sh.r
	if m.job == nil || m.job.work == nil {
		return
	}
	t := hashTask{
		m:       m,
		seq:     m.jobSeq,
		j:       m.job,
		en1:     m.en1,
		en2:     m.en2,
		en2Size: m.en2Size,
		target:  sh.targetFor(m.diff),
		mask:    m.mask,
		vbits:   m.job.version & m.mask, // keep the job's version
	}
	select {
	case r.hashQ <- t:
		m.hashing = true
	default:
		r.st.queueFull.Add(1)
		r.st.skippedBacklog.Add(1)
	}
}

// hashDone submits a found share if its miner still mines the same job
// (on the miner's loop).
func (m *miner) hashDone(f *found) {
	r := m.sh.r
	m.hashing = false
	if !f.ok || m.state != stateMining || !r.submitting.Load() {
		return
	}
	if f.seq != m.jobSeq {
		r.st.stale.Add(1)
		return
	}
	if m.npend >= len(m.pend) || m.pend[int(m.nextID)%len(m.pend)].id != 0 {
		r.st.skippedBacklog.Add(1)
		return
	}
	m.submit(f.j, f.en2, f.nonce, f.vbits)
}

// targetFor returns the share target of diff, cached per shard: pow.Target
// allocates, and the miners of a loop nearly always share a difficulty.
// The returned target is immutable.
func (s *shard) targetFor(diff float64) *[32]byte {
	if s.target == nil || s.targetDiff != diff {
		t := pow.Target(diff)
		s.target, s.targetDiff = &t, diff
	}
	return s.target
}
