// Package etcdstore is a store.Store kept in etcd, so that several proxy
// instances share one set of algorithms, pools and issued names, and a
// proxy.SessionStore (Sessions) for restoring a miner's session on another
// instance.
//
// Layout under the prefix (default "/stratum-proxy"):
//
//	algorithms/<name>   Algorithm (JSON)
//	pools/<addr>        Pool (JSON)
//	users/<name>        the user record exactly as the bbolt store keeps it
//	                    (JSON, passwords sealed with the key file)
//	dedupe/<digest>     the issued name of a primary (pool, user, password)
//	lastseen/<name>     RFC 3339 time a miner last authorized with name
//	meta/key-check      the key file's check value
//	meta/schema         store.SchemaVersion
//	meta/seeded         present once the tables were seeded or migrated
//	sessions/<id>       proxy.SessionRecord (JSON), on one lease per instance
//
// Every instance must use the same key file (copy the first instance's
// proxy.key to the others): passwords are sealed with it and the dedupe
// digests are keyed with it. An instance whose key file does not match
// meta/key-check refuses to open with store.ErrKeyMismatch.
//
// Each instance holds the whole tables in memory as an immutable snapshot
// that readers load atomically (reads never touch etcd), fed by a watch
// from the revision it loaded; its own writes are applied locally as soon
// as etcd acknowledges them. Writes go to etcd in transactions with a
// timeout and fail with an error wrapping store.ErrUnavailable when etcd
// cannot be reached; the watch reconnects by itself and, if the revision
// it needs was compacted, the instance reloads everything.
package etcdstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/stratum-proxy/stratum-proxy/store"
)

// Defaults of zero Options fields.
const (
	DefaultPrefix        = "/stratum-proxy"
	defaultTimeout       = 3 * time.Second
	defaultTouchInterval = 5 * time.Second
)

// Options configures Open.
type Options struct {
	// Prefix is the key prefix of this proxy's tables ("" means
	// DefaultPrefix). A trailing slash is ignored.
	Prefix string
	// KeyFile is the path of the shared key file. It is created only
	// when the prefix is new (not yet seeded); otherwise it must exist
	// and match.
	KeyFile string
	// Timeout bounds each etcd request of a write (0: 3s) and Open's
	// reads (three times it).
	Timeout time.Duration
	// TouchInterval is how often buffered Touch times are written (0: 5s).
	TouchInterval time.Duration
	// Log receives background problems (nil: none).
	Log *zerolog.Logger
}

// Store is the etcd-backed store.Store. Create it with Open.
type Store struct {
	cli     *clientv3.Client
	pfx     string // with the trailing slash
	keys    *store.Keys
	timeout time.Duration
	log     zerolog.Logger

	snap atomic.Pointer[store.Tables]

	// mu guards the mutable tables the snapshot is built from.
	mu       sync.Mutex
	algos    map[string]store.Algorithm
	pools    map[string]store.Pool
	users    map[string]store.User // LastSeen merged from lastseen/
	digests  map[string]string     // user name -> its dedupe digest
	dedupe   map[string]string     // digest -> name
	lastSeen map[string]time.Time
	revs     map[string]int64 // key -> mod revision applied (deletes too)

	writeMu sync.Mutex
	closed  bool // guarded by writeMu

	touchMu sync.Mutex
	touched map[string]time.Time

	ctx       context.Context
	cancel    context.CancelFunc
	closeOnce sync.Once
	wg        sync.WaitGroup
	stopFlush chan struct{}
}

var _ store.Store = (*Store)(nil)

// Key names below the prefix.
const (
	kAlgorithms = "algorithms/"
	kPools      = "pools/"
	kUsers      = "users/"
	kDedupe     = "dedupe/"
	kLastSeen   = "lastseen/"
	kSessions   = "sessions/"
	kKeyCheck   = "meta/key-check"
	kSchema     = "meta/schema"
	kSeeded     = "meta/seeded"
)

func normPrefix(p string) string {
	if p == "" {
		p = DefaultPrefix
	}
	return strings.TrimRight(p, "/") + "/"
}

