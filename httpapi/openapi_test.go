package httpapi

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

type oaDoc struct {
	Paths map[string]map[string]json.RawMessage `json:"paths"`
}

type oaOp struct {
	Responses   map[string]json.RawMessage `json:"responses"`
	Security    []map[string][]string      `json:"security"`
	RequestBody json.RawMessage            `json:"requestBody"`
}

// TestOpenAPIMatchesRouter checks the served OpenAPI document against the
// real server: every documented route and method answers one of its
// documented statuses (with the token, and 401 without it where the
// document says a token is needed), every other method on a documented
// path answers 405, and paths the document does not have answer 404.
func TestOpenAPIMatchesRouter(t *testing.T) {
	ts := start(t, func(c *Config) { c.Metrics = func(w io.Writer) { io.WriteString(w, "up 1\n") } })
	a := ts.do(t, http.MethodGet, "/api/v1/openapi.json", nil, "Authorization", "none")
	if a.status != 200 {
		t.Fatalf("openapi.json: %d", a.status)
	}
	var doc oaDoc
	if err := json.Unmarshal([]byte(a.body), &doc); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	name := ts.post(t, body(testPool, "u", "x"))
	var reg struct{ Name string }
	_ = json.Unmarshal([]byte(name.body), &reg)
	params := map[string]string{"{name}": reg.Name, "{addr}": url.PathEscape(testPool), "{id}": "0000000000000000"}
	bodies := map[string]string{
		"POST /api/v1/users":              body(testPool, "u2", "x"),
		"PUT /api/v1/users":               body(testPool, "u3", "x"),
		"PATCH /api/v1/users/{name}":      `{"password":"y"}`,
		"PUT /api/v1/users/{name}":        `{"password":"z"}`,
		"POST /api/v1/pools":              `{"addr":"new.example:3333","algorithm":"sha256"}`,
		"PATCH /api/v1/pools/{addr}":      `{"mode":"passthrough"}`,
		"PUT /api/v1/pools/{addr}":        `{"mode":"split"}`,
		"POST /api/v1/algorithms":         `{"name":"blake3","divider":256,"dialects":["stratum"]}`,
		"PATCH /api/v1/algorithms/{name}": `{"divider":2}`,
		"PUT /api/v1/algorithms/{name}":   `{"divider":3}`,
	}
	methods := []string{"get", "post", "put", "patch", "delete"}
	var paths []string
	for p := range doc.Paths {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	// Deletions last, so the other calls find what they name.
	for _, pass := range []string{"other", "delete"} {
		for _, p := range paths {
			item := doc.Paths[p]
			for _, m := range methods {
				if (m == "delete") != (pass == "delete") {
					continue
				}
				raw, ok := item[m]
				path := p
				for k, v := range params {
					if strings.HasPrefix(p, "/api/v1/algorithms/") && k == "{name}" {
						v = "blake3"
					}
					path = strings.ReplaceAll(path, k, v)
				}
				M := strings.ToUpper(m)
				if !ok {
					if a := ts.do(t, M, path, strings.NewReader("{}")); a.status != 405 {
						t.Errorf("%s %s is not documented but answers %d, want 405", M, p, a.status)
					}
					continue
				}
				var op oaOp
				if err := json.Unmarshal(raw, &op); err != nil {
					t.Fatalf("%s %s: %v", M, p, err)
				}
				if op.Security == nil || len(op.Security) > 0 {
					a := ts.do(t, M, path, strings.NewReader(bodies[M+" "+p]), "Authorization", "Bearer wrong")
					if a.status != 401 {
						t.Errorf("%s %s with a wrong token: %d, want 401", M, p, a.status)
					}
				}
				var b *strings.Reader
				if s, ok := bodies[M+" "+p]; ok {
					b = strings.NewReader(s)
				} else {
					b = strings.NewReader("")
				}
				a := ts.do(t, M, path, b, "Content-Type", "application/json")
				if _, ok := op.Responses[strconv.Itoa(a.status)]; !ok {
					t.Errorf("%s %s answered %d, documented: %v\n%s", M, p, a.status, keys(op.Responses), a.body)
				}
			}
		}
	}
	for _, p := range []string{"/api/v1/nothing", "/api/v1/users/a/b", "/api/v1/pools/a/b", "/api/v1/workers", "/api/v2/stats"} {
		if _, documented := doc.Paths[p]; documented {
			continue
		}
		if a := ts.do(t, http.MethodGet, p, nil); a.status != 404 {
			t.Errorf("undocumented %s answers %d, want 404", p, a.status)
		}
	}
}

func keys(m map[string]json.RawMessage) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
