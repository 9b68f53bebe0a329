package store

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the database layout this binary writes. Open records it
// in a new database and refuses a database with a higher one.
const SchemaVersion = 1

// Bucket and meta key names.
var (
	bucketMeta       = []byte("meta")
	bucketAlgorithms = []byte("algorithms")
	bucketPools      = []byte("pools")
	bucketUsers      = []byte("users")

	metaSchema   = []byte("schema")   // decimal SchemaVersion
	metaKeyCheck = []byte("keycheck") // keys.check() of the key file in use
)

// Defaults for zero Options fields.
const (
	// defaultTimeout bounds the wait for another process's file lock: long
	// enough to outlast a restarting proxy's Close, short enough that an
	// operator running a subcommand next to a live proxy gets an answer.
	defaultTimeout = time.Second
	// defaultTouchInterval is how often Touch times reach the disk. Last
	// seen is an operator's hint, not accounting: a few seconds of loss on
	// a crash is fine, one write per authorize is not.
	defaultTouchInterval = 5 * time.Second
	// defaultKeyFile is the key file's name beside the database.
	defaultKeyFile = "proxy.key"
)

// Options configures Open. A nil *Options means all defaults.
type Options struct {
	// Timeout is how long Open waits for the database file's lock when
	// another process holds it. Zero means 1s.
	Timeout time.Duration
	// KeyFile is the path of the key that encrypts pool passwords. Empty
	// means "proxy.key" in the database's directory. A missing file is
	// created (mode 0600) only for a new database.
	KeyFile string
	// TouchInterval is how often buffered Touch times are written. Zero
	// means 5s.
	TouchInterval time.Duration
	// OnError receives errors of background writes (Touch flushes), which
	// are otherwise retried silently on the next flush. Nil means ignore.
	OnError func(error)
}

func (o *Options) timeout() time.Duration {
	if o == nil || o.Timeout <= 0 {
		return defaultTimeout
	}
	return o.Timeout
}

func (o *Options) keyFile(dbPath string) string {
	if o == nil || o.KeyFile == "" {
		return filepath.Join(filepath.Dir(dbPath), defaultKeyFile)
	}
	return o.KeyFile
}

func (o *Options) touchInterval() time.Duration {
	if o == nil || o.TouchInterval <= 0 {
		return defaultTouchInterval
	}
	return o.TouchInterval
}

func (o *Options) onError() func(error) {
	if o == nil || o.OnError == nil {
		return func(error) {}
	}
	return o.OnError
}

// DB is the bbolt-backed Store. Create it with Open; it is safe for
// concurrent use.
type DB struct {
	// Static after Open.
	bolt    *bolt.DB
	path    string
	keys    *keys
	onError func(error)

	// snap is the current immutable snapshot; readers only Load it.
	snap atomic.Pointer[snapshot]

	// writeMu serialises writers: each holds it across its bbolt Update
	// and the publication of the next snapshot. Readers never take it.
	writeMu sync.Mutex
	closed  bool // guarded by writeMu

	// touchMu guards touched, the Touch times not yet written. It is held
	// only for a map access, never across I/O.
	touchMu sync.Mutex
	touched map[string]time.Time

	// Owned by the flusher goroutine's lifecycle.
	closeOnce sync.Once
	stop      chan struct{}
	done      chan struct{}
}

var _ Store = (*DB)(nil)

// userRecord is a user as stored in the users bucket (JSON, key Name).
// Passwords are sealed (AES-GCM); Dedupe is the keyed MAC of the primary
// (pool, user, password), so lookups never compare plaintext.
type userRecord struct {
	Pool     string          `json:"pool"`
	User     string          `json:"user"`
	Password []byte          `json:"password"`
	Backups  []accountRecord `json:"backups,omitempty"`
	Dedupe   string          `json:"dedupe"`
	Created  time.Time       `json:"created"`
	LastSeen time.Time       `json:"last_seen,omitzero"`
}

