package codec

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"
)

// wireLine is one line of a captured session in ../testdata/transcripts.
type wireLine struct {
	name string // file:lineno, for subtest names
	dir  string // "miner->pool" or "pool->miner"
	line []byte // exactly as on the wire, without "\n"
}

// loadTranscripts reads every line of every captured session. It fails the
// test when there are none, so a moved testdata directory cannot make the
// real-line tests pass vacuously.
func loadTranscripts(tb testing.TB) []wireLine {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join("..", "testdata", "transcripts", "*.jsonl"))
	if err != nil {
		tb.Fatal(err)
	}
	if len(files) == 0 {
		tb.Fatal("no transcripts in ../testdata/transcripts")
	}
	var lines []wireLine
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			tb.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for n := 1; sc.Scan(); n++ {
			var rec struct {
				Dir  string `json:"dir"`
				Line string `json:"line"`
			}
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				tb.Fatalf("%s:%d: %v", file, n, err)
			}
			lines = append(lines, wireLine{
				name: strings.TrimSuffix(filepath.Base(file), ".jsonl") + ":" + itoa(n),
				dir:  rec.Dir,
				line: []byte(rec.Line),
			})
		}
		f.Close()
		if err := sc.Err(); err != nil {
			tb.Fatal(err)
		}
	}
	return lines
}

func itoa(n int) string { return string(AppendInt(nil, int64(n))) }

// realLine returns the first captured line that contains substr.
func realLine(tb testing.TB, substr string) []byte {
	tb.Helper()
	for _, l := range loadTranscripts(tb) {
		if bytes.Contains(l.line, []byte(substr)) {
			return l.line
		}
	}
	tb.Fatalf("no captured line contains %q", substr)
	return nil
}

// utf8Normalized replaces each byte that is not part of valid UTF-8 with
// U+FFFD, as encoding/json does when it decodes a string.
func utf8Normalized(b []byte) string {
	return string([]rune(string(b)))
}

// within reports whether s lies inside buf's memory.
func within(s, buf []byte) bool {
	if len(s) == 0 {
		return true
	}
	if len(buf) == 0 {
		return false
	}
	p := uintptr(unsafe.Pointer(unsafe.SliceData(s)))
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	return p >= lo && p+uintptr(len(s)) <= lo+uintptr(len(buf))
}

// jsonView is encoding/json's reading of a line, for comparison.
type jsonView struct {
	valid    bool // json.Valid
	isObject bool // valid, and the top level is an object
	obj      map[string]json.RawMessage
}

func viewJSON(line []byte) jsonView {
	v := jsonView{valid: json.Valid(line)}
	if !v.valid {
		return v
	}
	t := bytes.TrimLeft(line, " \t\r\n")
	if len(t) == 0 || t[0] != '{' {
		return v
	}
	v.isObject = true
	if err := json.Unmarshal(line, &v.obj); err != nil {
		panic("json.Valid object that does not unmarshal: " + err.Error())
	}
	return v
}

// wantErr is the error Decode must return for a line, by encoding/json's
// reading of it.
func (v jsonView) wantErr() error {
	switch {
	case !v.valid:
		return ErrInvalidJSON
	case !v.isObject:
		return ErrNotObject
	}
	if id, ok := v.obj["id"]; ok {
		switch id[0] {
		case '{', '[', 't', 'f':
			return ErrBadID
		}
	}
	if method, ok := v.obj["method"]; ok && method[0] != '"' && method[0] != 'n' {
		return ErrBadMethod
	}
	if params, ok := v.obj["params"]; ok {
		switch params[0] {
		case '[', '{', 'n':
		default:
			return ErrBadParams
		}
	}
	return nil
}

// checkMessage compares a successfully decoded m with encoding/json's
// reading of line, field by field.
func checkMessage(tb testing.TB, line []byte, m *Message) {
	tb.Helper()
	v := viewJSON(line)
	if !v.isObject {
		tb.Fatalf("Decode accepted %q, which encoding/json does not read as an object", line)
	}
	raw := func(key string) []byte {
		r, ok := v.obj[key]
		if !ok {
			return nil
		}
		return r
	}
	nullAsNil := func(r []byte) []byte {
		if string(r) == "null" {
			return nil
		}
		return r
	}
	if id := raw("id"); !bytes.Equal(m.ID, id) || (m.ID == nil) != (id == nil) {
		tb.Errorf("ID = %q, encoding/json sees %q", m.ID, id)
	} else if id != nil {
		a, err := semantic(m.ID)
		if err != nil {
			tb.Errorf("ID %q does not unmarshal: %v", m.ID, err)
		}
		if b, _ := semantic(id); a != b {
			tb.Errorf("ID re-marshals as %s, encoding/json's as %s", a, b)
		}
	}
	if method := nullAsNil(raw("method")); method == nil {
		if m.Method != nil {
			tb.Errorf("Method = %q, want nil", m.Method)
		}
	} else {
		var s string
		if err := json.Unmarshal(method, &s); err != nil {
			tb.Fatal(err)
		}
		if m.Method == nil || utf8Normalized(m.Method) != s {
			tb.Errorf("Method = %q, encoding/json sees %q", m.Method, s)
		}
	}
	for _, f := range []struct {
		name string
		got  []byte
		want []byte
	}{
		{"Params", m.Params, nullAsNil(raw("params"))},
		{"Result", m.Result, raw("result")},
		{"Error", m.Error, nullAsNil(raw("error"))},
	} {
		if !bytes.Equal(f.got, f.want) || (f.got == nil) != (f.want == nil) {
			tb.Errorf("%s = %q, encoding/json sees %q", f.name, f.got, f.want)
		}
	}
	for _, s := range [][]byte{m.ID, m.Params, m.Result, m.Error} {
		if !within(s, line) {
			tb.Errorf("span %q does not alias the line", s)
		}
	}
	if !within(m.Method, line) && !within(m.Method, m.buf) {
		tb.Errorf("Method %q aliases neither the line nor the Message's buffer", m.Method)
	}
}

var jsonUnmarshal = json.Unmarshal

// semantic is encoding/json's re-marshalled reading of a raw value, numbers
// kept as written (json.Number) so that 1e400 is not an error.
func semantic(raw []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", err
	}
	out, err := json.Marshal(v)
	return string(out), err
}
