package proxy

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/stratum-proxy/stratum-proxy/metrics"
	"github.com/stratum-proxy/stratum-proxy/store"
)

// TLS on both sides. gnet reads and writes raw sockets, so a TLS
// connection is bridged: its handshake and its records run on goroutines
// of its own (never on an event loop), which copy the clear bytes to and
// from a loopback TCP connection that gnet serves like any other. A TLS
// pool's clear end is one side of a loopback pair enrolled in the
// upstream's loop; a TLS miner's is a connection to the plain stratum
// listener, whose OnOpen finds the miner's real address by the loopback
// port (bridgeMiner). A TLS connection costs two goroutines, two more
// descriptors and the copies; plain stratum costs none of it.

// bridge makes loopback TCP pairs for the TLS connections.
type bridge struct {
	mu sync.Mutex // one pair at a time, so an accept matches its dial
	ln net.Listener
}

func newBridge() (*bridge, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("proxy: TLS bridge listener: %w", err)
	}
	return &bridge{ln: ln}, nil
}

// pair returns two connected ends: inner goes to gnet, outer to the
// copier. A stranger connecting to the bridge port is refused.
func (b *bridge) pair() (inner, outer net.Conn, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	outer, err = net.DialTimeout("tcp", b.ln.Addr().String(), 5*time.Second)
	if err != nil {
		return nil, nil, err
	}
	for range 8 {
		c, err := b.ln.Accept()
		if err != nil {
			outer.Close()
			return nil, nil, err
		}
		if c.RemoteAddr().String() == outer.LocalAddr().String() {
			return c, outer, nil
		}
		c.Close() // not ours
	}
	outer.Close()
	return nil, nil, errors.New("proxy: TLS bridge: could not pair")
}

func (b *bridge) close() {
	if b != nil {
		b.ln.Close()
	}
}

// splice copies between the TLS connection and the bridge's outer end
// until either side ends, then closes both.
func splice(tc net.Conn, outer net.Conn) {
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go cp(outer, tc)
	go cp(tc, outer)
	<-done
	tc.Close()
	outer.Close()
	<-done
}

// enrollTLS bridges an established TLS connection to a pool into loop l
// with gnet context value v.
func (s *Server) enrollTLS(l *loop, tc net.Conn, v any) error {
	b, err := s.bridge()
	if err != nil {
		return err
	}
	inner, outer, err := b.pair()
	if err != nil {
		return err
	}
	ch, err := l.el.Enroll(gnet.NewContext(context.Background(), v), inner)
	if err == nil {
		if res := <-ch; res.Err != nil {
			err = res.Err
		}
	}
	inner.Close() // gnet holds its own duplicate of the descriptor
	if err != nil {
		outer.Close()
		return err
	}
	go splice(tc, outer)
	return nil
}

// bridgeMiner connects a TLS miner to the plain stratum listener from a
// loopback port it binds first, so that OnOpen (which gnet may run before
// the dial returns) finds the miner's real address under that port.
func (s *Server) bridgeMiner(tc net.Conn, peer net.Addr) error {
	var key string
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var err error
		cerr := rc.Control(func(fd uintptr) {
			if err = syscall.Bind(int(fd), &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
				return
			}
			var sa syscall.Sockaddr
			if sa, err = syscall.Getsockname(int(fd)); err == nil {
				key = net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
				s.tlsPeers.Store(key, peer)
			}
		})
		if cerr != nil {
			return cerr
		}
		return err
	}}
	_, port, _ := net.SplitHostPort(s.addr)
	outer, err := d.Dial("tcp4", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		if key != "" {
			s.tlsPeers.Delete(key)
		}
		return err
	}
	go splice(tc, outer)
	return nil
}

// tlsPeer returns the real address of a TLS miner bridged from remote.
func (s *Server) tlsPeer(remote net.Addr) (net.Addr, bool) {
	if s.tlsLn == nil {
		return nil, false
	}
	v, ok := s.tlsPeers.LoadAndDelete(remote.String())
	if !ok {
		return nil, false
	}
	return v.(net.Addr), true
}

// serveTLS accepts miners on the TLS listener until it closes. Each
// handshake runs on its own goroutine under the handshake timeout.
func (s *Server) serveTLS(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn().Err(err).Msg("TLS accept")
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go s.handshakeMiner(c)
	}
}

func (s *Server) handshakeMiner(c net.Conn) {
	tc := tls.Server(c, s.tlsCfg)
	_ = tc.SetDeadline(time.Now().Add(s.cfg.handshakeTimeout()))
	if err := tc.HandshakeContext(s.ctx); err != nil {
		s.met.Dropped(metrics.DropTLSHandshake)
		s.log.Info().Err(err).Str("miner", c.RemoteAddr().String()).Msg("TLS handshake with a miner failed")
		c.Close()
		return
	}
	_ = tc.SetDeadline(time.Time{})
	if err := s.bridgeMiner(tc, c.RemoteAddr()); err != nil {
		s.log.Warn().Err(err).Msg("could not bridge a TLS miner")
		tc.Close()
	}
}

// poolTLSConfig is how an upstream verifies a pool marked TLS: against
// the system roots (or Config.PoolRootCAs) by default; a pinned
// certificate (SHA-256 of the leaf, hex) instead when the pool table
// gives one; no verification only when it says so explicitly.
func (s *Server) poolTLSConfig(p store.Pool, addr string) *tls.Config {
	host, _, _ := net.SplitHostPort(addr)
	cfg := &tls.Config{ServerName: host, RootCAs: s.cfg.PoolRootCAs, MinVersion: tls.VersionTLS12}
	switch {
	case p.TLSFingerprint != "":
		want := strings.ToLower(strings.ReplaceAll(p.TLSFingerprint, ":", ""))
		cfg.InsecureSkipVerify = true // replaced by the pin below
		cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("pool sent no certificate")
			}
			sum := sha256.Sum256(raw[0])
			if got := hex.EncodeToString(sum[:]); got != want {
				return fmt.Errorf("pool certificate fingerprint %s, pinned %s", got, want)
			}
			return nil
		}
	case p.TLSInsecure:
		cfg.InsecureSkipVerify = true
	}
	return cfg
}

// dialTLS connects to a pool marked TLS and bridges it into up's loop.
func (up *upstream) dialTLS(addr string, p store.Pool) error {
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: up.srv.cfg.dialTimeout(), KeepAlive: time.Minute},
		Config: up.srv.poolTLSConfig(p, addr)}
	ctx, cancel := context.WithTimeout(up.srv.ctx, up.srv.cfg.dialTimeout()+up.srv.cfg.poolHandshakeTimeout())
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		var ve *tls.CertificateVerificationError
		if errors.As(err, &ve) || strings.Contains(err.Error(), "certificate") || strings.Contains(err.Error(), "tls:") {
			return &tlsError{err}
		}
		return err
	}
	if err := up.srv.enrollTLS(up.loop, c, up); err != nil {
		c.Close()
		return err
	}
	return nil
}

// tlsError marks a dial that failed in the TLS handshake (a wrong or
// untrusted certificate), counted apart from connection failures.
type tlsError struct{ err error }

func (e *tlsError) Error() string { return "TLS: " + e.err.Error() }
func (e *tlsError) Unwrap() error { return e.err }
