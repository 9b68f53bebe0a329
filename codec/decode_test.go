package codec

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestDecodeTranscripts decodes every captured wire line and compares each
// field with encoding/json's reading of the same line.
func TestDecodeTranscripts(t *testing.T) {
	var m Message
	methods := map[string]int{}
	for _, l := range loadTranscripts(t) {
		t.Run(l.name, func(t *testing.T) {
			if err := Decode(l.line, &m); err != nil {
				t.Fatalf("Decode(%s): %v", l.line, err)
			}
			checkMessage(t, l.line, &m)
			methods[string(m.Method)]++

			var params []json.RawMessage
			if m.Params != nil {
				if err := json.Unmarshal(m.Params, &params); err != nil {
					t.Fatal(err)
				}
			}
			elems, err := SplitArray(m.Params, nil)
			if err != nil {
				t.Fatalf("SplitArray(%s): %v", m.Params, err)
			}
			if len(elems) != len(params) {
				t.Fatalf("SplitArray gave %d elements, encoding/json %d", len(elems), len(params))
			}
			for i := range elems {
				if !bytes.Equal(elems[i], params[i]) {
					t.Errorf("param %d = %s, encoding/json sees %s", i, elems[i], params[i])
				}
			}
			if m.IsResponse() == (m.Method != nil) {
				t.Errorf("IsResponse = %v with method %q", m.IsResponse(), m.Method)
			}
		})
	}
	// The captures must exercise the hot paths this package is built for.
	for _, want := range []string{MethodSubscribe, MethodAuthorize, MethodExtranonceSubscribe,
		MethodSubmit, MethodNotify, MethodSetDifficulty, MethodPing, MethodReconnect, ""} {
		if methods[want] == 0 {
			t.Errorf("no captured line with method %q", want)
		}
	}
}

func TestDecode(t *testing.T) {
	type want struct {
		id, method, params, result, error string // "<nil>" for nil
		isResponse, hasID                 bool
	}
	const none = "<nil>"
	str := func(b []byte) string {
		if b == nil {
			return none
		}
		return string(b)
	}
	f := func(name, line string, w want) {
		t.Helper()
		t.Run(name, func(t *testing.T) {
			var m Message
			b := []byte(line)
			if err := Decode(b, &m); err != nil {
				t.Fatalf("Decode(%q): %v", line, err)
			}
			got := want{str(m.ID), str(m.Method), str(m.Params), str(m.Result), str(m.Error),
				m.IsResponse(), m.HasID()}
			if got != w {
				t.Errorf("Decode(%q)\n got %+v\nwant %+v", line, got, w)
			}
			checkMessage(t, b, &m)
		})
	}
	f("request", `{"id": 1, "method": "mining.subscribe", "params": ["cpuminer/2.5.1"]}`,
		want{"1", "mining.subscribe", `["cpuminer/2.5.1"]`, none, none, false, true})
	f("string id", `{"id":"abc","method":"mining.authorize","params":["w","x"]}`,
		want{`"abc"`, "mining.authorize", `["w","x"]`, none, none, false, true})
	f("string id with escape", `{"id":"a\"b","result":true}`,
		want{`"a\"b"`, none, none, "true", none, true, true})
	f("submit id 4 at the end", `{"method": "mining.submit", "params": ["worker1", "18", "00000000", "6b00d546", "38418000"], "id":4}`,
		want{"4", "mining.submit", `["worker1", "18", "00000000", "6b00d546", "38418000"]`, none, none, false, true})
	f("result", `{"result":true,"error":null,"id":4}`,
		want{"4", none, none, "true", none, true, true})
	f("null result", `{"id":2,"result":null,"error":[24,"Unauthorized worker",null]}`,
		want{"2", none, none, "null", `[24,"Unauthorized worker",null]`, true, true})
	f("notification", `{"params":[1],"id":null,"method":"mining.set_difficulty"}`,
		want{"null", "mining.set_difficulty", "[1]", none, none, false, false})
	f("no id", `{"method":"mining.notify","params":[]}`,
		want{none, "mining.notify", "[]", none, none, false, false})
	f("jsonrpc 2.0", `{"jsonrpc":"2.0","id":7,"method":"mining.ping","params":[]}`,
		want{"7", "mining.ping", "[]", none, none, false, true})
	f("ethproxy worker", `{"worker":"rig1","jsonrpc":"2.0","params":["0xabc","x"],"id":1,"method":"eth_submitLogin"}`,
		want{"1", "eth_submitLogin", `["0xabc","x"]`, none, none, false, true})
	f("ethproxy pushed work", `{"id":0,"result":["0x1","0x2","0x3"]}`,
		want{"0", none, none, `["0x1","0x2","0x3"]`, none, true, true})
	f("cryptonote object params", `{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"x","pass":"y","algo":["rx/0"]}}`,
		want{"1", "login", `{"login":"x","pass":"y","algo":["rx/0"]}`, none, none, false, true})
	f("escaped method", `{"id":1,"method":"mining.\u0073ubmit","params":[]}`,
		want{"1", "mining.submit", "[]", none, none, false, true})
	f("escaped key", `{"\u0069d":5,"m\u0065thod":"x"}`,
		want{"5", "x", none, none, none, false, true})
	f("escapes in params", `{"id":1,"method":"client.show_message","params":["a\nb \"q\" \\ \u00e9 \ud83d\ude00"]}`,
		want{"1", "client.show_message", `["a\nb \"q\" \\ \u00e9 \ud83d\ude00"]`, none, none, false, true})
	f("nested params", `{"id":3,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"1fffe000","version-rolling.min-bit-count":2}]}`,
		want{"3", "mining.configure", `[["version-rolling"],{"version-rolling.mask":"1fffe000","version-rolling.min-bit-count":2}]`, none, none, false, true})
	f("whitespace everywhere", " \t{ \"id\" : 1 ,\r\n \"method\" : \"m\" , \"params\" : [ 1 , 2 ] } \r",
		want{"1", "m", "[ 1 , 2 ]", none, none, false, true})
	f("duplicate keys last wins", `{"id":1,"id":"two","method":"a","method":"b","params":[1],"params":null}`,
		want{`"two"`, "b", none, none, none, false, true})
	f("bad first value of a duplicate", `{"id":{},"id":1,"method":5,"method":"m","params":"s","params":[]}`,
		want{"1", "m", "[]", none, none, false, true})
	f("null method is absent", `{"id":1,"method":null,"result":true,"error":null}`,
		want{"1", none, none, "true", none, true, true})
	f("error null but present", `{"id":1,"error":null}`,
		want{"1", none, none, none, none, true, true})
	f("empty method", `{"id":1,"method":"","params":[]}`,
		want{"1", "", "[]", none, none, false, true})
	f("numbers as id", `{"id":-1.5e+3}`,
		want{"-1.5e+3", none, none, none, none, false, true})
	f("empty object", `{}`, want{none, none, none, none, none, false, false})
	f("utf8 passthrough", "{\"method\":\"\xff\xfe\"}", want{none, "\xff\xfe", none, none, none, false, false})
}

