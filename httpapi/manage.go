package httpapi

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/stratum-proxy/stratum-proxy/metrics"
	"github.com/stratum-proxy/stratum-proxy/proxy"
	"github.com/stratum-proxy/stratum-proxy/store"
)

// Live is the running proxy as the management API sees it
// (*proxy.Server). Nil in Config means the live routes answer 503. Its
// calls get a background context (a fasthttp RequestCtx used as one races
// with Shutdown); the proxy bounds them itself.
type Live interface {
	Stats() proxy.Stats
	Addr() string
	Workers(ctx context.Context) ([]proxy.WorkerInfo, error)
	Kick(ctx context.Context, id string) (bool, error)
	UserDeleted(ctx context.Context, name, reason string) (int, error)
	Pools() map[string]proxy.PoolState
}

// Management routes.
const (
	pathStats        = "/api/v1/stats"
	pathWorkers      = "/api/v1/workers"
	pathWorkersSlash = "/api/v1/workers/"
	pathHistory      = "/api/v1/history"
	pathPoolsSlash   = "/api/v1/pools/"
	pathAlgosSlash   = "/api/v1/algorithms/"
	pathOpenAPI      = "/api/v1/openapi.json"
)

// maxWorkersPage bounds one page of the workers listing.
const maxWorkersPage = 1000

// decodeStrict parses one JSON object into v: no unknown fields, nothing
// after it. Messages never quote the body (it may hold a password).
func decodeStrict(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return errors.New("empty body: send a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return describeJSONError(err)
	}
	if dec.More() {
		return errors.New("body must hold one JSON object")
	}
	return nil
}

