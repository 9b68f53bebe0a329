package flood

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"time"

	"github.com/panjf2000/gnet/v2/pkg/logging"
)

// Mode says how a miner produces the shares it submits.
type Mode string

// Share modes.
const (
	// ModeBlind submits made-up shares without hashing: unique extranonce2
	// and nonce, the job's ntime. Against a pool simulator at a tiny
	// difficulty every one is valid; against anything else it measures
	// relay throughput and rejections are expected.
	ModeBlind Mode = "blind"
	// ModeValid mines each share with sha256d at the current job and
	// difficulty in a bounded worker pool off the event loops. Only
	// sensible at very low difficulty (e.g. 1e-6: ~4,300 hashes a share).
	ModeValid Mode = "valid"
)

// Errors returned by Run before any connection is made.
var (
	// ErrRemoteTarget: the target or a source is outside 127.0.0.0/8 and
	// ::1 and Config.AllowRemote is false.
	ErrRemoteTarget = errors.New("flood: target is not a loopback address (set AllowRemote / --allow-remote to flood a remote host)")
	// ErrTooManyMiners: the miners do not fit under RLIMIT_NOFILE.
	ErrTooManyMiners = errors.New("flood: miner count does not fit the file descriptor limit")
	// ErrConfig: a Config field is invalid.
	ErrConfig = errors.New("flood: invalid config")
)

// Config configures a flood. Every field documents its zero value.
type Config struct {
	// Target is the stratum endpoint, host:port. Required. A host name is
	// resolved once at start; every connection dials the first address.
	Target string
	// AllowRemote permits a Target (and Sources) outside 127.0.0.0/8 and
	// ::1; false refuses them with ErrRemoteTarget.
	AllowRemote bool

	// Miners is the number of miner connections; 0 means 1.
	Miners int
	// Sources are local addresses connections are bound to, round robin
	// (see ParseSources); nil lets the kernel choose. Each source address
	// has its own ~28,000 ephemeral ports.
	Sources []netip.Addr
	// ConnectConcurrency bounds the dials in flight (each a goroutine of
	// the dialer pool); 0 means 256.
	ConnectConcurrency int
	// ConnectRate caps new connections per second over all dialers; 0
	// means as fast as ConnectConcurrency allows.
	ConnectRate float64
	// ConnectTimeout bounds one dial; 0 means 10s.
	ConnectTimeout time.Duration

	// User is the mining.authorize user name; "%d" in it is replaced by
	// the miner's index (0..Miners-1), e.g. "NAME.rig%d". "" means "flood".
	User string
	// Password is the mining.authorize password; "" means "x".
	Password string
	// UserAgent is the first mining.subscribe param and the answer to
	// client.get_version; "" means "stratum-flood/1.0".
	UserAgent string
	// Configure sends mining.configure (version rolling, mask 1fffe000)
	// before mining.subscribe; false skips it.
	Configure bool
	// ExtranonceSubscribe sends mining.extranonce.subscribe after the
	// subscribe answer; false skips it.
	ExtranonceSubscribe bool

	// Dialect is the protocol the miners speak: "" or "stratum" is
	// Bitcoin stratum v1 on gnet event loops (everything above and below
	// applies); any other value is a bench/dialectsim Kind ("cryptonote",
	// "ethstratum", "ethproxy", "kawpow", "equihash", "kheavyhash"), and
	// then each miner is a dialectsim.Miner on its own goroutine that
	// mines stand-in shares (always valid at a dialectsim pool's target)
	// at Rate until Duration. Dialect miners ignore Sources (refused),
	// Mode, Configure, ExtranonceSubscribe, MaxPending, the hashing and
	// event loop settings and NotifySentAt; UserAgent "" means the
	// dialect's realistic default agent; ConnectTimeout also bounds each
	// answer and each share search; CryptoNote miners send the login
	// algo list ["rx/0"]. See DialectKinds.
	Dialect string

	// Mode is ModeBlind or ModeValid; "" means ModeBlind.
	Mode Mode
	// Rate is shares per second per miner, each interval jittered
	// uniformly in [0.5, 1.5) of 1/Rate; 0 submits nothing (connect and
	// notify fan-out only).
	Rate float64
	// Duration is how long the flood runs, counted from Run's start
	// (connect ramp included); 0 means 10s. Run then stops submitting,
	// waits up to Drain for answers and closes every connection.
	Duration time.Duration
	// Drain bounds the wait for outstanding answers after Duration; 0
	// means 3s.
	Drain time.Duration
	// MaxPending bounds the unanswered submits of one miner; a share due
	// while that many are outstanding is skipped and counted. 0 means 16.
	MaxPending int

	// HashWorkers is the size of the ModeValid hashing pool; 0 means one
	// per CPU.
	HashWorkers int
	// HashQueue bounds the ModeValid shares waiting for a hashing worker;
	// a share due while it is full is skipped and counted. 0 means 4096.
	HashQueue int
	// MaxHashes bounds the nonces tried for one ModeValid share; 0 means
	// 1<<24 (4,000 times the expectation at difficulty 1e-6).
	MaxHashes uint64

	// EventLoops is the number of gnet event loops; 0 means one per CPU.
	EventLoops int
	// MaxLineSize is the longest line accepted from the target; a longer
	// one closes the connection. 0 means 16 KiB.
	MaxLineSize int
	// ExtraFDs is the number of file descriptors the caller's process
	// needs besides the flood's (e.g. an in-process pool simulator
	// accepting the miners needs one per miner); counted in the fd budget.
	ExtraFDs int

	// ProgressInterval is the period of Progress calls; 0 means 1s.
	ProgressInterval time.Duration
	// Progress, if not nil, is called every ProgressInterval from one
	// goroutine with the counters so far and the answer latency over the
	// interval.
	Progress func(Progress)
	// NotifySentAt, if not nil, returns when the pool sent the notify with
	// this job id; the fan-out then also records pool-send -> miner-arrival
	// latency (Summary.NotifyLatency). It is called once per new job id,
	// from an event loop under a lock: it must be quick, safe for
	// concurrent use, and must not retain jobID.
	NotifySentAt func(jobID []byte) (sent time.Time, ok bool)
	// Logger receives gnet's own log lines; nil keeps gnet's process-wide
	// default logger (setting one replaces that default for every gnet
	// engine in the process).
	Logger logging.Logger
}

