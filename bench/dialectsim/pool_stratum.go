package dialectsim

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
)

// Stratum error codes, as in the common stratum pools.
const (
	codeOther        = 20
	codeJobNotFound  = 21
	codeDuplicate    = 22
	codeLowDiff      = 23
	codeUnauthorized = 24
	codeNotSubscribe = 25
)

func stErr(id json.RawMessage, code int, msg string) stReply {
	return stReply{ID: id, Error: []any{code, msg, nil}}
}

func stOK(id json.RawMessage, result any) stReply { return stReply{ID: id, Result: result} }

func pushLine(method string, params ...any) []byte {
	b, _ := json.Marshal(stPush{Method: method, Params: params})
	return b
}

// stParams decodes stratum array params into strings; non-string
// elements become "".
func stParams(raw json.RawMessage) ([]string, []json.RawMessage, bool) {
	var arr []json.RawMessage
	if err := json.Unmarshal(raw, &arr); err != nil {
		return nil, nil, false
	}
	out := make([]string, len(arr))
	for i, a := range arr {
		json.Unmarshal(a, &out[i])
	}
	return out, arr, true
}

// workLinesLocked are the lines that give c the job j: the difficulty or
// target when it changed for c, then the notify.
func (p *Pool) workLinesLocked(c *pconn, j *job) [][]byte {
	var lines [][]byte
	newDiff := c.sentDiff != j.diff
	c.sentDiff = j.diff
	th := hex64(j.target)
	switch p.cfg.Kind {
	case EthStratum:
		if newDiff {
			lines = append(lines, pushLine("mining.set_difficulty", j.diff))
		}
		lines = append(lines, pushLine("mining.notify", j.id, hex.EncodeToString(p.seed), hex.EncodeToString(j.header), j.clean))
	case KawPow:
		if newDiff {
			lines = append(lines, pushLine("mining.set_target", th))
		}
		lines = append(lines, pushLine("mining.notify", j.id, hex.EncodeToString(j.header), hex.EncodeToString(p.seed), th, j.clean, j.height, "1b00f968"))
	case Equihash:
		if newDiff {
			lines = append(lines, pushLine("mining.set_target", th))
		}
		lines = append(lines, pushLine("mining.notify", j.id, "04000000", hex.EncodeToString(j.prev), hex.EncodeToString(j.header),
			strings.Repeat("0", 64), fmt.Sprintf("%08x", j.ntime), "1f07ffff", j.clean))
	case KHeavyHash:
		if newDiff {
			lines = append(lines, pushLine("mining.set_difficulty", j.diff))
		}
		lines = append(lines, pushLine("mining.notify", j.id, hex.EncodeToString(j.header), int64(j.ntime)*1000))
	case EthProxy:
		b, _ := json.Marshal(epPush{JSONRPC: "2.0", Result: epWork(j, p.seed)})
		lines = append(lines, b)
	}
	return lines
}

// stHandle serves ethstratum, kawpow, equihash and kheavyhash.
func (p *Pool) stHandle(c *pconn, req *rpcReq) {
	k := p.cfg.Kind
	switch req.Method {
	case "mining.subscribe":
		if p.cfg.SilentLogin {
			return
		}
		prm, _, _ := stParams(req.Params)
		p.mu.Lock()
		c.subscribed = true
		if len(prm) > 0 {
			c.agent = prm[0]
		}
		resumed := false
		if k == EthStratum && len(prm) > 2 && prm[2] != "" {
			if en, ok := p.sessions[prm[2]]; ok && len(en) == p.enSize && !p.extranonceInUseLocked(en, c) {
				c.sid, c.en, resumed = prm[2], en, true
			}
		}
		if !resumed {
			c.sid = randHex(4)
			c.en = p.allocExtranonceLocked(p.enSize)
			p.sessions[c.sid] = c.en
		}
		sid, en := c.sid, hex.EncodeToString(c.en)
		p.mu.Unlock()
		var res any
		switch k {
		case EthStratum:
			res = []any{[]any{"mining.notify", sid, "EthereumStratum/1.0.0"}, en}
		case KawPow:
			res = []any{nil, en}
		case Equihash:
			res = []any{sid, en}
		case KHeavyHash:
			res = []any{true, "EthereumStratum/1.0.0"}
		}
		c.send(stOK(req.ID, res))
	case "mining.extranonce.subscribe":
		c.send(stOK(req.ID, true))
	case "mining.authorize":
		if p.cfg.SilentLogin {
			return
		}
		prm, _, _ := stParams(req.Params)
		for len(prm) < 2 {
			prm = append(prm, "")
		}
		user, worker := splitUser(prm[0])
		p.mu.Lock()
		p.recordLoginLocked(Login{User: user, Pass: prm[1], Worker: worker, Agent: c.agent})
		switch {
		case p.cfg.RejectLogin || prm[0] == "":
			p.mu.Unlock()
			c.send(stErr(req.ID, codeUnauthorized, "Unauthorized worker"))
			return
		case !c.subscribed:
			p.mu.Unlock()
			c.send(stErr(req.ID, codeNotSubscribe, "Not subscribed"))
			return
		}
		c.users[prm[0]] = true
		c.authed = true
		var lines [][]byte
		if k == KHeavyHash {
			lines = append(lines, p.setExtranonceLineLocked(c))
		}
		j := p.jobs.last()
		if j == nil {
			j = p.newSharedJobLocked(true)
		}
		lines = append(lines, p.workLinesLocked(c, j)...)
		p.mu.Unlock()
		ans, _ := json.Marshal(stOK(req.ID, true))
		if p.cfg.WorkAfterAuthorize {
			lines = append([][]byte{ans}, lines...)
		} else {
			lines = append(lines, ans)
		}
		c.sendRaw(lines...)
	case "mining.submit":
		c.send(p.stSubmit(c, req))
	default:
		c.send(stErr(req.ID, codeOther, "Unsupported method"))
	}
}

