package codec

import (
	"errors"
	"math"
	"strconv"
)

// Value errors, returned by the helpers that take apart the raw values of a
// Message. Each is returned only for valid JSON of the wrong type; invalid
// JSON gives ErrInvalidJSON.
var (
	ErrNotArray   = errors.New("codec: value is not a JSON array")
	ErrNotString  = errors.New("codec: value is not a JSON string")
	ErrNotNumber  = errors.New("codec: value is not a number")
	ErrNotInteger = errors.New("codec: number is not an integer")
	ErrOutOfRange = errors.New("codec: number out of range")
	ErrNotHex     = errors.New("codec: value is not a string of 1 to 8 hex digits")
	ErrNotBool    = errors.New("codec: value is not a boolean")
	ErrBadError   = errors.New("codec: error must be an array, an object, a string or null")
)

// wrongType returns sentinel if b is valid JSON (of another type) or empty,
// and ErrInvalidJSON otherwise.
func wrongType(b []byte, sentinel error) error {
	if len(b) == 0 || validValue(b) {
		return sentinel
	}
	return ErrInvalidJSON
}

func isNullLiteral(b []byte) bool {
	return len(b) == 4 && string(b) == "null"
}

// IsNull reports whether raw is absent (empty) or the JSON literal null,
// ignoring surrounding whitespace. Message fields that are nil for an
// absent key thus count as null too.
func IsNull(raw []byte) bool {
	b := trimSpace(raw)
	return len(b) == 0 || isNullLiteral(b)
}

// SplitArray appends the raw JSON of each top-level element of the array
// raw to dst and returns the extended slice. The elements alias raw. It
// does not allocate when dst has the capacity; reuse one dst per
// connection, passing dst[:0].
//
// An empty raw or null leaves dst unchanged (params may be absent). Any
// other value that is not an array gives ErrNotArray; an invalid array
// gives ErrInvalidJSON. On error dst is returned unchanged.
func SplitArray(raw []byte, dst [][]byte) ([][]byte, error) {
	b := trimSpace(raw)
	if len(b) == 0 || isNullLiteral(b) {
		return dst, nil
	}
	if b[0] != '[' {
		return dst, wrongType(b, ErrNotArray)
	}
	n := len(dst)
	it := newElemIter(b, 0)
	for {
		e, ok, err := it.next()
		if err != nil {
			return dst[:n], err
		}
		if !ok {
			break
		}
		dst = append(dst, e)
	}
	if it.i != len(b) {
		return dst[:n], ErrInvalidJSON
	}
	return dst, nil
}

// ObjectField returns the raw value of key in the JSON object raw, and
// whether it was found. Keys are compared after unescaping; when a key
// repeats the last one wins. It returns (nil, false) when raw is not a
// valid object. Use it for the dialects whose params are objects
// (CryptoNote login and submit) and for {"code":..,"message":..} errors.
// It does not allocate.
func ObjectField(raw []byte, key string) ([]byte, bool) {
	b := trimSpace(raw)
	if len(b) == 0 || b[0] != '{' {
		return nil, false
	}
	var found []byte
	it := newMemberIter(b, 0)
	for {
		k, esc, v, ok, err := it.next()
		if err != nil {
			return nil, false
		}
		if !ok {
			break
		}
		if keyIs(k, esc, key) {
			found = v
		}
	}
	if it.i != len(b) {
		return nil, false
	}
	return found, found != nil
}

// Unquote returns the contents of the JSON string raw. Without escapes it
// returns a subslice of raw (no copy, dst untouched); with escapes it
// decodes into dst[:0], growing it if needed, and returns that. Lone
// surrogate escapes decode to U+FFFD as in encoding/json; raw bytes that
// are not valid UTF-8 are passed through unchanged.
//
// A value of another type gives ErrNotString; a broken string gives
// ErrInvalidJSON.
func Unquote(raw []byte, dst []byte) ([]byte, error) {
	b := trimSpace(raw)
	body, esc, err := stringBody(b)
	if err != nil {
		return nil, err
	}
	if !esc {
		return body, nil
	}
	return appendUnescaped(dst[:0], body), nil
}

// stringBody returns the bytes between the quotes of the JSON string b
// (already trimmed) and whether they hold escapes.
func stringBody(b []byte) (body []byte, esc bool, err error) {
	if len(b) == 0 || b[0] != '"' {
		return nil, false, wrongType(b, ErrNotString)
	}
	end, esc, err := scanString(b, 0)
	if err != nil || end != len(b) {
		return nil, false, ErrInvalidJSON
	}
	return b[1 : end-1 : end-1], esc, nil
}

// numberBody returns the JSON number in b (trimmed), which may also be a
// string holding exactly a JSON number, as some pools quote difficulties.
func numberBody(b []byte) ([]byte, error) {
	if len(b) > 0 && b[0] == '"' {
		body, esc, err := stringBody(b)
		if err != nil {
			return nil, err
		}
		if esc || len(body) == 0 {
			return nil, ErrNotNumber
		}
		if end, err := scanNumber(body, 0); err != nil || end != len(body) {
			return nil, ErrNotNumber
		}
		return body, nil
	}
	if len(b) == 0 || !(b[0] == '-' || b[0] >= '0' && b[0] <= '9') {
		return nil, wrongType(b, ErrNotNumber)
	}
	if end, err := scanNumber(b, 0); err != nil || end != len(b) {
		return nil, ErrInvalidJSON
	}
	return b, nil
}

