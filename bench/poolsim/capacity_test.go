package poolsim_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCapacity checks that a simulator in another process (the fd limit
// of one process cannot hold both ends) holds many connections and answers
// shares on all of them. It runs only when POOLSIM_CAPACITY_ADDR is set:
//
//	go run ./bench/cmd/poolsim -addr 127.0.0.1:3333 -diff 1e-10 &
//	POOLSIM_CAPACITY_ADDR=127.0.0.1:3333 POOLSIM_CAPACITY_CONNS=18000 \
//	    go test -run TestCapacity -v ./bench/poolsim
//
// With -diff 1e-10 every hash meets the target, so any nonce is a valid,
// distinct share and the test measures the pool, not mining.
func TestCapacity(t *testing.T) {
	addr := os.Getenv("POOLSIM_CAPACITY_ADDR")
	if addr == "" {
		t.Skip("POOLSIM_CAPACITY_ADDR not set")
	}
	n := 18000
	if s := os.Getenv("POOLSIM_CAPACITY_CONNS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	const rounds = 5
	type cc struct {
		nc  net.Conn
		r   *bufio.Reader
		job string
		ntm string
	}
	cs := make([]*cc, 0, n)
	defer func() {
		for _, c := range cs {
			c.nc.Close()
		}
	}()
	start := time.Now()
	for i := 0; i < n; i++ {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		fmt.Fprintf(nc, `{"id":1,"method":"mining.subscribe","params":["cap"]}`+"\n"+`{"id":2,"method":"mining.authorize","params":["w%d","x"]}`+"\n", i)
		cs = append(cs, &cc{nc: nc, r: bufio.NewReaderSize(nc, 2048)})
	}
	for i, c := range cs {
		c.nc.SetReadDeadline(time.Now().Add(time.Minute))
		for c.job == "" {
			line, err := c.r.ReadString('\n')
			if err != nil {
				t.Fatalf("conn %d: %v", i, err)
			}
			if strings.Contains(line, `"method":"mining.notify"`) {
				var m struct{ Params []json.RawMessage }
				json.Unmarshal([]byte(line), &m)
				c.job, c.ntm = strings.Trim(string(m.Params[0]), `"`), strings.Trim(string(m.Params[7]), `"`)
			}
		}
	}
	t.Logf("%d connections subscribed, authorized and working in %v", n, time.Since(start))

	start = time.Now()
	for r := 0; r < rounds; r++ {
		for i, c := range cs {
			fmt.Fprintf(c.nc, `{"id":4,"method":"mining.submit","params":["w%d","%s","0000000000000000","%s","%08x"]}`+"\n", i, c.job, c.ntm, r)
		}
		for i, c := range cs {
			line, err := c.r.ReadString('\n')
			if err != nil || !strings.Contains(line, `"result":true`) {
				t.Fatalf("conn %d round %d: %q %v", i, r, line, err)
			}
		}
	}
	el := time.Since(start)
	t.Logf("%d shares accepted in %v: %.0f shares/s", n*rounds, el, float64(n*rounds)/el.Seconds())
	if pid := os.Getenv("POOLSIM_CAPACITY_PID"); pid != "" {
		b, _ := os.ReadFile("/proc/" + pid + "/status")
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "VmRSS") || strings.HasPrefix(l, "Threads") {
				t.Log(l)
			}
		}
	}
}
