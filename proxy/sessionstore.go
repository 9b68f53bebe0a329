package proxy

import (
	"context"
	"time"
)

// SessionStore keeps session records outside the process, so that a miner
// reconnecting to another instance of a cluster gets its session back
// there. The proxy calls Save and Delete from its event loops: they must
// not block (queue the write and return). Load is called off the loops.
//
// An implementation keeps a record at least ttl after the last Save, and
// also when the saving instance dies without a Delete (etcd: a lease per
// instance, kept alive while it runs, of TTL = the grace period).
type SessionStore interface {
	Save(rec SessionRecord, ttl time.Duration)
	Delete(id string)
	Load(ctx context.Context, id string) (SessionRecord, bool, error)
}

// SessionRecord is what another instance needs to restore a session: the
// extranonce it handed out, the issued name it authorized with, its
// dialect and the difficulty it last mined at.
type SessionRecord struct {
	ID         string  `json:"id"`
	Prefix     uint32  `json:"prefix"` // the extranonce prefix value P
	K          int     `json:"k"`      // len(P)
	M          int     `json:"m"`      // the miner's extranonce2 size (v1) or nonce bytes
	Name       string  `json:"name"`
	Dialect    string  `json:"dialect"`
	Difficulty float64 `json:"difficulty"`
	Instance   string  `json:"instance"` // the instance that saved it
}
