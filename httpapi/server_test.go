package httpapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/stratum-proxy/stratum-proxy/store"
)

const (
	testPool  = "127.0.0.1:3333"
	testPool2 = "127.0.0.1:4444"
	// Distinctive passwords searched for in every response and log line.
	pwPrimary = "Primary-PW-7f3a9c"
	pwBackup  = "Backup-PW-1e8d42"
)

var nameRE = regexp.MustCompile(`^[0-9a-f]{16}$`)

// syncBuffer is a log sink safe for fasthttp's concurrent goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

type testServer struct {
	url    string
	client *http.Client
	st     *store.DB
	logs   *syncBuffer
	// seen collects every response (status line, headers, body) for the
	// password leak check.
	mu   sync.Mutex
	seen bytes.Buffer
	// token is sent as the bearer token by do unless a request sets its
	// own Authorization header; "" sends none.
	token string
}

// start runs a real server on 127.0.0.1:0 over a real bbolt store.
func start(t *testing.T, mod func(*Config)) *testServer {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "proxy.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	for _, p := range []string{testPool, testPool2} {
		if err := st.PutPool(store.Pool{Addr: p, Algorithm: "sha256"}); err != nil {
			t.Fatal(err)
		}
	}
	tr := &http.Transport{}
	ts := &testServer{st: st, logs: &syncBuffer{}, client: &http.Client{Transport: tr}}
	cfg := Config{Store: st, Log: zerolog.New(ts.logs).Level(zerolog.DebugLevel), AuthToken: defaultTestToken}
	if mod != nil {
		mod(&cfg)
	}
	if cfg.AuthToken == defaultTestToken {
		ts.token = defaultTestToken
	}
	srv := New(cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.url = "http://" + ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		// fasthttp counts a connection idle only after its first request
		// (or 5s), so close the client's spare connections first.
		tr.CloseIdleConnections()
		if err := srv.Shutdown(); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve returned %v after Shutdown", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after Shutdown")
		}
	})
	return ts
}

type answer struct {
	status int
	header http.Header
	body   string
}

