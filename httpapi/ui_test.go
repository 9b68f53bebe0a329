package httpapi

import (
	"bufio"
	"bytes"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/stratum-proxy/stratum-proxy/store"
)

func newUIServer(t *testing.T) *Server {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "proxy.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return New(Config{Store: st})
}

// uiRequest calls serveUI for method and path; headers are name, value
// pairs. It returns whether serveUI handled the request and the response
// as it would go on the wire (so HEAD shows its missing body).
func uiRequest(t *testing.T, s *Server, method, path string, headers ...string) (bool, *http.Response, string) {
	t.Helper()
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(path)
	for i := 0; i+1 < len(headers); i += 2 {
		ctx.Request.Header.Set(headers[i], headers[i+1])
	}
	handled := s.serveUI(&ctx, path)
	var wire bytes.Buffer
	w := bufio.NewWriter(&wire)
	if err := ctx.Response.Write(w); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(&wire), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s %s: unreadable response: %v", method, path, err)
	}
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	return handled, resp, body.String()
}

func TestServeUIIndex(t *testing.T) {
	s := newUIServer(t)
	for _, path := range []string{"/", "/ui", "/ui/", "/ui/index.html"} {
		handled, resp, body := uiRequest(t, s, "GET", path)
		if !handled || resp.StatusCode != 200 {
			t.Fatalf("GET %s: handled %v status %d", path, handled, resp.StatusCode)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("GET %s: Content-Type %q", path, ct)
		}
		if !strings.Contains(body, `<script src="/ui/app.js"`) || !strings.Contains(body, `href="/ui/style.css"`) {
			t.Errorf("GET %s: body is not the dashboard:\n%.300s", path, body)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q", path, cc)
		}
		if got := resp.Header.Get("Content-Security-Policy"); got != uiCSP {
			t.Errorf("GET %s: Content-Security-Policy %q", path, got)
		}
	}
}

func TestServeUIFiles(t *testing.T) {
	s := newUIServer(t)
	for file, ct := range map[string]string{
		"app.js":    "text/javascript; charset=utf-8",
		"style.css": "text/css; charset=utf-8",
	} {
		handled, resp, body := uiRequest(t, s, "GET", "/ui/"+file)
		if !handled || resp.StatusCode != 200 {
			t.Fatalf("GET /ui/%s: handled %v status %d", file, handled, resp.StatusCode)
		}
		if got := resp.Header.Get("Content-Type"); got != ct {
			t.Errorf("/ui/%s: Content-Type %q, want %q", file, got, ct)
		}
		if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("/ui/%s: X-Content-Type-Options %q", file, got)
		}
		if len(body) < 100 || len(body) != len(uiFiles[file].body) {
			t.Errorf("/ui/%s: body of %d bytes, embedded %d", file, len(body), len(uiFiles[file].body))
		}
		// A revalidation with the ETag gets 304 and no body.
		etag := resp.Header.Get("ETag")
		if etag == "" {
			t.Fatalf("/ui/%s: no ETag", file)
		}
		_, resp, body = uiRequest(t, s, "GET", "/ui/"+file, "If-None-Match", etag)
		if resp.StatusCode != 304 || body != "" {
			t.Errorf("/ui/%s If-None-Match: status %d, body %d bytes", file, resp.StatusCode, len(body))
		}
	}
}

func TestServeUINotFoundAndNotMine(t *testing.T) {
	s := newUIServer(t)
	for _, path := range []string{"/ui/nope.js", "/ui/../handlers.go", "/ui/ui/app.js", "/ui/.hidden"} {
		handled, resp, _ := uiRequest(t, s, "GET", path)
		if !handled || resp.StatusCode != 404 {
			t.Errorf("GET %s: handled %v status %d, want handled 404", path, handled, resp.StatusCode)
		}
		if resp.Header.Get("Content-Security-Policy") != uiCSP {
			t.Errorf("GET %s: 404 without the CSP", path)
		}
	}
	// Paths outside the dashboard are left to the router, untouched.
	for _, path := range []string{"/api/v1/users", "/metrics", "/healthz", "/uix", "/index.html"} {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod("GET")
		ctx.Request.SetRequestURI(path)
		if s.serveUI(&ctx, path) {
			t.Errorf("serveUI handled %s", path)
		}
		if ctx.Response.StatusCode() != 200 || len(ctx.Response.Body()) != 0 || len(ctx.Response.Header.Peek("Content-Security-Policy")) != 0 {
			t.Errorf("serveUI touched the response of %s", path)
		}
	}
}

func TestServeUIHeadAndMethods(t *testing.T) {
	s := newUIServer(t)
	handled, resp, body := uiRequest(t, s, "HEAD", "/")
	if !handled || resp.StatusCode != 200 || body != "" {
		t.Fatalf("HEAD /: handled %v status %d body %q", handled, resp.StatusCode, body)
	}
	if resp.ContentLength != int64(len(uiFiles[uiIndex].body)) {
		t.Errorf("HEAD /: Content-Length %d, want %d", resp.ContentLength, len(uiFiles[uiIndex].body))
	}
	if resp.Header.Get("Content-Security-Policy") != uiCSP || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("HEAD /: headers %v", resp.Header)
	}
	for _, m := range []string{"POST", "PUT", "DELETE"} {
		handled, resp, _ := uiRequest(t, s, m, "/ui/app.js")
		if !handled || resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s /ui/app.js: handled %v status %d Allow %q", m, handled, resp.StatusCode, resp.Header.Get("Allow"))
		}
	}
}

// TestUINoMarkupFromData guards the rule that data reaches the page only
// as text: no HTML-parsing sinks in the script, no inline script or style
// in the page (the CSP would block them anyway), nothing from elsewhere.
func TestUINoMarkupFromData(t *testing.T) {
	js := string(uiFiles["app.js"].body)
	for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "setAttribute('on", "srcdoc"} {
		if strings.Contains(js, sink) {
			t.Errorf("app.js uses %s", sink)
		}
	}
	html := string(uiFiles[uiIndex].body)
	if regexp.MustCompile(`<script>|<style|\sstyle=|\son[a-z]+=`).MatchString(html) {
		t.Error("index.html has inline script, style or an event handler attribute")
	}
	for name, f := range uiFiles {
		if regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/`).Match(f.body) {
			t.Errorf("%s references another origin", name)
		}
	}
}