const (
	defaultConcurrency = 256
	defaultUser        = "flood"
	defaultPassword    = "x"
	defaultUserAgent   = "stratum-flood/1.0"
	defaultMaxPending  = 16
	defaultHashQueue   = 4096
	defaultMaxHashes   = 1 << 24
	defaultMaxLineSize = 16 << 10
	// maxPendingLimit keeps a miner's pending table small enough to scan.
	maxPendingLimit = 1024
)

func (c *Config) miners() int { return max(c.Miners, 1) }
func (c *Config) concurrency() int {
	if c.ConnectConcurrency > 0 {
		return c.ConnectConcurrency
	}
	return defaultConcurrency
}
func (c *Config) connectTimeout() time.Duration { return orDur(c.ConnectTimeout, 10*time.Second) }
func (c *Config) user() string                  { return orStr(c.User, defaultUser) }
func (c *Config) password() string              { return orStr(c.Password, defaultPassword) }
func (c *Config) userAgent() string             { return orStr(c.UserAgent, defaultUserAgent) }
func (c *Config) mode() Mode {
	if c.Mode == "" {
		return ModeBlind
	}
	return c.Mode
}
func (c *Config) duration() time.Duration { return orDur(c.Duration, 10*time.Second) }
func (c *Config) drain() time.Duration    { return orDur(c.Drain, 3*time.Second) }
func (c *Config) maxPending() int {
	if c.MaxPending > 0 {
		return min(c.MaxPending, maxPendingLimit)
	}
	return defaultMaxPending
}
func (c *Config) hashWorkers() int {
	if c.HashWorkers > 0 {
		return c.HashWorkers
	}
	return runtime.NumCPU()
}
func (c *Config) hashQueue() int {
	if c.HashQueue > 0 {
		return c.HashQueue
	}
	return defaultHashQueue
}
func (c *Config) maxHashes() uint64 {
	if c.MaxHashes > 0 {
		return c.MaxHashes
	}
	return defaultMaxHashes
}
func (c *Config) eventLoops() int {
	if c.EventLoops > 0 {
		return c.EventLoops
	}
	return runtime.NumCPU()
}
func (c *Config) maxLineSize() int {
	if c.MaxLineSize > 0 {
		return c.MaxLineSize
	}
	return defaultMaxLineSize
}
func (c *Config) progressInterval() time.Duration { return orDur(c.ProgressInterval, time.Second) }

