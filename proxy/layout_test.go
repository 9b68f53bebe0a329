package proxy

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratum-proxy/stratum-proxy/codec"
	"github.com/stratum-proxy/stratum-proxy/proxy/pow"
)

// transcriptShare is one share a real pool accepted, with what the pool
// had told the miner.
type transcriptShare struct {
	file        string
	en1         string // the pool's extranonce1 (hex)
	n           int    // the pool's extranonce2 size
	diff        float64
	notify      [][]byte // raw params of the job's notify
	en2         string
	ntime, once string
}

// loadAcceptedShares reads every share answered true in the captured
// sessions, with the job and difficulty it was mined at.
func loadAcceptedShares(t *testing.T) []transcriptShare {
	t.Helper()
	files, err := filepath.Glob("../testdata/transcripts/*.jsonl")
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts: %v", err)
	}
	var out []transcriptShare
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		var (
			en1  string
			n    int
			diff float64
			jobs = map[string]struct {
				params [][]byte
				diff   float64
			}{}
			submits []transcriptShare // waiting for their answer, FIFO
			sc      = bufio.NewScanner(fh)
		)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var rec struct{ Dir, Line string }
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				t.Fatal(err)
			}
			var m codec.Message
			line := []byte(rec.Line)
			if err := codec.Decode(line, &m); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			params, _ := codec.SplitArray(m.Params, nil)
			switch {
			case rec.Dir == "pool->miner" && string(m.ID) == "1" && m.Result != nil:
				r, _ := codec.SplitArray(m.Result, nil)
				s, _ := codec.Unquote(r[1], nil)
				en1 = string(s)
				v, _ := codec.ParseInt(r[2])
				n = int(v)
			case string(m.Method) == codec.MethodSetDifficulty:
				diff, _ = codec.ParseFloat(params[0])
			case string(m.Method) == codec.MethodNotify:
				id, _ := codec.Unquote(params[0], nil)
				cp := make([][]byte, len(params))
				for i, p := range params {
					cp[i] = append([]byte(nil), p...)
				}
				jobs[string(id)] = struct {
					params [][]byte
					diff   float64
				}{cp, diff}
			case string(m.Method) == codec.MethodSubmit:
				str := func(i int) string { s, _ := codec.Unquote(params[i], nil); return string(s) }
				j := jobs[str(1)]
				submits = append(submits, transcriptShare{file: filepath.Base(f), en1: en1, n: n, diff: j.diff,
					notify: j.params, en2: str(2), ntime: str(3), once: str(4)})
			case rec.Dir == "pool->miner" && string(m.ID) == "4" && len(submits) > 0:
				sh := submits[0]
				submits = submits[1:]
				if ok, _ := codec.ParseBool(m.Result); ok {
					out = append(out, sh)
				}
			}
		}
		fh.Close()
	}
	return out
}

// TestSplitLayoutReproducesAcceptedShares proves the extranonce technique
// on real byte layouts: for every share a real pool accepted, a miner given
// extranonce1 P (k bytes) and extranonce2 size m, mining on the notify the
// proxy translates (coinb1||E1, zero padding in coinb2), produces the very
// header the pool validated, and the extranonce2 the proxy sends upstream
// (P||X||F) is the one the miner originally sent.
func TestSplitLayoutReproducesAcceptedShares(t *testing.T) {
	shares := loadAcceptedShares(t)
	if len(shares) != 142 {
		t.Fatalf("found %d accepted shares in the transcripts, want 142", len(shares))
	}
	const k, m = 2, 2
	tried := 0
	for _, sh := range shares {
		en2, _ := hex.DecodeString(sh.en2)
		if sh.n < k+m || len(en2) != sh.n {
			continue // ckpool-proxy's 3-byte layout takes the relayout path
		}
		pad := sh.n - k - m
		if strings.Trim(sh.en2[2*(k+m):], "0") != "" {
			continue // the miner used bytes the proxy fixes to zero
		}
		tried++
		j, err := newJob(sh.notify, []byte(sh.en1), []byte("1-"), sh.diff, false, time.Now(), nil)
		if err != nil {
			t.Fatalf("%s: %v", sh.file, err)
		}
		var msg codec.Message
		line := j.line(pad, false)
		if err := codec.Decode(line[:len(line)-1], &msg); err != nil {
			t.Fatalf("translated notify does not decode: %v\n%s", err, line)
		}
		params, _ := codec.SplitArray(msg.Params, nil)
		mj, _, err := pow.ParseNotify(params)
		if err != nil {
			t.Fatalf("translated notify: %v", err)
		}
		P, X := en2[:k], en2[k:k+m]
		var c pow.Checker
		ntime, _ := hexU32(sh.ntime)
		nonce, _ := hexU32(sh.once)
		h := c.Hash(&mj, P, X, ntime, nonce, 0, 0)
		if !pow.MeetsTarget(h, pow.Target(sh.diff)) {
			t.Fatalf("%s: share %s/%s does not validate through the translated notify", sh.file, sh.en2, sh.once)
		}
		// And the upstream extranonce2 the proxy builds is the original.
		s := &session{}
		s.setLayout(uint32(P[0])<<8|uint32(P[1]), k, m)
		up := hex.EncodeToString(s.prefix) + hex.EncodeToString(X) + strings.Repeat("00", sh.n-k-len(X))
		if up != sh.en2 {
			t.Fatalf("upstream extranonce2 %s, want %s", up, sh.en2)
		}
	}
	if tried < 100 {
		t.Fatalf("only %d shares exercised the layout", tried)
	}
	t.Logf("%d of %d accepted shares re-validated through the split layout", tried, len(shares))
}

func hexU32(s string) (uint32, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 4 {
		return 0, err
	}
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]), nil
}
