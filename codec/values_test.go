package codec

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
)

func TestSplitArray(t *testing.T) {
	f := func(raw string, want []string, wantErr error) {
		t.Helper()
		prefix := [][]byte{[]byte("keep")}
		got, err := SplitArray([]byte(raw), prefix)
		if !errors.Is(err, wantErr) {
			t.Fatalf("SplitArray(%q) error = %v, want %v", raw, err, wantErr)
		}
		if len(got) == 0 || string(got[0]) != "keep" {
			t.Fatalf("SplitArray(%q) lost dst's contents: %q", raw, got)
		}
		got = got[1:]
		if len(got) != len(want) {
			t.Fatalf("SplitArray(%q) = %q, want %q", raw, got, want)
		}
		for i := range want {
			if string(got[i]) != want[i] {
				t.Fatalf("SplitArray(%q)[%d] = %q, want %q", raw, i, got[i], want[i])
			}
		}
	}
	f(``, nil, nil)
	f(`null`, nil, nil)
	f(` null `, nil, nil)
	f(`[]`, nil, nil)
	f(`[ ]`, nil, nil)
	f(`[1]`, []string{"1"}, nil)
	f(`[ "a" , 2.5e3 , null , true , [1,[2]] , {"k":[3]} ]`,
		[]string{`"a"`, `2.5e3`, `null`, `true`, `[1,[2]]`, `{"k":[3]}`}, nil)
	f(`["a,b]", "\"]"]`, []string{`"a,b]"`, `"\"]"`}, nil)
	f(`{"a":1}`, nil, ErrNotArray)
	f(`"[1]"`, nil, ErrNotArray)
	f(`1`, nil, ErrNotArray)
	f(`[1,`, nil, ErrInvalidJSON)
	f(`[1,]`, nil, ErrInvalidJSON)
	f(`[,1]`, nil, ErrInvalidJSON)
	f(`[1 2]`, nil, ErrInvalidJSON)
	f(`[1]]`, nil, ErrInvalidJSON)
	f(`[1] x`, nil, ErrInvalidJSON)
	f(`[01]`, nil, ErrInvalidJSON)
	f(`nul`, nil, ErrInvalidJSON)
}

func TestObjectField(t *testing.T) {
	f := func(raw, key, want string, wantOK bool) {
		t.Helper()
		got, ok := ObjectField([]byte(raw), key)
		if ok != wantOK || string(got) != want {
			t.Fatalf("ObjectField(%q, %q) = %q, %v; want %q, %v", raw, key, got, ok, want, wantOK)
		}
	}
	login := `{"login":"wallet.rig","pass":"x","agent":"XMRig/6.21","algo":["rx/0","cn/r"]}`
	f(login, "login", `"wallet.rig"`, true)
	f(login, "algo", `["rx/0","cn/r"]`, true)
	f(login, "rigid", ``, false)
	f(`{"code":-1,"message":"Low difficulty share"}`, "code", `-1`, true)
	f(`{ "a" : { "b" : 1 } }`, "a", `{ "b" : 1 }`, true)
	f(`{ "a" : { "b" : 1 } }`, "b", ``, false)
	f(`{"a":1,"a":2}`, "a", `2`, true)
	f(`{"\u0061":1}`, "a", `1`, true)
	f(`{"\u00e9":1}`, "é", `1`, true)
	f(`{"a":null}`, "a", `null`, true)
	f(`{}`, "a", ``, false)
	f(`{"a":1`, "a", ``, false)
	f(`{"a":1}x`, "a", ``, false)
	f(`[1]`, "a", ``, false)
	f(``, "a", ``, false)
}

