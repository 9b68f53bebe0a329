package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/stratum-proxy/stratum-proxy/store"
)

// Writes check against the current snapshot as the bbolt store does, then
// commit one etcd transaction whose comparisons guard what another
// instance may have changed meanwhile, then apply the change locally so
// that this instance reads its own write at once (the watch delivers it
// again later; it is recognised by its revision).

// casAttempts bounds the retries of a write whose guard failed because
// another instance changed the same key meanwhile.
const casAttempts = 4

func (s *Store) begin() (context.Context, context.CancelFunc, error) {
	if s.closed {
		return nil, nil, store.ErrClosed
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	return ctx, cancel, nil
}

// PutPool implements store.Store.
func (s *Store) PutPool(p store.Pool) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	ctx, cancel, err := s.begin()
	if err != nil {
		return err
	}
	defer cancel()
	p, err = s.snap.Load().CheckPool(p)
	if err != nil {
		return err
	}
	key, val := s.pfx+kPools+p.Addr, mustJSON(p)
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(s.pfx+kAlgorithms+p.Algorithm), ">", 0)).
		Then(clientv3.OpPut(key, val)).Commit()
	if err != nil {
		return unavailable("put pool "+p.Addr, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("%w %q (pool %s; deleted by another instance)", store.ErrUnknownAlgorithm, p.Algorithm, p.Addr)
	}
	s.apply(change{key: key, value: []byte(val), rev: resp.Header.Revision})
	return nil
}

// DeletePool implements store.Store. Besides the snapshot's check, the
// users are read from etcd and the delete is guarded on none of them
// having changed since, so a user registered on another instance a moment
// earlier is not left without its pool.
func (s *Store) DeletePool(addr string) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	ctx, cancel, err := s.begin()
	if err != nil {
		return err
	}
	defer cancel()
	t := s.snap.Load()
	norm, err := store.NormalizeAddr(addr)
	if err != nil {
		return fmt.Errorf("%w: %v", store.ErrInvalidPool, err)
	}
	if _, ok := t.Pool(norm); !ok {
		return fmt.Errorf("%w %q", store.ErrUnknownPool, norm)
	}
	if user, ok := t.UsesPool(norm); ok {
		return fmt.Errorf("%w: pool %s is an account of user %s (delete or move its users first)", store.ErrInUse, norm, user)
	}
	key := s.pfx + kPools + norm
	err = s.guardedDelete(ctx, key, kUsers, "delete pool "+norm, func(kv *mvccpb.KeyValue) error {
		if _, pools, err := store.RecordInfo(kv.Value); err == nil && slices.Contains(pools, norm) {
			return fmt.Errorf("%w: pool %s is an account of user %s (delete or move its users first)", store.ErrInUse, norm, string(kv.Key[len(s.pfx+kUsers):]))
		}
		return nil
	})
	if errors.Is(err, errGone) {
		return fmt.Errorf("%w %q", store.ErrUnknownPool, norm)
	}
	return err
}

// errGone: the key to delete was deleted meanwhile.
var errGone = errors.New("etcdstore: gone")

// guardedDelete deletes key unless one of the records under prefix refers
// to it (inUse says so with the error to return): it reads them and
// deletes in a transaction guarded on none of them having changed since,
// so a record written on another instance a moment earlier is never left
// dangling. It returns errGone when key was deleted meanwhile.
func (s *Store) guardedDelete(ctx context.Context, key, prefix, what string, inUse func(*mvccpb.KeyValue) error) error {
	for range casAttempts {
		recs, err := s.cli.Get(ctx, s.pfx+prefix, clientv3.WithPrefix())
		if err != nil {
			return unavailable(what, err)
		}
		for _, kv := range recs.Kvs {
			if err := inUse(kv); err != nil {
				return err
			}
		}
		resp, err := s.cli.Txn(ctx).If(
			clientv3.Compare(clientv3.ModRevision(s.pfx+prefix), "<", recs.Header.Revision+1).WithPrefix(),
			clientv3.Compare(clientv3.CreateRevision(key), ">", 0),
		).Then(clientv3.OpDelete(key)).Else(clientv3.OpGet(key)).Commit()
		if err != nil {
			return unavailable(what, err)
		}
		if resp.Succeeded {
			s.apply(change{key: key, rev: resp.Header.Revision, del: true})
			return nil
		}
		if len(resp.Responses[0].GetResponseRange().GetKvs()) == 0 {
			return errGone
		}
	}
	return unavailable(what, errConflict)
}

