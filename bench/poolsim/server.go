package poolsim

import (
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratum-proxy/stratum-proxy/codec"
	"github.com/stratum-proxy/stratum-proxy/proxy/pow"
)

// Server is a running pool simulator. Its methods are safe for concurrent
// use.
type Server struct {
	// Static after Start.
	cfg    Config
	ln     net.Listener
	sidTag uint32 // random high half of subscription ids

	wg        sync.WaitGroup // connection and ticker goroutines
	done      chan struct{}  // closed by Close
	closeOnce sync.Once

	// bmu serializes what is sent to many connections (and the first work
	// sent to a new one), so every connection sees set_difficulty, notify
	// and the rest in the same order. Lock order: bmu, then mu, then a
	// conn's mu.
	bmu sync.Mutex

	mu      sync.Mutex // guards the fields below
	conns   map[*conn]struct{}
	jobs    []*job // valid jobs, oldest first, at most cfg.jobHistory()
	diff    *diffState
	chain   chain
	jobSeq  uint64
	connSeq uint64
	en1Next uint64 // next extranonce1 counter value (before the random offset)
	en1Base uint64 // random offset so that values do not start at 0

	// Counters, updated without locks.
	submits, accepted, totalConns, jobCount atomic.Uint64
	rejected                                [6]atomic.Uint64 // by code - codec.CodeOther

	statsMu  sync.Mutex // guards the fields below
	userDiff map[string]float64
	sumDiff  float64

	checkers sync.Pool // *pow.Checker
}

// Stats are a Server's counters since Start.
type Stats struct {
	Connections      int    // open connections now
	TotalConnections uint64 // connections accepted since Start
	Jobs             uint64 // jobs sent (mining.notify broadcasts)
	Submits          uint64 // mining.submit requests received
	Accepted         uint64 // shares answered true
	Rejected         uint64 // shares answered with an error (sum of the below)

	Other         uint64 // 20: malformed, wrong extranonce2 size, ntime, version bits
	Stale         uint64 // 21: job not found or stale
	Duplicate     uint64 // 22
	LowDifficulty uint64 // 23
	Unauthorized  uint64 // 24
	NotSubscribed uint64 // 25

	// AcceptedDifficulty is the sum over accepted shares of the difficulty
	// each was accepted at (its job's), so 2^32 * AcceptedDifficulty /
	// seconds is the hashrate the pool credits (2^16 * ... with scrypt).
	AcceptedDifficulty float64
	// UserDifficulty is AcceptedDifficulty per submitting worker name.
	UserDifficulty map[string]float64
}

// RejectedCode returns the count of rejections with stratum code code
// (20 to 25), 0 for other codes.
func (st *Stats) RejectedCode(code int) uint64 {
	switch code {
	case codec.CodeOther:
		return st.Other
	case codec.CodeJobNotFound:
		return st.Stale
	case codec.CodeDuplicate:
		return st.Duplicate
	case codec.CodeLowDifficulty:
		return st.LowDifficulty
	case codec.CodeUnauthorized:
		return st.Unauthorized
	case codec.CodeNotSubscribed:
		return st.NotSubscribed
	}
	return 0
}

// Start listens on cfg.Addr and serves until Close. It sends the first job
// to each connection after authorize.
func Start(cfg Config) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.Extranonce1 = append([]byte(nil), cfg.Extranonce1...)
	ln, err := net.Listen("tcp", cfg.addr())
	if err == nil && cfg.TLS != nil {
		ln = tls.NewListener(ln, cfg.TLS)
	}
	if err != nil {
		return nil, fmt.Errorf("poolsim: listen: %w", err)
	}
	s := &Server{
		cfg:      cfg,
		ln:       ln,
		sidTag:   rand.Uint32(),
		done:     make(chan struct{}),
		conns:    make(map[*conn]struct{}),
		diff:     cfg.newDiffState(cfg.difficulty()),
		en1Base:  rand.Uint64(),
		userDiff: make(map[string]float64),
	}
	s.checkers.New = func() any { return new(pow.Checker) }
	s.mu.Lock()
	s.addJobLocked(s.newJobLocked(true), true)
	s.mu.Unlock()
	s.wg.Add(1)
	go s.acceptLoop()
	if cfg.NotifyInterval > 0 {
		s.wg.Add(1)
		go s.ticker(cfg.NotifyInterval)
	}
	return s, nil
}

