package codec

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// tricky are hand-made seeds for the fuzzers, beyond the captured lines.
var tricky = []string{
	``, ` `, `{}`, `[]`, `null`, `1`, `"x"`, `{`, `}`, `{"id"}`, `{"id":}`, `{"id":1,}`,
	`{"id":1}x`, `{"id":01}`, `{"id":-0.0e+0}`, `{"id":1e400}`, `{"id":"a\"b"}`,
	`{"id":{}}`, `{"id":[]}`, `{"id":true}`, `{"method":1}`, `{"params":"s"}`,
	`{"method":"mining.\u0073ubmit"}`, `{"\u0069d":1,"id":2}`, `{"id":{},"id":null}`,
	`{"method":"\ud800"}`, `{"method":"\ud83d\ude00\udc00"}`, "{\"method\":\"\xff\"}",
	"{\"method\":\"a\x00\"}", `{"result":null,"error":[21,"Job not found",null],"id":4}`,
	`{"id":0,"result":["0x1","0x2","0x3"]}`, `{"jsonrpc":"2.0","id":"abc","method":"login","params":{"login":"x"}}`,
	"{\"id\":1}\r\n", " \t{\"id\" : 1 } ", `{"params":[[[[[[[[]]]]]]]]}`, `{"a":"0123456789abcdef0123456789\\"}`,
	`{"a":"01234567\"89"}`, `{"a":"0123456\\"}`, `[1,[2,{"a":[3]}],"x",null,true,false]`,
}

func FuzzDecode(f *testing.F) {
	for _, l := range loadTranscripts(f) {
		f.Add(l.line)
	}
	for _, s := range tricky {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		orig := append([]byte(nil), line...)
		var m Message
		err := Decode(line, &m)
		if !bytes.Equal(line, orig) {
			t.Fatalf("Decode modified its input")
		}
		v := viewJSON(line)
		if want := v.wantErr(); !errors.Is(err, want) {
			t.Fatalf("Decode(%q) = %v, encoding/json's reading says %v", line, err, want)
		}
		if err != nil {
			if m.ID != nil || m.Method != nil || m.Params != nil || m.Result != nil || m.Error != nil {
				t.Fatalf("Message not reset after %v", err)
			}
			return
		}
		checkMessage(t, line, &m)

		elems, err := SplitArray(m.Params, nil)
		switch {
		case m.Params == nil || m.Params[0] == '[':
			var want []json.RawMessage
			if m.Params != nil {
				if err := json.Unmarshal(m.Params, &want); err != nil {
					t.Fatal(err)
				}
			}
			if err != nil || len(elems) != len(want) {
				t.Fatalf("SplitArray(%q) = %q, %v; encoding/json %q", m.Params, elems, err, want)
			}
			for i := range want {
				if !bytes.Equal(elems[i], want[i]) {
					t.Fatalf("SplitArray(%q)[%d] = %q, encoding/json %q", m.Params, i, elems[i], want[i])
				}
			}
		case !errors.Is(err, ErrNotArray):
			t.Fatalf("SplitArray(%q) = %v, want ErrNotArray", m.Params, err)
		}
	})
}

// refNextLine is the definition of NextLine, written the slow, obvious way.
func refNextLine(buf []byte, max int) ([]byte, int, error) {
	if max <= 0 {
		max = DefaultMaxLineSize
	}
	off := 0
	for {
		rest := buf[off:]
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			if len(rest) > max {
				return nil, off, ErrLineTooLong
			}
			return nil, off, nil
		}
		if i > max {
			return nil, off, ErrLineTooLong
		}
		line := rest[:i]
		off += i + 1
		if strings.Trim(string(line), " \t\r") != "" {
			return bytes.TrimSuffix(line, []byte("\r")), off, nil
		}
	}
}

func FuzzNextLine(f *testing.F) {
	var session []byte
	for _, l := range loadTranscripts(f) {
		session = append(append(session, l.line...), '\n')
		f.Add(session[len(session)-len(l.line)-1:], 0)
	}
	f.Add(session, 0)
	f.Add(session, 700)
	f.Add([]byte("abc\n"), int(^uint(0)>>1)) // max == MaxInt once overflowed max+1
	for _, s := range []string{"", "\n", "\r\n", "a\r\r\n", " \t\r\n\nx", "abcd\nabcde\n", "abcde", "\n\n\nabcdefgh"} {
		for _, max := range []int{-1, 0, 1, 4, 5} {
			f.Add([]byte(s), max)
		}
	}
	f.Fuzz(func(t *testing.T, buf []byte, max int) {
		line, n, err := NextLine(buf, max)
		wline, wn, werr := refNextLine(buf, max)
		if !bytes.Equal(line, wline) || (line == nil) != (wline == nil) || n != wn || err != werr {
			t.Fatalf("NextLine(%q, %d) = %q, %d, %v; want %q, %d, %v", buf, max, line, n, err, wline, wn, werr)
		}
		if n < 0 || n > len(buf) || !within(line, buf) || bytes.IndexByte(line, '\n') >= 0 {
			t.Fatalf("NextLine(%q, %d) = %q, %d: bad span", buf, max, line, n)
		}
		if line != nil && (buf[n-1] != '\n' || blank(line)) {
			t.Fatalf("NextLine(%q, %d) = %q, %d: blank or not at a newline", buf, max, line, n)
		}
	})
}

