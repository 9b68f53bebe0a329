package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"runtime"
	"time"

	"github.com/rs/zerolog"

	"github.com/stratum-proxy/stratum-proxy/metrics"
	"github.com/stratum-proxy/stratum-proxy/store"
)

// Upstream modes.
const (
	// ModeSplit shares one upstream connection between many miners of one
	// account by extranonce splitting (the default).
	ModeSplit = "split"
	// ModePassthrough gives every miner its own upstream connection, the
	// original proxy's behaviour, for pools that need it.
	ModePassthrough = "passthrough"
)

// Config configures a Server. Every field documents its zero value.
type Config struct {
	// TLSAddr, if set, is a second stratum listener for miners that speak
	// stratum+ssl, served by the same state machines; TLSCertificate must
	// then be set.
	TLSAddr string
	// TLSCertificate returns the certificate of TLSAddr for a handshake
	// (reloaded by the caller, e.g. on SIGHUP).
	TLSCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// PoolRootCAs verifies pools marked TLS; nil means the system roots.
	PoolRootCAs *x509.CertPool
	// Sessions, if set, keeps session records in a store shared by the
	// instances of a cluster, so that a miner gets its session back on
	// another instance (cluster.go).
	Sessions SessionStore
	// ReusePort binds the stratum address with SO_REUSEPORT, so several
	// instances on one machine share one port (the kernel spreads new
	// connections over them).
	ReusePort bool
	// InstanceID prefixes this instance's session ids, so that they are
	// unique across a cluster. "" means none (a single instance).
	InstanceID string

	// Addr is the stratum listen address; "" means ":9332".
	Addr string
	// Loops is the number of gnet event loops; 0 means one per CPU.
	Loops int

	// Store resolves issued names, pools and algorithms. Required.
	Store store.Store
	// Metrics receives every counter and gauge. Required.
	Metrics *metrics.Registry
	// Log is the base logger; the zero value logs nothing.
	Log zerolog.Logger

	// Mode is the default upstream mode, ModeSplit or ModePassthrough; ""
	// means ModeSplit. A pool's own Mode in the store overrides it.
	Mode string
	// PrefixSize is k, the extranonce1 bytes the proxy hands each miner in
	// split mode; 0 means 2 (65,536 miners per upstream).
	PrefixSize int
	// Extranonce2Size is m, the extranonce2 size handed to miners at
	// subscribe time; 0 means 2. k+m = 4 fits every pool that gives at least
	// 4 extranonce2 bytes, so no miner needs a new layout there; raise it
	// when every pool used gives more (ASICs without version rolling like
	// more room).
	Extranonce2Size int
	// MaxMinersPerUpstream caps the miners sharing one upstream; 0 means
	// the whole prefix space (256^k).
	MaxMinersPerUpstream int

	// VersionMask is the version-rolling mask granted to miners before their
	// pool is known; 0 means 0x1fffe000 (BIP320's general purpose bits). Once
	// the pool's mask is known the miner gets mining.set_version_mask with
	// the intersection.
	VersionMask uint32

	// MaxLineSize is the longest accepted line from a miner or a pool; 0
	// means codec.DefaultMaxLineSize (16 KiB).
	MaxLineSize int
	// MaxConnections caps concurrent miner connections; 0 means 100,000.
	MaxConnections int
	// MaxOutbound caps the bytes queued to one miner that does not read;
	// past it the miner is dropped with reason slow_reader. 0 means 256 KiB.
	MaxOutbound int
	// HandshakeTimeout closes a miner that has not sent mining.authorize
	// this long after connecting; 0 means 15s.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a miner that sent nothing for this long; 0 means
	// 15 minutes.
	IdleTimeout time.Duration
	// AuthorizeWait is how long an authorize waits for a new upstream to log
	// in before it is answered true anyway (the name is known; work follows
	// when the pool is up); 0 means 10s.
	AuthorizeWait time.Duration
	// SessionGrace keeps a disconnected miner's session (extranonce, job,
	// difficulty, upstream) for restore; 0 means 60s.
	SessionGrace time.Duration

	// ShareTimeout answers a share the pool has not answered in this long
	// with error 20 "pool timeout"; 0 means 15s.
	ShareTimeout time.Duration
	// DialTimeout bounds one upstream connect; 0 means 5s.
	DialTimeout time.Duration
	// BackoffMin and BackoffMax bound the redial backoff after a full round
	// of failed attempts over the primary and backup pools; 0 means 250ms
	// and 30s.
	BackoffMin, BackoffMax time.Duration
	// FailbackInterval is how often an upstream on a backup pool probes its
	// primary; 0 means 30s.
	FailbackInterval time.Duration
	// PoolHandshakeTimeout bounds a pool login: from the TCP connect to the
	// answer of mining.authorize. A pool that accepts TCP but does not
	// answer in time counts as a failed attempt and the next target is
	// tried; 0 means 10s.
	PoolHandshakeTimeout time.Duration
	// GiveUp closes the miners of an account that has had no working pool
	// for this long (waiting or idle without work), so that they move to
	// their own backup pool; 0 means 60s.
	GiveUp time.Duration
	// Keepalive resends the current job (clean_jobs=false) to the miners of
	// a pool that sent no new job for this long, so miners that drop a
	// silent connection (cpuminer: 120 s) stay; 0 means 90s.
	Keepalive time.Duration
	// MaxPoolQueue caps the submit bytes queued to one pool connection that
	// is not reading; past it shares are answered error 20 at once. 0 means
	// 1 MiB.
	MaxPoolQueue int
	// MaxInflight caps one miner's shares not yet answered (waiting for the
	// pool, a scrypt check or an earlier share's answer: answers keep submit
	// order); past it shares are answered error 20 at once. 0 means 256.
	MaxInflight int
	// MaxPartialBytes caps the bytes of incomplete lines held for all miners
	// of the process; a miner whose partial line would pass it is dropped.
	// 0 means 64 MiB.
	MaxPartialBytes int64
	// AccountSwitchInterval is the shortest time between two account
	// switches (mining.authorize with a name of another account) on one
	// connection; a faster switch is answered error 24. 0 means 5s.
	AccountSwitchInterval time.Duration
	// MaxOutboundTotal caps the output queued to all miners of the process
	// that do not read; past it the miner whose write passed it is dropped
	// (reason output_memory). 0 means 1 GiB.
	MaxOutboundTotal int64
	// MaxConnsPerAddr caps live miner connections from one source address;
	// 0 (the default) means no cap: farms put thousands of ASICs behind one
	// NAT address.
	MaxConnsPerAddr int
	// ConnRatePerAddr caps new miner connections per second from one
	// source address (bursts of twice that); 0 (the default) means no cap.
	ConnRatePerAddr float64
	// MaxDetached caps the sessions waiting in the restore table; past it
	// the oldest detached session is forgotten at once. 0 means 200,000.
	MaxDetached int
	// DrainTimeout bounds how long Stop waits for the answers of shares in
	// flight before closing every connection; 0 means 5s.
	DrainTimeout time.Duration

	// NoVardiff turns per-miner difficulty and share checking off: every
	// miner mines at its pool's difficulty and every share is relayed
	// unchecked, as for algorithms the proxy cannot hash.
	NoVardiff bool
	// VardiffRate is the share rate per-miner difficulty aims at, in shares
	// per minute (the band is 2/3 to 4/3 of it); 0 means 15.
	VardiffRate float64
	// VardiffStart is the difficulty of a miner that suggested none; 0
	// means 1.
	VardiffStart float64
	// VardiffFloor is the lowest difficulty handed to a miner; 0 means
	// 0.001 (a 1 MH/s CPU miner finds 14 shares a minute there).
	VardiffFloor float64
	// VardiffInterval is the shortest time between two retargets of a
	// miner that converged; 0 means 30s.
	VardiffInterval time.Duration

	// TickInterval is the housekeeping period (timeouts, grace expiry,
	// failback probes); 0 means 1s.
	TickInterval time.Duration

	// UserAgent is sent to pools in mining.subscribe and answers
	// client.get_version; "" means "stratum-proxy/<Version>".
	UserAgent string
}

