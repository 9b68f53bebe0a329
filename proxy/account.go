package proxy

import (
	"sync"

	"github.com/stratum-proxy/stratum-proxy/store"
)

// account is one issued name's pool login(s) and the upstreams that carry
// its miners. Lock order: account.mu before upstream.mu.
type account struct {
	// Static after construction.
	srv      *Server
	name     string
	targets  []store.Account // primary first, then backups in order
	mode     string
	algo     string   // algorithm of the primary pool, the `hash` label
	dialects []string // the dialects its algorithm speaks
	divider  float64  // its hashrate divider
	checked  bool     // its shares are hashed at the proxy: per-miner difficulty
	hash     hashAlgo // how, when checked

	mu   sync.Mutex
	ups  []*upstream // guarded by mu
	dead bool        // guarded by mu: removed from the server's table
}

// account returns the live account for an issued name, creating it.
func (s *Server) account(u store.User) *account {
	s.acctMu.Lock()
	defer s.acctMu.Unlock()
	if a := s.accounts[u.Name]; a != nil {
		return a
	}
	a := &account{srv: s, name: u.Name, mode: s.cfg.mode(), algo: "unknown", divider: 1}
	a.targets = append(a.targets, u.Account)
	a.targets = append(a.targets, u.Backups...)
	if p, ok := s.cfg.Store.Pool(u.Account.Pool); ok {
		if p.Mode != "" {
			a.mode = p.Mode
		}
		a.algo = p.Algorithm
		if al, ok := s.cfg.Store.Algorithm(p.Algorithm); ok {
			if al.Divider > 0 {
				a.divider = al.Divider
			}
			a.algo = al.Name
			a.dialects = al.Dialects
		}
	}
	a.hash, a.checked = checkAlgo(a.algo)
	a.checked = a.checked && !s.cfg.NoVardiff
	s.accounts[u.Name] = a
	return a
}

// joinReq says what upstream a miner needs.
type joinReq struct {
	proto  proto
	solo   bool   // an upstream of its own (passthrough)
	wantVR bool   // it asked for version rolling: the login asks the pool
	hello  []byte // relay: the miner's subscribe params; cryptonote: its algo list
	worker string // ETHProxy: the worker name of the login
}

// join attaches the session s (owned by the calling loop l) to an upstream
// of the wanted protocol with room for it, opening a new upstream on l
// when none has.
func (a *account) join(s *session, l *loop, r joinReq) *upstream {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.dead {
		return nil // the caller looks the account up again
	}
	if !r.solo {
		for _, up := range a.ups {
			if up.proto == r.proto && !up.passthr && up.tryJoin(s) {
				if r.wantVR {
					up.askVersionRolling()
				}
				return up
			}
		}
	}
	up := newUpstream(a, l, a.srv.upSeq.Add(1), r)
	up.tryJoin(s) // a new upstream always has room
	up.wantVR.Store(r.wantVR)
	a.ups = append(a.ups, up)
	a.srv.rememberUpstream(up)
	l.post(event{kind: evPoolRedial, up: up})
	return up
}

// removeLocked drops a closed upstream; the last one drops the account.
func (a *account) removeLocked(up *upstream) {
	for i, u := range a.ups {
		if u == up {
			a.ups = append(a.ups[:i], a.ups[i+1:]...)
			break
		}
	}
	if len(a.ups) == 0 {
		a.dead = true
		s := a.srv
		s.acctMu.Lock()
		if s.accounts[a.name] == a {
			delete(s.accounts, a.name)
		}
		s.acctMu.Unlock()
	}
}

// checkAlgo maps an algorithm of the pool table to the hash the proxy
// checks shares with; ok is false for algorithms it cannot hash, whose
// shares are relayed at the pool's difficulty.
func checkAlgo(name string) (a hashAlgo, ok bool) {
	switch name {
	case "sha256", "sha256d":
		return algoSHA256d, true
	case "scrypt":
		return algoScrypt, true
	}
	return 0, false
}
