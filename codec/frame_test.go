package codec

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
)

func TestNextLine(t *testing.T) {
	f := func(name, buf string, max int, wantLine string, wantN int, wantErr error) {
		t.Helper()
		t.Run(name, func(t *testing.T) {
			b := []byte(buf)
			line, n, err := NextLine(b, max)
			if !errors.Is(err, wantErr) {
				t.Fatalf("NextLine(%q, %d) error = %v, want %v", buf, max, err, wantErr)
			}
			if n != wantN {
				t.Errorf("NextLine(%q, %d) n = %d, want %d", buf, max, n, wantN)
			}
			if wantLine == "<nil>" {
				if line != nil {
					t.Errorf("NextLine(%q, %d) line = %q, want nil", buf, max, line)
				}
				return
			}
			if string(line) != wantLine {
				t.Errorf("NextLine(%q, %d) line = %q, want %q", buf, max, line, wantLine)
			}
			if !within(line, b) {
				t.Errorf("line does not alias buf")
			}
		})
	}
	const none = "<nil>"
	f("empty", "", 0, none, 0, nil)
	f("partial", `{"id":1,"meth`, 0, none, 0, nil)
	f("one line", "{\"id\":1}\n", 0, `{"id":1}`, 9, nil)
	f("crlf", "{\"id\":1}\r\n", 0, `{"id":1}`, 10, nil)
	f("only one cr stripped", "a\r\r\n", 0, "a\r", 4, nil)
	f("two lines", "a\nb\n", 0, "a", 2, nil)
	f("line then partial", "a\nbc", 0, "a", 2, nil)
	f("blank lines skipped", "\n\r\n  \n\t\r\nx\n", 0, "x", 11, nil)
	f("only blank lines", "\n\r\n \n", 0, none, 5, nil)
	f("blank lines then partial", "\n\r\n{\"id\"", 0, none, 3, nil)
	f("partial cr", "abc\r", 0, none, 0, nil)
	f("spaces kept inside", " {} \n", 0, " {} ", 5, nil)
	f("exactly max", "abcd\n", 4, "abcd", 5, nil)
	f("exactly max with cr counts cr", "abc\r\n", 4, "abc", 5, nil)
	f("max plus one", "abcde\n", 4, none, 0, ErrLineTooLong)
	f("cr past max", "abcd\r\n", 4, none, 0, ErrLineTooLong)
	f("max bytes, no newline yet", "abcd", 4, none, 0, nil)
	f("max+1 bytes, no newline", "abcde", 4, none, 0, ErrLineTooLong)
	f("overlong after blank lines", "\n\nabcdefgh", 4, none, 2, ErrLineTooLong)
	f("overlong blank line", "      \n", 4, none, 0, ErrLineTooLong)
	f("short line then overlong", "ab\nabcdefgh", 4, "ab", 3, nil)
	f("default max accepts 16 KiB", strings.Repeat("x", DefaultMaxLineSize)+"\n", 0,
		strings.Repeat("x", DefaultMaxLineSize), DefaultMaxLineSize+1, nil)
	f("default max rejects 16 KiB + 1", strings.Repeat("x", DefaultMaxLineSize+1)+"\n", -1,
		none, 0, ErrLineTooLong)
}

// TestNextLineTranscripts frames a whole captured session fed in chunks of
// every size from 1 byte to one more than the longest line, as TCP may
// deliver it, and gets back exactly the captured lines.
func TestNextLineTranscripts(t *testing.T) {
	lines := loadTranscripts(t)
	var stream []byte
	longest := 0
	for i, l := range lines {
		stream = append(stream, l.line...)
		if i%3 == 0 {
			stream = append(stream, '\r') // some peers send \r\n
		}
		stream = append(stream, '\n')
		if i%7 == 0 {
			stream = append(stream, "\r\n"...) // and stray blank lines
		}
		longest = max(longest, len(l.line))
	}
	for _, chunk := range []int{1, 2, 3, 7, 64, 1000, longest + 1, len(stream)} {
		t.Run(itoa(chunk), func(t *testing.T) {
			var buf []byte
			got := 0
			for off := 0; off < len(stream); off += chunk {
				buf = append(buf, stream[off:min(off+chunk, len(stream))]...)
				for {
					line, n, err := NextLine(buf, 0)
					if err != nil {
						t.Fatal(err)
					}
					if line != nil {
						if !bytes.Equal(line, lines[got].line) {
							t.Fatalf("line %d = %q, want %q", got, line, lines[got].line)
						}
						got++
					}
					buf = buf[n:]
					if line == nil {
						break
					}
				}
			}
			if got != len(lines) || len(buf) != 0 {
				t.Fatalf("framed %d of %d lines, %d bytes left", got, len(lines), len(buf))
			}
		})
	}
}

func TestNextLineHugeMax(t *testing.T) {
	line, n, err := NextLine([]byte("abc\n"), math.MaxInt)
	if string(line) != "abc" || n != 4 || err != nil {
		t.Fatalf("NextLine with max MaxInt = %q, %d, %v", line, n, err)
	}
}