// trimJSONSpace trims exactly JSON's whitespace (bytes.TrimSpace trims more).
func trimJSONSpace(b []byte) []byte {
	return bytes.Trim(b, " \t\r\n")
}

func FuzzSplitArray(f *testing.F) {
	var m Message
	for _, l := range loadTranscripts(f) {
		if Decode(l.line, &m) == nil {
			f.Add(append([]byte(nil), m.Params...))
		}
	}
	for _, s := range tricky {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, err := SplitArray(raw, nil)
		trimmed := trimJSONSpace(raw)
		var want []json.RawMessage
		switch {
		case len(trimmed) == 0 || string(trimmed) == "null":
			if err != nil || got != nil {
				t.Fatalf("SplitArray(%q) = %q, %v; want nothing", raw, got, err)
			}
			return
		case !json.Valid(raw):
			if !errors.Is(err, ErrInvalidJSON) {
				t.Fatalf("SplitArray(%q) = %v, want ErrInvalidJSON", raw, err)
			}
			return
		case trimmed[0] != '[':
			if !errors.Is(err, ErrNotArray) {
				t.Fatalf("SplitArray(%q) = %v, want ErrNotArray", raw, err)
			}
			return
		}
		if jerr := json.Unmarshal(raw, &want); jerr != nil {
			t.Fatal(jerr)
		}
		if err != nil || len(got) != len(want) {
			t.Fatalf("SplitArray(%q) = %q, %v; encoding/json %q", raw, got, err, want)
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) || !within(got[i], raw) {
				t.Fatalf("SplitArray(%q)[%d] = %q, encoding/json %q", raw, i, got[i], want[i])
			}
		}
	})
}

func FuzzUnquote(f *testing.F) {
	for _, l := range loadTranscripts(f) {
		f.Add(l.line[bytes.IndexByte(l.line, '"'):])
	}
	for _, s := range []string{`""`, `"a"`, `"\u00e9"`, `"\ud83d\ude00"`, `"\ud83d"`, `"\udc00\ud800x"`,
		`"\ud800\ud800\udc00"`, `"\/\b\f\n\r\t\\\""`, "\"\xff\xc3\"", `"\u00"`, `"a`, `"a"b`, ` "a" `, `1`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, err := Unquote(raw, nil)
		trimmed := trimJSONSpace(raw)
		switch {
		case len(trimmed) == 0:
			if !errors.Is(err, ErrNotString) {
				t.Fatalf("Unquote(%q) = %v, want ErrNotString", raw, err)
			}
			return
		case !json.Valid(raw):
			if !errors.Is(err, ErrInvalidJSON) {
				t.Fatalf("Unquote(%q) = %v, want ErrInvalidJSON", raw, err)
			}
			return
		case trimmed[0] != '"':
			if !errors.Is(err, ErrNotString) {
				t.Fatalf("Unquote(%q) = %v, want ErrNotString", raw, err)
			}
			return
		}
		var want string
		if jerr := json.Unmarshal(raw, &want); jerr != nil {
			t.Fatal(jerr)
		}
		if err != nil || utf8Normalized(got) != want {
			t.Fatalf("Unquote(%q) = %q, %v; encoding/json %q", raw, got, err, want)
		}
		if bytes.IndexByte(trimmed, '\\') < 0 && !within(got, raw) {
			t.Fatalf("Unquote(%q) copied a string without escapes", raw)
		}
		// And back: AppendString's output reads as the same string.
		back, err := Unquote(AppendString(nil, got), nil)
		if err != nil || !bytes.Equal(back, got) {
			t.Fatalf("Unquote(AppendString(%q)) = %q, %v", got, back, err)
		}
	})
}

// FuzzParseFloat compares ParseFloat and AppendFloat with encoding/json.
func FuzzParseFloat(f *testing.F) {
	for _, s := range []string{`0`, `-0`, `0.01`, `1e400`, `1e-400`, `"0.01"`, `65536`, `1.7976931348623157e308`,
		`4.9e-324`, `123456789012345678901234567890`, `-1.5E+3`, `01`, `1.`, `"1"`, `true`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, err := ParseFloat(raw)
		var want float64
		trimmed := trimJSONSpace(raw)
		if len(trimmed) > 0 && trimmed[0] == '"' {
			return // quoted numbers are this package's extension
		}
		if jerr := json.Unmarshal(raw, &want); jerr != nil || string(trimmed) == "null" {
			if err == nil {
				t.Fatalf("ParseFloat(%q) = %v, encoding/json fails: %v", raw, got, jerr)
			}
			return
		}
		if err != nil || got != want {
			t.Fatalf("ParseFloat(%q) = %v, %v; encoding/json %v", raw, got, err, want)
		}
		enc := AppendFloat(nil, got)
		back, err := ParseFloat(enc)
		if err != nil || !json.Valid(enc) || back != got && got != 0 {
			t.Fatalf("AppendFloat(%v) = %q reads back as %v, %v", got, enc, back, err)
		}
	})
}
