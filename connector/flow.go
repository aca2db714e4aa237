package connector

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/connector-engine/connector/connector/dpop"
	"github.com/connector-engine/connector/connector/token"
	"github.com/connector-engine/connector/definitions"
	"github.com/connector-engine/connector/templates"
)

// Flow runs the OAuth grants of one connection exactly as its definition
// describes them. It holds no tokens: Source keeps and refreshes them.
type Flow struct {
	conn *Connection
	def  *definitions.Definition
	o    *definitions.OAuth
	vals []string // the connection's placeholder values; per-request ones are added to a copy

	// HTTPClient sends token requests; its Timeout bounds each attempt.
	HTTPClient *http.Client
	// Now is the clock (tests move it).
	Now func() time.Time
	// AttemptLifetime is how long an authorization attempt (its state) stays valid.
	AttemptLifetime time.Duration
	// Choose picks among the candidates of a learn request with choose:
	// ask (connector connect asks the person connecting); nil takes the
	// only one, and fails when there are several.
	Choose Chooser
	// Wait pauses between device-grant polls (flow_device.go) and returns
	// early with ctx's error; nil sleeps. Tests count the waits instead of
	// sleeping through them.
	Wait func(ctx context.Context, d time.Duration) error

	jwt  *assertionSigner // RFC 7523 assertions (flow_assertion.go); shared by copies
	mtls *clientTLS       // RFC 8705 client certificate (flow_mtls.go); shared by copies
	dpop *dpopConn        // RFC 9449 nonces (flow_dpop.go); shared by copies, nil without dpop
	// dpopKey signs this copy's token requests' DPoP proofs; nil: a fresh
	// key for a grant that starts a connection (flow_dpop.go).
	dpopKey *dpop.Key
}

// DefaultRequestTimeout bounds one token request attempt.
const DefaultRequestTimeout = 30 * time.Second

// NewFlow validates the connection and prepares its flow. It keeps a copy of
// c: a change to c afterwards does not reach the flow.
func NewFlow(c *Connection) (*Flow, error) {
	c = c.clone()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	o := c.Definition.Auth.OAuth
	if o == nil {
		return nil, fmt.Errorf("connection %s: definition %s uses scheme %s, which has no OAuth flow", c.Key(), c.Definition.Name, c.Definition.Auth.Scheme)
	}
	vals, err := c.values()
	if err != nil {
		return nil, err
	}
	f := &Flow{
		conn: c, def: c.Definition, o: o, vals: vals,
		HTTPClient:      &http.Client{Timeout: DefaultRequestTimeout},
		Now:             time.Now,
		AttemptLifetime: 10 * time.Minute,
		jwt:             &assertionSigner{},
		mtls:            &clientTLS{},
	}
	f.dpop = newDPoPConn(f)
	return f, nil
}

// Attempt is one authorization attempt: the URL to send the user to and what
// the callback must match. It is single use.
type Attempt struct {
	URL         string
	State       string
	RedirectURI string
	Expires     time.Time
	// URLExpires is when URL stops working by itself: with par_uri, the
	// pushed request's expires_in (RFC 9126 2.2) counted from the push,
	// after which the provider refuses the link, often on an error page
	// that never reaches the redirect URI. Zero when URL does not expire
	// (no par_uri, or the provider gave no lifetime). See flow_par.go.
	URLExpires time.Time
	verifier   string
	dpopKey    string // PEM: the key the code is bound to (dpop_jkt, flow_dpop.go)
	used       bool
}

// String keeps the state and verifier out of logs.
func (a Attempt) String() string { return "attempt{redirect=" + a.RedirectURI + "}" }

func randomToken() string {
	b := make([]byte, 32) // 256 bits: well over the 128 RFC 9700 asks for state
	_, _ = rand.Read(b)   // crypto/rand.Read never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
}

// AuthCodeURL starts an authorization attempt: a fresh state and, when the
// definition enables PKCE, a fresh S256 verifier. V2 uses the Initiate URI,
// V1 the Authorize URI; standard parameters the URI does not set are added.
//
// A definition with par_uri pushes the parameters first (RFC 9126), a
// network call: AuthCodeURL then bounds it by DefaultRequestTimeout; use
// AuthCodeURLContext to give it the caller's context.
func (f *Flow) AuthCodeURL() (*Attempt, error) {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultRequestTimeout)
	defer cancel()
	return f.AuthCodeURLContext(ctx)
}