// ParseFloat returns the value of the JSON number raw, or of a JSON string
// holding exactly a JSON number ("0.01"). Numbers beyond float64 give
// ErrOutOfRange. It does not allocate for numbers of up to 32 characters.
func ParseFloat(raw []byte) (float64, error) {
	num, err := numberBody(trimSpace(raw))
	if err != nil {
		return 0, err
	}
	return parseFloat(num)
}

func parseFloat(num []byte) (float64, error) {
	// The grammar was checked, so strconv can only fail on range.
	// string(num) does not escape, so short numbers convert on the stack.
	f, err := strconv.ParseFloat(string(num), 64)
	if err != nil {
		return 0, ErrOutOfRange
	}
	return f, nil
}

// ParseInt returns the value of the JSON number raw (or a string holding
// one) as an int64. A fraction or exponent is accepted when the value is
// whole (1.0, 1e3); otherwise ErrNotInteger. Values beyond int64 give
// ErrOutOfRange. It does not allocate.
func ParseInt(raw []byte) (int64, error) {
	num, err := numberBody(trimSpace(raw))
	if err != nil {
		return 0, err
	}
	neg := num[0] == '-'
	digits := num
	if neg {
		digits = num[1:]
	}
	var u uint64
	for i, c := range digits {
		if c < '0' || c > '9' {
			return parseWholeFloat(num)
		}
		if i >= 19 { // 19 digits always fit in a uint64; check beyond
			if u > (math.MaxUint64-9)/10 {
				return 0, ErrOutOfRange
			}
		}
		u = u*10 + uint64(c-'0')
	}
	if neg {
		if u > 1<<63 {
			return 0, ErrOutOfRange
		}
		return -int64(u), nil
	}
	if u > math.MaxInt64 {
		return 0, ErrOutOfRange
	}
	return int64(u), nil
}

func parseWholeFloat(num []byte) (int64, error) {
	f, err := parseFloat(num)
	if err != nil {
		return 0, err
	}
	if f != math.Trunc(f) {
		return 0, ErrNotInteger
	}
	if f < -(1<<63) || f >= 1<<63 {
		return 0, ErrOutOfRange
	}
	return int64(f), nil
}

// ParseUint32Hex returns the value of a JSON string of 1 to 8 hex digits,
// either case, such as "1fffe000": version masks, nbits, ntime and nonces.
// Anything else that is a string gives ErrNotHex. It does not allocate.
func ParseUint32Hex(raw []byte) (uint32, error) {
	body, esc, err := stringBody(trimSpace(raw))
	if err != nil {
		return 0, err
	}
	if esc || len(body) == 0 || len(body) > 8 {
		return 0, ErrNotHex
	}
	var v uint32
	for _, c := range body {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, ErrNotHex
		}
		v = v<<4 | uint32(c)
	}
	return v, nil
}

// ParseBool returns the value of the JSON literal true or false.
func ParseBool(raw []byte) (bool, error) {
	b := trimSpace(raw)
	switch string(b) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, wrongType(b, ErrNotBool)
}

// ParseError decodes the "error" member of a response:
//
//	[code, "message", data]        Bitcoin stratum (data optional, ignored)
//	{"code":..,"message":..}       Ethereum and CryptoNote
//	"message"                      some pools; code is CodeOther
//	null, false or absent          no error: ok is false
//
// A null or missing code is reported as CodeOther; a null or missing
// message as nil. msg aliases raw when it has no escapes; an escaped
// message is decoded into a new slice (the only allocation, on a rare path).
// On err the other results are zero: treat a malformed error as a
// rejection with CodeOther.
func ParseError(raw []byte) (code int, msg []byte, ok bool, err error) {
	b := trimSpace(raw)
	if len(b) == 0 || isNullLiteral(b) || string(b) == "false" {
		return 0, nil, false, nil
	}
	var codeRaw, msgRaw []byte
	switch b[0] {
	case '[':
		it := newElemIter(b, 0)
		for n := 0; ; n++ {
			e, more, err := it.next()
			if err != nil {
				return 0, nil, false, err
			}
			if !more {
				break
			}
			switch n {
			case 0:
				codeRaw = e
			case 1:
				msgRaw = e
			}
		}
		if it.i != len(b) {
			return 0, nil, false, ErrInvalidJSON
		}
	case '{':
		if !validValue(b) {
			return 0, nil, false, ErrInvalidJSON
		}
		codeRaw, _ = ObjectField(b, "code")
		msgRaw, _ = ObjectField(b, "message")
	case '"':
		msgRaw = b
	default:
		return 0, nil, false, wrongType(b, ErrBadError)
	}
	code = CodeOther
	if !IsNull(codeRaw) {
		c, err := ParseInt(codeRaw)
		if err != nil {
			return 0, nil, false, err
		}
		if c < math.MinInt32 || c > math.MaxInt32 {
			return 0, nil, false, ErrOutOfRange
		}
		code = int(c)
	}
	if !IsNull(msgRaw) {
		if msg, err = Unquote(msgRaw, nil); err != nil {
			return 0, nil, false, err
		}
	}
	return code, msg, true, nil
}
