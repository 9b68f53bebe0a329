package etcdstore

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// etcdBinary is Debian's etcd-server (3.4): .ci/run installs it.
const etcdBinary = "/usr/bin/etcd"

// etcdProc is a real etcd on free loopback ports, its data in a test
// directory, that a test may kill and start again on the same ports.
type etcdProc struct {
	t          *testing.T
	dir        string
	client     string // http://127.0.0.1:port
	peer       string
	cmd        *exec.Cmd
	exited     chan struct{}
	logPath    string
	startCount int
}

// startEtcd starts an etcd for t and returns it; it is killed at the end
// of the test. Without the binary the test is skipped (failed under CI).
func startEtcd(t *testing.T) *etcdProc {
	t.Helper()
	if _, err := os.Stat(etcdBinary); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing: .ci/run must install etcd-server", etcdBinary)
		}
		t.Skipf("%s is missing (apt-get install etcd-server): etcd tests skipped", etcdBinary)
	}
	e := &etcdProc{t: t, dir: t.TempDir()}
	e.client = "http://" + freeAddr(t)
	e.peer = "http://" + freeAddr(t)
	e.logPath = filepath.Join(e.dir, "etcd.log")
	e.start()
	t.Cleanup(e.kill)
	return e
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// endpoints are the client URLs.
func (e *etcdProc) endpoints() []string { return []string{e.client} }

// start runs etcd (again) on the same ports and data directory and waits,
// at most 15 s, until it answers.
func (e *etcdProc) start() {
	e.t.Helper()
	e.startCount++
	logf, err := os.OpenFile(e.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		e.t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(etcdBinary,
		"--name", "test",
		"--data-dir", filepath.Join(e.dir, "data"),
		"--listen-client-urls", e.client,
		"--advertise-client-urls", e.client,
		"--listen-peer-urls", e.peer,
		"--initial-advertise-peer-urls", e.peer,
		"--initial-cluster", "test="+e.peer,
		"--log-level", "warn",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("start etcd: %v", err)
	}
	e.cmd = cmd
	e.exited = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); close(done) }(cmd, e.exited)

	cli := e.newClient()
	defer cli.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Get(ctx, "health")
		cancel()
		if err == nil {
			return
		}
		select {
		case <-e.exited:
			log, _ := os.ReadFile(e.logPath)
			e.t.Fatalf("etcd exited at start: %s", log)
		default:
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("etcd not answering after 15s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kill stops etcd with SIGKILL and waits for it to exit.
func (e *etcdProc) kill() {
	if e.cmd == nil {
		return
	}
	_ = e.cmd.Process.Kill()
	<-e.exited
	e.cmd = nil
}

func (e *etcdProc) newClient() *clientv3.Client {
	e.t.Helper()
	cli, err := NewClient(e.endpoints(), 2*time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	return cli
}

// client returns a client closed at the end of the test.
func (e *etcdProc) clientT() *clientv3.Client {
	cli := e.newClient()
	e.t.Cleanup(func() { cli.Close() })
	return cli
}

func (e *etcdProc) String() string { return fmt.Sprint("etcd ", e.client) }
