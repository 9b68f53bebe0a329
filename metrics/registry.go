package metrics

import (
	"sync"
	"sync/atomic"
	"time"
)

// Registry holds the series of one proxy: its workers, the totals that outlive them, pool
// state and proxy health. Several Registries may live in one process (tests run several
// proxies); the package keeps no mutable state of its own.
//
// All methods are safe for concurrent use. The ones the proxy calls per share or per event
// (ShareRTT, NotifyFanout, MinersConnected, UpstreamsConnected, SessionsInGrace, Panic, Dropped
// with a declared reason) are atomics that do not allocate. NewWorker, Worker.Close,
// Worker.MoveTo and the pool methods (PoolInUse, PoolLogin, UpstreamAttempt, PoolInvalid) take
// the registry's lock: they run per session or per pool event.
//
// A nil *Registry ignores every call, and its NewWorker returns a nil *Worker.
type Registry struct {
	// Static after New.
	cfg      Config
	window   time.Duration
	step     time.Duration
	slots    int // Window/Step
	maxLabel int
	now      func() time.Time

	tag atomic.Pointer[string] // the `proxy` label value, cleaned

	// Updated atomically from any goroutine.
	miners       atomic.Int64
	upstreams    atomic.Int64
	inGrace      atomic.Int64
	usersExpired atomic.Uint64
	drops        [len(dropReasons)]atomic.Uint64
	panics       [len(panicWheres)]atomic.Uint64
	fanout       histogram
	rtt          histogram

	mu sync.Mutex
	// Guarded by mu.
	workers    []*Worker          // live workers, in no particular order (Close swap-removes)
	live       map[string]*Worker // by `worker,user` label text: keeps label sets unique
	groups     map[groupKey]*group
	groupList  []*group // creation order: the exposition order
	pools      map[poolKey]*pool
	poolList   []*pool
	algs       map[string]*alg
	algList    []*alg
	endpoints  map[string]*endpoint // by cleaned pool address
	epList     []*endpoint          // creation order: the exposition order
	extraDrops []*extraDrop         // undeclared drop reasons, at most maxExtraDrops
	hist       history              // guarded by mu
	tickSpeeds []float64            // Tick's scratch, per group

	// The ticker goroutine; guarded by runMu.
	runMu sync.Mutex
	stop  chan struct{}
	done  chan struct{}
}

// group is one (user, hash, pool): the key of the per-user totals.
type group struct {
	i       int      // index in Registry.groupList
	key     groupKey // cleaned label values
	labels  string   // `user="..",hash="..",pool=".."`
	pool    *pool
	retired totals  // counts of closed workers; guarded by Registry.mu
	speed   float64 // sum of its workers' speeds at the last Tick; guarded by Registry.mu
}

type groupKey struct{ user, hash, pool string }

// alg is one hash.
type alg struct {
	i      int
	labels string // `hash=".."`
}

type extraDrop struct {
	labels string // `reason=".."`
	n      atomic.Uint64
}

// New returns a Registry configured by cfg. It panics if cfg.Validate fails: call Validate first
// on values that come from flags. The hashrate ticker does not run until Start.
func New(cfg Config) *Registry {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	r := &Registry{
		cfg:       cfg,
		window:    cfg.window(),
		step:      cfg.step(),
		maxLabel:  cfg.maxLabelLen(),
		now:       cfg.nowFunc(),
		live:      make(map[string]*Worker),
		groups:    make(map[groupKey]*group),
		pools:     make(map[poolKey]*pool),
		endpoints: make(map[string]*endpoint),
		algs:      make(map[string]*alg),
	}
	r.slots = int(r.window / r.step)
	r.SetTag(cfg.Tag)
	return r
}

// SetTag sets the `proxy` label of every series, including those that already exist; "" means
// "unknown". main calls it once the stratum address is bound.
func (r *Registry) SetTag(tag string) {
	if r == nil {
		return
	}
	if tag == "" {
		tag = "unknown"
	}
	tag = cleanLabel(tag, 0)
	r.tag.Store(&tag)
}

// Start starts the goroutine that calls Tick every Config.Step. Starting a started Registry does
// nothing.
func (r *Registry) Start() {
	if r == nil {
		return
	}
	r.runMu.Lock()
	defer r.runMu.Unlock()
	if r.stop != nil {
		return
	}
	r.stop, r.done = make(chan struct{}), make(chan struct{})
	go r.run(r.stop, r.done)
}

