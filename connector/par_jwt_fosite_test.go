package connector_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/internal/fositeserver"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/definitions"
)

// parJWTDefinition is a code flow that pushes its authorization requests
// and authenticates the client with private_key_jwt everywhere.
func parJWTDefinition(t *testing.T, base, extra string) *definitions.Definition {
	t.Helper()
	src := `name: par-jwt
title: PAR with private_key_jwt
base_url: ` + base + `
fields:
  PrivateKey: {required: true, secret: true}
auth:
  scheme: oauth
  oauth:
    version: V2
    initiate_uri: ${BaseUrl}/oauth/authorize
    par_uri: ${BaseUrl}/oauth/par
    token_request_uri: ${BaseUrl}/oauth/token
    refresh_uri: ${BaseUrl}/oauth/token
    scopes: [read]
    token_request: {client_auth: private_key_jwt}
    assertion:
      private_key: ${PrivateKey}
` + extra
	set, err := definitions.Parse(nil, definitions.File{Path: "par-jwt.yaml", Data: []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := set.Get("par-jwt")
	return d
}

// TestPushedAuthorizationPrivateKeyJWTAgainstFosite: the pushed request,
// the code exchange and the refresh each authenticate with a fresh client
// assertion, and fosite, which requires the pushed request, accepts all
// three. RFC 9126 2 recommends the issuer as the assertion's audience and
// requires servers to accept the token endpoint's URL or the PAR
// endpoint's too; fosite (v0.49) accepts only its token endpoint's URL, at
// the PAR endpoint as well, so that is what the engine sends by default.
func TestPushedAuthorizationPrivateKeyJWTAgainstFosite(t *testing.T) {
	for _, k := range testKeys(t) {
		t.Run(k.name, func(t *testing.T) {
			srv := fositeserver.Start(t, fositeserver.Options{RequirePKCE: true, RequirePAR: true, Clients: []fositeserver.Client{{
				ID: "par-jwt-client", RedirectURIs: []string{redirectURI}, Scopes: []string{"read"},
				PublicKey: k.pub, KeyAlgorithm: k.alg}}})
			conn := &connector.Connection{Definition: parJWTDefinition(t, srv.URL, ""), ClientID: "par-jwt-client",
				RedirectURI: redirectURI, Fields: map[string]string{"PrivateKey": k.pem}}
			src, err := connector.NewSource(conn, store.NewMemory())
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			attempt, err := src.Flow().AuthCodeURLContext(ctx)
			if err != nil {
				t.Fatalf("pushed authorization request: %v", err)
			}
			if q, _ := url.Parse(attempt.URL); len(q.Query()) != 2 || !strings.HasPrefix(q.Query().Get("request_uri"), "urn:ietf:params:oauth:request_uri:") {
				t.Fatalf("authorization URL %s", attempt.URL)
			}
			tok, err := src.ExchangeAndStore(ctx, attempt, approve(t, attempt.URL))
			if err != nil {
				t.Fatalf("exchange: %v", err)
			}
			if _, err := src.Refresh(ctx); err != nil {
				t.Errorf("refresh: %v", err)
			}
			if s := srv.Stats(); s.PushedAccepted != 1 || s.CodeExchanges != 1 || s.Refreshes != 1 {
				t.Errorf("stats %+v", s)
			}
			if strings.Contains(tok.String(), tok.AccessToken) {
				t.Error("the token's String shows the access token")
			}
		})
	}
}

// TestPushedAuthorizationExpiryAgainstFosite: the request_uri's expires_in
// (RFC 9126 2.2) is the attempt's URLExpires, counted from before the push;
// once it has passed, fosite refuses the link on its own page, without
// redirecting (it no longer knows the redirect URI), which is why a caller
// needs the expiry to say what happened; an error that does reach the
// callback after it names the expired link.
func TestPushedAuthorizationExpiryAgainstFosite(t *testing.T) {
	const lifetime = 90 * time.Second
	srv := fositeServer(t, fositeserver.Options{RequirePKCE: true, RequirePAR: true, PARLifetime: lifetime})
	conn := &connector.Connection{Definition: fositeDefinition(t, srv.URL, parExtra),
		ClientID: clientID, ClientSecret: clientSecret, RedirectURI: redirectURI}
	f, err := connector.NewFlow(conn)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	f.Now = func() time.Time { return now }
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	fresh, err := f.AuthCodeURLContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := now.Add(lifetime); !fresh.URLExpires.Equal(want) {
		t.Fatalf("URLExpires %v, want %v (the push's expires_in from its start)", fresh.URLExpires, want)
	}
	if cb := approve(t, fresh.URL); cb.Get("code") == "" {
		t.Fatalf("a fresh link: callback %v", cb)
	}

	stale, err := f.AuthCodeURLContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	srv.AgePushedRequests(lifetime)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(stale.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 == 3 || resp.StatusCode/100 == 2 || srv.Stats().PushedExpired != 1 {
		t.Fatalf("an expired link answered %d (Location %q), stats %+v; want fosite's error page", resp.StatusCode, resp.Header.Get("Location"), srv.Stats())
	}

	// A provider that does redirect its refusal: the error names the link's
	// expiry once it has passed, and not before.
	for _, tc := range []struct {
		at      time.Time
		code    string
		expired bool
	}{
		{now.Add(lifetime - time.Second), "invalid_request_uri", false},
		{now.Add(lifetime), "invalid_request_uri", true},
		{now.Add(lifetime), "access_denied", false}, // the user said no: not the link's fault
	} {
		a, err := f.AuthCodeURLContext(ctx)
		if err != nil {
			t.Fatal(err)
		}
		at := tc.at
		f.Now = func() time.Time { return at }
		_, err = f.CheckCallback(a, url.Values{"state": {a.State}, "error": {tc.code}})
		f.Now = func() time.Time { return now }
		var ce *connector.CallbackError
		if !errors.As(err, &ce) || ce.Code != tc.code || ce.URLExpired.IsZero() == tc.expired ||
			strings.Contains(err.Error(), "authorization link had expired") != tc.expired {
			t.Errorf("%s at +%s: %v (URLExpired %v)", tc.code, tc.at.Sub(now), err, ce.URLExpired)
		}
	}
}

// TestPrivateKeyJWTOtherEndpointsAgainstFosite: revocation authenticates
// with a client assertion too, whose audience is the token endpoint's URL
// (RFC 7523 3 names it; fosite accepts no other), not the revocation
// endpoint's. (fositeserver's introspection takes HTTP Basic only.)
func TestPrivateKeyJWTOtherEndpointsAgainstFosite(t *testing.T) {
	k := testKeys(t)[1]
	srv := fositeserver.Start(t, fositeserver.Options{RequirePKCE: true, Clients: []fositeserver.Client{{
		ID: "par-jwt-client", RedirectURIs: []string{redirectURI}, Scopes: []string{"read"},
		PublicKey: k.pub, KeyAlgorithm: k.alg}}})
	def := parJWTDefinition(t, srv.URL, "    revoke_uri: ${BaseUrl}/oauth/revoke\n")
	conn := &connector.Connection{Definition: def, ClientID: "par-jwt-client", RedirectURI: redirectURI, Fields: map[string]string{"PrivateKey": k.pem}}
	src, err := connector.NewSource(conn, store.NewMemory())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	attempt, err := src.Flow().AuthCodeURLContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := src.ExchangeAndStore(ctx, attempt, approve(t, attempt.URL))
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Flow().Revoke(ctx, tok.RefreshToken, "refresh_token"); err != nil {
		t.Errorf("revocation: %v", err)
	}
	if s := srv.Stats(); s.Revocations != 1 {
		t.Errorf("stats %+v", s)
	}
}