// body checks the content type and size and decodes the request's body.
func (s *Server) body(ctx *fasthttp.RequestCtx, v any) bool {
	if ct := string(ctx.Request.Header.ContentType()); !jsonish(ct) {
		s.apiError(ctx, fasthttp.StatusUnsupportedMediaType, fmt.Sprintf("content type %q: send a JSON object (application/json)", ct))
		return false
	}
	if len(ctx.PostBody()) > s.maxBody {
		s.apiError(ctx, fasthttp.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", s.maxBody))
		return false
	}
	if err := decodeStrict(ctx.PostBody(), v); err != nil {
		s.apiError(ctx, fasthttp.StatusBadRequest, err.Error())
		return false
	}
	return true
}

// storeError answers a store error with its status.
func (s *Server) storeError(ctx *fasthttp.RequestCtx, err error) {
	switch {
	case errors.Is(err, store.ErrInUse):
		s.apiError(ctx, fasthttp.StatusConflict, err.Error())
	case errors.Is(err, store.ErrUnknownUser), errors.Is(err, store.ErrUnknownPool) && ctx.IsDelete():
		s.apiError(ctx, fasthttp.StatusNotFound, err.Error())
	case errors.Is(err, store.ErrUnknownPool), errors.Is(err, store.ErrUnknownAlgorithm):
		s.apiError(ctx, fasthttp.StatusUnprocessableEntity, err.Error())
	case errors.Is(err, store.ErrInvalidPool), errors.Is(err, store.ErrInvalidAccount), errors.Is(err, store.ErrInvalidAlgorithm):
		s.apiError(ctx, fasthttp.StatusBadRequest, err.Error())
	case errors.Is(err, store.ErrUnavailable):
		ctx.Response.Header.Set("Retry-After", "10")
		s.apiError(ctx, fasthttp.StatusServiceUnavailable, "the store (etcd) is unreachable: nothing was changed; try again")
		return
	case errors.Is(err, store.ErrClosed):
		s.apiError(ctx, fasthttp.StatusServiceUnavailable, "shutting down")
	default:
		s.log.Error().Err(err).Msg("store change failed")
		s.apiError(ctx, fasthttp.StatusInternalServerError, "internal error: nothing was changed")
	}
}

func (s *Server) live(ctx *fasthttp.RequestCtx) bool {
	if s.cfg.Live == nil {
		s.apiError(ctx, fasthttp.StatusServiceUnavailable, "the proxy is not running in this process")
		return false
	}
	return true
}

// statsView is GET /api/v1/stats.
type statsView struct {
	Miners         int     `json:"miners"`
	Sessions       int     `json:"sessions"`
	InGrace        int     `json:"in_grace"`
	Upstreams      int     `json:"upstreams"`
	UpstreamsReady int     `json:"upstreams_ready"`
	Hashrate       float64 `json:"hashrate"`
	Accepted       uint64  `json:"accepted"`
	Rejected       uint64  `json:"rejected"`
	AcceptedPerMin float64 `json:"accepted_per_min"`
	RejectedPerMin float64 `json:"rejected_per_min"`
	StratumAddr    string  `json:"stratum_addr"`
	Version        string  `json:"version"`
	Uptime         float64 `json:"uptime_seconds"`
}

func (s *Server) stats(ctx *fasthttp.RequestCtx) {
	if !s.live(ctx) {
		return
	}
	st := s.cfg.Live.Stats()
	v := statsView{Miners: st.Miners, Sessions: st.Sessions, InGrace: st.InGrace, Upstreams: st.Upstreams,
		UpstreamsReady: st.Ready, StratumAddr: s.cfg.Live.Addr(), Version: s.cfg.Version,
		Uptime: time.Since(s.started).Seconds()}
	if r := s.cfg.Registry; r != nil {
		t := r.Totals()
		v.Hashrate, v.Accepted, v.Rejected = t.Speed, t.Accepted, t.Rejected
		v.AcceptedPerMin, v.RejectedPerMin = s.rates.per(time.Now(), t.Accepted, t.Rejected)
	}
	s.writeJSON(ctx, fasthttp.StatusOK, v)
}

// workers handles GET /api/v1/workers: filtered by user, pool and a text
// q (matched in user, rig, pool and remote), sorted, paged.
func (s *Server) workers(ctx *fasthttp.RequestCtx) {
	if !s.live(ctx) {
		return
	}
	args := ctx.QueryArgs()
	user, pool, q := string(args.Peek("user")), string(args.Peek("pool")), strings.ToLower(string(args.Peek("q")))
	offset, err1 := intArg(args.Peek("offset"), 0)
	limit, err2 := intArg(args.Peek("limit"), 100)
	if err1 != nil || err2 != nil || offset < 0 || limit < 1 || limit > maxWorkersPage {
		s.apiError(ctx, fasthttp.StatusBadRequest, fmt.Sprintf("offset must be >= 0 and limit 1-%d", maxWorkersPage))
		return
	}
	key := string(args.Peek("sort"))
	less, ok := workerOrder[key]
	if key == "" {
		less, ok = workerOrder["user"], true
	}
	if !ok {
		s.apiError(ctx, fasthttp.StatusBadRequest, "sort must be one of "+strings.Join(workerSortKeys(), ", "))
		return
	}
	desc := string(args.Peek("order")) == "desc"
	all, err := s.cfg.Live.Workers(context.Background())
	if err != nil {
		s.apiError(ctx, fasthttp.StatusServiceUnavailable, err.Error())
		return
	}
	out := all[:0]
	for _, w := range all {
		if user != "" && w.User != user || pool != "" && w.Pool != pool {
			continue
		}
		if q != "" && !strings.Contains(strings.ToLower(w.User+" "+w.Rig+" "+w.Pool+" "+w.Remote+" "+w.Algorithm), q) {
			continue
		}
		out = append(out, w)
	}
	slices.SortStableFunc(out, func(a, b proxy.WorkerInfo) int {
		c := less(a, b)
		if c == 0 {
			c = strings.Compare(a.ID, b.ID)
		}
		if desc {
			return -c
		}
		return c
	})
	total := len(out)
	page := out[min(offset, total):min(offset+limit, total)]
	s.writeJSON(ctx, fasthttp.StatusOK, struct {
		Total   int                `json:"total"`
		Workers []proxy.WorkerInfo `json:"workers"`
	}{total, page})
}

func intArg(b []byte, def int) (int, error) {
	if len(b) == 0 {
		return def, nil
	}
	return strconv.Atoi(string(b))
}

func cmpF(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

var workerOrder = map[string]func(a, b proxy.WorkerInfo) int{
	"user":            func(a, b proxy.WorkerInfo) int { return strings.Compare(a.User, b.User) },
	"rig":             func(a, b proxy.WorkerInfo) int { return strings.Compare(a.Rig, b.Rig) },
	"pool":            func(a, b proxy.WorkerInfo) int { return strings.Compare(a.Pool, b.Pool) },
	"algorithm":       func(a, b proxy.WorkerInfo) int { return strings.Compare(a.Algorithm, b.Algorithm) },
	"dialect":         func(a, b proxy.WorkerInfo) int { return strings.Compare(a.Dialect, b.Dialect) },
	"remote":          func(a, b proxy.WorkerInfo) int { return strings.Compare(a.Remote, b.Remote) },
	"difficulty":      func(a, b proxy.WorkerInfo) int { return cmpF(a.Difficulty, b.Difficulty) },
	"hashrate":        func(a, b proxy.WorkerInfo) int { return cmpF(a.Hashrate, b.Hashrate) },
	"accepted":        func(a, b proxy.WorkerInfo) int { return cmpF(float64(a.Accepted), float64(b.Accepted)) },
	"rejected":        func(a, b proxy.WorkerInfo) int { return cmpF(float64(a.Rejected), float64(b.Rejected)) },
	"connected_since": func(a, b proxy.WorkerInfo) int { return a.Since.Compare(b.Since) },
}

func workerSortKeys() []string {
	keys := make([]string, 0, len(workerOrder))
	for k := range workerOrder {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func (s *Server) kick(ctx *fasthttp.RequestCtx, id string) {
	if !s.live(ctx) {
		return
	}
	found, err := s.cfg.Live.Kick(context.Background(), id)
	switch {
	case err != nil:
		s.apiError(ctx, fasthttp.StatusServiceUnavailable, err.Error())
	case !found:
		s.apiError(ctx, fasthttp.StatusNotFound, "no connected worker with that id")
	default:
		s.log.Info().Str("session", id).Msg("worker kicked through the API")
		s.writeJSON(ctx, fasthttp.StatusOK, map[string]bool{"kicked": true})
	}
}

func (s *Server) history(ctx *fasthttp.RequestCtx) {
	by := string(ctx.QueryArgs().Peek("by"))
	if by == "" {
		by = "user"
	}
	if by != "user" && by != "pool" {
		s.apiError(ctx, fasthttp.StatusBadRequest, `by must be "user" or "pool"`)
		return
	}
	type seriesView struct {
		Key    string       `json:"key"`
		Points [][2]float64 `json:"points"`
	}
	var step time.Duration
	var series []metrics.Series
	if s.cfg.Registry != nil {
		step, series = s.cfg.Registry.History(by == "pool")
	}
	out := make([]seriesView, len(series))
	for i, sr := range series {
		out[i] = seriesView{Key: sr.Key, Points: make([][2]float64, len(sr.Points))}
		for j, p := range sr.Points {
			out[i].Points[j] = [2]float64{float64(p.T), p.V}
		}
	}
	s.writeJSON(ctx, fasthttp.StatusOK, struct {
		Step   int          `json:"step_seconds"`
		By     string       `json:"by"`
		Series []seriesView `json:"series"`
	}{int(step.Seconds()), by, out})
}

// poolView is a pool as listed, with its live state.
type poolView struct {
	store.Pool
	State *proxy.PoolState `json:"state"`
}

func (s *Server) listPools(ctx *fasthttp.RequestCtx) {
	pools := s.cfg.Store.Pools()
	var live map[string]proxy.PoolState
	if s.cfg.Live != nil {
		live = s.cfg.Live.Pools()
	}
	out := make([]poolView, len(pools))
	for i, p := range pools {
		st := live[p.Addr]
		out[i] = poolView{Pool: p, State: &st}
	}
	s.writeJSON(ctx, fasthttp.StatusOK, struct {
		Pools []poolView `json:"pools"`
	}{out})
}

// poolRequest is POST /api/v1/pools and PATCH/PUT /api/v1/pools/{addr}.
type poolRequest struct {
	Addr            *string `json:"addr"`
	Algorithm       *string `json:"algorithm"`
	TLS             *bool   `json:"tls"`
	TLSFingerprint  *string `json:"tls_fingerprint"`
	TLSInsecure     *bool   `json:"tls_insecure"`
	Mode            *string `json:"mode"`
	Extranonce2Size *int    `json:"extranonce2_size"`
}

func (r *poolRequest) apply(p *store.Pool) {
	if r.Addr != nil {
		p.Addr = *r.Addr
	}
	if r.Algorithm != nil {
		p.Algorithm = *r.Algorithm
	}
	if r.TLS != nil {
		p.TLS = *r.TLS
	}
	if r.TLSFingerprint != nil {
		p.TLSFingerprint = *r.TLSFingerprint
	}
	if r.TLSInsecure != nil {
		p.TLSInsecure = *r.TLSInsecure
	}
	if r.Mode != nil {
		p.Mode = *r.Mode
	}
	if r.Extranonce2Size != nil {
		p.Extranonce2Size = *r.Extranonce2Size
	}
}

func (s *Server) addPool(ctx *fasthttp.RequestCtx) {
	var req poolRequest
	if !s.body(ctx, &req) {
		return
	}
	if req.Addr == nil || req.Algorithm == nil {
		s.apiError(ctx, fasthttp.StatusBadRequest, "addr and algorithm are required")
		return
	}
	var p store.Pool
	req.apply(&p)
	if norm, err := store.NormalizeAddr(p.Addr); err == nil {
		if _, exists := s.cfg.Store.Pool(norm); exists {
			s.apiError(ctx, fasthttp.StatusConflict, "pool "+norm+" exists; change it with PATCH "+pathPoolsSlash+norm)
			return
		}
	}
	if err := s.cfg.Store.PutPool(p); err != nil {
		s.storeError(ctx, err)
		return
	}
	p, _ = s.cfg.Store.Pool(p.Addr)
	s.log.Info().Str("pool", p.Addr).Str("algorithm", p.Algorithm).Msg("pool added through the API")
	ctx.Response.Header.Set(fasthttp.HeaderLocation, pathPoolsSlash+p.Addr)
	s.writeJSON(ctx, fasthttp.StatusCreated, p)
}

func (s *Server) pool(ctx *fasthttp.RequestCtx, addr string) {
	p, ok := s.cfg.Store.Pool(addr)
	if !ok {
		s.apiError(ctx, fasthttp.StatusNotFound, "unknown pool "+addr)
		return
	}
	switch {
	case ctx.IsGet() || ctx.IsHead():
		var st proxy.PoolState
		if s.cfg.Live != nil {
			st = s.cfg.Live.Pools()[p.Addr]
		}
		s.writeJSON(ctx, fasthttp.StatusOK, poolView{Pool: p, State: &st})
	case ctx.IsDelete():
		if err := s.cfg.Store.DeletePool(p.Addr); err != nil {
			s.storeError(ctx, err)
			return
		}
		s.log.Info().Str("pool", p.Addr).Msg("pool deleted through the API")
		s.writeJSON(ctx, fasthttp.StatusOK, map[string]string{"deleted": p.Addr})
	default: // PATCH, PUT
		var req poolRequest
		if !s.body(ctx, &req) {
			return
		}
		if req.Addr != nil {
			s.apiError(ctx, fasthttp.StatusBadRequest, "addr cannot change: add the new pool and move the users to it")
			return
		}
		req.apply(&p)
		if err := s.cfg.Store.PutPool(p); err != nil {
			s.storeError(ctx, err)
			return
		}
		p, _ = s.cfg.Store.Pool(p.Addr)
		s.log.Info().Str("pool", p.Addr).Msg("pool changed through the API")
		s.writeJSON(ctx, fasthttp.StatusOK, p)
	}
}

// algorithmRequest is POST /api/v1/algorithms and PATCH/PUT
// /api/v1/algorithms/{name}.
type algorithmRequest struct {
	Name     *string   `json:"name"`
	Aliases  *[]string `json:"aliases"`
	Divider  *float64  `json:"divider"`
	Dialects *[]string `json:"dialects"`
}

func (r *algorithmRequest) apply(a *store.Algorithm) {
	if r.Name != nil {
		a.Name = *r.Name
	}
	if r.Aliases != nil {
		a.Aliases = *r.Aliases
	}
	if r.Divider != nil {
		a.Divider = *r.Divider
	}
	if r.Dialects != nil {
		a.Dialects = *r.Dialects
	}
}

func (s *Server) addAlgorithm(ctx *fasthttp.RequestCtx) {
	var req algorithmRequest
	if !s.body(ctx, &req) {
		return
	}
	if req.Name == nil {
		s.apiError(ctx, fasthttp.StatusBadRequest, "name is required")
		return
	}
	if _, exists := s.cfg.Store.Algorithm(*req.Name); exists {
		s.apiError(ctx, fasthttp.StatusConflict, "algorithm "+*req.Name+" exists; change it with PATCH "+pathAlgosSlash+*req.Name)
		return
	}
	var a store.Algorithm
	req.apply(&a)
	if err := s.cfg.Store.PutAlgorithm(a); err != nil {
		s.storeError(ctx, err)
		return
	}
	a, _ = s.cfg.Store.Algorithm(a.Name)
	s.log.Info().Str("algorithm", a.Name).Msg("algorithm added through the API")
	ctx.Response.Header.Set(fasthttp.HeaderLocation, pathAlgosSlash+a.Name)
	s.writeJSON(ctx, fasthttp.StatusCreated, a)
}

func (s *Server) algorithm(ctx *fasthttp.RequestCtx, name string) {
	a, ok := s.cfg.Store.Algorithm(name)
	if !ok {
		s.apiError(ctx, fasthttp.StatusNotFound, "unknown algorithm "+name)
		return
	}
	switch {
	case ctx.IsGet() || ctx.IsHead():
		s.writeJSON(ctx, fasthttp.StatusOK, a)
	case ctx.IsDelete():
		if err := s.cfg.Store.DeleteAlgorithm(a.Name); err != nil {
			s.storeError(ctx, err)
			return
		}
		s.log.Info().Str("algorithm", a.Name).Msg("algorithm deleted through the API")
		s.writeJSON(ctx, fasthttp.StatusOK, map[string]string{"deleted": a.Name})
	default:
		var req algorithmRequest
		if !s.body(ctx, &req) {
			return
		}
		if req.Name != nil && *req.Name != a.Name {
			s.apiError(ctx, fasthttp.StatusBadRequest, "name cannot change")
			return
		}
		req.apply(&a)
		if err := s.cfg.Store.PutAlgorithm(a); err != nil {
			s.storeError(ctx, err)
			return
		}
		a, _ = s.cfg.Store.Algorithm(a.Name)
		s.log.Info().Str("algorithm", a.Name).Msg("algorithm changed through the API")
		s.writeJSON(ctx, fasthttp.StatusOK, a)
	}
}

// userChange is PATCH /api/v1/users/{name}.
type userChange struct {
	Password *string          `json:"password"`
	Backups  []accountRequest `json:"backups"`
}

func (s *Server) user(ctx *fasthttp.RequestCtx, name string) {
	u, ok := s.cfg.Store.User(name)
	if !ok {
		s.apiError(ctx, fasthttp.StatusNotFound, "unknown user")
		return
	}
	switch {
	case ctx.IsGet() || ctx.IsHead():
		s.writeJSON(ctx, fasthttp.StatusOK, newUserView(u))
	case ctx.IsDelete():
		if err := s.cfg.Store.DeleteUser(name); err != nil {
			s.storeError(ctx, err)
			return
		}
		closed := 0
		if s.cfg.Live != nil {
			closed, _ = s.cfg.Live.UserDeleted(context.Background(), name, "account deleted by the operator")
		}
		s.log.Info().Str("name", name).Int("miners_closed", closed).Msg("user deleted through the API")
		s.writeJSON(ctx, fasthttp.StatusOK, map[string]any{"deleted": name, "miners_closed": closed})
	default:
		var req userChange
		if !s.body(ctx, &req) {
			return
		}
		if req.Password == nil && req.Backups == nil {
			s.apiError(ctx, fasthttp.StatusBadRequest, "nothing to change: send password and/or backups")
			return
		}
		if req.Password != nil {
			if err := s.cfg.Store.SetPassword(name, store.Secret(*req.Password)); err != nil {
				s.storeError(ctx, err)
				return
			}
		}
		if req.Backups != nil {
			bs := make([]store.Account, len(req.Backups))
			for i, b := range req.Backups {
				bs[i] = store.Account{Pool: b.Pool, User: deref(b.User, u.User), Password: store.Secret(deref(b.Password, u.Password.Reveal()))}
			}
			if err := s.cfg.Store.SetBackups(name, bs); err != nil {
				s.storeError(ctx, err)
				return
			}
		}
		u, _ = s.cfg.Store.User(name)
		s.log.Info().Str("name", name).Bool("password", req.Password != nil).Bool("backups", req.Backups != nil).
			Msg("user changed through the API; used at the next pool login")
		s.writeJSON(ctx, fasthttp.StatusOK, newUserView(u))
	}
}

// pathParam returns the unescaped rest of path after prefix, or false
// when it is empty or has a further slash.
func pathParam(path, prefix string) (string, bool) {
	rest := path[len(prefix):]
	if rest == "" || strings.Contains(rest, "/") {
		return "", false
	}
	v, err := url.PathUnescape(rest)
	if err != nil {
		return "", false
	}
	return v, true
}

// openAPIDoc is the OpenAPI 3 description of every route, served at
// /api/v1/openapi.json and checked against the router by a test.
//
//go:embed openapi.json
var openAPIDoc []byte
