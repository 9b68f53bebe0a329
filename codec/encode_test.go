package codec

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"testing"
)

func TestAppendLines(t *testing.T) {
	f := func(got []byte, want string) {
		t.Helper()
		if string(got) != want {
			t.Fatalf("got  %q\nwant %q", got, want)
		}
		line, n, err := NextLine(got, 0)
		if err != nil || n != len(got) || !json.Valid(line) {
			t.Fatalf("%q is not one valid line: n=%d, err=%v", got, n, err)
		}
	}
	f(AppendResult(nil, []byte("4"), []byte("true")), `{"id":4,"result":true,"error":null}`+"\n")
	f(AppendResult(nil, []byte(`"abc"`), nil), `{"id":"abc","result":null,"error":null}`+"\n")
	f(AppendResult(nil, nil, []byte(`[[["mining.notify","ae6812eb4cd7735a302a8a9dd95cf71f"]],"08000002",4]`)),
		`{"id":null,"result":[[["mining.notify","ae6812eb4cd7735a302a8a9dd95cf71f"]],"08000002",4],"error":null}`+"\n")
	f(AppendError(nil, []byte("4"), CodeLowDifficulty, "Low difficulty share"),
		`{"id":4,"result":null,"error":[23,"Low difficulty share",null]}`+"\n")
	f(AppendError(nil, nil, CodeParseError, "bad \"line\"\n"),
		`{"id":null,"result":null,"error":[-32700,"bad \"line\"\n",null]}`+"\n")
	f(AppendErrorBytes(nil, []byte("7"), CodeJobNotFound, []byte("Job not found")),
		`{"id":7,"result":null,"error":[21,"Job not found",null]}`+"\n")
	f(AppendRequest(nil, []byte("1"), MethodSubscribe, []byte(`["cpuminer/2.5.1"]`)),
		`{"id":1,"method":"mining.subscribe","params":["cpuminer/2.5.1"]}`+"\n")
	f(AppendRequest(nil, []byte("3"), MethodExtranonceSubscribe, nil),
		`{"id":3,"method":"mining.extranonce.subscribe","params":[]}`+"\n")
	f(AppendNotification(nil, MethodSetDifficulty, []byte("[0.01]")),
		`{"id":null,"method":"mining.set_difficulty","params":[0.01]}`+"\n")
	appended := AppendNotification([]byte("prev\n"), MethodReconnect, nil)
	if !bytes.HasPrefix(appended, []byte("prev\n")) {
		t.Fatalf("AppendNotification overwrote dst: %q", appended)
	}
	f(appended[len("prev\n"):], `{"id":null,"method":"client.reconnect","params":[]}`+"\n")
}

func TestAppendString(t *testing.T) {
	f := func(s, want string) {
		t.Helper()
		if got := AppendString([]byte("x"), []byte(s)); string(got) != "x"+want {
			t.Fatalf("AppendString(%q) = %q, want %q", s, got, "x"+want)
		}
		if got := AppendStringS([]byte("x"), s); string(got) != "x"+want {
			t.Fatalf("AppendStringS(%q) = %q, want %q", s, got, "x"+want)
		}
		if !json.Valid([]byte(want)) {
			t.Fatalf("%q is not valid JSON", want)
		}
		if got, err := Unquote([]byte(want), nil); err != nil || string(got) != s {
			t.Fatalf("Unquote(AppendString(%q)) = %q, %v", s, got, err)
		}
	}
	f("", `""`)
	f("worker1", `"worker1"`)
	f(`a"b\c`, `"a\"b\\c"`)
	f("\n\r\t\b\f", `"\n\r\t\b\f"`)
	f("\x00\x01\x1f\x7f", `"\u0000\u0001\u001f`+"\x7f\"")
	f("<a&b>", `"<a&b>"`)
	f("é中😀", `"é中😀"`)
	f("\xff\xfe", "\"\xff\xfe\"")
}

