package definitions

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/connector-engine/connector/templates"
)

// Scheme is how requests authenticate (CData's AuthScheme list).
type Scheme string

const (
	SchemeOAuth       Scheme = "oauth"        // OAuth authorization code (a user approves in a browser)
	SchemeOAuthClient Scheme = "oauth_client" // OAuth client credentials (a service account)
	SchemeBasic       Scheme = "basic"
	SchemeAPIKey      Scheme = "apikey"
	SchemeNone        Scheme = "none"
	SchemeSession     Scheme = "session" // a session token from a login request (auth_session.go)
)

// GrantType is the OAuth grant a flow obtains its first token with.
type GrantType string

const (
	GrantAuthorizationCode GrantType = "authorization_code"
	GrantClientCredentials GrantType = "client_credentials"
	// GrantDeviceCode is the device authorization grant (RFC 8628), written
	// grant_type: device_code; the value is what the token request sends.
	GrantDeviceCode GrantType = "urn:ietf:params:oauth:grant-type:device_code"
)

// OAuth versions, as the App Xchange connector names them: V1 sends the user
// to an Authorize URI (a legacy "Connect/Begin" page) and has no refresh; V2
// is standard OAuth 2.0 with an Initiate URI and a Refresh URI.
const (
	V1 = "V1"
	V2 = "V2"
)

// Definition is a validated connection definition with its templates compiled.
// It is immutable once loaded and safe to share between goroutines.
type Definition struct {
	Name        string
	Title       string
	Description string
	DocsURL     string
	Extends     string // the definition this one was built on, if any
	Source      string // the file it was loaded from

	Environments       []Environment // in file order; one named "default" when the file declares none
	DefaultEnvironment string

	Auth    Auth
	Fields  []Field // in file order
	Headers []Param // sent with every API request
	Query   []Param // added to every API request's query

	Retry      Retry       // when failed API requests are tried again; defaults filled in
	RateLimit  RateLimit   // the API's rate-limit headers, if it sends them
	Pagination *Pagination // request.pagination: how listings page by default; nil when not declared
	Actions    []*Action   // the declared API calls, sorted by Name
	// Webhooks says how the provider's webhook deliveries are verified and
	// attributed; nil when the definition declares none.
	Webhooks *Webhooks

	vars *templates.Vars
}

// Environment is one deployment of the API (production, sandbox, ...).
type Environment struct {
	Name     string
	Title    string
	BaseURL  *templates.Template // the API base URL
	LoginURL *templates.Template // the OAuth host; nil when not given
	// Scopes replace the OAuth scopes in this environment; nil when the
	// environment gives none.
	Scopes []string
	// Defaults are field defaults in this environment, by field name,
	// over the fields' own.
	Defaults map[string]string
}

// Auth says how requests authenticate; exactly one of OAuth, Basic and APIKey
// is set, matching Scheme (none for SchemeNone).
type Auth struct {
	Scheme  Scheme
	OAuth   *OAuth
	Basic   *Basic
	APIKey  *APIKey
	Session *Session
	OAuth1  *OAuth1
	NTLM    *NTLM // auth_ntlm.go
}

