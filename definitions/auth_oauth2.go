package definitions

import (
	"fmt"
	"strings"
	"time"

	"github.com/connector-engine/connector/templates"
)

// The oauth section: grant, client authentication, URIs and where the
// token goes, read into OAuth and checked against each other.

func (b *builder) buildAuth(r *raw) {
	d := b.def
	a := &r.Auth
	sections := map[string]bool{"oauth": a.OAuth != nil, "basic": a.Basic != nil, "apikey": a.APIKey != nil, "session": a.Session != nil, "oauth1": a.OAuth1 != nil, "ntlm": a.NTLM != nil}
	want := map[Scheme]string{SchemeOAuth: "oauth", SchemeOAuthClient: "oauth", SchemeBasic: "basic", SchemeAPIKey: "apikey", SchemeSession: "session", SchemeOAuth1: "oauth1", SchemeNTLM: "ntlm"}[d.Auth.Scheme]
	if want == "" && d.Auth.Scheme != SchemeNone {
		return // an unknown scheme: the schema said so, and nothing here can be checked against it
	}
	for _, s := range []string{"oauth", "basic", "apikey", "session", "oauth1", "ntlm"} {
		if sections[s] && s != want {
			b.errorf("/auth/"+s, "auth.%s is given but the scheme is %q; remove it or change auth.scheme", s, d.Auth.Scheme)
		}
	}
	if want != "" && !sections[want] {
		b.errorf("/auth", "scheme %q needs an auth.%s section", d.Auth.Scheme, want)
		return
	}
	switch d.Auth.Scheme {
	case SchemeBasic:
		d.Auth.Basic = &Basic{
			Username: b.compile("/auth/basic/username", a.Basic.Username, templates.Text, scopeRequests),
			Password: b.compile("/auth/basic/password", a.Basic.Password, templates.Text, scopeRequests),
		}
	case SchemeAPIKey:
		d.Auth.APIKey = &APIKey{In: a.APIKey.In, Name: a.APIKey.Name,
			Value: b.compile("/auth/apikey/value", a.APIKey.Value, templates.Text, scopeRequests)}
	case SchemeOAuth, SchemeOAuthClient:
		b.buildOAuth(r)
	case SchemeSession:
		b.buildSession(a.Session)
	case SchemeOAuth1:
		b.buildOAuth1(a.OAuth1)
	case SchemeNTLM:
		b.buildNTLM(a.NTLM)
	}
}

