package dialectsim

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"
)

// Kind names a stratum dialect.
type Kind string

// The dialects this package speaks.
const (
	CryptoNote Kind = "cryptonote" // Monero / xmrig JSON-RPC 2.0 (login, job, submit)
	EthStratum Kind = "ethstratum" // NiceHash EthereumStratum/1.0.0
	EthProxy   Kind = "ethproxy"   // ETHProxy: getwork over a stratum socket
	KawPow     Kind = "kawpow"     // Ravencoin kawpow stratum
	Equihash   Kind = "equihash"   // Zcash-family equihash stratum
	KHeavyHash Kind = "kheavyhash" // Kaspa bridge stratum
)

// Kinds lists every dialect, in a fixed order.
func Kinds() []Kind {
	return []Kind{CryptoNote, EthStratum, EthProxy, KawPow, Equihash, KHeavyHash}
}

func (k Kind) valid() bool {
	for _, x := range Kinds() {
		if k == x {
			return true
		}
	}
	return false
}

// DefaultDifficulty is the pool difficulty used when PoolConfig.Difficulty
// is 0, in the dialect's own unit. Each is chosen so that a share takes
// about 32 stand-in hashes on average:
//
//   - cryptonote: 32 (unit: hashes; target "ffffff07")
//   - ethproxy:   32 (unit: hashes; target 2^256/32)
//   - ethstratum, kawpow, kheavyhash: 2^-27 (unit: 2^32 hashes)
//   - equihash:   1/256 (diff 1 = target 0x0007ffff followed by zeros,
//     about 8192 hashes)
func DefaultDifficulty(k Kind) float64 {
	switch k {
	case CryptoNote, EthProxy:
		return 32
	case EthStratum, KawPow, KHeavyHash:
		return 1.0 / (1 << 27)
	case Equihash:
		return 1.0 / 256
	}
	return 0
}

// defaultExtranonceSize is the extranonce size in bytes per kind; 0 where
// the dialect has none.
func defaultExtranonceSize(k Kind) int {
	switch k {
	case EthStratum, KawPow, KHeavyHash:
		return 2
	case Equihash:
		return 4
	}
	return 0
}

// fullNonceSize is the size in bytes of the nonce that the extranonce is
// a prefix of.
func fullNonceSize(k Kind) int {
	if k == Equihash {
		return 32
	}
	return 8
}

var (
	one      = big.NewInt(1)
	two224   = new(big.Int).Lsh(one, 224)
	two224m1 = new(big.Int).Sub(two224, one)
	two256   = new(big.Int).Lsh(one, 256)
	maxU256  = new(big.Int).Sub(two256, one)
	// eqDiff1 is the equihash difficulty-1 target: 0x0007ffff followed by
	// zeros to 256 bits.
	eqDiff1 = new(big.Int).Lsh(big.NewInt(0x0007ffff), 224)
)

// diff1 is the target of difficulty 1 for the kinds that compare a 256-bit
// stand-in hash with a 256-bit target.
func diff1(k Kind) *big.Int {
	switch k {
	case EthStratum:
		return two224
	case KawPow, KHeavyHash:
		return two224m1
	case Equihash:
		return eqDiff1
	case EthProxy:
		return two256
	}
	return nil
}

// Target returns the 256-bit share target of difficulty d for kind k; a
// share meets it when its stand-in hash, read as a big-endian number, is
// at most the target:
//
//   - ethstratum: floor(2^224 / d)
//   - kawpow, kheavyhash: floor((2^224 - 1) / d)
//   - equihash: floor(0x0007ffff * 2^224 / d)
//   - ethproxy: floor(2^256 / d), capped at 2^256 - 1
//
// The result is capped at 2^256 - 1; d <= 0 or NaN gives that cap. For
// cryptonote, which compares 64 bits, it returns nil: see CryptoNoteTarget.
func Target(k Kind, d float64) *big.Int {
	num := diff1(k)
	if num == nil {
		return nil
	}
	if math.IsNaN(d) || d <= 0 {
		return new(big.Int).Set(maxU256)
	}
	if math.IsInf(d, 1) {
		return new(big.Int)
	}
	f := new(big.Float).SetPrec(600).SetInt(num)
	f.Quo(f, new(big.Float).SetPrec(600).SetFloat64(d))
	t, _ := f.Int(nil)
	if t.Cmp(maxU256) > 0 {
		t.Set(maxU256)
	}
	return t
}

