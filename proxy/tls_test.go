package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stratum-proxy/stratum-proxy/bench/miner"
	"github.com/stratum-proxy/stratum-proxy/bench/poolsim"
	"github.com/stratum-proxy/stratum-proxy/store"
)

// testCA is a throwaway certificate authority for loopback TLS tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// leaf issues a certificate for 127.0.0.1 signed by ca, or self-signed
// when ca is nil.
func leaf(t *testing.T, ca *testCA) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	parent, signer := tmpl, any(key)
	if ca != nil {
		parent, signer = ca.cert, ca.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func fingerprint(c tls.Certificate) string {
	sum := sha256.Sum256(c.Certificate[0])
	return hex.EncodeToString(sum[:])
}

// tlsPool starts a pool simulator serving stratum+ssl with cert and puts
// it in the pool table as p describes.
func (h *harness) tlsPool(cert tls.Certificate, p store.Pool) *poolsim.Server {
	h.t.Helper()
	sim := h.pool(poolsim.Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
	p.Addr, p.Algorithm, p.TLS = sim.Addr(), "sha256", true
	if err := h.st.PutPool(p); err != nil {
		h.t.Fatal(err)
	}
	return sim
}

// TestTLSPools: a pool marked TLS is dialled with TLS and its certificate
// verified (against the roots given, a pinned fingerprint, or explicitly
// not at all); a wrong certificate is refused, logged and counted as
// tls_failed, and nothing is sent to that pool.
func TestTLSPools(t *testing.T) {
	ca, other := newTestCA(t, "test CA"), newTestCA(t, "another CA")
	selfSigned := leaf(t, nil)
	for _, c := range []struct {
		name string
		cert tls.Certificate
		pool store.Pool
		ok   bool
	}{
		{"signed by the trusted CA", leaf(t, ca), store.Pool{}, true},
		{"signed by another CA", leaf(t, other), store.Pool{}, false},
		{"self-signed, pinned", selfSigned, store.Pool{TLSFingerprint: fingerprint(selfSigned)}, true},
		{"self-signed, pinned to another", selfSigned, store.Pool{TLSFingerprint: fingerprint(leaf(t, nil))}, false},
		{"self-signed, not verified by choice", selfSigned, store.Pool{TLSInsecure: true}, true},
		{"self-signed, not pinned", selfSigned, store.Pool{}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := fastCfg()
			cfg.PoolRootCAs = ca.pool
			h := newHarness(t, cfg)
			sim := h.tlsPool(c.cert, c.pool)
			name := h.user(sim.Addr())
			if c.ok {
				m := h.dial(miner.Config{User: name + ".tls", Password: "x"})
				mineOne(t, m)
				if st := sim.Stats(); st.Accepted != 1 {
					t.Fatalf("pool over TLS: %+v", st)
				}
				return
			}
			m, err := miner.Dial(miner.Config{Addr: h.srv.Addr(), User: name + ".tls", Password: "x", Timeout: 10 * time.Second})
			if err == nil {
				defer m.Close()
			}
			waitFor(t, "a tls_failed attempt", func() bool {
				v, _ := metricValue(h.scrape(), "proxy_upstream_reconnects_total", `pool="`+sim.Addr()+`"`, `outcome="tls_failed"`)
				return v >= 1
			})
			if st := sim.Stats(); st.Accepted+st.Rejected != 0 {
				t.Fatalf("shares reached an unverified pool: %+v", st)
			}
		})
	}
}

// TestTLSMinerListener: miners that speak stratum+ssl connect to the TLS
// listener and are served like any other (their real address in the
// worker listing); a client that does not speak TLS there is dropped as
// tls_handshake.
func TestTLSMinerListener(t *testing.T) {
	ca := newTestCA(t, "test CA")
	cert := leaf(t, ca)
	cfg := fastCfg()
	cfg.TLSAddr = "127.0.0.1:0"
	cfg.TLSCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil }
	h := newHarness(t, cfg)
	pool := h.pool(poolsim.Config{})
	name := h.user(pool.Addr())
	m, err := miner.Dial(miner.Config{Addr: h.srv.TLSAddr(), TLS: &tls.Config{RootCAs: ca.pool}, User: name + ".ssl", Password: "x", Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	mineOne(t, m)
	ws, err := h.srv.Workers(t.Context())
	if err != nil || len(ws) != 1 {
		t.Fatalf("workers %+v, %v", ws, err)
	}
	if ws[0].Rig != "ssl" || !strings.HasPrefix(ws[0].Remote, "127.0.0.1:") || ws[0].Remote == "" {
		t.Fatalf("worker %+v", ws[0])
	}
	// The bridge is a loopback pair too: the miner's own port proves
	// the worker shows the miner, not the bridge.
	if want := m.LocalAddr(); ws[0].Remote != want {
		t.Fatalf("worker remote %s, want the miner's %s", ws[0].Remote, want)
	}
	plain, err := net.Dial("tcp", h.srv.TLSAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	_, _ = plain.Write([]byte(`{"id":1,"method":"mining.subscribe","params":[]}` + "\n"))
	waitFor(t, "a tls_handshake drop", func() bool {
		v, _ := metricValue(h.scrape(), "proxy_miners_dropped_total", `reason="tls_handshake"`)
		return v == 1
	})
	// Plain stratum on the main port still works beside it.
	mineOne(t, h.dial(miner.Config{User: name + ".plain", Password: "x"}))
}
