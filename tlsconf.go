package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/rs/zerolog"
)

// tlsOptions are the TLS flags.
type tlsOptions struct {
	stratumAddr string // --stratum.tls-addr
	cert, key   string // --tls.cert, --tls.key
	poolCA      string // --tls.pool-ca
	web         bool   // --web.tls
}

func addTLSFlags(fs *flag.FlagSet, t *tlsOptions) {
	fs.StringVar(&t.stratumAddr, "stratum.tls-addr", "", "a second stratum listener for miners speaking stratum+ssl (needs --tls.cert and --tls.key)")
	fs.StringVar(&t.cert, "tls.cert", "", "PEM certificate (chain) of the TLS listeners; reloaded with --tls.key on SIGHUP")
	fs.StringVar(&t.key, "tls.key", "", "PEM private key of --tls.cert")
	fs.StringVar(&t.poolCA, "tls.pool-ca", "", "PEM roots to verify TLS pools with instead of the system's")
	fs.BoolVar(&t.web, "web.tls", false, "serve the API, dashboard and /metrics over HTTPS with --tls.cert")
}

// certReloader holds the listeners' certificate; SIGHUP loads it again, and
// a bad pair on reload keeps the old one.
type certReloader struct {
	cert, key string
	cur       atomic.Pointer[tls.Certificate]
}

func newCertReloader(cert, key string) (*certReloader, error) {
	r := &certReloader{cert: cert, key: key}
	return r, r.reload()
}

func (r *certReloader) reload() error {
	c, err := tls.LoadX509KeyPair(r.cert, r.key)
	if err != nil {
		return fmt.Errorf("load TLS certificate %s / key %s: %w", r.cert, r.key, err)
	}
	r.cur.Store(&c)
	return nil
}

func (r *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) { return r.cur.Load(), nil }

// watchSIGHUP reloads r on every SIGHUP until done closes; a nil r only
// logs it.
func (r *certReloader) watchSIGHUP(done <-chan struct{}, log zerolog.Logger) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	defer signal.Stop(ch)
	for {
		select {
		case <-done:
			return
		case <-ch:
			if r == nil {
				log.Info().Msg("SIGHUP: no TLS certificate to reload")
				continue
			}
			if err := r.reload(); err != nil {
				log.Error().Err(err).Msg("SIGHUP: TLS certificate not reloaded; keeping the old one")
			} else {
				log.Info().Str("cert", r.cert).Msg("SIGHUP: TLS certificate reloaded")
			}
		}
	}
}

// setup checks the TLS flags and returns the certificate reloader (nil
// when no listener needs one) and the pool roots (nil: the system's).
func (t *tlsOptions) setup() (*certReloader, *x509.CertPool, error) {
	var roots *x509.CertPool
	if t.poolCA != "" {
		pem, err := os.ReadFile(t.poolCA)
		if err != nil {
			return nil, nil, fmt.Errorf("--tls.pool-ca: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("--tls.pool-ca %s: no PEM certificate in it", t.poolCA)
		}
	}
	if t.stratumAddr == "" && !t.web {
		return nil, roots, nil
	}
	if t.cert == "" || t.key == "" {
		return nil, nil, errors.New("--stratum.tls-addr and --web.tls need --tls.cert and --tls.key")
	}
	r, err := newCertReloader(t.cert, t.key)
	return r, roots, err
}
