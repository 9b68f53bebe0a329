package codec

import (
	"bytes"
	"errors"
)

// DefaultMaxLineSize is the longest line NextLine accepts when given no
// limit. The longest real stratum lines are mining.notify with a big
// coinbase and a deep merkle branch: about 1.5 KiB for a busy Bitcoin pool
// (12 branches of 66 bytes plus ~300-byte coinbase halves). 16 KiB leaves
// room for pools with large coinbase outputs while bounding what a peer
// that never sends "\n" can make a connection buffer.
const DefaultMaxLineSize = 16 << 10

// ErrLineTooLong is returned by NextLine when no "\n" ends a line within
// the limit. The connection cannot be resynchronised: drop the peer.
var ErrLineTooLong = errors.New("codec: line too long")

// NextLine returns the first complete, non-blank line in buf without its
// "\n" and without one trailing "\r", and n, the number of bytes of buf it
// consumed (the line, its "\n" and every blank line before it).
//
// A line is blank when it is empty or holds only spaces, tabs and "\r";
// blank lines count in n and are never returned. With no complete line in
// buf, NextLine returns (nil, n, nil) where n counts the skipped blank
// lines: discard n bytes and wait for more data.
//
// max bounds the bytes of one line before its "\n", a trailing "\r"
// included: a line of exactly max bytes is accepted, and ErrLineTooLong is
// returned as soon as max+1 bytes are buffered without a "\n" (n then counts
// the blank lines before the offending line). max <= 0 means
// DefaultMaxLineSize.
//
// The returned line aliases buf. NextLine does not allocate.
func NextLine(buf []byte, max int) (line []byte, n int, err error) {
	if max <= 0 {
		max = DefaultMaxLineSize
	}
	for n < len(buf) {
		rest := buf[n:]
		window := rest
		if len(window) > max { // not max+1, which overflows for max == MaxInt
			window = window[:max+1]
		}
		i := bytes.IndexByte(window, '\n')
		if i < 0 {
			if len(rest) > max {
				return nil, n, ErrLineTooLong
			}
			return nil, n, nil
		}
		line = rest[:i]
		n += i + 1
		if !blank(line) {
			if line[len(line)-1] == '\r' {
				line = line[:len(line)-1]
			}
			return line, n, nil
		}
	}
	return nil, n, nil
}

// blank reports whether line holds only spaces, tabs and "\r".
func blank(line []byte) bool {
	for _, c := range line {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}
