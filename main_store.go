package main

// The store backend choice (issue #13): --store bbolt (default) or etcd,
// and the "store migrate" subcommand. Kept apart from main.go, which only
// calls addStoreFlags, runStoreCommand and openStore.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/stratum-proxy/stratum-proxy/store"
	"github.com/stratum-proxy/stratum-proxy/store/etcdstore"
)

// storeFlags are the flags choosing and reaching the store backend.
type storeFlags struct {
	kind      string
	endpoints string
	prefix    string
	keyFile   string
}

func addStoreFlags(fs *flag.FlagSet, f *storeFlags) {
	fs.StringVar(&f.kind, "store", "bbolt", "store backend: bbolt (the --db.path file) or etcd (shared by several instances)")
	fs.StringVar(&f.endpoints, "etcd.endpoints", "", "etcd endpoints of --store=etcd, comma separated (http://127.0.0.1:2379)")
	fs.StringVar(&f.prefix, "etcd.prefix", etcdstore.DefaultPrefix, "key prefix of this proxy's tables in etcd")
	fs.StringVar(&f.keyFile, "store.key", "", "key file sealing pool passwords (default: proxy.key beside --db.path); with etcd every instance needs the same file")
}

// keyPath is the key file the flags name.
func (o *options) keyPath() string {
	if o.store.keyFile != "" {
		return o.store.keyFile
	}
	return filepath.Join(filepath.Dir(o.dbPath), store.DefaultKeyFile)
}

func splitEndpoints(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// openStore opens the backend the flags choose; close releases it (and
// the etcd client).
func openStore(o *options, log zerolog.Logger) (st store.Store, closeStore func(), err error) {
	switch o.store.kind {
	case "bbolt", "":
		var opts *store.Options
		if o.store.keyFile != "" {
			opts = &store.Options{KeyFile: o.store.keyFile}
		}
		db, err := store.Open(o.dbPath, opts)
		if err != nil {
			return nil, nil, err
		}
		return db, func() { _ = db.Close() }, nil
	case "etcd":
		eps := splitEndpoints(o.store.endpoints)
		if len(eps) == 0 {
			return nil, nil, errors.New("--store=etcd needs --etcd.endpoints")
		}
		cli, err := etcdstore.NewClient(eps, 0)
		if err != nil {
			return nil, nil, err
		}
		s, err := etcdstore.Open(cli, etcdstore.Options{Prefix: o.store.prefix, KeyFile: o.keyPath(), Log: &log})
		if err != nil {
			_ = cli.Close()
			return nil, nil, fmt.Errorf("etcd %s: %w", strings.Join(eps, ","), err)
		}
		// Session records go to the same etcd, so a miner reconnecting to
		// another instance gets its session back (proxy.Config.Sessions).
		sess := etcdstore.NewSessions(cli, etcdstore.SessionOptions{Prefix: o.store.prefix, Log: &log})
		o.proxy.Sessions = sess
		log.Info().Strs("endpoints", eps).Str("prefix", o.store.prefix).Str("key_file", o.keyPath()).Msg("store on etcd")
		return s, func() { _ = sess.Close(); _ = s.Close(); _ = cli.Close() }, nil
	}
	return nil, nil, fmt.Errorf("--store=%q: want bbolt or etcd", o.store.kind)
}

const migrateUsage = "usage: stratum-proxy [--store.key FILE] [--etcd.prefix P] store migrate --from bbolt:PATH --to etcd:ENDPOINTS [--force]"

// runStoreCommand runs "store migrate" and reports whether args were one.
func runStoreCommand(o *options, args []string, stdout io.Writer) (bool, error) {
	if len(args) == 0 || args[0] != "store" {
		return false, nil
	}
	if len(args) < 2 || args[1] != "migrate" {
		return true, errors.New(migrateUsage)
	}
	from, to, force, err := parseMigrate(args[2:])
	if err != nil {
		return true, err
	}
	if _, err := os.Stat(from); err != nil {
		return true, fmt.Errorf("store migrate: --from %s: %w", from, err)
	}
	var opts *store.Options
	if o.store.keyFile != "" {
		opts = &store.Options{KeyFile: o.store.keyFile}
	}
	recs, err := store.ReadRecords(from, opts)
	if err != nil {
		return true, err
	}
	cli, err := etcdstore.NewClient(to, 0)
	if err != nil {
		return true, err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := etcdstore.Migrate(ctx, cli, o.store.prefix, recs, force)
	if err != nil {
		return true, err
	}
	key := o.store.keyFile
	if key == "" {
		key = filepath.Join(filepath.Dir(from), store.DefaultKeyFile)
	}
	_, err = fmt.Fprintf(stdout, "migrated %d algorithms, %d pools, %d users from %s to etcd %s (prefix %s); every instance needs the key file %s\n",
		st.Algorithms, st.Pools, st.Users, from, strings.Join(to, ","), o.store.prefix, key)
	return true, err
}

// parseMigrate parses "--from bbolt:PATH --to etcd:ENDPOINTS [--force]"
// (also --from=..., --to=...).
func parseMigrate(args []string) (from string, to []string, force bool, err error) {
	var src, dst string
	for i := 0; i < len(args); i++ {
		name, val, hasVal := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		switch name {
		case "force":
			force = true
			continue
		case "from", "to":
		default:
			return "", nil, false, fmt.Errorf("store migrate: unknown argument %q\n%s", args[i], migrateUsage)
		}
		if !hasVal {
			if i+1 >= len(args) {
				return "", nil, false, fmt.Errorf("store migrate: --%s needs a value\n%s", name, migrateUsage)
			}
			i++
			val = args[i]
		}
		if name == "from" {
			src = val
		} else {
			dst = val
		}
	}
	path, ok := strings.CutPrefix(src, "bbolt:")
	if !ok || path == "" {
		return "", nil, false, fmt.Errorf("store migrate: --from must be bbolt:PATH\n%s", migrateUsage)
	}
	eps, ok := strings.CutPrefix(dst, "etcd:")
	if to = splitEndpoints(eps); !ok || len(to) == 0 {
		return "", nil, false, fmt.Errorf("store migrate: --to must be etcd:ENDPOINTS\n%s", migrateUsage)
	}
	return path, to, force, nil
}