// accountRecord is a backup account as stored, its password sealed.
type accountRecord struct {
	Pool     string `json:"pool"`
	User     string `json:"user"`
	Password []byte `json:"password"`
}

// Open opens (creating if needed) the database at path and its key file,
// seeds a new database from Seed, loads everything into memory and starts
// the background Touch writer. The parent directory is created (0700) if
// missing. A nil opts means defaults.
//
// If another process has the file open, Open fails after opts.Timeout
// with an error wrapping ErrLocked that names the file.
func Open(path string, opts *Options) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	// NoSync stays false: every Update fsyncs before it returns, so a
	// registration acknowledged to a client survives kill -9 and power loss.
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.timeout()})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s (waited %s; is another stratum-proxy running? While it runs, change pools, users and algorithms through its management API, /api/v1)", ErrLocked, path, opts.timeout())
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	db := &DB{
		bolt:    bdb,
		path:    path,
		onError: opts.onError(),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if err := db.init(opts.keyFile(path)); err != nil {
		_ = bdb.Close()
		return nil, err
	}
	go db.flusher(opts.touchInterval())
	return db, nil
}

// init checks the schema and key, seeds a new database and loads the
// first snapshot.
func (db *DB) init(keyPath string) error {
	var schema int
	var check []byte
	err := db.bolt.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return nil
		}
		if v := meta.Get(metaSchema); v != nil {
			n, err := strconv.Atoi(string(v))
			if err != nil {
				return fmt.Errorf("meta schema %q: %w", v, err)
			}
			schema = n
		}
		check = append([]byte(nil), meta.Get(metaKeyCheck)...)
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: open %s: %w", db.path, err)
	}
	if schema > SchemaVersion {
		return fmt.Errorf("%w: %s has schema %d, this binary supports up to %d; run a newer stratum-proxy",
			ErrSchemaTooNew, db.path, schema, SchemaVersion)
	}

	var master []byte
	if len(check) > 0 {
		// An existing database: its passwords need exactly the key that
		// sealed them, so never invent a new one here.
		master, err = readKeyFile(keyPath)
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: %s: key file %s is missing (restore it from backup)", ErrKeyMismatch, db.path, keyPath)
		}
	} else {
		master, err = loadOrCreateKey(keyPath)
	}
	if err != nil {
		return fmt.Errorf("store: open %s: key file: %w", db.path, err)
	}
	if db.keys, err = newKeys(master); err != nil {
		return fmt.Errorf("store: open %s: %w", db.path, err)
	}
	if len(check) > 0 && string(check) != string(db.keys.check()) {
		return fmt.Errorf("%w: %s: %s is not the key it was created with", ErrKeyMismatch, db.path, keyPath)
	}

	if schema == 0 {
		if err := db.bolt.Update(db.initTx); err != nil {
			return fmt.Errorf("store: open %s: initialise: %w", db.path, err)
		}
		// Make the new file's directory entry durable too, not only its
		// contents (bbolt syncs the file, not the directory).
		if err := syncDir(filepath.Dir(db.path)); err != nil {
			return fmt.Errorf("store: open %s: %w", db.path, err)
		}
	}
	snap, err := db.load()
	if err != nil {
		return fmt.Errorf("store: open %s: %w", db.path, err)
	}
	db.snap.Store(snap)
	return nil
}

// initTx creates the buckets of a new database, seeds empty tables and
// records the schema version and key check, all in one transaction: a
// crash midway leaves a database that is initialised again next time.
func (db *DB) initTx(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketMeta, bucketAlgorithms, bucketPools, bucketUsers} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	algos, pools, err := Seed()
	if err != nil {
		return err
	}
	if b := tx.Bucket(bucketAlgorithms); isEmpty(b) {
		for _, a := range algos {
			if err := putJSON(b, a.Name, a); err != nil {
				return err
			}
		}
	}
	if b := tx.Bucket(bucketPools); isEmpty(b) {
		for _, p := range pools {
			if err := putJSON(b, p.Addr, p); err != nil {
				return err
			}
		}
	}
	meta := tx.Bucket(bucketMeta)
	if err := meta.Put(metaKeyCheck, db.keys.check()); err != nil {
		return err
	}
	return meta.Put(metaSchema, []byte(strconv.Itoa(SchemaVersion)))
}

