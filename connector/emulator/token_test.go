package emulator_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/emulator"
)

func TestCodeExchangeRules(t *testing.T) {
	const otherVerifier = "a-different-verifier-that-is-long-enough-to-be-valid-0123"
	tests := []struct {
		name              string
		client            string // authorizing client; default appID
		challenge, method string
		edit              func(form url.Values)
		advance           time.Duration
		wantStatus        int
		wantErr           string
	}{
		{name: "S256", challenge: s256(verifier), method: "S256", edit: withVerifier(verifier), wantStatus: 200},
		{name: "S256 wrong verifier", challenge: s256(verifier), method: "S256", edit: withVerifier(otherVerifier), wantStatus: 400, wantErr: "invalid_grant"},
		{name: "S256 verifier is the challenge", challenge: s256(verifier), method: "S256", edit: withVerifier(s256(verifier)), wantStatus: 400, wantErr: "invalid_grant"},
		{name: "S256 missing verifier", challenge: s256(verifier), method: "S256", wantStatus: 400, wantErr: "invalid_grant"},
		{name: "plain", challenge: verifier, method: "plain", edit: withVerifier(verifier), wantStatus: 200},
		{name: "plain by default", challenge: verifier, edit: withVerifier(verifier), wantStatus: 200},
		{name: "plain wrong verifier", challenge: verifier, method: "plain", edit: withVerifier(otherVerifier), wantStatus: 400, wantErr: "invalid_grant"},
		{name: "malformed verifier", challenge: s256("short"), method: "S256", edit: withVerifier("short"), wantStatus: 400, wantErr: "invalid_grant"},
		{name: "verifier without challenge", edit: withVerifier(verifier), wantStatus: 400, wantErr: "invalid_grant"},
		{name: "no PKCE", wantStatus: 200},
		{name: "other redirect_uri", edit: func(f url.Values) { f.Set("redirect_uri", "http://127.0.0.1:8765/other") }, wantStatus: 400, wantErr: "invalid_grant"},
		{name: "missing redirect_uri", edit: func(f url.Values) { f.Del("redirect_uri") }, wantStatus: 400, wantErr: "invalid_request"},
		{name: "missing code", edit: func(f url.Values) { f.Del("code") }, wantStatus: 400, wantErr: "invalid_request"},
		{name: "unknown code", edit: func(f url.Values) { f.Set("code", "not-a-code") }, wantStatus: 400, wantErr: "invalid_grant"},
		{name: "code of another client", client: loopID, wantStatus: 400, wantErr: "invalid_grant"},
		{name: "expired", advance: 10 * time.Minute, wantStatus: 400, wantErr: "invalid_grant"},
		{name: "just in time", advance: 10*time.Minute - time.Second, wantStatus: 200},
		{name: "public client", client: pubID, challenge: s256(verifier), method: "S256", edit: func(f url.Values) {
			f.Set("client_id", pubID)
			f.Del("client_secret")
			f.Set("code_verifier", verifier)
		}, wantStatus: 200},
	}
	e := newEnv(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := tt.client
			if client == "" {
				client = appID
			}
			c := e.code(authQuery(client, redirect, "s", tt.challenge, tt.method))
			e.clock.Advance(tt.advance)
			form := exchangeForm(c, redirect, "")
			if tt.edit != nil {
				tt.edit(form)
			}
			status, tb, raw := e.postToken(form)
			if status != tt.wantStatus || tb.Error != tt.wantErr {
				t.Fatalf("status %d, body %s: want %d %q", status, raw, tt.wantStatus, tt.wantErr)
			}
			if bytes.Contains(raw, []byte(c)) || bytes.Contains(raw, []byte(appSecret)) {
				t.Errorf("response echoes the code or the secret: %s", raw)
			}
		})
	}
}

func withVerifier(v string) func(url.Values) {
	return func(f url.Values) { f.Set("code_verifier", v) }
}

