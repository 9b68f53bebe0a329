package codec

import (
	"encoding/binary"
	"encoding/json"
	"testing"
)

// TestSpecial checks the 8-bytes-at-a-time string scan against the plain
// definition, for every byte value in every position of a word filled with
// bytes that need no look (including high-bit ones, which must not borrow
// into a neighbour).
func TestSpecial(t *testing.T) {
	naive := func(w []byte) bool {
		for _, c := range w {
			if c == '"' || c == '\\' || c < 0x20 {
				return true
			}
		}
		return false
	}
	for _, fill := range []byte{'a', '0', 0x20, 0x21, 0x5b, 0x5d, 0x7f, 0x80, 0xa2, 0xdc, 0xff} {
		for pos := 0; pos < 8; pos++ {
			for c := 0; c < 256; c++ {
				var w [8]byte
				for i := range w {
					w[i] = fill
				}
				w[pos] = byte(c)
				if got, want := special(binary.LittleEndian.Uint64(w[:])), naive(w[:]); got != want {
					t.Fatalf("special(%q) = %v, want %v", w, got, want)
				}
			}
		}
	}
}

func TestValidValue(t *testing.T) {
	f := func(s string) {
		t.Helper()
		if got, want := validValue([]byte(s)), json.Valid([]byte(s)); got != want {
			t.Fatalf("validValue(%q) = %v, json.Valid = %v", s, got, want)
		}
	}
	for _, s := range []string{
		``, ` `, `0`, `-0`, `-0.0e-0`, `1E+9`, `01`, `-`, `.5`, `1.`, `1e`, `1e+`, `--1`,
		`"`, `""`, `"\"`, `"\\"`, `"\u00"`, `"\uDEAD"`, `"\U0041"`, "\"\x7f\"", "\"\x1f\"", "\"\xff\"",
		`"0123456789abcdef0123456789abcdef\"0123456789"`, `"0123456789abcdef\`,
		`[]`, `[[]]`, `[[]`, `[1,,2]`, `{}`, `{"a":}`, `{"a":1,}`, `{,}`, `{"a" :1 , "b": [ ] }`,
		`true`, `truE`, `false `, ` null`, `nul`, `[true,false,null]`, "\t[\r\n]\n", "[\v]",
		`{"a":1}{}`, `1 2`,
	} {
		f(s)
	}
}
