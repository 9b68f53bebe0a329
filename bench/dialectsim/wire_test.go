package dialectsim

import (
	"bufio"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"
)

// rawConn is a bare client for checking the exact wire format.
type rawConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, r: bufio.NewReader(c)}
}

func (rc *rawConn) send(line string) {
	rc.t.Helper()
	rc.c.SetWriteDeadline(time.Now().Add(testTimeout))
	if _, err := rc.c.Write([]byte(line + "\n")); err != nil {
		rc.t.Fatal(err)
	}
}

func (rc *rawConn) line() string {
	rc.t.Helper()
	rc.c.SetReadDeadline(time.Now().Add(testTimeout))
	b, err := readLine(rc.r)
	if err != nil {
		rc.t.Fatal(err)
	}
	return string(b)
}

func decode(t *testing.T, line string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("%q: %v", line, err)
	}
	return m
}

func mustPrefix(t *testing.T, line, prefix string) {
	t.Helper()
	if !strings.HasPrefix(line, prefix) {
		t.Fatalf("line\n%s\ndoes not start with\n%s", line, prefix)
	}
}

func TestWireCryptoNote(t *testing.T) {
	p := startPool(t, PoolConfig{Kind: CryptoNote})
	rc := dialRaw(t, p.Addr())
	rc.send(`{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"USER","pass":"PASS","agent":"XMRig/6.21.0 (Linux x86_64) libuv/1.44.2 gcc/12.2.0","algo":["rx/0"]}}`)
	line := rc.line()
	mustPrefix(t, line, `{"id":1,"jsonrpc":"2.0","error":null,"result":{"id":"`)
	res := decode(t, line)["result"].(map[string]any)
	job := res["job"].(map[string]any)
	if len(job["blob"].(string)) != 152 || job["target"] != "ffffff07" || job["algo"] != "rx/0" ||
		len(job["seed_hash"].(string)) != 64 || job["height"] == nil || job["job_id"] == "" {
		t.Fatalf("job %v", job)
	}
	if !strings.HasSuffix(line, `"extensions":["algo","nicehash","keepalive"],"status":"OK"}}`) {
		t.Fatalf("login answer %s", line)
	}
	sid := res["id"].(string)
	rc.send(`{"id":3,"jsonrpc":"2.0","method":"keepalived","params":{"id":"` + sid + `"}}`)
	if got := rc.line(); got != `{"id":3,"jsonrpc":"2.0","error":null,"result":{"status":"KEEPALIVED"}}` {
		t.Fatalf("keepalived: %s", got)
	}
	rc.send(`{"id":4,"jsonrpc":"2.0","method":"getjob","params":{"id":"` + sid + `"}}`)
	if got := decode(t, rc.line())["result"].(map[string]any); got["job_id"] != job["job_id"] {
		t.Fatalf("getjob: %v", got)
	}
	rc.send(`{"id":5,"jsonrpc":"2.0","method":"keepalived","params":{"id":"nope"}}`)
	if got := rc.line(); got != `{"id":5,"jsonrpc":"2.0","error":{"code":-1,"message":"Unauthenticated"},"result":null}` {
		t.Fatalf("keepalived, wrong id: %s", got)
	}
	p.NewJob(true)
	push := rc.line()
	mustPrefix(t, push, `{"jsonrpc":"2.0","method":"job","params":{"blob":"`)
	pj := decode(t, push)["params"].(map[string]any)
	if pj["job_id"] == job["job_id"] || pj["blob"] == job["blob"] {
		t.Fatalf("pushed job %v same as %v", pj, job)
	}
	// The old job is gone (clean), a submit on it is stale.
	rc.send(`{"id":6,"jsonrpc":"2.0","method":"submit","params":{"id":"` + sid + `","job_id":"` + job["job_id"].(string) +
		`","nonce":"00000000","result":"` + strings.Repeat("0", 64) + `"}}`)
	if got := rc.line(); got != `{"id":6,"jsonrpc":"2.0","error":{"code":-1,"message":"Invalid job id"},"result":null}` {
		t.Fatalf("stale submit: %s", got)
	}
	rc.send(`{"id":7,"jsonrpc":"2.0","method":"submit","params":{"id":"` + sid + `","job_id":"` + pj["job_id"].(string) +
		`","nonce":"000000","result":"` + strings.Repeat("0", 64) + `"}}`)
	if got := rc.line(); got != `{"id":7,"jsonrpc":"2.0","error":{"code":-1,"message":"Malformed nonce"},"result":null}` {
		t.Fatalf("short nonce: %s", got)
	}
	rc.send(`not json`)
	if got := rc.line(); got != `{"id":null,"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"result":null}` {
		t.Fatalf("garbage: %s", got)
	}
	if st := p.Stats(); st.Stale != 1 || st.BadFormat != 2 || st.Rejected != 2 {
		t.Fatalf("stats %+v", st)
	}
	if l := p.Logins(); len(l) != 1 || l[0].User != "USER" || l[0].Pass != "PASS" || l[0].Algo[0] != "rx/0" || !strings.HasPrefix(l[0].Agent, "XMRig/") {
		t.Fatalf("logins %+v", l)
	}
}

