package httpapi

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/netip"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/stratum-proxy/stratum-proxy/store"
)

// Routes.
const (
	pathUsers      = "/api/v1/users"
	pathUsersSlash = "/api/v1/users/"
	pathPools      = "/api/v1/pools"
	pathAlgorithms = "/api/v1/algorithms"
	pathMetrics    = "/metrics"
	pathHealthz    = "/healthz"
	prefixAPI      = "/api/"
)

const (
	contentJSON    = "application/json; charset=utf-8"
	contentMetrics = "text/plain; version=0.0.4; charset=utf-8"
	contentText    = "text/plain; charset=utf-8"
)

// errorBody is every /api/ error answer, and the registration answer.
// Updated is true only when a registration replaced the backups of an
// existing name, and omitted otherwise, so the other answers keep their
// two-field shape.
type errorBody struct {
	Name    string `json:"name"`
	Error   string `json:"error"`
	Updated bool   `json:"updated,omitempty"`
}

// accountRequest is one account in a registration body. User and
// Password are pointers to tell "omitted" (backups inherit the primary's)
// from "empty".
type accountRequest struct {
	Pool     string  `json:"pool"`
	User     *string `json:"user"`
	Password *string `json:"password"`
}

// registerRequest is the body of POST/PUT /api/v1/users. Backups is nil
// when the field is omitted (an existing name keeps its backups) and
// non-nil for a given list, even an empty one (it replaces them).
type registerRequest struct {
	Pool     string           `json:"pool"`
	User     *string          `json:"user"`
	Password *string          `json:"password"`
	Backups  []accountRequest `json:"backups"`
}

// accountView is an account as listed: no password field at all.
type accountView struct {
	Pool string `json:"pool"`
	User string `json:"user"`
}

// userView is a user as listed.
type userView struct {
	Name     string        `json:"name"`
	Pool     string        `json:"pool"`
	User     string        `json:"user"`
	Backups  []accountView `json:"backups"`
	Created  time.Time     `json:"created"`
	LastSeen *time.Time    `json:"last_seen"` // null: never seen
}

func newUserView(u store.User) userView {
	v := userView{Name: u.Name, Pool: u.Pool, User: u.User, Backups: make([]accountView, len(u.Backups)), Created: u.Created}
	for i, b := range u.Backups {
		v.Backups[i] = accountView{Pool: b.Pool, User: b.User}
	}
	if !u.LastSeen.IsZero() {
		t := u.LastSeen
		v.LastSeen = &t
	}
	return v
}

// Handler returns the request handler: routing, authentication, panic
// recovery and request logging. Serve uses it; tests may call it directly.
// Body size limits are enforced by the server when reading the request,
// and again here for direct callers.
func (s *Server) Handler() fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		start := time.Now()
		defer func() {
			if p := recover(); p != nil {
				s.log.Error().Interface("panic", p).Str("method", string(ctx.Method())).
					Str("path", string(ctx.Path())).Msg("HTTP handler panicked")
				ctx.ResetBody()
				s.apiError(ctx, fasthttp.StatusInternalServerError, "internal error")
			}
			// Method, path and status only: never the body, the query or
			// headers, which may carry passwords or the token.
			s.log.Debug().Str("method", string(ctx.Method())).Str("path", string(ctx.Path())).
				Int("status", ctx.Response.StatusCode()).Str("remote", ctx.RemoteAddr().String()).
				Dur("took", time.Since(start)).Msg("http request")
		}()
		s.route(ctx)
	}
}

