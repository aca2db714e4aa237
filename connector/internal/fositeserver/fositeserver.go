// Package fositeserver runs a real OAuth 2.0 authorization server,
// github.com/ory/fosite, in-process on 127.0.0.1 for integration tests.
//
// The OAuth behaviour (client authentication, PKCE, code and refresh-token
// rules, revocation, token validation) is fosite's, not ours: testing the
// engine against a server we wrote would only test our reading of the RFCs
// against itself. This package owns the wiring around it: an auto-consenting
// user "alice", a bearer-protected resource, counters, and fault injection
// (denied consent, lost token responses) that a real server offers no way
// to trigger.
package fositeserver

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/storage"
)

// Subject is the resource owner every authorization is granted for.
const Subject = "alice"

// Client is an OAuth client registered with the server.
type Client struct {
	ID     string
	Secret string // empty for public clients
	// RedirectURIs are matched exactly, except that a loopback
	// (127.0.0.1, [::1]) URI matches any port (RFC 8252 section 7.3).
	RedirectURIs []string
	Public       bool
	// Scopes the client may request; requesting any other is invalid_scope.
	Scopes []string
	// GrantTypes the client may use. Empty means authorization_code and
	// refresh_token, plus client_credentials for a confidential client.
	GrantTypes []string
	// PublicKey, when set, makes the client authenticate with
	// private_key_jwt (RFC 7523 2.2) signed by its private half, with
	// KeyAlgorithm (RS256, ES256, ...); such a client needs no Secret.
	PublicKey    crypto.PublicKey
	KeyAlgorithm string
	// TLSSubject (tls_client_auth, RFC 8705 2.1) or TLSCertificate
	// (self_signed_tls_client_auth, 2.2) makes the client authenticate
	// with its TLS client certificate: the one whose subject DN (RFC 4514
	// form, x509 Name.String) is TLSSubject, or exactly TLSCertificate.
	// Such a client needs no Secret; with one it must send both.
	// Options.ClientCAs must be set.
	TLSSubject     string
	TLSCertificate *x509.Certificate
}

// JWTIssuer is an issuer the JWT bearer grant (RFC 7523 2.1) trusts: its
// assertions for Subject, signed with PublicKey's private half (kid KeyID),
// get the Scopes they ask for among these.
type JWTIssuer struct {
	Issuer, Subject, KeyID, Algorithm string
	PublicKey                         crypto.PublicKey
	Scopes                            []string
}

// String hides the secret so a Client can be logged.
func (c Client) String() string {
	secret := ""
	if c.Secret != "" {
		secret = "[redacted]"
	}
	return fmt.Sprintf("fositeserver.Client{ID:%q Secret:%s RedirectURIs:%q Public:%t Scopes:%q GrantTypes:%q}",
		c.ID, secret, c.RedirectURIs, c.Public, c.Scopes, c.GrantTypes)
}

// GoString hides the secret from %#v as well.
func (c Client) GoString() string { return c.String() }

// Options configures a Server.
type Options struct {
	Clients []Client
	// AccessTokenLifetime defaults to 1h.
	AccessTokenLifetime time.Duration
	// RefreshTokenLifetime defaults to 24h.
	RefreshTokenLifetime time.Duration
	// RequirePKCE rejects authorization requests without an S256
	// code_challenge. S256 is accepted either way; plain never is.
	RequirePKCE bool
	// DenyConsent makes every authorization request end in
	// error=access_denied, as if alice had refused. A single request can
	// be denied instead by adding deny=1 to its query.
	DenyConsent bool
	// AcceptQueryParams copies the token request's URL query parameters
	// into its form body before fosite reads it. fosite, following RFC 6749
	// section 3.2, reads only the body; some providers also read the query
	// and some connection definitions send token parameters there.
	AcceptQueryParams bool
	// JWTIssuers enables the JWT bearer grant for these issuers; the grant
	// then needs no client authentication (Google's service accounts).
	JWTIssuers []JWTIssuer
	// ClientCAs, when set, makes the server HTTPS only, refusing every
	// handshake without a client certificate that chains to these (mutual
	// TLS, RFC 8705; see mtls.go). Server.RootCAs then trusts the server.
	ClientCAs *x509.CertPool
	// RequirePAR refuses authorization requests that were not pushed to
	// /oauth/par first (RFC 9126 5, require_pushed_authorization_requests).
	// The PAR endpoint is served either way.
	RequirePAR bool
	// PARLifetime is how long a pushed request's request_uri works (the
	// expires_in of the answer); default 1 minute. fosite's example store
	// does not check it, so this package does (parStore), as a production
	// store does.
	PARLifetime time.Duration

	tokenURL string // the token endpoint's URL, set by Start: assertions' aud must name it
}