func TestCodeIsSingleUseAndReplayRevokesGrant(t *testing.T) {
	e := newEnv(t)
	c := e.code(authQuery(appID, redirect, "s", "", ""))
	status, tb, _ := e.postToken(exchangeForm(c, redirect, ""))
	if status != http.StatusOK {
		t.Fatalf("first exchange: status %d", status)
	}
	status, again, _ := e.postToken(exchangeForm(c, redirect, ""))
	if status != http.StatusBadRequest || again.Error != "invalid_grant" {
		t.Fatalf("replay: status %d error %q, want 400 invalid_grant", status, again.Error)
	}
	if resp, _ := e.api(http.MethodGet, "/rest/v1.0/me", tb.AccessToken, "", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("access token from a replayed code: status %d, want 401", resp.StatusCode)
	}
	if status, _, _ := e.postToken(refreshForm(tb.RefreshToken)); status != http.StatusBadRequest {
		t.Errorf("refresh token from a replayed code: status %d, want 400", status)
	}
	if st := e.srv.Stats(); st.GrantRevocations != 1 || st.CodeExchanges != 1 {
		t.Errorf("stats %+v: want 1 revocation, 1 exchange", st)
	}
}

func TestRefreshRotates(t *testing.T) {
	e := newEnv(t)
	first := e.login()
	second := e.refresh(first.RefreshToken)
	if second.RefreshToken == "" || second.RefreshToken == first.RefreshToken || second.AccessToken == first.AccessToken {
		t.Fatal("refresh did not return a new access and refresh token")
	}
	if resp, _ := e.api(http.MethodGet, "/rest/v1.0/me", first.AccessToken, "", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("access token replaced by a refresh: status %d, want 401", resp.StatusCode)
	}
	third := e.refresh(second.RefreshToken)
	if resp, body := e.api(http.MethodGet, "/rest/v1.0/me", third.AccessToken, "", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("access token after two refreshes: status %d, body %s", resp.StatusCode, body)
	}
	if st := e.srv.Stats(); st.Refreshes != 2 || st.GrantRevocations != 0 {
		t.Errorf("stats %+v: want 2 refreshes, no revocation", st)
	}
}

func TestRefreshReuseRevokesGrant(t *testing.T) {
	e := newEnv(t)
	first := e.login()
	second := e.refresh(first.RefreshToken)

	status, tb, raw := e.postToken(refreshForm(first.RefreshToken))
	if status != http.StatusBadRequest || tb.Error != "invalid_grant" {
		t.Fatalf("reuse: status %d, body %s; want 400 invalid_grant", status, raw)
	}
	if bytes.Contains(raw, []byte(first.RefreshToken)) {
		t.Error("the error echoes the refresh token")
	}
	if resp, _ := e.api(http.MethodGet, "/rest/v1.0/me", second.AccessToken, "", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("access token of the revoked grant: status %d, want 401", resp.StatusCode)
	}
	if status, tb, _ := e.postToken(refreshForm(second.RefreshToken)); status != http.StatusBadRequest || tb.Error != "invalid_grant" {
		t.Errorf("latest refresh token of the revoked grant: status %d %q, want invalid_grant", status, tb.Error)
	}
	// Another grant of the same user and client is untouched.
	other := e.login()
	if resp, _ := e.api(http.MethodGet, "/rest/v1.0/me", other.AccessToken, "", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("an unrelated grant was revoked too: status %d", resp.StatusCode)
	}
	if st := e.srv.Stats(); st.GrantRevocations != 1 || st.Refreshes != 1 {
		t.Errorf("stats %+v: want 1 grant revocation, 1 refresh", st)
	}
}

func TestRefreshTokenIsBoundToItsClient(t *testing.T) {
	e := newEnv(t)
	tb := e.login()
	form := refreshForm(tb.RefreshToken)
	form.Set("client_id", loopID)
	form.Set("client_secret", loopSec)
	if status, got, _ := e.postToken(form); status != http.StatusBadRequest || got.Error != "invalid_grant" {
		t.Fatalf("another client's refresh: status %d %q, want invalid_grant", status, got.Error)
	}
	e.refresh(tb.RefreshToken) // not burned by the other client's attempt
}

func TestConcurrentRefreshOfOneToken(t *testing.T) {
	e := newEnv(t)
	tb := e.login()
	const n = 16
	var wg sync.WaitGroup
	statuses := make([]int, n)
	access := make([]string, n)
	for i := range n {
		wg.Go(func() {
			statuses[i], access[i] = refreshStatus(e, tb.RefreshToken)
		})
	}
	wg.Wait()
	ok := 0
	for i, s := range statuses {
		switch s {
		case http.StatusOK:
			ok++
			// The winner's tokens die with the grant when the losers reuse its predecessor.
			if resp, _ := e.api(http.MethodGet, "/rest/v1.0/me", access[i], "", ""); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("winner's access token after reuse: status %d, want 401", resp.StatusCode)
			}
		case http.StatusBadRequest:
		default:
			t.Errorf("status %d", s)
		}
	}
	if ok != 1 {
		t.Errorf("%d of %d concurrent refreshes succeeded, want exactly 1", ok, n)
	}
	if st := e.srv.Stats(); st.GrantRevocations != 1 || st.Refreshes != 1 {
		t.Errorf("stats %+v: want 1 refresh and 1 revocation", st)
	}
}

