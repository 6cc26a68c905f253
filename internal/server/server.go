// Package server is the broker's HTTP front: the route table, the
// middleware every request passes (panic recovery, access log, metrics,
// security headers), the health and metrics endpoints, and graceful
// shutdown. The packages that own endpoints (catalog, tokens, and later
// mcpserver, proxy and sessions) hand it handlers; it owns none of them.
package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/agentbroker/agentbroker/internal/metrics"
	"github.com/agentbroker/agentbroker/store"
)

// Options configures New. Zero values mean the documented defaults.
type Options struct {
	// Logger receives the access log and lifecycle messages. Nil: silent.
	Logger *slog.Logger
	// Metrics is the registry served at /metrics. Nil: a fresh registry.
	Metrics *metrics.Registry
	// Health is checked by /readyz. Nil: /readyz answers 503.
	Health store.Health
	// ReadyInfo adds fields to /readyz's body, whatever its status: facts
	// an operator must see, such as how agents are confined.
	ReadyInfo map[string]any
	// ReadyFunc, when set, adds fields computed at each /readyz (the
	// node's identity and owned sessions).
	ReadyFunc func() map[string]any
	// ShutdownTimeout bounds how long in-flight requests may take to finish
	// once shutdown begins. Default 15s.
	ShutdownTimeout time.Duration
	// ReadHeaderTimeout guards against clients that never finish their
	// headers (slowloris). Default 10s.
	ReadHeaderTimeout time.Duration
	// MaxHeaderBytes caps request headers. Default 64 KiB.
	MaxHeaderBytes int
	// BodyReadTimeout bounds how long a request body may take to arrive
	// (slowloris on the body: headers at once, then a byte now and then).
	// The deadline is lifted once the body has been read, so that
	// streamed responses are not cut. Default 60s.
	BodyReadTimeout time.Duration
	// OnShutdown functions run when shutdown begins, before waiting for
	// in-flight requests: for handlers that hold long streams open (an MCP
	// GET stream, a WebSocket) and must end them for Shutdown to finish.
	OnShutdown []func()
}

// Server is the broker's HTTP server.
type Server struct {
	mux      *http.ServeMux
	log      *slog.Logger
	metrics  *metrics.Registry
	health   store.Health
	opts     Options
	requests *metrics.CounterVec
	latency  *metrics.HistogramVec
	inflight *metrics.Gauge
}

// New returns a server with /healthz, /readyz and /metrics mounted.
func New(opts *Options) *Server {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = metrics.NewRegistry()
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 15 * time.Second
	}
	if o.ReadHeaderTimeout <= 0 {
		o.ReadHeaderTimeout = 10 * time.Second
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = 64 << 10
	}
	if o.BodyReadTimeout <= 0 {
		o.BodyReadTimeout = 60 * time.Second
	}
	s := &Server{
		mux:     http.NewServeMux(),
		log:     o.Logger,
		metrics: o.Metrics,
		health:  o.Health,
		opts:    o,
		requests: o.Metrics.NewCounterVec("agentbroker_http_requests_total",
			"HTTP requests answered, by route pattern, method and status code.", "route", "method", "code"),
		latency: o.Metrics.NewHistogramVec("agentbroker_http_request_duration_seconds",
			"Time to answer HTTP requests, by route pattern.", nil, "route"),
		inflight: o.Metrics.NewGaugeVec("agentbroker_http_requests_in_flight",
			"HTTP requests being answered now.").With(),
	}
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", o.Metrics)
	return s
}

// Handle mounts h at pattern (net/http ServeMux syntax, method allowed).
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Metrics is the registry served at /metrics, for other packages' series.
func (s *Server) Metrics() *metrics.Registry { return s.metrics }

// Handler is the whole stack: middleware around the route table.
func (s *Server) Handler() http.Handler {
	return s.recover(s.observe(securityHeaders(s.limitBodyTime(s.mux))))
}

// limitBodyTime gives a request body BodyReadTimeout to arrive: a client
// that trickles it is cut off (its handler's read fails) instead of
// holding a handler and a connection for as long as it likes. The
// deadline is lifted when the body has been read to its end.
func (s *Server) limitBodyTime(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		if err := rc.SetReadDeadline(time.Now().Add(s.opts.BodyReadTimeout)); err != nil {
			next.ServeHTTP(w, r) // a writer without deadlines (a test recorder)
			return
		}
		r.Body = &deadlineBody{ReadCloser: r.Body, lift: func() { _ = rc.SetReadDeadline(time.Time{}) }}
		next.ServeHTTP(w, r)
	})
}