// AuthCodeURLContext is AuthCodeURL with a context for the pushed
// authorization request, the only network call it may make.
func (f *Flow) AuthCodeURLContext(ctx context.Context) (*Attempt, error) {
	if f.o.GrantType != definitions.GrantAuthorizationCode {
		return nil, fmt.Errorf("definition %s uses %s, which has no authorization step; fetch a token instead", f.def.Name, f.o.GrantType)
	}
	a := &Attempt{State: randomToken(), RedirectURI: f.conn.RedirectURI, Expires: f.Now().Add(f.AttemptLifetime)}
	if _, on := f.o.Param("state"); !on {
		a.State = "" // bound by the PKCE verifier alone (the definitions require PKCE then)
	}
	vals := append([]string(nil), f.vals...)
	vals[definitions.VarState] = a.State
	vals[definitions.VarRandom] = randomToken()
	var challenge string
	if f.o.PKCE {
		a.verifier = randomToken()
		sum := sha256.Sum256([]byte(a.verifier))
		challenge = base64.RawURLEncoding.EncodeToString(sum[:])
		vals[definitions.VarCodeChallenge] = challenge
	}
	t := f.o.InitiateURI
	if f.o.Version == definitions.V1 {
		t = f.o.AuthorizeURI
	}
	raw, err := t.Expand(vals)
	if err != nil {
		return nil, fmt.Errorf("definition %s: expanding the authorization URI: %w", f.def.Name, err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("definition %s: the authorization URI is not a URL: %w", f.def.Name, err)
	}
	rawQuery, route := u.RawQuery, ""
	if f.o.AuthorizeQuery == definitions.QueryInFragment {
		// The page reads its parameters after the #: a route and a query.
		route, rawQuery, _ = strings.Cut(u.EscapedFragment(), "?")
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, fmt.Errorf("definition %s: the authorization URI's query does not parse: %w", f.def.Name, err)
	}
	f.setStd(q, "response_type", "code")
	f.setStd(q, "client_id", f.conn.ClientID)
	f.setStd(q, "redirect_uri", f.conn.RedirectURI)
	f.setStd(q, "state", a.State)
	if s := vals[definitions.VarScope]; s != "" {
		f.setStd(q, "scope", s)
	}
	if f.o.PKCE {
		f.setStd(q, "code_challenge", challenge)
		f.setStd(q, "code_challenge_method", "S256")
	}
	if err := f.bindCode(a, q); err != nil { // flow_dpop.go: dpop_jkt
		return nil, err
	}
	if f.o.PARURI != nil {
		// RFC 9126 4: the browser carries only client_id and the
		// reference to what was pushed (flow_par.go).
		if q, a.URLExpires, err = f.push(ctx, vals, q); err != nil {
			return nil, err
		}
	}
	if f.o.AuthorizeQuery == definitions.QueryInFragment {
		frag := route + "?" + q.Encode()
		u.Fragment, _ = url.PathUnescape(frag)
		u.RawFragment = frag
	} else {
		u.RawQuery = q.Encode()
	}
	a.URL = u.String()
	return a, nil
}

func setDefault(q url.Values, k, v string) {
	if !q.Has(k) && v != "" {
		q.Set(k, v)
	}
}

// setStd adds the standard parameter std under the name the definition
// gives it, unless it turns it off or the URI already sets it.
func (f *Flow) setStd(q url.Values, std, v string) {
	if name, on := f.o.Param(std); on {
		setDefault(q, name, v)
	}
}

// CallbackError is what the provider said on the redirect instead of a code
// (RFC 6749 4.1.2.1), e.g. access_denied when the user clicked Deny.
type CallbackError struct {
	Code        string
	Description string
	// URLExpired, when set, is when the attempt's authorization link
	// expired (Attempt.URLExpires), before this error came back: the
	// likely cause, which Error then names.
	URLExpired time.Time
}

func (e *CallbackError) Error() string {
	msg := "the authorization was not granted (" + e.Code + ")"
	if e.Code == "access_denied" {
		msg = "the user denied access (access_denied)"
	}
	// Providers often repeat the code in words; say it once.
	if d := strings.TrimSpace(e.Description); d != "" && !strings.Contains(strings.ToLower(msg), strings.ToLower(strings.TrimSuffix(d, "."))) {
		msg += ": " + d
	}
	if !e.URLExpired.IsZero() {
		msg += "; the authorization link had expired at " + e.URLExpired.Format(time.TimeOnly) + " (the provider keeps a pushed authorization request only briefly), so open the new link sooner"
	}
	return msg + "; nothing was stored, run the authorization again to connect"
}

// ErrStateMismatch is returned when the callback's state is missing, wrong,
// reused or expired: the callback may be forged, so nothing is exchanged.
var ErrStateMismatch = errors.New("the callback's state does not match this authorization attempt (missing, wrong, reused or expired); start the authorization again")

// CheckCallback validates the redirect's query for attempt a and returns the
// code. It consumes the attempt even on failure: a state is single use.
func (f *Flow) CheckCallback(a *Attempt, q url.Values) (string, error) {
	if a == nil || a.used {
		return "", ErrStateMismatch
	}
	a.used = true
	if !f.Now().Before(a.Expires) {
		return "", ErrStateMismatch
	}
	if name, on := f.o.Param("state"); on {
		got := q.Get(name)
		if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(a.State)) != 1 {
			return "", ErrStateMismatch
		}
	}
	// RFC 9207: where the provider identifies itself, it must be the one
	// this attempt was sent to (mix-up defence).
	if f.o.Issuer != "" {
		if iss := q.Get("iss"); iss != f.o.Issuer {
			if iss == "" {
				return "", fmt.Errorf("the callback has no iss parameter but definition %s expects the issuer %s; refusing the code (RFC 9207)", f.def.Name, f.o.Issuer)
			}
			return "", fmt.Errorf("the callback comes from issuer %q, not %s; refusing the code (possible mix-up attack, RFC 9207)", iss, f.o.Issuer)
		}
	}
	if e := q.Get("error"); e != "" {
		ce := &CallbackError{Code: e, Description: q.Get("error_description")}
		if e != "access_denied" && !a.URLExpires.IsZero() && !f.Now().Before(a.URLExpires) {
			ce.URLExpired = a.URLExpires // flow_par.go: the likely reason
		}
		return "", ce
	}
	code := q.Get(f.o.CallbackCode)
	if f.o.CallbackCode == "" { // a Definition built by hand
		code = q.Get("code")
	}
	if code == "" {
		what := "a code"
		if name := cmpOr(f.o.CallbackCode, "code"); name != "code" {
			what += " (" + name + ")"
		}
		return "", fmt.Errorf("the callback carries neither %s nor an error; start the authorization again", what)
	}
	return code, nil
}