func orDur(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func orStr(s, def string) string {
	if s != "" {
		return s
	}
	return def
}

// validate checks the fields that need no I/O.
func (c *Config) validate() error {
	switch {
	case c.Target == "":
		return fmt.Errorf("%w: Target is required", ErrConfig)
	case c.Miners < 0:
		return fmt.Errorf("%w: Miners %d < 0", ErrConfig, c.Miners)
	case c.Rate < 0 || c.Rate != c.Rate:
		return fmt.Errorf("%w: Rate %v", ErrConfig, c.Rate)
	case c.ConnectRate < 0 || c.ConnectRate != c.ConnectRate:
		return fmt.Errorf("%w: ConnectRate %v", ErrConfig, c.ConnectRate)
	case c.mode() != ModeBlind && c.mode() != ModeValid:
		return fmt.Errorf("%w: Mode %q (want %q or %q)", ErrConfig, c.Mode, ModeBlind, ModeValid)
	case strings.ContainsAny(c.user(), "\"\\\n") || strings.ContainsAny(c.password(), "\n"):
		return fmt.Errorf("%w: User/Password contain a quote, backslash or newline", ErrConfig)
	}
	if err := c.validateDialect(); err != nil {
		return err
	}
	if !c.AllowRemote {
		for _, s := range c.Sources {
			if !s.IsLoopback() {
				return fmt.Errorf("%w: source %s", ErrRemoteTarget, s)
			}
		}
	}
	return nil
}

// resolveTarget resolves Target once and applies the loopback rule.
func (c *Config) resolveTarget(ctx context.Context) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(c.Target)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: Target %q: %v", ErrConfig, c.Target, err)
	}
	p, err := net.DefaultResolver.LookupPort(ctx, "tcp", port)
	if err != nil || p == 0 {
		return netip.AddrPort{}, fmt.Errorf("%w: Target %q: bad port", ErrConfig, c.Target)
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		addrs, err = net.DefaultResolver.LookupNetIP(rctx, "ip", host)
		cancel()
		if err != nil || len(addrs) == 0 {
			return netip.AddrPort{}, fmt.Errorf("flood: resolve %q: %v", host, err)
		}
	}
	a := addrs[0].Unmap()
	if a.Zone() != "" {
		return netip.AddrPort{}, fmt.Errorf("%w: Target %q: zones are not supported", ErrConfig, c.Target)
	}
	if !c.AllowRemote {
		for _, x := range addrs {
			if !x.Unmap().IsLoopback() {
				return netip.AddrPort{}, fmt.Errorf("%w: %s resolves to %s", ErrRemoteTarget, c.Target, x)
			}
		}
	}
	for _, s := range c.Sources {
		if s.Is4() != a.Is4() {
			return netip.AddrPort{}, fmt.Errorf("%w: source %s and target %s are of different families", ErrConfig, s, a)
		}
	}
	return netip.AddrPortFrom(a, uint16(p)), nil
}