func TestWireEthProxy(t *testing.T) {
	p := startPool(t, PoolConfig{Kind: EthProxy})
	rc := dialRaw(t, p.Addr())
	rc.send(`{"id":1,"jsonrpc":"2.0","method":"eth_submitLogin","worker":"rig1","params":["0xWALLET","x"]}`)
	if got := rc.line(); got != `{"id":1,"jsonrpc":"2.0","result":true}` {
		t.Fatalf("login: %s", got)
	}
	rc.send(`{"id":2,"jsonrpc":"2.0","method":"eth_getWork","params":[]}`)
	work := decode(t, rc.line())["result"].([]any)
	if len(work) != 3 {
		t.Fatalf("work %v", work)
	}
	for _, w := range work {
		if s := w.(string); len(s) != 66 || !strings.HasPrefix(s, "0x") {
			t.Fatalf("work %v", work)
		}
	}
	if want := "0x" + hex64(Target(EthProxy, 32)); work[2] != want {
		t.Fatalf("target %v, want %v", work[2], want)
	}
	p.NewJob(false)
	push := rc.line()
	mustPrefix(t, push, `{"id":0,"jsonrpc":"2.0","result":["0x`)
	if pw := decode(t, push)["result"].([]any); pw[0] == work[0] || pw[1] != work[1] {
		t.Fatalf("pushed %v after %v", pw, work)
	}
	rc.send(`{"id":3,"jsonrpc":"2.0","method":"eth_submitHashrate","params":["0x1dcd6500","0x` + strings.Repeat("12", 32) + `"]}`)
	if got := rc.line(); got != `{"id":3,"jsonrpc":"2.0","result":true}` {
		t.Fatalf("hashrate: %s", got)
	}
	if st := p.Stats(); st.Hashrate != "0x1dcd6500" {
		t.Fatalf("hashrate %q", st.Hashrate)
	}
	// A stale header: false, counted as stale.
	rc.send(`{"id":4,"jsonrpc":"2.0","method":"eth_submitWork","params":["0x0000000000000001","0x` + strings.Repeat("cd", 32) + `","0x` + strings.Repeat("00", 32) + `"]}`)
	if got := rc.line(); got != `{"id":4,"jsonrpc":"2.0","result":false}` {
		t.Fatalf("stale: %s", got)
	}
	rc.send(`{"id":5,"jsonrpc":"2.0","method":"eth_submitWork","params":["0x01","0x00","0x00"]}`)
	if got := rc.line(); got != `{"id":5,"jsonrpc":"2.0","result":null,"error":{"code":-1,"message":"Malformed nonce"}}` {
		t.Fatalf("malformed: %s", got)
	}
	if st := p.Stats(); st.Stale != 1 || st.BadFormat != 1 {
		t.Fatalf("stats %+v", st)
	}
	if l := p.Logins(); len(l) != 1 || l[0].User != "0xWALLET" || l[0].Worker != "rig1" {
		t.Fatalf("logins %+v", l)
	}
}