// deadlineBody lifts the read deadline once the body has been read.
type deadlineBody struct {
	io.ReadCloser
	once sync.Once
	lift func()
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.once.Do(b.lift)
	}
	return n, err
}

// Run serves on ln until ctx is done, then stops accepting, lets in-flight
// requests finish (up to ShutdownTimeout) and returns an error wrapping
// ctx's cause (context.Canceled for an ordinary stop). A failure to serve
// returns at once.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: s.opts.ReadHeaderTimeout,
		MaxHeaderBytes:    s.opts.MaxHeaderBytes,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	for _, f := range s.opts.OnShutdown {
		srv.RegisterOnShutdown(f)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	s.log.Info("listening", "addr", ln.Addr().String())

	select {
	case err := <-served:
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down: finishing in-flight requests", "timeout", s.opts.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-served
	if err != nil {
		srv.Close()
		return fmt.Errorf("shutdown: in-flight requests did not finish in %s: %w", s.opts.ShutdownTimeout, err)
	}
	s.log.Info("stopped")
	return fmt.Errorf("server stopped: %w", context.Cause(ctx))
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	status, body := s.readiness(r.Context())
	for k, v := range s.opts.ReadyInfo {
		body[k] = v
	}
	if s.opts.ReadyFunc != nil {
		for k, v := range s.opts.ReadyFunc() {
			body[k] = v
		}
	}
	WriteJSON(w, status, body)
}

func (s *Server) readiness(ctx context.Context) (int, map[string]any) {
	if s.health == nil {
		return http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "reason": "no store"}
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := s.health.Ping(ctx); err != nil {
		s.log.Warn("readiness: store unreachable", "err", err)
		return http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "reason": "store unreachable"}
	}
	applied, known, err := s.health.SchemaVersion(ctx)
	if err != nil || applied != known {
		s.log.Warn("readiness: schema not current", "applied", applied, "known", known, "err", err)
		return http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "reason": "migrations not applied",
			"schema_version": applied, "schema_known": known}
	}
	return http.StatusOK, map[string]any{"status": "ready", "schema_version": applied}
}

// statusWriter records the status code and keeps http.Flusher and friends
// reachable through Unwrap (http.ResponseController uses it).
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		if w.code == 0 {
			w.code = http.StatusOK
		}
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack lets WebSocket upgrades through (gorilla/websocket asserts
// http.Hijacker on the writer it is given); the request counts as 101.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("server: the connection cannot be hijacked")
	}
	if w.code == 0 {
		w.code = http.StatusSwitchingProtocols
	}
	return h.Hijack()
}

// observe logs and counts each request. It logs the path, never the query
// string: bearer tokens do not belong there, but a client may put one there.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		s.inflight.Add(1)
		defer s.inflight.Add(-1)
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.code == 0 {
			sw.code = http.StatusOK
		}
		route := r.Pattern // set by the mux on the request it routed
		if route == "" {
			route = "unmatched"
		}
		elapsed := time.Since(start)
		s.requests.With(route, r.Method, strconv.Itoa(sw.code)).Inc()
		s.latency.With(route).Observe(elapsed.Seconds())
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "http request",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("route", route),
			slog.Int("status", sw.code), slog.Duration("duration", elapsed), slog.String("remote", r.RemoteAddr))
	})
}

func (s *Server) recover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("handler panic", "path", r.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				WriteError(w, http.StatusInternalServerError, "internal_error", "internal server error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		next.ServeHTTP(w, r)
	})
}

// WriteJSON writes v as JSON with the status code.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	if w.Header().Get("Cache-Control") == "" {
		w.Header().Set("Cache-Control", "no-store")
	}
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client is gone; nothing to tell it
}

// WriteError writes the broker's JSON error shape.
func WriteError(w http.ResponseWriter, code int, kind, description string) {
	WriteJSON(w, code, map[string]string{"error": kind, "error_description": description})
}
