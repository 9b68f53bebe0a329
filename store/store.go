package store

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Dialects an Algorithm's pools may speak. The proxy detects a miner's
// dialect from its first line; an algorithm lists the ones it can carry.
const (
	// DialectStratum is Bitcoin-family stratum v1 (mining.subscribe,
	// mining.notify with coinbase halves, mining.submit with extranonce2).
	DialectStratum = "stratum"
	// DialectEthStratum is EthereumStratum/1.0.0 (NiceHash).
	DialectEthStratum = "ethstratum"
	// DialectEthProxy is ETHProxy (eth_submitLogin, eth_getWork).
	DialectEthProxy = "ethproxy"
	// DialectCryptoNote is the CryptoNote/xmrig protocol (login, job, submit).
	DialectCryptoNote = "cryptonote"
	// DialectRelay is a stratum variant the proxy relays line by line, one
	// upstream per miner (kawpow, equihash, kHeavyHash): miners subscribe
	// with mining.subscribe, plain or as EthereumStratum/1.0.0.
	DialectRelay = "relay"
)

// Upstream modes a Pool may ask for in Pool.Mode.
const (
	// ModeDefault ("") leaves the choice to the proxy's configuration.
	ModeDefault = ""
	// ModeSplit shares one upstream connection among many miners by
	// splitting the extranonce2 space.
	ModeSplit = "split"
	// ModePassthrough gives every miner its own upstream connection.
	ModePassthrough = "passthrough"
)

// Limits on what RegisterUser and PutPool accept.
const (
	// MaxBackups is the longest backup list of one user. Failover walks
	// the list one dial timeout per entry, so more than a handful only
	// delays the inevitable.
	MaxBackups = 8
	// MaxFieldLen bounds a pool user or password in bytes. Pool logins
	// are wallet addresses plus a worker suffix (ETH/XMR addresses with
	// worker names stay under 150 bytes); 256 leaves room and keeps a
	// record small.
	MaxFieldLen = 256
	// MaxExtranonce2Size bounds the Pool.Extranonce2Size hint. Real pools
	// hand out 2 to 8 bytes; 16 leaves room without accepting nonsense.
	MaxExtranonce2Size = 16
)

// Sentinel errors. Each is returned wrapped with the operation and the
// offending value, so test with errors.Is.
var (
	// Open.

	// ErrLocked means another process holds the database file open.
	ErrLocked = errors.New("store: database file is locked by another process")
	// ErrSchemaTooNew means the database was written by a newer version.
	ErrSchemaTooNew = errors.New("store: database schema is newer than this binary supports")
	// ErrKeyMismatch means the key file does not belong to the database,
	// or is missing although the database holds encrypted passwords.
	ErrKeyMismatch = errors.New("store: key file does not match the database")

	// Writes.

	// ErrUnknownPool means an account names a pool the store does not know.
	ErrUnknownPool = errors.New("store: unknown pool")
	// ErrUnknownAlgorithm means a pool names an algorithm the store does
	// not know.
	ErrUnknownAlgorithm = errors.New("store: unknown algorithm")
	// ErrInvalidPool means a pool's address, mode or hints are malformed.
	ErrInvalidPool = errors.New("store: invalid pool")
	// ErrInvalidAccount means an account lacks its pool or user, or a
	// field is too long or malformed.
	ErrInvalidAccount = errors.New("store: invalid account")
	// ErrClosed means the store was closed.
	ErrClosed = errors.New("store: closed")
	// ErrInUse means a pool or algorithm cannot be deleted: users or pools
	// still refer to it.
	ErrInUse = errors.New("store: in use")
	// ErrUnknownUser means no user has the given issued name.
	ErrUnknownUser = errors.New("store: unknown user")
	// ErrInvalidAlgorithm means an algorithm's name, divider or dialects
	// are malformed.
	ErrInvalidAlgorithm = errors.New("store: invalid algorithm")
)

// RegisterOutcome is what Store.RegisterUser did.
type RegisterOutcome int

const (
	// RegisterUnchanged: the primary was registered before and nothing
	// changed.
	RegisterUnchanged RegisterOutcome = iota
	// RegisterCreated: a new name was issued.
	RegisterCreated
	// RegisterUpdated: the primary was registered before and its backups
	// were replaced; the name is the same.
	RegisterUpdated
)