// Open connects a store to the tables under opts.Prefix, seeding them
// from store.Seed if the prefix is new, checks the key file, loads the
// snapshot and starts the watch and the Touch writer. The client stays
// the caller's: close it after the Store.
func Open(cli *clientv3.Client, opts Options) (*Store, error) {
	s := &Store{
		cli:       cli,
		pfx:       normPrefix(opts.Prefix),
		timeout:   opts.Timeout,
		log:       zerolog.Nop(),
		stopFlush: make(chan struct{}),
	}
	if s.timeout <= 0 {
		s.timeout = defaultTimeout
	}
	if opts.Log != nil {
		s.log = *opts.Log
	}
	if opts.KeyFile == "" {
		return nil, errors.New("etcdstore: a key file is required (the same file on every instance)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*s.timeout)
	defer cancel()
	if err := s.initKeys(ctx, opts.KeyFile); err != nil {
		return nil, err
	}
	rev, err := s.reload(ctx)
	if err != nil {
		return nil, unavailable("open: load", err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	every := opts.TouchInterval
	if every <= 0 {
		every = defaultTouchInterval
	}
	s.wg.Add(2)
	go s.watch(rev)
	go s.flusher(every)
	return s, nil
}

func unavailable(op string, err error) error {
	return fmt.Errorf("%w: etcd: %s: %v", store.ErrUnavailable, op, err)
}

// initKeys checks the prefix's key check and schema against the key
// file, seeding a new prefix (once, whoever wins the transaction).
func (s *Store) initKeys(ctx context.Context, keyFile string) error {
	resp, err := s.cli.Txn(ctx).Then(clientv3.OpGet(s.pfx+kKeyCheck), clientv3.OpGet(s.pfx+kSchema)).Commit()
	if err != nil {
		return unavailable("open", err)
	}
	check := firstValue(resp.Responses[0].GetResponseRange().GetKvs())
	if schema := firstValue(resp.Responses[1].GetResponseRange().GetKvs()); schema != nil {
		var n int
		if _, err := fmt.Sscan(string(schema), &n); err != nil || n > store.SchemaVersion {
			return fmt.Errorf("%w: etcd %s has schema %q, this binary supports up to %d", store.ErrSchemaTooNew, s.pfx, schema, store.SchemaVersion)
		}
	}
	if check != nil {
		k, err := store.ReadKeys(keyFile)
		if store.IsNotExist(err) {
			return fmt.Errorf("%w: etcd %s: key file %s is missing (copy the key file the other instances use)", store.ErrKeyMismatch, s.pfx, keyFile)
		}
		if err != nil {
			return fmt.Errorf("etcdstore: key file: %w", err)
		}
		s.keys = k
		return s.matchKey(check, keyFile)
	}
	k, err := store.LoadOrCreateKeys(keyFile)
	if err != nil {
		return fmt.Errorf("etcdstore: key file: %w", err)
	}
	s.keys = k
	algos, pools, err := store.Seed()
	if err != nil {
		return err
	}
	ops := []clientv3.Op{
		clientv3.OpPut(s.pfx+kKeyCheck, string(k.Check())),
		clientv3.OpPut(s.pfx+kSchema, fmt.Sprint(store.SchemaVersion)),
		clientv3.OpPut(s.pfx+kSeeded, "seed "+time.Now().UTC().Format(time.RFC3339)),
	}
	for _, a := range algos {
		ops = append(ops, clientv3.OpPut(s.pfx+kAlgorithms+a.Name, mustJSON(a)))
	}
	for _, p := range pools {
		ops = append(ops, clientv3.OpPut(s.pfx+kPools+p.Addr, mustJSON(p)))
	}
	if len(ops) > maxTxnOps {
		return fmt.Errorf("etcdstore: seed.json has %d entries, more than one etcd transaction takes (%d)", len(ops), maxTxnOps)
	}
	tresp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(s.pfx+kSeeded), "=", 0)).
		Then(ops...).
		Else(clientv3.OpGet(s.pfx + kKeyCheck)).Commit()
	if err != nil {
		return unavailable("seed", err)
	}
	if tresp.Succeeded {
		s.log.Info().Str("prefix", s.pfx).Int("algorithms", len(algos)).Int("pools", len(pools)).Msg("etcd store seeded")
		return nil
	}
	// Another instance seeded (or a migration ran) meanwhile.
	return s.matchKey(firstValue(tresp.Responses[0].GetResponseRange().GetKvs()), keyFile)
}

// maxTxnOps is etcd's default --max-txn-ops.
const maxTxnOps = 128

func (s *Store) matchKey(check []byte, keyFile string) error {
	if string(check) != string(s.keys.Check()) {
		return fmt.Errorf("%w: etcd %s: %s is not the key file the other instances use (copy theirs)", store.ErrKeyMismatch, s.pfx, keyFile)
	}
	return nil
}

func firstValue(kvs []*mvccpb.KeyValue) []byte {
	if len(kvs) == 0 {
		return nil
	}
	return kvs[0].Value
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic("etcdstore: marshal: " + err.Error()) // plain structs always marshal
	}
	return string(b)
}

// change is one key's new value (del: removed) at mod revision rev.
type change struct {
	key   string
	value []byte
	rev   int64
	del   bool
}

// ranges are the key ranges of the tables: everything under the prefix
// but sessions/, which churn and which no snapshot needs.
func (s *Store) ranges() [2][2]string {
	end := clientv3.GetPrefixRangeEnd(s.pfx)
	sess := s.pfx + kSessions
	return [2][2]string{{s.pfx, sess}, {clientv3.GetPrefixRangeEnd(sess), end}}
}

// reload reads every table at one revision and replaces the state.
func (s *Store) reload(ctx context.Context) (int64, error) {
	rs := s.ranges()
	r1, err := s.cli.Get(ctx, rs[0][0], clientv3.WithRange(rs[0][1]))
	if err != nil {
		return 0, err
	}
	rev := r1.Header.Revision
	r2, err := s.cli.Get(ctx, rs[1][0], clientv3.WithRange(rs[1][1]), clientv3.WithRev(rev))
	if err != nil {
		return 0, err
	}
	var cs []change
	for _, kv := range append(r1.Kvs, r2.Kvs...) {
		cs = append(cs, change{key: string(kv.Key), value: kv.Value, rev: kv.ModRevision})
	}
	s.mu.Lock()
	s.algos = map[string]store.Algorithm{}
	s.pools = map[string]store.Pool{}
	s.users = map[string]store.User{}
	s.digests = map[string]string{}
	s.dedupe = map[string]string{}
	s.lastSeen = map[string]time.Time{}
	s.revs = map[string]int64{}
	s.applyLocked(cs, true)
	s.mu.Unlock()
	return rev, nil
}

// apply records changes (from the watch or from this instance's own
// acknowledged writes) and publishes a new snapshot.
func (s *Store) apply(cs ...change) {
	s.mu.Lock()
	s.applyLocked(cs, false)
	s.mu.Unlock()
}

func (s *Store) applyLocked(cs []change, all bool) {
	var dAlgos, dPools, dUsers bool
	for _, c := range cs {
		if s.revs[c.key] >= c.rev {
			continue // already applied (our own write, seen again)
		}
		s.revs[c.key] = c.rev
		rel := strings.TrimPrefix(c.key, s.pfx)
		switch {
		case strings.HasPrefix(rel, kAlgorithms):
			dAlgos = true
			name := strings.TrimPrefix(rel, kAlgorithms)
			if c.del {
				delete(s.algos, name)
				continue
			}
			var a store.Algorithm
			if err := json.Unmarshal(c.value, &a); err != nil {
				s.log.Error().Err(err).Str("key", c.key).Msg("etcd store: bad algorithm record skipped")
				delete(s.algos, name)
				continue
			}
			s.algos[name] = a
		case strings.HasPrefix(rel, kPools):
			dPools = true
			addr := strings.TrimPrefix(rel, kPools)
			if c.del {
				delete(s.pools, addr)
				continue
			}
			var p store.Pool
			if err := json.Unmarshal(c.value, &p); err != nil {
				s.log.Error().Err(err).Str("key", c.key).Msg("etcd store: bad pool record skipped")
				delete(s.pools, addr)
				continue
			}
			s.pools[addr] = p
		case strings.HasPrefix(rel, kUsers):
			dUsers = true
			name := strings.TrimPrefix(rel, kUsers)
			if d, ok := s.digests[name]; ok {
				if s.dedupe[d] == name {
					delete(s.dedupe, d)
				}
				delete(s.digests, name)
			}
			delete(s.users, name)
			if c.del {
				continue
			}
			u, d, err := s.keys.DecodeUser(name, c.value)
			if err != nil {
				s.log.Error().Err(err).Str("key", c.key).Msg("etcd store: user record skipped")
				continue
			}
			if t := s.lastSeen[name]; t.After(u.LastSeen) {
				u.LastSeen = t
			}
			s.users[name] = u
			s.digests[name] = d
			s.dedupe[d] = name
		case strings.HasPrefix(rel, kLastSeen):
			name := strings.TrimPrefix(rel, kLastSeen)
			if c.del {
				delete(s.lastSeen, name)
				continue
			}
			t, err := time.Parse(time.RFC3339Nano, string(c.value))
			if err != nil {
				continue
			}
			s.lastSeen[name] = t
			if u, ok := s.users[name]; ok && t.After(u.LastSeen) {
				u.LastSeen = t
				s.users[name] = u
				dUsers = true
			}
		}
	}
	old := s.snap.Load()
	if old == nil || all {
		s.snap.Store(store.NewTables(slices.Collect(maps.Values(s.algos)), maps.Clone(s.pools), maps.Clone(s.users), maps.Clone(s.dedupe)))
		return
	}
	next := old
	if dAlgos {
		next = next.WithAlgorithms(slices.Collect(maps.Values(s.algos)))
	}
	if dPools {
		next = next.WithPools(maps.Clone(s.pools))
	}
	if dUsers {
		next = next.WithUsers(maps.Clone(s.users), maps.Clone(s.dedupe))
	}
	if next != old {
		s.snap.Store(next)
	}
}

// watch feeds the snapshot from etcd's changes after rev until Close. The
// client's watch reconnects by itself after etcd restarts; when the
// revision it needs was compacted, or the watch ends otherwise, the state
// is reloaded and watched again, with a bounded backoff.
func (s *Store) watch(rev int64) {
	defer s.wg.Done()
	backoff := 100 * time.Millisecond
	for s.ctx.Err() == nil {
		s.watchFrom(rev)
		if s.ctx.Err() != nil {
			return
		}
		// Reload everything: the watch could not continue.
		for s.ctx.Err() == nil {
			ctx, cancel := context.WithTimeout(s.ctx, 3*s.timeout)
			r, err := s.reload(ctx)
			cancel()
			if err == nil {
				rev = r
				backoff = 100 * time.Millisecond
				s.log.Info().Int64("revision", rev).Msg("etcd store reloaded")
				break
			}
			s.log.Debug().Err(err).Msg("etcd store: reload failed, retrying")
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
		}
	}
}

// watchFrom runs the two table watches from rev+1 until one of them ends
// (compaction, cancellation) or Close.
func (s *Store) watchFrom(rev int64) {
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	rs := s.ranges()
	w1 := s.cli.Watch(ctx, rs[0][0], clientv3.WithRange(rs[0][1]), clientv3.WithRev(rev+1), clientv3.WithProgressNotify())
	w2 := s.cli.Watch(ctx, rs[1][0], clientv3.WithRange(rs[1][1]), clientv3.WithRev(rev+1), clientv3.WithProgressNotify())
	for {
		var resp clientv3.WatchResponse
		var ok bool
		select {
		case resp, ok = <-w1:
		case resp, ok = <-w2:
		}
		if !ok || resp.Canceled || resp.CompactRevision != 0 || resp.Err() != nil {
			if s.ctx.Err() == nil {
				s.log.Warn().Err(resp.Err()).Int64("compacted", resp.CompactRevision).Msg("etcd store: watch ended, reloading")
			}
			return
		}
		cs := make([]change, 0, len(resp.Events))
		for _, ev := range resp.Events {
			cs = append(cs, change{key: string(ev.Kv.Key), value: ev.Kv.Value, rev: ev.Kv.ModRevision, del: ev.Type == clientv3.EventTypeDelete})
		}
		s.mu.Lock()
		s.applyLocked(cs, false)
		s.mu.Unlock()
	}
}

// Algorithm implements store.Store.
func (s *Store) Algorithm(name string) (store.Algorithm, bool) { return s.snap.Load().Algorithm(name) }

// Algorithms implements store.Store.
func (s *Store) Algorithms() []store.Algorithm { return s.snap.Load().Algorithms() }

// Pool implements store.Store.
func (s *Store) Pool(addr string) (store.Pool, bool) { return s.snap.Load().Pool(addr) }

// Pools implements store.Store.
func (s *Store) Pools() []store.Pool { return s.snap.Load().Pools() }

// User implements store.Store.
func (s *Store) User(name string) (store.User, bool) { return s.snap.Load().User(name) }

// Users implements store.Store.
func (s *Store) Users() []store.User { return s.snap.Load().Users() }

// Close implements store.Store: it writes the buffered Touch times (if
// etcd answers in time) and stops the watch. Reads keep answering from
// the last snapshot; writes return store.ErrClosed. The client is not
// closed.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.stopFlush)
		s.cancel()
		s.wg.Wait()
		s.flushTouches()
		s.writeMu.Lock()
		s.closed = true
		s.writeMu.Unlock()
	})
	return nil
}
