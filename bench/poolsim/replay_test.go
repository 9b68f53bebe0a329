package poolsim_test

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stratum-proxy/stratum-proxy/bench/poolsim"
	"github.com/stratum-proxy/stratum-proxy/proxy/pow"
)

// transcriptDir holds real sessions between unmodified CPU miners and real
// pools (see its README.md).
const transcriptDir = "../../testdata/transcripts"

// event is one step of a captured session to replay against the
// simulator, in capture order.
type event struct {
	diff     float64 // mining.set_difficulty, when job and params are nil
	job      *pow.Job
	clean    bool
	params   string // a mining.submit's params
	accepted bool   // the real pool answered true
	where    string
}

type session struct {
	name    string
	en1     []byte
	en2Size int
	user    string
	events  []event
}

// loadSessions splits every transcript into sessions (one per
// miner->pool mining.subscribe) with their layout and events. Submit
// answers are matched FIFO per id: every submit uses id 4.
func loadSessions(t *testing.T) []*session {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(transcriptDir, "*.jsonl"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts in %s: %v", transcriptDir, err)
	}
	var out []*session
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		var cur *session
		pending := map[string][]int{} // id -> indexes into cur.events (-1: not a submit)
		method := map[string][]string{}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for n := 1; sc.Scan(); n++ {
			where := filepath.Base(file) + ":" + strconv.Itoa(n)
			var rec struct{ Dir, Line string }
			var m msg
			if json.Unmarshal(sc.Bytes(), &rec) != nil || json.Unmarshal([]byte(rec.Line), &m) != nil {
				t.Fatalf("%s: bad record", where)
			}
			id := string(m.ID)
			switch {
			case rec.Dir == "miner->pool" && m.Method == "mining.subscribe":
				cur = &session{name: where}
				out = append(out, cur)
				pending, method = map[string][]int{}, map[string][]string{}
				pending[id] = append(pending[id], -1)
				method[id] = append(method[id], m.Method)
			case rec.Dir == "miner->pool" && m.Method == "mining.submit":
				cur.events = append(cur.events, event{params: string(mustMarshal(m.Params)), where: where})
				pending[id] = append(pending[id], len(cur.events)-1)
				method[id] = append(method[id], m.Method)
			case rec.Dir == "miner->pool" && m.Method == "mining.authorize":
				var p []string
				json.Unmarshal(mustMarshal(m.Params), &p)
				cur.user = p[0]
				pending[id] = append(pending[id], -1)
				method[id] = append(method[id], m.Method)
			case rec.Dir == "miner->pool" && m.Method != "":
				pending[id] = append(pending[id], -1)
				method[id] = append(method[id], m.Method)
			case rec.Dir == "pool->miner" && m.Method == "mining.set_difficulty":
				var d float64
				json.Unmarshal(m.Params[0], &d)
				cur.events = append(cur.events, event{diff: d, where: where})
			case rec.Dir == "pool->miner" && m.Method == "mining.notify":
				raw := make([][]byte, len(m.Params))
				for i := range m.Params {
					raw[i] = m.Params[i]
				}
				j, clean, err := pow.ParseNotify(raw)
				if err != nil {
					t.Fatalf("%s: %v", where, err)
				}
				cur.events = append(cur.events, event{job: &j, clean: clean, where: where})
			case rec.Dir == "pool->miner" && m.Method == "" && len(pending[id]) > 0:
				i, meth := pending[id][0], method[id][0]
				pending[id], method[id] = pending[id][1:], method[id][1:]
				switch {
				case meth == "mining.subscribe":
					var res []json.RawMessage
					var en1 string
					json.Unmarshal(m.Result, &res)
					json.Unmarshal(res[1], &en1)
					json.Unmarshal(res[2], &cur.en2Size)
					cur.en1, _ = hex.DecodeString(en1)
				case i >= 0:
					cur.events[i].accepted = string(m.Result) == "true"
				}
			}
		}
		f.Close()
	}
	return out
}

func mustMarshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// TestReplayCapturedSessions feeds the simulator each captured session's
// exact extranonce1, extranonce2 size, difficulties and jobs, in capture
// order, and submits the real miners' shares: every share the real pool
// accepted must be accepted by the simulator's hashing check too.
func TestReplayCapturedSessions(t *testing.T) {
	sessions := loadSessions(t)
	total := 0
	for _, ss := range sessions {
		t.Run(ss.name, func(t *testing.T) {
			s := startPool(t, poolsim.Config{
				Extranonce1:     ss.en1,
				Extranonce2Size: ss.en2Size,
				JobIDPrefix:     "sim-", // never one of the captured ids
				JobHistory:      64,
			})
			c := dial(t, s)
			c.handshake(ss.user)
			if fmt.Sprintf("%x/%d", c.en1, c.en2Size) != fmt.Sprintf("%x/%d", ss.en1, ss.en2Size) {
				t.Fatalf("layout %x/%d, want %x/%d", c.en1, c.en2Size, ss.en1, ss.en2Size)
			}
			for _, e := range ss.events {
				switch {
				case e.job != nil:
					s.NotifyJob(*e.job, e.clean)
					c.waitJob(c.job)
				case e.params != "":
					m := c.call(4, "mining.submit", e.params)
					if ok := string(m.Result) == "true"; ok != e.accepted {
						t.Fatalf("%s: simulator answered %s %s, the real pool accepted=%v", e.where, m.Result, m.Error, e.accepted)
					}
					if e.accepted {
						total++
					}
				default:
					s.SetDifficulty(e.diff)
					for c.diff != e.diff {
						c.read()
					}
				}
			}
		})
	}
	if total != 142 {
		t.Fatalf("replayed %d accepted shares, want 142", total)
	}
}