// String returns "unchanged", "created" or "updated".
func (o RegisterOutcome) String() string {
	switch o {
	case RegisterUnchanged:
		return "unchanged"
	case RegisterCreated:
		return "created"
	case RegisterUpdated:
		return "updated"
	}
	return "RegisterOutcome(" + strconv.Itoa(int(o)) + ")"
}

// Algorithm is a proof-of-work algorithm and how its difficulties convert
// to hashes.
type Algorithm struct {
	// Name is the canonical name, lower case ("sha256"). It is the value
	// of the `hash` metric label, so renaming it breaks dashboards.
	Name string `json:"name"`
	// Aliases are other names Store.Algorithm also resolves ("sha256d").
	Aliases []string `json:"aliases,omitempty"`
	// Divider converts a share's difficulty d to hashes: a share stands
	// for 2^32 * d / Divider hashes (1 for sha256, 65536 for scrypt).
	Divider float64 `json:"divider"`
	// Dialects are the protocols its pools speak (DialectStratum, ...).
	Dialects []string `json:"dialects"`
}

// Pool is an upstream pool endpoint. Its Addr is the key.
type Pool struct {
	// Addr is "host:port" with a lower-case host, as normalised by
	// NormalizeAddr.
	Addr string `json:"addr"`
	// Algorithm is the canonical name of the pool's algorithm.
	Algorithm string `json:"algorithm"`
	// Extranonce2Size is a hint: the extranonce2 size the pool is known
	// to hand out. 0 means unknown.
	Extranonce2Size int `json:"extranonce2_size,omitempty"`
	// TLS makes upstreams connect with TLS (stratum+ssl), verifying the
	// pool's certificate against the system roots unless TLSFingerprint
	// pins one or TLSInsecure accepts any.
	TLS bool `json:"tls,omitempty"`
	// TLSFingerprint pins the pool's certificate: the SHA-256 of its leaf
	// certificate (DER), hex, colons allowed. It replaces the roots check,
	// so a self-signed pool certificate can be trusted exactly.
	TLSFingerprint string `json:"tls_fingerprint,omitempty"`
	// TLSInsecure accepts any certificate: encryption without
	// authentication, for a pool you cannot pin. Say so explicitly.
	TLSInsecure bool `json:"tls_insecure,omitempty"`
	// Mode is the upstream mode for this pool: ModeDefault (""), ModeSplit
	// or ModePassthrough.
	Mode string `json:"mode,omitempty"`
}

// Account is one pool login.
type Account struct {
	// Pool is the pool's Addr.
	Pool string `json:"pool"`
	// User is the login sent in mining.authorize (usually wallet.worker).
	User string `json:"user"`
	// Password is the login's password; it may be empty.
	Password Secret `json:"password"`
}

// User is a name the proxy issued, and the pool logins behind it.
type User struct {
	// Name is the issued name: 16 lower-case hex characters from
	// crypto/rand. Miners authorize with it.
	Name string `json:"name"`
	// Account is the primary pool login.
	Account
	// Backups are tried in order when the primary is down.
	Backups []Account `json:"backups,omitempty"`
	// Created is when the name was issued.
	Created time.Time `json:"created"`
	// LastSeen is when a miner last authorized with the name, as recorded
	// by Store.Touch (zero: never). It lags by up to the flush interval.
	LastSeen time.Time `json:"last_seen"`
}