// Exchange validates the callback and exchanges its code at the Token
// Request URI. The code exchange is never retried once sent: the code is
// single use. The token is returned, not stored: use Source.ExchangeAndStore
// (or Source.Store) so that the connection's Source and API find it.
func (f *Flow) Exchange(ctx context.Context, a *Attempt, callback url.Values) (*token.Token, error) {
	code, err := f.CheckCallback(a, callback)
	if err != nil {
		return nil, err
	}
	// Values the callback carries next to the code (QuickBooks' realmId),
	// checked before the code is spent.
	learned := map[string]string{}
	if err := f.learnCallback(callback, learned); err != nil {
		return nil, err
	}
	if a.dpopKey != "" { // the code is bound to the attempt's key: exchange with it
		if f, err = f.WithDPoPKey(a.dpopKey); err != nil {
			return nil, err
		}
	}
	return f.exchange(ctx, code, a.verifier, learned)
}

// ExchangeCode exchanges a code obtained elsewhere (an out-of-band code, or
// a callback checked by the caller). Values a definition learns from the
// callback are not known then; Exchange learns them.
func (f *Flow) ExchangeCode(ctx context.Context, code, verifier string) (*token.Token, error) {
	return f.exchange(ctx, code, verifier, nil)
}

func (f *Flow) exchange(ctx context.Context, code, verifier string, learned map[string]string) (*token.Token, error) {
	tok, err := f.exchangeCode(ctx, code, verifier)
	if err != nil {
		return nil, err
	}
	if len(learned) > 0 && tok.Values == nil {
		tok.Values = map[string]string{}
	}
	for k, v := range learned {
		tok.Values[k] = v
	}
	if err := f.learnRequests(ctx, tok); err != nil {
		return nil, fmt.Errorf("the code was exchanged, but %w", err)
	}
	return tok, nil
}

