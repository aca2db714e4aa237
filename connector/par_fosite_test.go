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
)

// Pushed authorization requests (RFC 9126) against fosite's handler/par,
// with the server refusing any authorization request that was not pushed.

const parExtra = "    par_uri: ${BaseUrl}/oauth/par\n"

func TestPushedAuthorizationAgainstFosite(t *testing.T) {
	for _, style := range []struct{ name, extra string }{
		{"secret in body", parExtra},
		{"basic client auth", parExtra + "    token_request: {client_auth: basic}\n"},
	} {
		t.Run(style.name, func(t *testing.T) {
			srv := fositeServer(t, fositeserver.Options{RequirePKCE: true, RequirePAR: true})
			conn := &connector.Connection{Definition: fositeDefinition(t, srv.URL, style.extra),
				ClientID: clientID, ClientSecret: clientSecret, RedirectURI: redirectURI}
			src, err := connector.NewSource(conn, store.NewMemory())
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if !src.Flow().Pushes() {
				t.Fatal("Pushes() is false for a definition with par_uri")
			}
			attempt, err := src.Flow().AuthCodeURLContext(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// RFC 9126 4: only client_id and request_uri reach the browser.
			u, _ := url.Parse(attempt.URL)
			q := u.Query()
			if len(q) != 2 || q.Get("client_id") != clientID || !strings.HasPrefix(q.Get("request_uri"), "urn:ietf:params:oauth:request_uri:") {
				t.Fatalf("authorization URL query %v", q)
			}
			if u.Path != "/oauth/authorize" {
				t.Errorf("authorization URL path %s", u.Path)
			}
			cb := approve(t, attempt.URL)
			if cb.Get("state") != attempt.State {
				t.Fatalf("the callback's state is not the pushed one")
			}
			tok, err := src.ExchangeAndStore(ctx, attempt, cb)
			if err != nil {
				t.Fatalf("exchange: %v", err)
			}
			if got := callMe(t, srv.URL, tok.AccessToken); got != http.StatusOK {
				t.Errorf("/api/me with the token: HTTP %d", got)
			}
			if _, err := src.Refresh(ctx); err != nil {
				t.Errorf("refresh: %v", err)
			}
			if s := srv.Stats(); s.PushedAccepted != 1 || s.CodeExchanges != 1 {
				t.Errorf("stats %+v", s)
			}

			// The request_uri is single use: a second visit gets no code.
			c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := c.Get(attempt.URL)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if loc, _ := url.Parse(resp.Header.Get("Location")); resp.StatusCode/100 == 2 || loc.Query().Get("code") != "" {
				t.Errorf("a used request_uri answered %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
			}
		})
	}
}

// The server really enforces PAR: the same definition without par_uri is
// refused at the authorization endpoint, so the test above cannot pass by
// the engine sending the parameters in the URL.
func TestPushedAuthorizationRequiredByFosite(t *testing.T) {
	srv := fositeServer(t, fositeserver.Options{RequirePKCE: true, RequirePAR: true})
	conn := &connector.Connection{Definition: fositeDefinition(t, srv.URL, ""),
		ClientID: clientID, ClientSecret: clientSecret, RedirectURI: redirectURI}
	f, err := connector.NewFlow(conn)
	if err != nil {
		t.Fatal(err)
	}
	attempt, err := f.AuthCodeURL()
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(attempt.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if loc.Query().Get("code") != "" || (resp.StatusCode != http.StatusBadRequest && loc.Query().Get("error") == "") {
		t.Fatalf("an unpushed request answered %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// RFC 9126 2.3: the provider's error comes back as a TokenError naming the
// pushed request, without the client secret; nothing reaches a browser.
func TestPushedAuthorizationErrors(t *testing.T) {
	srv := fositeServer(t, fositeserver.Options{RequirePKCE: true, RequirePAR: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range []struct {
		name, secret, redirect, code string
		status                       int
	}{
		{"wrong secret", "wrong-" + clientSecret, redirectURI, "invalid_client", http.StatusUnauthorized},
		{"unregistered redirect", clientSecret, "http://127.0.0.1:8765/elsewhere", "invalid_request", http.StatusBadRequest},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn := &connector.Connection{Definition: fositeDefinition(t, srv.URL, parExtra),
				ClientID: clientID, ClientSecret: c.secret, RedirectURI: c.redirect}
			f, err := connector.NewFlow(conn)
			if err != nil {
				t.Fatal(err)
			}
			a, err := f.AuthCodeURLContext(ctx)
			var te *connector.TokenError
			if !errors.As(err, &te) || a != nil {
				t.Fatalf("got %v, %v; want a TokenError", a, err)
			}
			if te.Op != "pushed authorization request" || te.Code != c.code || te.Status != c.status {
				t.Errorf("TokenError %+v", te)
			}
			if strings.Contains(err.Error(), c.secret) || strings.Contains(err.Error(), url.QueryEscape(c.secret)) {
				t.Errorf("the error quotes the client secret: %v", err)
			}
		})
	}
	// An unreachable endpoint is a RequestError, bounded by the context.
	dead := fositeDefinition(t, srv.URL, "    par_uri: http://127.0.0.1:1/oauth/par\n")
	f, err := connector.NewFlow(&connector.Connection{Definition: dead, ClientID: clientID, ClientSecret: clientSecret, RedirectURI: redirectURI})
	if err != nil {
		t.Fatal(err)
	}
	f.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	if _, err := f.AuthCodeURLContext(ctx); !errors.As(err, new(*connector.RequestError)) || !strings.Contains(err.Error(), "pushed authorization request") {
		t.Errorf("unreachable par_uri: %v", err)
	}
}

func callMe(t *testing.T, base, accessToken string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/api/me", nil)
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
