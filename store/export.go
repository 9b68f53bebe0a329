package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strconv"
	"time"
)

// Thin exported wrappers over the package's validation, snapshot and
// crypto, so that another backend (store/etcdstore) keeps exactly the
// semantics and the on-disk record format of the bbolt store. Nothing
// here changes how DB behaves.

// ErrUnavailable means the store's backend (etcd) could not be reached in
// time: the write was not acknowledged (it may or may not have happened;
// retrying is safe for every Store write). Reads keep answering from the
// last snapshot.
var ErrUnavailable = errors.New("store: backend unavailable")

// DefaultKeyFile is the key file's name beside the database.
const DefaultKeyFile = defaultKeyFile

// Keys seals and opens passwords and computes the dedupe digests, with
// the subkeys of one key file. Every instance sharing a backend must use
// the same key file.
type Keys struct{ k *keys }

// ReadKeys reads an existing key file (fs.ErrNotExist, wrapped, when it is
// missing).
func ReadKeys(path string) (*Keys, error) {
	master, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	return newExportedKeys(master)
}

// LoadOrCreateKeys reads the key file, creating it (0600, random) when it
// does not exist.
//
// Several processes may do this at once on one key file (instances of a
// cluster starting together): one creates it, and a reader that finds it
// created but not yet written reads it again (for at most 1s).
func LoadOrCreateKeys(path string) (*Keys, error) {
	master, err := loadOrCreateKey(path)
	for i := 0; err != nil && !IsNotExist(err) && i < 20; i++ {
		time.Sleep(50 * time.Millisecond)
		master, err = readKeyFile(path)
	}
	if err != nil {
		return nil, err
	}
	return newExportedKeys(master)
}

// IsNotExist reports whether err says a key file is missing.
func IsNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

func newExportedKeys(master []byte) (*Keys, error) {
	k, err := newKeys(master)
	if err != nil {
		return nil, err
	}
	return &Keys{k: k}, nil
}

// Check is the value a store records to recognise its key file.
func (k *Keys) Check() []byte { return k.k.check() }

// Dedupe is the digest of an account's (pool, user, password).
func (k *Keys) Dedupe(a Account) string { return k.k.dedupe(a) }

// EncodeUser returns the stored record of u (JSON, passwords sealed) as
// the bbolt store writes it, with the dedupe digest of its primary.
func (k *Keys) EncodeUser(u User) (raw []byte, dedupe string, err error) {
	db := &DB{keys: k.k}
	dedupe = k.k.dedupe(u.Account)
	raw, err = json.Marshal(db.encode(u, dedupe))
	return raw, dedupe, err
}

// DecodeUser turns a stored record of user name back into a User,
// returning its dedupe digest too.
func (k *Keys) DecodeUser(name string, raw []byte) (User, string, error) {
	var r userRecord
	if err := json.Unmarshal(raw, &r); err != nil {
		return User{}, "", fmt.Errorf("user %s: %w", name, err)
	}
	db := &DB{keys: k.k}
	u, err := db.decode(name, &r)
	if err != nil {
		return User{}, "", fmt.Errorf("user %s: %w", name, err)
	}
	return u, r.Dedupe, nil
}

// NewName returns a fresh issued name not in taken.
func NewName(taken func(string) bool) string {
	for {
		n := newName(nil)
		if !taken(n) {
			return n
		}
	}
}

// CheckAlgorithm validates a (a copy) and returns it with its names
// canonical (ErrInvalidAlgorithm).
func CheckAlgorithm(a Algorithm) (Algorithm, error) { return checkAlgorithm(a.clone()) }

// Tables is an immutable view of the three tables, the same one DB's
// readers use: lookups never lock and return copies. Build one with
// NewTables and derive changed ones with the With methods.
type Tables struct{ s *snapshot }

// NewTables builds Tables; it takes ownership of the maps. dedupe maps
// each user's primary digest to its name.
func NewTables(algos []Algorithm, pools map[string]Pool, users map[string]User, dedupe map[string]string) *Tables {
	return &Tables{s: newSnapshot(algos, pools, users, dedupe)}
}

// WithAlgorithms returns t with the algorithm table replaced.
func (t *Tables) WithAlgorithms(algos []Algorithm) *Tables {
	n := t.s.with()
	n.setAlgorithms(algos)
	return &Tables{s: n}
}

// WithPools returns t with the pool table replaced (ownership of pools
// passes).
func (t *Tables) WithPools(pools map[string]Pool) *Tables {
	n := t.s.with()
	n.setPools(pools)
	return &Tables{s: n}
}

// WithUsers returns t with the users and dedupe index replaced (ownership
// passes).
func (t *Tables) WithUsers(users map[string]User, dedupe map[string]string) *Tables {
	n := t.s.with()
	n.setUsers(users, dedupe)
	return &Tables{s: n}
}

