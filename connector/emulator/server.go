package emulator

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Client is an OAuth application registered with the emulator.
type Client struct {
	ID string
	// Secret authenticates the client at the token and revocation endpoints.
	// An empty Secret makes a public client: it identifies itself with
	// client_id alone and must use PKCE.
	Secret string
	// Name is the application name shown on the consent page; default ID.
	Name string
	// RedirectURIs are compared exactly. Empty allows any loopback http URI
	// (http://127.0.0.1:PORT/..., http://localhost:PORT/..., http://[::1]:PORT/...)
	// and the out-of-band URI urn:ietf:wg:oauth:2.0:oob.
	RedirectURIs []string
	// ServiceAccount lets the client use the client_credentials grant, as a
	// Procore Developer Managed Service Account does. A public client (no
	// Secret) never may, whatever this says: the grant needs a client that
	// authenticates (RFC 6749 4.4).
	ServiceAccount bool
}

// Config configures a Server. The zero value of each field picks a Procore-like default.
type Config struct {
	Clients []Client
	// TokenLifetime is the access-token lifetime reported as expires_in; default 5400s.
	TokenLifetime time.Duration
	// RateLimit is the number of API requests a token may make per RateWindow
	// before it gets 429; defaults (for 0) 3600 per hour. The budget belongs
	// to the grant: a refreshed token keeps what its predecessor left.
	RateLimit  int
	RateWindow time.Duration
	// Now is the emulator's clock; default time.Now. Tests move it to expire
	// tokens, codes and rate-limit windows.
	Now func() time.Time
	// Issuer, when set, is sent as iss in every authorization response
	// (RFC 9207). SetIssuer changes it later, e.g. to the URL Start returns.
	Issuer string
	// Seed sizes the API's seed data; the zero value gives the Demo* counts.
	Seed Seed
	// AutoApprove answers a valid authorization request at once, as if the
	// demo user had clicked Allow: GET /oauth/authorize redirects to the
	// redirect URI with a code (or shows it, for the out-of-band URI)
	// instead of showing the consent page. A Go test or an embedder's
	// integration test can then follow the redirect with any HTTP client,
	// without a browser or scraping the form. Invalid requests fail as
	// without it. The device grant's verification page is approved the
	// same way: GET /oauth/device?user_code=... (verification_uri_complete)
	// allows that code at once.
	AutoApprove bool
	// RefreshTokenIdleLifetime, when set, makes a refresh token that stayed
	// unused for longer than this (counted from its issue) answer
	// invalid_grant, as providers whose refresh tokens die when idle do
	// (Box: 60 days). Zero: refresh tokens do not expire until used, as at
	// Procore.
	RefreshTokenIdleLifetime time.Duration
	// DeviceCodeLifetime is the device authorization grant's expires_in
	// (RFC 8628 3.2); default 10 minutes. DeviceInterval is its polling
	// interval; default 5s, the RFC's default. See device.go.
	DeviceCodeLifetime time.Duration
	DeviceInterval     time.Duration
	// PARLifetime is how long a pushed authorization request's
	// request_uri works (RFC 9126 2.2, POST /oauth/par); default 1 minute.
	// See par.go.
	PARLifetime time.Duration
}

// Stats counts what the emulator has seen since New.
type Stats struct {
	// TokenRequests counts every POST /oauth/token by its grant_type
	// parameter ("" when missing or unreadable), injected failures included.
	TokenRequests map[string]int
	// Refreshes, CodeExchanges and ClientCredentials count successful grants,
	// including those whose response was dropped.
	Refreshes         int
	CodeExchanges     int
	ClientCredentials int
	// GrantRevocations counts grants revoked because a single-use credential
	// (a refresh token or an authorization code) was presented again.
	GrantRevocations int
	// Revocations counts grants revoked through POST /oauth/revoke.
	Revocations int
	// RateLimited counts API requests answered 429.
	RateLimited int
	// APIRequests counts every request to /rest/..., rejected ones included.
	APIRequests int
	// APIRequestsByRoute counts the same requests by "METHOD pattern" of
	// their route, e.g. "POST /rest/v1.0/projects/{project_id}/rfis"; a
	// request that matches no route counts under "METHOD path".
	APIRequestsByRoute map[string]int
	// FailedAPIRequests counts API requests failed by FailAPIRequests, and
	// ExpiredAccessTokens the tokens expired by ExpireAccessTokens.
	FailedAPIRequests   int
	ExpiredAccessTokens int
	// IdempotentReplays counts POST and PATCH requests answered from an
	// earlier request with the same Idempotency-Token.
	IdempotentReplays int
	// WebhookDeliveries counts recorded webhook deliveries, sent or not.
	WebhookDeliveries int
	// FailedTokenRequests and DroppedTokenResponses count injected faults.
	FailedTokenRequests   int
	DroppedTokenResponses int
	// IssuedGrants counts grants made by IssueTokens, and
	// IdleExpiredRefreshes the refreshes refused because the refresh token
	// outlived Config.RefreshTokenIdleLifetime unused.
	IssuedGrants         int
	IdleExpiredRefreshes int
	// DeviceAuthorizations counts device codes handed out, DevicePolls the
	// token requests with the device_code grant, DeviceSlowDowns those
	// answered slow_down (polled too soon, or SlowDownDevicePolls), and
	// DeviceGrants the device codes exchanged for tokens.
	DeviceAuthorizations int
	DevicePolls          int
	DeviceSlowDowns      int
	DeviceGrants         int
	// PushedRequests counts POST /oauth/par requests, and PushedExpired
	// the authorization requests refused because their request_uri had
	// expired.
	PushedRequests int
	PushedExpired  int
}

