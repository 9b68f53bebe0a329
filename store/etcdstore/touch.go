package etcdstore

import (
	"context"
	"encoding/json"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

var jsonUnmarshal = json.Unmarshal

// touchChunk bounds the names written in one transaction (each is a
// nested transaction of one comparison and one put), well under etcd's
// default --max-txn-ops.
const touchChunk = 32

// Touch implements store.Store: one map lookup and a short mutex hold;
// the time is written to lastseen/<name> in the background.
func (s *Store) Touch(name string, t time.Time) {
	if !s.snap.Load().HasUser(name) {
		return
	}
	t = t.UTC().Round(0)
	s.touchMu.Lock()
	if s.touched == nil {
		s.touched = make(map[string]time.Time)
	}
	if prev, ok := s.touched[name]; !ok || t.After(prev) {
		s.touched[name] = t
	}
	s.touchMu.Unlock()
}

func (s *Store) flusher(every time.Duration) {
	defer s.wg.Done()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-s.stopFlush:
			return
		case <-tick.C:
			s.flushTouches()
		}
	}
}

// flushTouches writes the buffered times, each only while its user
// exists. Last seen is a hint: when etcd does not answer in time the
// times are dropped (logged at debug level), not retried.
func (s *Store) flushTouches() {
	s.touchMu.Lock()
	pending := s.touched
	s.touched = nil
	s.touchMu.Unlock()
	if len(pending) == 0 {
		return
	}
	snap := s.snap.Load()
	var names []string
	for name, t := range pending {
		if u, ok := snap.User(name); ok && t.After(u.LastSeen) {
			names = append(names, name)
		}
	}
	for len(names) > 0 {
		n := min(len(names), touchChunk)
		chunk := names[:n]
		names = names[n:]
		ops := make([]clientv3.Op, 0, n)
		for _, name := range chunk {
			ops = append(ops, clientv3.OpTxn(
				[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(s.pfx+kUsers+name), ">", 0)},
				[]clientv3.Op{clientv3.OpPut(s.pfx+kLastSeen+name, pending[name].Format(time.RFC3339Nano))},
				nil))
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		resp, err := s.cli.Txn(ctx).Then(ops...).Commit()
		cancel()
		if err != nil {
			s.log.Debug().Err(err).Int("names", len(chunk)+len(names)).Msg("etcd store: last-seen times dropped")
			return
		}
		var cs []change
		for i, r := range resp.Responses {
			if tr := r.GetResponseTxn(); tr != nil && tr.Succeeded {
				name := chunk[i]
				cs = append(cs, change{key: s.pfx + kLastSeen + name, value: []byte(pending[name].Format(time.RFC3339Nano)), rev: resp.Header.Revision})
			}
		}
		s.apply(cs...)
	}
}
