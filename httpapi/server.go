package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"github.com/stratum-proxy/stratum-proxy/metrics"
	"github.com/stratum-proxy/stratum-proxy/store"
)

// Defaults for zero Config fields.
const (
	// DefaultAddr is the original proxy's API port, kept so existing
	// scripts and scrape configs keep working.
	DefaultAddr = ":12743"
	// DefaultMaxBodySize bounds a request body. A registration with the
	// maximum number of backups and maximum-length fields is under 8 KiB;
	// 64 KiB leaves room without letting a client make us buffer much.
	DefaultMaxBodySize = 64 << 10
)

// Timeouts of the fasthttp server. The API answers from memory or with
// one fsync, so these only bound misbehaving or idle clients.
const (
	readTimeout     = 10 * time.Second
	writeTimeout    = 10 * time.Second
	idleTimeout     = 60 * time.Second
	shutdownTimeout = 10 * time.Second
	// concurrency bounds concurrent connections: the API serves operators
	// and Prometheus, not miners, so a few thousand is plenty.
	concurrency = 4096
)

// Config configures a Server. Store is required; every other zero value
// has a usable default.
type Config struct {
	// Addr is the listen address of ListenAndServe. Empty means ":12743".
	Addr string
	// Store answers every /api/ request. Required.
	Store store.Store
	// Metrics writes the Prometheus text exposition for /metrics. Nil means
	// /metrics answers 404.
	Metrics func(w io.Writer)
	// Log receives request logs (debug level), registrations (info) and
	// failures. The zero Logger discards everything.
	Log zerolog.Logger
	// AuthToken, if set, is required on /api/ requests as
	// "Authorization: Bearer <token>". /metrics and /healthz stay open.
	// Empty means no authentication.
	AuthToken string
	// MaxBodySize bounds request bodies in bytes; larger ones get 413.
	// Zero means 64 KiB.
	MaxBodySize int
	// Health is the readiness check of /healthz: nil error means ready.
	// Nil means always ready.
	Health func() error
	// RegisterRate caps registrations per client address, per minute
	// (bursts of the same); past it a registration gets 429. 0 means no cap.
	RegisterRate float64
	// OnRateLimited, if set, is called for each registration refused by
	// RegisterRate (the proxy counts it in proxy_miners_dropped_total).
	OnRateLimited func()
	// RegisterNeedsToken closes registration (POST/PUT /api/v1/users) to
	// requests without the token too; false leaves it open, as the
	// original did.
	RegisterNeedsToken bool
	// Live is the running proxy the management routes ask (workers, kick,
	// pool states, a deleted user's miners). Nil: those answer 503.
	Live Live
	// Registry gives the dashboard's totals and hashrate history. Nil:
	// they read zero and empty.
	Registry *metrics.Registry
	// Version is reported by /api/v1/stats.
	Version string
}

func (c *Config) addr() string {
	if c.Addr == "" {
		return DefaultAddr
	}
	return c.Addr
}

func (c *Config) maxBodySize() int {
	if c.MaxBodySize <= 0 {
		return DefaultMaxBodySize
	}
	return c.MaxBodySize
}

// Server is the HTTP API server. Create it with New. Its methods are safe
// for concurrent use; Serve may be called once.
type Server struct {
	// Static after New.
	cfg      Config
	log      zerolog.Logger
	maxBody  int
	regLimit *rateLimit // nil: no cap
	srv      *fasthttp.Server
	started  time.Time
	rates    shareRates

	mu       sync.Mutex // guards shutdown
	shutdown bool
}

// New returns a Server for cfg. It panics if cfg.Store is nil, a
// programming error that no request could recover from.
func New(cfg Config) *Server {
	if cfg.Store == nil {
		panic("httpapi: Config.Store is required")
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Log.With().Str("component", "httpapi").Logger(),
		maxBody:  cfg.maxBodySize(),
		regLimit: newRateLimit(cfg.RegisterRate),
		started:  time.Now(),
	}
	s.srv = &fasthttp.Server{
		Name:                         "stratum-proxy",
		Handler:                      s.Handler(),
		ErrorHandler:                 s.handleReadError,
		Logger:                       fastLogger{s.log},
		MaxRequestBodySize:           s.maxBody,
		ReadTimeout:                  readTimeout,
		WriteTimeout:                 writeTimeout,
		IdleTimeout:                  idleTimeout,
		Concurrency:                  concurrency,
		DisablePreParseMultipartForm: true, // multipart is refused anyway; don't parse it first
		CloseOnShutdown:              true,
	}
	return s
}

// Serve answers requests on ln until Shutdown, then returns nil. Other
// errors come from ln.Accept.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		_ = ln.Close()
		return nil
	}
	s.mu.Unlock()
	if s.cfg.AuthToken == "" {
		s.log.Warn().Str("addr", ln.Addr().String()).
			Msg("HTTP API has no auth token: anyone who reaches this port can register users and list pool logins")
	}
	if err := s.srv.Serve(ln); err != nil {
		return fmt.Errorf("httpapi: serve %s: %w", ln.Addr(), err)
	}
	return nil
}

// ListenAndServe listens on Config.Addr (":12743" by default) and calls
// Serve.
func (s *Server) ListenAndServe() error {
	ln, err := net.Listen("tcp", s.cfg.addr())
	if err != nil {
		return fmt.Errorf("httpapi: listen %s: %w", s.cfg.addr(), err)
	}
	return s.Serve(ln)
}

// Shutdown stops accepting connections, closes idle ones and waits up to
// 10 seconds for requests in flight. Serve then returns nil. Calling it
// before Serve makes a later Serve return at once.
func (s *Server) Shutdown() error {
	s.mu.Lock()
	s.shutdown = true
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := s.srv.ShutdownWithContext(ctx); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("httpapi: shutdown: %w", err)
	}
	return nil
}

// fastLogger sends fasthttp's own messages (connection errors) to the
// debug log: they are about clients, not about the proxy.
type fastLogger struct{ l zerolog.Logger }

func (f fastLogger) Printf(format string, args ...any) { f.l.Debug().Msgf(format, args...) }
