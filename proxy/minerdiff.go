package proxy

import (
	"bytes"
	"strconv"
	"time"
)

// Per-miner difficulty. For algorithms the proxy can hash (sha256d,
// scrypt) every miner has its own difficulty (mc.vd), never above the
// pool's: its shares are checked at the proxy and only those that meet the
// pool's difficulty go upstream. Other algorithms keep the pool's
// difficulty and every share is relayed. A miner's difficulty reaches it
// as mining.set_difficulty right before a notify (cgminer-family firmware
// applies it only at the next notify), and each job remembers the
// difficulty it was sent at, so shares of a job sent before a change are
// checked against the difficulty of their job.

// jobDiff is the difficulty one job was sent to the miner at.
type jobDiff struct {
	j *job
	d float64
}

// startDifficulty sets up the miner's difficulty once its upstream (and so
// its algorithm) is known.
func (mc *minerConn) startDifficulty(a *account) {
	mc.checked = a.checked
	mc.algo = a.hash
	if mc.checked {
		mc.vd.init(mc.srv.vdcfg, time.Now(), mc.suggestD, mc.minDiff)
	}
}

// targetFor returns the difficulty the miner mines j at: its own, capped
// by the job's pool difficulty, or the pool's when shares are not checked.
func (mc *minerConn) targetFor(j *job, now time.Time) float64 {
	if !mc.checked {
		return j.diff
	}
	d, _ := mc.vd.setCeiling(now, j.diff)
	return d
}

// sentJob records that j went to the miner at difficulty d.
func (mc *minerConn) sentJob(j *job, d float64) {
	mc.jobDiffs[mc.jdNext%len(mc.jobDiffs)] = jobDiff{j: j, d: d}
	mc.jdNext++
}

// diffFor returns the difficulty a share of j is checked and credited at:
// the lowest j (or a copy of it sent again, after a retarget or a keepalive)
// was sent at, since shares mined before a change still arrive after it;
// or the current one for a job the miner was not sent.
func (mc *minerConn) diffFor(j *job) float64 {
	d := 0.0
	for i := range mc.jobDiffs {
		if e := &mc.jobDiffs[i]; e.j != nil && e.j.sameWork(j) {
			if d == 0 || e.d < d {
				d = e.d
			}
		}
	}
	if d == 0 {
		return mc.sentDiff
	}
	return d
}

// retarget sends the miner's new difficulty and, right behind it, its
// current job again (clean=false), which is when cgminer-family firmware
// applies it. The job goes out under an id of this miner's own (the pool's
// job id with a suffix): cpuminer starts new work only when the job id
// changes, so under the same id it would keep mining at the old difficulty
// until the pool's next job. Shares under the alias are the same pool job.
func (mc *minerConn) retarget(d float64) {
	if mc.state != stateMining || mc.mustRelay || mc.sess == nil {
		return
	}
	j := mc.sess.lastJob
	if j == nil || d == mc.sentDiff {
		return
	}
	l := mc.loop
	l.dbuf = mc.dialect.appendDifficulty(l.dbuf[:0], d)
	mc.setDifficulty(d, l.dbuf)
	mc.sentJob(j, d)
	a := &mc.aliases[mc.aliasSeq%uint64(len(mc.aliases))]
	mc.aliasSeq++
	a.j = j
	a.id = append(a.id[:0], j.id[:len(j.id)-1]...) // without its closing quote
	a.id = append(a.id, '~')
	a.id = strconv.AppendUint(a.id, mc.aliasSeq, 36)
	a.id = append(a.id, '"')
	l.wbuf = j.appendLine(l.wbuf[:0], a.id, mc.sess.pad, false)
	mc.write(l.wbuf)
}

// jobAlias is a job sent to one miner under an id of its own (retarget).
type jobAlias struct {
	id []byte // raw JSON
	j  *job
}

// aliasJob returns the job a miner's own job id stands for, while its pool
// has not made the job stale.
func (mc *minerConn) aliasJob(id []byte) *job {
	for i := range mc.aliases {
		a := &mc.aliases[i]
		if a.j != nil && bytes.Equal(a.id, id) {
			if mc.up != nil && mc.up.jobs.Load().holds(a.j) {
				return a.j
			}
			return nil
		}
	}
	return nil
}

// suggestDifficulty follows mining.suggest_difficulty (Bitaxe sends 1000
// right after authorize): before the miner's upstream is known it is kept
// as the start; after, the controller restarts from it.
func (mc *minerConn) suggestDifficulty(d float64) {
	if !validDiff(d) {
		return
	}
	mc.suggestD = d
	if mc.checked && mc.up != nil {
		if nd, changed := mc.vd.suggest(time.Now(), d); changed {
			mc.retarget(nd)
		}
	}
}

// vardiffTick lowers the difficulty of a checked miner that stopped
// finding shares; the loop's sweep calls it.
func (mc *minerConn) vardiffTick(now time.Time) {
	if !mc.checked || mc.state != stateMining {
		return
	}
	if d, changed := mc.vd.tick(now); changed {
		mc.retarget(d)
	}
}
