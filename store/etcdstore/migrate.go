package etcdstore

import (
	"context"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/stratum-proxy/stratum-proxy/store"
)

// ErrNotEmpty means a migration's target prefix already holds a store.
var ErrNotEmpty = errors.New("etcdstore: the etcd prefix is not empty (use --force to replace it)")

// migrateChunk is the puts per transaction of a migration, under etcd's
// default --max-txn-ops of 128.
const migrateChunk = 100

// MigrateStats counts what Migrate copied.
type MigrateStats struct{ Algorithms, Pools, Users int }

// Migrate copies a bbolt store's tables (store.ReadRecords) under prefix:
// users keep their sealed records byte for byte, so the instances that use
// the result need the bbolt store's key file. It refuses a prefix that
// holds anything unless force, which deletes it first (sessions too).
// meta/ is written last, in a transaction that fails if an instance seeded
// the prefix meanwhile: stop the instances while migrating.
func Migrate(ctx context.Context, cli *clientv3.Client, prefix string, r *store.Records, force bool) (MigrateStats, error) {
	pfx := normPrefix(prefix)
	var st MigrateStats
	if len(r.KeyCheck) == 0 {
		return st, errors.New("etcdstore: migrate: the source has no key check")
	}
	cnt, err := cli.Get(ctx, pfx, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return st, unavailable("migrate", err)
	}
	if cnt.Count > 0 {
		if !force {
			return st, fmt.Errorf("%w: %s holds %d keys", ErrNotEmpty, pfx, cnt.Count)
		}
		if _, err := cli.Delete(ctx, pfx, clientv3.WithPrefix()); err != nil {
			return st, unavailable("migrate: clear", err)
		}
	}
	var ops []clientv3.Op
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		_, err := cli.Txn(ctx).Then(ops...).Commit()
		ops = ops[:0]
		if err != nil {
			return unavailable("migrate", err)
		}
		return nil
	}
	add := func(op clientv3.Op) error {
		ops = append(ops, op)
		if len(ops) >= migrateChunk {
			return flush()
		}
		return nil
	}
	for _, a := range r.Algorithms {
		if err := add(clientv3.OpPut(pfx+kAlgorithms+a.Name, mustJSON(a))); err != nil {
			return st, err
		}
		st.Algorithms++
	}
	for _, p := range r.Pools {
		if err := add(clientv3.OpPut(pfx+kPools+p.Addr, mustJSON(p))); err != nil {
			return st, err
		}
		st.Pools++
	}
	for name, raw := range r.Users {
		digest, _, err := store.RecordInfo(raw)
		if err != nil || digest == "" {
			return st, fmt.Errorf("etcdstore: migrate: user %s: bad record: %v", name, err)
		}
		if err := add(clientv3.OpPut(pfx+kUsers+name, string(raw))); err != nil {
			return st, err
		}
		if err := add(clientv3.OpPut(pfx+kDedupe+digest, name)); err != nil {
			return st, err
		}
		st.Users++
	}
	if err := flush(); err != nil {
		return st, err
	}
	resp, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(pfx+kSeeded), "=", 0)).Then(
		clientv3.OpPut(pfx+kKeyCheck, string(r.KeyCheck)),
		clientv3.OpPut(pfx+kSchema, fmt.Sprint(store.SchemaVersion)),
		clientv3.OpPut(pfx+kSeeded, "migrated"),
	).Commit()
	if err != nil {
		return st, unavailable("migrate: meta", err)
	}
	if !resp.Succeeded {
		return st, fmt.Errorf("%w: an instance seeded %s during the migration (stop the instances, then migrate with --force)", ErrNotEmpty, pfx)
	}
	return st, nil
}
