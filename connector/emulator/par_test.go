package emulator_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// push POSTs form to /oauth/par.
func (e *env) push(form url.Values) (int, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.base+"/oauth/par", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, raw := e.do(req)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		e.t.Fatalf("PAR answer is not JSON (%d): %s", resp.StatusCode, raw)
	}
	return resp.StatusCode, m
}

// TestPushedAuthorization (RFC 9126): a pushed request authenticated as at
// the token endpoint gets a request_uri and expires_in; the authorization
// URL with client_id and request_uri alone then leads to the consent page
// and a code bound like any other, once.
func TestPushedAuthorization(t *testing.T) {
	e := newEnv(t)
	params := authQuery(appID, redirect, "pushed-state", s256(verifier), "S256")
	params.Set("client_secret", appSecret)
	code, m := e.push(params)
	uri, _ := m["request_uri"].(string)
	if code != http.StatusCreated || !strings.HasPrefix(uri, "urn:ietf:params:oauth:request_uri:") || m["expires_in"] != 60.0 {
		t.Fatalf("push: %d %v", code, m)
	}
	link := url.Values{"client_id": {appID}, "request_uri": {uri}}
	resp, body := e.decide(e.consent(link), "allow")
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc.Query().Get("state") != "pushed-state" || loc.Query().Get("code") == "" {
		t.Fatalf("after consent: %d %s %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	if status, tb, raw := e.postToken(exchangeForm(loc.Query().Get("code"), redirect, verifier)); status != http.StatusOK || tb.AccessToken == "" {
		t.Fatalf("exchange: %d %s", status, raw)
	}
	if resp, body := e.get("/oauth/authorize?" + link.Encode()); resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "already used") {
		t.Errorf("the request_uri a second time: %d %s", resp.StatusCode, body)
	}
	if st := e.srv.Stats(); st.PushedRequests != 1 || st.CodeExchanges != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestPushedAuthorizationRefusals: the push is refused what the
// authorization endpoint refuses, and client authentication as at the token
// endpoint; the link is refused once it expired, for another client, and
// on this host's page, since its redirect URI is what was pushed.
func TestPushedAuthorizationRefusals(t *testing.T) {
	e := newEnv(t)
	good := func() url.Values {
		q := authQuery(appID, redirect, "s", s256(verifier), "S256")
		q.Set("client_secret", appSecret)
		return q
	}
	for name, tc := range map[string]struct {
		edit   func(url.Values)
		status int
		error  string
	}{
		"no client secret":      {func(q url.Values) { q.Del("client_secret") }, http.StatusUnauthorized, "invalid_client"},
		"unregistered redirect": {func(q url.Values) { q.Set("redirect_uri", "http://127.0.0.1:9/x") }, http.StatusBadRequest, "invalid_request"},
		"request_uri inside":    {func(q url.Values) { q.Set("request_uri", "urn:x") }, http.StatusBadRequest, "invalid_request"},
		"token response type":   {func(q url.Values) { q.Set("response_type", "token") }, http.StatusBadRequest, "unsupported_response_type"},
		"public client, no PKCE": {func(q url.Values) {
			q.Del("client_secret")
			q.Set("client_id", pubID)
			q.Del("code_challenge")
			q.Del("code_challenge_method")
		}, http.StatusBadRequest, "invalid_request"},
	} {
		q := good()
		tc.edit(q)
		if code, m := e.push(q); code != tc.status || m["error"] != tc.error {
			t.Errorf("%s: %d %v, want %d %s", name, code, m, tc.status, tc.error)
		}
	}
	_, m := e.push(good())
	other := url.Values{"client_id": {loopID}, "request_uri": {m["request_uri"].(string)}}
	if resp, body := e.get("/oauth/authorize?" + other.Encode()); resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "another application") {
		t.Errorf("another client's link: %d %s", resp.StatusCode, body)
	}
	_, m = e.push(good())
	e.clock.Advance(time.Minute)
	link := url.Values{"client_id": {appID}, "request_uri": {m["request_uri"].(string)}}
	resp, body := e.get("/oauth/authorize?" + link.Encode())
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "This authorization link expired at 12:01:00 UTC") || resp.Header.Get("Location") != "" {
		t.Errorf("an expired link: %d %s", resp.StatusCode, body)
	}
	if st := e.srv.Stats(); st.PushedExpired != 1 {
		t.Errorf("stats %+v", st)
	}
}