// do sends a request; body may be nil. Headers are name, value pairs.
func (ts *testServer) do(t *testing.T, method, path string, body io.Reader, headers ...string) answer {
	t.Helper()
	req, err := http.NewRequest(method, ts.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	if ts.token != "" && req.Header.Get("Authorization") == "" {
		req.Header.Set("Authorization", "Bearer "+ts.token)
	}
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	ts.mu.Lock()
	fmt.Fprintf(&ts.seen, "%s %v\n%s\n", resp.Status, resp.Header, b)
	ts.mu.Unlock()
	return answer{resp.StatusCode, resp.Header, string(b)}
}

func (ts *testServer) post(t *testing.T, body string) answer {
	t.Helper()
	return ts.do(t, http.MethodPost, "/api/v1/users", strings.NewReader(body), "Content-Type", "application/json")
}

// reg decodes a registration answer and checks its shape.
func reg(t *testing.T, a answer) errorBody {
	t.Helper()
	var r errorBody
	if err := json.Unmarshal([]byte(a.body), &r); err != nil {
		t.Fatalf("answer %d %q is not JSON: %v", a.status, a.body, err)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	return r
}

func body(pool, user, password string) string {
	return fmt.Sprintf(`{"pool":%q,"user":%q,"password":%q}`, pool, user, password)
}

func TestRegister(t *testing.T) {
	ts := start(t, nil)

	a := ts.post(t, body(testPool, "wallet.rig1", pwPrimary))
	r := reg(t, a)
	if a.status != http.StatusCreated || !nameRE.MatchString(r.Name) || r.Error != "" || !strings.Contains(a.body, `"error":""`) {
		t.Fatalf("register: %d %s", a.status, a.body)
	}
	if loc := a.header.Get("Location"); loc != "/api/v1/users/"+r.Name {
		t.Errorf("Location %q", loc)
	}
	name := r.Name

	// The same account again, by POST and by PUT: 200, same name.
	for _, method := range []string{http.MethodPost, http.MethodPut} {
		a := ts.do(t, method, "/api/v1/users", strings.NewReader(body(testPool, "wallet.rig1", pwPrimary)), "Content-Type", "application/json")
		if r := reg(t, a); a.status != http.StatusOK || r.Name != name || r.Error != "" {
			t.Errorf("%s again: %d %s; want 200 %s", method, a.status, a.body, name)
		}
	}
	// A different password is a different account.
	a = ts.post(t, body(testPool, "wallet.rig1", pwPrimary+"2"))
	if r := reg(t, a); a.status != http.StatusCreated || r.Name == name {
		t.Errorf("different password: %d %s", a.status, a.body)
	}
	// Empty and omitted passwords are allowed (pools that take anything).
	a = ts.post(t, `{"pool":"127.0.0.1:3333","user":"nopw"}`)
	if a.status != http.StatusCreated {
		t.Errorf("omitted password: %d %s", a.status, a.body)
	}
	a = ts.post(t, `{"pool":"127.0.0.1:3333","user":"nopw","password":""}`)
	if a.status != http.StatusOK {
		t.Errorf("empty password after omitted one: %d %s; want the same account", a.status, a.body)
	}
	// curl -d without -H sends a form content type; the README relies on it.
	a = ts.do(t, http.MethodPost, "/api/v1/users", strings.NewReader(body(testPool, "curl", "x")),
		"Content-Type", "application/x-www-form-urlencoded")
	if a.status != http.StatusCreated {
		t.Errorf("curl-style content type: %d %s", a.status, a.body)
	}
	a = ts.do(t, http.MethodPost, "/api/v1/users", strings.NewReader(body(testPool, "notype", "x")))
	if a.status != http.StatusCreated {
		t.Errorf("no content type: %d %s", a.status, a.body)
	}
}

func TestRegisterBackups(t *testing.T) {
	ts := start(t, nil)
	a := ts.post(t, `{"pool":"127.0.0.1:3333","user":"main","password":"`+pwPrimary+`",
		"backups":[{"pool":"127.0.0.1:4444"},{"pool":"127.0.0.1:4444","user":"other","password":"`+pwBackup+`"},{"pool":"127.0.0.1:3333","password":""}]}`)
	r := reg(t, a)
	if a.status != http.StatusCreated {
		t.Fatalf("register with backups: %d %s", a.status, a.body)
	}
	u, ok := ts.st.User(r.Name)
	if !ok || len(u.Backups) != 3 {
		t.Fatalf("stored %+v", u)
	}
	want := []struct{ pool, user, pw string }{
		{testPool2, "main", pwPrimary}, // user and password inherited
		{testPool2, "other", pwBackup},
		{testPool, "main", ""}, // user inherited, empty password kept
	}
	for i, w := range want {
		b := u.Backups[i]
		if b.Pool != w.pool || b.User != w.user || b.Password.Reveal() != w.pw {
			t.Errorf("backup %d = %s %s %q; want %+v", i, b.Pool, b.User, b.Password.Reveal(), w)
		}
	}
}

// TestReRegisterUpdatesBackups: the same primary registered again with a
// new backup list answers 200 with the same name and "updated":true, and
// the listing shows the new backups (they used to be dropped silently).
func TestReRegisterUpdatesBackups(t *testing.T) {
	ts := start(t, nil)
	primary := `"pool":"127.0.0.1:3333","user":"re","password":"` + pwPrimary + `"`
	a := ts.post(t, `{`+primary+`,"backups":[{"pool":"127.0.0.1:4444"}]}`)
	name := reg(t, a).Name
	if a.status != http.StatusCreated || strings.Contains(a.body, "updated") {
		t.Fatalf("register: %d %s", a.status, a.body)
	}
	backups := func() []accountView {
		t.Helper()
		var u userView
		if a := ts.do(t, http.MethodGet, "/api/v1/users/"+name, nil); json.Unmarshal([]byte(a.body), &u) != nil {
			t.Fatalf("GET user: %d %s", a.status, a.body)
		}
		return u.Backups
	}
	f := func(b string, wantUpdated bool, want ...accountView) {
		t.Helper()
		a := ts.post(t, `{`+primary+b+`}`)
		r := reg(t, a)
		if a.status != http.StatusOK || r.Name != name || r.Error != "" || r.Updated != wantUpdated {
			t.Errorf("re-register with %q: %d %s; want 200, the same name, updated %v", b, a.status, a.body, wantUpdated)
		}
		if got := backups(); !slices.Equal(got, want) {
			t.Errorf("after re-register with %q: backups %+v; want %+v", b, got, want)
		}
	}
	f(``, false, accountView{testPool2, "re"}) // no backups field: kept
	f(`,"backups":[{"pool":"127.0.0.1:3333","user":"b","password":"`+pwBackup+`"},{"pool":"127.0.0.1:4444"}]`, true,
		accountView{testPool, "b"}, accountView{testPool2, "re"})
	f(`,"backups":[{"pool":"127.0.0.1:3333","user":"b","password":"`+pwBackup+`"},{"pool":"127.0.0.1:4444"}]`, false,
		accountView{testPool, "b"}, accountView{testPool2, "re"}) // the same list again
	f(`,"backups":[]`, true) // an empty list removes them

	if u, _ := ts.st.User(name); u.Created.IsZero() || len(ts.st.Users()) != 1 {
		t.Errorf("re-registrations made %d users", len(ts.st.Users()))
	}
	logs := ts.logs.String()
	if !strings.Contains(logs, "user backups updated") {
		t.Errorf("no log line for the update:\n%s", logs)
	}
	ts.mu.Lock()
	seen := ts.seen.String()
	ts.mu.Unlock()
	for _, pw := range []string{pwPrimary, pwBackup} {
		if strings.Contains(logs, pw) || strings.Contains(seen, pw) {
			t.Errorf("password %q leaked into a response or the log", pw)
		}
	}
}

func TestRegisterErrors(t *testing.T) {
	ts := start(t, nil)
	f := func(status int, msg, contentType, b string) {
		t.Helper()
		a := ts.do(t, http.MethodPost, "/api/v1/users", strings.NewReader(b), "Content-Type", contentType)
		r := reg(t, a)
		if a.status != status || r.Name != "" || !strings.Contains(r.Error, msg) || !strings.Contains(a.body, `"name":""`) {
			t.Errorf("POST %s: %d %s; want %d with %q", b, a.status, a.body, status, msg)
		}
	}
	const js = "application/json"
	f(422, `unknown pool "127.0.0.1:1"`, js, body("127.0.0.1:1", "u", "x"))
	f(422, "backup 1", js, `{"pool":"127.0.0.1:3333","user":"u","backups":[{"pool":"nowhere.example:1"}]}`)
	f(400, "pool is required", js, `{"user":"u","password":"x"}`)
	f(400, "user is required", js, `{"pool":"127.0.0.1:3333","password":"x"}`)
	f(400, "user is required", js, `{"pool":"127.0.0.1:3333","user":""}`)
	f(400, "backup 1: pool is required", js, `{"pool":"127.0.0.1:3333","user":"u","backups":[{"user":"b"}]}`)
	f(400, "host:port", js, body("no-port", "u", "x"))
	f(400, "backups", js, `{"pool":"127.0.0.1:3333","user":"u","backups":[`+strings.Repeat(`{"pool":"127.0.0.1:4444"},`, store.MaxBackups)+`{"pool":"127.0.0.1:4444"}]}`)
	f(400, "malformed JSON", js, `{not json`)
	f(400, "malformed JSON", js, `{"pool":"127.0.0.1:3333","user":"u"`)
	f(400, "data after the object", js, body(testPool, "u", "x")+`{}`)
	f(400, `unknown field "passwd"`, js, `{"pool":"127.0.0.1:3333","user":"u","passwd":"x"}`)
	f(400, `field "password" must be a string`, js, `{"pool":"127.0.0.1:3333","user":"u","password":123}`)
	f(400, `field "backups" must be a list`, js, `{"pool":"127.0.0.1:3333","user":"u","backups":{}}`)
	f(400, "JSON object", js, `["127.0.0.1:3333","u","x"]`)
	f(400, "JSON object", "application/x-www-form-urlencoded", `pool=127.0.0.1:3333&user=u&password=x`)
	f(400, "empty body", js, ``)
	f(415, "content type", "multipart/form-data; boundary=x", "--x\r\n\r\n--x--\r\n")
	f(415, "content type", "application/xml", `<user/>`)
	f(415, "content type", "not a type", body(testPool, "u", "x"))

	// Wrong methods and paths under /api/ answer in the same JSON shape.
	for _, c := range []struct {
		method, path string
		status       int
	}{
		{http.MethodDelete, "/api/v1/users", 405},
		{http.MethodPatch, "/api/v1/pools", 405},
		{http.MethodGet, "/api/v1/nothing", 404},
		{http.MethodGet, "/api/v2/users", 404},
		{http.MethodGet, "/api/v1/users/a/b", 404},
	} {
		a := ts.do(t, c.method, c.path, nil)
		if r := reg(t, a); a.status != c.status || r.Error == "" {
			t.Errorf("%s %s: %d %s; want %d", c.method, c.path, a.status, a.body, c.status)
		}
		if c.status == 405 && a.header.Get("Allow") == "" {
			t.Errorf("%s %s: 405 without Allow", c.method, c.path)
		}
	}
	if n := len(ts.st.Users()); n != 0 {
		t.Errorf("failed requests stored %d users", n)
	}
}

// rawPost sends POST /api/v1/users by hand, the header block with the
// extra header lines hdr, then exactly body, and reads the answer.
//
// Oversized bodies are sent this way because the server refuses them
// before reading them all, answers 413 and closes. If the client is still
// writing (net/http writes the whole body), bytes arrive that the server
// never reads, and the kernel answers a close with unread data by a reset,
// which can discard the 413 before the client reads it: the test failed
// with "write: connection reset by peer". Sent here, the request stops
// exactly where the server must decide (after the headers for a
// Content-Length over the limit, after the chunk-size line that crosses it
// for a chunked body), so the server has read everything sent and closes
// cleanly; a server that wanted more before answering would fail the test
// by its deadline instead.
func (ts *testServer) rawPost(t *testing.T, hdr, body string) answer {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := "POST /api/v1/users HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n" + hdr + "\r\n" + body
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatalf("raw POST: write: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("raw POST: read the answer: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("raw POST: read the answer body: %v", err)
	}
	ts.mu.Lock()
	fmt.Fprintf(&ts.seen, "%s %v\n%s\n", resp.Status, resp.Header, b)
	ts.mu.Unlock()
	return answer{resp.StatusCode, resp.Header, string(b)}
}

// chunked returns a chunked body: chunks, then the terminating chunk.
func chunked(chunks ...string) string {
	var b strings.Builder
	for _, c := range chunks {
		fmt.Fprintf(&b, "%x\r\n%s\r\n", len(c), c)
	}
	return b.String() + "0\r\n\r\n"
}

// chunkedOver returns the start of a chunked body: first as one chunk
// (within limit), then only the size line of a chunk that takes the body
// one byte past limit.
func chunkedOver(first string, limit int) string {
	return fmt.Sprintf("%x\r\n%s\r\n%x\r\n", len(first), first, limit-len(first)+1)
}

func TestBodyLimit(t *testing.T) {
	ts := start(t, nil)
	valid := body(testPool, "big", "x")
	tooLarge := func(what string, a answer) {
		t.Helper()
		if r := reg(t, a); a.status != http.StatusRequestEntityTooLarge || r.Name != "" || !strings.Contains(r.Error, "larger than") {
			t.Errorf("%s: %d %s; want 413", what, a.status, a.body)
		}
	}

	// Exactly the limit: padded with whitespace, still accepted.
	under := valid + strings.Repeat(" ", DefaultMaxBodySize-len(valid))
	if a := ts.post(t, under); a.status != http.StatusCreated {
		t.Errorf("body of exactly %d bytes: %d %s", len(under), a.status, a.body)
	}
	// The same, chunked: the limit counts the body, not the chunking.
	first := body(testPool, "big2", "x")
	first += strings.Repeat(" ", DefaultMaxBodySize-len(first)-1)
	if a := ts.rawPost(t, "Transfer-Encoding: chunked\r\n", chunked(first, " ")); a.status != http.StatusCreated {
		t.Errorf("chunked body of %d bytes: %d %s", DefaultMaxBodySize, a.status, a.body)
	}

	// One byte over, announced by Content-Length: refused from the header.
	over := body(testPool, "over", "x") + strings.Repeat(" ", DefaultMaxBodySize)
	tooLarge("Content-Length over the limit", ts.rawPost(t, fmt.Sprintf("Content-Length: %d\r\n", DefaultMaxBodySize+1), ""))
	// Without Content-Length (chunked), the limit holds while reading: the
	// first chunk is read, the one that would cross the limit is refused.
	tooLarge("chunked body over the limit", ts.rawPost(t, "Transfer-Encoding: chunked\r\n", chunkedOver(over[:DefaultMaxBodySize-10], DefaultMaxBodySize)))
	for _, u := range ts.st.Users() {
		if u.User == "over" {
			t.Error("an oversized registration was stored")
		}
	}

	// A smaller configured limit.
	small := start(t, func(c *Config) { c.MaxBodySize = 100 })
	tooLarge("MaxBodySize 100, Content-Length 101", small.rawPost(t, "Content-Length: 101\r\n", ""))
	tooLarge("MaxBodySize 100, chunked", small.rawPost(t, "Transfer-Encoding: chunked\r\n", chunkedOver(valid, 100)))
	if a := small.post(t, valid); a.status != http.StatusCreated {
		t.Errorf("MaxBodySize 100, small body: %d %s", a.status, a.body)
	}
}

func TestListings(t *testing.T) {
	ts := start(t, nil)
	a := ts.post(t, `{"pool":"127.0.0.1:3333","user":"lister","password":"`+pwPrimary+`","backups":[{"pool":"127.0.0.1:4444","password":"`+pwBackup+`"}]}`)
	name := reg(t, a).Name

	a = ts.do(t, http.MethodGet, "/api/v1/users", nil)
	var list struct {
		Users []userView `json:"users"`
	}
	if err := json.Unmarshal([]byte(a.body), &list); err != nil || a.status != 200 || len(list.Users) != 1 {
		t.Fatalf("GET users: %d %s %v", a.status, a.body, err)
	}
	u := list.Users[0]
	if u.Name != name || u.Pool != testPool || u.User != "lister" || len(u.Backups) != 1 ||
		u.Backups[0] != (accountView{Pool: testPool2, User: "lister"}) || u.Created.IsZero() {
		t.Errorf("listed %+v", u)
	}
	if strings.Contains(a.body, "password") {
		t.Errorf("user listing has a password field: %s", a.body)
	}

	a = ts.do(t, http.MethodGet, "/api/v1/users/"+name, nil)
	var one userView
	if err := json.Unmarshal([]byte(a.body), &one); err != nil || a.status != 200 || one.Name != name || one.LastSeen != nil {
		t.Errorf("GET user: %d %s %v", a.status, a.body, err)
	}
	if a := ts.do(t, http.MethodGet, "/api/v1/users/"+name+"/", nil); a.status != 200 {
		t.Errorf("trailing slash: %d", a.status)
	}
	a = ts.do(t, http.MethodGet, "/api/v1/users/0000000000000000", nil)
	if r := reg(t, a); a.status != 404 || r.Error != "unknown user" {
		t.Errorf("unknown user: %d %s", a.status, a.body)
	}

	a = ts.do(t, http.MethodGet, "/api/v1/pools", nil)
	var pools struct {
		Pools []store.Pool `json:"pools"`
	}
	if err := json.Unmarshal([]byte(a.body), &pools); err != nil || a.status != 200 {
		t.Fatalf("GET pools: %d %v", a.status, err)
	}
	found := map[string]string{}
	for _, p := range pools.Pools {
		found[p.Addr] = p.Algorithm
	}
	if found[testPool] != "sha256" || found["btc.f2pool.com:3333"] != "sha256" || found["pool.supportxmr.com:3333"] != "randomx" {
		t.Errorf("pools listing misses entries (%d pools)", len(pools.Pools))
	}

	a = ts.do(t, http.MethodGet, "/api/v1/algorithms", nil)
	var algos struct {
		Algorithms []store.Algorithm `json:"algorithms"`
	}
	if err := json.Unmarshal([]byte(a.body), &algos); err != nil || a.status != 200 || len(algos.Algorithms) < 8 {
		t.Fatalf("GET algorithms: %d %s %v", a.status, a.body, err)
	}
	if al := algos.Algorithms[len(algos.Algorithms)-1]; al.Name == "" || al.Divider == 0 {
		t.Errorf("algorithm %+v", al)
	}
	if !strings.Contains(a.body, `"name":"sha256","aliases":["sha256d"],"divider":1`) {
		t.Errorf("sha256 entry: %s", a.body)
	}

	if a := ts.do(t, http.MethodHead, "/api/v1/pools", nil); a.status != 200 || a.body != "" {
		t.Errorf("HEAD pools: %d %q", a.status, a.body)
	}
	if a := ts.do(t, http.MethodGet, "/nothing", nil); a.status != 404 {
		t.Errorf("GET /nothing: %d", a.status)
	}
}

func TestAuthToken(t *testing.T) {
	const token = "s3cret-token"
	ts := start(t, func(c *Config) {
		c.AuthToken = token
		c.Metrics = func(w io.Writer) { io.WriteString(w, "up 1\n") }
	})
	for _, c := range []struct {
		header string
		status int
	}{
		{"", 401},
		{"Bearer wrong", 401},
		{"Bearer " + token + "x", 401},
		{"Basic " + token, 401},
		{token, 401},
		{"Bearer " + token, 200},
		{"bearer " + token, 200},
	} {
		var hdr []string
		if c.header != "" {
			hdr = []string{"Authorization", c.header}
		}
		a := ts.do(t, http.MethodGet, "/api/v1/pools", nil, hdr...)
		if a.status != c.status {
			t.Errorf("Authorization %q: %d; want %d", c.header, a.status, c.status)
		}
		if c.status == 401 {
			if r := reg(t, a); r.Error == "" || a.header.Get("WWW-Authenticate") == "" {
				t.Errorf("401 answer: %s %v", a.body, a.header)
			}
		}
	}
	// Registration stays open without the token, as in the original.
	a := ts.do(t, http.MethodPost, "/api/v1/users", strings.NewReader(body(testPool, "u", "x")))
	if a.status != 201 || len(ts.st.Users()) != 1 {
		t.Errorf("unauthenticated registration: %d, %d users", a.status, len(ts.st.Users()))
	}
	for _, path := range []string{"/metrics", "/healthz"} {
		if a := ts.do(t, http.MethodGet, path, nil); a.status != 200 {
			t.Errorf("%s without token: %d", path, a.status)
		}
	}
	if strings.Contains(ts.logs.String(), token) {
		t.Error("the token reached the log")
	}
}

func TestMetricsAndHealth(t *testing.T) {
	var healthErr error
	var mu sync.Mutex
	ts := start(t, func(c *Config) {
		c.Metrics = func(w io.Writer) { io.WriteString(w, "# HELP up Test.\n# TYPE up gauge\nup 1\n") }
		c.Health = func() error { mu.Lock(); defer mu.Unlock(); return healthErr }
	})
	a := ts.do(t, http.MethodGet, "/metrics", nil)
	if a.status != 200 || a.body != "# HELP up Test.\n# TYPE up gauge\nup 1\n" ||
		a.header.Get("Content-Type") != "text/plain; version=0.0.4; charset=utf-8" {
		t.Errorf("/metrics: %d %q %q", a.status, a.header.Get("Content-Type"), a.body)
	}
	if a := ts.do(t, http.MethodGet, "/healthz", nil); a.status != 200 || a.body != "ok\n" {
		t.Errorf("/healthz: %d %q", a.status, a.body)
	}
	mu.Lock()
	healthErr = fmt.Errorf("no upstream")
	mu.Unlock()
	if a := ts.do(t, http.MethodGet, "/healthz", nil); a.status != 503 || !strings.Contains(a.body, "no upstream") {
		t.Errorf("/healthz unhealthy: %d %q", a.status, a.body)
	}
	if a := ts.do(t, http.MethodPost, "/metrics", nil); a.status != 405 {
		t.Errorf("POST /metrics: %d", a.status)
	}

	plain := start(t, nil)
	if a := plain.do(t, http.MethodGet, "/metrics", nil); a.status != 404 {
		t.Errorf("/metrics without Config.Metrics: %d", a.status)
	}
	if a := plain.do(t, http.MethodGet, "/healthz", nil); a.status != 200 || a.body != "ok\n" {
		t.Errorf("/healthz without Config.Health: %d %q", a.status, a.body)
	}
}

// TestPasswordsNeverLeak drives every endpoint, including failing
// requests that carry a password, and searches every response and the
// debug log for the passwords.
func TestPasswordsNeverLeak(t *testing.T) {
	ts := start(t, func(c *Config) { c.Metrics = func(w io.Writer) { io.WriteString(w, "up 1\n") } })
	name := reg(t, ts.post(t, `{"pool":"127.0.0.1:3333","user":"leak","password":"`+pwPrimary+`",
		"backups":[{"pool":"127.0.0.1:4444","password":"`+pwBackup+`"}]}`)).Name
	ts.post(t, `{"pool":"127.0.0.1:3333","user":"leak","password":"`+pwPrimary+`"}`)                          // 200
	ts.post(t, `{"pool":"127.0.0.1:1","user":"leak","password":"`+pwPrimary+`"}`)                             // unknown pool
	ts.post(t, `{"pool":"127.0.0.1:3333","user":"leak","passwd":"`+pwPrimary+`"}`)                            // unknown field
	ts.post(t, `{"pool":"127.0.0.1:3333","user":"leak","password":"`+pwPrimary+`" garbage`)                   // syntax
	ts.post(t, `{"pool":"127.0.0.1:3333","user":"leak","password":"`+pwPrimary+`"}`+pwPrimary)                // trailing
	ts.post(t, `{"pool":"127.0.0.1:3333","user":"","password":"`+pwPrimary+`"}`)                              // missing user
	ts.post(t, `{"pool":"127.0.0.1:3333","user":"leak","password":"`+pwPrimary+strings.Repeat("x", 300)+`"}`) // too long
	// Oversized, the password in the part the server reads (see rawPost).
	ts.rawPost(t, "Transfer-Encoding: chunked\r\n", chunkedOver(`{"pool":"127.0.0.1:3333","user":"leak","password":"`+pwPrimary+`"}`, DefaultMaxBodySize))
	for _, p := range []string{"/api/v1/users", "/api/v1/users/" + name, "/api/v1/pools", "/api/v1/algorithms", "/metrics", "/healthz"} {
		ts.do(t, http.MethodGet, p, nil)
	}
	ts.do(t, http.MethodGet, "/api/v1/users?password="+pwPrimary, nil, "X-Password", pwPrimary)

	ts.mu.Lock()
	seen := ts.seen.String()
	ts.mu.Unlock()
	logs := ts.logs.String()
	if !strings.Contains(seen, name) || !strings.Contains(logs, "http request") || !strings.Contains(logs, "user registered") {
		t.Fatalf("sanity: responses or logs were not captured\nlogs:\n%s", logs)
	}
	for _, pw := range []string{pwPrimary, pwBackup} {
		if strings.Contains(seen, pw) {
			t.Errorf("password %q in a response:\n%s", pw, seen)
		}
		if strings.Contains(logs, pw) {
			t.Errorf("password %q in the log:\n%s", pw, logs)
		}
	}
}

// panicStore panics on Users, to show one bad request does not take the
// process down.
type panicStore struct{ store.Store }

func (panicStore) Users() []store.User { panic("boom") }

func TestPanicRecovery(t *testing.T) {
	ps := start(t, func(c *Config) { c.Store = panicStore{c.Store} })
	a := ps.do(t, http.MethodGet, "/api/v1/users", nil)
	if r := reg(t, a); a.status != 500 || r.Error != "internal error" {
		t.Errorf("panicking handler: %d %s", a.status, a.body)
	}
	if a := ps.do(t, http.MethodGet, "/api/v1/pools", nil); a.status != 200 {
		t.Errorf("after a panic: %d", a.status)
	}
	if !strings.Contains(ps.logs.String(), "panicked") {
		t.Error("panic not logged")
	}
}

func TestShutdown(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "proxy.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	// Shutdown before Serve: Serve returns nil at once.
	srv := New(Config{Store: st})
	if err := srv.Shutdown(); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after Shutdown = %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Serve after Shutdown did not return")
	}

	// ListenAndServe on a given address, with a keep-alive connection open.
	ln2, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln2.Addr().String()
	ln2.Close()
	srv = New(Config{Store: st, Addr: addr})
	go func() { done <- srv.ListenAndServe() }()
	var resp *http.Response
	for i := 0; i < 100; i++ {
		if resp, err = http.Get("http://" + addr + "/healthz"); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	start := time.Now()
	if err := srv.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("ListenAndServe after Shutdown = %v", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Shutdown with an idle keep-alive connection took %v", took)
	}
}

func TestNewWithoutStorePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("New without a Store did not panic")
		}
	}()
	New(Config{})
}

