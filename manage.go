package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/stratum-proxy/stratum-proxy/metrics"
	"github.com/stratum-proxy/stratum-proxy/proxy"
	"github.com/stratum-proxy/stratum-proxy/store"
)

// tokenFileName is the management API token's file beside the store.
const tokenFileName = "api-token"

// authToken returns the management API's bearer token: the flag's, or the
// one kept in a 0600 file beside the store, created on first start with
// 32 random bytes. It returns the file's path when the token came from it.
// The token itself is never logged.
func authToken(flagToken, dbPath string) (token, file string, err error) {
	if flagToken != "" {
		return flagToken, "", nil
	}
	file = filepath.Join(filepath.Dir(dbPath), tokenFileName)
	b, err := os.ReadFile(file)
	if err == nil {
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, file, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", "", fmt.Errorf("read the API token file: %w", err)
	}
	var r [32]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", "", err
	}
	token = hex.EncodeToString(r[:])
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return "", "", err
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", "", fmt.Errorf("create the API token file: %w", err)
	}
	if _, err := f.WriteString(token + "\n"); err != nil {
		f.Close()
		return "", "", err
	}
	return token, file, f.Close()
}

// expireUsers deletes, every minute, the issued names no miner used for
// ttl (last seen, or created when never seen), closing nothing that is
// connected: a name with a live miner is seen at its every authorize.
func expireUsers(ctx context.Context, st store.Store, srv *proxy.Server, reg *metrics.Registry, ttl time.Duration, log zerolog.Logger) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		expireOnce(ctx, st, srv, reg, ttl, time.Now(), log)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func expireOnce(ctx context.Context, st store.Store, srv *proxy.Server, reg *metrics.Registry, ttl time.Duration, now time.Time, log zerolog.Logger) int {
	n := 0
	for _, u := range st.Users() {
		seen := u.LastSeen
		if seen.IsZero() {
			seen = u.Created
		}
		if now.Sub(seen) < ttl {
			continue
		}
		if err := st.DeleteUser(u.Name); err != nil {
			log.Warn().Err(err).Str("name", u.Name).Msg("could not expire user")
			continue
		}
		closed, _ := srv.UserDeleted(ctx, u.Name, "account expired")
		reg.UsersExpired(1)
		log.Info().Str("name", u.Name).Time("last_seen", seen).Dur("ttl", ttl).Int("miners_closed", closed).Msg("user expired")
		n++
	}
	return n
}