// refreshStatus refreshes without failing the test, for goroutines.
func refreshStatus(e *env, rt string) (int, string) {
	resp, err := e.hc.PostForm(e.base+"/oauth/token", refreshForm(rt))
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	var tb tokenBody
	_ = json.NewDecoder(resp.Body).Decode(&tb)
	return resp.StatusCode, tb.AccessToken
}

func TestClientCredentials(t *testing.T) {
	e := newEnv(t)
	status, tb, raw := e.postToken(url.Values{"grant_type": {"client_credentials"}, "client_id": {svcID}, "client_secret": {svcSecret}})
	if status != http.StatusOK {
		t.Fatalf("status %d, body %s", status, raw)
	}
	if tb.AccessToken == "" || tb.ExpiresIn != 5400 || bytes.Contains(raw, []byte("refresh_token")) {
		t.Errorf("client credentials response %s: want an access token and no refresh_token", raw)
	}

	tests := []struct {
		name, path, company string
		want                int
	}{
		{"me without company", "/rest/v1.0/me", "", http.StatusBadRequest},
		{"companies without company", "/rest/v1.0/companies", "", http.StatusBadRequest},
		{"me", "/rest/v1.0/me", demoCompany, http.StatusOK},
		{"companies", "/rest/v1.0/companies", demoCompany, http.StatusOK},
		{"company not installed", "/rest/v1.0/me", secondCompany, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := e.api(http.MethodGet, tt.path, tb.AccessToken, tt.company, "")
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d; body %s", resp.StatusCode, tt.want, body)
			}
		})
	}
	_, body := e.api(http.MethodGet, "/rest/v1.0/companies", tb.AccessToken, demoCompany, "")
	if companies := decode[[]map[string]any](t, body); len(companies) != 1 {
		t.Errorf("service account sees %d companies, want 1", len(companies))
	}

	status, tb, _ = e.postToken(url.Values{"grant_type": {"client_credentials"}, "client_id": {appID}, "client_secret": {appSecret}})
	if status != http.StatusBadRequest || tb.Error != "unauthorized_client" {
		t.Errorf("client_credentials for a user-level app: status %d %q, want unauthorized_client", status, tb.Error)
	}
	if st := e.srv.Stats(); st.ClientCredentials != 1 || st.TokenRequests["client_credentials"] != 2 {
		t.Errorf("stats %+v", st)
	}
}

func basic(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
}

func formBasic(id, secret string) string {
	return basic(url.QueryEscape(id), url.QueryEscape(secret))
}