// Stats counts what the server has seen since Start.
type Stats struct {
	TokenRequests int // every request to /oauth/token, whatever its outcome
	CodeExchanges int // authorization codes exchanged for tokens
	Refreshes     int // refresh_token grants that issued new tokens
	// RefreshReuseDetected counts refresh tokens presented again after a
	// refresh rotated them out (each presentation counts).
	RefreshReuseDetected    int
	ClientCredentialsGrants int // client_credentials grants that issued a token
	Revocations             int // revocation requests answered 200
	Introspections          int // introspection requests answered
	APIRequests             int // every request to /api/me
	API401s                 int // /api/me requests refused for want of a valid access token
	// BoundTokenRefusals counts /api/me requests refused because the token
	// is bound to a client certificate the request did not present.
	BoundTokenRefusals int
	// PushedRequests counts every request to /oauth/par, PushedAccepted
	// those answered with a request_uri, and PushedExpired the
	// authorization requests refused because their request_uri had expired.
	PushedRequests, PushedAccepted, PushedExpired int
}

// Server is a running fosite server. Its endpoints, relative to URL:
//
//	GET  /oauth/authorize  auto-approves for alice; 303 to the redirect URI
//	POST /oauth/token      authorization_code, refresh_token, client_credentials
//	POST /oauth/par        RFC 9126 pushed authorization requests (fosite's handler/par)
//	POST /oauth/revoke     RFC 7009
//	POST /oauth/introspect RFC 7662, the client authenticating with Basic
//	GET  /api/me           bearer-protected: 200 {"sub":...} or 401
type Server struct {
	URL string // http://127.0.0.1:PORT, or https:// with Options.ClientCAs
	// RootCAs trusts the server's certificate (Options.ClientCAs only).
	RootCAs *x509.CertPool

	provider          fosite.OAuth2Provider
	fosite            *fosite.Fosite
	store             *storage.MemoryStore
	tlsClients        map[string]tlsClient // clients that authenticate by certificate (mtls.go)
	peers             []string             // client certificate subjects of the token requests
	denyConsent       bool
	acceptQueryParams bool

	// mu serialises every request. fosite's MemoryStore is an example store:
	// it has no transactions (two refreshes with one token could both pass
	// the "is it active" check before either rotates it) and it writes some
	// maps outside their locks. One lock makes each request atomic, which is
	// what a real server's database gives it; a test server needs no
	// throughput.
	mu         sync.Mutex
	stats      Stats
	dropsLeft  int
	rotatedOut map[[sha256.Size]byte]bool // hashes of refresh tokens replaced by a refresh
	parAge     time.Duration              // AgePushedRequests: how much older pushed requests are
}

// Start runs a server on 127.0.0.1 until the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	// Not httptest.NewServer: it falls back to [::1] when 127.0.0.1 is
	// unavailable, and tests here may talk to 127.0.0.1 only.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("fositeserver: listening on 127.0.0.1: %v", err)
	}
	scheme := "http"
	if opts.ClientCAs != nil {
		scheme = "https"
	}
	opts.tokenURL = scheme + "://" + ln.Addr().String() + "/oauth/token"
	s, err := newServer(opts)
	if err != nil {
		ln.Close()
		t.Fatalf("fositeserver: %v", err)
	}
	hs := &httptest.Server{Listener: ln, Config: &http.Server{Handler: s.routes()}}
	if opts.ClientCAs != nil {
		// crypto/tls refuses a handshake without a verified client
		// certificate; httptest's own server certificate is for 127.0.0.1.
		hs.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: opts.ClientCAs, MinVersion: tls.VersionTLS12}
		hs.StartTLS()
		s.RootCAs = x509.NewCertPool()
		s.RootCAs.AddCert(hs.Certificate())
	} else {
		hs.Start()
	}
	t.Cleanup(hs.Close)
	s.URL = hs.URL
	return s
}

