package dialectsim

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"time"
)

// Wire shapes of the JSON-RPC 2.0 dialects (cryptonote, ethproxy) and the
// stratum ones.
type (
	rpcError struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	// cnReply is a cryptonote answer: {"id","jsonrpc","error","result"}.
	cnReply struct {
		ID      json.RawMessage `json:"id"`
		JSONRPC string          `json:"jsonrpc"`
		Error   *rpcError       `json:"error"`
		Result  any             `json:"result"`
	}
	// cnPush is a cryptonote notification: {"jsonrpc","method","params"}.
	cnPush struct {
		JSONRPC string `json:"jsonrpc"`
		Method  string `json:"method"`
		Params  any    `json:"params"`
	}
	cnJob struct {
		Blob     string `json:"blob"`
		JobID    string `json:"job_id"`
		Target   string `json:"target"`
		Algo     string `json:"algo"`
		Height   int    `json:"height"`
		SeedHash string `json:"seed_hash"`
	}
	cnLoginResult struct {
		ID         string   `json:"id"`
		Job        cnJob    `json:"job"`
		Extensions []string `json:"extensions"`
		Status     string   `json:"status"`
	}
	cnStatus struct {
		Status string `json:"status"`
	}
	// stReply is a stratum answer: {"id","result","error"}.
	stReply struct {
		ID     json.RawMessage `json:"id"`
		Result any             `json:"result"`
		Error  any             `json:"error"`
	}
	// stPush is a stratum notification: {"id":null,"method","params"}.
	stPush struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Params any             `json:"params"`
	}
)

// cnNonceAt is where the 4-byte nonce sits in a cryptonote blob; byte
// cnNonceAt+3 (42) is its top byte.
const (
	cnNonceAt = 39
	cnBlobLen = 76
)

// cnNewJobLocked makes a job with a fresh blob for c and records it.
func (p *Pool) cnNewJobLocked(c *pconn, clean bool) *job {
	blob := make([]byte, 0, cnBlobLen)
	blob = append(blob, 16, 16) // major, minor version
	blob = binary.AppendUvarint(blob, uint64(time.Now().Unix())|1<<28)
	blob = append(blob, randBytes(32)...) // previous block id
	blob = append(blob, 0, 0, 0, 0)       // nonce
	blob = append(blob, randBytes(32)...) // tree root
	blob = append(blob, 5)                // transaction count
	th, eff := CryptoNoteTarget(p.diff)
	if clean || p.cnHeight == 0 {
		p.cnHeight++ // a new block; a job that is not clean is a new template at the same height
	}
	j := &job{
		id:     p.newJobIDLocked(),
		clean:  clean,
		diff:   float64(eff),
		cnDiff: eff,
		cnHex:  th,
		blob:   blob,
		height: 3000000 + p.cnHeight,
		seen:   make(map[string]bool),
	}
	c.jobs.add(j)
	return j
}

func (p *Pool) cnJobOfLocked(j *job) cnJob { return cnJobOf(j, p.seed) }

func cnJobOf(j *job, seed []byte) cnJob {
	return cnJob{
		Blob:     hex.EncodeToString(j.blob),
		JobID:    j.id,
		Target:   j.cnHex,
		Algo:     "rx/0",
		Height:   j.height,
		SeedHash: hex.EncodeToString(seed),
	}
}

func cnErr(id json.RawMessage, msg string) cnReply {
	return cnReply{ID: id, JSONRPC: "2.0", Error: &rpcError{Code: -1, Message: msg}}
}

func cnOK(id json.RawMessage, result any) cnReply {
	return cnReply{ID: id, JSONRPC: "2.0", Result: result}
}

