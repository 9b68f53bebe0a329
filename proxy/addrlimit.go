package proxy

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/stratum-proxy/stratum-proxy/metrics"
)

// addrLimits caps connections per source address and their arrival rate.
// Both are off by default: a farm puts thousands of ASICs behind one NAT
// address. It is touched once per connection open and close (never per
// line or share), under one small lock.
type addrLimits struct {
	maxConns int     // live connections per address; 0: no limit
	rate     float64 // new connections per second per address; 0: no limit
	burst    float64

	mu    sync.Mutex
	addrs map[netip.Addr]*addrState
}

type addrState struct {
	conns  int
	tokens float64 // token bucket of new connections
	last   time.Time
}

func newAddrLimits(maxConns int, rate float64) *addrLimits {
	if maxConns <= 0 && rate <= 0 {
		return nil
	}
	return &addrLimits{maxConns: maxConns, rate: rate, burst: max(1, 2*rate), addrs: make(map[netip.Addr]*addrState)}
}

// addrOf returns the IP of a remote address, or the zero Addr.
func addrOf(a net.Addr) netip.Addr {
	if t, ok := a.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(t.IP); ok {
			return ip.Unmap()
		}
	}
	return netip.Addr{}
}

// admit takes a new connection from ip; it returns the drop reason when a
// limit refuses it, "" when it is admitted (and counted until release).
func (a *addrLimits) admit(ip netip.Addr, now time.Time) string {
	if a == nil || !ip.IsValid() {
		return ""
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.addrs[ip]
	if st == nil {
		st = &addrState{tokens: a.burst, last: now}
		a.addrs[ip] = st
	}
	if a.maxConns > 0 && st.conns >= a.maxConns {
		return metrics.DropPerAddress
	}
	if a.rate > 0 {
		st.tokens = min(a.burst, st.tokens+now.Sub(st.last).Seconds()*a.rate)
		st.last = now
		if st.tokens < 1 {
			return metrics.DropConnectionRate
		}
		st.tokens--
	}
	st.conns++
	return ""
}

// release ends a connection admitted from ip.
func (a *addrLimits) release(ip netip.Addr) {
	if a == nil || !ip.IsValid() {
		return
	}
	a.mu.Lock()
	if st := a.addrs[ip]; st != nil && st.conns > 0 {
		st.conns--
	}
	a.mu.Unlock()
}

// sweep forgets addresses with no connection whose bucket is full again,
// so the table holds only addresses seen recently. It runs on the ticker.
func (a *addrLimits) sweep(now time.Time) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for ip, st := range a.addrs {
		if st.conns == 0 && (a.rate <= 0 || st.tokens+now.Sub(st.last).Seconds()*a.rate >= a.burst) {
			delete(a.addrs, ip)
		}
	}
}
