package poolsim_test

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stratum-proxy/stratum-proxy/bench/poolsim"
)

// BenchmarkPipelinedShares measures share checks per second on one
// connection (a proxy's upstream): submits are written in batches, each
// with id 4, and every answer is read. At difficulty 1e-10 every hash meets
// the target, so each nonce is a new valid share: the pool hashes, checks
// the target and records the share for duplicate detection every time.
func BenchmarkPipelinedShares(b *testing.B) {
	s, err := poolsim.Start(poolsim.Config{Difficulty: 1e-10, MerkleBranches: 3})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	nc, err := net.Dial("tcp", s.Addr())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	r := bufio.NewReader(nc)
	fmt.Fprint(nc, `{"id":1,"method":"mining.subscribe","params":["b"]}`+"\n"+`{"id":2,"method":"mining.authorize","params":["w","x"]}`+"\n")
	var job, ntime string
	for job == "" {
		line, err := r.ReadString('\n')
		if err != nil {
			b.Fatal(err)
		}
		if strings.Contains(line, `"method":"mining.notify"`) {
			f := strings.Split(line, `"`)
			// {"id":null,"method":"mining.notify","params":["<id>","<prev>",...,"<ntime>",clean]}
			job, ntime = f[9], f[len(f)-2]
		}
	}
	const batch = 256 // submits in flight, like a busy upstream
	buf := make([]byte, 0, batch*128)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i += batch {
		n := min(batch, b.N-i)
		buf = buf[:0]
		for k := 0; k < n; k++ {
			buf = fmt.Appendf(buf, `{"id":4,"method":"mining.submit","params":["w","%s","0000000000000000","%s","%08x"]}`+"\n", job, ntime, i+k)
		}
		if _, err := nc.Write(buf); err != nil {
			b.Fatal(err)
		}
		for k := 0; k < n; k++ {
			line, err := r.ReadSlice('\n')
			if err != nil || !strings.Contains(string(line), `"result":true`) {
				b.Fatalf("answer %q %v", line, err)
			}
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "shares/s")
}
