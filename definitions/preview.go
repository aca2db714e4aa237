package definitions

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Preview is an OAuth request as the engine sends it: the URI's template
// expanded, the standard parameters it does not set added, placed where
// token_request says, with the client's authentication.
type Preview struct {
	Method  string
	URL     string
	Headers [][2]string // in the order sent
	Body    string      // "" when there is none
	// TLS says what the TLS handshake presents (the client certificate of
	// mutual TLS), one line each; String writes them first, marked "* ".
	TLS []string
}

// String writes the request as HTTP/1.1 would, without the Host line.
func (p *Preview) String() string {
	var b strings.Builder
	for _, l := range p.TLS {
		b.WriteString("* " + l + "\n")
	}
	b.WriteString(p.Method + " " + p.URL + "\n")
	for _, h := range p.Headers {
		b.WriteString(h[0] + ": " + h[1] + "\n")
	}
	if p.Body != "" {
		b.WriteString("\n" + p.Body + "\n")
	}
	return b.String()
}

// Generated stand-ins for the values the engine makes per request, shown
// when the caller gives none.
const (
	PreviewState     = "GENERATED-STATE"
	PreviewChallenge = "GENERATED-CODE-CHALLENGE"
	PreviewVerifier  = "GENERATED-CODE-VERIFIER"
	// PreviewDeviceCode stands for the device code of RFC 8628 3.2, which
	// the device authorization response hands out.
	PreviewDeviceCode = "DEVICE-CODE"
	PreviewRandom     = "GENERATED-RANDOM"
	// PreviewAssertion stands for the JWT the engine signs per request
	// (private_key_jwt, the JWT bearer grant): with --show-secrets there is
	// still no key to sign with, and a signed token would be one to steal.
	PreviewAssertion = "GENERATED-SIGNED-JWT"
	// PreviewRequestURI stands for the request_uri a pushed authorization
	// request (par_uri) returns.
	PreviewRequestURI = "urn:ietf:params:oauth:request_uri:FROM-PAR-RESPONSE"
	// PreviewDPoPProof stands for the DPoP proof (RFC 9449 4.2) the engine
	// signs for each token request of a dpop definition, with the key it
	// makes when connecting: no key exists before that.
	PreviewDPoPProof = "GENERATED-DPOP-PROOF"
	// PreviewDPoPJKT stands for the thumbprint of the key made for the
	// authorization (dpop_jkt, RFC 9449 10).
	PreviewDPoPJKT = "GENERATED-DPOP-JKT"
)

