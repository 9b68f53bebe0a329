package httpapi

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"path"
	"strings"

	"github.com/valyala/fasthttp"
)

// uiFS holds the operator dashboard: plain HTML, CSS and JavaScript with
// no build step and nothing loaded from elsewhere.
//
//go:embed ui
var uiFS embed.FS

// uiCSP is the Content-Security-Policy of every dashboard file: scripts,
// styles and API calls only from this origin, no inline script or style,
// so a miner-controlled string that ever reached the DOM as markup still
// could not run.
const uiCSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'"

// Dashboard routes.
const (
	uiRoot   = "/"
	uiPrefix = "/ui/"
	uiIndex  = "index.html"
)

// uiFile is one embedded file, ready to send.
type uiFile struct {
	body        []byte
	contentType string
	etag        string
}

// uiFiles maps a file name under ui/ to its answer. Built once at init:
// the files are small and never change while the process runs.
var uiFiles = loadUI()

func loadUI() map[string]uiFile {
	files := map[string]uiFile{}
	err := fs.WalkDir(uiFS, "ui", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := uiFS.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		files[strings.TrimPrefix(p, "ui/")] = uiFile{
			body:        b,
			contentType: uiContentType(p),
			etag:        `"` + hex.EncodeToString(sum[:8]) + `"`,
		}
		return nil
	})
	if err != nil { // the embedded tree is part of the binary: cannot fail
		panic("httpapi: reading embedded ui: " + err.Error())
	}
	return files
}

// uiContentType is the Content-Type of a dashboard file by extension;
// nosniff is sent too, so these must be right.
func uiContentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	case ".ico":
		return "image/x-icon"
	case ".json":
		return "application/json; charset=utf-8"
	}
	return "application/octet-stream"
}

// serveUI answers the dashboard: "/" (and "/ui", "/ui/") with index.html
// and "/ui/<file>" with an embedded file. It reports whether it handled
// the request; false means path is not a dashboard path and the caller
// routes it on. Unknown files under /ui/ get 404 and methods other than
// GET and HEAD get 405, both handled here. The files need no token: they
// hold no data, and the page sends the token with its own API calls.
func (s *Server) serveUI(ctx *fasthttp.RequestCtx, path string) bool {
	var name string
	switch {
	case path == uiRoot || path == "/ui" || path == uiPrefix:
		name = uiIndex
	case strings.HasPrefix(path, uiPrefix):
		name = path[len(uiPrefix):]
	default:
		return false
	}
	// ctx.Error resets the response: headers go on after it.
	if !ctx.IsGet() && !ctx.IsHead() {
		ctx.Error("method "+string(ctx.Method())+" not allowed; use GET or HEAD", fasthttp.StatusMethodNotAllowed)
		ctx.Response.Header.Set(fasthttp.HeaderAllow, "GET, HEAD")
		setUIHeaders(&ctx.Response.Header)
		return true
	}
	f, ok := uiFiles[name]
	if !ok || strings.Contains(name, "/") {
		ctx.Error("404 not found", fasthttp.StatusNotFound)
		setUIHeaders(&ctx.Response.Header)
		return true
	}
	h := &ctx.Response.Header
	setUIHeaders(h)
	h.Set(fasthttp.HeaderCacheControl, "no-cache")
	h.Set(fasthttp.HeaderETag, f.etag)
	if match := string(ctx.Request.Header.Peek(fasthttp.HeaderIfNoneMatch)); match != "" && etagMatches(match, f.etag) {
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		ctx.Response.SkipBody = true
		return true
	}
	ctx.SetContentType(f.contentType)
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.Response.SetBodyRaw(f.body)
	if ctx.IsHead() {
		// The real server drops a HEAD body itself; callers of the
		// handler (tests, other servers) get the same answer.
		ctx.Response.SkipBody = true
	}
	return true
}

// setUIHeaders sets the security headers of every dashboard answer.
func setUIHeaders(h *fasthttp.ResponseHeader) {
	h.Set(fasthttp.HeaderContentSecurityPolicy, uiCSP)
	h.Set(fasthttp.HeaderXContentTypeOptions, "nosniff")
	h.Set(fasthttp.HeaderXFrameOptions, "DENY")
	h.Set(fasthttp.HeaderReferrerPolicy, "no-referrer")
}

// etagMatches reports whether an If-None-Match header lists etag (or is
// "*"). Weak validators match too: the files are byte-identical or not.
func etagMatches(header, etag string) bool {
	for _, part := range strings.Split(header, ",") {
		part = strings.TrimPrefix(strings.TrimSpace(part), "W/")
		if part == "*" || part == etag {
			return true
		}
	}
	return false
}
