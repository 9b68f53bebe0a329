package poolsim_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratum-proxy/stratum-proxy/bench/poolsim"
	"github.com/stratum-proxy/stratum-proxy/proxy/pow"
)

// testDiff makes a share cost about 4,300 hashes.
const testDiff = 1e-6

func TestShareChecks(t *testing.T) {
	s := startPool(t, poolsim.Config{Difficulty: testDiff})
	c := dial(t, s)
	c.handshake("alice")
	if len(c.en1) != 4 || c.en2Size != 8 || c.diff != testDiff {
		t.Fatalf("layout en1=%x en2size=%d diff=%g", c.en1, c.en2Size, c.diff)
	}

	sh := c.mine(testDiff, true, 0, 0)
	c.mustSubmit("alice", sh, 0)
	c.mustSubmit("alice", sh, 22) // the same share again

	low := c.mine(testDiff, false, 0, 0)
	c.mustSubmit("alice", low, 23)

	bad := sh
	bad.en2 = sh.en2[:7]
	c.mustSubmit("alice", bad, 20) // wrong extranonce2 size
	bad = sh
	bad.ntime = sh.ntime - 1
	c.mustSubmit("alice", bad, 20) // ntime before the job's
	bad = sh
	bad.ntime = sh.ntime + 3*3600
	c.mustSubmit("alice", bad, 20) // ntime too far ahead
	c.mustSubmit("bob", c.mine(testDiff, true, 0, 0), 24)
	if m := c.call(4, "mining.submit", `["alice","1"]`); m.code() != 20 {
		t.Fatalf("short submit answered %s", m.Error)
	}

	// A job that is not clean keeps older jobs valid; a clean one does not.
	old := c.mine(testDiff, true, 0, 0)
	older := c.mine(testDiff, true, 0, 0)
	s.Notify(false)
	c.waitJob(old.job)
	c.mustSubmit("alice", old, 0)
	s.Notify(true)
	c.waitJob(c.job)
	c.mustSubmit("alice", older, 21)
	c.mustSubmit("alice", c.mine(testDiff, true, 0, 0), 0)
	unknown := c.mine(testDiff, true, 0, 0)
	j := *unknown.job
	j.ID = "nope"
	unknown.job = &j
	c.mustSubmit("alice", unknown, 21)

	st := s.Stats()
	if st.Accepted != 3 || st.Duplicate != 1 || st.LowDifficulty != 1 || st.Other != 4 || st.Unauthorized != 1 ||
		st.Stale != 2 || st.Rejected != 9 || st.Submits != 12 || st.RejectedCode(21) != 2 {
		t.Fatalf("stats %+v", st)
	}
	if d := st.UserDifficulty["alice"]; d != 3*testDiff || st.AcceptedDifficulty != d {
		t.Fatalf("alice's accepted difficulty %g, total %g", d, st.AcceptedDifficulty)
	}
}