// Version is the proxy's version string.
const Version = "0.1.0"

func (c *Config) addr() string { return orStr(c.Addr, ":9332") }
func (c *Config) loops() int {
	if c.Loops > 0 {
		return c.Loops
	}
	return runtime.NumCPU()
}
func (c *Config) mode() string         { return orStr(c.Mode, ModeSplit) }
func (c *Config) prefixSize() int      { return orInt(c.PrefixSize, 2) }
func (c *Config) extranonce2Size() int { return orInt(c.Extranonce2Size, 2) }
func (c *Config) versionMask() uint32 {
	if c.VersionMask != 0 {
		return c.VersionMask
	}
	return 0x1fffe000
}
func (c *Config) maxLineSize() int    { return orInt(c.MaxLineSize, 16<<10) }
func (c *Config) maxConnections() int { return orInt(c.MaxConnections, 100_000) }
func (c *Config) maxOutbound() int    { return orInt(c.MaxOutbound, 256<<10) }
func (c *Config) handshakeTimeout() time.Duration {
	return orDur(c.HandshakeTimeout, 15*time.Second)
}
func (c *Config) idleTimeout() time.Duration   { return orDur(c.IdleTimeout, 15*time.Minute) }
func (c *Config) authorizeWait() time.Duration { return orDur(c.AuthorizeWait, 10*time.Second) }
func (c *Config) sessionGrace() time.Duration  { return orDur(c.SessionGrace, 60*time.Second) }
func (c *Config) shareTimeout() time.Duration  { return orDur(c.ShareTimeout, 15*time.Second) }
func (c *Config) dialTimeout() time.Duration   { return orDur(c.DialTimeout, 5*time.Second) }
func (c *Config) backoffMin() time.Duration    { return orDur(c.BackoffMin, 250*time.Millisecond) }
func (c *Config) backoffMax() time.Duration    { return orDur(c.BackoffMax, 30*time.Second) }
func (c *Config) failbackInterval() time.Duration {
	return orDur(c.FailbackInterval, 30*time.Second)
}
func (c *Config) poolHandshakeTimeout() time.Duration {
	return orDur(c.PoolHandshakeTimeout, 10*time.Second)
}
func (c *Config) giveUp() time.Duration    { return orDur(c.GiveUp, 60*time.Second) }
func (c *Config) keepalive() time.Duration { return orDur(c.Keepalive, 90*time.Second) }
func (c *Config) maxPoolQueue() int        { return orInt(c.MaxPoolQueue, 1<<20) }
func (c *Config) maxInflight() int         { return orInt(c.MaxInflight, 256) }
func (c *Config) accountSwitchInterval() time.Duration {
	return orDur(c.AccountSwitchInterval, 5*time.Second)
}
func (c *Config) maxOutboundTotal() int64 {
	if c.MaxOutboundTotal > 0 {
		return c.MaxOutboundTotal
	}
	return 1 << 30
}
func (c *Config) maxDetached() int            { return orInt(c.MaxDetached, 200_000) }
func (c *Config) drainTimeout() time.Duration { return orDur(c.DrainTimeout, 5*time.Second) }
func (c *Config) maxPartialBytes() int64 {
	if c.MaxPartialBytes > 0 {
		return c.MaxPartialBytes
	}
	return 64 << 20
}
func (c *Config) tickInterval() time.Duration { return orDur(c.TickInterval, time.Second) }
func (c *Config) userAgent() string           { return orStr(c.UserAgent, "stratum-proxy/"+Version) }

func orStr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func orInt(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

func orDur(v, def time.Duration) time.Duration {
	if v <= 0 {
		return def
	}
	return v
}
