package proxy

import (
	"math"
	"strings"
	"testing"

	"github.com/stratum-proxy/stratum-proxy/codec"
	"github.com/stratum-proxy/stratum-proxy/store"
)

func TestSniffFamily(t *testing.T) {
	for line, want := range map[string]family{
		`{"id":1,"method":"mining.subscribe","params":["cpuminer/2.5.1"]}`:                                   famStratum,
		`{"id":1,"method":"mining.subscribe","params":[]}`:                                                   famStratum,
		`{"id":1,"method":"mining.configure","params":[["version-rolling"],{}]}`:                             famStratum,
		`{"id":1,"method":"mining.subscribe","params":["ethminer 0.19.0","EthereumStratum/1.0.0"]}`:          famEthStratum,
		`{"id":1,"method":"mining.subscribe","params":["BzMiner/v17.0.0","EthereumStratum/1.0.0"]}`:          famEthStratum,
		`{"id":1,"jsonrpc":"2.0","method":"eth_submitLogin","worker":"rig","params":["0xabc","x"]}`:          famEthProxy,
		`{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"n","pass":"x","agent":"XMRig/6.21.0"}}`: famCryptoNote,
		`{"id":1,"jsonrpc":"2.0","method":"getjob","params":{"id":"0123456789abcdef"}}`:                      famCryptoNote,
		`{"id":1,"method":"getwork","params":[]}`:                                                            famUnknown,
		`{"id":1,"method":"eth_getWork","params":[]}`:                                                        famUnknown,
	} {
		var m codec.Message
		if err := codec.Decode([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		if got := sniffFamily(&m); got != want {
			t.Errorf("%s: family %s, want %s", line, got, want)
		}
	}
}

func TestProtoFor(t *testing.T) {
	S, ES, EP, CN, R := store.DialectStratum, store.DialectEthStratum, store.DialectEthProxy, store.DialectCryptoNote, store.DialectRelay
	for _, c := range []struct {
		algo     string
		dialects []string
		f        family
		want     proto
		err      bool
	}{
		{"sha256", []string{S}, famStratum, protoV1, false},
		{"scrypt", []string{S}, famStratum, protoV1, false},
		{"sha256", []string{S}, famCryptoNote, 0, true},
		{"sha256", []string{S}, famEthStratum, 0, true},
		{"ethash", []string{ES, EP}, famEthStratum, protoEthStratum, false},
		{"ethash", []string{ES, EP}, famEthProxy, protoEthProxy, false},
		{"ethash", []string{ES, EP}, famStratum, 0, true},
		{"randomx", []string{CN}, famCryptoNote, protoCryptoNote, false},
		{"randomx", []string{CN}, famStratum, 0, true},
		{"kawpow", []string{R}, famStratum, protoRelay, false},
		{"kawpow", []string{S}, famStratum, protoRelay, false}, // a store seeded before the relay
		{"kheavyhash", []string{R}, famEthStratum, protoRelay, false},
		{"equihash", []string{R}, famCryptoNote, 0, true},
	} {
		got, err := protoFor(c.algo, c.dialects, c.f)
		if (err != nil) != c.err || err == nil && got != c.want {
			t.Errorf("%s %v %s: %s, %v; want %s (error %v)", c.algo, c.dialects, c.f, got, err, c.want, c.err)
		}
		if err != nil && (!strings.Contains(err.Error(), c.f.String()) || !strings.Contains(err.Error(), c.algo)) {
			t.Errorf("error %q does not name the dialect and the algorithm", err)
		}
	}
}

func TestTargetDifficulties(t *testing.T) {
	near := func(got, want float64) bool { return math.Abs(got-want) <= 1e-9*math.Abs(want) }
	// Bitcoin's diff-1 target (kawpow, kHeavyHash) is difficulty 1.
	if d := targetDifficulty("kawpow", []byte(`"00000000ffff0000000000000000000000000000000000000000000000000000"`)); !near(d, 1) {
		t.Errorf("kawpow diff1 target: %g", d)
	}
	if d := targetDifficulty("kawpow", []byte(`"0x000000007fff8000000000000000000000000000000000000000000000000000"`)); !near(d, 2) {
		t.Errorf("kawpow half target: %g", d)
	}
	// Zcash's powLimit 0x0007ffff... is equihash difficulty 1.
	if d := targetDifficulty("equihash", []byte(`"0007ffff00000000000000000000000000000000000000000000000000000000"`)); !near(d, 1) {
		t.Errorf("equihash diff1 target: %g", d)
	}
	for _, bad := range []string{`"zz"`, `""`, `"00"`, `5`, `"` + strings.Repeat("f", 66) + `"`} {
		if d := targetDifficulty("kawpow", []byte(bad)); d != 0 && bad != `"00"` {
			t.Errorf("target %s: difficulty %g, want 0", bad, d)
		}
	}
	if d := targetDifficulty("kawpow", []byte(`"0000"`)); d != 0 {
		t.Errorf("zero target: difficulty %g", d)
	}
	// ETHProxy: target 2^256/2^32 is 2^32 hashes, ethash difficulty 1.
	if d := ethProxyDifficulty([]byte(`"0x0000000100000000000000000000000000000000000000000000000000000000"`)); !near(d, 1) {
		t.Errorf("ethproxy 2^32-hash target: %g", d)
	}
	// CryptoNote: "ffffff07" is LE 0x07ffffff: 0xffffffff/0x07ffffff ~ 32 hashes;
	// "0000000000000100" is LE 2^48: 2^64/2^48 hashes.
	if d, err := cnDifficulty([]byte(`"ffffff07"`)); err != nil || !near(d, float64(0xffffffff)/float64(0x07ffffff)) {
		t.Errorf("cryptonote 4-byte target: %g, %v", d, err)
	}
	if d, err := cnDifficulty([]byte(`"0000000000000100"`)); err != nil || !near(d, 65536) {
		t.Errorf("cryptonote 8-byte target: %g, %v", d, err)
	}
	for _, bad := range []string{`"00000000"`, `"abc"`, `"ffffff0"`, `12`} {
		if _, err := cnDifficulty([]byte(bad)); err == nil {
			t.Errorf("cryptonote target %s accepted", bad)
		}
	}
}