func (s *Server) route(ctx *fasthttp.RequestCtx) {
	path := string(ctx.Path())
	if len(path) > 1 {
		path = strings.TrimSuffix(path, "/")
	}
	switch path {
	case pathHealthz:
		if s.allow(ctx, false, fasthttp.MethodGet) {
			s.healthz(ctx)
		}
		return
	case pathMetrics:
		if s.cfg.Metrics == nil {
			ctx.Error("404 not found: metrics are not enabled", fasthttp.StatusNotFound)
			return
		}
		if s.allow(ctx, false, fasthttp.MethodGet) {
			s.serveMetrics(ctx) // gzip when asked: gzip.go
		}
		return
	}
	if !strings.HasPrefix(path+"/", prefixAPI) {
		if s.serveUI(ctx, path) {
			return
		}
		ctx.Error("404 not found", fasthttp.StatusNotFound)
		return
	}
	ctx.Response.Header.Set(fasthttp.HeaderCacheControl, "no-store")
	if path == pathOpenAPI {
		if s.allow(ctx, true, fasthttp.MethodGet) {
			ctx.SetContentType(contentJSON)
			ctx.SetBody(openAPIDoc)
		}
		return
	}
	// Registration is open unless Config.RegisterNeedsToken; everything
	// else needs the bearer token.
	open := path == pathUsers && (ctx.IsPost() || ctx.IsPut()) && !s.cfg.RegisterNeedsToken
	if !open && !s.authorized(ctx) {
		ctx.Response.Header.Set(fasthttp.HeaderWWWAuthenticate, `Bearer realm="stratum-proxy"`)
		msg := "missing or wrong bearer token"
		if s.cfg.AuthToken == "" {
			msg = "the management API is closed: start the proxy with --web.auth-token"
		}
		s.apiError(ctx, fasthttp.StatusUnauthorized, msg)
		return
	}
	get, change := fasthttp.MethodGet, []string{fasthttp.MethodGet, fasthttp.MethodPut, "PATCH", fasthttp.MethodDelete}
	switch {
	case path == pathUsers:
		if ctx.IsPost() || ctx.IsPut() {
			s.register(ctx)
		} else if s.allow(ctx, true, get, fasthttp.MethodPost, fasthttp.MethodPut) {
			s.listUsers(ctx)
		}
	case strings.HasPrefix(path, pathUsersSlash):
		if name, ok := pathParam(path, pathUsersSlash); !ok {
			s.apiError(ctx, fasthttp.StatusNotFound, "no such endpoint: "+path)
		} else if s.allow(ctx, true, change...) {
			s.user(ctx, name)
		}
	case path == pathPools:
		if ctx.IsPost() {
			s.addPool(ctx)
		} else if s.allow(ctx, true, get, fasthttp.MethodPost) {
			s.listPools(ctx)
		}
	case strings.HasPrefix(path, pathPoolsSlash):
		if addr, ok := pathParam(path, pathPoolsSlash); !ok {
			s.apiError(ctx, fasthttp.StatusNotFound, "no such endpoint: "+path)
		} else if s.allow(ctx, true, change...) {
			s.pool(ctx, addr)
		}
	case path == pathAlgorithms:
		if ctx.IsPost() {
			s.addAlgorithm(ctx)
		} else if s.allow(ctx, true, get, fasthttp.MethodPost) {
			s.writeJSON(ctx, fasthttp.StatusOK, struct {
				Algorithms []store.Algorithm `json:"algorithms"`
			}{s.cfg.Store.Algorithms()})
		}
	case strings.HasPrefix(path, pathAlgosSlash):
		if name, ok := pathParam(path, pathAlgosSlash); !ok {
			s.apiError(ctx, fasthttp.StatusNotFound, "no such endpoint: "+path)
		} else if s.allow(ctx, true, change...) {
			s.algorithm(ctx, name)
		}
	case path == pathStats:
		if s.allow(ctx, true, get) {
			s.stats(ctx)
		}
	case path == pathWorkers:
		if s.allow(ctx, true, get) {
			s.workers(ctx)
		}
	case strings.HasPrefix(path, pathWorkersSlash):
		if id, ok := pathParam(path, pathWorkersSlash); !ok {
			s.apiError(ctx, fasthttp.StatusNotFound, "no such endpoint: "+path)
		} else if s.allow(ctx, true, fasthttp.MethodDelete) {
			s.kick(ctx, id)
		}
	case path == pathHistory:
		if s.allow(ctx, true, get) {
			s.history(ctx)
		}
	default:
		s.apiError(ctx, fasthttp.StatusNotFound, "no such endpoint: "+path)
	}
}