func (b *builder) buildOAuth(r *raw) {
	d := b.def
	ro := r.Auth.OAuth
	o := &OAuth{
		Version: ro.Version, Scopes: ro.Scopes, ScopeSeparator: ro.ScopeSeparator, Issuer: ro.Issuer,
		TokenRequest: TokenRequest{Method: ro.TokenRequest.Method, Params: ro.TokenRequest.Params, ClientAuth: ro.TokenRequest.ClientAuth, RefreshClientAuth: ro.TokenRequest.RefreshClientAuth},
		CallbackCode: ro.CallbackCode, AuthorizeQuery: ro.AuthorizeQuery,
		TokenResponse: TokenResponse{
			AccessToken: ro.TokenResponse.AccessToken, RefreshToken: ro.TokenResponse.RefreshToken,
			TokenType: ro.TokenResponse.TokenType, ExpiresIn: ro.TokenResponse.ExpiresIn,
			Scope: ro.TokenResponse.Scope, CreatedAt: ro.TokenResponse.CreatedAt,
			ExpiresInUnit: ro.TokenResponse.ExpiresInUnit, ExpiresAt: ro.TokenResponse.ExpiresAt,
			DefaultExpiresIn: DefaultTokenLifetime,
		},
	}
	d.Auth.OAuth = o
	const p = "/auth/oauth"

	// The grant follows from the scheme; when given it must agree.
	o.GrantType = GrantAuthorizationCode
	if d.Auth.Scheme == SchemeOAuthClient {
		o.GrantType = GrantClientCredentials
	}
	if d.Auth.Scheme == SchemeOAuthClient && ro.GrantType == "jwt_bearer" {
		o.GrantType = GrantJWTBearer // RFC 7523 2.1: the client's signed JWT instead of its credentials
	} else if d.Auth.Scheme == SchemeOAuth && ro.GrantType == "device_code" {
		o.GrantType = GrantDeviceCode // RFC 8628: the user approves on another device, so scheme oauth
	} else if ro.GrantType == "device_code" {
		b.errorf(p+"/grant_type", "the device grant has a user approve the connection, so it belongs to scheme: oauth, not %s; change auth.scheme", d.Auth.Scheme)
	} else if ro.GrantType != "" && GrantType(ro.GrantType) != o.GrantType {
		b.errorf(p+"/grant_type", "grant_type %s contradicts auth.scheme %s (which means %s); change one of them", ro.GrantType, d.Auth.Scheme, o.GrantType)
	}
	code := o.GrantType == GrantAuthorizationCode
	o.PKCE = code
	if ro.PKCE != nil {
		o.PKCE = *ro.PKCE
	}

	// Defaults keep secrets out of URLs: parameters travel in a form body.
	defaults(&o.TokenRequest.Method, "POST")
	defaults(&o.TokenRequest.Params, ParamsForm)
	defaults(&o.TokenRequest.ClientAuth, ClientAuthBody)
	defaults(&o.TokenRequest.RefreshClientAuth, o.TokenRequest.ClientAuth)
	defaults(&o.CallbackCode, "code")
	defaults(&o.AuthorizeQuery, QueryInURL)
	defaults(&o.TokenResponse.ExpiresInUnit, "seconds")
	b.buildParameters(o)
	b.checkRequestShape(o)
	defaults(&o.ScopeSeparator, " ")
	tr := &o.TokenResponse
	defaults(&tr.AccessToken, "access_token")
	defaults(&tr.RefreshToken, "refresh_token")
	defaults(&tr.TokenType, "token_type")
	defaults(&tr.ExpiresIn, "expires_in")
	defaults(&tr.Scope, "scope")
	defaults(&tr.CreatedAt, "created_at")
	if s := ro.TokenResponse.DefaultExpiresIn; s != "" {
		if dur, err := time.ParseDuration(s); err != nil || dur <= 0 {
			b.errorf(p+"/token_response/default_expires_in", "%q is not a positive duration such as 3600s or 2h", s)
		} else {
			tr.DefaultExpiresIn = dur
		}
	}
	if s := ro.TokenResponse.RefreshMargin; s != "" {
		if dur, err := time.ParseDuration(s); err != nil || dur <= 0 {
			b.errorf(p+"/token_response/refresh_margin", "%q is not a positive duration such as 30s or 2m", s)
		} else {
			tr.RefreshMargin = dur
		}
	}
	b.buildSendToken(o, &ro.SendToken.In, &ro.SendToken.Name, ro.SendToken.Prefix)
	o.Public = ro.Client == "public" // before the assertion and certificate, whose rules depend on it
	b.buildAssertion(o, ro.Assertion)
	b.buildClientCertificate(o, ro.ClientCertificate)
	b.buildDPoP(o, ro.DPoP) // after send_token, which it checks
	b.buildKeepAlive(o, ro.KeepAlive)
	if o.TokenRequest.Method == "GET" && o.TokenRequest.Params != ParamsQuery {
		b.errorf(p+"/token_request/method", "a GET token request has no body to carry %s parameters; use params: query or method: POST", o.TokenRequest.Params)
	}
	if ro.Issuer != "" {
		b.checkPlainURL(p+"/issuer", ro.Issuer)
	}

	// Which URIs each version and grant needs, as in the App Xchange connector.
	need := func(field, uri, why string) {
		if uri == "" {
			b.errorf(p, "missing %s: %s", field, why)
		}
	}
	forbid := func(field, uri, why string) {
		if uri != "" {
			b.errorf(p+"/"+field, "%s", why)
		}
	}
	device := o.GrantType == GrantDeviceCode
	if !device {
		forbid("device_authorization_uri", ro.DeviceAuthURI, "device_authorization_uri belongs to the device grant; remove it or set grant_type: device_code")
	}
	switch {
	case device:
		b.checkDeviceGrant(ro.Version, ro.InitiateURI, ro.AuthorizeURI, ro.PKCE, forbid)
		need("device_authorization_uri", ro.DeviceAuthURI, "the device grant asks there for the device code and the code the user enters (RFC 8628 3.1)")
		forbid("par_uri", ro.PARURI, "the device grant has no authorization request for a browser to carry, so there is nothing to push to par_uri (RFC 9126 is for code flows); remove it")
		need("token_request_uri", ro.TokenRequestURI, "the device grant polls there until the user has approved (RFC 8628 3.4)")
	case !code:
		forbid("initiate_uri", ro.InitiateURI, "client credentials involve no user, so there is no initiate_uri; remove it (or use scheme: oauth for a code flow)")
		forbid("authorize_uri", ro.AuthorizeURI, "client credentials involve no user, so there is no authorize_uri; remove it")
		forbid("par_uri", ro.PARURI, "client credentials involve no user and no authorization request, so there is nothing to push to par_uri (RFC 9126 is for code flows); remove it")
		need("token_request_uri", ro.TokenRequestURI, "client credentials get their token there")
		if ro.Version == V1 {
			b.errorf(p+"/version", "client credentials are an OAuth V2 grant; set version: V2")
		}
		if ro.PKCE != nil && *ro.PKCE {
			b.errorf(p+"/pkce", "PKCE protects a code flow; client credentials have no code, so remove pkce")
		}
	case ro.Version == V1:
		need("authorize_uri", ro.AuthorizeURI, "V1 sends the user to the Authorize URI")
		need("token_request_uri", ro.TokenRequestURI, "V1 exchanges the code there")
		forbid("refresh_uri", ro.RefreshURI, "V1 tokens are not refreshed (refresh_uri is V2 only); remove it or set version: V2")
		forbid("initiate_uri", ro.InitiateURI, "V1 starts at authorize_uri; initiate_uri is V2 only. Remove it or set version: V2")
	default:
		need("initiate_uri", ro.InitiateURI, "a V2 code flow sends the user there to approve")
		need("token_request_uri", ro.TokenRequestURI, "a V2 code flow exchanges the code there")
		forbid("authorize_uri", ro.AuthorizeURI, "authorize_uri is V1 only; a V2 code flow starts at initiate_uri. Remove it or set version: V1")
	}
	switch {
	case device && o.Public && o.TokenRequest.ClientAuth != ClientAuthBody:
		b.errorf(p+"/token_request/client_auth", "%s", publicClientAuth("client_auth", o.TokenRequest.ClientAuth))
	case device && o.Public && o.TokenRequest.RefreshClientAuth != ClientAuthBody:
		b.errorf(p+"/token_request/refresh_client_auth", "%s", publicClientAuth("refresh_client_auth", o.TokenRequest.RefreshClientAuth))
	case device:
		// A public client is the norm (RFC 8628 3.1): nothing binds a code to
		// it, so PKCE has nothing to do, and no warning about it.
	case o.Public && !code:
		b.errorf(p+"/client", "client credentials authenticate the client with its secret, which a public client does not have; use scheme: oauth or remove client: public")
	case o.Public && !o.PKCE:
		b.errorf(p+"/pkce", "a public client has no secret, so only PKCE binds the code to it (RFC 9700 2.1.1); turn pkce on")
	case o.Public && o.TokenRequest.ClientAuth != ClientAuthBody:
		b.errorf(p+"/token_request/client_auth", "%s", publicClientAuth("client_auth", o.TokenRequest.ClientAuth))
	case o.Public && o.TokenRequest.RefreshClientAuth != ClientAuthBody:
		b.errorf(p+"/token_request/refresh_client_auth", "%s", publicClientAuth("refresh_client_auth", o.TokenRequest.RefreshClientAuth))
	case code && !o.PKCE:
		b.warnf(warnPKCEOff, p+"/pkce", "PKCE is off for a code flow; an intercepted code could be redeemed by someone else. Turn it on unless the provider rejects it")
	}

	tokenScope := scopeCode
	if device {
		tokenScope = scopeDevice
	} else if !code {
		tokenScope = scopeClient
	}
	if ro.DeviceAuthURI != "" && device {
		o.DeviceAuthorizationURI = b.compile(p+"/device_authorization_uri", ro.DeviceAuthURI, templates.URL, scopeDevice)
	}
	if ro.InitiateURI != "" {
		o.InitiateURI = b.compile(p+"/initiate_uri", ro.InitiateURI, templates.URL, scopeAuthz)
	}
	if ro.AuthorizeURI != "" {
		o.AuthorizeURI = b.compile(p+"/authorize_uri", ro.AuthorizeURI, templates.URL, scopeAuthz)
	}
	if ro.TokenRequestURI != "" {
		o.TokenRequestURI = b.compile(p+"/token_request_uri", ro.TokenRequestURI, templates.URL, tokenScope)
	}
	if ro.RefreshURI != "" {
		o.RefreshURI = b.compile(p+"/refresh_uri", ro.RefreshURI, templates.URL, scopeRefresh)
	}
	if ro.RevokeURI != "" {
		o.RevokeURI = b.compile(p+"/revoke_uri", ro.RevokeURI, templates.URL, scopeRevoke)
	}
	if ro.IntrospectURI != "" {
		o.IntrospectionURI = b.compile(p+"/introspection_uri", ro.IntrospectURI, templates.URL, scopeIntrospect)
	}
	if ro.PARURI != "" && code {
		o.PARURI = b.compile(p+"/par_uri", ro.PARURI, templates.URL, scopePAR)
	}

	if o.Public {
		for _, u := range []struct {
			field string
			t     *templates.Template
		}{{"token_request_uri", o.TokenRequestURI}, {"refresh_uri", o.RefreshURI}, {"revoke_uri", o.RevokeURI}, {"introspection_uri", o.IntrospectionURI}, {"device_authorization_uri", o.DeviceAuthorizationURI}, {"par_uri", o.PARURI}} {
			if u.t == nil {
				continue
			}
			for _, ph := range u.t.Placeholders() {
				if ph.Var == VarClientSecret {
					b.offsetReporter(p+"/"+u.field)(SeverityError, ph.Offset, fmt.Sprintf("${%s} has no value: this is a public client (client: public), which has no secret; remove the parameter", ph.Name))
				}
			}
		}
	}
	// A secret in a URL that is sent as written ends up in proxy and server logs.
	if o.TokenRequest.Params == ParamsQuery {
		for _, u := range []struct {
			field string
			t     *templates.Template
		}{{"token_request_uri", o.TokenRequestURI}, {"refresh_uri", o.RefreshURI}, {"revoke_uri", o.RevokeURI}, {"introspection_uri", o.IntrospectionURI}, {"device_authorization_uri", o.DeviceAuthorizationURI}} {
			if u.t == nil {
				continue
			}
			for _, ph := range u.t.Placeholders() {
				if d.vars.Flags(ph.Var)&templates.Secret != 0 {
					if ph.Var == VarClientSecret && o.TokenRequest.ClientAuth == ClientAuthBasic && o.TokenRequest.RefreshClientAuth == ClientAuthBasic {
						continue // moved into the Authorization header
					}
					b.warnf(warnSecretInTokenQuery, p+"/"+u.field, "${%s} travels in the URL because token_request.params is query; URLs end up in logs. Use params: form (the query is then sent as the body)", ph.Name)
				}
			}
		}
	}
}