// difficultyOf is the inverse of Target: diff1(k) / t.
func difficultyOf(k Kind, t *big.Int) float64 {
	num := diff1(k)
	if num == nil || t == nil {
		return 0
	}
	if t.Sign() == 0 {
		return math.Inf(1)
	}
	f := new(big.Float).SetPrec(600).SetInt(num)
	f.Quo(f, new(big.Float).SetPrec(600).SetInt(t))
	v, _ := f.Float64()
	return v
}

// CryptoNoteTarget returns the job "target" hex for difficulty d (in
// hashes) and the difficulty the pool and miner actually apply, which is
// recomputed from the target as xmrig does: 4-byte little-endian targets
// for d < 2^32 (effective difficulty 0xFFFFFFFF / t), 8-byte ones above
// (effective difficulty (2^64-1) / t). d < 1 counts as 1.
func CryptoNoteTarget(d float64) (target string, effective uint64) {
	var di uint64
	switch {
	case math.IsNaN(d) || d < 1:
		di = 1
	case d >= 1<<63:
		di = 1 << 63
	default:
		di = uint64(d)
	}
	if di < 1<<32 {
		t := uint32(0xFFFFFFFF / di)
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], t)
		return hex.EncodeToString(b[:]), 0xFFFFFFFF / uint64(t)
	}
	t := math.MaxUint64 / di
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], t)
	return hex.EncodeToString(b[:]), math.MaxUint64 / t
}

// cnDiffFromTarget parses a cryptonote target (8 or 16 hex digits,
// little-endian) into its difficulty.
func cnDiffFromTarget(s string) (uint64, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return 0, fmt.Errorf("target %q: %w", s, err)
	}
	switch len(b) {
	case 4:
		t := binary.LittleEndian.Uint32(b)
		if t == 0 {
			return 0, fmt.Errorf("target %q is zero", s)
		}
		return 0xFFFFFFFF / uint64(t), nil
	case 8:
		t := binary.LittleEndian.Uint64(b)
		if t == 0 {
			return 0, fmt.Errorf("target %q is zero", s)
		}
		return math.MaxUint64 / t, nil
	}
	return 0, fmt.Errorf("target %q: want 8 or 16 hex digits", s)
}

// cnMeets reports whether a cryptonote stand-in hash meets difficulty d:
// its last 8 bytes, read as a little-endian uint64, are at most
// (2^64-1) / d.
func cnMeets(h []byte, d uint64) bool {
	if d <= 1 {
		return true
	}
	return binary.LittleEndian.Uint64(h[24:32]) <= math.MaxUint64/d
}

// bigMeets reports whether the stand-in hash h, read as a big-endian
// number, is at most target.
func bigMeets(h []byte, target *big.Int) bool {
	return new(big.Int).SetBytes(h).Cmp(target) <= 0
}

// standIn is the stand-in proof of work: SHA-256 of the parts, in order.
func standIn(parts ...[]byte) []byte {
	s := sha256.New()
	for _, p := range parts {
		s.Write(p)
	}
	return s.Sum(nil)
}

// standInMix is the stand-in for the ethash/kawpow mix digest, which the
// pool checks: SHA-256(nonce || header).
func standInMix(header, nonce []byte) []byte { return standIn(nonce, header) }

// hex64 formats a target as 64 hex digits.
func hex64(t *big.Int) string { return fmt.Sprintf("%064x", t) }

// decodeHex decodes s, with or without a 0x prefix, into exactly n bytes
// (any length when n < 0).
func decodeHex(s string, n int) ([]byte, error) {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, err
	}
	if n >= 0 && len(b) != n {
		return nil, fmt.Errorf("%d bytes, want %d", len(b), n)
	}
	return b, nil
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return b
}

func randHex(n int) string { return hex.EncodeToString(randBytes(n)) }

// maxLine bounds one protocol line (an equihash submit is about 2.9 kB).
const maxLine = 64 << 10

var errLineTooLong = errors.New("dialectsim: line too long")

// readLine reads one newline-terminated line of at most maxLine bytes,
// without the newline.
func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for i := 0; i <= maxLine/16; i++ {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxLine {
			return nil, errLineTooLong
		}
		if err == nil {
			return bytes.TrimRight(line, "\r\n"), nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
	}
	return nil, errLineTooLong
}

// splitUser splits "USER.WORKER" at the first dot.
func splitUser(s string) (user, worker string) {
	if i := strings.IndexByte(s, '.'); i >= 0 {
		return s[:i], s[i+1:]
	}
	return s, ""
}

// hasPrefix reports whether full begins with prefix.
func hasPrefix(full, prefix []byte) bool { return bytes.HasPrefix(full, prefix) }
