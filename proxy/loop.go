package proxy

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/stratum-proxy/stratum-proxy/codec"
)

// eventKind names what a mailbox event asks its loop to do.
type eventKind uint8

const (
	evAnswer         eventKind = iota + 1 // write a pool's answer to a miner's submit (mc, id, ok, code, msg)
	evNotify                              // fan a job out to this loop's members of up (up, job)
	evLine                                // write one pre-encoded line to this loop's members of up, or to mc alone (up, line, mc)
	evVersionMask                         // the pool's version mask changed (up)
	evUpReady                             // up logged in: answer waiting authorizes, send work (up)
	evLoginFailed                         // every pool refused up's login: answer waiting authorizes false (up, msg)
	evGiveUp                              // up has had no working pool for GiveUp: close its miners (up)
	evRelayout                            // up's extranonce layout changed: refit members (up)
	evFlush                               // write up's queued submits to the pool (up; posted to up's loop)
	evUpClose                             // up closed for good: close its socket (up; up's loop)
	evPoolRedial                          // dial up's current target (up; up's loop)
	evPoolDialFailed                      // up's connect failed (up, msg; up's loop)
	evProbeDone                           // a failback probe ended (up, ok; up's loop)
	evUpTick                              // up's housekeeping (up; up's loop)
	evConfigure                           // a member wants version rolling: ask the pool (up; up's loop)
	evChecked                             // a share checked on the worker pool: judge it (mc, chk)
	evSweep                               // housekeeping: timeouts on this loop's connections
	evAdmin                               // a management API question about this loop's miners (admin)
	evRestored                            // a session lookup or takeover ended (mc, x: *restoreResult)
	evTakeover                            // let a session's old connection go for a new one (x: *takeover)
)

// maxInlineID is the longest request id kept inline in an answer slot; real
// miners use small integers, so longer ids (rare) go to a string instead.
const maxInlineID = 38

// event is one message to a loop. It is a plain value so that posting it
// copies a few words into a reused slice and allocates nothing.
type event struct {
	kind eventKind
	ok   bool
	code int32
	seq  uint64 // the share an answer is for, in its miner's answer ring
	mc   *minerConn
	up   *upstream
	job  *job
	line []byte
	chk  *checkTask // a share checked off the loop (evChecked)
	msg  string     // error text of an answer
	x    any        // evAdmin: *adminReq; evRestored: *restoreResult
}

// loop is the proxy's view of one gnet event loop: its mailbox and the
// connections it owns.
type loop struct {
	srv *Server
	idx int
	el  gnet.EventLoop

	mu    sync.Mutex // guards queue and armed only
	queue []event
	armed bool // an Execute is pending for the queue

	// Owned by the loop.
	spare   []event
	conns   []*minerConn // every miner connection on this loop, for sweeps
	msg     codec.Message
	params  [][]byte
	wbuf    []byte // scratch for encoding one line
	dbuf    []byte // scratch for a set_difficulty shared by a fan-out
	tmp     []byte // scratch for unquoting
	scratch []*minerConn
	share   shareReq  // scratch for one share on its way to a pool
	hasher  shareHash // checks shares of sha256d on this loop
}

// post queues ev for the loop. Safe for concurrent use; only the first post
// into an empty queue wakes the loop, so a burst costs one Execute.
func (l *loop) post(ev event) {
	l.mu.Lock()
	l.queue = append(l.queue, ev)
	wake := !l.armed
	l.armed = true
	l.mu.Unlock()
	if wake {
		if err := l.el.Execute(context.Background(), l); err != nil {
			// The engine is shutting down: nothing will run again.
			l.mu.Lock()
			l.queue = l.queue[:0]
			l.armed = false
			l.mu.Unlock()
		}
	}
}

// Run drains the mailbox on the loop. It implements gnet.Runnable.
func (l *loop) Run(context.Context) error {
	l.mu.Lock()
	q := l.queue
	l.queue = l.spare[:0]
	l.armed = false
	l.mu.Unlock()
	for i := range q {
		l.handleSafe(&q[i])
		q[i] = event{} // drop references for the GC
	}
	l.spare = q[:0]
	return nil
}

// handleSafe handles one event; a panic is recovered, counted and ends
// only the connection the event was about.
func (l *loop) handleSafe(ev *event) {
	defer func() {
		if r := recover(); r != nil {
			l.srv.recovered(r, ev.mc, ev.up)
		}
	}()
	l.handle(ev)
}

func (l *loop) handle(ev *event) {
	switch ev.kind {
	case evAnswer:
		ev.mc.deliverAnswer(ev)
	case evNotify:
		ev.up.fanoutNotify(l, ev.job)
	case evLine:
		if ev.mc != nil { // an answer to one miner's relayed request
			if !ev.mc.ending() {
				ev.mc.write(ev.line)
			}
			return
		}
		ev.up.fanoutLine(l, ev.line)
	case evVersionMask:
		ev.up.fanoutVersionMask(l)
	case evUpReady:
		ev.up.onReadyLoop(l)
	case evLoginFailed:
		ev.up.onLoginFailedLoop(l, ev.msg)
	case evGiveUp:
		ev.up.onGiveUpLoop(l)
	case evRelayout:
		ev.up.refitLoop(l)
	case evFlush:
		ev.up.flush()
	case evUpClose:
		ev.up.onUpClose()
	case evPoolRedial:
		ev.up.startDial()
	case evPoolDialFailed:
		ev.up.onDialFailed(ev.msg, ev.ok)
	case evProbeDone:
		ev.up.onProbeDone(ev.ok)
	case evUpTick:
		ev.up.tick(time.Now())
	case evConfigure:
		ev.up.onConfigure()
	case evChecked:
		ev.mc.onChecked(ev.chk)
	case evSweep:
		l.sweep()
	case evAdmin:
		l.onAdmin(ev.x.(*adminReq))
	case evRestored:
		ev.mc.onRestored(ev.x.(*restoreResult))
	case evTakeover:
		l.onTakeover(ev.x.(*takeover))
	}
}

// memberList is the set of one upstream's miner connections on one loop.
// Only that loop touches it; n mirrors len(items) for other goroutines that
// only need to know whether to post.
type memberList struct {
	items []*minerConn
	n     atomic.Int32
}

func (ml *memberList) add(mc *minerConn) {
	mc.listIdx = len(ml.items)
	ml.items = append(ml.items, mc)
	ml.n.Store(int32(len(ml.items)))
}

func (ml *memberList) remove(mc *minerConn) {
	i := mc.listIdx
	if i < 0 || i >= len(ml.items) || ml.items[i] != mc {
		return
	}
	last := len(ml.items) - 1
	ml.items[i] = ml.items[last]
	ml.items[i].listIdx = i
	ml.items[last] = nil
	ml.items = ml.items[:last]
	ml.n.Store(int32(len(ml.items)))
	mc.listIdx = -1
}