// Stop stops the ticker goroutine and waits for it to return. Stopping a stopped Registry does
// nothing; a stopped Registry may be started again. Series stay readable.
func (r *Registry) Stop() {
	if r == nil {
		return
	}
	r.runMu.Lock()
	defer r.runMu.Unlock()
	if r.stop == nil {
		return
	}
	close(r.stop)
	<-r.done
	r.stop, r.done = nil, nil
}

func (r *Registry) run(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(r.step)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			r.Tick(r.now())
		}
	}
}

// Tick is one recompute step, run every Config.Step by the ticker started by Start; tests call
// it directly. For every worker it closes the hashrate slot of the Step that just ended and sets
//
//	proxy_worker_speed = 2^32 * sum(d_i/divider) / T
//
// over the shares accepted in the last Window/Step Steps, where T is the window, or the
// worker's age at now when it is younger than the window (but at least one Step): a new or
// restored miner shows its real hashrate after one Step instead of ramping up over the whole
// window, and a miner that connected just before a Tick is not credited with a wild rate from
// one share in a few seconds. proxy_user_speed and proxy_pool_speed are the sums of their
// workers' speeds.
//
// Tick holds the registry's lock for O(workers), without allocating: 20,000 workers take
// about 0.4 ms (BenchmarkTick20000Workers).
func (r *Registry) Tick(now time.Time) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	speeds := r.tickSpeeds[:0]
	for range r.groupList {
		speeds = append(speeds, 0)
	}
	for _, w := range r.workers {
		w.ring.rotate()
		t := now.Sub(w.born)
		t = min(max(t, r.step), r.window)
		s := hashesPerDiff1 * w.ring.closedSum() / t.Seconds()
		w.speed.Store(s)
		speeds[w.grp.i] += s
	}
	for i, g := range r.groupList {
		g.speed = speeds[i]
	}
	r.tickSpeeds = speeds
	r.hist.record(now, r.groupList)
}

// groupLocked returns the group of (user, hash, pool), creating it and its pool and algorithm.
// Arguments are cleaned label values.
func (r *Registry) groupLocked(user, hash, poolName string) *group {
	k := groupKey{user, hash, poolName}
	if g := r.groups[k]; g != nil {
		return g
	}
	p := r.poolLocked(hash, poolName)
	b := appendLabel(nil, "user", user)
	b = append(b, ',')
	b = append(b, p.labels...)
	g := &group{i: len(r.groupList), key: k, labels: string(b), pool: p}
	r.groups[k] = g
	r.groupList = append(r.groupList, g)
	return g
}

// MinersConnected adds delta to proxy_miners_connected: +1 when a miner's connection opens, -1
// when it closes.
func (r *Registry) MinersConnected(delta int) {
	if r != nil {
		r.miners.Add(int64(delta))
	}
}

// UpstreamsConnected adds delta to proxy_upstreams_connected.
func (r *Registry) UpstreamsConnected(delta int) {
	if r != nil {
		r.upstreams.Add(int64(delta))
	}
}

// SessionsInGrace adds delta to proxy_sessions_in_grace: +1 when a session starts waiting for
// its miner to restore it, -1 when it is restored or expires.
func (r *Registry) SessionsInGrace(delta int) {
	if r != nil {
		r.inGrace.Add(int64(delta))
	}
}

