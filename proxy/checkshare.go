package proxy

import (
	"sync"
	"time"

	"github.com/stratum-proxy/stratum-proxy/codec"
	"github.com/stratum-proxy/stratum-proxy/metrics"
)

// The share check on the miner's path. A checked share is answered by
// what it is:
//
//	malformed, ntime outside the window, version bits outside the mask -> 20
//	unknown or stale job                        -> 21
//	below the miner's difficulty for its job    -> 23
//	seen before on this job                     -> 22
//	meets the miner's difficulty, not the pool's -> true, counted, not sent
//	meets the pool's difficulty                 -> sent; the pool's own answer
//
// so nothing the pool would refuse as low difficulty or duplicate leaves
// the proxy, and one broken miner cannot spoil the shared login's reject
// ratio.

// judge decides a checked share of difficulty d (in the hash's own terms;
// see hashAlgo) on job j, whose miner difficulty is target.
func (mc *minerConn) judge(seq uint64, j *job, sh *shareReq, target, d float64, key *shareKey, err error) {
	if err != nil {
		mc.reject(seq, metrics.ReasonProxyCheck, codec.CodeOther, shareErrText(err))
		return
	}
	if mc.algo == algoScrypt {
		d *= scryptDiffFactor
	}
	if d < target {
		mc.reject(seq, metrics.ReasonLowDifficulty, codec.CodeLowDifficulty, "low difficulty share")
		return
	}
	if j.check.dups.add(key) {
		mc.reject(seq, metrics.ReasonDuplicate, codec.CodeDuplicate, "duplicate share")
		return
	}
	if nd, changed := mc.vd.onShare(time.Now(), target); changed {
		defer mc.retarget(nd) // after this share's answer is settled
	}
	if d >= j.diff {
		mc.forward(seq, sh, target, j.diff)
		return
	}
	mc.sess.worker.Accepted(target)
	mc.answer(seq, true, 0, "")
}

// shareErrText is the miner's answer to a share the check refused.
func shareErrText(err error) string {
	switch err {
	case errNTimeOld:
		return "ntime before the job's"
	case errNTimeFuture:
		return "ntime too far in the future"
	case errVersionBits:
		return "version bits outside the granted mask"
	case errShareFields, errShareEn2Size:
		return "malformed share"
	}
	return "share check failed"
}

// forward sends a share upstream; the miner gets the pool's answer.
func (mc *minerConn) forward(seq uint64, sh *shareReq, minerDiff, poolDiff float64) {
	s := mc.sess
	switch s.up.submit(mc, s, seq, sh, minerDiff, poolDiff) {
	case submitQueued:
		s.worker.Forwarded(poolDiff)
	case submitPoolBusy:
		mc.reject(seq, metrics.ReasonOverloaded, codec.CodeOther, "pool not reading")
	default:
		mc.reject(seq, metrics.ReasonPoolError, codec.CodeOther, "pool not connected")
	}
}

// checkTask is a share checked on the worker pool (scrypt: about a
// millisecond per hash, too slow for the event loop). It owns copies of
// the share's fields: the loop's read buffer is gone by the time it runs.
type checkTask struct {
	mc     *minerConn
	up     *upstream // the upstream it was submitted on
	algo   hashAlgo
	seq    uint64
	j      *job
	target float64
	prefix [4]byte
	in     shareIn
	buf    [64]byte // en2, ntime, nonce and version bits, as sent
	vbitsN int
	d      float64
	key    shareKey
	err    error
}

// checkOffLoop queues a share for the worker pool; its verdict comes back
// to the miner's loop as evChecked. A full queue answers 20 at once.
func (mc *minerConn) checkOffLoop(seq uint64, j *job, in *shareIn, sh *shareReq, target float64) {
	t := &checkTask{mc: mc, up: mc.sess.up, algo: mc.algo, seq: seq, j: j, target: target, in: *in}
	b := t.buf[:0]
	t.in.prefix = t.prefix[:copy(t.prefix[:], in.prefix)]
	b = append(b, in.en2...)
	t.in.en2 = b[:len(in.en2):len(in.en2)]
	b = append(b, in.ntime...)
	t.in.ntime = b[len(t.in.en2):len(b):len(b)]
	n := len(b)
	b = append(b, in.nonce...)
	t.in.nonce = b[n:len(b):len(b)]
	n = len(b)
	b = append(b, sh.vbits...)
	t.vbitsN = len(b) - n
	if !mc.srv.checks.queue(t) {
		mc.reject(seq, metrics.ReasonOverloaded, codec.CodeOther, "proxy busy checking shares")
	}
}

// onChecked judges a share the worker pool hashed, on the miner's loop.
func (mc *minerConn) onChecked(t *checkTask) {
	s := mc.sess
	if mc.ending() || s == nil || s.up != t.up {
		mc.answer(t.seq, false, codec.CodeJobNotFound, "job not found")
		return
	}
	n := len(t.in.en2) + len(t.in.ntime) + len(t.in.nonce)
	sh := shareReq{jobID: t.j.poolID, prefix: s.prefix, en2: t.in.en2, ntime: t.in.ntime, nonce: t.in.nonce}
	if t.vbitsN > 0 {
		sh.vbits = t.buf[n : n+t.vbitsN]
	}
	mc.judge(t.seq, t.j, &sh, t.target, t.d, &t.key, t.err)
}

// checkPool hashes shares off the event loops: a fixed number of workers
// behind a bounded queue. The answers keep each miner's order because
// every share has its place in the miner's answer ring.
type checkPool struct {
	tasks    chan *checkTask
	done     chan struct{}
	stopOnce sync.Once
}

func newCheckPool(workers, depth int) *checkPool {
	p := &checkPool{tasks: make(chan *checkTask, depth), done: make(chan struct{})}
	for range workers {
		go p.work()
	}
	return p
}

// queue hands t to a worker without blocking; false when the queue is full.
func (p *checkPool) queue(t *checkTask) bool {
	select {
	case <-p.done:
		return false
	case p.tasks <- t:
		return true
	default:
		return false
	}
}

func (p *checkPool) work() {
	var h shareHash
	for {
		select {
		case <-p.done:
			return
		case t := <-p.tasks:
			t.d, t.key, t.err = h.shareDifficulty(t.j, t.j.check, t.algo, &t.in)
			t.mc.loop.post(event{kind: evChecked, mc: t.mc, chk: t})
		}
	}
}

// stop ends the workers; shares queued after it are refused.
func (p *checkPool) stop() { p.stopOnce.Do(func() { close(p.done) }) }