// Server is a Procore emulator. It is an http.Handler and is safe for
// concurrent use; all state lives in memory behind one mutex.
type Server struct {
	cfg      Config
	handler  http.Handler
	inFlight atomic.Int64

	mu       sync.Mutex
	clients  map[string]*Client
	consents map[string]*consent  // consent-page request id → pending authorization
	codes    map[string]*authCode // authorization code → its binding
	access   map[string]*accessToken
	refresh  map[string]*refreshToken
	data     *dataset
	stats    Stats
	swept    time.Time // last purge of expired consents and codes
	failN    int       // token requests still to fail (FailTokenRequests)
	failCode int
	dropN    int // token responses still to drop (DropTokenResponses)
	apiFail  apiFault
	expireN  int // API requests still to find their token expired (ExpireAccessTokens)
	idem     map[idemKey]*idemEntry
	hooks    *http.Client              // sends webhook deliveries, to loopback addresses only
	devices  map[string]*deviceAuth    // device code → its authorization (device.go)
	slowN    int                       // device polls still to answer slow_down (SlowDownDevicePolls)
	pushed   map[string]*pushedRequest // request_uri → pushed authorization request (par.go)

	lifeMu  sync.Mutex // guards the fields below, which Start and Close use
	httpSrv *http.Server
	closed  bool
}

const (
	defaultTokenLifetime = 5400 * time.Second
	defaultRateLimit     = 3600
	defaultRateWindow    = time.Hour
)

// New returns a Server with the seed data (two companies, cfg.Seed.Projects
// projects in the first, see Seed). It panics if two clients share an ID or one has
// none, as that is a programming error in the caller.
func New(cfg Config) *Server {
	if cfg.TokenLifetime <= 0 {
		cfg.TokenLifetime = defaultTokenLifetime
	}
	if cfg.RateLimit <= 0 {
		cfg.RateLimit = defaultRateLimit
	}
	if cfg.RateWindow <= 0 {
		cfg.RateWindow = defaultRateWindow
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.DeviceCodeLifetime <= 0 {
		cfg.DeviceCodeLifetime = defaultDeviceCodeLifetime
	}
	if cfg.DeviceInterval <= 0 {
		cfg.DeviceInterval = defaultDeviceInterval
	}
	if cfg.PARLifetime <= 0 {
		cfg.PARLifetime = defaultPARLifetime
	}
	s := &Server{
		clients:  make(map[string]*Client, len(cfg.Clients)),
		consents: make(map[string]*consent),
		codes:    make(map[string]*authCode),
		access:   make(map[string]*accessToken),
		refresh:  make(map[string]*refreshToken),
		data:     seedData(cfg.Seed.withDefaults()),
		stats:    Stats{TokenRequests: make(map[string]int), APIRequestsByRoute: make(map[string]int)},
		idem:     make(map[idemKey]*idemEntry),
		hooks:    newHookClient(),
		devices:  make(map[string]*deviceAuth),
		pushed:   make(map[string]*pushedRequest),
	}
	for _, c := range cfg.Clients {
		if c.ID == "" {
			panic("emulator: a Client has an empty ID")
		}
		if _, dup := s.clients[c.ID]; dup {
			panic(fmt.Sprintf("emulator: two clients have the ID %q", c.ID))
		}
		c.RedirectURIs = slices.Clone(c.RedirectURIs)
		if c.Name == "" {
			c.Name = c.ID
		}
		s.clients[c.ID] = &c
	}
	cfg.Clients = nil // the copies in s.clients are authoritative
	s.cfg = cfg

	mux := http.NewServeMux()
	mux.HandleFunc("GET /oauth/authorize", s.authorizeForm)
	mux.HandleFunc("POST /oauth/authorize", s.authorizeDecision)
	mux.HandleFunc("POST /oauth/token", s.token)
	mux.HandleFunc("POST /oauth/par", s.pushAuthorization)
	mux.HandleFunc("POST /oauth/revoke", s.revoke)
	mux.HandleFunc("GET /oauth/token/info", s.tokenInfo)
	mux.HandleFunc("POST /oauth/device/code", s.deviceAuthorization)
	mux.HandleFunc("GET /oauth/device", s.deviceForm)
	mux.HandleFunc("POST /oauth/device", s.deviceDecision)
	mux.HandleFunc("/rest/", s.serveAPI)
	s.handler = mux
	return s
}

// ServeHTTP answers for both the login host and the API host.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	s.handler.ServeHTTP(w, r)
}