// CheckPool validates p against t's algorithms as PutPool does.
func (t *Tables) CheckPool(p Pool) (Pool, error) { return checkPool(t.s, p) }

// CheckAccount validates a against t's pools; what names it in errors.
func (t *Tables) CheckAccount(a Account, what string) (Account, error) {
	return checkAccount(t.s, a, what)
}

// CheckBackups validates a backup list as RegisterUser and SetBackups do.
// It returns nil for an empty list.
func (t *Tables) CheckBackups(backups []Account) ([]Account, error) {
	if len(backups) > MaxBackups {
		return nil, fmt.Errorf("%w: %d backups, at most %d", ErrInvalidAccount, len(backups), MaxBackups)
	}
	var out []Account
	for i, b := range backups {
		b, err := checkAccount(t.s, b, "backup "+strconv.Itoa(i+1))
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// CheckAliases reports an algorithm whose name or aliases clash with
// another algorithm of t, as PutAlgorithm refuses them.
func (t *Tables) CheckAliases(a Algorithm) error {
	for _, al := range a.Aliases {
		if o, ok := t.s.algos[al]; ok && o.Name != a.Name {
			return fmt.Errorf("%w: %s: alias %q is algorithm %s", ErrInvalidAlgorithm, a.Name, al, o.Name)
		}
	}
	if o, ok := t.s.algos[a.Name]; ok && o.Name != a.Name {
		return fmt.Errorf("%w: %s is an alias of %s", ErrInvalidAlgorithm, a.Name, o.Name)
	}
	return nil
}

// UsesPool returns the first user whose primary or backup is on addr.
func (t *Tables) UsesPool(addr string) (string, bool) { return t.s.usesPool(addr) }

// PoolUsing returns the first pool of algorithm name.
func (t *Tables) PoolUsing(algorithm string) (string, bool) {
	for _, p := range t.s.poolList {
		if p.Algorithm == algorithm {
			return p.Addr, true
		}
	}
	return "", false
}

// ByDedupe returns the user registered with the primary digest.
func (t *Tables) ByDedupe(digest string) (string, bool) {
	n, ok := t.s.dedupe[digest]
	return n, ok
}

// AlgorithmList returns the canonical algorithms (shared: do not modify).
func (t *Tables) AlgorithmList() []Algorithm { return t.s.algoList }

// PoolMap returns a copy of the pool table.
func (t *Tables) PoolMap() map[string]Pool { return maps.Clone(t.s.pools) }

// UserMaps returns copies of the users and the dedupe index.
func (t *Tables) UserMaps() (map[string]User, map[string]string) {
	return maps.Clone(t.s.users), maps.Clone(t.s.dedupe)
}

// Algorithm is Store.Algorithm on t.
func (t *Tables) Algorithm(name string) (Algorithm, bool) {
	a, ok := t.s.algos[name]
	if !ok {
		a, ok = t.s.algorithm(name)
	}
	return a.clone(), ok
}

// Algorithms is Store.Algorithms on t.
func (t *Tables) Algorithms() []Algorithm {
	out := make([]Algorithm, len(t.s.algoList))
	for i, a := range t.s.algoList {
		out[i] = a.clone()
	}
	return out
}

// Pool is Store.Pool on t.
func (t *Tables) Pool(addr string) (Pool, bool) {
	if p, ok := t.s.pools[addr]; ok {
		return p, true
	}
	norm, err := NormalizeAddr(addr)
	if err != nil {
		return Pool{}, false
	}
	p, ok := t.s.pools[norm]
	return p, ok
}

// Pools is Store.Pools on t.
func (t *Tables) Pools() []Pool { return slices.Clone(t.s.poolList) }

// User is Store.User on t.
func (t *Tables) User(name string) (User, bool) {
	u, ok := t.s.users[name]
	return u.clone(), ok
}

// Users is Store.Users on t.
func (t *Tables) Users() []User {
	out := make([]User, len(t.s.userNames))
	for i, n := range t.s.userNames {
		out[i] = t.s.users[n].clone()
	}
	return out
}

// HasUser reports whether name is issued, without copying it.
func (t *Tables) HasUser(name string) bool {
	_, ok := t.s.users[name]
	return ok
}

// RecordInfo returns what a stored user record says without opening its
// passwords: its primary's dedupe digest and the pools it refers to
// (primary first, then backups).
func RecordInfo(raw []byte) (dedupe string, pools []string, err error) {
	var r userRecord
	if err := json.Unmarshal(raw, &r); err != nil {
		return "", nil, err
	}
	pools = append(pools, r.Pool)
	for _, b := range r.Backups {
		pools = append(pools, b.Pool)
	}
	return r.Dedupe, pools, nil
}