// load reads every table and decrypts the passwords into a snapshot.
func (db *DB) load() (*snapshot, error) {
	var algos []Algorithm
	pools := map[string]Pool{}
	users := map[string]User{}
	dedupe := map[string]string{}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		err := tx.Bucket(bucketAlgorithms).ForEach(func(k, v []byte) error {
			var a Algorithm
			if err := json.Unmarshal(v, &a); err != nil {
				return fmt.Errorf("algorithm %s: %w", k, err)
			}
			algos = append(algos, a)
			return nil
		})
		if err != nil {
			return err
		}
		err = tx.Bucket(bucketPools).ForEach(func(k, v []byte) error {
			var p Pool
			if err := json.Unmarshal(v, &p); err != nil {
				return fmt.Errorf("pool %s: %w", k, err)
			}
			pools[p.Addr] = p
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketUsers).ForEach(func(k, v []byte) error {
			var r userRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("user %s: %w", k, err)
			}
			u, err := db.decode(string(k), &r)
			if err != nil {
				return fmt.Errorf("user %s: %w", k, err)
			}
			users[u.Name] = u
			dedupe[r.Dedupe] = u.Name
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return newSnapshot(algos, pools, users, dedupe), nil
}

// sealAD is the additional data binding a sealed password to user name
// and account position (0 primary, 1.. backups).
func sealAD(name string, i int) string { return name + "/" + strconv.Itoa(i) }

// encode builds the stored record of u.
func (db *DB) encode(u User, dedupe string) userRecord {
	r := userRecord{
		Pool:     u.Pool,
		User:     u.User,
		Password: db.keys.seal(u.Password.Reveal(), sealAD(u.Name, 0)),
		Dedupe:   dedupe,
		Created:  u.Created,
		LastSeen: u.LastSeen,
	}
	r.Backups = db.encodeBackups(u.Name, u.Backups)
	return r
}

// encodeBackups builds the stored records of the backups of user name.
func (db *DB) encodeBackups(name string, backups []Account) []accountRecord {
	var rs []accountRecord
	for i, b := range backups {
		rs = append(rs, accountRecord{
			Pool:     b.Pool,
			User:     b.User,
			Password: db.keys.seal(b.Password.Reveal(), sealAD(name, i+1)),
		})
	}
	return rs
}

// decode turns a stored record back into a User, decrypting passwords.
func (db *DB) decode(name string, r *userRecord) (User, error) {
	pw, err := db.keys.open(r.Password, sealAD(name, 0))
	if err != nil {
		return User{}, err
	}
	u := User{
		Name:     name,
		Account:  Account{Pool: r.Pool, User: r.User, Password: Secret(pw)},
		Created:  r.Created,
		LastSeen: r.LastSeen,
	}
	for i, b := range r.Backups {
		pw, err := db.keys.open(b.Password, sealAD(name, i+1))
		if err != nil {
			return User{}, fmt.Errorf("backup %d: %w", i+1, err)
		}
		u.Backups = append(u.Backups, Account{Pool: b.Pool, User: b.User, Password: Secret(pw)})
	}
	return u, nil
}

// isEmpty reports whether b has no keys.
func isEmpty(b *bolt.Bucket) bool {
	k, _ := b.Cursor().First()
	return k == nil
}

func putJSON(b *bolt.Bucket, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), raw)
}

// Path returns the database file's path.
func (db *DB) Path() string { return db.path }

// Algorithm implements Store.
func (db *DB) Algorithm(name string) (Algorithm, bool) {
	s := db.snap.Load()
	a, ok := s.algos[name]
	if !ok {
		a, ok = s.algorithm(name)
	}
	return a.clone(), ok
}

