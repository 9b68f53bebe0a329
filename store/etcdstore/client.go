package etcdstore

import (
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// NewClient returns an etcd client of the endpoints (URLs or host:port).
// It does not wait for a connection: the first request does, within its
// own timeout. dialTimeout bounds each connection attempt (0: 3s).
func NewClient(endpoints []string, dialTimeout time.Duration) (*clientv3.Client, error) {
	var eps []string
	for _, e := range endpoints {
		if e = strings.TrimSpace(e); e != "" {
			eps = append(eps, e)
		}
	}
	if len(eps) == 0 {
		return nil, fmt.Errorf("etcdstore: no etcd endpoints")
	}
	if dialTimeout <= 0 {
		dialTimeout = defaultTimeout
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            eps,
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: dialTimeout,
		// The client's own zap logger would print every reconnect
		// attempt to stderr while etcd is down; the store logs what
		// matters through zerolog.
		Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcdstore: client: %w", err)
	}
	return cli, nil
}