func (f *Flow) exchangeCode(ctx context.Context, code, verifier string) (*token.Token, error) {
	vals := append([]string(nil), f.vals...)
	vals[definitions.VarCode] = code
	vals[definitions.VarCodeVerifier] = verifier
	std := [][2]string{{"grant_type", "authorization_code"}, {"code", code}, {"redirect_uri", f.conn.RedirectURI}}
	if verifier != "" {
		std = append(std, [2]string{"code_verifier", verifier})
	}
	return f.tokenRequest(ctx, "code exchange", f.o.TokenRequestURI, vals, std, false, verifier) // the verifier is as secret as the code
}

// ClientCredentials fetches a token with the client-credentials grant.
func (f *Flow) ClientCredentials(ctx context.Context) (*token.Token, error) {
	if f.o.GrantType != definitions.GrantClientCredentials {
		return nil, fmt.Errorf("definition %s uses the %s grant, not client credentials", f.def.Name, f.o.GrantType)
	}
	std := [][2]string{{"grant_type", "client_credentials"}, {"scope", f.vals[definitions.VarScope]}}
	tok, err := f.tokenRequest(ctx, "client-credentials request", f.o.TokenRequestURI, f.vals, std, true, "")
	if err != nil {
		return nil, err
	}
	if err := f.learnRequests(ctx, tok); err != nil {
		return nil, fmt.Errorf("the client-credentials token was obtained, but %w", err)
	}
	return tok, nil
}

// Refresh exchanges a refresh token at the Refresh URI (or the token
// endpoint when the definition has none). A response without a refresh
// token keeps the old one. Never retried once sent: see retry.go. A
// DPoP-bound token is refreshed through WithDPoPKey (Source does it).
func (f *Flow) Refresh(ctx context.Context, refreshToken string) (*token.Token, error) {
	if f.o.Version == definitions.V1 {
		return nil, &NeedsReauthError{Reason: "OAuth V1 tokens cannot be refreshed; authorize the connection again (connector connect)"}
	}
	if refreshToken == "" {
		return nil, &NeedsReauthError{Reason: "there is no refresh token; authorize the connection again (connector connect)"}
	}
	t := f.o.RefreshURI
	if t == nil {
		t = f.o.TokenRequestURI
	}
	vals := append([]string(nil), f.vals...)
	vals[definitions.VarRefreshToken] = refreshToken
	std := [][2]string{{"grant_type", "refresh_token"}, {"refresh_token", refreshToken}}
	tok, err := f.tokenRequest(ctx, "refresh", t, vals, std, false, refreshToken)
	if err != nil {
		return nil, err
	}
	if tok.RefreshToken == "" {
		tok.RefreshToken = refreshToken // RFC 6749 6: no new refresh token means keep the old one
	}
	return tok, nil
}

// Revoke revokes a token at the definition's Revoke URI (RFC 7009). A
// definition without one has nothing to call; that is not an error.
func (f *Flow) Revoke(ctx context.Context, tok string, hint string) error {
	if f.o.RevokeURI == nil || tok == "" {
		return nil
	}
	std := [][2]string{{"token", tok}, {"token_type_hint", hint}}
	ctx = f.tokenEndpointAudience(ctx, f.vals) // flow_par.go: a client assertion's aud
	resp, body, err := f.send(ctx, f.o.RevokeURI, f.vals, std, true, true, f.o.TokenRequest.ClientAuth)
	if err != nil {
		return fmt.Errorf("revoking the token of connection %s: %w", f.conn.Key(), f.redact(err, tok))
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return f.tokenError("revocation", resp, body, tok)
	}
	return nil
}

// CanIntrospect reports whether the definition names an introspection URI.
func (f *Flow) CanIntrospect() bool { return f.o.IntrospectionURI != nil }

// Introspect asks the provider whether tok (of the kind hint names, such as
// "refresh_token") is active (RFC 7662). It changes nothing at the provider,
// so it is retried like any safe request. An answer without a boolean
// "active" is an error, never taken for either.
func (f *Flow) Introspect(ctx context.Context, tok, hint string) (bool, error) {
	if f.o.IntrospectionURI == nil {
		return false, fmt.Errorf("definition %s has no introspection_uri", f.def.Name)
	}
	std := [][2]string{{"token", tok}, {"token_type_hint", hint}}
	ctx = f.tokenEndpointAudience(ctx, f.vals) // flow_par.go: a client assertion's aud
	resp, body, err := f.send(ctx, f.o.IntrospectionURI, f.vals, std, true, true, f.o.TokenRequest.ClientAuth)
	if err != nil {
		return false, fmt.Errorf("introspecting a token of connection %s: %w", f.conn.Key(), f.redact(err, tok))
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return false, f.tokenError("introspection", resp, body, tok)
	}
	var answer struct {
		Active *bool `json:"active"`
	}
	if err := json.Unmarshal(body, &answer); err != nil || answer.Active == nil {
		return false, fmt.Errorf("introspecting a token of connection %s: the answer (HTTP %d) has no boolean \"active\"", f.conn.Key(), resp.StatusCode)
	}
	return *answer.Active, nil
}