// Algorithms implements Store.
func (db *DB) Algorithms() []Algorithm {
	s := db.snap.Load()
	out := make([]Algorithm, len(s.algoList))
	for i, a := range s.algoList {
		out[i] = a.clone()
	}
	return out
}

// Pool implements Store.
func (db *DB) Pool(addr string) (Pool, bool) {
	s := db.snap.Load()
	if p, ok := s.pools[addr]; ok { // the common case: addr is already canonical
		return p, true
	}
	norm, err := NormalizeAddr(addr)
	if err != nil {
		return Pool{}, false
	}
	p, ok := s.pools[norm]
	return p, ok
}

// Pools implements Store.
func (db *DB) Pools() []Pool {
	s := db.snap.Load()
	out := make([]Pool, len(s.poolList))
	copy(out, s.poolList)
	return out
}

// User implements Store.
func (db *DB) User(name string) (User, bool) {
	u, ok := db.snap.Load().users[name]
	return u.clone(), ok
}

// Users implements Store.
func (db *DB) Users() []User {
	s := db.snap.Load()
	out := make([]User, len(s.userNames))
	for i, n := range s.userNames {
		out[i] = s.users[n].clone()
	}
	return out
}

// PutPool implements Store.
func (db *DB) PutPool(p Pool) error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if db.closed {
		return ErrClosed
	}
	old := db.snap.Load()
	p, err := checkPool(old, p)
	if err != nil {
		return err
	}
	err = db.bolt.Update(func(tx *bolt.Tx) error { return putJSON(tx.Bucket(bucketPools), p.Addr, p) })
	if err != nil {
		return fmt.Errorf("store: put pool %s: %w", p.Addr, err)
	}
	next := old.with()
	pools := maps.Clone(old.pools)
	pools[p.Addr] = p
	next.setPools(pools)
	db.snap.Store(next)
	return nil
}

// RegisterUser implements Store.
func (db *DB) RegisterUser(primary Account, backups []Account) (string, RegisterOutcome, error) {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if db.closed {
		return "", RegisterUnchanged, ErrClosed
	}
	old := db.snap.Load()
	p, err := checkAccount(old, primary, "primary")
	if err != nil {
		return "", RegisterUnchanged, err
	}
	if len(backups) > MaxBackups {
		return "", RegisterUnchanged, fmt.Errorf("%w: %d backups, at most %d", ErrInvalidAccount, len(backups), MaxBackups)
	}
	u := User{Account: p}
	for i, b := range backups {
		b, err := checkAccount(old, b, "backup "+strconv.Itoa(i+1))
		if err != nil {
			return "", RegisterUnchanged, err
		}
		u.Backups = append(u.Backups, b)
	}
	digest := db.keys.dedupe(p)
	if name, ok := old.dedupe[digest]; ok {
		if backups == nil {
			return name, RegisterUnchanged, nil
		}
		return db.replaceBackupsLocked(old, name, u.Backups)
	}
	u.Name = newName(old.users)
	u.Created = time.Now().UTC().Round(0)
	rec := db.encode(u, digest)
	err = db.bolt.Update(func(tx *bolt.Tx) error { return putJSON(tx.Bucket(bucketUsers), u.Name, rec) })
	if err != nil {
		return "", RegisterUnchanged, fmt.Errorf("store: register user: %w", err)
	}
	next := old.with()
	users := maps.Clone(old.users)
	users[u.Name] = u
	dd := maps.Clone(old.dedupe)
	dd[digest] = u.Name
	next.setUsers(users, dd)
	db.snap.Store(next)
	return u.Name, RegisterCreated, nil
}

