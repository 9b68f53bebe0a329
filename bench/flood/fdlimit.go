package flood

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// fdSlack covers descriptors the flood needs besides one per miner and the
// in-flight dials: Go's netpoller (epoll + eventfd), stdio, /proc reads and
// the resolver. Generous on purpose; running out mid-ramp is worse.
const fdSlack = 64

// fdBudget is the outcome of the file descriptor check at start.
type fdBudget struct {
	Soft, Hard uint64 // RLIMIT_NOFILE after raising the soft limit
	Open       int    // descriptors open before the flood started
	Need       int    // estimate for the whole flood
}

// checkFDs raises the soft RLIMIT_NOFILE to the hard limit and refuses a
// miner count that cannot fit: each miner holds one descriptor once
// enrolled, and each dial in flight briefly holds two (gnet's Enroll dups
// the socket before closing the net.Conn).
func checkFDs(miners, concurrency, loops, extra int) (fdBudget, error) {
	var b fdBudget
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return b, fmt.Errorf("flood: getrlimit: %w", err)
	}
	if rl.Cur < rl.Max {
		want := rl
		want.Cur = rl.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &want); err == nil {
			rl = want
		}
	}
	b.Soft, b.Hard = rl.Cur, rl.Max
	b.Open = countOpenFDs()
	b.Need = b.Open + miners + min(concurrency, miners) + 2*loops + fdSlack + extra
	if uint64(b.Need) > b.Soft {
		room := int(b.Soft) - (b.Need - miners)
		return b, fmt.Errorf("%w: %d miners need about %d descriptors (%d open, %d dials in flight, %d reserved) "+
			"but RLIMIT_NOFILE is %d (hard %d); at most ~%d miners fit: lower --miners or --connect-concurrency, "+
			"raise the hard limit, or split the miners over several processes",
			ErrTooManyMiners, miners, b.Need, b.Open, min(concurrency, miners), 2*loops+fdSlack+extra,
			b.Soft, b.Hard, max(room, 0))
	}
	return b, nil
}

// countOpenFDs counts /proc/self/fd entries; 0 when /proc is unavailable.
func countOpenFDs() int {
	f, err := os.Open("/proc/self/fd")
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	// Bounded: the directory has at most RLIMIT_NOFILE entries.
	for {
		names, err := f.Readdirnames(1024)
		n += len(names)
		if err != nil || len(names) == 0 {
			break
		}
	}
	return n
}

// rss returns the process's resident set size and its peak (VmRSS, VmHWM)
// in bytes from /proc/self/status; zeros when unavailable.
func rss() (cur, peak uint64) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Bytes()
		var dst *uint64
		switch {
		case bytes.HasPrefix(line, []byte("VmRSS:")):
			dst = &cur
		case bytes.HasPrefix(line, []byte("VmHWM:")):
			dst = &peak
		default:
			continue
		}
		f := bytes.Fields(line)
		if len(f) >= 2 {
			if kb, err := strconv.ParseUint(string(f[1]), 10, 64); err == nil {
				*dst = kb << 10
			}
		}
	}
	return cur, peak
}