// OAuth describes an OAuth flow as the App Xchange connector does: by its
// version, grant and URIs.
type OAuth struct {
	Version   string
	GrantType GrantType

	InitiateURI     *templates.Template // V2 code flow: where the user is sent to approve
	AuthorizeURI    *templates.Template // V1: the legacy authorization page
	TokenRequestURI *templates.Template // exchanges a code, or gets a client-credentials token
	RefreshURI      *templates.Template // V2: exchanges a refresh token; nil means the token endpoint
	RevokeURI       *templates.Template // optional: RFC 7009 revocation
	// IntrospectionURI is optional: RFC 7662 introspection. With it, a
	// refresh interrupted after it may have been sent is resolved by asking
	// whether the refresh token is still active, instead of assuming it
	// was consumed.
	IntrospectionURI *templates.Template
	// DeviceAuthorizationURI is where the device grant asks for a device and
	// user code (RFC 8628 3.1); nil for every other grant.
	DeviceAuthorizationURI *templates.Template
	// PARURI is optional: the pushed authorization request endpoint (RFC
	// 9126). With it the authorization parameters are POSTed there, the
	// client authenticating as at the token endpoint, and the browser is
	// sent to the initiate (or authorize) URI with only client_id and the
	// request_uri the provider returned: nothing the user's browser or its
	// history sees can be altered or read.
	PARURI *templates.Template

	Scopes         []string
	ScopeSeparator string
	PKCE           bool
	Issuer         string // expected "iss" on the authorization response (RFC 9207), if the provider sends one

	TokenRequest  TokenRequest
	TokenResponse TokenResponse
	SendToken     SendToken // where API requests carry the access token
	KeepAlive     KeepAlive // what the server's scheduler does for unused connections
	// Public is set for a public client (auth.oauth.client: public): it has
	// no secret, so PKCE is required and nothing authenticates the client.
	Public bool
	// Assertion is the JWT the engine signs for the JWT bearer grant or
	// private_key_jwt client authentication (RFC 7523); nil otherwise.
	Assertion *Assertion
	// ClientCertificate is the certificate presented in the TLS handshake
	// (RFC 8705 mutual TLS); nil for none.
	ClientCertificate *ClientCertificate
	// DPoP sender-constrains the tokens (RFC 9449): a proof signed with the
	// connection's own key on every token request and API call; nil for
	// none (auth_dpop.go).
	DPoP *DPoP
	// Parameters renames standard parameters the engine adds (TikTok's
	// client_key for client_id), by standard name; "" turns one off.
	// Absent names keep their standard name. See Param.
	Parameters map[string]string
	// CallbackCode is the callback parameter carrying the code ("code"
	// unless the provider names it otherwise).
	CallbackCode string
	// AuthorizeQuery is where the authorization request's parameters go:
	// QueryInURL (the default) or QueryInFragment, for a provider whose
	// authorization page reads them after a # (a single-page app's route).
	AuthorizeQuery string
}

// Where the authorization request's parameters go.
const (
	QueryInURL      = "query"
	QueryInFragment = "fragment"
)

// StandardParameters are the parameters the engine adds by itself, which
// auth.oauth.parameters may rename or turn off.
var StandardParameters = []string{"response_type", "client_id", "client_secret", "redirect_uri", "state", "scope",
	"code_challenge", "code_challenge_method", "grant_type", "code", "code_verifier", "refresh_token", "dpop_jkt"}

// Param returns the name a standard parameter travels under, and false when
// the definition turns it off.
func (o *OAuth) Param(std string) (string, bool) {
	if name, ok := o.Parameters[std]; ok {
		return name, name != ""
	}
	return std, true
}

// SendToken says where API requests carry the access token: by default
// "Authorization: <token type> <token>" (RFC 6750 2.1); a provider may want
// another header (X-Shopify-Access-Token: <token>), another prefix
// (Authorization: Zoho-oauthtoken <token>), a query parameter, or a field
// of the request's form or JSON body (Zabbix 6.0's auth).
type SendToken struct {
	In     string // TokenInHeader, TokenInQuery or TokenInBody
	Name   string // the header (canonical form is the caller's business), query parameter or body field
	Prefix string // written before the token in a header; see TypePrefix
	// TypePrefix is set when the header starts with the token's type and a
	// space ("Bearer "), the default for the Authorization header.
	TypePrefix bool
}

// Where an access token travels.
const (
	TokenInHeader = "header"
	TokenInQuery  = "query"
	// TokenInBody: a top-level field of the request's JSON object or form
	// body; only requests with a body (POST, PUT, PATCH) can carry it.
	TokenInBody = "body"
)

// TokenRequest says how token requests travel.
type TokenRequest struct {
	Method     string // POST or GET
	Params     string // "query" (as written in the URI), "form" or "json" (the URI's query moved into the body)
	ClientAuth string // "body" (client_id and client_secret parameters), "basic" (HTTP Basic) or "both"
	// RefreshClientAuth is how the refresh request authenticates the
	// client, when it differs from the code exchange; ClientAuth otherwise.
	RefreshClientAuth string
}

// Parameter placements and client authentication methods.
const (
	ParamsQuery     = "query"
	ParamsForm      = "form"
	ParamsJSON      = "json"
	ClientAuthBody  = "body"
	ClientAuthBasic = "basic"
	// ClientAuthBoth sends HTTP Basic and the client_id/client_secret
	// parameters, for providers that read one on some requests and the
	// other on others.
	ClientAuthBoth = "both"
)

