// Package server is the HTTP layer of `connector serve`: a multi-tenant
// connections service that a platform runs on one host or many, or mounts in
// its own mux. It owns the routes, API-key authentication, problem details,
// the browser pages of the authorization callback, metrics and request
// logs. Everything else is the engine's: handlers translate HTTP into calls
// of definitions, connector (Flow, Source, API) and the token store, and
// keep their state in connector/server/state, so that no replica holds
// anything another needs.
package server

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/connector-engine/connector/connector/server/state"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/definitions"
)

// Config is what a Server needs. State, Tokens, Definitions and PublicURL
// are required.
type Config struct {
	State       *state.DB
	Tokens      store.Store // the connections' tokens, keyed by connection id
	Definitions *definitions.Set
	// PublicURL is where browsers reach this server (https://connect.example.com);
	// the OAuth redirect URI is PublicURL/oauth/callback.
	PublicURL string
	// ReturnTo lists the URL prefixes (origins, or origins and paths) a
	// browser may be sent back to after authorizing.
	ReturnTo []string
	// AllowHosts lists the hosts an OAuth client's base_url and login_url
	// overrides may name (exact names, or "*.example.com"); loopback and
	// private addresses are refused unless AllowPrivate.
	AllowHosts   []string
	AllowPrivate bool
	// Transport sends requests to providers; nil means the engine's default.
	Transport http.RoundTripper
	// Logger gets one JSON line per request; nil means slog.Default().
	Logger *slog.Logger
	// Registry gets the server's metrics; nil means a registry of its own
	// (served at /metrics either way).
	Registry *prometheus.Registry
	// SessionLifetime bounds an authorization attempt; default 10 minutes.
	SessionLifetime time.Duration
	// TokenMargin is how long a token handed out must stay valid; default
	// the engine's refresh margin.
	TokenMargin time.Duration
	// ConnectLifetime bounds a connect link (POST /v1/connect-sessions);
	// default 30 minutes.
	ConnectLifetime time.Duration
	// AdminLifetime bounds an admin page sign-in; default 8 hours.
	AdminLifetime time.Duration
	// EngineCache bounds how many connections' engines are kept in memory,
	// least recently used dropped first; default (0) DefaultEngineCache,
	// NoEngineCache to keep none.
	EngineCache int
	// EventRetention is how long delivered events and dead letters are
	// kept (and a webhook delivery's key de-duplicates); default
	// state.DefaultEventRetention, at least state.MinEventRetention.
	EventRetention time.Duration
}

// Server serves the API. It is an http.Handler.
type Server struct {
	cfg      Config
	mux      *http.ServeMux
	handler  http.Handler
	log      *slog.Logger
	metrics  *metrics
	patterns []string
	callback string // the redirect URI

	// pagePatterns are the browser pages (pages.go), kept apart from the
	// API routes the OpenAPI document lists.
	pagePatterns []string

	engines *engineCache // by connection id, LRU-bounded (cache.go)
	keys    keyCache

	events   *eventsPart   // events.go
	webhooks *webhooksPart // webhooks.go
}

// New checks cfg and returns the server.
func New(cfg Config) (*Server, error) {
	var errs []error
	if cfg.State == nil {
		errs = append(errs, errors.New("server: no state database"))
	}
	if cfg.Tokens == nil {
		errs = append(errs, errors.New("server: no token store"))
	}
	if cfg.Definitions == nil {
		cfg.Definitions = definitions.Builtin()
	}
	u, err := url.Parse(cfg.PublicURL)
	if err != nil || !u.IsAbs() || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.RawQuery != "" || u.Fragment != "" {
		errs = append(errs, fmt.Errorf("server: the public URL %q must be an absolute http(s) URL without query or fragment, such as https://connect.example.com", cfg.PublicURL))
	}
	for _, rt := range cfg.ReturnTo {
		if ru, err := url.Parse(rt); err != nil || !ru.IsAbs() || ru.Host == "" {
			errs = append(errs, fmt.Errorf("server: return_to allow-list entry %q must be an absolute URL", rt))
		}
	}
	if cfg.EventRetention != 0 && cfg.EventRetention < state.MinEventRetention {
		errs = append(errs, fmt.Errorf("server: an event retention of %s is shorter than %s, the providers' redelivery window (Stripe's is 3 days): a redelivery after the purge would be forwarded again", cfg.EventRetention, state.MinEventRetention))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.SessionLifetime <= 0 {
		cfg.SessionLifetime = 10 * time.Minute
	}
	if cfg.ConnectLifetime <= 0 {
		cfg.ConnectLifetime = 30 * time.Minute
	}
	if cfg.AdminLifetime <= 0 {
		cfg.AdminLifetime = 8 * time.Hour
	}
	s := &Server{
		cfg: cfg, mux: http.NewServeMux(), log: cfg.Logger, engines: newEngineCache(cfg.EngineCache),
		callback: strings.TrimSuffix(cfg.PublicURL, "/") + CallbackPath,
	}
	s.cfg.Tokens = &learnWatch{Store: cfg.Tokens, s: s} // learned.go
	if s.metrics, err = newMetrics(cfg.Registry, cfg.State, s.engines); err != nil {
		return nil, err
	}
	if s.events, err = newEventsPart(cfg.Registry, cfg.State); err != nil {
		return nil, err
	}
	if s.webhooks, err = newWebhooksPart(cfg.Registry); err != nil {
		return nil, err
	}
	s.routes()
	s.handler = s.observe(s.mux)
	return s, nil
}

// CallbackPath is where providers redirect browsers after authorization.
const CallbackPath = "/oauth/callback"

// RedirectURI is the redirect URI to register with providers.
func (s *Server) RedirectURI() string { return s.callback }

// ServeHTTP serves every route.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Patterns returns the routes the server registers ("METHOD /path"), for
// documentation checks.
func (s *Server) Patterns() []string { return slices.Clone(s.patterns) }

// access is what a route requires of the caller.
type access struct {
	scope state.Scope // "" for public routes
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, p state.Principal)

func (s *Server) handle(pattern string, a access, h handlerFunc) {
	s.patterns = append(s.patterns, pattern)
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		var p state.Principal
		if a.scope != "" {
			var prob *Problem
			if p, prob = s.authenticate(r, a.scope); prob != nil {
				writeProblem(w, r, prob)
				return
			}
			setTenant(r, p.Tenant)
		}
		h(w, r, p)
	})
}