// tokenRequest sends one token request shaped as the definition says and
// parses the answer. extra is one more secret to redact from errors.
func (f *Flow) tokenRequest(ctx context.Context, what string, t *templates.Template, vals []string, std [][2]string, idempotent bool, extra string) (*token.Token, error) {
	start := f.Now()
	f, key, err := f.withProofKey(what) // flow_dpop.go: the DPoP key of this request, if any
	if err != nil {
		return nil, err
	}
	auth := f.o.TokenRequest.ClientAuth
	if what == "refresh" && f.o.TokenRequest.RefreshClientAuth != "" {
		auth = f.o.TokenRequest.RefreshClientAuth
	}
	resp, body, err := f.send(ctx, t, vals, std, idempotent, false, auth)
	var redirect *RedirectError
	if errors.As(err, &redirect) { // an answer, not a lost request
		redirect.Op = what
		return nil, redirect
	}
	if err != nil {
		return nil, &RequestError{Op: what, Err: f.redact(err, extra, vals[definitions.VarCode])}
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, f.tokenError(what, resp, body, extra, vals[definitions.VarCode])
	}
	tok, err := parseTokenResponse(resp.Header.Get("Content-Type"), body, &f.o.TokenResponse, start)
	if err != nil {
		var te *TokenError
		if errors.As(err, &te) {
			te.Op, te.Status = what, resp.StatusCode
			te.Code = f.redactString(te.Code, extra, vals[definitions.VarCode]) // providers echo the request in error too
			te.Description = f.redactString(te.Description, extra, vals[definitions.VarCode])
			return nil, te
		}
		return nil, fmt.Errorf("%s for connection %s: %w", what, f.conn.Key(), err)
	}
	learned := map[string]string{}
	if err := f.learnResponse(resp.Header.Get("Content-Type"), body, learned); err != nil {
		return nil, fmt.Errorf("%s for connection %s: %w", what, f.conn.Key(), err)
	}
	if len(learned) > 0 {
		tok.Values = learned
	}
	if len(tok.Scopes) == 0 && vals[definitions.VarScope] != "" {
		tok.Scopes = strings.Fields(strings.ReplaceAll(vals[definitions.VarScope], f.o.ScopeSeparator, " "))
	}
	if err := keepDPoPKey(tok, key, f.def.Name); err != nil { // flow_dpop.go: the token is bound to it: kept, and sealed, with it
		return nil, fmt.Errorf("%s for connection %s: %w", what, f.conn.Key(), err)
	}
	return tok, nil
}

// maxBody caps what is read from a token endpoint: a token response is a
// few hundred bytes, and a hostile or broken server must not exhaust memory.
const maxBody = 1 << 20

