package codec

import (
	"encoding/binary"
	"unicode/utf16"
	"unicode/utf8"
)

// The scanner validates JSON values in place and reports where they end. It
// never builds anything, so it never allocates. Every function takes the
// buffer and the index of a value's first byte and returns the index just
// past the value; callers check what follows (a delimiter or the end).

// maxDepth is the deepest nesting of arrays and objects accepted. It is the
// limit encoding/json applies, so the two agree on every input; stratum
// lines nest at most four deep.
const maxDepth = 10000

// isSpace reports whether c is JSON whitespace.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

// skipSpace returns the index of the first non-whitespace byte at or after i.
func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// trimSpace returns b without leading and trailing JSON whitespace.
func trimSpace(b []byte) []byte {
	i := skipSpace(b, 0)
	j := len(b)
	for j > i && isSpace(b[j-1]) {
		j--
	}
	return b[i:j]
}

// validValue reports whether b holds exactly one JSON value, with optional
// surrounding whitespace.
func validValue(b []byte) bool {
	i := skipSpace(b, 0)
	end, err := scanValue(b, i, 0)
	return err == nil && skipSpace(b, end) == len(b)
}

// scanValue scans the value starting at b[i]. depth is the number of arrays
// and objects that enclose it.
func scanValue(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return i, ErrInvalidJSON
	}
	switch c := b[i]; {
	case c == '"':
		end, _, err := scanString(b, i)
		return end, err
	case c == '{':
		return scanObject(b, i, depth+1)
	case c == '[':
		return scanArray(b, i, depth+1)
	case c == '-' || c >= '0' && c <= '9':
		return scanNumber(b, i)
	case c == 't':
		return scanLiteral(b, i, "true")
	case c == 'f':
		return scanLiteral(b, i, "false")
	case c == 'n':
		return scanLiteral(b, i, "null")
	}
	return i, ErrInvalidJSON
}

func scanLiteral(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, ErrInvalidJSON
	}
	return i + len(lit), nil
}

// scanObject scans the object whose "{" is at b[i]; depth includes it.
func scanObject(b []byte, i, depth int) (int, error) {
	if depth > maxDepth {
		return i, ErrInvalidJSON
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return i, ErrInvalidJSON
		}
		var err error
		if i, _, err = scanString(b, i); err != nil {
			return i, err
		}
		i = skipSpace(b, i)
		if i >= len(b) || b[i] != ':' {
			return i, ErrInvalidJSON
		}
		if i, err = scanValue(b, skipSpace(b, i+1), depth); err != nil {
			return i, err
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return i, ErrInvalidJSON
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return i + 1, nil
		default:
			return i, ErrInvalidJSON
		}
	}
}

// scanArray scans the array whose "[" is at b[i]; depth includes it.
func scanArray(b []byte, i, depth int) (int, error) {
	if depth > maxDepth {
		return i, ErrInvalidJSON
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for {
		var err error
		if i, err = scanValue(b, i, depth); err != nil {
			return i, err
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return i, ErrInvalidJSON
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case ']':
			return i + 1, nil
		default:
			return i, ErrInvalidJSON
		}
	}
}

// scanNumber scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at b[i].
func scanNumber(b []byte, i int) (int, error) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return i, ErrInvalidJSON
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		i = skipDigits(b, i+1)
	default:
		return i, ErrInvalidJSON
	}
	if i < len(b) && b[i] == '.' {
		j := skipDigits(b, i+1)
		if j == i+1 {
			return j, ErrInvalidJSON
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := skipDigits(b, i)
		if j == i {
			return j, ErrInvalidJSON
		}
		i = j
	}
	return i, nil
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// SWAR constants: one byte value repeated in every byte of a word.
const (
	ones = 0x0101010101010101
	high = 0x8080808080808080
)

// special reports whether any of the 8 bytes in w is '"', '\\' or a control
// character (< 0x20), the only bytes a string scan has to stop at.
//
// (x - ones) &^ x & high is non-zero exactly when some byte of x is zero
// (its false positives only ever sit above a true zero byte), and with
// ones*0x20 in place of ones it flags bytes below 0x20 instead.
func special(w uint64) bool {
	q := w ^ (ones * '"')
	s := w ^ (ones * '\\')
	return ((q-ones)&^q|(s-ones)&^s|(w-ones*0x20)&^w)&high != 0
}

// scanString scans the string whose opening quote is at b[i] and reports
// whether it contains escapes. Hex strings (job ids, coinbase halves,
// merkle branches) are most of a notify's bytes, so the scan skips 8 bytes
// at a time while none of them needs a look.
func scanString(b []byte, i int) (end int, escaped bool, err error) {
	i++
	for {
		for len(b)-i >= 8 && !special(binary.LittleEndian.Uint64(b[i:])) {
			i += 8
		}
		if i >= len(b) {
			return i, escaped, ErrInvalidJSON
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, escaped, nil
		case c == '\\':
			escaped = true
			if i+1 >= len(b) {
				return i, escaped, ErrInvalidJSON
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if len(b)-i < 6 || hex4(b[i+2:i+6]) < 0 {
					return i, escaped, ErrInvalidJSON
				}
				i += 6
			default:
				return i, escaped, ErrInvalidJSON
			}
		case c < 0x20:
			return i, escaped, ErrInvalidJSON
		default:
			i++
		}
	}
}

// hex4 decodes the 4 hex digits of a \u escape, or returns -1.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// unescapeAt decodes the escape sequence at s[i] (a backslash) in an
// already validated string body and returns the rune and the bytes it
// spans. Like encoding/json, a \u surrogate half that does not form a pair
// with the next escape decodes to U+FFFD.
func unescapeAt(s []byte, i int) (rune, int) {
	switch s[i+1] {
	case 'b':
		return '\b', 2
	case 'f':
		return '\f', 2
	case 'n':
		return '\n', 2
	case 'r':
		return '\r', 2
	case 't':
		return '\t', 2
	case 'u':
		r := hex4(s[i+2:])
		if !utf16.IsSurrogate(r) {
			return r, 6
		}
		if len(s)-i >= 12 && s[i+6] == '\\' && s[i+7] == 'u' {
			if d := utf16.DecodeRune(r, hex4(s[i+8:])); d != utf8.RuneError {
				return d, 12
			}
		}
		return utf8.RuneError, 6
	}
	return rune(s[i+1]), 2 // '"', '\\' or '/'
}

// appendUnescaped appends the decoded form of the validated string body s.
func appendUnescaped(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && s[j] != '\\' {
			j++
		}
		dst = append(dst, s[i:j]...)
		if j == len(s) {
			break
		}
		r, n := unescapeAt(s, j)
		dst = utf8.AppendRune(dst, r)
		i = j + n
	}
	return dst
}

