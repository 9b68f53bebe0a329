package proxy

import (
	"github.com/stratum-proxy/stratum-proxy/codec"
	"github.com/stratum-proxy/stratum-proxy/metrics"
)

// answerRing keeps one miner's share answers in the order the shares
// came. A share may be answered at once by the proxy (stale, low
// difficulty, duplicate, below the pool's difficulty), later by the pool,
// or after a check on the worker pool (scrypt); the miner still hears the
// answers in its submit order, which cpuminer needs (it uses one request
// id, 4, for every submit and counts answers in order). Owned by the
// miner's loop; no allocation once the ring has grown to the miner's
// in-flight limit.
type answerRing struct {
	slots      []answerSlot
	head, n    int    // slots[head] is the oldest unanswered share; n are in use
	seq        uint64 // sequence number of the next share
	headSeq    uint64 // sequence number of slots[head]
	maxPending int
}

type answerSlot struct {
	done bool
	ok   bool
	code int32
	idn  uint8
	id   [maxInlineID]byte
	long string // the miner's id when longer than maxInlineID
	msg  string
}

// full reports whether another share would pass the in-flight limit.
func (r *answerRing) full() bool { return r.n >= r.maxPending }

// push reserves the next answer for a share with request id and returns
// its sequence number.
func (r *answerRing) push(id []byte) uint64 {
	if r.n == len(r.slots) {
		r.grow()
	}
	i := (r.head + r.n) % len(r.slots)
	s := &r.slots[i]
	*s = answerSlot{}
	if len(id) <= maxInlineID {
		s.idn = uint8(copy(s.id[:], id))
	} else {
		s.idn = 255
		s.long = string(id)
	}
	if r.n == 0 {
		r.headSeq = r.seq
	}
	r.n++
	seq := r.seq
	r.seq++
	return seq
}

func (r *answerRing) grow() {
	size := max(8, 2*len(r.slots))
	slots := make([]answerSlot, size)
	for i := 0; i < r.n; i++ {
		slots[i] = r.slots[(r.head+i)%len(r.slots)]
	}
	r.slots, r.head = slots, 0
}

// settle records the answer of share seq; it reports false for a share
// the ring no longer holds (answered already).
func (r *answerRing) settle(seq uint64, ok bool, code int, msg string) bool {
	if seq < r.headSeq || seq >= r.headSeq+uint64(r.n) {
		return false
	}
	s := &r.slots[(r.head+int(seq-r.headSeq))%len(r.slots)]
	if s.done {
		return false
	}
	s.done, s.ok, s.code, s.msg = true, ok, int32(code), msg
	return true
}

// flush writes the answers that are due, oldest first, and stops at the
// first share still waiting.
func (r *answerRing) flush(mc *minerConn) {
	for r.n > 0 {
		s := &r.slots[r.head]
		if !s.done {
			return
		}
		if !mc.ending() {
			var id []byte
			if s.idn == 255 {
				id = []byte(s.long) // rare: an id longer than maxInlineID
			} else {
				id = s.id[:s.idn]
			}
			l := mc.loop
			l.wbuf = mc.dialect.appendAnswer(l.wbuf[:0], id, s.ok, int(s.code), s.msg)
			if len(l.wbuf) > 0 {
				mc.write(l.wbuf)
			}
		}
		*s = answerSlot{}
		r.head = (r.head + 1) % len(r.slots)
		r.n--
		r.headSeq++
	}
}

// answer settles share seq and writes what is due.
func (mc *minerConn) answer(seq uint64, ok bool, code int, msg string) {
	if mc.answers.settle(seq, ok, code, msg) {
		mc.answers.flush(mc)
	}
}

// beginSubmit takes a share's slot in the answer ring and reports whether
// the share may be judged: past the in-flight limit it is refused at once,
// and a connection that is not mining an authorized session gets its
// answer (msgUnauth in the dialect's words) in its turn.
func (mc *minerConn) beginSubmit(id []byte, msgUnauth string) (uint64, bool) {
	s := mc.sess
	if mc.answers.full() {
		// Past the in-flight limit the answer cannot wait its turn.
		if s != nil && s.worker != nil {
			s.worker.Rejected(metrics.ReasonOverloaded)
		}
		mc.replyError(id, codec.CodeOther, "too many shares in flight")
		return 0, false
	}
	// Every share is answered in submit order.
	seq := mc.answers.push(id)
	switch {
	case s == nil:
		mc.answer(seq, false, codec.CodeNotSubscribed, "not subscribed")
		return seq, false
	case s.up == nil || mc.up == nil || mc.state != stateMining:
		mc.answer(seq, false, codec.CodeUnauthorized, msgUnauth)
		return seq, false
	}
	return seq, true
}
