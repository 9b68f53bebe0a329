package proxy

import (
	"bytes"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strings"

	"github.com/stratum-proxy/stratum-proxy/codec"
	"github.com/stratum-proxy/stratum-proxy/store"
)

// Dialects on the one port. A miner's first line tells its wire family;
// the algorithm of the user's pool then decides how the proxy carries it:
//
//	first line                                   family      carried as
//	mining.subscribe, mining.configure, ...      stratum     v1 (sha256, scrypt, x11: split) or relay
//	mining.subscribe [ua, "EthereumStratum/1.0.0"] ethstratum ethstratum (ethash: split) or relay (kHeavyHash)
//	eth_submitLogin                              ethproxy    ethproxy (one upstream per miner)
//	login                                        cryptonote  cryptonote (split by nonce byte, or one per miner)
//
// The relay carries the stratum variants the proxy does not parse (kawpow,
// equihash, kHeavyHash): one upstream per miner, credentials replaced,
// ids mapped, every other line relayed byte for byte.

// proto is how an upstream speaks to its pool, and how its miners are
// served.
type proto uint8

const (
	protoV1         proto = iota // Bitcoin-family stratum v1, extranonce split
	protoEthStratum              // EthereumStratum/1.0.0, nonce-prefix split
	protoCryptoNote              // CryptoNote/xmrig, nonce-byte split
	protoEthProxy                // ETHProxy, one upstream per miner
	protoRelay                   // line relay for other stratum variants
)

var protoNames = [...]string{"stratum", "ethstratum", "cryptonote", "ethproxy", "relay"}

func (p proto) String() string { return protoNames[p] }

// family is the wire family a miner's first line shows.
type family uint8

const (
	famUnknown family = iota
	famStratum
	famEthStratum
	famEthProxy
	famCryptoNote
)

var familyNames = [...]string{"unknown", store.DialectStratum, store.DialectEthStratum, store.DialectEthProxy, store.DialectCryptoNote}

func (f family) String() string { return familyNames[f] }

// relayAlgorithms are the seeded stratum variants the proxy relays even
// when a store lists them as "stratum" (stores seeded before the relay).
var relayAlgorithms = map[string]bool{"kawpow": true, "equihash": true, "kheavyhash": true}

// protoFor picks how a miner of family f is carried for an account whose
// algorithm speaks dialects, or explains why it cannot be.
func protoFor(algo string, dialects []string, f family) (proto, error) {
	has := func(d string) bool { return slices.Contains(dialects, d) }
	relay := has(store.DialectRelay) || relayAlgorithms[algo]
	switch f {
	case famStratum:
		if relay {
			return protoRelay, nil
		}
		if has(store.DialectStratum) {
			return protoV1, nil
		}
	case famEthStratum:
		if has(store.DialectEthStratum) {
			return protoEthStratum, nil
		}
		if relay {
			return protoRelay, nil // Kaspa miners subscribe as EthereumStratum/1.0.0
		}
	case famEthProxy:
		if has(store.DialectEthProxy) {
			return protoEthProxy, nil
		}
	case famCryptoNote:
		if has(store.DialectCryptoNote) {
			return protoCryptoNote, nil
		}
	}
	return 0, fmt.Errorf("dialect %s is not spoken by this account's pool (algorithm %s speaks %s)",
		f, algo, strings.Join(dialects, ", "))
}

// sniffer is every miner's dialect until its first request tells the
// family; it then hands the line to that family's dialect.
type sniffer struct{}

func (sniffer) jobLine(mc *minerConn, j *job, clean bool) []byte { return nil }
func (sniffer) appendDifficulty(b []byte, d float64) []byte      { return b }
func (sniffer) appendAnswer(b, id []byte, ok bool, code int, msg string) []byte {
	return v1Miner{}.appendAnswer(b, id, ok, code, msg)
}