// allow answers 405 unless the method is one of methods (HEAD counts as
// GET) and reports whether the handler should go on.
func (s *Server) allow(ctx *fasthttp.RequestCtx, api bool, methods ...string) bool {
	m := string(ctx.Method())
	for _, ok := range methods {
		if m == ok || (m == fasthttp.MethodHead && ok == fasthttp.MethodGet) {
			return true
		}
	}
	ctx.Response.Header.Set(fasthttp.HeaderAllow, strings.Join(methods, ", "))
	msg := "method " + m + " not allowed; use " + strings.Join(methods, " or ")
	if api {
		s.apiError(ctx, fasthttp.StatusMethodNotAllowed, msg)
	} else {
		ctx.Error(msg, fasthttp.StatusMethodNotAllowed)
	}
	return false
}

// authorized checks the bearer token in constant time.
func (s *Server) authorized(ctx *fasthttp.RequestCtx) bool {
	if s.cfg.AuthToken == "" {
		return true
	}
	h := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)
	const prefix = "bearer "
	if len(h) < len(prefix) || !strings.EqualFold(string(h[:len(prefix)]), prefix) {
		return false
	}
	return subtle.ConstantTimeCompare(bytes.TrimSpace(h[len(prefix):]), []byte(s.cfg.AuthToken)) == 1
}

func (s *Server) healthz(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType(contentText)
	if s.cfg.Health != nil {
		if err := s.cfg.Health(); err != nil {
			ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
			ctx.SetBodyString("not ready: " + err.Error() + "\n")
			return
		}
	}
	ctx.SetBodyString("ok\n")
}

// register handles POST and PUT /api/v1/users.
func (s *Server) register(ctx *fasthttp.RequestCtx) {
	if ip, _ := netip.AddrFromSlice(ctx.RemoteIP()); !s.regLimit.allow(ip.Unmap(), time.Now()) {
		if s.cfg.OnRateLimited != nil {
			s.cfg.OnRateLimited()
		}
		ctx.Response.Header.Set("Retry-After", "60")
		s.apiError(ctx, fasthttp.StatusTooManyRequests, "too many registrations from your address; try again in a minute")
		return
	}
	if ct := string(ctx.Request.Header.ContentType()); !jsonish(ct) {
		s.apiError(ctx, fasthttp.StatusUnsupportedMediaType, fmt.Sprintf("content type %q: send a JSON object (application/json)", ct))
		return
	}
	body := ctx.PostBody()
	if len(body) > s.maxBody {
		s.apiError(ctx, fasthttp.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", s.maxBody))
		return
	}
	req, err := decodeRegister(body)
	if err != nil {
		s.apiError(ctx, fasthttp.StatusBadRequest, err.Error())
		return
	}
	primary, backups := req.accounts()
	name, outcome, err := s.cfg.Store.RegisterUser(primary, backups)
	switch {
	case err == nil:
	case errors.Is(err, store.ErrUnknownPool):
		s.apiError(ctx, fasthttp.StatusUnprocessableEntity, err.Error()+": add it to the pool table first (stratum-proxy pool add)")
		return
	case errors.Is(err, store.ErrInvalidAccount):
		s.apiError(ctx, fasthttp.StatusBadRequest, err.Error())
		return
	case errors.Is(err, store.ErrUnavailable):
		ctx.Response.Header.Set("Retry-After", "10")
		s.apiError(ctx, fasthttp.StatusServiceUnavailable, "the store (etcd) is unreachable: nothing was changed; try again")
		return
	case errors.Is(err, store.ErrClosed):
		s.apiError(ctx, fasthttp.StatusServiceUnavailable, "shutting down")
		return
	default:
		s.log.Error().Err(err).Msg("register user failed")
		s.apiError(ctx, fasthttp.StatusInternalServerError, "internal error: the user was not stored")
		return
	}
	status := fasthttp.StatusOK
	switch outcome {
	case store.RegisterCreated:
		status = fasthttp.StatusCreated
		ctx.Response.Header.Set(fasthttp.HeaderLocation, pathUsersSlash+name)
		s.log.Info().Str("name", name).Str("pool", primary.Pool).Int("backups", len(backups)).Msg("user registered")
	case store.RegisterUpdated:
		s.log.Info().Str("name", name).Str("pool", primary.Pool).Int("backups", len(backups)).Msg("user backups updated")
	}
	s.writeJSON(ctx, status, errorBody{Name: name, Updated: outcome == store.RegisterUpdated})
}

// jsonish reports whether a request content type may carry the JSON
// body: JSON itself, none, text, or curl -d's default form type.
func jsonish(ct string) bool {
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	switch {
	case mt == "application/json", strings.HasSuffix(mt, "+json"), mt == "text/plain", mt == "text/json",
		mt == "application/x-www-form-urlencoded": // what curl -d sends when no type is given
		return true
	}
	return false
}

// decodeRegister parses a registration body strictly: one JSON object,
// no unknown fields, nothing after it. Error messages never quote the
// body, which holds a password.
func decodeRegister(body []byte) (*registerRequest, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, errors.New("empty body: send a JSON object with pool, user and password")
	}
	if b := bytes.TrimSpace(body); b[0] != '{' {
		return nil, errors.New("body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var req registerRequest
	if err := dec.Decode(&req); err != nil {
		return nil, describeJSONError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("malformed JSON: data after the object")
	}
	return &req, nil
}

// describeJSONError rewords encoding/json errors without the offending
// text (a syntax error would quote a character of the body).
func describeJSONError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("malformed JSON at byte %d", syn.Offset)
	case errors.As(err, &typ) && typ.Type != nil:
		return fmt.Errorf("field %q must be a %s", typ.Field, jsonType(typ.Type.Kind().String()))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("malformed JSON: unexpected end of body")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return fmt.Errorf("unknown field %s (known: pool, user, password, backups)", strings.TrimPrefix(err.Error(), "json: unknown field "))
	default:
		return errors.New("malformed JSON")
	}
}

