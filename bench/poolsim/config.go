package poolsim

import (
	"crypto/tls"
	"errors"
	"fmt"
	"time"
)

// Config configures a simulated pool. The zero Config is a usable pool on
// 127.0.0.1 with random port, difficulty 1, 4-byte extranonce1 and 8-byte
// extranonce2 (ckpool's layout), no version rolling and open authorization.
type Config struct {
	// Addr is the listen address. "" means "127.0.0.1:0".
	Addr string
	// TLS, if set, serves stratum+ssl: every connection does a TLS
	// handshake with this config first.
	TLS *tls.Config

	// Extranonce1Size is the number of extranonce1 bytes per connection,
	// 1 to 16. 0 means 4. Extranonce1 values come from a counter and are
	// never reused while the Server lives; when the 256^size values are
	// used up, new subscriptions are refused.
	Extranonce1Size int
	// Extranonce2Size is the extranonce2 size given to miners, 1 to 16.
	// 0 means 8.
	Extranonce2Size int
	// Extranonce1, if non-empty, is given to every connection instead of a
	// unique value (replaying captured sessions; it breaks uniqueness, so
	// different connections' shares may collide as duplicates). It
	// overrides Extranonce1Size.
	Extranonce1 []byte

	// Algorithm is the proof of work shares are validated with: "" or
	// "sha256d" (SHA256d) hashes the header twice with SHA-256 and a share
	// of difficulty d meets pow.Diff1 / d; "scrypt" (Scrypt) hashes it with
	// Litecoin's scrypt (pow.ScryptHash) and, as scrypt pools do, a share
	// of difficulty d meets pow.Diff1 * 65536 / d (pow.ScryptTarget). The
	// jobs, the coinbase and the header are built the same way. A scrypt
	// share costs the pool about a millisecond to check.
	Algorithm string

	// Difficulty is the share difficulty sent with mining.set_difficulty.
	// 0 means 1. Fractional values work (1e-6 lets a test miner find a
	// share in a few thousand hashes; with scrypt, 1e-3 takes about 66).
	Difficulty float64
	// NotifyInterval sends a new job (clean_jobs=false) every interval.
	// 0 means never: tests call Notify.
	NotifyInterval time.Duration
	// JobHistory is how many jobs stay valid for shares; older ones answer
	// 21 (stale). 0 means 8. A clean job invalidates all older jobs at once.
	JobHistory int
	// JobIDPrefix is prepended to the hex job counter in job ids, so jobs
	// of two simulators are told apart. "" means none.
	JobIDPrefix string
	// MerkleBranches is the number of (random) merkle branches per job, up
	// to 16. 0 means 2; a negative value means none (an empty block).
	MerkleBranches int

	// VersionMask is the version-rolling mask the pool allows; a
	// mining.configure is granted requested_mask & VersionMask. 0 means no
	// version rolling ("version-rolling": false).
	VersionMask uint32

	// User, if not "", is the only account that may authorize (also as
	// "User.worker"); others get error 24. "" lets anyone authorize.
	User string
	// Password, if not "", must match the authorize password.
	Password string

	// ShareDelay delays every mining.submit answer by this long, keeping
	// answers in order, to simulate a slow pool. 0 means answer at once.
	ShareDelay time.Duration
	// WriteTimeout bounds each write to a connection; a connection that
	// does not read for that long is dropped. 0 means 10s.
	WriteTimeout time.Duration
	// Intercept, if not nil, is called by the connection's goroutine before
	// each request from a miner is handled; it may sleep (delaying this and
	// later answers, in order), or make the pool ignore the request or drop
	// the connection. nil handles every request.
	Intercept func(conn uint64, method string) Action
}

// Action is what Config.Intercept tells the pool to do with a request.
type Action int

// Actions for Config.Intercept.
const (
	Handle     Action = iota // handle and answer the request as usual
	Ignore                   // read the request and send nothing
	Disconnect               // close the connection without answering
)

// Defaults applied by the accessors below.
const (
	defaultEn1Size      = 4 // ckpool and stratum-pool both use 4 bytes
	defaultEn2Size      = 8 // ckpool's extranonce2 size
	defaultJobHistory   = 8 // a few minutes of ckpool's 30 s re-sends
	defaultBranches     = 2
	maxExtranonceSize   = 16 // the coinbase script must stay under 100 bytes
	maxBranches         = 16 // 2^16 transactions: more than any block
	defaultWriteTimeout = 10 * time.Second
)

var errConfig = errors.New("poolsim: bad config")

func (c *Config) addr() string {
	if c.Addr == "" {
		return "127.0.0.1:0"
	}
	return c.Addr
}

func (c *Config) en1Size() int {
	switch {
	case len(c.Extranonce1) > 0:
		return len(c.Extranonce1)
	case c.Extranonce1Size == 0:
		return defaultEn1Size
	}
	return c.Extranonce1Size
}

func (c *Config) en2Size() int {
	if c.Extranonce2Size == 0 {
		return defaultEn2Size
	}
	return c.Extranonce2Size
}

func (c *Config) difficulty() float64 {
	if c.Difficulty == 0 {
		return 1
	}
	return c.Difficulty
}

func (c *Config) jobHistory() int {
	if c.JobHistory <= 0 {
		return defaultJobHistory
	}
	return c.JobHistory
}

func (c *Config) branches() int {
	switch {
	case c.MerkleBranches < 0:
		return 0
	case c.MerkleBranches == 0:
		return defaultBranches
	}
	return c.MerkleBranches
}

func (c *Config) writeTimeout() time.Duration {
	if c.WriteTimeout <= 0 {
		return defaultWriteTimeout
	}
	return c.WriteTimeout
}

func (c *Config) validate() error {
	if n := c.en1Size(); n < 1 || n > maxExtranonceSize {
		return fmt.Errorf("%w: extranonce1 size %d not in 1..%d", errConfig, n, maxExtranonceSize)
	}
	if n := c.en2Size(); n < 1 || n > maxExtranonceSize {
		return fmt.Errorf("%w: extranonce2 size %d not in 1..%d", errConfig, n, maxExtranonceSize)
	}
	if err := c.validateAlgorithm(); err != nil {
		return err
	}
	if d := c.difficulty(); !(d > 0) || d > c.maxDifficulty() {
		return fmt.Errorf("%w: difficulty %g", errConfig, d)
	}
	if c.MerkleBranches > maxBranches {
		return fmt.Errorf("%w: %d merkle branches, at most %d", errConfig, c.MerkleBranches, maxBranches)
	}
	return nil
}