// Addr returns the address the pool listens on, as host:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops listening, drops every connection (a dying pool) and waits
// for the connection goroutines to end. It returns nil; calling it again
// does nothing.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		s.ln.Close()
		s.DropConnections()
	})
	s.wg.Wait()
	return nil
}

// DropConnections closes every current connection but keeps listening,
// like a pool restarting its stratum server.
func (s *Server) DropConnections() {
	for _, c := range s.snapshot(false) {
		c.nc.Close()
	}
}

// Conns returns the number of open connections.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	st := Stats{
		Connections:      s.Conns(),
		TotalConnections: s.totalConns.Load(),
		Jobs:             s.jobCount.Load(),
		Submits:          s.submits.Load(),
		Accepted:         s.accepted.Load(),
		Other:            s.rejected[0].Load(),
		Stale:            s.rejected[1].Load(),
		Duplicate:        s.rejected[2].Load(),
		LowDifficulty:    s.rejected[3].Load(),
		Unauthorized:     s.rejected[4].Load(),
		NotSubscribed:    s.rejected[5].Load(),
	}
	st.Rejected = st.Other + st.Stale + st.Duplicate + st.LowDifficulty + st.Unauthorized + st.NotSubscribed
	s.statsMu.Lock()
	st.AcceptedDifficulty = s.sumDiff
	st.UserDifficulty = make(map[string]float64, len(s.userDiff))
	for u, d := range s.userDiff {
		st.UserDifficulty[u] = d
	}
	s.statsMu.Unlock()
	return st
}

// Notify sends a new job to every working connection now. clean means a
// new block: a new prevhash, clean_jobs=true, and every older job becomes
// stale (21).
func (s *Server) Notify(clean bool) {
	s.bmu.Lock()
	defer s.bmu.Unlock()
	s.mu.Lock()
	j := s.newJobLocked(clean)
	s.mu.Unlock()
	s.broadcastJobBLocked(j, clean)
}

// NotifyJob sends the given job to every working connection, like Notify
// (clean invalidates older jobs). It is a test hook to replay a captured
// job: with Config.Extranonce1 and SetDifficulty, captured shares can be
// submitted again and must be accepted. The job ID must not repeat one of
// the pool's recent jobs.
func (s *Server) NotifyJob(pj pow.Job, clean bool) {
	j := &job{Job: pj, seen: make(map[[32]byte]struct{})}
	j.Coinb1 = append([]byte(nil), pj.Coinb1...)
	j.Coinb2 = append([]byte(nil), pj.Coinb2...)
	j.Branches = append([][32]byte(nil), pj.Branches...)
	s.bmu.Lock()
	defer s.bmu.Unlock()
	s.mu.Lock()
	s.jobSeq++
	j.seq = s.jobSeq
	if clean {
		s.chain.prev = pj.PrevHash
		s.chain.height++
	}
	s.mu.Unlock()
	s.broadcastJobBLocked(j, clean)
}

// broadcastJobBLocked records j as the newest job and sends it. s.bmu is
// held.
func (s *Server) broadcastJobBLocked(j *job, clean bool) {
	s.mu.Lock()
	s.addJobLocked(j, clean)
	s.mu.Unlock()
	s.jobCount.Add(1)
	line := codec.AppendNotification(nil, codec.MethodNotify, pow.AppendNotifyParams(nil, &j.Job, clean))
	s.fanout(s.snapshot(true), func(c *conn) {
		c.sendJob(j, line)
	})
}

// addJobLocked appends j to the valid jobs; a clean job or the history
// limit makes older ones stale. s.mu is held.
func (s *Server) addJobLocked(j *job, clean bool) {
	if clean {
		for _, old := range s.jobs {
			old.stale.Store(true)
		}
		s.jobs = s.jobs[:0]
	}
	s.jobs = append(s.jobs, j)
	if n := len(s.jobs) - s.cfg.jobHistory(); n > 0 {
		for _, old := range s.jobs[:n] {
			old.stale.Store(true)
		}
		s.jobs = append(s.jobs[:0], s.jobs[n:]...)
	}
}

