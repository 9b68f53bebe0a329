package metrics

import (
	"strings"
	"unicode/utf8"
)

// RigName returns the rig part of a miner's authorize user name: the text after the first '.',
// or "" when there is none. RigName("acct.rig1") == "rig1", RigName("acct.rig.1") == "rig.1",
// RigName("acct") == "". Pass its result as NewWorker's rigName.
func RigName(authorizeUser string) string {
	if i := strings.IndexByte(authorizeUser, '.'); i >= 0 {
		return authorizeUser[i+1:]
	}
	return ""
}

// cleanLabel makes s a safe label value: invalid UTF-8 and control characters other than '\n'
// (which the exposition escapes) become U+FFFD, then, when max > 0, the value is cut to at most
// max bytes on a rune boundary. Clean, short inputs are returned as they are, without allocating.
func cleanLabel(s string, max int) string {
	if needsCleaning(s) {
		var b strings.Builder
		b.Grow(len(s))
		for i := 0; i < len(s); {
			r, size := utf8.DecodeRuneInString(s[i:])
			if (r < 0x20 && r != '\n') || r == 0x7f {
				r = utf8.RuneError
			}
			b.WriteRune(r) // an invalid byte decodes as RuneError of size 1 and is written as U+FFFD
			i += size
		}
		s = b.String()
	}
	if max > 0 && len(s) > max {
		s = s[:max]
		for !utf8.ValidString(s) { // s was valid before the cut: at most 3 bytes of a split rune go
			s = s[:len(s)-1]
		}
	}
	return s
}

func needsCleaning(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\n') || c == 0x7f {
			return true
		}
	}
	return !utf8.ValidString(s)
}

// appendLabel appends name="value" to b, escaping value as the text exposition format requires:
// backslash, double quote and newline become \\, \" and \n.
func appendLabel(b []byte, name, value string) []byte {
	b = append(b, name...)
	b = append(b, '=', '"')
	for i := 0; i < len(value); i++ {
		switch c := value[i]; c {
		case '\\':
			b = append(b, '\\', '\\')
		case '"':
			b = append(b, '\\', '"')
		case '\n':
			b = append(b, '\\', 'n')
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