// InFlight is the number of requests being handled now. A test that killed
// a client waits for it to reach 0 before reading Stats: the server goes on
// with a request whose sender died.
func (s *Server) InFlight() int { return int(s.inFlight.Load()) }

// Start listens on addr, which must be a loopback address such as
// "127.0.0.1:0", and serves until ctx ends or Close is called. It returns
// the base URL of both hosts, "http://127.0.0.1:PORT".
func (s *Server) Start(ctx context.Context, addr string) (string, error) {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if s.closed {
		return "", errors.New("emulator: Start after Close; create a new Server with New")
	}
	if s.httpSrv != nil {
		return "", errors.New("emulator: Start called twice; one Server serves one listener")
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("emulator: listen on %q: %w", addr, err)
	}
	// The emulator hands out well-known demo credentials: never expose it
	// beyond this machine.
	if ta, ok := ln.Addr().(*net.TCPAddr); !ok || !ta.IP.IsLoopback() {
		ln.Close()
		return "", fmt.Errorf("emulator: listen on %q: not a loopback address; use 127.0.0.1:PORT or localhost:PORT", addr)
	}
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
	}
	s.httpSrv = srv
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln) // returns ErrServerClosed after Close
	}()
	go func() {
		select {
		case <-ctx.Done():
			_ = s.Close()
		case <-served:
		}
	}()
	return "http://" + ln.Addr().String(), nil
}

// Close stops the listener started by Start and closes its connections.
// It is safe to call more than once.
func (s *Server) Close() error {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.httpSrv == nil {
		return nil
	}
	if err := s.httpSrv.Close(); err != nil {
		return fmt.Errorf("emulator: close: %w", err)
	}
	return nil
}

// FailTokenRequests makes the next n POST /oauth/token requests answer
// status (with Retry-After: 1) without being processed: no code is used and
// no refresh token is burned. A status outside 400-599 means 503; n <= 0
// cancels what is left of an earlier call.
func (s *Server) FailTokenRequests(n int, status int) {
	if status < 400 || status > 599 {
		status = http.StatusServiceUnavailable
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failN = max(n, 0)
	s.failCode = status
}

// SetIssuer sets the iss parameter of later authorization responses; ""
// stops sending it. A server started on port 0 learns its URL only from
// Start, after New.
func (s *Server) SetIssuer(issuer string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg.Issuer = issuer
}

// DropTokenResponses makes the next n token requests be processed in full —
// a refresh rotates and burns the old refresh token, a code is used up — and
// then closes the connection without an answer, as when a response is lost
// on the way back. n <= 0 cancels what is left of an earlier call. The
// connection is taken over with http.Hijacker; where that is impossible
// (HTTP/2, httptest.ResponseRecorder) the handler panics with
// http.ErrAbortHandler, which net/http turns into a reset.
func (s *Server) DropTokenResponses(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropN = max(n, 0)
}

// RefreshTokenUsed reports whether the emulator issued the refresh token rt
// and whether it has since been used (rotated away). It lets a test tell a
// refresh whose answer was lost, which consumed the token, from one that
// never reached the provider.
func (s *Server) RefreshTokenUsed(rt string) (used, issued bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.refresh[rt]
	if !ok {
		return false, false
	}
	return r.used, true
}

// IssueTokens makes a grant for the client as if its user had approved
// and the code been exchanged, without the browser and HTTP round trips: a
// test that needs thousands of connections seeds their tokens with it. The
// tokens behave like any others (the refresh token rotates, and reuse
// revokes the grant).
func (s *Server) IssueTokens(clientID string) (accessToken, refreshToken string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clients[clientID] == nil {
		return "", "", fmt.Errorf("emulator: IssueTokens: no client %q", clientID)
	}
	g := &grant{clientID: clientID, userID: DemoUserID}
	s.stats.IssuedGrants++
	resp := s.issueLocked(g, true, s.now())
	return resp.AccessToken, resp.RefreshToken, nil
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.TokenRequests = maps.Clone(s.stats.TokenRequests)
	st.APIRequestsByRoute = maps.Clone(s.stats.APIRequestsByRoute)
	return st
}

// String describes the server without its secrets or tokens, which %v
// would otherwise print from the maps they key.
func (s *Server) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("emulator.Server{clients: %d, access tokens: %d, refresh tokens: %d}",
		len(s.clients), len(s.access), len(s.refresh))
}

// GoString is String, for %#v.
func (s *Server) GoString() string { return s.String() }

// String describes the client with its secret redacted.
func (c Client) String() string {
	secret := "none (public client)"
	if c.Secret != "" {
		secret = "[redacted]"
	}
	return fmt.Sprintf("emulator.Client{ID: %q, Secret: %s, Name: %q, RedirectURIs: %q, ServiceAccount: %t}",
		c.ID, secret, c.Name, c.RedirectURIs, c.ServiceAccount)
}

// GoString is String, for %#v.
func (c Client) GoString() string { return c.String() }

// now reads the configured clock.
func (s *Server) now() time.Time { return s.cfg.Now() }

// randomString returns n random bytes, base64url-encoded: unguessable ids,
// codes and tokens.
func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}
