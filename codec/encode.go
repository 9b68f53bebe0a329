package codec

import (
	"encoding/hex"
	"math"
	"strconv"
)

// The Append functions write into a caller-owned buffer and return it
// extended, in the style of strconv.AppendInt: keep one output buffer per
// connection, pass buf[:0] (or the unsent tail), and they do not allocate
// once it has grown. Every Append*Line-style function (AppendResult,
// AppendError, AppendErrorBytes, AppendRequest, AppendNotification) writes
// one complete line ending in "\n". Raw arguments (id, result, params) are
// copied as they are: pass valid JSON, typically slices of a decoded
// Message or bytes built with the value appenders below.

// appendID appends id, or null when it is empty.
func appendID(dst, id []byte) []byte {
	if len(id) == 0 {
		return append(dst, "null"...)
	}
	return append(dst, id...)
}

// AppendResult appends the response line
//
//	{"id":<id>,"result":<result>,"error":null}\n
//
// An empty id or result is written as null. id is echoed byte for byte, so
// pass the request's Message.ID.
func AppendResult(dst, id, result []byte) []byte {
	dst = append(dst, `{"id":`...)
	dst = appendID(dst, id)
	dst = append(dst, `,"result":`...)
	if len(result) == 0 {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, result...)
	}
	return append(dst, ",\"error\":null}\n"...)
}

// AppendError appends the stratum error response line
//
//	{"id":<id>,"result":null,"error":[<code>,"<msg>",null]}\n
//
// with msg JSON-escaped. An empty id is written as null.
func AppendError(dst, id []byte, code int, msg string) []byte {
	dst = appendErrorHead(dst, id, code)
	dst = AppendStringS(dst, msg)
	return append(dst, ",null]}\n"...)
}

// AppendErrorBytes is AppendError with the message as bytes, for relaying a
// message taken from another line (see ParseError).
func AppendErrorBytes(dst, id []byte, code int, msg []byte) []byte {
	dst = appendErrorHead(dst, id, code)
	dst = AppendString(dst, msg)
	return append(dst, ",null]}\n"...)
}

func appendErrorHead(dst, id []byte, code int) []byte {
	dst = append(dst, `{"id":`...)
	dst = appendID(dst, id)
	dst = append(dst, `,"result":null,"error":[`...)
	dst = strconv.AppendInt(dst, int64(code), 10)
	return append(dst, ',')
}

// AppendRequest appends the request line
//
//	{"id":<id>,"method":"<method>","params":<params>}\n
//
// An empty id is written as null and empty params as [].
func AppendRequest(dst, id []byte, method string, params []byte) []byte {
	dst = append(dst, `{"id":`...)
	dst = appendID(dst, id)
	return appendMethodParams(dst, method, params)
}

// AppendNotification appends the notification line
//
//	{"id":null,"method":"<method>","params":<params>}\n
//
// as pools send mining.notify and mining.set_difficulty. Empty params are
// written as [].
func AppendNotification(dst []byte, method string, params []byte) []byte {
	dst = append(dst, `{"id":null`...)
	return appendMethodParams(dst, method, params)
}

func appendMethodParams(dst []byte, method string, params []byte) []byte {
	dst = append(dst, `,"method":`...)
	dst = AppendStringS(dst, method)
	dst = append(dst, `,"params":`...)
	if len(params) == 0 {
		dst = append(dst, "[]"...)
	} else {
		dst = append(dst, params...)
	}
	return append(dst, "}\n"...)
}

// AppendString appends s as a JSON string: quoted, with '"', '\\' and
// control characters escaped. Unlike encoding/json it leaves '<', '>', '&'
// alone (the output is never embedded in HTML) and passes bytes that are
// not valid UTF-8 through, so a worker name comes back exactly as sent.
func AppendString(dst []byte, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i, c := range s {
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		dst = appendEscapedByte(dst, c)
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// AppendStringS is AppendString for a string.
func AppendStringS(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		dst = appendEscapedByte(dst, c)
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

const hexDigits = "0123456789abcdef"

func appendEscapedByte(dst []byte, c byte) []byte {
	switch c {
	case '"', '\\':
		return append(dst, '\\', c)
	case '\n':
		return append(dst, '\\', 'n')
	case '\r':
		return append(dst, '\\', 'r')
	case '\t':
		return append(dst, '\\', 't')
	case '\b':
		return append(dst, '\\', 'b')
	case '\f':
		return append(dst, '\\', 'f')
	}
	return append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
}

// AppendHexString appends b as a quoted string of lowercase hex digits,
// the form of extranonces, job ids and every hash field in stratum.
func AppendHexString(dst []byte, b []byte) []byte {
	dst = append(dst, '"')
	dst = hex.AppendEncode(dst, b)
	return append(dst, '"')
}

// AppendFloat appends f as a JSON number in its shortest form that reads
// back as the same float64: whole values without exponent or fraction (1,
// 65536), small difficulties in plain decimals (0.01). Like encoding/json,
// it switches to an exponent below 1e-6 and from 1e21 on, where plain
// decimals would get long. NaN and infinities, which JSON cannot express,
// are written as 0, and so is negative zero.
func AppendFloat(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) || f == 0 {
		return append(dst, '0')
	}
	format := byte('f')
	if abs := math.Abs(f); abs < 1e-6 || abs >= 1e21 {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// Shorten a two-digit negative exponent: 1e-07 -> 1e-7.
		n := len(dst)
		if n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

// AppendInt appends i as a JSON number.
func AppendInt(dst []byte, i int64) []byte {
	return strconv.AppendInt(dst, i, 10)
}

// AppendUint appends u as a JSON number.
func AppendUint(dst []byte, u uint64) []byte {
	return strconv.AppendUint(dst, u, 10)
}

// AppendBool appends true or false.
func AppendBool(dst []byte, b bool) []byte {
	return strconv.AppendBool(dst, b)
}