// send builds and sends the request. The template's query parameters plus
// the standard ones it lacks go where token_request.params says; the client
// authenticates in the body or with HTTP Basic, never both. Revocation is
// always a form POST (RFC 7009 2.1), whatever the token requests look like.
func (f *Flow) send(ctx context.Context, t *templates.Template, vals []string, std [][2]string, idempotent, formPost bool, clientAuth string) (*http.Response, []byte, error) {
	vals = append([]string(nil), vals...)
	vals[definitions.VarRandom] = randomToken() // ${Random}: fresh for every request
	raw, err := t.Expand(vals)
	if err != nil {
		return nil, nil, fmt.Errorf("expanding %s: %w", t.Redacted(vals), err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, nil, errors.New("the token URI does not expand to a valid URL")
	}
	params := u.Query()
	for _, kv := range std {
		f.setStd(params, kv[0], kv[1])
	}
	tr := f.o.TokenRequest
	if formPost { // revocation and introspection are form POSTs (RFC 7009 2.1, RFC 7662 2.1)
		tr.Method, tr.Params = http.MethodPost, definitions.ParamsForm
	}
	idName, _ := f.o.Param("client_id")
	secretName, _ := f.o.Param("client_secret")
	basic := clientAuth == definitions.ClientAuthBasic || clientAuth == definitions.ClientAuthBoth
	if clientAuth == definitions.ClientAuthPrivateKeyJWT {
		if err := f.clientAssertion(params, assertionAudience(ctx, u)); err != nil { // flow_assertion.go; the audience: flow_par.go
			return nil, nil, err
		}
	} else if definitions.IsTLSClientAuth(clientAuth) {
		// RFC 8705 2: the certificate authenticates; client_id says whose.
		for k, vs := range params {
			if k == "client_secret" || k == secretName || (f.conn.ClientSecret != "" && len(vs) == 1 && vs[0] == f.conn.ClientSecret) {
				params.Del(k)
			}
		}
		f.setStd(params, "client_id", f.conn.ClientID)
	} else if clientAuth == definitions.ClientAuthBasic {
		// One method per request (RFC 6749 2.3.1): drop what the URI put in
		// the parameters, wherever the admin named it.
		for k, vs := range params {
			if k == "client_id" || k == "client_secret" || k == idName || k == secretName || (f.conn.ClientSecret != "" && len(vs) == 1 && vs[0] == f.conn.ClientSecret) {
				params.Del(k)
			}
		}
	} else {
		f.setStd(params, "client_id", f.conn.ClientID)
		f.setStd(params, "client_secret", f.conn.ClientSecret)
	}
	var body []byte
	contentType := ""
	switch tr.Params {
	case definitions.ParamsQuery:
		u.RawQuery = params.Encode()
	case definitions.ParamsJSON:
		u.RawQuery = ""
		m := make(map[string]string, len(params))
		for k := range params {
			m[k] = params.Get(k)
		}
		body, _ = json.Marshal(m)
		contentType = "application/json"
	default:
		u.RawQuery = ""
		body = []byte(params.Encode())
		contentType = "application/x-www-form-urlencoded"
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, tr.Method, u.String(), bodyOrNil(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "application/json")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if basic {
		// RFC 6749 2.3.1: form-encode id and secret before Base64, so that
		// a ':' or '%' in either survives.
		req.SetBasicAuth(url.QueryEscape(f.conn.ClientID), url.QueryEscape(f.conn.ClientSecret))
	}
	hc, err := f.tokenClient() // flow_mtls.go: the client certificate, if any
	if err != nil {
		return nil, nil, err
	}
	hc = f.proofClient(hc, formPost) // flow_dpop.go: a DPoP proof per attempt, if any
	resp, err := newTokenClient(noRedirects(hc), idempotent).Do(req)
	if err != nil {
		return nil, nil, f.tlsRefusal(netError(tr.Method, u, err)) // the shape of every request error: "POST https://host/path: ..."
	}
	if resp.StatusCode/100 == 3 {
		resp.Body.Close()
		return nil, nil, f.redirectError(t, u, resp)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		resp.Body.Close()
		return nil, nil, fmt.Errorf("reading the response: %w", err)
	}
	if len(data) > maxBody {
		resp.Body.Close()
		return nil, nil, fmt.Errorf("the response is larger than %d bytes; refusing it", maxBody)
	}
	return resp, data, nil
}

// noRedirects returns a copy of c that hands every redirect back instead of
// following it. Go's default policy re-sends a 307/308 with its body (the
// client secret, a code, a refresh token) to whatever host Location names;
// OAuth token, revocation and introspection endpoints do not redirect.
func noRedirects(c *http.Client) *http.Client {
	if c == nil {
		c = &http.Client{Timeout: DefaultRequestTimeout}
	}
	cp := *c
	cp.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &cp
}

// RedirectError is a token, refresh, revocation or introspection endpoint
// answering with a redirect, which the flow never follows.
type RedirectError struct {
	Op       string // "refresh", "code exchange", ...; "" for revocation and introspection, whose callers say so
	Endpoint string // the endpoint's URL without its query, secrets removed
	Key      string // the definition key naming it, e.g. token_request_uri
	Status   int
	Host     string // the host Location names (never its path or query); "" if none
}

func (e *RedirectError) Error() string {
	to := "without a Location"
	if e.Host != "" {
		to = "to host " + e.Host
	}
	msg := fmt.Sprintf("the endpoint %s (%s) answered HTTP %d, a redirect %s; OAuth endpoints do not redirect, so the request was not sent there and nothing was stored: set %s to the endpoint itself",
		e.Endpoint, e.Key, e.Status, to, e.Key)
	if e.Op != "" {
		msg = e.Op + " refused: " + msg
	}
	return msg
}

func (f *Flow) redirectError(t *templates.Template, u *url.URL, resp *http.Response) error {
	e := &RedirectError{Endpoint: f.redactString((&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()), Key: f.uriKey(t), Status: resp.StatusCode}
	if loc := resp.Header.Get("Location"); loc != "" {
		if l, err := u.Parse(loc); err == nil {
			e.Host = l.Host
		} else {
			e.Host = "(an unparsable Location)"
		}
	}
	return e
}

// uriKey names the definition key of one of the flow's templates.
func (f *Flow) uriKey(t *templates.Template) string {
	switch t {
	case f.o.RefreshURI:
		return "refresh_uri"
	case f.o.RevokeURI:
		return "revoke_uri"
	case f.o.IntrospectionURI:
		return "introspection_uri"
	case f.o.DeviceAuthorizationURI:
		return "device_authorization_uri"
	case f.o.PARURI:
		return "par_uri"
	}
	return "token_request_uri"
}

func bodyOrNil(b []byte) any {
	if b == nil {
		return nil
	}
	return bytes.NewReader(b)
}

// tokenError turns a non-2xx answer into a *TokenError.
func (f *Flow) tokenError(what string, resp *http.Response, body []byte, secrets ...string) error {
	te := &TokenError{Op: what, Status: resp.StatusCode}
	var m map[string]any
	if json.Unmarshal(body, &m) == nil {
		switch e := m["error"].(type) {
		case string:
			te.Code = e
			te.Description, _ = m["error_description"].(string)
		case map[string]any: // Procore's generic {"error":{"code","message"}}
			te.Code = fmt.Sprint(e["code"])
			te.Description, _ = e["message"].(string)
		}
	} else if vals, err := url.ParseQuery(string(body)); err == nil && vals.Get("error") != "" {
		te.Code, te.Description = vals.Get("error"), vals.Get("error_description")
	}
	if te.Code == "" {
		te.Code = http.StatusText(resp.StatusCode)
	}
	te.Code = f.redactString(te.Code, secrets...) // providers echo the request in error too
	te.Description = f.redactString(te.Description, secrets...)
	return te
}

// redactString removes every secret this flow knows from s: error bodies
// sometimes echo the request back.
func (f *Flow) redactString(s string, extra ...string) string {
	secrets := append([]string{f.conn.ClientSecret, f.conn.RefreshToken, f.conn.AccessToken}, extra...)
	for _, d := range f.def.Fields {
		if d.Secret {
			secrets = append(secrets, f.vals[d.Var])
		}
	}
	for _, sec := range secrets {
		if len(sec) >= 4 {
			s = strings.ReplaceAll(s, sec, "***")
			s = strings.ReplaceAll(s, url.QueryEscape(sec), "***")
		}
	}
	return s
}

func (f *Flow) redact(err error, extra ...string) error {
	var redirect *RedirectError
	if errors.As(err, &redirect) {
		return redirect // built redacted; kept whole so that callers can match it
	}
	return errors.New(f.redactString(err.Error(), extra...))
}

// TokenError is the provider's answer to a failed token request.
type TokenError struct {
	Op          string // "refresh", "code exchange", ...
	Status      int
	Code        string // RFC 6749 5.2 error code, e.g. invalid_grant; secrets removed
	Description string // secrets removed
}

func (e *TokenError) Error() string {
	msg := fmt.Sprintf("%s failed: %s", e.Op, e.Code)
	if e.Status != 0 && e.Status != 200 {
		msg = fmt.Sprintf("%s failed (HTTP %d): %s", e.Op, e.Status, e.Code)
	}
	if e.Description != "" {
		msg += ": " + e.Description
	}
	return msg
}

// RequestError is a token request whose answer never arrived (or could not
// be read). For a refresh, the provider may still have acted on it.
type RequestError struct {
	Op  string
	Err error
}

func (e *RequestError) Error() string { return fmt.Sprintf("%s: %v", e.Op, e.Err) }
func (e *RequestError) Unwrap() error { return e.Err }

// NeedsReauthError says only a person authorizing again can fix the connection.
type NeedsReauthError struct{ Reason string }

func (e *NeedsReauthError) Error() string {
	return "the connection needs authorizing again: " + e.Reason
}