// Every way of sending a token request, with a fresh refresh token each.
func TestTokenRequestStyles(t *testing.T) {
	type build func(e *env, rt string) *http.Request
	form := func(values url.Values, query url.Values, auth string) build {
		return func(e *env, rt string) *http.Request {
			v := url.Values{}
			for k, vs := range values {
				v[k] = vs
			}
			if v.Has("refresh_token") {
				v.Set("refresh_token", rt)
			}
			u := e.base + "/oauth/token"
			if query != nil {
				q := url.Values{}
				for k, vs := range query {
					q[k] = vs
				}
				if q.Has("refresh_token") {
					q.Set("refresh_token", rt)
				}
				u += "?" + q.Encode()
			}
			var req *http.Request
			if len(v) > 0 {
				req, _ = http.NewRequest(http.MethodPost, u, strings.NewReader(v.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			} else {
				req, _ = http.NewRequest(http.MethodPost, u, nil)
			}
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			return req
		}
	}
	rawBody := func(contentType string, body func(rt string) string) build {
		return func(e *env, rt string) *http.Request {
			req, _ := http.NewRequest(http.MethodPost, e.base+"/oauth/token", strings.NewReader(body(rt)))
			req.Header.Set("Content-Type", contentType)
			return req
		}
	}
	full := url.Values{"grant_type": {"refresh_token"}, "client_id": {appID}, "client_secret": {appSecret}, "refresh_token": {"-"}}
	noClient := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"-"}}
	withID := url.Values{"grant_type": {"refresh_token"}, "client_id": {appID}, "refresh_token": {"-"}}

	tests := []struct {
		name       string
		req        build
		wantStatus int
		wantErr    string
	}{
		{"form body", form(full, nil, ""), 200, ""},
		{"JSON body", rawBody("application/json", func(rt string) string {
			b, _ := json.Marshal(map[string]string{"grant_type": "refresh_token", "client_id": appID, "client_secret": appSecret, "refresh_token": rt})
			return string(b)
		}), 200, ""},
		{"query string", form(nil, full, ""), 200, ""},
		{"multipart body", func(e *env, rt string) *http.Request {
			var buf bytes.Buffer
			mw := multipart.NewWriter(&buf)
			for k, v := range map[string]string{"grant_type": "refresh_token", "client_id": appID, "client_secret": appSecret, "refresh_token": rt} {
				_ = mw.WriteField(k, v)
			}
			_ = mw.Close()
			req, _ := http.NewRequest(http.MethodPost, e.base+"/oauth/token", &buf)
			req.Header.Set("Content-Type", mw.FormDataContentType())
			return req
		}, 200, ""},
		{"HTTP Basic", form(noClient, nil, formBasic(appID, appSecret)), 200, ""},
		{"HTTP Basic and matching client_id", form(withID, nil, formBasic(appID, appSecret)), 200, ""},
		{"HTTP Basic and client_secret in body", form(full, nil, formBasic(appID, appSecret)), 400, "invalid_request"},
		{"HTTP Basic and client_secret in query", form(noClient, url.Values{"client_secret": {appSecret}}, formBasic(appID, appSecret)), 400, "invalid_request"},
		{"HTTP Basic and another client_id", form(url.Values{"grant_type": {"refresh_token"}, "client_id": {loopID}, "refresh_token": {"-"}}, nil, formBasic(appID, appSecret)), 400, "invalid_request"},
		{"HTTP Basic not form-encoded", form(noClient, nil, basic(appID, appSecret)), 401, "invalid_client"},
		{"HTTP Basic malformed", form(noClient, nil, "Basic !!!"), 401, "invalid_client"},
		{"HTTP Basic wrong secret", form(noClient, nil, formBasic(appID, "wrong")), 401, "invalid_client"},
		{"wrong secret", form(url.Values{"grant_type": {"refresh_token"}, "client_id": {appID}, "client_secret": {"wrong"}, "refresh_token": {"-"}}, nil, ""), 401, "invalid_client"},
		{"no secret", form(withID, nil, ""), 401, "invalid_client"},
		{"unknown client", form(url.Values{"grant_type": {"refresh_token"}, "client_id": {"nobody"}, "client_secret": {appSecret}, "refresh_token": {"-"}}, nil, ""), 401, "invalid_client"},
		{"no client authentication", form(noClient, nil, ""), 401, "invalid_client"},
		{"parameter in query and body", form(full, url.Values{"grant_type": {"refresh_token"}}, ""), 400, "invalid_request"},
		{"parameter twice in body", rawBody("application/x-www-form-urlencoded", func(rt string) string {
			v := url.Values{}
			for k, vs := range full {
				v[k] = vs
			}
			v.Set("refresh_token", rt)
			return v.Encode() + "&grant_type=refresh_token"
		}), 400, "invalid_request"},
		{"unsupported grant type", form(url.Values{"grant_type": {"password"}, "client_id": {appID}, "client_secret": {appSecret}}, nil, ""), 400, "unsupported_grant_type"},
		{"missing grant type", form(url.Values{"client_id": {appID}, "client_secret": {appSecret}}, nil, ""), 400, "invalid_request"},
		{"missing refresh token", form(url.Values{"grant_type": {"refresh_token"}, "client_id": {appID}, "client_secret": {appSecret}}, nil, ""), 400, "invalid_request"},
		{"text body", rawBody("text/plain", func(rt string) string { return "grant_type=refresh_token" }), 400, "invalid_request"},
		{"JSON with an object value", rawBody("application/json", func(rt string) string {
			return `{"grant_type":"refresh_token","client_id":{"x":1}}`
		}), 400, "invalid_request"},
		{"JSON malformed", rawBody("application/json", func(rt string) string { return `{"grant_type":` }), 400, "invalid_request"},
	}
	e := newEnv(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.login()
			status, tb, raw := e.tokenRequest(tt.req(e, before.RefreshToken))
			if status != tt.wantStatus || tb.Error != tt.wantErr {
				t.Fatalf("status %d, body %s: want %d %q", status, raw, tt.wantStatus, tt.wantErr)
			}
			for _, secret := range []string{appSecret, url.QueryEscape(appSecret), before.RefreshToken} {
				if bytes.Contains(raw, []byte(secret)) {
					t.Errorf("response echoes a secret: %s", raw)
				}
			}
			if status == http.StatusOK {
				if tb.RefreshToken == "" || tb.RefreshToken == before.RefreshToken {
					t.Error("refresh did not rotate the refresh token")
				}
				return
			}
			// A rejected request must not have burned the refresh token.
			e.refresh(before.RefreshToken)
		})
	}
}

