package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stratum-proxy/stratum-proxy/bench/poolsim"
	"github.com/stratum-proxy/stratum-proxy/proxy/pow"
)

// emitter writes the JSON event lines a role reports to the suite on
// stdout. Safe for concurrent use.
type emitter struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func newEmitter() *emitter { return &emitter{enc: json.NewEncoder(os.Stdout)} }

func (e *emitter) emit(ev string, data any) {
	raw, err := json.Marshal(data)
	if err != nil {
		raw, _ = json.Marshal(err.Error())
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	_ = e.enc.Encode(event{Ev: ev, At: time.Now().UnixNano(), Data: raw})
}

// Timed jobs: the pool role's fan-out jobs carry their send time in the id,
// "t" followed by the unix time in nanoseconds in hex, so a flood in
// another process can compute pool-send -> miner-arrival latency from the
// id alone (same machine, same clock). "t" is not a hex digit, so these ids
// never collide with the simulator's own (hex counter) ids.
const timedJobPrefix = "t"

// timedJobID returns the id of a job sent at t.
func timedJobID(t time.Time) string {
	return timedJobPrefix + strconv.FormatInt(t.UnixNano(), 16)
}

// parseTimedJobID is the inverse of timedJobID; ok is false for other ids.
// Through the proxy an id carries the pool connection's tag ("3-t..."),
// which is skipped.
func parseTimedJobID(id []byte) (time.Time, bool) {
	if i := bytes.IndexByte(id, '-'); i >= 0 {
		id = id[i+1:]
	}
	if len(id) < 2 || string(id[:1]) != timedJobPrefix {
		return time.Time{}, false
	}
	n, err := strconv.ParseInt(string(id[1:]), 16, 64)
	if err != nil || n <= 0 {
		return time.Time{}, false
	}
	return time.Unix(0, n), true
}

// poolRole is `suite --role=pool`: the pool simulator (bench/poolsim) in its
// own process, so it has its own descriptor budget and its RSS can be read
// alone. It prints {"ev":"ready","data":{"addr":...}} and then obeys
// commands on stdin, one per line:
//
//	notify N MS   send N timed jobs (clean_jobs=false) MS milliseconds apart;
//	              prints "notified" per job and "notify_done"
//	stats         prints "stats" (poolsim.Stats without per-user sums)
//	quit          (or EOF) closes the pool and exits
func poolRole(args []string) error {
	fs := flag.NewFlagSet("pool", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	diff := fs.Float64("diff", 1, "share difficulty (1e-10 accepts every blind share)")
	en1 := fs.Int("en1", 4, "extranonce1 size")
	en2 := fs.Int("en2", 8, "extranonce2 size")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	raiseOwnNoFile()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	s, err := poolsim.Start(poolsim.Config{
		Addr:            *addr,
		Difficulty:      *diff,
		Extranonce1Size: *en1,
		Extranonce2Size: *en2,
		// Fan-out jobs are sent every second or so; 32 keep every share
		// of a relay run valid even if a job arrives meanwhile.
		JobHistory: 32,
	})
	if err != nil {
		return err
	}
	defer s.Close()
	out := newEmitter()
	out.emit("ready", map[string]any{"addr": s.Addr(), "pid": os.Getpid()})

	jobs := newTimedJobs(*en1 + *en2)
	var notifying sync.WaitGroup
	defer notifying.Wait()
	stop := make(chan struct{})
	defer close(stop)

	sc := bufio.NewScanner(os.Stdin)
	// Bounded: ends at EOF (the suite closed stdin or died) or "quit".
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "quit":
			return nil
		case "stats":
			st := s.Stats()
			st.UserDifficulty = nil // one entry per rig: too big to print
			out.emit("stats", st)
		case "notify":
			if len(f) != 3 {
				out.emit("error", "usage: notify N MS")
				continue
			}
			n, err1 := strconv.Atoi(f[1])
			ms, err2 := strconv.Atoi(f[2])
			if err1 != nil || err2 != nil || n < 1 || n > 1000 || ms < 1 {
				out.emit("error", "usage: notify N MS (1 <= N <= 1000, MS >= 1)")
				continue
			}
			notifying.Add(1)
			go func() {
				defer notifying.Done()
				sendTimedJobs(s, jobs, out, n, time.Duration(ms)*time.Millisecond, stop)
			}()
		default:
			out.emit("error", fmt.Sprintf("unknown command %q", f[0]))
		}
	}
	return nil
}