func TestDecodeErrors(t *testing.T) {
	f := func(name, line string, want error) {
		t.Helper()
		t.Run(name, func(t *testing.T) {
			m := Message{ID: []byte("stale"), Method: []byte("stale")}
			err := Decode([]byte(line), &m)
			if !errors.Is(err, want) {
				t.Fatalf("Decode(%q) = %v, want %v", line, err, want)
			}
			if m.ID != nil || m.Method != nil || m.Params != nil || m.Result != nil || m.Error != nil {
				t.Errorf("Message not reset after error: %+v", m)
			}
			if got := viewJSON([]byte(line)).wantErr(); got != want {
				t.Errorf("encoding/json's reading gives %v, test wants %v", got, want)
			}
		})
	}
	f("empty", ``, ErrInvalidJSON)
	f("blank", "  \r", ErrInvalidJSON)
	f("garbage", `hello`, ErrInvalidJSON)
	f("truncated", `{"id": 4, "method": "mining.submit", "params": ["worker1", "18"`, ErrInvalidJSON)
	f("truncated in string", `{"id": 4, "method": "mining.sub`, ErrInvalidJSON)
	f("truncated after key", `{"id"`, ErrInvalidJSON)
	f("truncated after colon", `{"id":`, ErrInvalidJSON)
	f("open brace only", `{`, ErrInvalidJSON)
	f("trailing garbage", `{"id":1}x`, ErrInvalidJSON)
	f("two objects", `{"id":1}{"id":2}`, ErrInvalidJSON)
	f("trailing comma", `{"id":1,}`, ErrInvalidJSON)
	f("missing comma", `{"id":1 "method":"a"}`, ErrInvalidJSON)
	f("missing colon", `{"id" 1}`, ErrInvalidJSON)
	f("unquoted key", `{id:1}`, ErrInvalidJSON)
	f("single quotes", `{'id':1}`, ErrInvalidJSON)
	f("leading zero", `{"id":01}`, ErrInvalidJSON)
	f("leading zero negative", `{"id":-01}`, ErrInvalidJSON)
	f("bare minus", `{"id":-}`, ErrInvalidJSON)
	f("dot without digits", `{"id":1.}`, ErrInvalidJSON)
	f("exponent without digits", `{"id":1e+}`, ErrInvalidJSON)
	f("plus sign", `{"id":+1}`, ErrInvalidJSON)
	f("NaN", `{"id":NaN}`, ErrInvalidJSON)
	f("Infinity", `{"id":Infinity}`, ErrInvalidJSON)
	f("hex number", `{"id":0x10}`, ErrInvalidJSON)
	f("invalid escape", `{"method":"a\x"}`, ErrInvalidJSON)
	f("short unicode escape", `{"method":"\u12"}`, ErrInvalidJSON)
	f("bad unicode escape", `{"method":"\u12g4"}`, ErrInvalidJSON)
	f("control char in string", "{\"method\":\"a\tb\"}", ErrInvalidJSON)
	f("newline in string", "{\"method\":\"a\nb\"}", ErrInvalidJSON)
	f("bad literal", `{"result":tru}`, ErrInvalidJSON)
	f("literal with suffix", `{"result":nullx}`, ErrInvalidJSON)
	f("unclosed array", `{"params":[1,2}`, ErrInvalidJSON)
	f("array trailing comma", `{"params":[1,]}`, ErrInvalidJSON)
	f("bad nested", `{"params":[{"a" 1}]}`, ErrInvalidJSON)
	f("too deep", `{"params":`+strings.Repeat("[", maxDepth)+strings.Repeat("]", maxDepth)+`}`, ErrInvalidJSON)
	f("array at top level", `[1,2,3]`, ErrNotObject)
	f("number at top level", `42`, ErrNotObject)
	f("string at top level", `"mining.submit"`, ErrNotObject)
	f("null at top level", `null`, ErrNotObject)
	f("invalid array at top level", `[1,2`, ErrInvalidJSON)
	f("id as object", `{"id":{"a":1},"method":"m"}`, ErrBadID)
	f("id as array", `{"id":[1],"method":"m"}`, ErrBadID)
	f("id as bool", `{"id":true,"method":"m"}`, ErrBadID)
	f("method as number", `{"id":1,"method":42}`, ErrBadMethod)
	f("method as array", `{"id":1,"method":["mining.submit"]}`, ErrBadMethod)
	f("params as string", `{"id":1,"method":"m","params":"x"}`, ErrBadParams)
	f("params as number", `{"id":1,"method":"m","params":1}`, ErrBadParams)
	f("params as bool", `{"id":1,"method":"m","params":false}`, ErrBadParams)
	f("last duplicate is bad", `{"id":1,"id":true}`, ErrBadID)
}

