package connector_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/definitions"
)

// tokenRecorder is a token endpoint on loopback that records what each
// request carried and answers with a configured body.
type tokenRecorder struct {
	srv    *httptest.Server
	mu     sync.Mutex
	forms  []url.Values
	basics []string // "id:secret" or ""
	answer func(form url.Values) map[string]any
}

func newTokenRecorder(t *testing.T) *tokenRecorder {
	r := &tokenRecorder{answer: func(url.Values) map[string]any {
		return map[string]any{"access_token": "AT-1234", "token_type": "Bearer", "expires_in": 3600, "refresh_token": "RT-1234"}
	}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_ = req.ParseForm()
		id, secret, ok := req.BasicAuth()
		basic := ""
		if ok {
			basic = id + ":" + secret
		}
		r.mu.Lock()
		r.forms = append(r.forms, req.Form)
		r.basics = append(r.basics, basic)
		body := r.answer(req.Form)
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(body)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *tokenRecorder) last() (url.Values, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.forms[len(r.forms)-1], r.basics[len(r.basics)-1]
}

func variantFlow(t *testing.T, r *tokenRecorder, scheme, oauth string) *connector.Flow {
	t.Helper()
	src := fmt.Sprintf(`name: variant
title: Token request variants
base_url: %s
auth:
  scheme: %s
  oauth:
    version: V2
    token_request_uri: ${BaseUrl}/token
    scopes: [read, write]
%s`, r.srv.URL, scheme, oauth)
	set, err := definitions.Parse(nil, definitions.File{Path: "variant.yaml", Data: []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := set.Get("variant")
	f, err := connector.NewFlow(&connector.Connection{Definition: d, ClientID: clientID, ClientSecret: clientSecret, RedirectURI: redirectURI})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func authQuery(t *testing.T, a *connector.Attempt) url.Values {
	t.Helper()
	u, err := url.Parse(a.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

// TestTokenRequestVariants sends the requests of providers that differ
// from RFC 6749 (renamed and omitted parameters, another callback name, a
// query after #, a nonce, client authentication in both places or another
// on refresh, lifetimes in milliseconds or as an absolute time) to a
// loopback token endpoint and checks what arrived.
func TestTokenRequestVariants(t *testing.T) {
	ctx := context.Background()

	t.Run("renamed client_id (TikTok client_key)", func(t *testing.T) {
		r := newTokenRecorder(t)
		f := variantFlow(t, r, "oauth", "    initiate_uri: ${BaseUrl}/authorize\n    parameters: {client_id: client_key}\n")
		a, err := f.AuthCodeURL()
		if err != nil {
			t.Fatal(err)
		}
		if q := authQuery(t, a); q.Get("client_key") != clientID || q.Has("client_id") {
			t.Errorf("authorization request %v; want client_key and no client_id", q)
		}
		if _, err := f.Exchange(ctx, a, url.Values{"code": {"C-1"}, "state": {a.State}}); err != nil {
			t.Fatal(err)
		}
		form, _ := r.last()
		if form.Get("client_key") != clientID || form.Has("client_id") || form.Get("client_secret") != clientSecret || form.Get("code") != "C-1" {
			t.Errorf("code exchange %v; want client_key, client_secret and the code", form.Encode() != "")
		}
	})

	t.Run("code under another callback name, state renamed", func(t *testing.T) {
		r := newTokenRecorder(t)
		f := variantFlow(t, r, "oauth", "    initiate_uri: ${BaseUrl}/authorize\n    callback_code: auth_code\n    parameters: {state: st}\n")
		a, _ := f.AuthCodeURL()
		q := authQuery(t, a)
		if q.Get("st") != a.State || q.Has("state") {
			t.Errorf("authorization request carries state as %v", q)
		}
		if _, err := f.Exchange(ctx, a, url.Values{"code": {"WRONG"}, "st": {a.State}}); err == nil || !strings.Contains(err.Error(), "neither a code (auth_code) nor an error") {
			t.Errorf("a callback with code but no auth_code: %v", err)
		}
		a, _ = f.AuthCodeURL()
		if _, err := f.Exchange(ctx, a, url.Values{"auth_code": {"C-2"}, "state": {a.State}}); err != connector.ErrStateMismatch {
			t.Errorf("state under its standard name when renamed: %v; want a state mismatch", err)
		}
		a, _ = f.AuthCodeURL()
		if _, err := f.Exchange(ctx, a, url.Values{"auth_code": {"C-2"}, "st": {a.State}}); err != nil {
			t.Fatal(err)
		}
		if form, _ := r.last(); form.Get("code") != "C-2" {
			t.Errorf("exchanged code %q, want C-2", form.Get("code"))
		}
	})

	t.Run("no state, PKCE binds the callback", func(t *testing.T) {
		r := newTokenRecorder(t)
		f := variantFlow(t, r, "oauth", "    initiate_uri: ${BaseUrl}/authorize\n    parameters: {state: false, scope: false}\n")
		a, _ := f.AuthCodeURL()
		q := authQuery(t, a)
		if q.Has("state") || q.Has("scope") || q.Get("code_challenge") == "" {
			t.Errorf("authorization request %v; want no state or scope, and a code challenge", q)
		}
		if _, err := f.Exchange(ctx, a, url.Values{"code": {"C-3"}}); err != nil {
			t.Fatal(err)
		}
		if form, _ := r.last(); form.Get("code_verifier") == "" {
			t.Error("the exchange has no code_verifier")
		}
		if _, err := f.Exchange(ctx, a, url.Values{"code": {"C-3"}}); err != connector.ErrStateMismatch {
			t.Errorf("the same attempt twice: %v; want it refused", err)
		}
	})

	t.Run("query after the fragment, a nonce", func(t *testing.T) {
		r := newTokenRecorder(t)
		f := variantFlow(t, r, "oauth", "    initiate_uri: ${BaseUrl}/app/#/oauth/authorize?nonce=${Random}\n    authorize_query: fragment\n")
		a1, _ := f.AuthCodeURL()
		a2, _ := f.AuthCodeURL()
		u, _ := url.Parse(a1.URL)
		route, query, _ := strings.Cut(u.Fragment, "?")
		fq, _ := url.ParseQuery(query)
		if u.RawQuery != "" || route != "/oauth/authorize" || fq.Get("client_id") != clientID || fq.Get("state") != a1.State || fq.Get("redirect_uri") != redirectURI {
			t.Errorf("URL %s: want every parameter after #/oauth/authorize?", a1.URL)
		}
		u2, _ := url.Parse(a2.URL)
		_, q2, _ := strings.Cut(u2.Fragment, "?")
		fq2, _ := url.ParseQuery(q2)
		if n := fq.Get("nonce"); len(n) != 43 || n == fq2.Get("nonce") {
			t.Errorf("nonces %q and %q: want 43 random characters, fresh each time", n, fq2.Get("nonce"))
		}
	})

	t.Run("client credentials without grant_type, in Basic and the body", func(t *testing.T) {
		r := newTokenRecorder(t)
		f := variantFlow(t, r, "oauth_client", "    parameters: {grant_type: false}\n    token_request: {client_auth: both}\n")
		if _, err := f.ClientCredentials(ctx); err != nil {
			t.Fatal(err)
		}
		form, basic := r.last()
		if form.Has("grant_type") || form.Get("client_id") != clientID || form.Get("client_secret") != clientSecret || basic != url.QueryEscape(clientID)+":"+url.QueryEscape(clientSecret) {
			t.Errorf("request: grant_type %v, body id %q, basic %v; want no grant_type and both forms of client authentication", form.Has("grant_type"), form.Get("client_id"), basic != "")
		}
	})

	t.Run("refresh authenticates otherwise than the code exchange", func(t *testing.T) {
		r := newTokenRecorder(t)
		f := variantFlow(t, r, "oauth", "    initiate_uri: ${BaseUrl}/authorize\n    token_request: {client_auth: body, refresh_client_auth: basic}\n")
		a, _ := f.AuthCodeURL()
		if _, err := f.Exchange(ctx, a, url.Values{"code": {"C-4"}, "state": {a.State}}); err != nil {
			t.Fatal(err)
		}
		if form, basic := r.last(); basic != "" || form.Get("client_secret") != clientSecret {
			t.Errorf("code exchange: basic %v, body secret %v; want the body", basic != "", form.Has("client_secret"))
		}
		if _, err := f.Refresh(ctx, "RT-1234"); err != nil {
			t.Fatal(err)
		}
		if form, basic := r.last(); basic == "" || form.Has("client_secret") || form.Has("client_id") {
			t.Errorf("refresh: basic %v, body secret %v; want HTTP Basic only", basic != "", form.Has("client_secret"))
		}
	})

	t.Run("lifetime in milliseconds, or as an absolute time", func(t *testing.T) {
		r := newTokenRecorder(t)
		r.answer = func(url.Values) map[string]any {
			return map[string]any{"access_token": "AT-ms", "expires_in": 7200000}
		}
		f := variantFlow(t, r, "oauth_client", "    token_response: {expires_in_unit: milliseconds}\n")
		start := time.Now()
		tok, err := f.ClientCredentials(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if life := tok.Expiry.Sub(start); life < 119*time.Minute || life > 121*time.Minute {
			t.Errorf("expires_in 7200000 ms gave a lifetime of %s; want 2h", life)
		}
		at := time.Now().Add(3 * time.Hour).Unix()
		r.answer = func(url.Values) map[string]any { return map[string]any{"access_token": "AT-at", "expires_at": at} }
		f = variantFlow(t, r, "oauth_client", "    token_response: {expires_at: expires_at}\n")
		if tok, err = f.ClientCredentials(ctx); err != nil {
			t.Fatal(err)
		}
		if tok.Expiry.Unix() != at {
			t.Errorf("expires_at %d gave expiry %d", at, tok.Expiry.Unix())
		}
		r.answer = func(url.Values) map[string]any { return map[string]any{"access_token": "AT-bad", "expires_at": "soon"} }
		if _, err = f.ClientCredentials(ctx); err == nil || !strings.Contains(err.Error(), `expires_at: "soon" is not a number; want Unix seconds or an RFC 3339 time`) {
			t.Errorf("a bad expires_at: %v", err)
		}
	})
}