// SetDifficulty sends mining.set_difficulty [d] to every working
// connection and makes d the difficulty of new connections. It applies to
// jobs sent after it (shares of earlier jobs keep their difficulty), as the
// captured pools behave; call Notify to make it effective at once.
func (s *Server) SetDifficulty(d float64) {
	ds := s.cfg.newDiffState(d)
	s.bmu.Lock()
	defer s.bmu.Unlock()
	s.mu.Lock()
	s.diff = ds
	s.mu.Unlock()
	line := setDifficultyLine(nil, d)
	s.fanout(s.snapshot(true), func(c *conn) {
		c.mu.Lock()
		c.diff = ds
		c.mu.Unlock()
		c.write(line)
	})
}

// SetExtranonce gives every connection that sent
// mining.extranonce.subscribe a new unique extranonce1 and extranonce2
// size en2Size (0 keeps the configured size; 1..16), sends it
// mining.set_extranonce, then sends every connection a new job
// (clean_jobs=false). The new layout applies to that job and later ones;
// shares of earlier jobs are still checked against the old layout.
func (s *Server) SetExtranonce(en2Size int) error {
	if en2Size == 0 {
		en2Size = s.cfg.en2Size()
	}
	if en2Size < 1 || en2Size > maxExtranonceSize || s.cfg.en1Size()+en2Size > 2*maxExtranonceSize {
		return fmt.Errorf("%w: extranonce2 size %d", errConfig, en2Size)
	}
	s.bmu.Lock()
	defer s.bmu.Unlock()
	var cs []*conn
	for _, c := range s.snapshot(true) {
		c.mu.Lock()
		x := c.xnsub
		c.mu.Unlock()
		if !x {
			continue
		}
		en1, err := s.nextExtranonce1()
		if err != nil {
			return err
		}
		c.mu.Lock()
		c.en1, c.en2Size = en1, en2Size
		c.mu.Unlock()
		cs = append(cs, c)
	}
	s.fanout(cs, func(c *conn) {
		c.mu.Lock()
		p := codec.AppendHexString([]byte{'['}, c.en1)
		c.mu.Unlock()
		p = append(p, ',')
		p = codec.AppendUint(p, uint64(en2Size))
		p = append(p, ']')
		c.write(codec.AppendNotification(nil, codec.MethodSetExtranonce, p))
	})
	s.mu.Lock()
	j := s.newJobLocked(false)
	s.mu.Unlock()
	s.broadcastJobBLocked(j, false)
	return nil
}

// SetVersionMask changes the mask the pool allows. Connections that
// negotiated version rolling get mining.set_version_mask with their
// requested mask & mask, checked for their next shares.
func (s *Server) SetVersionMask(mask uint32) {
	s.bmu.Lock()
	defer s.bmu.Unlock()
	s.mu.Lock()
	s.cfg.VersionMask = mask
	s.mu.Unlock()
	s.fanout(s.snapshot(false), func(c *conn) {
		c.mu.Lock()
		if !c.rolling {
			c.mu.Unlock()
			return
		}
		c.mask = c.reqMask & mask
		p := append([]byte{'[', '"'}, pow.AppendHex32(nil, c.mask)...)
		c.mu.Unlock()
		c.write(codec.AppendNotification(nil, codec.MethodSetVersionMask, append(p, '"', ']')))
	})
}

// Reconnect sends client.reconnect [host, port, wait] to every connection.
// An empty host and port 0 send empty params (as ckpool does): reconnect to
// the same pool.
func (s *Server) Reconnect(host string, port int, wait int) {
	p := []byte("[]")
	if host != "" || port != 0 {
		p = codec.AppendStringS([]byte{'['}, host)
		p = append(p, ',')
		p = codec.AppendInt(p, int64(port))
		p = append(p, ',')
		p = codec.AppendInt(p, int64(wait))
		p = append(p, ']')
	}
	s.BroadcastLine(codec.AppendNotification(nil, codec.MethodReconnect, p))
}