func newServer(opts Options) (*Server, error) {
	if opts.AccessTokenLifetime == 0 {
		opts.AccessTokenLifetime = time.Hour
	}
	if opts.RefreshTokenLifetime == 0 {
		opts.RefreshTokenLifetime = 24 * time.Hour
	}
	if opts.PARLifetime == 0 {
		opts.PARLifetime = time.Minute
	}
	secret := make([]byte, 32) // fosite's HMAC strategy requires at least 32 bytes
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("generating the HMAC secret: %w", err)
	}
	config := &fosite.Config{
		GlobalSecret:         secret,
		AccessTokenLifespan:  opts.AccessTokenLifetime,
		RefreshTokenLifespan: opts.RefreshTokenLifetime,
		EnforcePKCE:          opts.RequirePKCE,
		// Issue a refresh token to every client allowed the refresh_token
		// grant; fosite's default asks for an "offline" scope as well.
		RefreshTokenScopes: []string{},
		// bcrypt's lowest cost keeps Start fast; nothing here needs the
		// hash to resist offline attack.
		HashCost: 4,
		// Set eagerly: fosite fills these in lazily on first use, which
		// is a write the race detector would see.
		ScopeStrategy:            fosite.WildcardScopeStrategy,
		AudienceMatchingStrategy: fosite.DefaultAudienceMatchingStrategy,
		TokenURL:                 opts.tokenURL,
		// RFC 7523 2.1 without client authentication, as Google's
		// service accounts use it.
		GrantTypeJWTBearerCanSkipClientAuth: true,
		// RFC 9126: fosite's defaults (a urn:ietf:params:oauth:request_uri:
		// prefix); a short context keeps the single-use reference short-lived.
		PushedAuthorizeContextLifespan: opts.PARLifetime,
		IsPushedAuthorizeEnforced:      opts.RequirePAR,
	}
	config.ClientSecretsHasher = &fosite.BCrypt{Config: config}

	store := storage.NewMemoryStore()
	tlsClients := map[string]tlsClient{}
	for i, c := range opts.Clients {
		if c.TLSSubject != "" || c.TLSCertificate != nil {
			if opts.ClientCAs == nil {
				return nil, fmt.Errorf("Options.Clients[%d]: client %q authenticates by TLS certificate; set Options.ClientCAs", i, c.ID)
			}
			tc := tlsClient{subject: c.TLSSubject, secret: c.Secret != ""}
			if c.TLSCertificate != nil {
				tc.der = c.TLSCertificate.Raw
			}
			tlsClients[c.ID] = tc
		}
		fc, err := c.fositeClient(config.ClientSecretsHasher)
		if err != nil {
			return nil, fmt.Errorf("Options.Clients[%d]: %w", i, err)
		}
		if _, dup := store.Clients[c.ID]; dup {
			return nil, fmt.Errorf("Options.Clients[%d]: client ID %q is registered twice", i, c.ID)
		}
		store.Clients[c.ID] = fc
	}
	for _, j := range opts.JWTIssuers {
		key := jose.JSONWebKey{Key: j.PublicKey, KeyID: j.KeyID, Algorithm: j.Algorithm, Use: "sig"}
		store.IssuerPublicKeys[j.Issuer] = storage.IssuerPublicKeys{Issuer: j.Issuer, KeysBySub: map[string]storage.SubjectPublicKeys{
			j.Subject: {Subject: j.Subject, Keys: map[string]storage.PublicKeyScopes{j.KeyID: {Key: &key, Scopes: j.Scopes}}},
		}}
	}

	ps := &parStore{MemoryStore: store}
	provider := compose.Compose(config, ps, compose.NewOAuth2HMACStrategy(config),
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2ClientCredentialsGrantFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OAuth2TokenIntrospectionFactory,
		compose.OAuth2TokenRevocationFactory,
		// PKCE must come after the authorize-code handler: it stores the
		// challenge under the code that handler creates.
		compose.OAuth2PKCEFactory,
		compose.RFC7523AssertionGrantFactory,
		compose.PushedAuthorizeHandlerFactory,
	)
	s := &Server{
		provider:          provider,
		fosite:            provider.(*fosite.Fosite),
		store:             store,
		tlsClients:        tlsClients,
		denyConsent:       opts.DenyConsent,
		acceptQueryParams: opts.AcceptQueryParams,
		rotatedOut:        make(map[[sha256.Size]byte]bool),
	}
	ps.srv = s
	// Set before the server starts; fosite reads it on every request.
	config.ClientAuthenticationStrategy = s.authenticateClient
	return s, nil
}

