package emulator_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/connector-engine/connector/connector/emulator"
)

func autoApprove(c *emulator.Config) { c.AutoApprove = true }

// With AutoApprove, a valid authorization request redirects with a code at
// once; the code is bound like one from the consent form (client, redirect
// URI, PKCE), so it exchanges with the right verifier only.
func TestAutoApproveRedirectsWithACode(t *testing.T) {
	e := newEnv(t, autoApprove)
	resp, body := e.get("/oauth/authorize?" + authQuery(appID, redirect, "auto-state", s256(verifier), "S256").Encode())
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("GET /oauth/authorize: status %d, want 302; body %s", resp.StatusCode, body)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != redirect {
		t.Errorf("redirected to %s, want %s", got, redirect)
	}
	q := loc.Query()
	if q.Get("state") != "auto-state" || q.Get("iss") != issuer || q.Get("code") == "" {
		t.Fatalf("redirect query %v: want code, state=auto-state, iss=%s", q, issuer)
	}
	if got := resp.Header.Get("Referrer-Policy"); got != "no-referrer" {
		t.Errorf("redirect Referrer-Policy = %q, want no-referrer", got)
	}
	if status, _, raw := e.postToken(exchangeForm(q.Get("code"), redirect, "wrong-"+verifier)); status != http.StatusBadRequest {
		t.Errorf("exchange with the wrong verifier: status %d, body %s; want 400", status, raw)
	}
	// The failed attempt used the code up (single use), so approve again.
	resp, _ = e.get("/oauth/authorize?" + authQuery(appID, redirect, "s2", s256(verifier), "S256").Encode())
	loc, _ = url.Parse(resp.Header.Get("Location"))
	status, tb, raw := e.postToken(exchangeForm(loc.Query().Get("code"), redirect, verifier))
	if status != http.StatusOK || tb.AccessToken == "" || tb.RefreshToken == "" {
		t.Fatalf("exchange: status %d, body %s", status, raw)
	}
	if resp, body := e.api(http.MethodGet, "/rest/v1.0/me", tb.AccessToken, "", ""); resp.StatusCode != http.StatusOK ||
		!strings.Contains(string(body), `"name":"Jim Builder"`) {
		t.Fatalf("GET /me: status %d, body %s", resp.StatusCode, body)
	}
}

// AutoApprove skips the consent page, not the checks: every bad request is
// refused as without it, and the out-of-band URI shows the code.
func TestAutoApproveKeepsTheChecks(t *testing.T) {
	e := newEnv(t, autoApprove)
	for _, tc := range []struct {
		name       string
		q          url.Values
		wantStatus int
		wantBody   string // on this host's error or code page
		wantError  string // in the redirect
	}{
		{"unknown client", authQuery("nobody", redirect, "s", "", ""), http.StatusBadRequest, "Unknown application", ""},
		{"unregistered redirect", authQuery(appID, "http://127.0.0.1:9/other", "s", "", ""), http.StatusBadRequest, "not registered", ""},
		{"public client without PKCE", authQuery(pubID, redirect, "s", "", ""), http.StatusFound, "", "invalid_request"},
		{"bad challenge method", authQuery(appID, redirect, "s", s256(verifier), "S512"), http.StatusFound, "", "invalid_request"},
		{"out of band", authQuery(appID, emulator.OutOfBandURI, "s", "", ""), http.StatusOK, `<code id="code">`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := e.get("/oauth/authorize?" + tc.q.Encode())
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tc.wantStatus, body)
			}
			if tc.wantBody != "" && !strings.Contains(string(body), tc.wantBody) {
				t.Errorf("body %s does not contain %q", body, tc.wantBody)
			}
			if tc.wantError != "" {
				loc, _ := url.Parse(resp.Header.Get("Location"))
				if got := loc.Query().Get("error"); got != tc.wantError || loc.Query().Get("code") != "" {
					t.Errorf("redirect %s: error %q, want %q and no code", loc, got, tc.wantError)
				}
			}
		})
	}
}

// Without AutoApprove the consent page is still shown.
func TestConsentPageWithoutAutoApprove(t *testing.T) {
	e := newEnv(t)
	resp, body := e.get("/oauth/authorize?" + authQuery(appID, redirect, "s", "", "").Encode())
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `name="decision" value="allow"`) {
		t.Fatalf("status %d, body %s: want the consent page", resp.StatusCode, body)
	}
}