// replaceBackupsLocked gives the existing user name the checked backups,
// keeping everything else of its record (primary, created, last seen).
// The caller holds writeMu and old is the current snapshot.
func (db *DB) replaceBackupsLocked(old *snapshot, name string, backups []Account) (string, RegisterOutcome, error) {
	u := old.users[name]
	if slices.Equal(u.Backups, backups) {
		return name, RegisterUnchanged, nil
	}
	// Only the backups of the stored record are rewritten (re-sealed for
	// their positions), so a LastSeen written by flushTouches stays.
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUsers)
		var r userRecord
		if err := json.Unmarshal(b.Get([]byte(name)), &r); err != nil {
			return fmt.Errorf("user %s: %w", name, err)
		}
		r.Backups = db.encodeBackups(name, backups)
		return putJSON(b, name, r)
	})
	if err != nil {
		return "", RegisterUnchanged, fmt.Errorf("store: update backups of %s: %w", name, err)
	}
	u.Backups = backups
	next := old.with()
	users := maps.Clone(old.users)
	users[name] = u
	next.users = users // same names, so userNames and dedupe stay valid
	db.snap.Store(next)
	return name, RegisterUpdated, nil
}

// newName returns a fresh issued name: 8 bytes from crypto/rand as 16
// lower-case hex characters, retried on the (2^-64-ish) collision.
func newName(taken map[string]User) string {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic("store: crypto/rand failed: " + err.Error()) // never fails on supported platforms
		}
		name := hex.EncodeToString(b[:])
		if _, dup := taken[name]; !dup {
			return name
		}
	}
}

// Touch implements Store. It costs one map lookup and one short mutex
// hold; the write happens in the background.
func (db *DB) Touch(name string, t time.Time) {
	if _, ok := db.snap.Load().users[name]; !ok {
		return
	}
	t = t.UTC().Round(0)
	db.touchMu.Lock()
	if db.touched == nil {
		db.touched = make(map[string]time.Time)
	}
	if prev, ok := db.touched[name]; !ok || t.After(prev) {
		db.touched[name] = t
	}
	db.touchMu.Unlock()
}

// flusher writes buffered Touch times every interval until Close.
func (db *DB) flusher(every time.Duration) {
	defer close(db.done)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-db.stop:
			return
		case <-tick.C:
			if err := db.flushTouches(); err != nil {
				db.onError(err)
			}
		}
	}
}

// flushTouches writes the buffered Touch times in one transaction and
// publishes a snapshot with the new LastSeen values. On failure the times
// go back into the buffer for the next attempt.
func (db *DB) flushTouches() error {
	db.touchMu.Lock()
	pending := db.touched
	db.touched = nil
	db.touchMu.Unlock()
	if len(pending) == 0 {
		return nil
	}

	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if db.closed {
		return ErrClosed
	}
	old := db.snap.Load()
	users := maps.Clone(old.users)
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUsers)
		for name, t := range pending {
			u, ok := users[name]
			if !ok || !t.After(u.LastSeen) {
				continue
			}
			var r userRecord
			if err := json.Unmarshal(b.Get([]byte(name)), &r); err != nil {
				return fmt.Errorf("user %s: %w", name, err)
			}
			r.LastSeen = t
			if err := putJSON(b, name, r); err != nil {
				return err
			}
			u.LastSeen = t
			users[name] = u
		}
		return nil
	})
	if err != nil {
		db.touchMu.Lock()
		for name, t := range pending {
			if db.touched == nil {
				db.touched = make(map[string]time.Time)
			}
			if prev, ok := db.touched[name]; !ok || t.After(prev) {
				db.touched[name] = t
			}
		}
		db.touchMu.Unlock()
		return fmt.Errorf("store: write last seen: %w", err)
	}
	next := old.with()
	next.users = users // same names, so userNames and dedupe stay valid
	db.snap.Store(next)
	return nil
}

// Close implements Store: it stops the background writer, writes the
// buffered Touch times and closes the file. Reads keep answering from the
// last snapshot; writes return ErrClosed. Close is idempotent.
func (db *DB) Close() error {
	var err error
	db.closeOnce.Do(func() {
		close(db.stop)
		<-db.done
		err = db.flushTouches()
		db.writeMu.Lock()
		defer db.writeMu.Unlock()
		db.closed = true
		if cerr := db.bolt.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("store: close %s: %w", db.path, cerr)
		}
	})
	return err
}
