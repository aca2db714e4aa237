package emulator_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/emulator"
)

func TestAuthorizationCodeFlowWithPKCE(t *testing.T) {
	e := newEnv(t)
	requestID := e.consent(authQuery(appID, redirect, "xyz-state", s256(verifier), "S256"))
	resp, _ := e.decide(requestID, "allow")
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("allow: status %d, want 302", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != redirect {
		t.Errorf("redirected to %s, want %s", got, redirect)
	}
	q := loc.Query()
	if q.Get("state") != "xyz-state" || q.Get("iss") != issuer || q.Get("code") == "" {
		t.Fatalf("redirect query %v: want code, state=xyz-state, iss=%s", q, issuer)
	}
	if got := resp.Header.Get("Referrer-Policy"); got != "no-referrer" {
		t.Errorf("redirect Referrer-Policy = %q", got)
	}

	status, tb, raw := e.postToken(exchangeForm(q.Get("code"), redirect, verifier))
	if status != http.StatusOK {
		t.Fatalf("exchange: status %d, body %s", status, raw)
	}
	if tb.AccessToken == "" || tb.RefreshToken == "" || tb.TokenType != "bearer" || tb.ExpiresIn != 5400 ||
		tb.CreatedAt != e.clock.Now().Unix() {
		t.Errorf("token response %s: want bearer tokens, expires_in 5400, created_at %d", raw, e.clock.Now().Unix())
	}
	resp, body := e.api(http.MethodGet, "/rest/v1.0/me", tb.AccessToken, "", "")
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"name":"Jim Builder"`) {
		t.Fatalf("GET /me: status %d, body %s", resp.StatusCode, body)
	}
	if st := e.srv.Stats(); st.CodeExchanges != 1 || st.TokenRequests["authorization_code"] != 1 {
		t.Errorf("stats %+v: want 1 code exchange", st)
	}
}

func TestTokenResponseHeaders(t *testing.T) {
	e := newEnv(t)
	c := e.code(authQuery(appID, redirect, "s", "", ""))
	req, _ := http.NewRequest(http.MethodPost, e.base+"/oauth/token", strings.NewReader(exchangeForm(c, redirect, "").Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, body := e.do(req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, body %s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
	if got := resp.Header.Get("Content-Type"); !strings.HasPrefix(got, "application/json") {
		t.Errorf("Content-Type = %q", got)
	}
}

func TestAuthorizeDeny(t *testing.T) {
	e := newEnv(t)
	resp, _ := e.decide(e.consent(authQuery(appID, redirect, "st8", "", "")), "deny")
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("deny: status %d, want 302", resp.StatusCode)
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	q := loc.Query()
	if q.Get("error") != "access_denied" || q.Get("state") != "st8" || q.Get("code") != "" || q.Get("iss") != issuer {
		t.Errorf("deny redirect query %v: want error=access_denied, state=st8, iss, no code", q)
	}
}

// A bad client or redirect URI must never produce a redirect.
func TestAuthorizeRejectsWithoutRedirecting(t *testing.T) {
	tests := []struct {
		name  string
		query string
	}{
		{"unknown client", authQuery("nobody", redirect, "s", "", "").Encode()},
		{"missing client", "response_type=code&redirect_uri=" + url.QueryEscape(redirect)},
		{"missing redirect", "response_type=code&client_id=" + appID},
		{"unregistered redirect", authQuery(appID, "http://127.0.0.1:8765/other", "s", "", "").Encode()},
		{"registered prefix only", authQuery(appID, redirect+"/extra", "s", "", "").Encode()},
		{"attacker host", authQuery(appID, "https://evil.example/cb", "s", "", "").Encode()},
		{"loopback client, remote host", authQuery(loopID, "http://evil.example/cb", "s", "", "").Encode()},
		{"loopback client, https", authQuery(loopID, "https://127.0.0.1/cb", "s", "", "").Encode()},
		{"loopback client, userinfo", authQuery(loopID, "http://u@127.0.0.1/cb", "s", "", "").Encode()},
		{"duplicated redirect", authQuery(appID, redirect, "s", "", "").Encode() + "&redirect_uri=https%3A%2F%2Fevil.example"},
	}
	e := newEnv(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := e.get("/oauth/authorize?" + tt.query)
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("status %d, want 400", resp.StatusCode)
			}
			if loc := resp.Header.Get("Location"); loc != "" {
				t.Errorf("redirected to %s", loc)
			}
			if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(body), "Authorization error") {
				t.Errorf("want an HTML error page, got %s", body)
			}
		})
	}
}

func TestAuthorizeAcceptsLoopbackRedirects(t *testing.T) {
	e := newEnv(t)
	for _, uri := range []string{"http://127.0.0.1:51234/cb", "http://localhost:8080/", "http://[::1]:9/x", emulator.OutOfBandURI} {
		e.consent(authQuery(loopID, uri, "s", "", ""))
	}
}

// Once client and redirect URI are valid, errors go back to the client.
func TestAuthorizeErrorsRedirect(t *testing.T) {
	tests := []struct {
		name    string
		query   url.Values
		wantErr string
	}{
		{"implicit grant", func() url.Values {
			q := authQuery(appID, redirect, "s1", "", "")
			q.Set("response_type", "token")
			return q
		}(), "unsupported_response_type"},
		{"unknown PKCE method", authQuery(appID, redirect, "s1", s256(verifier), "S512"), "invalid_request"},
		{"short challenge", authQuery(appID, redirect, "s1", "abc", "S256"), "invalid_request"},
		{"method without challenge", authQuery(appID, redirect, "s1", "", "S256"), "invalid_request"},
		{"public client without PKCE", authQuery(pubID, redirect, "s1", "", ""), "invalid_request"},
	}
	e := newEnv(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := e.get("/oauth/authorize?" + tt.query.Encode())
			if resp.StatusCode != http.StatusFound {
				t.Fatalf("status %d, want 302; body %s", resp.StatusCode, body)
			}
			loc, _ := url.Parse(resp.Header.Get("Location"))
			if !strings.HasPrefix(loc.String(), redirect+"?") {
				t.Errorf("redirected to %s, want %s", loc, redirect)
			}
			if q := loc.Query(); q.Get("error") != tt.wantErr || q.Get("state") != "s1" || q.Get("iss") != issuer {
				t.Errorf("query %v: want error=%s, state=s1, iss", q, tt.wantErr)
			}
		})
	}
}

func TestConsentPage(t *testing.T) {
	e := newEnv(t)
	resp, body := e.get("/oauth/authorize?" + authQuery(appID, redirect, "s", "", "").Encode())
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for header, want := range map[string]string{
		"Referrer-Policy": "no-referrer",
		"Content-Type":    "text/html; charset=utf-8",
		"Cache-Control":   "no-store",
		"X-Frame-Options": "DENY",
	} {
		if got := resp.Header.Get(header); got != want {
			t.Errorf("%s = %q, want %q", header, got, want)
		}
	}
	page := string(body)
	for _, want := range []string{"Jim Builder", "Demo &lt;Integration&gt; &amp; Co", `value="allow"`, `value="deny"`, `method="post"`} {
		if !strings.Contains(page, want) {
			t.Errorf("consent page lacks %q", want)
		}
	}
	if strings.Contains(page, appName) {
		t.Error("consent page shows the app name unescaped")
	}
}

func TestConsentRequestIDIsSingleUseAndExpires(t *testing.T) {
	e := newEnv(t)
	id := e.consent(authQuery(appID, redirect, "s", "", ""))
	if resp, _ := e.decide(id, "allow"); resp.StatusCode != http.StatusFound {
		t.Fatalf("first answer: status %d", resp.StatusCode)
	}
	expired := e.consent(authQuery(appID, redirect, "s", "", ""))

	tests := []struct {
		name, id, decision string
		advance            time.Duration
	}{
		{"answered twice", id, "deny", 0},
		{"unknown", "forged-request-id", "allow", 0},
		{"no decision", e.consent(authQuery(appID, redirect, "s", "", "")), "maybe", 0},
		{"expired", expired, "allow", authorizationLifetime},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.clock.Advance(tt.advance)
			resp, _ := e.decide(tt.id, tt.decision)
			if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
				t.Errorf("status %d, Location %q: want 400 and no redirect", resp.StatusCode, resp.Header.Get("Location"))
			}
		})
	}
}

// authorizationLifetime is how long consent pages and codes live.
const authorizationLifetime = 10 * time.Minute

func TestOutOfBand(t *testing.T) {
	e := newEnv(t)
	resp, body := e.decide(e.consent(authQuery(appID, emulator.OutOfBandURI, "s", "", "")), "allow")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Location") != "" {
		t.Fatalf("status %d, Location %q: want the code on a page", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Error("code page lacks Referrer-Policy: no-referrer")
	}
	m := regexpCode.FindSubmatch(body)
	if m == nil {
		t.Fatalf("no code on the page: %s", body)
	}
	status, _, raw := e.postToken(exchangeForm(string(m[1]), emulator.OutOfBandURI, ""))
	if status != http.StatusOK {
		t.Fatalf("exchange of the out-of-band code: status %d, body %s", status, raw)
	}

	resp, body = e.decide(e.consent(authQuery(appID, emulator.OutOfBandURI, "s", "", "")), "deny")
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "access_denied") {
		t.Errorf("out-of-band deny: status %d, body %s", resp.StatusCode, body)
	}
}

func TestSetIssuer(t *testing.T) {
	e := newEnv(t)
	for _, iss := range []string{e.base, ""} {
		e.srv.SetIssuer(iss)
		resp, _ := e.decide(e.consent(authQuery(appID, redirect, "s", "", "")), "allow")
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if got, sent := loc.Query()["iss"]; iss == "" && sent || iss != "" && (len(got) != 1 || got[0] != iss) {
			t.Errorf("SetIssuer(%q): redirect %s", iss, loc)
		}
	}
}
