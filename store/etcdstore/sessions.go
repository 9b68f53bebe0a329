package etcdstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/stratum-proxy/stratum-proxy/proxy"
	"github.com/stratum-proxy/stratum-proxy/store"
)

// Sessions is a proxy.SessionStore in etcd: records under
// <prefix>/sessions/<id>, all attached to one lease of this instance whose
// TTL is the ttl of the first Save (the session grace period). The lease
// is kept alive while the instance runs, so its records vanish ttl after
// the instance dies; Close stops the keep-alive without revoking, so the
// records of a gracefully stopped instance stay restorable for ttl.
//
// Save and Delete never block: they queue the write for one goroutine
// and count it in Dropped when the queue is full.
type Sessions struct {
	cli     *clientv3.Client
	pfx     string
	timeout time.Duration
	log     zerolog.Logger

	q       chan sessionOp
	dropped atomic.Uint64
	failed  atomic.Uint64

	mu    sync.Mutex // guards lease
	lease clientv3.LeaseID

	ctx       context.Context
	cancel    context.CancelFunc
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

var _ proxy.SessionStore = (*Sessions)(nil)

type sessionOp struct {
	id  string
	rec []byte // nil: delete
	ttl time.Duration
}

// SessionOptions configures NewSessions.
type SessionOptions struct {
	// Prefix as in Options ("" means DefaultPrefix).
	Prefix string
	// Queue is the number of writes waiting at most (0: 8192).
	Queue int
	// Timeout bounds each etcd request (0: 3s).
	Timeout time.Duration
	// Log receives dropped writes at debug level (nil: none).
	Log *zerolog.Logger
}

// NewSessions starts the session writer on cli (the caller's client,
// closed after Sessions).
func NewSessions(cli *clientv3.Client, opts SessionOptions) *Sessions {
	s := &Sessions{
		cli:     cli,
		pfx:     normPrefix(opts.Prefix) + kSessions,
		timeout: opts.Timeout,
		log:     zerolog.Nop(),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if s.timeout <= 0 {
		s.timeout = defaultTimeout
	}
	if opts.Log != nil {
		s.log = *opts.Log
	}
	n := opts.Queue
	if n <= 0 {
		n = 8192
	}
	s.q = make(chan sessionOp, n)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	go s.run()
	return s
}

// Save implements proxy.SessionStore.
func (s *Sessions) Save(rec proxy.SessionRecord, ttl time.Duration) {
	b, err := json.Marshal(rec)
	if err != nil {
		s.failed.Add(1)
		return
	}
	s.enqueue(sessionOp{id: rec.ID, rec: b, ttl: ttl})
}

// Delete implements proxy.SessionStore.
func (s *Sessions) Delete(id string) { s.enqueue(sessionOp{id: id}) }

func (s *Sessions) enqueue(op sessionOp) {
	select {
	case <-s.stop:
		s.dropped.Add(1)
		return
	default:
	}
	select {
	case s.q <- op:
	default:
		s.dropped.Add(1)
	}
}

// Dropped is the number of writes dropped because the queue was full or
// the store closed.
func (s *Sessions) Dropped() uint64 { return s.dropped.Load() }

// Failed is the number of writes etcd did not take.
func (s *Sessions) Failed() uint64 { return s.failed.Load() }

// Load implements proxy.SessionStore.
func (s *Sessions) Load(ctx context.Context, id string) (proxy.SessionRecord, bool, error) {
	r, err := s.cli.Get(ctx, s.pfx+id)
	if err != nil {
		return proxy.SessionRecord{}, false, fmt.Errorf("%w: etcd: load session: %v", store.ErrUnavailable, err)
	}
	if len(r.Kvs) == 0 {
		return proxy.SessionRecord{}, false, nil
	}
	var rec proxy.SessionRecord
	if err := json.Unmarshal(r.Kvs[0].Value, &rec); err != nil {
		return proxy.SessionRecord{}, false, fmt.Errorf("etcdstore: session %s: %w", id, err)
	}
	return rec, true, nil
}

// maxBatch is how many queued writes go to etcd in one transaction
// (etcd's default limit is 128 operations).
const maxBatch = 100

func (s *Sessions) run() {
	defer close(s.done)
	batch := make([]sessionOp, 0, maxBatch)
	for {
		select {
		case op := <-s.q:
			batch = append(batch[:0], op)
			// Whatever else is queued goes in the same transaction: a
			// connect or disconnect storm costs one round trip per
			// maxBatch records, not one each.
			for len(batch) < maxBatch {
				select {
				case op := <-s.q:
					batch = append(batch, op)
					continue
				default:
				}
				break
			}
			s.write(batch)
		case <-s.stop:
			// Write what was queued before Close, bounded by the queue's
			// length and each write's timeout.
			for len(s.q) > 0 {
				batch = batch[:0]
				for len(batch) < maxBatch && len(s.q) > 0 {
					batch = append(batch, <-s.q)
				}
				s.write(batch)
			}
			return
		}
	}
}

// write applies a batch in one transaction; the last write of an id wins.
func (s *Sessions) write(batch []sessionOp) {
	last := make(map[string]int, len(batch))
	for i, op := range batch {
		last[op.id] = i
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		var lease clientv3.LeaseID
		ops := make([]clientv3.Op, 0, len(last))
		for i, op := range batch {
			if last[op.id] != i {
				continue
			}
			if op.rec == nil {
				ops = append(ops, clientv3.OpDelete(s.pfx+op.id))
				continue
			}
			if lease == 0 {
				if lease, err = s.leaseFor(ctx, op.ttl); err != nil {
					break
				}
			}
			ops = append(ops, clientv3.OpPut(s.pfx+op.id, string(op.rec), clientv3.WithLease(lease)))
		}
		if err != nil {
			break
		}
		_, err = s.cli.Txn(ctx).Then(ops...).Commit()
		if !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			break
		}
		s.forget(lease) // expired while etcd was away: grant a new one
	}
	if err != nil {
		s.failed.Add(uint64(len(last)))
		s.log.Debug().Err(err).Int("records", len(last)).Msg("etcd sessions: writes dropped")
	}
}

// leaseFor returns this instance's lease, granting it (TTL ttl, at least
// 1s) and starting its keep-alive on first use.
func (s *Sessions) leaseFor(ctx context.Context, ttl time.Duration) (clientv3.LeaseID, error) {
	s.mu.Lock()
	id := s.lease
	s.mu.Unlock()
	if id != 0 {
		return id, nil
	}
	secs := int64((ttl + time.Second - 1) / time.Second)
	g, err := s.cli.Grant(ctx, max(secs, 1))
	if err != nil {
		return 0, err
	}
	ka, err := s.cli.KeepAlive(s.ctx, g.ID)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	s.lease = g.ID
	s.mu.Unlock()
	go func() {
		for range ka { // ends when the lease is lost or Close cancels
		}
		s.forget(g.ID)
	}()
	return g.ID, nil
}

func (s *Sessions) forget(id clientv3.LeaseID) {
	s.mu.Lock()
	if s.lease == id {
		s.lease = 0
	}
	s.mu.Unlock()
}

// Close writes what is queued, then stops the keep-alive; the records
// expire ttl later unless another instance saves them again.
func (s *Sessions) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.done
		s.cancel()
	})
	return nil
}

// Revoke ends this instance's lease now, deleting all its records.
func (s *Sessions) Revoke(ctx context.Context) error {
	s.mu.Lock()
	id := s.lease
	s.lease = 0
	s.mu.Unlock()
	if id == 0 {
		return nil
	}
	_, err := s.cli.Revoke(ctx, id)
	return err
}
