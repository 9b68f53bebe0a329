package proxy

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// A pool that misbehaves in every way at once, with a miner connected:
// garbage lines, difficulties of 0 and below, a notify with 100 merkle
// branches and one with odd-length hex, a line stalled halfway, answers to
// shares that are malformed or carry an unknown id. The miner stays
// connected, every share it submits gets exactly one answer, the bad lines
// are counted, and the pool's good job still reaches the miner.
func TestPoolFaultsMinersStay(t *testing.T) {
	cfg := poolCfg()
	cfg.NoVardiff = true // the shares below are not mined: relay them for the pool to answer
	cfg.ShareTimeout = time.Second
	h := newHarness(t, cfg)
	p := h.spPool(func(c *spConn) {
		if c.login(testDiff) != nil {
			return
		}
		c.send(spNotify("good1", true))
		// 100 branches (2^100 transactions): within the line limit, beyond
		// any block; dropped as invalid. (A line over --limits.max-line,
		// like 1,000 branches, ends the pool connection instead.)
		branches := "[" + strings.Repeat(`"`+strings.Repeat("11", 32)+`",`, 99) + `"` + strings.Repeat("11", 32) + `"]`
		c.send(
			`this is not json`,
			`{"id":null,"method":"mining.set_difficulty","params":[0]}`,
			`{"id":null,"method":"mining.set_difficulty","params":[-5]}`,
			`{"id":null,"method":"mining.set_difficulty","params":["lots"]}`,
			spNotifyRaw(`"many"`, `"`+strings.Repeat("00", 32)+`"`, branches, `"20000000"`, `"207fffff"`, `"66000000"`, false),
			spNotifyRaw(`"odd"`, `"`+strings.Repeat("0", 63)+`"`, `[]`, `"20000000"`, `"207fffff"`, `"66000000"`, false),
		)
		// A line stalled halfway, finished later.
		half := spNotify("slow2", false)
		_, _ = c.nc.Write([]byte(half[:len(half)/2]))
		time.Sleep(200 * time.Millisecond)
		_, _ = c.nc.Write([]byte(half[len(half)/2:] + "\n"))
		n := 0
		for {
			m, err := c.read()
			if err != nil {
				return
			}
			if m.Method != "mining.submit" {
				c.handshakeAnswer(m)
				continue
			}
			n++
			switch n % 3 {
			case 0:
				c.send(fmt.Sprintf(`{"id":%s,"result":"yes","error":null}`, m.ID)) // malformed result
			case 1:
				c.send(`{"id":999999,"result":true,"error":null}`) // an id the proxy never used: ignored
			default:
				c.answer(m, "true")
			}
		}
	})
	r := h.spMiner(h.user(p.Addr()))
	lines := spReadUntil(t, r, "the job after the faults", 10*time.Second, func(l string) bool { return spIsNotify(l, "slow2") })
	for _, l := range lines {
		if spIsNotify(l, "many") || spIsNotify(l, "odd") {
			t.Fatalf("an invalid notify reached the miner: %.200s", l)
		}
	}
	job := spJobID(lines[len(lines)-1])
	const shares = 6
	for i := 0; i < shares; i++ {
		r.send(fmt.Sprintf(`{"id":%d,"method":"mining.submit","params":["w",%s,"00000000","66000000","%08x"]}`+"\n", 100+i, job, i))
	}
	answered := map[string]int{}
	spReadUntil(t, r, "an answer to every share", 10*time.Second, func(l string) bool {
		for i := 0; i < shares; i++ {
			if strings.Contains(l, fmt.Sprintf(`"id":%d,`, 100+i)) {
				answered[fmt.Sprint(100+i)]++
			}
		}
		return len(answered) == shares
	})
	for id, n := range answered {
		if n != 1 {
			t.Fatalf("share %s answered %d times", id, n)
		}
	}
	if v, _ := msValue(h, "proxy_pool_invalid_messages_total"); v < 6 {
		t.Fatalf("proxy_pool_invalid_messages_total = %v, want the 6 bad lines counted", v)
	}
	r.send(`{"id":7,"method":"mining.ping","params":[]}` + "\n")
	spReadUntil(t, r, "the miner still served", 5*time.Second, func(l string) bool { return strings.Contains(l, `"id":7`) })
}
