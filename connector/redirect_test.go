package connector

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/token"
	"github.com/connector-engine/connector/definitions"
)

// recorder is a loopback server that records every request it receives.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	seen []string // "METHOD path body"
}

func newRecorder(t *testing.T, h http.HandlerFunc) *recorder {
	t.Helper()
	r := &recorder{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_ = req.ParseForm()
		r.mu.Lock()
		r.seen = append(r.seen, req.Method+" "+req.URL.RequestURI()+" "+req.PostForm.Encode()+" "+req.Header.Get("Authorization"))
		r.mu.Unlock()
		if h != nil {
			h(w, req)
		}
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen...)
}

func parseOne(t *testing.T, src string) *definitions.Definition {
	t.Helper()
	set, err := definitions.Parse(nil, definitions.File{Path: "d.yaml", Data: []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := set.Get(strings.Fields(strings.SplitN(src, "\n", 2)[0])[1])
	return d
}

// TestTokenEndpointRedirectsAreRefused (issue 10 item 1): a 307 from the
// token, refresh, revocation or introspection endpoint is never followed:
// the host it names receives nothing, the error names the endpoint and the
// Location's host (never its query), and nothing is stored.
func TestTokenEndpointRedirectsAreRefused(t *testing.T) {
	evil := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"access_token":"evil-access","refresh_token":"evil-refresh","expires_in":3600,"active":true}`))
	})
	provider := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", evil.URL+r.URL.Path+"?leak=q-secret-in-location")
		w.WriteHeader(http.StatusTemporaryRedirect)
	})
	code := parseOne(t, `name: code
title: code
base_url: `+provider.URL+`
auth:
  scheme: oauth
  oauth:
    version: V2
    initiate_uri: ${BaseUrl}/authorize
    token_request_uri: ${BaseUrl}/token
    refresh_uri: ${BaseUrl}/refresh
    revoke_uri: ${BaseUrl}/revoke
    introspection_uri: ${BaseUrl}/introspect
`)
	cc := parseOne(t, `name: cc
title: cc
base_url: `+provider.URL+`
auth:
  scheme: oauth_client
  oauth:
    version: V2
    token_request_uri: ${BaseUrl}/token
`)
	secret := "the-client-secret-1234"
	newFlow := func(d *definitions.Definition) *Flow {
		f, err := NewFlow(&Connection{Definition: d, ClientID: "id", ClientSecret: secret, RedirectURI: "http://127.0.0.1:1/cb"})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	ctx := context.Background()
	for _, c := range []struct {
		name, key string
		do        func() error
	}{
		{"code exchange", "token_request_uri", func() error {
			_, err := newFlow(code).ExchangeCode(ctx, "the-code-5678", "the-verifier-5678")
			return err
		}},
		{"client credentials", "token_request_uri", func() error { _, err := newFlow(cc).ClientCredentials(ctx); return err }},
		{"refresh", "refresh_uri", func() error { _, err := newFlow(code).Refresh(ctx, "the-refresh-5678"); return err }},
		{"revocation", "revoke_uri", func() error { return newFlow(code).Revoke(ctx, "the-refresh-5678", "refresh_token") }},
		{"introspection", "introspection_uri", func() error {
			_, err := newFlow(code).Introspect(ctx, "the-refresh-5678", "refresh_token")
			return err
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.do()
			var re *RedirectError
			if !errors.As(err, &re) || re.Status != http.StatusTemporaryRedirect || re.Key != c.key {
				t.Fatalf("err = %v; want a *RedirectError for %s", err, c.key)
			}
			msg := err.Error()
			host := strings.TrimPrefix(evil.URL, "http://")
			for _, want := range []string{c.key, "HTTP 307", "to host " + host, provider.URL + "/"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not say %q", msg, want)
				}
			}
			for _, leak := range []string{"q-secret-in-location", "leak=", secret, "the-code-5678", "the-refresh-5678", "the-verifier-5678"} {
				if strings.Contains(msg, leak) {
					t.Errorf("error %q contains %q", msg, leak)
				}
			}
		})
	}
	if got := evil.requests(); len(got) != 0 {
		t.Errorf("the redirect target received %d requests: %q", len(got), got)
	}
	if n := len(provider.requests()); n != 5 {
		t.Errorf("the provider received %d requests, want 5 (one per endpoint, none retried)", n)
	}

	// Through a Source: the refresh is refused, nothing is stored, and the
	// refusal (an answer, not a lost request) leaves no in-flight marker.
	conn := &Connection{ID: "c1", Definition: code, ClientID: "id", ClientSecret: secret, RedirectURI: "http://127.0.0.1:1/cb"}
	src, err := NewSource(conn, store.NewMemory())
	if err != nil {
		t.Fatal(err)
	}
	st := src.store
	old := token.Token{AccessToken: "old-access", RefreshToken: "old-refresh", Expiry: time.Now().Add(-time.Minute)}
	if err := src.Store(ctx, &old); err != nil {
		t.Fatal(err)
	}
	_, err = src.TokenContext(ctx)
	var re *RedirectError
	if !errors.As(err, &re) {
		t.Fatalf("Source: %v; want a *RedirectError", err)
	}
	rec, err := st.Get(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Token.AccessToken != "old-access" || rec.Token.RefreshToken != "old-refresh" || !rec.RefreshStarted.IsZero() || rec.Status != store.StatusConnected {
		t.Errorf("after the refused refresh the record is %+v; want it unchanged, no refresh in flight", rec)
	}
	if got := evil.requests(); len(got) != 0 {
		t.Errorf("the redirect target received %q", got)
	}
}
