package pow

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// transcriptDir holds real sessions between unmodified CPU miners and real
// pools (see its README.md).
const transcriptDir = "../../testdata/transcripts"

// capturedShare is a share that a real pool answered with true.
type capturedShare struct {
	where        string // file:line of the submit
	job          *Job
	diff         float64 // latest set_difficulty before the job's notify
	en1, en2     []byte
	ntime, nonce uint32
}

// loadCapturedShares parses every transcript: extranonce1 and the
// extranonce2 size from each session's subscribe result, the difficulty
// from the latest set_difficulty before a job's notify, and the shares
// whose submit was answered true (replies are matched FIFO per id, since
// every submit uses id 4).
func loadCapturedShares(t testing.TB) []capturedShare {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(transcriptDir, "*.jsonl"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts in %s: %v", transcriptDir, err)
	}
	type request struct {
		method string
		params []json.RawMessage
		where  string
	}
	type jobAt struct {
		job  *Job
		diff float64
	}
	var out []capturedShare
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		var (
			en1     []byte
			en2size int
			diff    = 1.0
			jobs    = map[string]jobAt{}
			pending = map[string][]request{}
		)
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for n := 1; sc.Scan(); n++ {
			where := filepath.Base(file) + ":" + strconv.Itoa(n)
			var rec struct{ Dir, Line string }
			var msg struct {
				ID     json.RawMessage
				Method string
				Params []json.RawMessage
				Result json.RawMessage
			}
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			if err := json.Unmarshal([]byte(rec.Line), &msg); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			id := string(msg.ID)
			switch {
			case rec.Dir == "miner->pool" && msg.Method != "":
				if msg.Method == "mining.subscribe" { // a new session
					en1, en2size, diff = nil, 0, 1
					jobs = map[string]jobAt{}
					pending = map[string][]request{}
				}
				pending[id] = append(pending[id], request{msg.Method, msg.Params, where})
			case rec.Dir == "pool->miner" && msg.Method == "mining.set_difficulty":
				if err := json.Unmarshal(msg.Params[0], &diff); err != nil {
					t.Fatalf("%s: %v", where, err)
				}
			case rec.Dir == "pool->miner" && msg.Method == "mining.notify":
				raw := make([][]byte, len(msg.Params))
				for i, p := range msg.Params {
					raw[i] = p
				}
				job, _, err := ParseNotify(raw)
				if err != nil {
					t.Fatalf("%s: %v", where, err)
				}
				jobs[job.ID] = jobAt{&job, diff}
			case rec.Dir == "pool->miner" && msg.Method == "" && len(pending[id]) > 0:
				req := pending[id][0]
				pending[id] = pending[id][1:]
				switch req.method {
				case "mining.subscribe":
					var res []json.RawMessage
					var en1hex string
					if json.Unmarshal(msg.Result, &res) != nil || len(res) != 3 ||
						json.Unmarshal(res[1], &en1hex) != nil || json.Unmarshal(res[2], &en2size) != nil {
						t.Fatalf("%s: subscribe result %s", where, msg.Result)
					}
					if en1, err = hex.DecodeString(en1hex); err != nil {
						t.Fatalf("%s: %v", where, err)
					}
				case "mining.submit":
					if string(msg.Result) != "true" {
						continue
					}
					var p [5]string
					for i := range p {
						if err := json.Unmarshal(req.params[i], &p[i]); err != nil {
							t.Fatalf("%s: %v", req.where, err)
						}
					}
					j, ok := jobs[p[1]]
					if !ok {
						t.Fatalf("%s: unknown job %s", req.where, p[1])
					}
					en2, err1 := hex.DecodeString(p[2])
					ntime, err2 := strconv.ParseUint(p[3], 16, 32)
					nonce, err3 := strconv.ParseUint(p[4], 16, 32)
					if err1 != nil || err2 != nil || err3 != nil || len(en2) != en2size {
						t.Fatalf("%s: malformed share %v", req.where, p)
					}
					out = append(out, capturedShare{req.where, j.job, j.diff, en1, en2, uint32(ntime), uint32(nonce)})
				}
			}
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	return out
}

func TestCapturedSharesRevalidate(t *testing.T) {
	shares := loadCapturedShares(t)
	// The README counts 36+71+28+2+3+1+1 accepted shares.
	if len(shares) != 142 {
		t.Fatalf("found %d accepted shares, want 142", len(shares))
	}
	var c Checker
	targets := map[float64][32]byte{}
	for _, s := range shares {
		target, ok := targets[s.diff]
		if !ok {
			target = Target(s.diff)
			targets[s.diff] = target
		}
		check := func(en2 []byte, ntime, nonce uint32) bool {
			return MeetsTarget(c.Hash(s.job, s.en1, en2, ntime, nonce, 0, 0), target)
		}
		h := c.Hash(s.job, s.en1, s.en2, s.ntime, s.nonce, 0, 0)
		if !MeetsTarget(h, target) {
			t.Errorf("%s: accepted share does not meet difficulty %g (share difficulty %g)", s.where, s.diff, Difficulty(h))
			continue
		}
		if d := Difficulty(h); d < s.diff {
			t.Errorf("%s: Difficulty %g below the pool's %g although the target is met", s.where, d, s.diff)
		}
		if check(s.en2, s.ntime, s.nonce+1) {
			t.Errorf("%s: still valid with nonce+1", s.where)
		}
		en2 := append([]byte(nil), s.en2...)
		en2[len(en2)-1] ^= 1
		if check(en2, s.ntime, s.nonce) {
			t.Errorf("%s: still valid with extranonce2 changed", s.where)
		}
		if check(s.en2, s.ntime+1, s.nonce) {
			t.Errorf("%s: still valid with ntime+1", s.where)
		}
		// The job's version is not rolled: a version bit flipped breaks it.
		if MeetsTarget(c.Hash(s.job, s.en1, s.en2, s.ntime, s.nonce, 0x2000, 0x1fffe000), target) {
			t.Errorf("%s: still valid with a version bit rolled", s.where)
		}
	}
}