// Drop reasons the proxy declares: the `reason` label of proxy_miners_dropped_total. Each is
// exposed from the start, at 0.
const (
	DropSlowReader       = "slow_reader"        // its output queue overflowed
	DropLineTooLong      = "line_too_long"      // it sent a line over the codec's limit
	DropHandshakeTimeout = "handshake_timeout"  // it did not subscribe and authorize in time
	DropIdleTimeout      = "idle_timeout"       // it sent nothing for too long
	DropMaxConnections   = "max_connections"    // the proxy was full
	DropBadInput         = "bad_input"          // it sent something that is not stratum
	DropUnknownUser      = "unknown_user"       // it authorized with a name the proxy did not issue
	DropRelayout         = "relayout"           // closed to make it re-subscribe with a new extranonce layout
	DropShutdown         = "shutdown"           // the proxy stopped
	DropMemoryLimit      = "memory_limit"       // its partial line did not fit the process's budget for partial lines
	DropPoolLogin        = "pool_login_failed"  // every pool of its account rejected the login
	DropNoPool           = "no_pool"            // its account had no working pool for --upstream.give-up
	DropPanic            = "panic"              // a handler panicked on its connection (see Registry.Panic)
	DropAccountSwitch    = "account_switch"     // it switched accounts on one connection too often
	DropPerAddress       = "per_address"        // its address has --limits.per-address-connections open already
	DropConnectionRate   = "connection_rate"    // its address opened connections faster than --limits.per-address-rate
	DropRestoreFull      = "restore_table_full" // its detached session was evicted: --session.max-detached reached
	DropOutputMemory     = "output_memory"      // output queued to all miners passed --limits.max-outbound-total
	DropRegistrationRate = "registration_rate"  // an API client registered names faster than --web.register-rate
	DropDialect          = "dialect_mismatch"   // its dialect is not one its account's algorithm speaks
	DropKicked           = "kicked"             // closed through the management API (kicked, or its user deleted)
	DropTLSHandshake     = "tls_handshake"      // its TLS handshake on --stratum.tls-addr failed
	DropTakenOver        = "session_taken_over" // its session id came back on a new connection (a silently dead connection)
)

// dropReasons lists the declared drop reasons in exposition order.
var dropReasons = [...]string{
	DropSlowReader, DropLineTooLong, DropHandshakeTimeout, DropIdleTimeout, DropMaxConnections,
	DropBadInput, DropUnknownUser, DropRelayout, DropShutdown, DropMemoryLimit, DropPoolLogin,
	DropNoPool, DropPanic, DropAccountSwitch, DropPerAddress, DropConnectionRate, DropRestoreFull,
	DropOutputMemory, DropRegistrationRate, DropDialect, DropKicked, DropTLSHandshake, DropTakenOver,
}

// maxExtraDrops bounds the undeclared drop reasons that get their own series; further ones are
// counted under "other", so a bug cannot blow up the label's cardinality.
const maxExtraDrops = 8

// Dropped counts a miner connection the proxy closed, in proxy_miners_dropped_total{proxy,reason}.
// reason should be one of the Drop constants: those cost a few comparisons and an atomic add.
// Any other reason takes the registry's lock and is cut to Config.MaxLabelLen bytes; past
// maxExtraDrops distinct ones, reasons are counted as "other".
func (r *Registry) Dropped(reason string) {
	if r == nil {
		return
	}
	for i := range dropReasons {
		if dropReasons[i] == reason {
			r.drops[i].Add(1)
			return
		}
	}
	r.droppedOther(reason)
}

func (r *Registry) droppedOther(reason string) {
	reason = cleanLabel(reason, r.maxLabel)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.extraDrops) >= maxExtraDrops {
		reason = "other"
	}
	labels := string(appendLabel(nil, "reason", reason))
	for _, d := range r.extraDrops {
		if d.labels == labels {
			d.n.Add(1)
			return
		}
	}
	d := &extraDrop{labels: labels}
	d.n.Add(1)
	r.extraDrops = append(r.extraDrops, d)
}

// panicWheres are the `where` values of proxy_panics_total, in exposition order; every one is
// exposed from the start, at 0, so that increase() sees the first panic.
var panicWheres = [...]string{"miner", "pool", "other"}

// Panic counts a panic the proxy recovered at a connection boundary, in
// proxy_panics_total{proxy,where}: where is "miner" (a miner connection's handler) or "pool" (a
// pool connection's); any other value is counted as "other". It is an atomic add, without lock
// or allocation. Every count is a bug: alert on any increase.
func (r *Registry) Panic(where string) {
	if r == nil {
		return
	}
	i := len(panicWheres) - 1 // other
	switch where {
	case "miner":
		i = 0
	case "pool":
		i = 1
	}
	r.panics[i].Add(1)
}

// NotifyFanout observes in proxy_notify_fanout_seconds how long a pool's mining.notify took to
// reach every miner on the upstream connection, from its arrival.
func (r *Registry) NotifyFanout(d time.Duration) {
	if r != nil {
		r.fanout.observe(d)
	}
}

// ShareRTT observes in proxy_share_rtt_seconds the time from forwarding a share to the pool to
// receiving the pool's answer.
func (r *Registry) ShareRTT(d time.Duration) {
	if r != nil {
		r.rtt.observe(d)
	}
}
