package pow

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Errors returned by ParseNotify, wrapped with the name of the bad param.
var (
	ErrNotifyParams = errors.New("pow: mining.notify needs 9 params")
	ErrNotString    = errors.New("pow: not a JSON string")
	ErrNotHex       = errors.New("pow: not a hex string of the expected length")
	ErrNotArray     = errors.New("pow: not a JSON array of hex strings")
	ErrNotBool      = errors.New("pow: not a JSON boolean")
)

// Job is the part of a mining.notify that a share is hashed against.
// Treat a Job as immutable once built: share it between goroutines by
// pointer, never modify it while a Checker may be reading it.
type Job struct {
	// ID is the pool's job id, unquoted.
	ID string
	// PrevHash is the previous block hash in header byte order (each 4-byte
	// word of the notify's hex byte-swapped).
	PrevHash [32]byte
	// Coinb1 and Coinb2 are the coinbase transaction before extranonce1 and
	// after extranonce2, hex-decoded.
	Coinb1, Coinb2 []byte
	// Branches are the merkle branch hashes, hex-decoded, in the order sent.
	Branches [][32]byte
	// Version, NBits and NTime are the job's header fields as numbers (the
	// notify sends them as big-endian hex).
	Version, NBits, NTime uint32
}

// ParseNotify builds a Job from the raw JSON elements of mining.notify's
// params:
//
//	[job_id, prevhash, coinb1, coinb2, [branch...], version, nbits, ntime, clean_jobs]
//
// such as the elements returned by codec.SplitArray. A missing ninth
// element (clean_jobs) reads as false; fewer than eight is ErrNotifyParams.
// The Job does not alias params. ParseNotify allocates (the job's byte
// slices and id): call it once per job, not per share.
func ParseNotify(params [][]byte) (job Job, clean bool, err error) {
	if len(params) < 8 {
		return Job{}, false, ErrNotifyParams
	}
	if job.ID, err = jsonString(params[0]); err != nil {
		return Job{}, false, fmt.Errorf("pow: notify job_id: %w", err)
	}
	prev, err := hexString(params[1], nil)
	if err != nil || len(prev) != 32 {
		return Job{}, false, fmt.Errorf("pow: notify prevhash: %w", ErrNotHex)
	}
	job.PrevHash = PrevHashFromNotify((*[32]byte)(prev))
	if job.Coinb1, err = hexString(params[2], nil); err != nil {
		return Job{}, false, fmt.Errorf("pow: notify coinb1: %w", err)
	}
	if job.Coinb2, err = hexString(params[3], nil); err != nil {
		return Job{}, false, fmt.Errorf("pow: notify coinb2: %w", err)
	}
	if job.Branches, err = hashArray(params[4]); err != nil {
		return Job{}, false, fmt.Errorf("pow: notify merkle branches: %w", err)
	}
	for i, f := range []*uint32{&job.Version, &job.NBits, &job.NTime} {
		if *f, err = hexUint32(params[5+i]); err != nil {
			return Job{}, false, fmt.Errorf("pow: notify %s: %w", [...]string{"version", "nbits", "ntime"}[i], err)
		}
	}
	if len(params) > 8 {
		switch string(trim(params[8])) {
		case "true":
			clean = true
		case "false":
		default:
			return Job{}, false, fmt.Errorf("pow: notify clean_jobs: %w", ErrNotBool)
		}
	}
	return job, clean, nil
}