// Store holds the algorithm table, the pool table and the issued users.
// Every caller (the proxy event loops, the HTTP API, the CLI) uses this
// interface, so another backend can replace the bbolt one.
//
// Implementations are safe for concurrent use. Reads come from an
// in-memory snapshot: they never touch disk and never wait for a writer,
// so they are safe to call from an event loop. Values returned by reads
// are copies the caller may keep and modify.
type Store interface {
	// Algorithm returns the algorithm with the given name or alias
	// (case-insensitive; "sha256d" resolves to "sha256").
	Algorithm(name string) (Algorithm, bool)
	// Algorithms returns every algorithm, sorted by name.
	Algorithms() []Algorithm
	// Pool returns the pool with the given address (normalised first).
	Pool(addr string) (Pool, bool)
	// Pools returns every pool, sorted by address.
	Pools() []Pool
	// User returns the user with the given issued name.
	User(name string) (User, bool)
	// Users returns every user, sorted by name.
	Users() []User

	// PutPool adds or replaces a pool. The address must be host:port and
	// the algorithm known (an alias is stored as its canonical name);
	// errors wrap ErrInvalidPool or ErrUnknownAlgorithm.
	PutPool(p Pool) error
	// RegisterUser issues a name for a primary account and its backups
	// (RegisterCreated). Registering the same primary (pool, user,
	// password) again returns the existing name: a non-nil backups list,
	// even an empty one, replaces the stored backups (RegisterUpdated, or
	// RegisterUnchanged if they are the same); nil backups leave them as
	// they are (RegisterUnchanged). Errors wrap ErrUnknownPool or
	// ErrInvalidAccount; nothing is stored on error. When it returns, the
	// change is durable on disk.
	RegisterUser(primary Account, backups []Account) (name string, outcome RegisterOutcome, err error)
	// DeletePool removes a pool; ErrInUse while a user's primary or backup
	// account names it, ErrUnknownPool when there is none.
	DeletePool(addr string) error
	// PutAlgorithm adds or replaces an algorithm (ErrInvalidAlgorithm).
	PutAlgorithm(a Algorithm) error
	// DeleteAlgorithm removes an algorithm; ErrInUse while a pool uses it,
	// ErrUnknownAlgorithm when there is none.
	DeleteAlgorithm(name string) error
	// SetPassword replaces the password of a user's primary account.
	SetPassword(name string, password Secret) error
	// SetBackups replaces a user's backup accounts (checked as in
	// RegisterUser).
	SetBackups(name string, backups []Account) error
	// DeleteUser removes an issued name (ErrUnknownUser).
	DeleteUser(name string) error
	// Touch records that the user was seen at t. It never blocks: the time
	// is buffered and written in the background every few seconds.
	// Unknown names are ignored.
	Touch(name string, t time.Time)
	// Close flushes buffered Touch times and releases the store.
	Close() error
}

// NormalizeAddr validates a pool address and returns its canonical form:
// "host:port" with the host in lower case and the port in decimal
// without leading zeros. IPv6 hosts keep their brackets.
func NormalizeAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(strings.TrimSpace(addr))
	if err != nil {
		return "", fmt.Errorf("address %q: want host:port", addr)
	}
	if host == "" {
		return "", fmt.Errorf("address %q: empty host", addr)
	}
	for _, r := range host {
		if r > unicode.MaxASCII || !(r == '.' || r == '-' || r == '_' || r == ':' || r == '%' ||
			'0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') {
			return "", fmt.Errorf("address %q: bad character %q in host", addr, r)
		}
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return "", fmt.Errorf("address %q: port must be 1-65535", addr)
	}
	return net.JoinHostPort(strings.ToLower(host), strconv.FormatUint(n, 10)), nil
}

// normalizeName canonicalises an algorithm name for lookup.
func normalizeName(name string) string { return strings.ToLower(strings.TrimSpace(name)) }

// validMode reports whether m is a known Pool.Mode.
func validMode(m string) bool {
	return m == ModeDefault || m == ModeSplit || m == ModePassthrough
}

// checkPool validates p against the algorithm table in s and returns it
// normalised (canonical address and algorithm name).
func checkPool(s *snapshot, p Pool) (Pool, error) {
	addr, err := NormalizeAddr(p.Addr)
	if err != nil {
		return Pool{}, fmt.Errorf("%w: %v", ErrInvalidPool, err)
	}
	p.Addr = addr
	a, ok := s.algorithm(p.Algorithm)
	if !ok {
		return Pool{}, fmt.Errorf("%w %q (pool %s)", ErrUnknownAlgorithm, p.Algorithm, addr)
	}
	p.Algorithm = a.Name
	if !validMode(p.Mode) {
		return Pool{}, fmt.Errorf("%w: %s: mode %q: want %q, %q or empty", ErrInvalidPool, addr, p.Mode, ModeSplit, ModePassthrough)
	}
	if fp := strings.ReplaceAll(p.TLSFingerprint, ":", ""); fp != "" {
		if _, err := hex.DecodeString(fp); err != nil || len(fp) != 64 {
			return Pool{}, fmt.Errorf("%w: %s: tls fingerprint: want the 64 hex digits of a SHA-256", ErrInvalidPool, addr)
		}
		p.TLSFingerprint = strings.ToLower(fp)
	}
	if (p.TLSFingerprint != "" || p.TLSInsecure) && !p.TLS {
		return Pool{}, fmt.Errorf("%w: %s: a TLS fingerprint or tls_insecure needs tls", ErrInvalidPool, addr)
	}
	if p.Extranonce2Size < 0 || p.Extranonce2Size > MaxExtranonce2Size {
		return Pool{}, fmt.Errorf("%w: %s: extranonce2 size %d: want 0-%d", ErrInvalidPool, addr, p.Extranonce2Size, MaxExtranonce2Size)
	}
	return p, nil
}