func (c Client) fositeClient(hasher fosite.Hasher) (fosite.Client, error) {
	switch {
	case c.ID == "":
		return nil, fmt.Errorf("the client has no ID")
	case c.Public && c.Secret != "":
		return nil, fmt.Errorf("client %q is public but has a secret; drop one of the two", c.ID)
	case !c.Public && c.Secret == "" && c.PublicKey == nil && c.TLSSubject == "" && c.TLSCertificate == nil:
		return nil, fmt.Errorf("client %q is confidential but has no secret; set Secret or Public", c.ID)
	}
	grants := c.GrantTypes
	if len(grants) == 0 {
		grants = []string{"authorization_code", "refresh_token"}
		if !c.Public {
			grants = append(grants, "client_credentials")
		}
	}
	fc := &fosite.DefaultClient{
		ID:            c.ID,
		RedirectURIs:  c.RedirectURIs,
		GrantTypes:    grants,
		ResponseTypes: []string{"code"},
		Scopes:        c.Scopes,
		Public:        c.Public,
	}
	if c.PublicKey != nil {
		return &fosite.DefaultOpenIDConnectClient{DefaultClient: fc,
			JSONWebKeys:                       &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: c.PublicKey, Algorithm: c.KeyAlgorithm, Use: "sig"}}},
			TokenEndpointAuthMethod:           "private_key_jwt",
			TokenEndpointAuthSigningAlgorithm: c.KeyAlgorithm,
		}, nil
	}
	if !c.Public {
		hash, err := hasher.Hash(context.Background(), []byte(c.Secret))
		if err != nil {
			return nil, fmt.Errorf("hashing the secret of client %q: %w", c.ID, err)
		}
		fc.Secret = hash
	}
	return fc, nil
}

// AgePushedRequests makes every pushed request d older, as if d had
// passed (only for them: codes and tokens keep their age), so that a test
// can see a request_uri expire without waiting for it.
func (s *Server) AgePushedRequests(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.parAge += d
}

// parStore is fosite's MemoryStore with the expiry of pushed requests
// (RFC 9126 2.2) enforced: its GetPARSession returns a request whatever
// its age. It runs under Server.mu, as every request does.
type parStore struct {
	*storage.MemoryStore
	srv *Server
}

func (p *parStore) GetPARSession(ctx context.Context, requestURI string) (fosite.AuthorizeRequester, error) {
	r, err := p.MemoryStore.GetPARSession(ctx, requestURI)
	if err != nil {
		return nil, err
	}
	if sess := r.GetSession(); sess != nil {
		if exp := sess.GetExpiresAt(fosite.PushedAuthorizeRequestContext); !exp.IsZero() && !time.Now().Add(p.srv.parAge).Before(exp) {
			p.srv.stats.PushedExpired++
			_ = p.MemoryStore.DeletePARSession(ctx, requestURI)
			return nil, fmt.Errorf("the pushed authorization request expired at %s: %w", exp.Format(time.RFC3339), fosite.ErrNotFound)
		}
	}
	return r, nil
}

// String names the server without its state (token signatures, secret
// hashes).
func (s *Server) String() string { return "fositeserver.Server at " + s.URL }

// GoString keeps %#v from printing the state as well.
func (s *Server) GoString() string { return s.String() }

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// DropNextTokenResponses makes the next n token requests be processed in
// full (codes consumed, refresh tokens rotated) and then answered by
// closing the connection without a response, as when a response is lost
// on the way back. It replaces any count still pending.
func (s *Server) DropNextTokenResponses(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropsLeft = n
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/oauth/authorize", s.handleAuthorize)
	mux.HandleFunc("/oauth/token", s.handleToken)
	mux.HandleFunc("/oauth/par", s.handlePAR)
	mux.HandleFunc("/oauth/revoke", s.handleRevoke)
	mux.HandleFunc("/oauth/introspect", s.handleIntrospect)
	mux.HandleFunc("/api/me", s.handleMe)
	return mux
}
