package connector_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/internal/fositeserver"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/definitions"
)

const (
	clientID     = "engine-test"
	clientSecret = "s3cr?t&:%+/="
	redirectURI  = "http://127.0.0.1:8765/callback"
)

// fositeDefinition describes the fosite test server as an admin would.
func fositeDefinition(t *testing.T, base, extra string) *definitions.Definition {
	t.Helper()
	src := `name: fosite
title: fosite test server
base_url: ` + base + `
auth:
  scheme: oauth
  oauth:
    version: V2
    initiate_uri: ${BaseUrl}/oauth/authorize
    token_request_uri: ${BaseUrl}/oauth/token
    refresh_uri: ${BaseUrl}/oauth/token
    revoke_uri: ${BaseUrl}/oauth/revoke
    scopes: [read]
` + extra
	set, err := definitions.Parse(nil, definitions.File{Path: "fosite.yaml", Data: []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := set.Get("fosite")
	return d
}

// approve plays the browser: follows the authorization URL to the redirect
// and returns the callback's query.
func approve(t *testing.T, authURL string) url.Values {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), redirectURI) {
		t.Fatalf("authorization answered %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return loc.Query()
}

// connectFosite runs the code flow of src against the fosite server, which
// approves at once, and stores the token.
func connectFosite(t *testing.T, src *connector.Source) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	attempt, err := src.Flow().AuthCodeURL()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := src.Flow().Exchange(ctx, attempt, approve(t, attempt.URL))
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Store(ctx, tok); err != nil {
		t.Fatal(err)
	}
}

func fositeServer(t *testing.T, opts fositeserver.Options) *fositeserver.Server {
	opts.Clients = []fositeserver.Client{{ID: clientID, Secret: clientSecret, RedirectURIs: []string{redirectURI}, Scopes: []string{"read"}}}
	return fositeserver.Start(t, opts)
}

func TestCodeFlowPKCEAndRefreshAgainstFosite(t *testing.T) {
	for _, style := range []struct {
		name  string
		extra string
		opts  fositeserver.Options
	}{
		{"form body, secret in body", "", fositeserver.Options{RequirePKCE: true}},
		{"basic client auth", "    token_request: {client_auth: basic}\n", fositeserver.Options{RequirePKCE: true}},
		{"json-free query style", "    token_request: {params: query}\n", fositeserver.Options{RequirePKCE: true, AcceptQueryParams: true}},
	} {
		t.Run(style.name, func(t *testing.T) {
			srv := fositeServer(t, style.opts)
			conn := &connector.Connection{Definition: fositeDefinition(t, srv.URL, style.extra),
				ClientID: clientID, ClientSecret: clientSecret, RedirectURI: redirectURI}
			st := store.NewMemory()
			src, err := connector.NewSource(conn, st)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			attempt, err := src.Flow().AuthCodeURL()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(attempt.URL, "code_challenge_method=S256") {
				t.Errorf("no PKCE in %s", attempt.URL)
			}
			tok, err := src.Flow().Exchange(ctx, attempt, approve(t, attempt.URL))
			if err != nil {
				t.Fatalf("exchange: %v", err)
			}
			if tok.RefreshToken == "" || tok.AccessToken == "" {
				t.Fatalf("token %v", tok)
			}
			if err := src.Store(ctx, tok); err != nil {
				t.Fatal(err)
			}
			// Forced refreshes rotate the refresh token; the stored one must
			// always be the newest, or fosite's reuse detection would fire.
			prev := tok.RefreshToken
			for i := 0; i < 3; i++ {
				nt, err := src.Refresh(ctx)
				if err != nil {
					t.Fatalf("refresh %d: %v", i, err)
				}
				rec, _ := st.Get(ctx, conn.Key())
				if rec.Token.RefreshToken == prev || rec.Token.RefreshToken != nt.RefreshToken {
					t.Fatalf("refresh %d: rotated token not stored", i)
				}
				prev = nt.RefreshToken
			}
			if s := srv.Stats(); s.Refreshes != 3 || s.RefreshReuseDetected != 0 || s.CodeExchanges != 1 {
				t.Errorf("stats %+v", s)
			}
			cur, _ := src.TokenContext(ctx)
			if err := src.Flow().Revoke(ctx, cur.RefreshToken, "refresh_token"); err != nil {
				t.Fatalf("revoke: %v", err)
			}
			if _, err := src.Refresh(ctx); !errors.As(err, new(*connector.NeedsReauthError)) {
				t.Fatalf("refresh after revoke: %v", err)
			}
			rec, _ := st.Get(ctx, conn.Key())
			if rec.Status != store.StatusNeedsReauth || !strings.Contains(rec.Reason, "invalid_grant") {
				t.Errorf("record %s %q", rec.Status, rec.Reason)
			}
		})
	}
}

func TestClientCredentialsAgainstFosite(t *testing.T) {
	srv := fositeServer(t, fositeserver.Options{AccessTokenLifetime: time.Hour})
	d := fositeDefinitionCC(t, srv.URL)
	conn := &connector.Connection{Definition: d, ClientID: clientID, ClientSecret: clientSecret}
	src, err := connector.NewSource(conn, store.NewMemory())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := src.TokenContext(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if tok.RefreshToken != "" || tok.AccessToken == "" || time.Until(tok.Expiry) < 50*time.Minute {
		t.Errorf("token %v", tok)
	}
	again, _ := src.TokenContext(context.Background())
	if again.AccessToken != tok.AccessToken || srv.Stats().TokenRequests != 1 {
		t.Errorf("a fresh token was fetched again: %+v", srv.Stats())
	}
}

func fositeDefinitionCC(t *testing.T, base string) *definitions.Definition {
	src := `name: fosite-cc
title: fosite client credentials
base_url: ` + base + `
auth:
  scheme: oauth_client
  oauth:
    version: V2
    token_request_uri: ${BaseUrl}/oauth/token
    scopes: [read]
    token_request: {client_auth: basic}
`
	set, err := definitions.Parse(nil, definitions.File{Path: "cc.yaml", Data: []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := set.Get("fosite-cc")
	return d
}

// TestConcurrentRefreshOneAtATime: many goroutines needing a fresh token at
// once cause exactly one refresh, and fosite never sees a reused token.
func TestConcurrentRefreshOneAtATime(t *testing.T) {
	srv := fositeServer(t, fositeserver.Options{})
	conn := &connector.Connection{Definition: fositeDefinition(t, srv.URL, ""), ClientID: clientID, ClientSecret: clientSecret, RedirectURI: redirectURI}
	st := store.NewMemory()
	src, _ := connector.NewSource(conn, st)
	ctx := context.Background()
	a, _ := src.Flow().AuthCodeURL()
	tok, err := src.Flow().Exchange(ctx, a, approve(t, a.URL))
	if err != nil {
		t.Fatal(err)
	}
	tok.Expiry = time.Now() // expired: everyone must renew
	if err := src.Store(ctx, tok); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := src.TokenContext(ctx); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if s := srv.Stats(); s.Refreshes != 1 || s.RefreshReuseDetected != 0 {
		t.Errorf("stats %+v", s)
	}
}

// TestInterruptedRefreshResolvedByIntrospection: with an introspection_uri
// the engine asks the provider, instead of assuming the worst, whether a
// refresh interrupted after its in-flight marker consumed the refresh
// token. Unconsumed (the process died before sending): the refresh goes
// on. Consumed (the answer was lost): the connection needs authorizing
// again, and the used token is never presented, so fosite sees no reuse.
func TestInterruptedRefreshResolvedByIntrospection(t *testing.T) {
	srv := fositeServer(t, fositeserver.Options{RequirePKCE: true})
	def := fositeDefinition(t, srv.URL, "    introspection_uri: ${BaseUrl}/oauth/introspect\n    token_request: {client_auth: basic}\n")
	conn := &connector.Connection{Definition: def, ClientID: clientID, ClientSecret: clientSecret, RedirectURI: redirectURI}
	st := store.NewMemory()
	ctx := context.Background()
	src, err := connector.NewSource(conn, st)
	if err != nil {
		t.Fatal(err)
	}
	connectFosite(t, src)

	// A process stored the marker and died before sending.
	rec, _ := st.Get(ctx, conn.Key())
	rec.RefreshStarted = time.Now()
	if _, err := st.Put(ctx, rec); err != nil {
		t.Fatal(err)
	}
	fresh, _ := connector.NewSource(conn, st)
	nt, err := fresh.Refresh(ctx)
	if err != nil {
		t.Fatalf("refresh after an interrupted one that never reached the provider: %v", err)
	}
	if s := srv.Stats(); s.Introspections != 1 || s.Refreshes != 1 || s.RefreshReuseDetected != 0 {
		t.Fatalf("stats %+v; want 1 introspection, 1 refresh, no reuse", s)
	}
	if rec, _ := st.Get(ctx, conn.Key()); rec.Token.RefreshToken != nt.RefreshToken || !rec.RefreshStarted.IsZero() {
		t.Fatal("the refresh's outcome was not stored, or the marker was kept")
	}

	// The provider carries out a refresh and its answer is lost.
	srv.DropNextTokenResponses(1)
	if _, err := fresh.Refresh(ctx); !errors.As(err, new(*connector.RequestError)) {
		t.Fatalf("refresh with a dropped answer: %v", err)
	}
	again, _ := connector.NewSource(conn, st)
	_, err = again.Refresh(ctx)
	var nr *connector.NeedsReauthError
	if !errors.As(err, &nr) || nr.Reason != connector.ReasonRefreshConsumed {
		t.Fatalf("refresh after a lost answer: %v; want NeedsReauthError with ReasonRefreshConsumed", err)
	}
	if s := srv.Stats(); s.Introspections != 2 || s.Refreshes != 2 || s.RefreshReuseDetected != 0 {
		t.Fatalf("stats %+v; want 2 introspections, 2 refreshes, no reuse", s)
	}
}

// TestIntrospectionAnswers: only a boolean "active" is an answer.
func TestIntrospectionAnswers(t *testing.T) {
	for _, tt := range []struct {
		name, body string
		status     int
		active     bool
		err        string
	}{
		{"active", `{"active":true,"token_type":"refresh_token"}`, 200, true, ""},
		{"inactive", `{"active":false}`, 200, false, ""},
		{"no active", `{"token_type":"refresh_token"}`, 200, false, `has no boolean "active"`},
		{"active as a string", `{"active":"true"}`, 200, false, `has no boolean "active"`},
		{"html", `<html>login</html>`, 200, false, `has no boolean "active"`},
		{"unauthorized", `{"error":"invalid_client"}`, 401, false, "invalid_client"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if err := r.ParseForm(); err != nil || r.PostForm.Get("token") != "the-refresh-token" || r.PostForm.Get("token_type_hint") != "refresh_token" {
					t.Errorf("introspection request %v", r.PostForm)
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.body)
			}))
			defer srv.Close()
			def := fositeDefinition(t, srv.URL, "    introspection_uri: ${BaseUrl}/introspect\n")
			f, err := connector.NewFlow(&connector.Connection{Definition: def, ClientID: clientID, ClientSecret: clientSecret, RedirectURI: redirectURI})
			if err != nil {
				t.Fatal(err)
			}
			active, err := f.Introspect(context.Background(), "the-refresh-token", "refresh_token")
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || strings.Contains(err.Error(), "the-refresh-token") {
					t.Fatalf("err = %v, want one containing %q and not the token", err, tt.err)
				}
				return
			}
			if err != nil || active != tt.active {
				t.Fatalf("active %v, err %v; want %v", active, err, tt.active)
			}
		})
	}
}