// checkAccount validates a against the pool table in s and returns it
// with its pool address normalised. what names the account in errors
// ("primary", "backup 2").
func checkAccount(s *snapshot, a Account, what string) (Account, error) {
	if strings.TrimSpace(a.Pool) == "" {
		return Account{}, fmt.Errorf("%w: %s: pool is required", ErrInvalidAccount, what)
	}
	if a.User == "" {
		return Account{}, fmt.Errorf("%w: %s: user is required", ErrInvalidAccount, what)
	}
	addr, err := NormalizeAddr(a.Pool)
	if err != nil {
		return Account{}, fmt.Errorf("%w: %s: %v", ErrInvalidAccount, what, err)
	}
	if _, ok := s.pools[addr]; !ok {
		return Account{}, fmt.Errorf("%w %q (%s)", ErrUnknownPool, addr, what)
	}
	a.Pool = addr
	if err := checkField(a.User); err != nil {
		return Account{}, fmt.Errorf("%w: %s: user: %v", ErrInvalidAccount, what, err)
	}
	// The password is checked for length and encoding only: pools accept
	// anything there, and it is never echoed, so its content is not ours
	// to judge. Control characters in it are allowed; in the user they are
	// not, since the user also shows up in the pool's and our own listings.
	if len(a.Password) > MaxFieldLen || !utf8.ValidString(string(a.Password)) {
		return Account{}, fmt.Errorf("%w: %s: password must be valid UTF-8 of at most %d bytes", ErrInvalidAccount, what, MaxFieldLen)
	}
	return a, nil
}

// checkField validates a pool user name.
func checkField(v string) error {
	if len(v) > MaxFieldLen {
		return fmt.Errorf("longer than %d bytes", MaxFieldLen)
	}
	if !utf8.ValidString(v) {
		return errors.New("not valid UTF-8")
	}
	if strings.ContainsFunc(v, unicode.IsControl) {
		return errors.New("contains control characters")
	}
	return nil
}

// clone returns a copy of u that shares no slices with it.
func (u User) clone() User {
	u.Backups = slices.Clone(u.Backups)
	return u
}

// clone returns a copy of a that shares no slices with it.
func (a Algorithm) clone() Algorithm {
	a.Aliases = slices.Clone(a.Aliases)
	a.Dialects = slices.Clone(a.Dialects)
	return a
}

// Dialects is every dialect name an Algorithm may list.
var Dialects = []string{DialectStratum, DialectEthStratum, DialectEthProxy, DialectCryptoNote, DialectRelay}

// checkAlgorithm validates a and returns it with its names canonical.
func checkAlgorithm(a Algorithm) (Algorithm, error) {
	a.Name = normalizeName(a.Name)
	if a.Name == "" || len(a.Name) > 64 || strings.ContainsAny(a.Name, " \t\"\\") {
		return Algorithm{}, fmt.Errorf("%w: name %q: want 1-64 characters without spaces or quotes", ErrInvalidAlgorithm, a.Name)
	}
	if !(a.Divider > 0) || math.IsInf(a.Divider, 0) {
		return Algorithm{}, fmt.Errorf("%w: %s: divider must be a positive number", ErrInvalidAlgorithm, a.Name)
	}
	if len(a.Dialects) == 0 {
		return Algorithm{}, fmt.Errorf("%w: %s: at least one dialect of %s", ErrInvalidAlgorithm, a.Name, strings.Join(Dialects, ", "))
	}
	for _, d := range a.Dialects {
		if !slices.Contains(Dialects, d) {
			return Algorithm{}, fmt.Errorf("%w: %s: dialect %q: want one of %s", ErrInvalidAlgorithm, a.Name, d, strings.Join(Dialects, ", "))
		}
	}
	for i, al := range a.Aliases {
		a.Aliases[i] = normalizeName(al)
		if a.Aliases[i] == "" || a.Aliases[i] == a.Name {
			return Algorithm{}, fmt.Errorf("%w: %s: alias %q", ErrInvalidAlgorithm, a.Name, al)
		}
	}
	return a, nil
}
