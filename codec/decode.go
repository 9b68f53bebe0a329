package codec

import (
	"bytes"
	"errors"
)

// Decode errors. A peer that sends one of them sent a line the proxy cannot
// act on; answer it with the matching JSON-RPC code (see CodeParseError).
var (
	ErrInvalidJSON = errors.New("codec: invalid JSON")
	ErrNotObject   = errors.New("codec: message is not a JSON object")
	ErrBadID       = errors.New("codec: id must be a number, a string or null")
	ErrBadMethod   = errors.New("codec: method must be a string")
	ErrBadParams   = errors.New("codec: params must be an array, an object or null")
)

// Message is one decoded JSON-RPC line. All slices alias the decoded line
// (Method may instead alias the Message's own buffer, see below), so they
// are valid only until the line's buffer changes.
//
// The zero Message is ready to use. Reuse one Message for many lines: it
// keeps the buffer it grew for escaped method names, so decoding does not
// allocate. A Message is not safe for concurrent use.
type Message struct {
	// ID is the raw JSON token of "id": a number, a quoted string (quotes
	// included, exactly as on the wire, so it can be echoed byte for byte)
	// or null. It is nil when the key is absent.
	ID []byte
	// Method is the method name without quotes; nil when the key is absent
	// or null. A name written with JSON escapes is unescaped into a buffer
	// owned by the Message, valid until the next Decode or Reset.
	Method []byte
	// Params is the raw JSON array or object of "params"; nil when absent
	// or null.
	Params []byte
	// Result is the raw JSON value of "result"; nil when absent. A present
	// null is the 4 bytes null, so a response's result is never lost.
	Result []byte
	// Error is the raw JSON value of "error"; nil when absent or null. See
	// ParseError.
	Error []byte

	hasError bool   // an "error" key was present, even if null
	buf      []byte // backing store for an escaped Method
}

// Reset clears m, keeping its internal buffer for reuse.
func (m *Message) Reset() {
	*m = Message{buf: m.buf[:0]}
}

// IsResponse reports whether m is a response: it has no method, an "id" key
// (possibly null, as in an error answer to a line that could not be read),
// and a "result" or "error" key, either possibly null.
func (m *Message) IsResponse() bool {
	return m.Method == nil && m.ID != nil && (m.Result != nil || m.hasError)
}

// HasID reports whether m has an id that is not null: a request that wants
// an answer, or a response that can be matched to its request.
func (m *Message) HasID() bool {
	return m.ID != nil && !(len(m.ID) == 4 && string(m.ID) == "null")
}

// Decode parses one line (without its "\n"; surrounding whitespace is
// allowed) into m, replacing its previous contents.
//
// The line must be a single, valid JSON object, as strict as
// encoding/json.Valid: trailing bytes, invalid escapes, control characters
// in strings, leading zeros and the like give ErrInvalidJSON, and any other
// valid value gives ErrNotObject. Keys other than id, method, params,
// result and error (such as "jsonrpc" or ETHProxy's "worker") are checked
// and skipped. When a key repeats, the last one wins. Then the kept values
// are type-checked: ErrBadID for an id that is an object, an array or a
// boolean, ErrBadMethod for a method that is not a string (null counts as
// absent), ErrBadParams for params that are a string, a number or a
// boolean. On error m is left reset.
//
// Decode never panics and does not allocate, except to grow m's buffer the
// first time a method name needs unescaping.
func Decode(line []byte, m *Message) error {
	m.Reset()
	if err := m.decode(line); err != nil {
		m.Reset()
		return err
	}
	return nil
}

func (m *Message) decode(b []byte) error {
	i := skipSpace(b, 0)
	if i >= len(b) {
		return ErrInvalidJSON
	}
	if b[i] != '{' {
		if validValue(b) {
			return ErrNotObject
		}
		return ErrInvalidJSON
	}
	var method []byte
	it := newMemberIter(b, i)
	for {
		key, esc, val, ok, err := it.next()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		switch {
		case keyIs(key, esc, "id"):
			m.ID = val
		case keyIs(key, esc, "method"):
			method = val
		case keyIs(key, esc, "params"):
			m.Params = val
		case keyIs(key, esc, "result"):
			m.Result = val
		case keyIs(key, esc, "error"):
			m.Error = val
			m.hasError = true
		}
	}
	if skipSpace(b, it.i) != len(b) {
		return ErrInvalidJSON
	}

	// Type checks, on the last occurrence of each key only. Every value
	// was validated above, so its first byte tells its type.
	if m.ID != nil {
		switch m.ID[0] {
		case '{', '[', 't', 'f':
			return ErrBadID
		}
	}
	if method != nil {
		switch method[0] {
		case 'n':
			method = nil
		case '"':
			method = method[1 : len(method)-1]
			if bytes.IndexByte(method, '\\') >= 0 {
				m.buf = appendUnescaped(m.buf[:0], method)
				method = m.buf
			}
		default:
			return ErrBadMethod
		}
	}
	m.Method = method
	if m.Params != nil {
		switch m.Params[0] {
		case 'n':
			m.Params = nil
		case '[', '{':
		default:
			return ErrBadParams
		}
	}
	if m.Error != nil && m.Error[0] == 'n' {
		m.Error = nil
	}
	return nil
}