var errConflict = fmt.Errorf("changed concurrently by other instances %d times in a row, try again", casAttempts)

// PutAlgorithm implements store.Store.
func (s *Store) PutAlgorithm(a store.Algorithm) error {
	a, err := store.CheckAlgorithm(a)
	if err != nil {
		return err
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	ctx, cancel, err := s.begin()
	if err != nil {
		return err
	}
	defer cancel()
	if err := s.snap.Load().CheckAliases(a); err != nil {
		return err
	}
	key, val := s.pfx+kAlgorithms+a.Name, mustJSON(a)
	resp, err := s.cli.Put(ctx, key, val)
	if err != nil {
		return unavailable("put algorithm "+a.Name, err)
	}
	s.apply(change{key: key, value: []byte(val), rev: resp.Header.Revision})
	return nil
}

// DeleteAlgorithm implements store.Store, guarded like DeletePool on the
// pools not having changed since they were checked.
func (s *Store) DeleteAlgorithm(name string) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	ctx, cancel, err := s.begin()
	if err != nil {
		return err
	}
	defer cancel()
	t := s.snap.Load()
	a, ok := t.Algorithm(name)
	if !ok {
		return fmt.Errorf("%w %q", store.ErrUnknownAlgorithm, name)
	}
	if p, ok := t.PoolUsing(a.Name); ok {
		return fmt.Errorf("%w: algorithm %s is used by pool %s (delete or change its pools first)", store.ErrInUse, a.Name, p)
	}
	key := s.pfx + kAlgorithms + a.Name
	err = s.guardedDelete(ctx, key, kPools, "delete algorithm "+a.Name, func(kv *mvccpb.KeyValue) error {
		var p store.Pool
		if jsonUnmarshal(kv.Value, &p) == nil && p.Algorithm == a.Name {
			return fmt.Errorf("%w: algorithm %s is used by pool %s (delete or change its pools first)", store.ErrInUse, a.Name, p.Addr)
		}
		return nil
	})
	if errors.Is(err, errGone) {
		return fmt.Errorf("%w %q", store.ErrUnknownAlgorithm, name)
	}
	return err
}