func TestAppendFloat(t *testing.T) {
	f := func(v float64, want string) {
		t.Helper()
		got := string(AppendFloat(nil, v))
		if got != want {
			t.Fatalf("AppendFloat(%v) = %q, want %q", v, got, want)
		}
		if !json.Valid([]byte(got)) {
			t.Fatalf("AppendFloat(%v) = %q is not valid JSON", v, got)
		}
		if back, err := ParseFloat([]byte(got)); err != nil || !(back == v || v != v || math.IsInf(v, 0) || v == 0) {
			t.Fatalf("ParseFloat(%q) = %v, %v; want %v", got, back, err, v)
		}
	}
	f(1, "1")
	f(0.01, "0.01")
	f(65536, "65536")
	f(16384.5, "16384.5")
	f(-3, "-3")
	f(1e20, "100000000000000000000")
	f(1e21, "1e+21")
	f(0.000001, "0.000001")
	f(1e-7, "1e-7")
	f(1.5e-10, "1.5e-10")
	f(1e-100, "1e-100")
	f(4294967296, "4294967296")
	f(0, "0")
	f(math.Copysign(0, -1), "0")
	f(math.NaN(), "0")
	f(math.Inf(1), "0")
	f(math.Inf(-1), "0")
}

func TestAppendNumbersAndHex(t *testing.T) {
	f := func(got []byte, want string) {
		t.Helper()
		if string(got) != want || !json.Valid(got) {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	f(AppendUint(nil, 0), "0")
	f(AppendUint(nil, math.MaxUint64), strconv.FormatUint(math.MaxUint64, 10))
	f(AppendInt(nil, -32700), "-32700")
	f(AppendBool(nil, true), "true")
	f(AppendHexString(nil, []byte{0x20, 0x00, 0x00, 0x06, 0xab}), `"20000006ab"`)
	f(AppendHexString(nil, nil), `""`)
	if v, err := ParseUint32Hex(AppendHexString(nil, []byte{0x1f, 0xff, 0xe0, 0x00})); err != nil || v != 0x1fffe000 {
		t.Fatalf("hex round trip = %#x, %v", v, err)
	}
}

// TestEncodeRoundTripTranscripts re-encodes every captured line with the
// Append functions and decodes it back to the same fields, so whatever the
// proxy relays reads the same on the other side.
func TestEncodeRoundTripTranscripts(t *testing.T) {
	var m, back Message
	buf := make([]byte, 0, 4096)
	for _, l := range loadTranscripts(t) {
		t.Run(l.name, func(t *testing.T) {
			if err := Decode(l.line, &m); err != nil {
				t.Fatal(err)
			}
			switch {
			case m.IsResponse() && m.Error != nil:
				code, msg, _, err := ParseError(m.Error)
				if err != nil {
					t.Fatal(err)
				}
				buf = AppendErrorBytes(buf[:0], m.ID, code, msg)
			case m.IsResponse():
				buf = AppendResult(buf[:0], m.ID, m.Result)
			case m.HasID():
				buf = AppendRequest(buf[:0], m.ID, string(m.Method), m.Params)
			default:
				buf = AppendNotification(buf[:0], string(m.Method), m.Params)
			}
			line, n, err := NextLine(buf, 0)
			if err != nil || n != len(buf) {
				t.Fatalf("%q: n=%d err=%v", buf, n, err)
			}
			if err := Decode(line, &back); err != nil {
				t.Fatalf("Decode(%s): %v", line, err)
			}
			checkMessage(t, line, &back)
			if !bytes.Equal(back.ID, m.ID) && !(m.ID == nil && string(back.ID) == "null") {
				t.Errorf("id %q came back as %q", m.ID, back.ID)
			}
			if !bytes.Equal(back.Method, m.Method) || !bytes.Equal(back.Params, m.Params) && m.Params != nil {
				t.Errorf("method/params %q %q came back as %q %q", m.Method, m.Params, back.Method, back.Params)
			}
			if !bytes.Equal(back.Result, m.Result) && m.Result != nil {
				t.Errorf("result %q came back as %q", m.Result, back.Result)
			}
		})
	}
}