// AppendNotifyParams appends the JSON params array of a mining.notify for
// job, the inverse of ParseNotify:
//
//	["id","prevhash","coinb1","coinb2",["branch",...],"version","nbits","ntime",clean]
//
// It allocates only when dst lacks capacity.
func AppendNotifyParams(dst []byte, job *Job, clean bool) []byte {
	dst = append(dst, '[')
	dst = strconv.AppendQuote(dst, job.ID)
	dst = append(dst, ',', '"')
	notifyPrev := PrevHashToNotify(&job.PrevHash)
	dst = hex.AppendEncode(dst, notifyPrev[:])
	dst = append(dst, '"', ',', '"')
	dst = hex.AppendEncode(dst, job.Coinb1)
	dst = append(dst, '"', ',', '"')
	dst = hex.AppendEncode(dst, job.Coinb2)
	dst = append(dst, '"', ',', '[')
	for i := range job.Branches {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = hex.AppendEncode(dst, job.Branches[i][:])
		dst = append(dst, '"')
	}
	dst = append(dst, ']')
	for _, v := range [...]uint32{job.Version, job.NBits, job.NTime} {
		dst = append(dst, ',', '"')
		dst = AppendHex32(dst, v)
		dst = append(dst, '"')
	}
	if clean {
		dst = append(dst, ",true]"...)
	} else {
		dst = append(dst, ",false]"...)
	}
	return dst
}

// AppendHex32 appends v as 8 lower-case hex digits, big-endian, the way
// stratum sends version, nbits, ntime, nonce and version bits.
func AppendHex32(dst []byte, v uint32) []byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return hex.AppendEncode(dst, b[:])
}

// PrevHashFromNotify converts a prevhash as mining.notify sends it (hex
// decoded) into header byte order by byte-swapping each 4-byte word.
func PrevHashFromNotify(notify *[32]byte) (header [32]byte) {
	for i := 0; i < 32; i += 4 {
		binary.LittleEndian.PutUint32(header[i:], binary.BigEndian.Uint32(notify[i:]))
	}
	return header
}

// PrevHashToNotify is the inverse of PrevHashFromNotify (the swap is its own
// inverse; the two names say which way the caller is going).
func PrevHashToNotify(header *[32]byte) [32]byte {
	return PrevHashFromNotify(header)
}

// trim drops JSON whitespace around b.
func trim(b []byte) []byte {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// jsonString unquotes a JSON string. Job ids are plain ASCII in practice;
// escapes go through encoding/json (this is not a hot path).
func jsonString(raw []byte) (string, error) {
	b := trim(raw)
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return "", ErrNotString
	}
	body := b[1 : len(b)-1]
	for _, c := range body {
		if c == '\\' || c == '"' || c < 0x20 {
			var s string
			if err := json.Unmarshal(b, &s); err != nil {
				return "", ErrNotString
			}
			return s, nil
		}
	}
	return string(body), nil
}

// hexString hex-decodes the JSON string raw, appending to dst.
func hexString(raw []byte, dst []byte) ([]byte, error) {
	b := trim(raw)
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return nil, ErrNotString
	}
	out, err := hex.AppendDecode(dst, b[1:len(b)-1])
	if err != nil {
		return nil, ErrNotHex
	}
	return out, nil
}

// hexUint32 parses a JSON string of exactly 8 hex digits.
func hexUint32(raw []byte) (uint32, error) {
	var buf [4]byte
	out, err := hexString(raw, buf[:0])
	if err != nil {
		return 0, err
	}
	if len(out) != 4 {
		return 0, ErrNotHex
	}
	return binary.BigEndian.Uint32(out), nil
}

// hashArray parses a JSON array of 64-digit hex strings.
func hashArray(raw []byte) ([][32]byte, error) {
	b := trim(raw)
	if len(b) < 2 || b[0] != '[' || b[len(b)-1] != ']' {
		return nil, ErrNotArray
	}
	b = trim(b[1 : len(b)-1])
	var out [][32]byte
	for len(b) > 0 {
		if b[0] != '"' {
			return nil, ErrNotArray
		}
		end := 1
		for end < len(b) && b[end] != '"' {
			end++
		}
		if end == len(b) {
			return nil, ErrNotArray
		}
		var h [32]byte
		if end-1 != 2*len(h) {
			return nil, ErrNotHex
		}
		if _, err := hex.Decode(h[:], b[1:end]); err != nil {
			return nil, ErrNotHex
		}
		out = append(out, h)
		b = trim(b[end+1:])
		if len(b) == 0 {
			break
		}
		if b[0] != ',' {
			return nil, ErrNotArray
		}
		b = trim(b[1:])
		if len(b) == 0 {
			return nil, ErrNotArray // trailing comma
		}
	}
	return out, nil
}