// RegisterUser implements store.Store. The new name is created in one
// transaction with its dedupe key, only if that key is absent and every
// pool it names still exists; when another instance registered the same
// primary first, its name is returned, so concurrent registrations of one
// account on several instances all get the same name.
func (s *Store) RegisterUser(primary store.Account, backups []store.Account) (string, store.RegisterOutcome, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	ctx, cancel, err := s.begin()
	if err != nil {
		return "", store.RegisterUnchanged, err
	}
	defer cancel()
	t := s.snap.Load()
	p, err := t.CheckAccount(primary, "primary")
	if err != nil {
		return "", store.RegisterUnchanged, err
	}
	bs, err := t.CheckBackups(backups)
	if err != nil {
		return "", store.RegisterUnchanged, err
	}
	digest := s.keys.Dedupe(p)
	if name, ok := t.ByDedupe(digest); ok {
		if backups == nil {
			return name, store.RegisterUnchanged, nil
		}
		return s.replaceBackups(ctx, name, bs)
	}
	u := store.User{Account: p, Backups: bs, Name: store.NewName(t.HasUser), Created: time.Now().UTC().Round(0)}
	raw, _, err := s.keys.EncodeUser(u)
	if err != nil {
		return "", store.RegisterUnchanged, err
	}
	dkey, ukey := s.pfx+kDedupe+digest, s.pfx+kUsers+u.Name
	cmps := []clientv3.Cmp{
		clientv3.Compare(clientv3.CreateRevision(dkey), "=", 0),
		clientv3.Compare(clientv3.CreateRevision(ukey), "=", 0),
	}
	var poolGets []clientv3.Op
	for _, a := range append([]store.Account{p}, bs...) {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(s.pfx+kPools+a.Pool), ">", 0))
		poolGets = append(poolGets, clientv3.OpGet(s.pfx+kPools+a.Pool, clientv3.WithKeysOnly()))
	}
	resp, err := s.cli.Txn(ctx).If(cmps...).
		Then(clientv3.OpPut(dkey, u.Name), clientv3.OpPut(ukey, string(raw))).
		Else(append([]clientv3.Op{clientv3.OpGet(dkey)}, poolGets...)...).Commit()
	if err != nil {
		return "", store.RegisterUnchanged, unavailable("register user", err)
	}
	if resp.Succeeded {
		s.apply(change{key: ukey, value: raw, rev: resp.Header.Revision})
		return u.Name, store.RegisterCreated, nil
	}
	if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
		// Registered by another instance first: take its name, and its
		// record now rather than when the watch brings it.
		name := string(kvs[0].Value)
		if err := s.refresh(ctx, s.pfx+kUsers+name); err != nil {
			return "", store.RegisterUnchanged, err
		}
		if backups == nil {
			return name, store.RegisterUnchanged, nil
		}
		return s.replaceBackups(ctx, name, bs)
	}
	for i, a := range append([]store.Account{p}, bs...) {
		if len(resp.Responses[i+1].GetResponseRange().GetKvs()) == 0 {
			key := s.pfx + kPools + a.Pool
			s.apply(change{key: key, rev: resp.Header.Revision, del: true})
			return "", store.RegisterUnchanged, fmt.Errorf("%w %q (deleted by another instance)", store.ErrUnknownPool, a.Pool)
		}
	}
	return "", store.RegisterUnchanged, unavailable("register user", errConflict) // a name collision: 2^-64
}

// refresh reads one key and applies it.
func (s *Store) refresh(ctx context.Context, key string) error {
	r, err := s.cli.Get(ctx, key)
	if err != nil {
		return unavailable("read "+key, err)
	}
	if len(r.Kvs) == 0 {
		s.apply(change{key: key, rev: r.Header.Revision, del: true})
		return nil
	}
	s.apply(change{key: key, value: r.Kvs[0].Value, rev: r.Kvs[0].ModRevision})
	return nil
}

// replaceBackups gives user name the checked backups.
func (s *Store) replaceBackups(ctx context.Context, name string, bs []store.Account) (string, store.RegisterOutcome, error) {
	changed := false
	err := s.updateUser(ctx, name, func(u *store.User, _ string) ([]clientv3.Cmp, []clientv3.Op, bool, error) {
		if slices.Equal(u.Backups, bs) {
			return nil, nil, false, nil
		}
		u.Backups = bs
		changed = true
		return nil, nil, true, nil
	})
	if err != nil {
		return "", store.RegisterUnchanged, err
	}
	if changed {
		return name, store.RegisterUpdated, nil
	}
	return name, store.RegisterUnchanged, nil
}

// updateUser reads user name's record from etcd, lets fn change it, and
// writes it back guarded on the record's mod revision (and fn's
// comparisons), retrying a few times when another instance wrote between.
func (s *Store) updateUser(ctx context.Context, name string,
	fn func(u *store.User, digest string) (cmps []clientv3.Cmp, ops []clientv3.Op, write bool, err error),
) error {
	key := s.pfx + kUsers + name
	for range casAttempts {
		r, err := s.cli.Get(ctx, key)
		if err != nil {
			return unavailable("read user "+name, err)
		}
		if len(r.Kvs) == 0 {
			s.apply(change{key: key, rev: r.Header.Revision, del: true})
			return fmt.Errorf("%w %q", store.ErrUnknownUser, name)
		}
		kv := r.Kvs[0]
		s.apply(change{key: key, value: kv.Value, rev: kv.ModRevision})
		u, digest, err := s.keys.DecodeUser(name, kv.Value)
		if err != nil {
			return err
		}
		cmps, ops, write, err := fn(&u, digest)
		if err != nil || !write {
			return err
		}
		raw, _, err := s.keys.EncodeUser(u)
		if err != nil {
			return err
		}
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision))
		ops = append(ops, clientv3.OpPut(key, string(raw)))
		resp, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
		if err != nil {
			return unavailable("write user "+name, err)
		}
		if resp.Succeeded {
			s.apply(change{key: key, value: raw, rev: resp.Header.Revision})
			return nil
		}
	}
	return unavailable("write user "+name, errConflict)
}