func TestUnquote(t *testing.T) {
	f := func(raw, want string, copied bool, wantErr error) {
		t.Helper()
		dst := make([]byte, 0, 64)
		got, err := Unquote([]byte(raw), dst)
		if !errors.Is(err, wantErr) {
			t.Fatalf("Unquote(%q) error = %v, want %v", raw, err, wantErr)
		}
		if err != nil {
			return
		}
		if string(got) != want {
			t.Fatalf("Unquote(%q) = %q, want %q", raw, got, want)
		}
		if inDst := len(got) > 0 && &got[:1][0] == &dst[:1][0]; inDst != copied {
			t.Fatalf("Unquote(%q) used dst = %v, want %v", raw, inDst, copied)
		}
		var std string
		if json.Unmarshal([]byte(raw), &std) == nil && std != want {
			t.Fatalf("Unquote(%q) = %q, encoding/json gives %q", raw, got, std)
		}
	}
	f(`""`, "", false, nil)
	f(`"worker1"`, "worker1", false, nil)
	f(` "worker1" `, "worker1", false, nil)
	f(`"a\"b"`, `a"b`, true, nil)
	f(`"\\ \/ \b \f \n \r \t"`, "\\ / \b \f \n \r \t", true, nil)
	f(`"\u00e9\u4e2d"`, "é中", true, nil)
	f(`"\ud83d\ude00"`, "😀", true, nil)
	f(`"\ud83d"`, "\uFFFD", true, nil)
	f(`"\ud83dx"`, "\uFFFDx", true, nil)
	f(`"\ude00\ud83d"`, "\uFFFD\uFFFD", true, nil)
	f(`"\ud83d\u0041"`, "\uFFFDA", true, nil)
	f(`"\ud83d\ud83d\ude00"`, "\uFFFD😀", true, nil)
	f(`1`, "", false, ErrNotString)
	f(`null`, "", false, ErrNotString)
	f(``, "", false, ErrNotString)
	f(`"abc`, "", false, ErrInvalidJSON)
	f(`"a"b`, "", false, ErrInvalidJSON)
	f(`"\x"`, "", false, ErrInvalidJSON)
	f("\"a\nb\"", "", false, ErrInvalidJSON)
	f(`abc`, "", false, ErrInvalidJSON)
}

func TestParseFloat(t *testing.T) {
	f := func(raw string, want float64, wantErr error) {
		t.Helper()
		got, err := ParseFloat([]byte(raw))
		if !errors.Is(err, wantErr) || got != want {
			t.Fatalf("ParseFloat(%q) = %v, %v; want %v, %v", raw, got, err, want, wantErr)
		}
	}
	f(`0.01`, 0.01, nil)
	f(`1`, 1, nil)
	f(`65536`, 65536, nil)
	f(`-2.5e-3`, -0.0025, nil)
	f(`1E2`, 100, nil)
	f(` 8 `, 8, nil)
	f(`"0.01"`, 0.01, nil)
	f(`"16384"`, 16384, nil)
	f(`1e400`, 0, ErrOutOfRange)
	f(`""`, 0, ErrNotNumber)
	f(`"0x10"`, 0, ErrNotNumber)
	f(`"1 "`, 0, ErrNotNumber)
	f(`"NaN"`, 0, ErrNotNumber)
	f(`"\u0031"`, 0, ErrNotNumber)
	f(`true`, 0, ErrNotNumber)
	f(`null`, 0, ErrNotNumber)
	f(``, 0, ErrNotNumber)
	f(`01`, 0, ErrInvalidJSON)
	f(`1.`, 0, ErrInvalidJSON)
	f(`NaN`, 0, ErrInvalidJSON)
	f(`Inf`, 0, ErrInvalidJSON)
}

