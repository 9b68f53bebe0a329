// Package codec frames and decodes the newline-delimited JSON-RPC lines of
// the Stratum mining protocol, and encodes the lines a proxy sends back.
//
// It is the only place in the proxy that touches raw bytes: the proxy
// package works with Message values and the helpers below. It runs on the
// hot path of the gnet event loops (per frame, per share, per notify
// fan-out), so the frames that dominate traffic decode and encode without
// allocating.
//
// # Basics
//
// Reading: NextLine finds the next complete line in a connection's inbound
// buffer; Decode splits it into a Message whose fields are the raw JSON of
// "id", "params", "result" and "error" plus the unquoted "method":
//
//	for {
//		line, n, err := codec.NextLine(buf, 0)
//		if err != nil {
//			return err // codec.ErrLineTooLong: drop the peer
//		}
//		buf = buf[n:]
//		if line == nil {
//			break // wait for more bytes
//		}
//		if err := codec.Decode(line, &msg); err != nil {
//			// answer with codec.AppendError(dst, nil, codec.CodeParseError, ...)
//			continue
//		}
//		switch string(msg.Method) { // does not allocate
//		case codec.MethodSubmit:
//			params, _ = codec.SplitArray(msg.Params, params[:0])
//			...
//		}
//	}
//
// The values inside Params, Result and Error are taken apart on demand with
// SplitArray, ObjectField, Unquote, ParseFloat, ParseInt, ParseUint32Hex,
// ParseBool, IsNull and ParseError, each of which validates what it reads.
//
// Writing: AppendResult, AppendError, AppendRequest and AppendNotification
// append one complete line, "\n" included, to a caller-owned buffer;
// AppendString, AppendHexString, AppendFloat, AppendInt and AppendUint build
// the params and results that go inside them.
//
// Decoding is strict JSON (RFC 8259, as encoding/json.Valid sees it,
// including its nesting limit of 10000): a line that encoding/json rejects
// is rejected here too, so a peer cannot smuggle something past the proxy
// that the pool would parse differently.
//
// # Caveats
//
// Every slice that Decode, NextLine, SplitArray, ObjectField, Unquote (when
// the string has no escapes) and ParseError return aliases the caller's
// input: it is valid only until that buffer changes. In a gnet handler that
// means until OnTraffic returns or the bytes are discarded. Copy whatever
// must outlive the frame (a job id, a worker name), or re-encode it into an
// output buffer before returning.
//
// A Message is not safe for concurrent use; keep one per event loop or per
// connection and reuse it, which is what makes decoding allocation-free.
//
// Keys are matched exactly as JSON-RPC defines them ("id", not "ID"; after
// unescaping, so "\u0069d" is "id"); when a key repeats, the last one wins.
// Bytes that are not valid UTF-8 inside strings are passed through as they
// are, never replaced: the proxy forwards what the peer sent.
package codec
