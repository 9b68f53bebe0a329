package store

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Records are the raw tables of a bbolt database, for copying it into
// another backend: users stay as their stored records, passwords sealed.
type Records struct {
	Algorithms []Algorithm
	Pools      []Pool
	// Users maps each issued name to its stored record (JSON as
	// Keys.EncodeUser writes it).
	Users map[string][]byte
	// KeyCheck is the database's key check (Keys.Check of its key file).
	KeyCheck []byte
}

// ReadRecords opens the bbolt database at path (taking its lock, checking
// its key file as Open does) and returns its tables raw.
func ReadRecords(path string, opts *Options) (*Records, error) {
	db, err := Open(path, opts)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	r := &Records{Algorithms: db.Algorithms(), Pools: db.Pools(), Users: map[string][]byte{}}
	err = db.bolt.View(func(tx *bolt.Tx) error {
		r.KeyCheck = bytes.Clone(tx.Bucket(bucketMeta).Get(metaKeyCheck))
		return tx.Bucket(bucketUsers).ForEach(func(k, v []byte) error {
			r.Users[string(k)] = bytes.Clone(v)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: read %s: %w", path, err)
	}
	return r, nil
}