func (sniffer) handleLine(mc *minerConn, line []byte) {
	m := &mc.loop.msg
	if err := codec.Decode(line, m); err != nil {
		mc.undecodable(line, err)
		return
	}
	f := sniffFamily(m)
	if f == famUnknown {
		if m.HasID() {
			l := mc.loop
			l.tmp = append(append(l.tmp[:0], "unknown dialect: first request "...), m.Method...)
			l.tmp = append(l.tmp, " is none of mining.subscribe, mining.configure, login, eth_submitLogin"...)
			l.wbuf = codec.AppendErrorBytes(l.wbuf[:0], m.ID, codec.CodeMethodNotFound, l.tmp)
			mc.write(l.wbuf)
		}
		mc.badLine(dropBadInput)
		return
	}
	mc.family = f
	switch f {
	case famEthStratum:
		mc.dialect = esMiner{}
	case famEthProxy:
		mc.dialect = &relayMiner{eth: true}
	case famCryptoNote:
		mc.dialect = cnMiner{}
	default:
		mc.dialect = v1Miner{}
	}
	mc.dialect.handleLine(mc, line)
}

// sniffFamily tells a miner's wire family from its first request.
func sniffFamily(m *codec.Message) family {
	switch string(m.Method) {
	case "login", "getjob", "submit", "keepalived":
		// After a reconnect an xmrig-style miner may go on with its
		// session id: the CryptoNote dialect restores the session.
		return famCryptoNote
	case "eth_submitLogin":
		return famEthProxy
	case codec.MethodSubscribe:
		var tmp [4][]byte
		if p, err := codec.SplitArray(m.Params, tmp[:0]); err == nil && len(p) >= 2 {
			if v, err := codec.Unquote(p[1], nil); err == nil && bytes.EqualFold(v, []byte("EthereumStratum/1.0.0")) {
				return famEthStratum
			}
		}
		return famStratum
	}
	if bytes.HasPrefix(m.Method, []byte("mining.")) {
		return famStratum
	}
	return famUnknown
}

// Targets and difficulties. A share's credit is its difficulty in the
// algorithm's own unit, so that 2^32 * d / divider is hashes (PROTOCOL.md
// section 5): each dialect's target or difficulty converts to that unit.

// two256 is 2^256 as a float.
var two256 = math.Ldexp(1, 256)

// targetDiff1 is the share target of difficulty 1 per algorithm for the
// dialects that send targets: kawpow and kHeavyHash use Bitcoin's
// 0xffff*2^208; Zcash's equihash 0x0007ffff... (z-nomp, zcashd powLimit).
func targetDiff1(algo string) float64 {
	switch algo {
	case "equihash":
		return 0x0007ffff * math.Ldexp(1, 224)
	}
	return 0xffff * math.Ldexp(1, 208)
}

// hexTargetValue reads a big-endian hex target ("0x" optional, up to 64
// digits) as a float; 0 when it is not one.
func hexTargetValue(raw []byte) float64 {
	s, err := codec.Unquote(raw, nil)
	if err != nil {
		return 0
	}
	s = bytes.TrimPrefix(bytes.TrimPrefix(s, []byte("0x")), []byte("0X"))
	if len(s) == 0 || len(s) > 64 || !isHex(s) {
		return 0
	}
	var v big.Int
	if _, ok := v.SetString(string(s), 16); !ok {
		return 0
	}
	f, _ := new(big.Float).SetInt(&v).Float64()
	return f
}

// targetDifficulty converts a stratum target (set_target, a kawpow
// notify) to a difficulty of algo; 0 when the target is not valid.
func targetDifficulty(algo string, raw []byte) float64 {
	t := hexTargetValue(raw)
	if t <= 0 {
		return 0
	}
	d := targetDiff1(algo) / t
	if !(d > 0) || math.IsInf(d, 0) {
		return 0
	}
	return d
}

// ethProxyDifficulty converts an ETHProxy target (difficulty in hashes:
// 2^256 / target) to ethash's unit of 2^32 hashes (divider 1).
func ethProxyDifficulty(raw []byte) float64 {
	t := hexTargetValue(raw)
	if t <= 0 {
		return 0
	}
	return two256 / t / math.Ldexp(1, 32)
}