func jsonType(kind string) string {
	switch kind {
	case "slice":
		return "list"
	case "struct":
		return "object"
	}
	return kind
}

// accounts turns the request into store accounts; a backup's omitted user
// or password is the primary's. Omitted backups stay nil, a given list
// (even empty) non-nil: see store.Store.RegisterUser.
func (r *registerRequest) accounts() (store.Account, []store.Account) {
	primary := store.Account{Pool: r.Pool, User: deref(r.User, ""), Password: store.Secret(deref(r.Password, ""))}
	var backups []store.Account
	if r.Backups != nil {
		backups = make([]store.Account, 0, len(r.Backups))
	}
	for _, b := range r.Backups {
		backups = append(backups, store.Account{
			Pool:     b.Pool,
			User:     deref(b.User, primary.User),
			Password: store.Secret(deref(b.Password, primary.Password.Reveal())),
		})
	}
	return primary, backups
}

func deref(p *string, def string) string {
	if p == nil {
		return def
	}
	return *p
}

func (s *Server) listUsers(ctx *fasthttp.RequestCtx) {
	users := s.cfg.Store.Users()
	views := make([]userView, len(users))
	for i, u := range users {
		views[i] = newUserView(u)
	}
	s.writeJSON(ctx, fasthttp.StatusOK, struct {
		Users []userView `json:"users"`
	}{views})
}

func (s *Server) getUser(ctx *fasthttp.RequestCtx, name string) {
	u, ok := s.cfg.Store.User(name)
	if !ok {
		s.apiError(ctx, fasthttp.StatusNotFound, "unknown user")
		return
	}
	s.writeJSON(ctx, fasthttp.StatusOK, newUserView(u))
}

// handleReadError answers requests fasthttp could not read: 413 for an
// oversized body, 400 otherwise, in the API's JSON shape. fasthttp closes
// the connection afterwards.
func (s *Server) handleReadError(ctx *fasthttp.RequestCtx, err error) {
	var tooLarge bool
	if errors.Is(err, fasthttp.ErrBodyTooLarge) {
		tooLarge = true
	}
	s.log.Debug().Str("remote", ctx.RemoteAddr().String()).Bool("too_large", tooLarge).Msg("unreadable HTTP request")
	if tooLarge {
		s.apiError(ctx, fasthttp.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", s.maxBody))
		return
	}
	s.apiError(ctx, fasthttp.StatusBadRequest, "malformed HTTP request")
}

func (s *Server) apiError(ctx *fasthttp.RequestCtx, status int, msg string) {
	s.writeJSON(ctx, status, errorBody{Error: msg})
}

func (s *Server) writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // only our own types get here; they always marshal
		s.log.Error().Err(err).Msg("encode response")
		status, b = fasthttp.StatusInternalServerError, []byte(`{"name":"","error":"internal error"}`)
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType(contentJSON)
	ctx.SetBody(append(b, '\n'))
}