// TokenResponse names the fields of the provider's token response; dots
// reach into nested objects.
type TokenResponse struct {
	AccessToken  string
	RefreshToken string
	TokenType    string
	ExpiresIn    string
	Scope        string
	CreatedAt    string
	// ExpiresInUnit is how expires_in counts: "seconds" (RFC 6749, the
	// default) or "milliseconds".
	ExpiresInUnit string
	// ExpiresAt is the path of an absolute expiry (Unix seconds or RFC
	// 3339), used when the response has no expires_in; "" when none.
	ExpiresAt        string
	DefaultExpiresIn time.Duration // assumed when the response has no expires_in
	// RefreshMargin caps how long before expiry a token is renewed (a tenth
	// of its lifetime otherwise); 0 means the engine's default.
	RefreshMargin time.Duration
}

// DefaultTokenLifetime is assumed when neither the provider nor the
// definition gives one: a token is never taken to live forever.
const DefaultTokenLifetime = time.Hour

// Basic is HTTP Basic authentication from connection fields.
type Basic struct {
	Username *templates.Template
	Password *templates.Template
}

// APIKey sends a key in a header or the query.
type APIKey struct {
	In    string // "header" or "query"
	Name  string
	Value *templates.Template
}

// Field is a value a connection supplies (a Procore CompanyId, a partner API key).
type Field struct {
	Name       string
	Title      string
	Type       string // string, integer, boolean, url, host_label or hostname
	Required   bool
	Secret     bool
	Pattern    *regexp.Regexp // the whole value must match
	Default    string
	HasDefault bool
	Help       string
	Var        int // the field's index in Vars()
	// Learn is set for a field whose value is learned when connecting
	// (fields.<name>.learn), nil for one the connection gives.
	Learn *Learn

	flags templates.Flag
}

// Param is a name and a value template (a default header or query parameter).
type Param struct {
	Name  string
	Value *templates.Template
}

// Vars returns the placeholders this definition's templates may use, builtins
// first (at the Var* indexes) and then the fields.
func (d *Definition) Vars() *templates.Vars { return d.vars }

// Environment returns the named environment, or the default for "".
func (d *Definition) Environment(name string) (*Environment, error) {
	if name == "" {
		name = d.DefaultEnvironment
	}
	var names []string
	for i := range d.Environments {
		if strings.EqualFold(d.Environments[i].Name, name) {
			return &d.Environments[i], nil
		}
		names = append(names, d.Environments[i].Name)
	}
	return nil, fmt.Errorf("definition %s has no environment %q; choose one of: %s", d.Name, name, strings.Join(names, ", "))
}

// Field returns the field named name, matched case-insensitively like placeholders.
func (d *Definition) Field(name string) (*Field, bool) {
	for i := range d.Fields {
		if strings.EqualFold(d.Fields[i].Name, name) {
			return &d.Fields[i], true
		}
	}
	return nil, false
}

// GrantType returns the grant the definition's first token comes from, or ""
// for schemes without OAuth.
func (d *Definition) GrantType() GrantType {
	if d.Auth.OAuth == nil {
		return ""
	}
	return d.Auth.OAuth.GrantType
}

// The builtin placeholders, at fixed indexes of every definition's Vars.
const (
	VarClientID = iota
	VarClientSecret
	VarRedirectURI
	VarState
	VarScope
	VarCodeChallenge
	VarCodeVerifier
	VarCode
	VarRefreshToken
	VarBaseURL
	VarLoginURL
	VarRandom // a fresh random value for each request (a nonce)
	NumBuiltinVars
)

var builtinVars = [NumBuiltinVars]struct {
	name  string
	flags templates.Flag
	what  string
}{
	VarClientID:      {"ClientId", 0, "the OAuth client id"},
	VarClientSecret:  {"ClientSecret", templates.Secret, "the OAuth client secret"},
	VarRedirectURI:   {"RedirectUri", 0, "the redirect (callback) URI"},
	VarState:         {"State", 0, "the anti-forgery state"},
	VarScope:         {"Scope", 0, "the requested scopes"},
	VarCodeChallenge: {"CodeChallenge", 0, "the PKCE code challenge"},
	VarCodeVerifier:  {"CodeVerifier", templates.Secret, "the PKCE code verifier"},
	VarCode:          {"code", templates.Secret, "the authorization code"},
	VarRefreshToken:  {"refreshToken", templates.Secret, "the refresh token"},
	VarBaseURL:       {"BaseUrl", templates.URLValued, "the environment's API base URL"},
	VarLoginURL:      {"LoginUrl", templates.URLValued, "the environment's login URL"},
	VarRandom:        {"Random", 0, "a fresh random value for each request (a nonce)"},
}
