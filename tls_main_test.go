package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// writeCert writes a self-signed certificate for 127.0.0.1 with serial
// to certFile and keyFile.
func writeCert(t *testing.T, certFile, keyFile string, serial int64) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func servedSerial(t *testing.T, addr string) int64 {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS dial %s: %v", addr, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// TestBinaryTLSListenersReloadOnSIGHUP: the stratum TLS listener and the
// HTTPS API serve --tls.cert; SIGHUP loads the files again (a broken
// pair on reload keeps the old certificate and logs why).
func TestBinaryTLSListenersReloadOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeCert(t, certFile, keyFile, 1001)
	tlsAddr := freePort(t)
	p := startProxy(t, filepath.Join(dir, "proxy.db"), "--stratum.tls-addr", tlsAddr,
		"--tls.cert", certFile, "--tls.key", keyFile, "--web.tls")
	if s := servedSerial(t, tlsAddr); s != 1001 {
		t.Fatalf("stratum TLS serves serial %d", s)
	}
	if s := servedSerial(t, p.web); s != 1001 {
		t.Fatalf("HTTPS API serves serial %d", s)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 5 * time.Second}
	resp, err := client.Get("https://" + p.web + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("HTTPS /healthz: %v %v", resp, err)
	}
	resp.Body.Close()

	writeCert(t, certFile, keyFile, 2002)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for servedSerial(t, tlsAddr) != 2002 {
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP did not reload the certificate:\n%s", p.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if s := servedSerial(t, p.web); s != 2002 {
		t.Fatalf("HTTPS API serves serial %d after SIGHUP", s)
	}
	// A broken key file: the old certificate stays, the log says why.
	if err := os.WriteFile(keyFile, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	for !strings.Contains(p.logs.String(), "TLS certificate not reloaded") {
		if time.Now().After(deadline.Add(5 * time.Second)) {
			t.Fatal("a failed reload was not logged")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if s := servedSerial(t, tlsAddr); s != 2002 {
		t.Fatalf("a failed reload replaced the certificate: serial %d", s)
	}
}