func TestNotSubscribedAndUnauthorized(t *testing.T) {
	s := startPool(t, poolsim.Config{Difficulty: testDiff, User: "acct", Password: "pw"})
	c := dial(t, s)
	if m := c.call(4, "mining.submit", `["acct","1","00000000","00000000","00000000"]`); m.code() != 25 {
		t.Fatalf("submit before subscribe: %s", m.Error)
	}
	c.subscribe()
	if m := c.call(4, "mining.submit", `["acct","1","0000000000000000","00000000","00000000"]`); m.code() != 24 {
		t.Fatalf("submit before authorize: %s", m.Error)
	}
	for _, up := range [][2]string{{"other", "pw"}, {"acct", "x"}, {"acctx", "pw"}, {"", "pw"}} {
		if m := c.call(2, "mining.authorize", fmt.Sprintf("[%q,%q]", up[0], up[1])); m.code() != 24 {
			t.Fatalf("authorize %v answered %s %s", up, m.Result, m.Error)
		}
	}
	if m := c.call(2, "mining.authorize", `["acct.rig7","pw"]`); string(m.Result) != "true" {
		t.Fatalf("authorize acct.rig7: %s", m.Error)
	}
	c.waitJob(nil)
	c.mustSubmit("acct.rig7", c.mine(testDiff, true, 0, 0), 0)
	c.mustSubmit("acct", c.mine(testDiff, true, 0, 0), 24) // authorized names only
	if st := s.Stats(); st.NotSubscribed != 1 || st.Unauthorized != 2 || st.Accepted != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestVersionRolling(t *testing.T) {
	s := startPool(t, poolsim.Config{Difficulty: testDiff, VersionMask: 0x1fffe000})
	c := dial(t, s)
	m := c.call(1, "mining.configure", `[["version-rolling","minimum-difficulty"],{"version-rolling.mask":"ffffffff","version-rolling.min-bit-count":2}]`)
	var res map[string]any
	if err := json.Unmarshal(m.Result, &res); err != nil || res["version-rolling"] != true ||
		res["version-rolling.mask"] != "1fffe000" || res["minimum-difficulty"] != false {
		t.Fatalf("configure answered %s", m.Result)
	}
	c.handshake("alice")
	c.mustSubmit("alice", c.mine(testDiff, true, 0x0aaa6000, 0x1fffe000), 0)
	c.mustSubmit("alice", c.mine(testDiff, true, 0x00002000, 0x1fffe000), 0)
	c.mustSubmit("alice", c.mine(testDiff, true, 0, 0x1fffe000), 0) // rolling nothing is fine
	// A bit outside the granted mask: rejected whatever the hash.
	c.mustSubmit("alice", c.mine(testDiff, true, 0x00001000, 0xffffffff), 20)
	// A share mined with other version bits than it claims: low difficulty.
	sh := c.mine(testDiff, true, 0x00004000, 0x1fffe000)
	sh.vbits = 0x00008000
	c.mustSubmit("alice", sh, 23)

	// The miner asks for fewer bits: it gets the intersection.
	c2 := dial(t, s)
	m = c2.call(1, "mining.configure", `[["version-rolling"],{"version-rolling.mask":"00ffff00"}]`)
	if !strings.Contains(string(m.Result), `"version-rolling.mask":"00ffe000"`) {
		t.Fatalf("configure answered %s", m.Result)
	}
	c2.handshake("bob")
	c2.mustSubmit("bob", c2.mine(testDiff, true, 0x10000000, 0x1fffe000), 20)
	c2.mustSubmit("bob", c2.mine(testDiff, true, 0x00100000, 0x00ffe000), 0)

	// The pool narrows its mask: rolling miners are told at once.
	s.SetVersionMask(0x00006000)
	for len(c2.notes) == 0 {
		c2.read()
	}
	if n := c2.notes[0]; n.Method != "mining.set_version_mask" || string(n.Params[0]) != `"00006000"` {
		t.Fatalf("got %s %s", n.Method, n.Params)
	}
	c2.mustSubmit("bob", c2.mine(testDiff, true, 0x00100000, 0x00ffe000), 20)
	c2.mustSubmit("bob", c2.mine(testDiff, true, 0x00004000, 0x00006000), 0)

	// Without version rolling any version bits are rejected.
	p := startPool(t, poolsim.Config{Difficulty: testDiff})
	c3 := dial(t, p)
	if m := c3.call(1, "mining.configure", `[["version-rolling"],{"version-rolling.mask":"1fffe000"}]`); string(m.Result) != `{"version-rolling":false}` {
		t.Fatalf("configure without rolling answered %s", m.Result)
	}
	c3.handshake("carol")
	c3.mustSubmit("carol", c3.mine(testDiff, true, 0x2000, 0x1fffe000), 20)
	c3.mustSubmit("carol", c3.mine(testDiff, true, 0, 0x1fffe000), 0) // "00000000" is allowed
}

func TestDifficultyAppliesToLaterJobs(t *testing.T) {
	s := startPool(t, poolsim.Config{Difficulty: testDiff})
	c := dial(t, s)
	c.handshake("alice")
	// Mined at the old difficulty, for a job sent before the change.
	sh := c.mine(testDiff, true, 0, 0)
	var easy share
	for {
		// A share that meets testDiff but not 10*testDiff.
		easy = c.mine(testDiff, true, 0, 0)
		if !meets(easy, c, 10*testDiff) {
			break
		}
	}
	s.SetDifficulty(10 * testDiff)
	for c.diff != 10*testDiff {
		c.read()
	}
	c.mustSubmit("alice", sh, 0)
	c.mustSubmit("alice", easy, 0)
	s.Notify(false)
	c.waitJob(sh.job)
	for {
		easy = c.mine(testDiff, true, 0, 0)
		if !meets(easy, c, 10*testDiff) {
			break
		}
	}
	c.mustSubmit("alice", easy, 23)
	c.mustSubmit("alice", c.mine(10*testDiff, true, 0, 0), 0)
}

func TestPipelinedSameID(t *testing.T) {
	s := startPool(t, poolsim.Config{Difficulty: testDiff})
	c := dial(t, s)
	c.handshake("alice")
	a, b := c.mine(testDiff, true, 0, 0), c.mine(testDiff, true, 0, 0)
	low := c.mine(testDiff, false, 0, 0)
	var buf bytes.Buffer
	for _, sh := range []share{a, b, a, low, b} {
		fmt.Fprintf(&buf, `{"method": "mining.submit", "params": %s, "id":4}`+"\n", sh.params("alice"))
	}
	buf.WriteString(`{"id":5,"method":"mining.ping","params":[]}` + "\n")
	if _, err := c.nc.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{0, 0, 22, 23, 22} {
		m := c.response()
		if string(m.ID) != "4" || m.code() != want || (want == 0) != (string(m.Result) == "true") {
			t.Fatalf("answer %d: id %s result %s error %s, want code %d", i, m.ID, m.Result, m.Error, want)
		}
	}
	if m := c.response(); string(m.ID) != "5" || string(m.Result) != `"pong"` {
		t.Fatalf("ping answered %s %s", m.ID, m.Result)
	}
}

func TestShareDelayKeepsOrder(t *testing.T) {
	const delay = 150 * time.Millisecond
	s := startPool(t, poolsim.Config{Difficulty: testDiff, ShareDelay: delay})
	c := dial(t, s)
	c.handshake("alice")
	a, b := c.mine(testDiff, true, 0, 0), c.mine(testDiff, true, 0, 0)
	start := time.Now()
	c.send(`{"id":4,"method":"mining.submit","params":%s}`, a.params("alice"))
	c.send(`{"id":4,"method":"mining.submit","params":%s}`, a.params("alice"))
	c.send(`{"id":4,"method":"mining.submit","params":%s}`, b.params("alice"))
	for i, want := range []int{0, 22, 0} {
		if m := c.response(); m.code() != want {
			t.Fatalf("answer %d: %s %s, want %d", i, m.Result, m.Error, want)
		}
	}
	// Pipelined: the three waits overlap.
	if el := time.Since(start); el < delay || el > 3*delay {
		t.Fatalf("three delayed answers took %v, want about %v", el, delay)
	}
}

func TestOtherMethods(t *testing.T) {
	s := startPool(t, poolsim.Config{Difficulty: testDiff})
	c := dial(t, s)
	c.send("garbage")
	if m := c.response(); m.code() != 20 || string(m.ID) != "null" {
		t.Fatalf("garbage answered %s %s", m.ID, m.Error)
	}
	c.send("\r\n  \n")
	if m := c.call(9, "mining.frobnicate", `[]`); m.code() != 20 || string(m.ID) != "9" {
		t.Fatalf("unknown method answered %s %s", m.ID, m.Error)
	}
	c.send(`{"id":"x7","method":"mining.ping","params":[]}`)
	if m := c.response(); string(m.ID) != `"x7"` || string(m.Result) != `"pong"` {
		t.Fatalf("ping answered %s %s", m.ID, m.Result)
	}
	if m := c.call(3, "mining.extranonce.subscribe", `[]`); string(m.Result) != "true" {
		t.Fatalf("extranonce.subscribe answered %s", m.Result)
	}
	if m := c.call(5, "mining.suggest_difficulty", `[1000]`); string(m.Result) != "true" {
		t.Fatalf("suggest_difficulty answered %s", m.Result)
	}
	// A long line is read whole (through the overflow buffer).
	long := strings.Repeat("x", 5000)
	if m := c.call(6, "mining.subscribe", fmt.Sprintf("[%q]", long)); len(m.Result) == 0 || m.code() != 0 {
		t.Fatalf("long subscribe answered %s", m.Error)
	}
	c.handshake("alice")
	if c.diff != testDiff {
		t.Fatalf("suggest_difficulty changed the difficulty to %g", c.diff)
	}
	// Answers to the pool's own requests are ignored.
	c.send(`{"id":42,"result":"pong","error":null}`)
	c.mustSubmit("alice", c.mine(testDiff, true, 0, 0), 0)

	s.Reconnect("", 0, 0)
	s.Reconnect("pool.example", 3333, 5)
	s.BroadcastLine([]byte(`{"id":null,"method":"client.show_message","params":["hi"]}`))
	for len(c.notes) < 3 {
		c.read()
	}
	got := fmt.Sprintf("%s %s|%s %s|%s %s", c.notes[0].Method, c.notes[0].Params, c.notes[1].Method, c.notes[1].Params, c.notes[2].Method, c.notes[2].Params)
	if got != `client.reconnect []|client.reconnect ["pool.example" 3333 5]|client.show_message ["hi"]` {
		t.Fatalf("notifications %s", got)
	}
}

func TestSetExtranonce(t *testing.T) {
	s := startPool(t, poolsim.Config{Difficulty: testDiff, Extranonce2Size: 4})
	c := dial(t, s)
	c.handshake("alice")
	if m := c.call(3, "mining.extranonce.subscribe", `[]`); string(m.Result) != "true" {
		t.Fatal(m.Error)
	}
	plain := dial(t, s)
	plain.handshake("bob")
	oldEn1 := c.en1
	old := c.mine(testDiff, true, 0, 0)
	if err := s.SetExtranonce(6); err != nil {
		t.Fatal(err)
	}
	c.waitJob(old.job)
	if bytes.Equal(c.en1, oldEn1) || c.en2Size != 6 {
		t.Fatalf("after set_extranonce en1 %x (was %x) en2size %d", c.en1, oldEn1, c.en2Size)
	}
	c.mustSubmit("alice", old, 0) // the old job keeps the old layout
	c.mustSubmit("alice", c.mine(testDiff, true, 0, 0), 0)
	plain.waitJob(plain.job)
	if plain.en2Size != 4 || len(plain.notes) != 0 {
		t.Fatalf("a miner without extranonce.subscribe got a new layout: %d %v", plain.en2Size, plain.notes)
	}
	plain.mustSubmit("bob", plain.mine(testDiff, true, 0, 0), 0)
}

func TestUniqueExtranonce1AndConns(t *testing.T) {
	s := startPool(t, poolsim.Config{Difficulty: testDiff, Extranonce1Size: 2})
	const n = 100
	seen := map[string]bool{}
	var cs []*client
	for i := 0; i < n; i++ {
		c := dial(t, s)
		c.subscribe()
		if len(c.en1) != 2 || seen[string(c.en1)] {
			t.Fatalf("extranonce1 %x repeated or wrong size", c.en1)
		}
		seen[string(c.en1)] = true
		cs = append(cs, c)
	}
	if s.Conns() != n {
		t.Fatalf("Conns %d, want %d", s.Conns(), n)
	}
	for _, c := range cs[:n/2] {
		c.nc.Close()
	}
	waitFor(t, "closed conns to go", func() bool { return s.Conns() == n/2 })
	// Reconnecting never reuses an extranonce1 that was handed out.
	for i := 0; i < n/2; i++ {
		c := dial(t, s)
		c.subscribe()
		if seen[string(c.en1)] {
			t.Fatalf("extranonce1 %x reused", c.en1)
		}
		seen[string(c.en1)] = true
	}
	s.DropConnections()
	waitFor(t, "dropped conns", func() bool { return s.Conns() == 0 })
	c := dial(t, s) // still listening
	c.handshake("alice")
	if st := s.Stats(); st.TotalConnections != n+n/2+1 || st.Connections != 1 {
		t.Fatalf("stats %+v", st)
	}
	s.Close()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.r.ReadBytes('\n'); err == nil {
		t.Fatal("connection alive after Close")
	}
	if s.Conns() != 0 {
		t.Fatal("conns after Close")
	}
}

func TestNotifyInterval(t *testing.T) {
	s := startPool(t, poolsim.Config{Difficulty: testDiff, NotifyInterval: 20 * time.Millisecond, JobIDPrefix: "ab"})
	c := dial(t, s)
	c.handshake("alice")
	first := c.job
	for i := 0; i < 3; i++ {
		c.waitJob(c.job)
	}
	if !strings.HasPrefix(c.job.ID, "ab") || c.job.PrevHash != first.PrevHash {
		t.Fatalf("job %s prevhash changed on a non-clean notify", c.job.ID)
	}
}

func TestManyConcurrentMiners(t *testing.T) {
	s := startPool(t, poolsim.Config{Difficulty: testDiff, MerkleBranches: 3})
	const n, shares = 20, 5
	var wg sync.WaitGroup
	cs := make([]*client, n)
	for i := range cs {
		cs[i] = dial(t, s)
		cs[i].handshake(fmt.Sprintf("w%d", i))
	}
	errs := make(chan string, n*shares)
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < shares; k++ {
				sh := c.mine(testDiff, true, 0, 0)
				c.send(`{"id":4,"method":"mining.submit","params":%s}`, sh.params(fmt.Sprintf("w%d", i)))
			}
			for k := 0; k < shares; k++ {
				if m := c.response(); string(m.Result) != "true" {
					errs <- string(m.Error)
				}
			}
		}()
	}
	go func() {
		for i := 0; i < 5; i++ {
			s.Notify(false)
			time.Sleep(2 * time.Millisecond)
		}
	}()
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	st := s.Stats()
	if st.Accepted != n*shares || len(st.UserDifficulty) != n {
		t.Fatalf("stats %+v", st)
	}
}

func TestBadConfig(t *testing.T) {
	for _, cfg := range []poolsim.Config{
		{Extranonce1Size: 17},
		{Extranonce2Size: -1},
		{Difficulty: -1},
		{MerkleBranches: 17},
		{Addr: "256.0.0.1:0"},
	} {
		if s, err := poolsim.Start(cfg); err == nil {
			s.Close()
			t.Errorf("Start(%+v) succeeded", cfg)
		}
	}
}

// meets reports whether sh (without version rolling) meets diff on c's
// extranonce1.
func meets(sh share, c *client, diff float64) bool {
	var ch pow.Checker
	return pow.MeetsTarget(ch.Hash(sh.job, c.en1, sh.en2, sh.ntime, sh.nonce, 0, 0), pow.Target(diff))
}