func (p *Pool) cnHandle(c *pconn, req *rpcReq) {
	switch req.Method {
	case "login":
		if p.cfg.SilentLogin {
			return
		}
		var prm struct {
			Login string   `json:"login"`
			Pass  string   `json:"pass"`
			Agent string   `json:"agent"`
			RigID string   `json:"rigid"`
			Algo  []string `json:"algo"`
		}
		if err := json.Unmarshal(req.Params, &prm); err != nil || prm.Login == "" {
			c.send(cnErr(req.ID, "Invalid login params"))
			return
		}
		p.mu.Lock()
		p.recordLoginLocked(Login{User: prm.Login, Pass: prm.Pass, Worker: prm.RigID, Agent: prm.Agent, Algo: prm.Algo})
		if p.cfg.RejectLogin {
			p.mu.Unlock()
			c.send(cnErr(req.ID, "Login rejected"))
			return
		}
		c.sid = randHex(16)
		c.authed = true
		c.agent = prm.Agent
		c.users[prm.Login] = true
		j := p.cnNewJobLocked(c, true)
		res := cnLoginResult{ID: c.sid, Job: p.cnJobOfLocked(j), Extensions: []string{"algo", "nicehash", "keepalive"}, Status: "OK"}
		p.mu.Unlock()
		c.send(cnOK(req.ID, res))
	case "submit":
		c.send(p.cnSubmit(c, req))
	case "keepalived", "getjob":
		var prm struct {
			ID string `json:"id"`
		}
		json.Unmarshal(req.Params, &prm)
		p.mu.Lock()
		ok := c.authed && prm.ID == c.sid
		j := c.jobs.last()
		var jo cnJob
		if j != nil {
			jo = p.cnJobOfLocked(j)
		}
		p.mu.Unlock()
		switch {
		case !ok:
			c.send(cnErr(req.ID, "Unauthenticated"))
		case req.Method == "keepalived":
			c.send(cnOK(req.ID, cnStatus{"KEEPALIVED"}))
		default:
			c.send(cnOK(req.ID, jo))
		}
	default:
		c.send(cnErr(req.ID, "Invalid method"))
	}
}

func (p *Pool) cnSubmit(c *pconn, req *rpcReq) cnReply {
	var prm struct {
		ID     string `json:"id"`
		JobID  string `json:"job_id"`
		Nonce  string `json:"nonce"`
		Result string `json:"result"`
	}
	perr := json.Unmarshal(req.Params, &prm)
	p.mu.Lock()
	defer p.mu.Unlock()
	if !c.authed || prm.ID != c.sid {
		p.rejectLocked(nil)
		return cnErr(req.ID, "Unauthenticated")
	}
	if perr != nil {
		p.rejectLocked(&p.stats.BadFormat)
		return cnErr(req.ID, "Invalid params")
	}
	nonce, err := hex.DecodeString(prm.Nonce)
	if err != nil || len(nonce) != 4 {
		p.rejectLocked(&p.stats.BadFormat)
		return cnErr(req.ID, "Malformed nonce")
	}
	result, err := hex.DecodeString(prm.Result)
	if err != nil || len(result) != 32 {
		p.rejectLocked(&p.stats.BadFormat)
		return cnErr(req.ID, "Malformed result")
	}
	j := c.jobs.find(prm.JobID)
	if j == nil {
		p.rejectLocked(&p.stats.Stale)
		return cnErr(req.ID, "Invalid job id")
	}
	key := hex.EncodeToString(nonce)
	if j.seen[key] {
		p.rejectLocked(&p.stats.Duplicate)
		return cnErr(req.ID, "Duplicate share")
	}
	j.seen[key] = true
	blob := append([]byte(nil), j.blob...)
	copy(blob[cnNonceAt:], nonce)
	h := standIn(blob)
	if !bytes.Equal(h, result) {
		p.rejectLocked(&p.stats.BadResult)
		return cnErr(req.ID, "Invalid result")
	}
	if !cnMeets(h, j.cnDiff) {
		p.rejectLocked(&p.stats.LowDiff)
		return cnErr(req.ID, "Low difficulty share")
	}
	p.acceptLocked(j)
	return cnOK(req.ID, cnStatus{"OK"})
}
