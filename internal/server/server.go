// Package server is the sidecar's HTTP API: it wires the bridge, the
// factors, the policies and the store behind one net/http handler with
// request ids, structured logs, metrics, body limits and JSON errors.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stepup-bridge/stepup-bridge/config"
	"github.com/stepup-bridge/stepup-bridge/factors"
	"github.com/stepup-bridge/stepup-bridge/internal/devices"
	"github.com/stepup-bridge/stepup-bridge/internal/notify"
	"github.com/stepup-bridge/stepup-bridge/internal/pages"
	"github.com/stepup-bridge/stepup-bridge/internal/stepup"
	"github.com/stepup-bridge/stepup-bridge/internal/store"
)

// Check is a readiness probe of one dependency; nil means ready.
type Check struct {
	Name string
	// Check must return within ctx's deadline.
	Check func(ctx context.Context) error
}

// Options are what the server is built from. Config and Store are required.
type Options struct {
	Config config.Config
	Store  store.Store
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Registry collects metrics and serves /metrics. Defaults to a new one.
	Registry *prometheus.Registry
	// Checks are readiness checks besides the store (Keycloak reachable).
	Checks []Check
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// Verifier verifies Keycloak access tokens for the user endpoints.
	Verifier Verifier
	// Factors is the factor registry for the enrolment and management
	// endpoints; nil leaves them out.
	Factors *factors.Registry
	// StepUp runs the step-up and login flows; nil leaves their routes out.
	StepUp *stepup.Service
	// Authz is the forward-auth handler mounted at /v1/authz and below
	// (policies.Authorizer.ForwardAuth with PathPrefix "/v1/authz"); nil
	// leaves it out.
	Authz http.Handler
	// Devices lists and revokes trusted devices (/v1/devices, admin);
	// nil leaves those routes out.
	Devices *devices.Service
	// Notifier serves /v1/activity; nil leaves it out.
	Notifier *notify.Notifier
	// Pages tunes the hosted pages (return_to allow-list, ...); the server
	// fills in the flows, factors, verifier and its own settings. Nil uses
	// the defaults: no return_to allowed. The pages are served when StepUp,
	// Factors and Verifier are set.
	Pages *pages.Config
}

// Server is the sidecar's HTTP server. Build it with New; it is safe for
// concurrent use.
type Server struct {
	cfg      config.Config
	store    store.Store
	log      *slog.Logger
	registry *prometheus.Registry
	metrics  *metrics
	checks   []Check
	now      func() time.Time
	proxies  []*net.IPNet
	verifier Verifier
	stepup   *stepup.Service
	factors  *factors.Registry
	authz    http.Handler
	devices  *devices.Service
	notifier *notify.Notifier
	pages    *pages.Config
	mux      *http.ServeMux
	handler  http.Handler

	mu       sync.Mutex
	listener net.Listener
}

// New builds the server and its routes.
func New(opts Options) (*Server, error) {
	if opts.Store == nil {
		return nil, errors.New("server: a store is required")
	}
	s := &Server{
		cfg:      opts.Config,
		store:    opts.Store,
		log:      opts.Logger,
		registry: opts.Registry,
		checks:   opts.Checks,
		now:      opts.Now,
		verifier: opts.Verifier,
		stepup:   opts.StepUp,
		factors:  opts.Factors,
		authz:    opts.Authz,
		devices:  opts.Devices,
		notifier: opts.Notifier,
		pages:    opts.Pages,
		mux:      http.NewServeMux(),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.registry == nil {
		s.registry = prometheus.NewRegistry()
	}
	if s.now == nil {
		s.now = time.Now
	}
	for _, cidr := range opts.Config.Listen.TrustedProxies {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			return nil, fmt.Errorf("server: listen.trusted_proxies: %w", err)
		}
		s.proxies = append(s.proxies, n)
	}
	m, err := newMetrics(s.registry)
	if err != nil {
		return nil, fmt.Errorf("server: registering metrics: %w", err)
	}
	s.metrics = m
	s.routes()
	s.handler = s.middleware(s.mux)
	return s, nil
}

// Handler returns the whole API as one handler (tests mount it in httptest).
func (s *Server) Handler() http.Handler { return s.handler }

// Handle mounts an extra handler on the server's mux, inside its
// middleware. Route patterns follow net/http.ServeMux.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

func (s *Server) routes() {
	s.mux.HandleFunc("GET /healthz", s.handleHealthz)
	s.mux.HandleFunc("GET /readyz", s.handleReadyz)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}))
	if s.authz != nil {
		// Every method: nginx and Envoy ask with the original method.
		// Below /v1/authz/ is Envoy ext_authz's path-prefix mode.
		s.mux.Handle("/v1/authz", s.authz)
		s.mux.Handle("/v1/authz/", s.authz)
	}
	s.stepUpRoutes()
	s.factorRoutes()
	s.deviceRoutes()
	s.hostedRoutes()
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, &apiError{Status: http.StatusNotFound, Code: "not_found",
			Description: "no route for " + r.Method + " " + r.URL.Path})
	})
}

// handleHealthz is liveness: the process serves HTTP. It checks nothing
// else, so a Keycloak outage never gets the pods restarted.
func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// handleReadyz is readiness: the store and every dependency answer.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := append([]Check{{Name: "store", Check: s.store.Ping}}, s.checks...)
	result := map[string]string{}
	ready := true
	for _, c := range checks {
		if err := c.Check(ctx); err != nil {
			ready = false
			result[c.Name] = "unavailable"
			s.log.WarnContext(ctx, "readiness check failed", "check", c.Name, "err", err)
			continue
		}
		result[c.Name] = "ok"
	}
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, map[string]any{"ready": ready, "checks": result})
}

// Listen binds the configured address; Addr tells the bound address after.
func (s *Server) Listen() error {
	l, err := net.Listen("tcp", s.cfg.Listen.Addr)
	if err != nil {
		return fmt.Errorf("server: listening on %s: %w", s.cfg.Listen.Addr, err)
	}
	s.mu.Lock()
	s.listener = l
	s.mu.Unlock()
	return nil
}

// Addr is the bound address, or "" before Listen.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listener == nil {
		return ""
	}
	return s.listener.Addr().String()
}

// Serve serves until ctx is done, then stops accepting and lets in-flight
// requests finish within listen.shutdown_timeout. It calls Listen if
// needed.
func (s *Server) Serve(ctx context.Context) error {
	if s.Addr() == "" {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	l := s.listener
	lc := s.cfg.Listen
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: lc.ReadHeaderTimeout,
		ReadTimeout:       lc.ReadTimeout,
		WriteTimeout:      lc.WriteTimeout,
		IdleTimeout:       lc.IdleTimeout,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	s.log.Info("serving", "addr", l.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("server: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down: draining in-flight requests", "timeout", lc.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), lc.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("server: shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("server: %w", err)
	}
	s.log.Info("stopped")
	return nil
}