// clientAssertionType is the client_assertion_type of private_key_jwt
// (RFC 7523 2.2).
const clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Preview renders the request the engine sends for one of the OAuth URIs
// (initiate_uri, authorize_uri, par_uri, token_request_uri, refresh_uri, revoke_uri,
// introspection_uri) of environment env with vals (from Values, plus any per-request value the
// caller sets). Secret values, the client secret and Basic credentials are
// *** unless showSecrets. It mirrors connector.Flow, and a connector test
// holds the two to the same requests.
//
// The scopes, when vals gives none, are those of environment env (its own,
// else the definition's), joined as the engine joins them.
func (d *Definition) Preview(env, key string, vals []string, showSecrets bool) (*Preview, error) {
	o := d.Auth.OAuth
	if o == nil { // preview_auth.go: the session login, OAuth 1.0a
		if _, ok := d.authURI(key); ok {
			if d.Auth.Session != nil {
				return d.previewSession(vals, showSecrets)
			}
			return d.previewOAuth1(key, vals, showSecrets)
		}
	}
	t, ok := d.URI(key)
	if !ok && key == "refresh_uri" && o != nil && o.Version == V2 && (o.GrantType == GrantAuthorizationCode || o.GrantType == GrantDeviceCode) {
		t, ok = o.TokenRequestURI, o.TokenRequestURI != nil // without refresh_uri the engine refreshes at the token endpoint
	}
	if !ok || o == nil {
		return nil, fmt.Errorf("definition %s has no %s", d.Name, key)
	}
	vs := slices.Clone(vals)
	gen := func(i int, v string) {
		if vs[i] == "" {
			vs[i] = v
		}
	}
	scopes := o.Scopes
	if e, err := d.Environment(env); err == nil && e.Scopes != nil {
		scopes = e.Scopes
	}
	gen(VarScope, strings.Join(scopes, o.ScopeSeparator))
	gen(VarRandom, PreviewRandom)
	secret := func(v string) string {
		if showSecrets || v == "" {
			return v
		}
		return "***"
	}
	var raw string
	if showSecrets {
		var err error
		if raw, err = t.Expand(vs); err != nil {
			return nil, err
		}
	}
	type kv = [2]string
	var std []kv
	browser := false
	var pushed url.Values // par_uri: the authorization URI's own query, pushed with the rest
	switch key {
	case "initiate_uri", "authorize_uri", "par_uri":
		browser = key != "par_uri"
		gen(VarState, PreviewState)
		if o.PKCE {
			gen(VarCodeChallenge, PreviewChallenge)
		}
		std = []kv{{"response_type", "code"}, {"client_id", vs[VarClientID]}, {"redirect_uri", vs[VarRedirectURI]}, {"state", vs[VarState]}, {"scope", vs[VarScope]}}
		if o.PKCE {
			std = append(std, kv{"code_challenge", vs[VarCodeChallenge]}, kv{"code_challenge_method", "S256"})
		}
		if o.DPoP != nil { // RFC 9449 10: the code bound to the connection's key
			std = append(std, kv{"dpop_jkt", PreviewDPoPJKT})
		}
		if key == "par_uri" {
			pushed = d.previewAuthorizeQuery(vs)
		}
	case "token_request_uri":
		if o.GrantType == GrantClientCredentials {
			std = []kv{{"grant_type", "client_credentials"}, {"scope", vs[VarScope]}}
			break
		}
		if o.GrantType == GrantJWTBearer { // RFC 7523 2.1: the signed JWT is the grant
			std = []kv{{"grant_type", string(GrantJWTBearer)}, {"assertion", assertion(showSecrets)}, {"scope", vs[VarScope]}}
			break
		}
		if o.GrantType == GrantDeviceCode { // RFC 8628 3.4: the device code stands for the approval
			std = []kv{{"grant_type", string(GrantDeviceCode)}, {"device_code", secret(PreviewDeviceCode)}}
			break
		}
		if o.PKCE {
			gen(VarCodeVerifier, PreviewVerifier)
		}
		std = []kv{{"grant_type", "authorization_code"}, {"code", secret(vs[VarCode])}, {"redirect_uri", vs[VarRedirectURI]}}
		if o.PKCE {
			std = append(std, kv{"code_verifier", secret(vs[VarCodeVerifier])})
		}
	case "refresh_uri":
		std = []kv{{"grant_type", "refresh_token"}, {"refresh_token", secret(vs[VarRefreshToken])}}
	case "device_authorization_uri": // RFC 8628 3.1
		std = []kv{{"scope", vs[VarScope]}}
	case "revoke_uri", "introspection_uri":
		std = []kv{{"token", secret("TOKEN")}, {"token_type_hint", "refresh_token"}}
	}
	if !showSecrets {
		raw = t.Redacted(vs)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s does not expand to a URL: %w", key, err)
	}
	fragment := browser && o.AuthorizeQuery == QueryInFragment
	rawQuery, route := u.RawQuery, ""
	if fragment {
		route, rawQuery, _ = strings.Cut(u.EscapedFragment(), "?")
	}
	params, _ := url.ParseQuery(rawQuery)
	add := func(k, v string) {
		if name, on := o.Param(k); on && !params.Has(name) && v != "" {
			params.Set(name, v)
		}
	}
	for k := range pushed {
		add(k, pushed.Get(k))
	}
	for _, p := range std {
		add(p[0], p[1])
	}
	p := &Preview{Method: "GET"}
	if browser && o.PARURI != nil {
		// RFC 9126 4: the rest was pushed to par_uri.
		params = url.Values{}
		add("client_id", vs[VarClientID])
		params.Set("request_uri", PreviewRequestURI)
	}
	if browser {
		if fragment {
			u.RawFragment = route + "?" + params.Encode()
			u.Fragment, _ = url.PathUnescape(u.RawFragment)
		} else {
			u.RawQuery = params.Encode()
		}
		p.URL = u.String()
		if !showSecrets {
			p.URL = strings.ReplaceAll(p.URL, "%2A%2A%2A", "***")
		}
		return p, nil
	}
	tr := o.TokenRequest
	if key == "revoke_uri" || key == "introspection_uri" || key == "device_authorization_uri" || key == "par_uri" {
		tr.Method, tr.Params = "POST", ParamsForm
	}
	auth := tr.ClientAuth
	if key == "refresh_uri" && tr.RefreshClientAuth != "" {
		auth = tr.RefreshClientAuth
	}
	basic := auth == ClientAuthBasic || auth == ClientAuthBoth
	if auth == ClientAuthBasic {
		idName, _ := o.Param("client_id")
		secretName, _ := o.Param("client_secret")
		for _, k := range []string{"client_id", "client_secret", idName, secretName} {
			params.Del(k)
		}
	} else if IsTLSClientAuth(auth) { // RFC 8705 2: the certificate authenticates, in the handshake
		add("client_id", vs[VarClientID])
	} else if auth == ClientAuthPrivateKeyJWT { // RFC 7523 2.2: a signed assertion instead of the secret
		params.Del("client_secret")
		add("client_id", vs[VarClientID])
		params.Set("client_assertion_type", clientAssertionType)
		params.Set("client_assertion", assertion(showSecrets))
	} else {
		add("client_id", vs[VarClientID])
		if !o.Public { // a public client has no secret, and a connection giving one is refused
			add("client_secret", secret(vs[VarClientSecret]))
		}
	}
	p.Method = tr.Method
	p.TLS = d.previewCertificate(vals)
	p.Headers = append(p.Headers, [2]string{"Accept", "application/json"})
	switch tr.Params {
	case ParamsQuery:
		u.RawQuery = params.Encode()
	case ParamsJSON:
		u.RawQuery = ""
		m := map[string]string{}
		for k := range params {
			m[k] = params.Get(k)
		}
		body, _ := json.Marshal(m)
		p.Body = string(body)
		p.Headers = append(p.Headers, [2]string{"Content-Type", "application/json"})
	default:
		u.RawQuery = ""
		p.Body = params.Encode()
		p.Headers = append(p.Headers, [2]string{"Content-Type", "application/x-www-form-urlencoded"})
	}
	if basic {
		cred := "***"
		if showSecrets {
			cred = base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(vs[VarClientID]) + ":" + url.QueryEscape(vs[VarClientSecret])))
		}
		p.Headers = append(p.Headers, [2]string{"Authorization", "Basic " + cred})
	}
	if o.DPoP != nil && (key == "token_request_uri" || key == "refresh_uri") { // auth_dpop.go: a proof per token request
		p.Headers = append(p.Headers, [2]string{"DPoP", PreviewDPoPProof})
	}
	p.URL = u.String()
	if !showSecrets { // *** reads better than its escaped form
		p.URL = strings.ReplaceAll(p.URL, "%2A%2A%2A", "***")
		p.Body = strings.ReplaceAll(p.Body, "%2A%2A%2A", "***")
	}
	return p, nil
}

// assertion is what a preview shows for a JWT the engine signs per request.
func assertion(showSecrets bool) string {
	if showSecrets {
		return PreviewAssertion
	}
	return "***"
}

// previewAuthorizeQuery is the query the initiate (V1: authorize) URI writes
// itself, which the engine pushes to par_uri with the standard parameters.
func (d *Definition) previewAuthorizeQuery(vs []string) url.Values {
	o := d.Auth.OAuth
	t := o.InitiateURI
	if o.Version == V1 {
		t = o.AuthorizeURI
	}
	if t == nil {
		return nil
	}
	raw, err := t.Expand(vs) // the authorization request holds no secret
	if err != nil {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil
	}
	rawQuery := u.RawQuery
	if o.AuthorizeQuery == QueryInFragment {
		_, rawQuery, _ = strings.Cut(u.EscapedFragment(), "?")
	}
	q, _ := url.ParseQuery(rawQuery)
	return q
}