func TestInvalidClientChallenge(t *testing.T) {
	e := newEnv(t)
	req, _ := http.NewRequest(http.MethodPost, e.base+"/oauth/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", formBasic(svcID, "wrong"))
	resp, _ := e.do(req)
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
		t.Errorf("status %d, WWW-Authenticate %q: want 401 with a Basic challenge", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}

func TestRevoke(t *testing.T) {
	type revokeCase struct {
		name        string
		token       func(tb tokenBody) string
		form        url.Values // client authentication
		auth        string
		wantStatus  int
		wantRevoked bool
	}
	creds := url.Values{"client_id": {appID}, "client_secret": {appSecret}}
	tests := []revokeCase{
		{"access token", func(tb tokenBody) string { return tb.AccessToken }, creds, "", 200, true},
		{"refresh token", func(tb tokenBody) string { return tb.RefreshToken }, creds, "", 200, true},
		{"HTTP Basic", func(tb tokenBody) string { return tb.AccessToken }, nil, formBasic(appID, appSecret), 200, true},
		{"unknown token", func(tokenBody) string { return "no-such-token" }, creds, "", 200, false},
		{"another client's token", func(tb tokenBody) string { return tb.AccessToken },
			url.Values{"client_id": {loopID}, "client_secret": {loopSec}}, "", 200, false},
		{"wrong secret", func(tb tokenBody) string { return tb.AccessToken },
			url.Values{"client_id": {appID}, "client_secret": {"wrong"}}, "", 401, false},
		{"missing token", func(tokenBody) string { return "" }, creds, "", 400, false},
	}
	e := newEnv(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := e.login()
			form := url.Values{}
			for k, vs := range tt.form {
				form[k] = vs
			}
			if tok := tt.token(tb); tok != "" {
				form.Set("token", tok)
			}
			req, _ := http.NewRequest(http.MethodPost, e.base+"/oauth/revoke", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, body := e.do(req)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, body %s: want %d", resp.StatusCode, body, tt.wantStatus)
			}
			apiResp, _ := e.api(http.MethodGet, "/rest/v1.0/me", tb.AccessToken, "", "")
			refreshStatus, _, _ := e.postToken(refreshForm(tb.RefreshToken))
			revoked := apiResp.StatusCode == http.StatusUnauthorized && refreshStatus == http.StatusBadRequest
			alive := apiResp.StatusCode == http.StatusOK && refreshStatus == http.StatusOK
			if tt.wantRevoked && !revoked || !tt.wantRevoked && !alive {
				t.Errorf("after revoke: API %d, refresh %d; want revoked=%v", apiResp.StatusCode, refreshStatus, tt.wantRevoked)
			}
		})
	}
	if st := e.srv.Stats(); st.Revocations != 3 {
		t.Errorf("Revocations = %d, want 3", st.Revocations)
	}
}