// SetPassword implements store.Store.
func (s *Store) SetPassword(name string, password store.Secret) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	ctx, cancel, err := s.begin()
	if err != nil {
		return err
	}
	defer cancel()
	t := s.snap.Load()
	cur, ok := t.User(name)
	if !ok {
		return fmt.Errorf("%w %q", store.ErrUnknownUser, name)
	}
	acct := cur.Account
	acct.Password = password
	acct, err = t.CheckAccount(acct, "primary")
	if err != nil {
		return err
	}
	digest := s.keys.Dedupe(acct)
	if other, taken := t.ByDedupe(digest); taken && other != name {
		return fmt.Errorf("%w: user %s has that pool, user and password already", store.ErrInvalidAccount, other)
	}
	dkey := s.pfx + kDedupe + digest
	err = s.updateUser(ctx, name, func(u *store.User, old string) ([]clientv3.Cmp, []clientv3.Op, bool, error) {
		u.Password = password
		if old == digest {
			return nil, nil, true, nil
		}
		r, err := s.cli.Get(ctx, dkey)
		if err != nil {
			return nil, nil, false, unavailable("set password", err)
		}
		if len(r.Kvs) > 0 && string(r.Kvs[0].Value) != name {
			return nil, nil, false, fmt.Errorf("%w: user %s has that pool, user and password already", store.ErrInvalidAccount, r.Kvs[0].Value)
		}
		return []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(dkey), "=", 0)},
			[]clientv3.Op{clientv3.OpDelete(s.pfx + kDedupe + old), clientv3.OpPut(dkey, name)}, true, nil
	})
	return err
}

// SetBackups implements store.Store.
func (s *Store) SetBackups(name string, backups []store.Account) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	ctx, cancel, err := s.begin()
	if err != nil {
		return err
	}
	defer cancel()
	t := s.snap.Load()
	if !t.HasUser(name) {
		return fmt.Errorf("%w %q", store.ErrUnknownUser, name)
	}
	bs, err := t.CheckBackups(backups)
	if err != nil {
		return err
	}
	_, _, err = s.replaceBackups(ctx, name, bs)
	return err
}

// DeleteUser implements store.Store.
func (s *Store) DeleteUser(name string) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	ctx, cancel, err := s.begin()
	if err != nil {
		return err
	}
	defer cancel()
	if !s.snap.Load().HasUser(name) {
		return fmt.Errorf("%w %q", store.ErrUnknownUser, name)
	}
	key := s.pfx + kUsers + name
	for range casAttempts {
		r, err := s.cli.Get(ctx, key)
		if err != nil {
			return unavailable("delete user "+name, err)
		}
		if len(r.Kvs) == 0 {
			s.apply(change{key: key, rev: r.Header.Revision, del: true})
			return fmt.Errorf("%w %q", store.ErrUnknownUser, name)
		}
		kv := r.Kvs[0]
		ops := []clientv3.Op{clientv3.OpDelete(key), clientv3.OpDelete(s.pfx + kLastSeen + name)}
		if digest, _, err := store.RecordInfo(kv.Value); err == nil && digest != "" {
			ops = append(ops, clientv3.OpDelete(s.pfx+kDedupe+digest))
		}
		resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)).Then(ops...).Commit()
		if err != nil {
			return unavailable("delete user "+name, err)
		}
		if resp.Succeeded {
			s.apply(change{key: key, rev: resp.Header.Revision, del: true},
				change{key: s.pfx + kLastSeen + name, rev: resp.Header.Revision, del: true})
			return nil
		}
	}
	return unavailable("delete user "+name, errConflict)
}