// BroadcastLine writes line (a complete JSON line; a missing "\n" is
// added) to every connection, for notifications and requests the
// simulator has no method for, such as client.show_message, a
// client.get_version request or ckpool's {"id":42,"method":"mining.ping"}.
// Answers from miners to such requests are read and ignored.
func (s *Server) BroadcastLine(line []byte) {
	if len(line) == 0 || line[len(line)-1] != '\n' {
		line = append(line[:len(line):len(line)], '\n')
	}
	s.bmu.Lock()
	defer s.bmu.Unlock()
	s.fanout(s.snapshot(false), func(c *conn) { c.write(line) })
}

// snapshot returns the open connections; only those that received their
// first work when working is set.
func (s *Server) snapshot(working bool) []*conn {
	s.mu.Lock()
	cs := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	if !working {
		return cs
	}
	n := 0
	for _, c := range cs {
		c.mu.Lock()
		w := c.working
		c.mu.Unlock()
		if w {
			cs[n] = c
			n++
		}
	}
	return cs[:n]
}

// fanoutWorkers bounds the goroutines writing one broadcast: enough that
// one slow connection (up to WriteTimeout) does not hold up thousands of
// others for long, few enough to stay cheap.
const fanoutWorkers = 16

// fanoutMin is the connection count below which a broadcast is written
// by the caller alone (goroutines cost more than a few writes).
const fanoutMin = 64

// fanout calls fn for every connection, in parallel for large sets, and
// returns when all calls are done. Each connection gets its lines in
// broadcast order because broadcasts hold s.bmu.
func (s *Server) fanout(cs []*conn, fn func(*conn)) {
	if len(cs) < fanoutMin {
		for _, c := range cs {
			fn(c)
		}
		return
	}
	var wg sync.WaitGroup
	per := (len(cs) + fanoutWorkers - 1) / fanoutWorkers
	for i := 0; i < len(cs); i += per {
		part := cs[i:min(i+per, len(cs))]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, c := range part {
				fn(c)
			}
		}()
	}
	wg.Wait()
}

// errExtranonceExhausted refuses subscriptions when every extranonce1
// value of the configured size has been handed out.
var errExtranonceExhausted = errors.New("poolsim: extranonce1 space exhausted")

// nextExtranonce1 returns a fresh extranonce1: a counter (from a random
// start) of cfg.en1Size() bytes, never repeated while s lives, or the
// forced Config.Extranonce1.
func (s *Server) nextExtranonce1() ([]byte, error) {
	if len(s.cfg.Extranonce1) > 0 {
		return s.cfg.Extranonce1, nil
	}
	size := s.cfg.en1Size()
	s.mu.Lock()
	defer s.mu.Unlock()
	if size < 8 && s.en1Next >= 1<<(8*size) {
		return nil, errExtranonceExhausted
	}
	v := s.en1Base + s.en1Next
	if size < 8 {
		v %= 1 << (8 * size)
	}
	s.en1Next++
	b := make([]byte, size)
	for i := size - 1; i >= 0 && v != 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
	return b, nil
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	var delay time.Duration
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off and retry,
			// as net/http does (5 ms doubling up to 1 s).
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			time.Sleep(delay)
			continue
		}
		delay = 0
		c := s.newConn(nc)
		s.mu.Lock()
		select {
		case <-s.done: // Close ran DropConnections before this conn was listed
			s.mu.Unlock()
			nc.Close()
			continue
		default:
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.totalConns.Add(1)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			c.serve()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

func (s *Server) ticker(every time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
			s.Notify(false)
		}
	}
}

// setDifficultyLine appends {"id":null,"method":"mining.set_difficulty","params":[d]}.
func setDifficultyLine(dst []byte, d float64) []byte {
	p := codec.AppendFloat([]byte{'['}, d)
	return codec.AppendNotification(dst, codec.MethodSetDifficulty, append(p, ']'))
}