// equalUnescaped reports whether the validated string body s, once
// unescaped, equals key.
func equalUnescaped(s []byte, key string) bool {
	k := 0
	for i := 0; i < len(s); {
		if s[i] != '\\' {
			if k >= len(key) || key[k] != s[i] {
				return false
			}
			i++
			k++
			continue
		}
		r, n := unescapeAt(s, i)
		var buf [utf8.UTFMax]byte
		w := utf8.EncodeRune(buf[:], r)
		if len(key)-k < w || key[k:k+w] != string(buf[:w]) {
			return false
		}
		i += n
		k += w
	}
	return k == len(key)
}

// keyIs reports whether the key body s (escaped tells whether it holds
// escapes) names key.
func keyIs(s []byte, escaped bool, key string) bool {
	if !escaped {
		return string(s) == key
	}
	return equalUnescaped(s, key)
}

// elemIter walks the elements of an array whose "[" has been consumed.
// After the last element, i is just past the "]".
type elemIter struct {
	b     []byte
	i     int // the next element, or the "," or "]" after the previous one
	first bool
}

func newElemIter(b []byte, open int) elemIter {
	return elemIter{b: b, i: skipSpace(b, open+1), first: true}
}

// next returns the next element, ok=false after the last one.
func (it *elemIter) next() (elem []byte, ok bool, err error) {
	b, i := it.b, it.i
	if i >= len(b) {
		return nil, false, ErrInvalidJSON
	}
	if b[i] == ']' {
		it.i = i + 1
		return nil, false, nil
	}
	if !it.first {
		if b[i] != ',' {
			return nil, false, ErrInvalidJSON
		}
		i = skipSpace(b, i+1)
	}
	it.first = false
	end, err := scanValue(b, i, 1)
	if err != nil {
		return nil, false, err
	}
	it.i = skipSpace(b, end)
	return b[i:end:end], true, nil
}

// memberIter walks the members of an object whose "{" has been consumed.
// After the last member, i is just past the "}".
type memberIter struct {
	b     []byte
	i     int // the next key, or the "," or "}" after the previous value
	first bool
}

func newMemberIter(b []byte, open int) memberIter {
	return memberIter{b: b, i: skipSpace(b, open+1), first: true}
}

// next returns the next member: its key body (between the quotes, still
// escaped when esc is true) and its raw value; ok=false after the last one.
func (it *memberIter) next() (key []byte, esc bool, val []byte, ok bool, err error) {
	b, i := it.b, it.i
	if i >= len(b) {
		return nil, false, nil, false, ErrInvalidJSON
	}
	if b[i] == '}' {
		it.i = i + 1
		return nil, false, nil, false, nil
	}
	if !it.first {
		if b[i] != ',' {
			return nil, false, nil, false, ErrInvalidJSON
		}
		i = skipSpace(b, i+1)
	}
	it.first = false
	if i >= len(b) || b[i] != '"' {
		return nil, false, nil, false, ErrInvalidJSON
	}
	ke, esc, err := scanString(b, i)
	if err != nil {
		return nil, false, nil, false, err
	}
	key = b[i+1 : ke-1]
	i = skipSpace(b, ke)
	if i >= len(b) || b[i] != ':' {
		return nil, false, nil, false, ErrInvalidJSON
	}
	vs := skipSpace(b, i+1)
	ve, err := scanValue(b, vs, 1)
	if err != nil {
		return nil, false, nil, false, err
	}
	it.i = skipSpace(b, ve)
	return key, esc, b[vs:ve:ve], true, nil
}