// RegisterRate caps registrations per client address: past the burst a
// registration gets 429 with Retry-After, nothing is stored, OnRateLimited
// counts it, and listings are not limited.
func TestRegisterRateLimit(t *testing.T) {
	var limited atomic.Int64
	ts := start(t, func(c *Config) {
		c.RegisterRate = 3
		c.OnRateLimited = func() { limited.Add(1) }
	})
	for i := 0; i < 3; i++ {
		if a := ts.post(t, body(testPool, fmt.Sprintf("rate.rig%d", i), pwPrimary)); a.status != http.StatusCreated {
			t.Fatalf("registration %d of the burst: %d %s", i+1, a.status, a.body)
		}
	}
	a := ts.post(t, body(testPool, "rate.rig3", pwPrimary))
	if a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") == "" || reg(t, a).Error == "" {
		t.Fatalf("registration past the rate: %d %s; want 429 with Retry-After and an error", a.status, a.body)
	}
	if limited.Load() != 1 {
		t.Fatalf("OnRateLimited called %d times, want 1", limited.Load())
	}
	if a := ts.do(t, http.MethodGet, "/api/v1/users", nil); a.status != http.StatusOK || strings.Contains(a.body, "rate.rig3") {
		t.Fatalf("listing after the refusal: %d %s", a.status, a.body)
	}
}

const defaultTestToken = "test-token"