// TestWireStratum checks the subscribe answer and the order of the lines
// around the authorize answer for the stratum kinds.
func TestWireStratum(t *testing.T) {
	cases := []struct {
		kind      Kind
		subscribe string
		answer    string // prefix of the subscribe answer
		before    []string
	}{
		{EthStratum, `{"id":1,"method":"mining.subscribe","params":["ethminer 0.19.0","EthereumStratum/1.0.0"]}`,
			`{"id":1,"result":[["mining.notify","`, []string{"mining.set_difficulty", "mining.notify"}},
		{KawPow, `{"id":1,"method":"mining.subscribe","params":["kawpowminer/1.2.4"]}`,
			`{"id":1,"result":[null,"`, []string{"mining.set_target", "mining.notify"}},
		{Equihash, `{"id":1,"method":"mining.subscribe","params":["nheqminer/0.5c",null,"127.0.0.1","3357"]}`,
			`{"id":1,"result":["`, []string{"mining.set_target", "mining.notify"}},
		{KHeavyHash, `{"id":1,"method":"mining.subscribe","params":["BzMiner/v17.0.0","EthereumStratum/1.0.0"]}`,
			`{"id":1,"result":[true,"EthereumStratum/1.0.0"],"error":null}`, []string{"mining.set_extranonce", "mining.set_difficulty", "mining.notify"}},
	}
	for _, c := range cases {
		for _, after := range []bool{false, true} {
			name := string(c.kind)
			if after {
				name += "/WorkAfterAuthorize"
			}
			t.Run(name, func(t *testing.T) {
				p := startPool(t, PoolConfig{Kind: c.kind, WorkAfterAuthorize: after})
				rc := dialRaw(t, p.Addr())
				rc.send(c.subscribe)
				sub := rc.line()
				mustPrefix(t, sub, c.answer)
				if c.kind == EthStratum {
					rc.send(`{"id":2,"method":"mining.extranonce.subscribe","params":[]}`)
					if got := rc.line(); got != `{"id":2,"result":true,"error":null}` {
						t.Fatalf("extranonce.subscribe: %s", got)
					}
				}
				rc.send(`{"id":3,"method":"mining.authorize","params":["USER.WORKER","PASS"]}`)
				var lines []string
				for i := 0; i < len(c.before)+1; i++ {
					lines = append(lines, rc.line())
				}
				ans := `{"id":3,"result":true,"error":null}`
				if after {
					if lines[0] != ans {
						t.Fatalf("first line %s, want the answer", lines[0])
					}
					lines = lines[1:]
				} else {
					if lines[len(lines)-1] != ans {
						t.Fatalf("last line %s, want the answer", lines[len(lines)-1])
					}
					lines = lines[:len(lines)-1]
				}
				for i, l := range lines {
					mustPrefix(t, l, `{"id":null,"method":"`+c.before[i]+`","params":[`)
				}
				notify := decode(t, lines[len(lines)-1])["params"].([]any)
				switch c.kind {
				case EthStratum:
					if len(notify) != 4 || len(notify[1].(string)) != 64 || len(notify[2].(string)) != 64 || notify[3] != true {
						t.Fatalf("notify %v", notify)
					}
				case KawPow:
					if len(notify) != 7 || notify[3] != hex64(Target(KawPow, DefaultDifficulty(KawPow))) || notify[4] != true {
						t.Fatalf("notify %v", notify)
					}
				case Equihash:
					if len(notify) != 8 || notify[1] != "04000000" || notify[4] != strings.Repeat("0", 64) || len(notify[5].(string)) != 8 || notify[7] != true {
						t.Fatalf("notify %v", notify)
					}
					if st := decode(t, lines[0])["params"].([]any); st[0] != hex64(Target(Equihash, 1.0/256)) {
						t.Fatalf("set_target %v", st)
					}
				case KHeavyHash:
					if len(notify) != 3 || len(notify[1].(string)) != 64 {
						t.Fatalf("notify %v", notify)
					}
					if en := decode(t, lines[0])["params"].([]any); len(en[0].(string)) != 4 || en[1] != 6.0 {
						t.Fatalf("set_extranonce %v", en)
					}
				}
				rc.send(`{"id":4,"method":"mining.submit","params":["OTHER.WORKER","x","y"]}`)
				if got := rc.line(); got != `{"id":4,"result":null,"error":[24,"Unauthorized worker",null]}` {
					t.Fatalf("unauthorized submit: %s", got)
				}
				rc.send(`{"id":5,"method":"mining.submit","params":["USER.WORKER","nope","00","00","00"]}`)
				if got := rc.line(); !strings.HasPrefix(got, `{"id":5,"result":null,"error":[20,"Malformed`) {
					t.Fatalf("malformed submit: %s", got)
				}
				if l := p.Logins(); len(l) != 1 || l[0].User != "USER" || l[0].Worker != "WORKER" || l[0].Pass != "PASS" || l[0].Agent == "" {
					t.Fatalf("logins %+v", l)
				}
			})
		}
	}
}
