package dialectsim

import (
	"encoding/hex"
	"encoding/json"
)

type (
	// epReply is an ETHProxy answer: {"id","jsonrpc","result"} plus
	// "error" when there is one.
	epReply struct {
		ID      json.RawMessage `json:"id"`
		JSONRPC string          `json:"jsonrpc"`
		Result  any             `json:"result"`
		Error   *rpcError       `json:"error,omitempty"`
	}
	// epPush is pushed work: {"id":0,"jsonrpc":"2.0","result":[...]}.
	epPush struct {
		ID      int      `json:"id"`
		JSONRPC string   `json:"jsonrpc"`
		Result  []string `json:"result"`
	}
)

func epWork(j *job, seed []byte) []string {
	return []string{"0x" + hex.EncodeToString(j.header), "0x" + hex.EncodeToString(seed), "0x" + hex64(j.target)}
}

func epOK(id json.RawMessage, result any) epReply {
	return epReply{ID: id, JSONRPC: "2.0", Result: result}
}

func epErr(id json.RawMessage, msg string) epReply {
	return epReply{ID: id, JSONRPC: "2.0", Error: &rpcError{Code: -1, Message: msg}}
}

// epHandle serves ETHProxy.
func (p *Pool) epHandle(c *pconn, req *rpcReq) {
	prm, _, _ := stParams(req.Params)
	switch req.Method {
	case "eth_submitLogin":
		if p.cfg.SilentLogin {
			return
		}
		for len(prm) < 2 {
			prm = append(prm, "")
		}
		p.mu.Lock()
		p.recordLoginLocked(Login{User: prm[0], Pass: prm[1], Worker: req.Worker})
		if p.cfg.RejectLogin || prm[0] == "" {
			p.mu.Unlock()
			r := epErr(req.ID, "Login rejected")
			r.Result = false
			c.send(r)
			return
		}
		c.authed = true
		c.users[prm[0]] = true
		p.mu.Unlock()
		c.send(epOK(req.ID, true))
	case "eth_getWork":
		p.mu.Lock()
		ok := c.authed
		j := p.jobs.last()
		if j == nil {
			j = p.newSharedJobLocked(true)
		}
		c.sentDiff = j.diff
		work := epWork(j, p.seed)
		p.mu.Unlock()
		if !ok {
			c.send(epErr(req.ID, "Unauthenticated"))
			return
		}
		c.send(epOK(req.ID, work))
	case "eth_submitWork":
		c.send(p.epSubmit(c, req, prm))
	case "eth_submitHashrate":
		p.mu.Lock()
		ok := c.authed
		if ok && len(prm) > 0 {
			p.stats.Hashrate = prm[0]
		}
		p.mu.Unlock()
		if !ok {
			c.send(epErr(req.ID, "Unauthenticated"))
			return
		}
		c.send(epOK(req.ID, true))
	default:
		c.send(epErr(req.ID, "Unsupported method"))
	}
}

// epSubmit checks eth_submitWork ["0xnonce","0xheader","0xmix"]: result
// false for stale, duplicate, bad mix and low shares (counted by reason),
// an error object for malformed ones.
func (p *Pool) epSubmit(c *pconn, req *rpcReq, prm []string) epReply {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !c.authed {
		p.rejectLocked(nil)
		return epErr(req.ID, "Unauthenticated")
	}
	bad := func(msg string) epReply {
		p.rejectLocked(&p.stats.BadFormat)
		return epErr(req.ID, msg)
	}
	if len(prm) < 3 {
		return bad("Invalid params")
	}
	nonce, err := decodeHex(prm[0], 8)
	if err != nil {
		return bad("Malformed nonce")
	}
	header, err := decodeHex(prm[1], 32)
	if err != nil {
		return bad("Malformed header")
	}
	mix, err := decodeHex(prm[2], 32)
	if err != nil {
		return bad("Malformed mix digest")
	}
	j := p.jobs.find(hex.EncodeToString(header))
	no := epOK(req.ID, false)
	if j == nil {
		p.rejectLocked(&p.stats.Stale)
		return no
	}
	key := hex.EncodeToString(nonce)
	if j.seen[key] {
		p.rejectLocked(&p.stats.Duplicate)
		return no
	}
	j.seen[key] = true
	if string(mix) != string(standInMix(header, nonce)) {
		p.rejectLocked(&p.stats.BadResult)
		return no
	}
	if !bigMeets(standIn(header, nonce), j.target) {
		p.rejectLocked(&p.stats.LowDiff)
		return no
	}
	p.acceptLocked(j)
	return epOK(req.ID, true)
}
