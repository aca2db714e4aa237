package connector

import (
	"context"
	"fmt"
	"net/url"
	"sync"

	"github.com/connector-engine/connector/connector/jwtauth"
	"github.com/connector-engine/connector/connector/token"
	"github.com/connector-engine/connector/definitions"
)

// The JWTs of RFC 7523, signed per token request by package jwtauth: the
// JWT bearer grant's assertion (2.1) and the private_key_jwt client
// assertion (2.2). Each carries a fresh jti, so a request is never
// repeated with the same one once it may have arrived.

// assertionSigner parses the definition's private key once.
type assertionSigner struct {
	once sync.Once
	s    *jwtauth.Signer
	err  error
}

func (f *Flow) signer() (*jwtauth.Signer, error) {
	a := f.o.Assertion
	f.jwt.once.Do(func() {
		ph := a.PrivateKey.Placeholders()
		pemKey := f.vals[ph[0].Var] // the rules make it exactly one placeholder
		kid := ""
		if a.KeyID != nil {
			if kid, f.jwt.err = a.KeyID.Expand(f.vals); f.jwt.err != nil {
				return
			}
		}
		if f.jwt.s, f.jwt.err = jwtauth.New(pemKey, a.Algorithm, kid); f.jwt.err != nil {
			f.jwt.err = fmt.Errorf("connection %s: auth.oauth.assertion.private_key: %w", f.conn.Key(), f.jwt.err)
		}
		if f.jwt.s != nil && f.Now != nil {
			f.jwt.s.Now = f.Now
		}
	})
	return f.jwt.s, f.jwt.err
}

// assertion signs one JWT for the token endpoint at u.
func (f *Flow) assertion(u *url.URL, clientAuth bool) (string, error) {
	s, err := f.signer()
	if err != nil {
		return "", err
	}
	a := f.o.Assertion
	expand := func(t interface {
		Expand([]string) (string, error)
	}, isNil bool, def string) (string, error) {
		if isNil {
			return def, nil
		}
		return t.Expand(f.vals)
	}
	aud := (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
	c := jwtauth.Claims{Issuer: f.conn.ClientID, Subject: f.conn.ClientID, Audience: aud, Lifetime: a.Lifetime, Extra: map[string]any{}}
	var e1, e2, e3 error
	c.Audience, e1 = expand(a.Audience, a.Audience == nil, aud)
	if !clientAuth { // the grant's own iss and sub (a service account's)
		c.Issuer, e2 = expand(a.Issuer, a.Issuer == nil, f.conn.ClientID)
		c.Subject, e3 = expand(a.Subject, a.Subject == nil, c.Issuer)
	}
	for _, err := range []error{e1, e2, e3} {
		if err != nil {
			return "", fmt.Errorf("connection %s: the assertion's claims: %w", f.conn.Key(), err)
		}
	}
	if !clientAuth {
		for _, cl := range a.Claims {
			v, err := cl.Value.Expand(f.vals)
			if err != nil {
				return "", fmt.Errorf("connection %s: the assertion's claim %s: %w", f.conn.Key(), cl.Name, err)
			}
			c.Extra[cl.Name] = v
		}
	}
	return s.Sign(c)
}

// clientAssertion authenticates the client with a private_key_jwt (RFC
// 7523 2.2) instead of a secret: client_id, client_assertion_type and a
// fresh client_assertion; no client_secret is sent.
func (f *Flow) clientAssertion(params url.Values, u *url.URL) error {
	params.Del("client_secret")
	jwt, err := f.assertion(u, true)
	if err != nil {
		return err
	}
	setDefault(params, "client_id", f.conn.ClientID)
	params.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
	params.Set("client_assertion", jwt)
	return nil
}

// JWTBearer fetches a token with the JWT bearer grant (RFC 7523 2.1): a
// fresh assertion per request, with the definition's scope.
func (f *Flow) JWTBearer(ctx context.Context) (*token.Token, error) {
	if f.o.GrantType != definitions.GrantJWTBearer {
		return nil, fmt.Errorf("definition %s uses the %s grant, not jwt_bearer", f.def.Name, f.o.GrantType)
	}
	raw, err := f.o.TokenRequestURI.Expand(f.vals)
	if err != nil {
		return nil, fmt.Errorf("expanding token_request_uri: %w", err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("token_request_uri does not expand to a URL")
	}
	jwt, err := f.assertion(u, false)
	if err != nil {
		return nil, err
	}
	std := [][2]string{{"grant_type", string(definitions.GrantJWTBearer)}, {"assertion", jwt}, {"scope", f.vals[definitions.VarScope]}}
	// Not repeated once it may have arrived: the jti is single use.
	return f.tokenRequest(ctx, "JWT bearer grant", f.o.TokenRequestURI, f.vals, std, false, jwt)
}