// sendTimedJobs sends n timed jobs every interval (bounded by n), or
// fewer if stop closes.
func sendTimedJobs(s *poolsim.Server, jobs *timedJobs, out *emitter, n int, every time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	for i := 0; i < n; i++ {
		if i > 0 {
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
		j := jobs.next()
		sent := time.Now()
		j.ID = timedJobID(sent)
		s.NotifyJob(j, false)
		out.emit("notified", map[string]any{
			"id":      j.ID,
			"sent_ns": sent.UnixNano(),
			// How long the simulator took to write the job to every
			// connection (its own fan-out, goroutines over sockets).
			"broadcast_ns": time.Since(sent).Nanoseconds(),
		})
	}
	out.emit("notify_done", map[string]any{"jobs": n})
}

// timedJobs builds the fan-out jobs: the same simulated block (prevhash,
// height) with a new ntime and merkle branches each, like a pool's
// periodic re-send (clean_jobs=false).
type timedJobs struct {
	n      int // extranonce1+extranonce2 bytes in the coinbase script
	prev   [32]byte
	height uint32
}

func newTimedJobs(extranonce int) *timedJobs {
	j := &timedJobs{n: extranonce, height: 1000 + uint32(rand.IntN(1000))}
	for i := 0; i < 32; i += 8 {
		binary.LittleEndian.PutUint64(j.prev[i:], rand.Uint64())
	}
	return j
}

func (tj *timedJobs) next() pow.Job {
	now := uint32(time.Now().Unix())
	j := pow.Job{
		PrevHash: tj.prev,
		Version:  0x20000000, // BIP9 version bits, as current pools send
		NBits:    0x207fffff, // regtest minimum difficulty, as the simulator's own jobs
		NTime:    now,
		Branches: make([][32]byte, 2),
	}
	for i := range j.Branches {
		for k := 0; k < 32; k += 8 {
			binary.LittleEndian.PutUint64(j.Branches[i][k:], rand.Uint64())
		}
	}
	j.Coinb1, j.Coinb2 = coinbaseHalves(tj.height, now, tj.n)
	return j
}

// coinbaseHalves returns a coinbase transaction split around an extranonce
// of n bytes (n < 76, one push opcode): BIP34 height, ntime, extranonce and
// a tag in the script, one 50-coin output to a P2PKH script.
func coinbaseHalves(height, ntime uint32, n int) (coinb1, coinb2 []byte) {
	tag := []byte("/suite/")
	scriptLen := 1 + 3 + 1 + 4 + 1 + n + 1 + len(tag)
	b := binary.LittleEndian.AppendUint32(nil, 1) // tx version
	b = append(b, 1)                              // one input
	b = append(b, make([]byte, 32)...)            // null prevout
	b = append(b, 0xff, 0xff, 0xff, 0xff)         // prevout index -1
	b = append(b, byte(scriptLen))
	b = append(b, 3, byte(height), byte(height>>8), byte(height>>16))
	b = append(b, 4)
	b = binary.LittleEndian.AppendUint32(b, ntime)
	b = append(b, byte(n))
	coinb1 = b

	b = append([]byte{byte(len(tag))}, tag...)
	b = append(b, 0xff, 0xff, 0xff, 0xff)                   // sequence
	b = append(b, 1)                                        // one output
	b = binary.LittleEndian.AppendUint64(b, 50*100_000_000) // 50 coins
	script := append([]byte{0x76, 0xa9, 0x14}, make([]byte, 20)...)
	script = append(script, 0x88, 0xac) // OP_DUP OP_HASH160 <20> OP_EQUALVERIFY OP_CHECKSIG
	b = append(b, byte(len(script)))
	b = append(b, script...)
	b = append(b, 0, 0, 0, 0) // lock time
	return coinb1, b
}