func (s *Server) routes() {
	pub := access{}
	s.handle("GET /healthz", pub, func(w http.ResponseWriter, r *http.Request, _ state.Principal) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.handle("GET /readyz", pub, s.ready)
	s.handle("GET /metrics", pub, s.serveMetrics)
	s.handle("GET /v1/openapi.json", pub, serveOpenAPI)
	s.handle("GET "+CallbackPath, pub, s.callbackHandler)

	read, write := access{state.ScopeConnectionsRead}, access{state.ScopeConnectionsWrite}
	admin := access{state.ScopeAdmin}
	s.handle("GET /v1/definitions", read, s.listDefinitions)
	s.handle("GET /v1/definitions/{name}", read, s.getDefinition)
	s.handle("POST /v1/definitions/validate", read, s.validateDefinition)

	s.handle("POST /v1/oauth-clients", admin, s.createClient)
	s.handle("GET /v1/oauth-clients", admin, s.listClients)
	s.handle("GET /v1/oauth-clients/{id}", admin, s.getClient)
	s.handle("POST /v1/oauth-clients/{id}/rotate-secret", admin, s.rotateClient)
	s.handle("DELETE /v1/oauth-clients/{id}", admin, s.deleteClient)

	s.handle("POST /v1/connections", write, s.createConnection)
	s.handle("GET /v1/connections", read, s.listConnections)
	s.handle("GET /v1/connections/{id}", read, s.getConnection)
	s.handle("DELETE /v1/connections/{id}", write, s.deleteConnection)
	s.handle("PATCH /v1/connections/{id}/fields", write, s.updateFields) // handlers_credentials.go
	s.handle("POST /v1/connections/{id}/refresh", write, s.refreshConnection)
	s.handle("POST /v1/connections/{id}/authorize", write, s.authorize)
	s.handle("POST /v1/connections/{id}/token", access{state.ScopeToken}, s.token)
	s.handle("/v1/connections/{id}/proxy/{path...}", access{state.ScopeProxy}, s.proxy)
	s.handle("POST /v1/connections/{id}/actions/{action}", access{state.ScopeProxy}, s.action)
	s.eventRoutes() // events_routes.go
	s.pageRoutes()

	s.webhookRoutes() // webhooks.go

	// Anything else under /v1 is a problem document, not the mux's text.
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, problem(http.StatusNotFound, "no-such-route", "", "no route %s %s; see /v1/openapi.json", r.Method, r.URL.Path))
	})
}

func (s *Server) authenticate(r *http.Request, scope state.Scope) (state.Principal, *Problem) {
	h := r.Header.Get("Authorization")
	key, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || key == "" {
		return state.Principal{}, problem(http.StatusUnauthorized, "unauthenticated", "Authorization", "send an API key as Authorization: Bearer <key>")
	}
	p, err := s.principal(r.Context(), strings.TrimSpace(key))
	if errors.Is(err, state.ErrUnauthorized) {
		return state.Principal{}, problem(http.StatusUnauthorized, "unauthenticated", "Authorization", "the API key is not valid")
	}
	if err != nil {
		s.log.ErrorContext(r.Context(), "authenticating", "error", err)
		return state.Principal{}, problem(http.StatusServiceUnavailable, "unavailable", "", "the state database is not answering; try again")
	}
	if !p.Can(scope) {
		return state.Principal{}, problem(http.StatusForbidden, "missing-scope", "Authorization", "this API key lacks the %s scope this request needs", scope)
	}
	return p, nil
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request, _ state.Principal) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := s.cfg.State.Ready(ctx); err != nil {
		writeProblem(w, r, problem(http.StatusServiceUnavailable, "not-ready", "", "%v", err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// HTTPServer returns an http.Server for the handler with the limits a
// service on a network needs: header sizes and read timeouts against slow
// clients. It has no write timeout, since proxied responses may stream
// for long; each outgoing request is bounded by the engine's timeouts.
func HTTPServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return context.Background() },
	}
}

// mapStateError turns a state error into a problem; field names the
// parameter the missing object was named by.
func (s *Server) stateProblem(r *http.Request, err error, field, what string) *Problem {
	switch {
	case errors.Is(err, state.ErrNotFound):
		return problem(http.StatusNotFound, "not-found", field, "no %s %q", what, r.PathValue("id"))
	case errors.Is(err, state.ErrInUse):
		return problem(http.StatusConflict, "in-use", field, "%v", err)
	case errors.Is(err, state.ErrConflict):
		return problem(http.StatusConflict, "conflict", field, "%v", err)
	}
	s.log.ErrorContext(r.Context(), "state", "error", err)
	return problem(http.StatusServiceUnavailable, "unavailable", "", "the state database failed; try again")
}