func TestTokenInfo(t *testing.T) {
	e := newEnv(t)
	tb := e.login()
	created := e.clock.Now().Unix()
	e.clock.Advance(100 * time.Second)
	info := func() (*http.Response, []byte) {
		req, _ := http.NewRequest(http.MethodGet, e.base+"/oauth/token/info", nil)
		req.Header.Set("Authorization", "Bearer "+tb.AccessToken)
		return e.do(req)
	}
	resp, body := info()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, body %s", resp.StatusCode, body)
	}
	got := decode[struct {
		ResourceOwnerID  int64     `json:"resource_owner_id"`
		Scopes           *[]string `json:"scopes"`
		ExpiresInSeconds int64     `json:"expires_in_seconds"`
		Application      struct {
			UID string `json:"uid"`
		} `json:"application"`
		CreatedAt int64 `json:"created_at"`
	}](t, body)
	if got.ResourceOwnerID != emulator.DemoUserID || got.Scopes == nil || len(*got.Scopes) != 0 ||
		got.ExpiresInSeconds != 5300 || got.Application.UID != appID || got.CreatedAt != created {
		t.Errorf("token info %s", body)
	}

	e.clock.Advance(5300 * time.Second)
	if resp, _ := info(); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("expired token: status %d, want 401", resp.StatusCode)
	}
	if resp, _ := e.get("/oauth/token/info"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no token: status %d, want 401", resp.StatusCode)
	}
}

func TestFailTokenRequests(t *testing.T) {
	e := newEnv(t)
	tb := e.login()
	e.srv.FailTokenRequests(2, http.StatusServiceUnavailable)
	for i := range 2 {
		req, _ := http.NewRequest(http.MethodPost, e.base+"/oauth/token", strings.NewReader(refreshForm(tb.RefreshToken).Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, body := e.do(req)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" {
			t.Fatalf("attempt %d: status %d, Retry-After %q; want 503 with Retry-After: 1", i, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		if bytes.Contains(body, []byte(tb.RefreshToken)) {
			t.Error("injected failure echoes the refresh token")
		}
	}
	e.refresh(tb.RefreshToken) // the failed attempts did not burn it
	st := e.srv.Stats()
	if st.FailedTokenRequests != 2 || st.TokenRequests["refresh_token"] != 3 || st.Refreshes != 1 {
		t.Errorf("stats %+v: want 2 failed, 3 refresh requests, 1 refresh", st)
	}
}

func TestDropTokenResponses(t *testing.T) {
	e := newEnv(t)
	tb := e.login()

	e.srv.DropTokenResponses(1)
	if _, err := e.hc.PostForm(e.base+"/oauth/token", refreshForm(tb.RefreshToken)); err == nil {
		t.Fatal("dropped refresh: the client got a response")
	}
	// The refresh happened: the old token is burned, and retrying it is a reuse.
	status, got, _ := e.postToken(refreshForm(tb.RefreshToken))
	if status != http.StatusBadRequest || got.Error != "invalid_grant" {
		t.Fatalf("retry after a lost response: status %d %q, want invalid_grant", status, got.Error)
	}
	if st := e.srv.Stats(); st.Refreshes != 1 || st.GrantRevocations != 1 || st.DroppedTokenResponses != 1 {
		t.Errorf("stats %+v: want 1 refresh, 1 revocation, 1 dropped", st)
	}

	// A lost code exchange uses the code up as well.
	c := e.code(authQuery(appID, redirect, "s", "", ""))
	e.srv.DropTokenResponses(1)
	if _, err := e.hc.PostForm(e.base+"/oauth/token", exchangeForm(c, redirect, "")); err == nil {
		t.Fatal("dropped exchange: the client got a response")
	}
	if status, got, _ := e.postToken(exchangeForm(c, redirect, "")); status != http.StatusBadRequest || got.Error != "invalid_grant" {
		t.Errorf("code retried after a lost response: status %d %q, want invalid_grant", status, got.Error)
	}
}

func TestFaultsCancel(t *testing.T) {
	e := newEnv(t)
	e.srv.FailTokenRequests(5, 500)
	e.srv.DropTokenResponses(5)
	e.srv.FailTokenRequests(0, 500)
	e.srv.DropTokenResponses(0)
	e.login()
}

func TestSecretsNotPrinted(t *testing.T) {
	var cfg emulator.Config
	e := newEnv(t, func(c *emulator.Config) { cfg = *c })
	tb := e.login()
	out := fmt.Sprintf("%v %+v %#v %s %v %+v %#v", e.srv, e.srv, e.srv, cfg.Clients[0], cfg, cfg, cfg.Clients)
	for _, secret := range []string{appSecret, svcSecret, loopSec, tb.AccessToken, tb.RefreshToken} {
		if strings.Contains(out, secret) {
			t.Errorf("formatted output shows a secret: %s", out)
		}
	}
	if !strings.Contains(out, "[redacted]") || !strings.Contains(out, appID) {
		t.Errorf("formatted output lacks the client id or the redaction mark: %s", out)
	}
}