// stSubmit checks a mining.submit of a stratum kind.
func (p *Pool) stSubmit(c *pconn, req *rpcReq) stReply {
	k := p.cfg.Kind
	prm, _, okp := stParams(req.Params)
	p.mu.Lock()
	defer p.mu.Unlock()
	if !c.authed || len(prm) == 0 || !c.users[prm[0]] {
		p.rejectLocked(nil)
		return stErr(req.ID, codeUnauthorized, "Unauthorized worker")
	}
	bad := func(msg string) stReply {
		p.rejectLocked(&p.stats.BadFormat)
		return stErr(req.ID, codeOther, msg)
	}
	want := map[Kind]int{EthStratum: 3, KawPow: 5, Equihash: 5, KHeavyHash: 3}[k]
	if !okp || len(prm) < want {
		return bad("Invalid params")
	}
	var full, solution, header, mix []byte
	var err error
	switch k {
	case EthStratum:
		var tail []byte
		tail, err = hex.DecodeString(prm[2])
		if err != nil || len(tail) != 8-len(c.en) {
			return bad("Malformed nonce")
		}
		full = append(append([]byte(nil), c.en...), tail...)
	case KawPow, KHeavyHash:
		if !strings.HasPrefix(prm[2], "0x") && k == KawPow {
			return bad("Malformed nonce")
		}
		if full, err = decodeHex(prm[2], 8); err != nil {
			return bad("Malformed nonce")
		}
		if !hasPrefix(full, c.en) {
			return bad("Nonce outside extranonce range")
		}
		if k == KawPow {
			if header, err = decodeHex(prm[3], 32); err != nil {
				return bad("Malformed header hash")
			}
			if mix, err = decodeHex(prm[4], 32); err != nil {
				return bad("Malformed mix hash")
			}
		}
	case Equihash:
		if t, err := hex.DecodeString(prm[2]); err != nil || len(t) != 4 {
			return bad("Malformed time")
		}
		var n2 []byte
		n2, err = hex.DecodeString(prm[3])
		if err != nil || len(n2) != 32-len(c.en) {
			return bad("Malformed nonce")
		}
		full = append(append([]byte(nil), c.en...), n2...)
		solution, err = hex.DecodeString(prm[4])
		if err != nil || len(solution) != eqSolutionLen || !strings.HasPrefix(prm[4], "fd4005") {
			return bad("Malformed solution")
		}
	}
	j := p.jobs.find(prm[1])
	if j == nil {
		p.rejectLocked(&p.stats.Stale)
		return stErr(req.ID, codeJobNotFound, "Job not found")
	}
	if header != nil && string(header) != string(j.header) {
		return bad("Header hash mismatch")
	}
	key := hex.EncodeToString(full)
	if j.seen[key] {
		p.rejectLocked(&p.stats.Duplicate)
		return stErr(req.ID, codeDuplicate, "Duplicate share")
	}
	j.seen[key] = true
	if mix != nil && string(mix) != string(standInMix(j.header, full)) {
		p.rejectLocked(&p.stats.BadResult)
		return stErr(req.ID, codeOther, "Invalid mix hash")
	}
	var h []byte
	if k == Equihash {
		h = standIn(j.header, full, solution)
	} else {
		h = standIn(j.header, full)
	}
	if !bigMeets(h, j.target) {
		p.rejectLocked(&p.stats.LowDiff)
		return stErr(req.ID, codeLowDiff, "Low difficulty share")
	}
	p.acceptLocked(j)
	return stOK(req.ID, true)
}

// eqSolutionLen is an equihash 200,9 solution with its compact-size
// prefix fd4005: 3 + 1344 bytes.
const eqSolutionLen = 3 + 1344