func TestParseInt(t *testing.T) {
	f := func(raw string, want int64, wantErr error) {
		t.Helper()
		got, err := ParseInt([]byte(raw))
		if !errors.Is(err, wantErr) || got != want {
			t.Fatalf("ParseInt(%q) = %v, %v; want %v, %v", raw, got, err, want, wantErr)
		}
	}
	f(`0`, 0, nil)
	f(`-0`, 0, nil)
	f(`4`, 4, nil)
	f(`-32700`, -32700, nil)
	f(`"8"`, 8, nil)
	f(`9223372036854775807`, math.MaxInt64, nil)
	f(`-9223372036854775808`, math.MinInt64, nil)
	f(`9223372036854775808`, 0, ErrOutOfRange)
	f(`-9223372036854775809`, 0, ErrOutOfRange)
	f(`18446744073709551615`, 0, ErrOutOfRange)
	f(`18446744073709551616`, 0, ErrOutOfRange)
	f(`99999999999999999999999`, 0, ErrOutOfRange)
	f(`1.0`, 1, nil)
	f(`1e3`, 1000, nil)
	f(`-2E+1`, -20, nil)
	f(`1.5`, 0, ErrNotInteger)
	f(`1e19`, 0, ErrOutOfRange)
	f(`-9.223372036854775808e18`, math.MinInt64, nil)
	f(`1e400`, 0, ErrOutOfRange)
	f(`"x"`, 0, ErrNotNumber)
	f(`[4]`, 0, ErrNotNumber)
	f(`4x`, 0, ErrInvalidJSON)
}

func TestParseUint32Hex(t *testing.T) {
	f := func(raw string, want uint32, wantErr error) {
		t.Helper()
		got, err := ParseUint32Hex([]byte(raw))
		if !errors.Is(err, wantErr) || got != want {
			t.Fatalf("ParseUint32Hex(%q) = %#x, %v; want %#x, %v", raw, got, err, want, wantErr)
		}
	}
	f(`"1fffe000"`, 0x1fffe000, nil)
	f(`"1FFFE000"`, 0x1fffe000, nil)
	f(`"207fffff"`, 0x207fffff, nil)
	f(`"6b00d546"`, 0x6b00d546, nil)
	f(`"ffffffff"`, 0xffffffff, nil)
	f(`"0"`, 0, nil)
	f(`"20000000"`, 0x20000000, nil)
	f(`""`, 0, ErrNotHex)
	f(`"123456789"`, 0, ErrNotHex)
	f(`"0x10"`, 0, ErrNotHex)
	f(`"12g4"`, 0, ErrNotHex)
	f(`"\u0031"`, 0, ErrNotHex)
	f(`536870912`, 0, ErrNotString)
	f(`"1fffe000`, 0, ErrInvalidJSON)
}

func TestParseBoolAndIsNull(t *testing.T) {
	for raw, want := range map[string]bool{`true`: true, `false`: false, ` true `: true} {
		if got, err := ParseBool([]byte(raw)); err != nil || got != want {
			t.Errorf("ParseBool(%q) = %v, %v", raw, got, err)
		}
	}
	for raw, wantErr := range map[string]error{`"true"`: ErrNotBool, `1`: ErrNotBool, `null`: ErrNotBool,
		``: ErrNotBool, `tru`: ErrInvalidJSON, `truex`: ErrInvalidJSON} {
		if _, err := ParseBool([]byte(raw)); !errors.Is(err, wantErr) {
			t.Errorf("ParseBool(%q) error = %v, want %v", raw, err, wantErr)
		}
	}
	for raw, want := range map[string]bool{``: true, `null`: true, ` null `: true,
		`nul`: false, `"null"`: false, `0`: false, `[]`: false, `false`: false} {
		if got := IsNull([]byte(raw)); got != want {
			t.Errorf("IsNull(%q) = %v, want %v", raw, got, want)
		}
	}
	if !IsNull(nil) {
		t.Error("IsNull(nil) = false")
	}
}