func TestDecodeDepthLimit(t *testing.T) {
	// maxDepth counts the line's own object: 1 + (maxDepth-1) arrays is the
	// deepest line accepted, exactly where encoding/json stops too.
	ok := `{"params":` + strings.Repeat("[", maxDepth-1) + strings.Repeat("]", maxDepth-1) + `}`
	var m Message
	if err := Decode([]byte(ok), &m); err != nil || !json.Valid([]byte(ok)) {
		t.Fatalf("depth %d: Decode = %v, json.Valid = %v", maxDepth, err, json.Valid([]byte(ok)))
	}
	deep := `{"params":` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + `}`
	if err := Decode([]byte(deep), &m); !errors.Is(err, ErrInvalidJSON) || json.Valid([]byte(deep)) {
		t.Fatalf("depth %d: Decode = %v, json.Valid = %v", maxDepth+1, err, json.Valid([]byte(deep)))
	}
}

func TestDecodeReuse(t *testing.T) {
	// A Message reused across lines must not keep fields of the last one,
	// and an escaped method must survive decoding into the same buffer.
	var m Message
	if err := Decode([]byte(`{"id":1,"method":"a\u0062c","params":[],"result":1,"error":[1]}`), &m); err != nil {
		t.Fatal(err)
	}
	if string(m.Method) != "abc" {
		t.Fatalf("Method = %q", m.Method)
	}
	if err := Decode([]byte(`{"method":"x\u0079"}`), &m); err != nil {
		t.Fatal(err)
	}
	if m.ID != nil || string(m.Method) != "xy" || m.Params != nil || m.Result != nil || m.Error != nil || m.IsResponse() {
		t.Fatalf("reused Message = %+v", m)
	}
}

func TestDecodeSpansDoNotOverrunLine(t *testing.T) {
	// Appending to a decoded field must never write into the rest of the
	// line: fields are capped at their own length.
	line := []byte(`{"params":[1],"id":7}`)
	var m Message
	if err := Decode(line, &m); err != nil {
		t.Fatal(err)
	}
	_ = append(m.Params, 'X')
	if string(line) != `{"params":[1],"id":7}` {
		t.Fatalf("line changed to %s", line)
	}
}