func defaults(s *string, v string) {
	if *s == "" {
		*s = v
	}
}

// buildSendToken reads auth.oauth.send_token.
func (b *builder) buildSendToken(o *OAuth, in, name *string, prefix *string) {
	o.SendToken = b.sendToken("/auth/oauth/send_token", *in, *name, prefix)
}

// sendToken reads a send_token mapping at p (OAuth's, a session's).
func (b *builder) sendToken(p, in, name string, prefix *string) SendToken {
	st := SendToken{In: in, Name: name}
	what := "the access token"
	if strings.HasPrefix(p, "/auth/session/") {
		what = "the session token"
	}
	defaults(&st.In, TokenInHeader)
	switch st.In {
	case TokenInHeader:
		defaults(&st.Name, "Authorization")
		if prefix != nil {
			st.Prefix = *prefix
		} else {
			st.TypePrefix = strings.EqualFold(st.Name, "Authorization")
		}
	case TokenInQuery:
		if name == "" {
			b.errorf(p, "a token sent in the query needs name, the query parameter that carries it (such as access_token)")
		}
		if prefix != nil {
			b.errorf(p+"/prefix", "prefix is written before the token in a header; a token in the query is sent as it is, so remove prefix")
		}
		b.warnf(warnTokenInQuery, p+"/in", "%s travels in the URL, which ends up in proxy and server logs; send it in a header unless the provider accepts nothing else", what)
	case TokenInBody:
		if name == "" {
			b.errorf(p, "a token sent in the body needs name, the form or JSON field that carries it (Zabbix 6.0: auth, Slack: token)")
		}
		if prefix != nil {
			b.errorf(p+"/prefix", "prefix is written before the token in a header; a token in a body field is sent as it is, so remove prefix")
		}
	}
	return st
}