func TestParseError(t *testing.T) {
	f := func(raw string, wantCode int, wantMsg string, wantOK bool, wantErr error) {
		t.Helper()
		code, msg, ok, err := ParseError([]byte(raw))
		if !errors.Is(err, wantErr) || code != wantCode || string(msg) != wantMsg || ok != wantOK {
			t.Fatalf("ParseError(%q) = %d, %q, %v, %v; want %d, %q, %v, %v",
				raw, code, msg, ok, err, wantCode, wantMsg, wantOK, wantErr)
		}
	}
	f(``, 0, "", false, nil)
	f(`null`, 0, "", false, nil)
	f(`false`, 0, "", false, nil)
	f(`[21,"Job not found",null]`, CodeJobNotFound, "Job not found", true, nil)
	f(`[23, "Low difficulty share", {"extra": [1]}]`, CodeLowDifficulty, "Low difficulty share", true, nil)
	f(`[22,"Duplicate share"]`, CodeDuplicate, "Duplicate share", true, nil)
	f(`[24]`, CodeUnauthorized, "", true, nil)
	f(`[]`, CodeOther, "", true, nil)
	f(`[null,"x",null]`, CodeOther, "x", true, nil)
	f(`[20,null,null]`, CodeOther, "", true, nil)
	f(`[20,"say \"hi\"",null]`, CodeOther, `say "hi"`, true, nil)
	f(`{"code":-1,"message":"Low difficulty share"}`, -1, "Low difficulty share", true, nil)
	f(`{"message":"Unauthenticated"}`, CodeOther, "Unauthenticated", true, nil)
	f(`"Invalid share"`, CodeOther, "Invalid share", true, nil)
	f(`["x","y"]`, 0, "", false, ErrNotNumber)
	f(`[20,5]`, 0, "", false, ErrNotString)
	f(`[1e12,"x"]`, 0, "", false, ErrOutOfRange)
	f(`true`, 0, "", false, ErrBadError)
	f(`5`, 0, "", false, ErrBadError)
	f(`[20,"x"`, 0, "", false, ErrInvalidJSON)
	f(`[20,"x"]]`, 0, "", false, ErrInvalidJSON)
	f(`{"code":1`, 0, "", false, ErrInvalidJSON)
	f(`tru`, 0, "", false, ErrInvalidJSON)
}

func TestParseRealValues(t *testing.T) {
	// Values as the captured pools send them.
	var m Message
	for _, l := range loadTranscripts(t) {
		if err := Decode(l.line, &m); err != nil {
			t.Fatal(err)
		}
		params, err := SplitArray(m.Params, nil)
		if err != nil {
			t.Fatal(err)
		}
		switch string(m.Method) {
		case MethodSetDifficulty:
			if d, err := ParseFloat(params[0]); err != nil || (d != 1 && d != 0.01) {
				t.Errorf("%s: difficulty %v, %v", l.name, d, err)
			}
		case MethodNotify:
			for _, i := range []int{5, 6, 7} { // version, nbits, ntime
				if _, err := ParseUint32Hex(params[i]); err != nil {
					t.Errorf("%s: param %d %s: %v", l.name, i, params[i], err)
				}
			}
			if _, err := ParseBool(params[8]); err != nil {
				t.Errorf("%s: clean_jobs: %v", l.name, err)
			}
			if branches, err := SplitArray(params[4], nil); err != nil || branches == nil && string(params[4]) != "[]" {
				t.Errorf("%s: merkle branches %v %v", l.name, branches, err)
			}
		case MethodSubmit:
			worker, err := Unquote(params[0], nil)
			if err != nil || string(worker) != "worker1" {
				t.Errorf("%s: worker %q, %v", l.name, worker, err)
			}
			if _, err := ParseUint32Hex(params[4]); err != nil {
				t.Errorf("%s: nonce: %v", l.name, err)
			}
		case "":
			if m.Error != nil {
				t.Errorf("%s: unexpected error %s", l.name, m.Error)
			}
			if _, _, ok, err := ParseError(m.Error); ok || err != nil {
				t.Errorf("%s: ParseError(nil) = %v, %v", l.name, ok, err)
			}
			if strings.HasPrefix(string(m.Result), "[[") {
				res, err := SplitArray(m.Result, nil)
				if err != nil || len(res) != 3 {
					t.Fatalf("%s: subscribe result %q, %v", l.name, res, err)
				}
				if n, err := ParseInt(res[2]); err != nil || n < 3 || n > 8 {
					t.Errorf("%s: extranonce2_size %d, %v", l.name, n, err)
				}
			}
		}
	}
}
