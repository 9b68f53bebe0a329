package httpapi

import (
	"bytes"
	"compress/gzip"
	"io"
	"strconv"
	"sync"

	"github.com/valyala/fasthttp"
)

// gzipLevel is the compression level of /metrics: the exposition is
// repetitive text (about 18 MB at 20,000 workers) that BestSpeed already
// shrinks about tenfold, at a fraction of the CPU of the default level.
const gzipLevel = gzip.BestSpeed

// gzipWriters keeps gzip.Writers (about 800 KB of state each) between
// scrapes.
var gzipWriters = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(io.Discard, gzipLevel) // the level is valid
	return w
}}

// serveMetrics writes the exposition of s.cfg.Metrics into the response:
// gzip-compressed when the request's Accept-Encoding allows gzip (Prometheus
// and VictoriaMetrics send it), as is otherwise. The text goes through the
// compressor as it is formatted, so the response holds only the compressed
// page, never the plain one.
func (s *Server) serveMetrics(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType(contentMetrics)
	ctx.Response.Header.Set(fasthttp.HeaderVary, fasthttp.HeaderAcceptEncoding)
	if !acceptsGzip(ctx.Request.Header.Peek(fasthttp.HeaderAcceptEncoding)) {
		s.cfg.Metrics(ctx)
		return
	}
	ctx.Response.Header.Set(fasthttp.HeaderContentEncoding, "gzip")
	zw := gzipWriters.Get().(*gzip.Writer)
	zw.Reset(ctx)
	cw := countingWriter{w: zw}
	s.cfg.Metrics(&cw)
	zw.Close() // writes into the response body: cannot fail
	zw.Reset(io.Discard)
	gzipWriters.Put(zw)
	s.log.Debug().Str("encoding", "gzip").Int64("bytes", cw.n).
		Int("compressed_bytes", len(ctx.Response.Body())).Msg("metrics page")
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// acceptsGzip reports whether an Accept-Encoding header value allows gzip
// (RFC 9110 §12.5.3): "gzip", "x-gzip" or "*" with a q-value above zero.
// An explicit "gzip;q=0" refuses it even after "*".
func acceptsGzip(h []byte) bool {
	star, gz := false, false
	for len(h) > 0 {
		item := h
		if i := bytes.IndexByte(h, ','); i >= 0 {
			item, h = h[:i], h[i+1:]
		} else {
			h = nil
		}
		coding, params, _ := bytes.Cut(item, []byte{';'})
		coding = bytes.TrimSpace(coding)
		ok := qAboveZero(params)
		switch {
		case bytes.EqualFold(coding, []byte("gzip")), bytes.EqualFold(coding, []byte("x-gzip")):
			if !ok {
				return false
			}
			gz = true
		case bytes.Equal(coding, []byte("*")):
			star = ok
		}
	}
	return gz || star
}

// qAboveZero reports whether the parameters after a coding (";q=0.5") leave
// it acceptable: no q, or a q that is not zero.
func qAboveZero(params []byte) bool {
	for len(params) > 0 {
		p := params
		if i := bytes.IndexByte(params, ';'); i >= 0 {
			p, params = params[:i], params[i+1:]
		} else {
			params = nil
		}
		name, val, ok := bytes.Cut(bytes.TrimSpace(p), []byte{'='})
		if !ok || !bytes.EqualFold(bytes.TrimSpace(name), []byte("q")) {
			continue
		}
		q, err := strconv.ParseFloat(string(bytes.TrimSpace(val)), 64)
		return err != nil || q > 0 // a malformed q is ignored
	}
	return true
}
