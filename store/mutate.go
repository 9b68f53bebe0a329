package store

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// The store's changes other than registration: pools, algorithms and
// users changed or removed while the proxy runs. Each runs one bbolt
// transaction under writeMu and then publishes a new snapshot, so readers
// (the event loops) see the change at once and never wait.

// usesPool reports the first user whose primary or backup is on addr.
func (s *snapshot) usesPool(addr string) (string, bool) {
	for _, n := range s.userNames {
		u := s.users[n]
		if u.Pool == addr {
			return n, true
		}
		for _, b := range u.Backups {
			if b.Pool == addr {
				return n, true
			}
		}
	}
	return "", false
}

// DeletePool implements Store.
func (db *DB) DeletePool(addr string) error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if db.closed {
		return ErrClosed
	}
	old := db.snap.Load()
	norm, err := NormalizeAddr(addr)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidPool, err)
	}
	if _, ok := old.pools[norm]; !ok {
		return fmt.Errorf("%w %q", ErrUnknownPool, norm)
	}
	if user, ok := old.usesPool(norm); ok {
		return fmt.Errorf("%w: pool %s is an account of user %s (delete or move its users first)", ErrInUse, norm, user)
	}
	err = db.bolt.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketPools).Delete([]byte(norm)) })
	if err != nil {
		return fmt.Errorf("store: delete pool %s: %w", norm, err)
	}
	next := old.with()
	pools := maps.Clone(old.pools)
	delete(pools, norm)
	next.setPools(pools)
	db.snap.Store(next)
	return nil
}

// PutAlgorithm implements Store.
func (db *DB) PutAlgorithm(a Algorithm) error {
	a = a.clone()
	a, err := checkAlgorithm(a)
	if err != nil {
		return err
	}
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if db.closed {
		return ErrClosed
	}
	old := db.snap.Load()
	for _, al := range a.Aliases {
		if o, ok := old.algos[al]; ok && o.Name != a.Name {
			return fmt.Errorf("%w: %s: alias %q is algorithm %s", ErrInvalidAlgorithm, a.Name, al, o.Name)
		}
	}
	if o, ok := old.algos[a.Name]; ok && o.Name != a.Name {
		return fmt.Errorf("%w: %s is an alias of %s", ErrInvalidAlgorithm, a.Name, o.Name)
	}
	err = db.bolt.Update(func(tx *bolt.Tx) error { return putJSON(tx.Bucket(bucketAlgorithms), a.Name, a) })
	if err != nil {
		return fmt.Errorf("store: put algorithm %s: %w", a.Name, err)
	}
	list := slices.DeleteFunc(slices.Clone(old.algoList), func(o Algorithm) bool { return o.Name == a.Name })
	next := old.with()
	next.setAlgorithms(append(list, a))
	db.snap.Store(next)
	return nil
}

// DeleteAlgorithm implements Store.
func (db *DB) DeleteAlgorithm(name string) error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if db.closed {
		return ErrClosed
	}
	old := db.snap.Load()
	a, ok := old.algorithm(name)
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownAlgorithm, name)
	}
	for _, p := range old.poolList {
		if p.Algorithm == a.Name {
			return fmt.Errorf("%w: algorithm %s is used by pool %s (delete or change its pools first)", ErrInUse, a.Name, p.Addr)
		}
	}
	err := db.bolt.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketAlgorithms).Delete([]byte(a.Name)) })
	if err != nil {
		return fmt.Errorf("store: delete algorithm %s: %w", a.Name, err)
	}
	list := slices.DeleteFunc(slices.Clone(old.algoList), func(o Algorithm) bool { return o.Name == a.Name })
	next := old.with()
	next.setAlgorithms(list)
	db.snap.Store(next)
	return nil
}

// SetPassword implements Store. The user keeps its name: registering the
// same pool and user with the new password afterwards finds it.
func (db *DB) SetPassword(name string, password Secret) error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if db.closed {
		return ErrClosed
	}
	old := db.snap.Load()
	u, ok := old.users[name]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownUser, name)
	}
	acct := u.Account
	acct.Password = password
	acct, err := checkAccount(old, acct, "primary")
	if err != nil {
		return err
	}
	digest := db.keys.dedupe(acct)
	if other, taken := old.dedupe[digest]; taken && other != name {
		return fmt.Errorf("%w: user %s has that pool, user and password already", ErrInvalidAccount, other)
	}
	var oldDigest string
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUsers)
		var r userRecord
		if err := json.Unmarshal(b.Get([]byte(name)), &r); err != nil {
			return fmt.Errorf("user %s: %w", name, err)
		}
		oldDigest = r.Dedupe
		r.Password = db.keys.seal(password.Reveal(), sealAD(name, 0))
		r.Dedupe = digest
		return putJSON(b, name, r)
	})
	if err != nil {
		return fmt.Errorf("store: set password of %s: %w", name, err)
	}
	u.Account = acct
	next := old.with()
	users := maps.Clone(old.users)
	users[name] = u
	dd := maps.Clone(old.dedupe)
	delete(dd, oldDigest)
	dd[digest] = name
	next.setUsers(users, dd)
	db.snap.Store(next)
	return nil
}

// SetBackups implements Store.
func (db *DB) SetBackups(name string, backups []Account) error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if db.closed {
		return ErrClosed
	}
	old := db.snap.Load()
	if _, ok := old.users[name]; !ok {
		return fmt.Errorf("%w %q", ErrUnknownUser, name)
	}
	if len(backups) > MaxBackups {
		return fmt.Errorf("%w: %d backups, at most %d", ErrInvalidAccount, len(backups), MaxBackups)
	}
	checked := make([]Account, 0, len(backups))
	for i, b := range backups {
		b, err := checkAccount(old, b, fmt.Sprint("backup ", i+1))
		if err != nil {
			return err
		}
		checked = append(checked, b)
	}
	if len(checked) == 0 {
		checked = nil
	}
	_, _, err := db.replaceBackupsLocked(old, name, checked)
	return err
}

// DeleteUser implements Store.
func (db *DB) DeleteUser(name string) error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if db.closed {
		return ErrClosed
	}
	old := db.snap.Load()
	if _, ok := old.users[name]; !ok {
		return fmt.Errorf("%w %q", ErrUnknownUser, name)
	}
	var digest string
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUsers)
		var r userRecord
		if err := json.Unmarshal(b.Get([]byte(name)), &r); err == nil {
			digest = r.Dedupe
		}
		return b.Delete([]byte(name))
	})
	if err != nil {
		return fmt.Errorf("store: delete user %s: %w", name, err)
	}
	next := old.with()
	users := maps.Clone(old.users)
	delete(users, name)
	dd := maps.Clone(old.dedupe)
	if dd[digest] == name {
		delete(dd, digest)
	}
	next.setUsers(users, dd)
	db.snap.Store(next)
	return nil
}
