package fositeserver

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	redirectURI = "http://127.0.0.1/callback"
	state       = "state-0123456789" // fosite wants at least 8 characters
)

var (
	confidential = Client{
		ID:           "app",
		Secret:       "app-secret",
		RedirectURIs: []string{redirectURI},
		Scopes:       []string{"read", "write"},
	}
	public = Client{
		ID:           "cli",
		Public:       true,
		RedirectURIs: []string{redirectURI},
		Scopes:       []string{"read"},
	}
)

// httpClient is the test's OAuth client: plain net/http, redirects not
// followed (the redirect URI is where the test reads the answer).
var httpClient = &http.Client{
	Timeout: 10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	Scope        string `json:"scope"`
	Error        string `json:"error"`
}

// authOption sets client authentication on a token or revocation request.
type authOption func(*http.Request)

// basicAuth encodes the credentials as RFC 6749 section 2.3.1 asks.
func basicAuth(id, secret string) authOption {
	return func(r *http.Request) { r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret)) }
}

// rawBasicAuth skips the form-encoding, as some clients do.
func rawBasicAuth(id, secret string) authOption {
	return func(r *http.Request) { r.SetBasicAuth(id, secret) }
}

// send posts a form to target. Its error is a *url.Error when no HTTP
// response arrived.
func send(ctx context.Context, target string, form url.Values, auth authOption) (int, tokenResponse, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, tokenResponse{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if auth != nil {
		auth(req)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, tokenResponse{}, err
	}
	defer resp.Body.Close()
	var tr tokenResponse
	if resp.StatusCode != http.StatusOK || strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
			return resp.StatusCode, tr, fmt.Errorf("status %d, body is not JSON: %v", resp.StatusCode, err)
		}
	}
	return resp.StatusCode, tr, nil
}

// post is send for the test goroutine: a response it cannot read fails
// the test, a missing response is returned.
func post(t *testing.T, target string, form url.Values, auth authOption) (int, tokenResponse, error) {
	t.Helper()
	status, tr, err := send(t.Context(), target, form, auth)
	var noResponse *url.Error
	if err != nil && !errors.As(err, &noResponse) {
		t.Fatalf("POST %s: %v", target, err)
	}
	return status, tr, err
}

// mustToken posts a token request that must succeed.
func mustToken(t *testing.T, s *Server, form url.Values, auth authOption) tokenResponse {
	t.Helper()
	status, tr, err := post(t, s.URL+"/oauth/token", form, auth)
	if err != nil {
		t.Fatalf("token request: %v", err)
	}
	if status != http.StatusOK || tr.AccessToken == "" {
		t.Fatalf("token request: status %d error %q, want 200 with an access token", status, tr.Error)
	}
	return tr
}

// tokenError posts a token request that must fail with the given error code.
func tokenError(t *testing.T, s *Server, form url.Values, auth authOption, want string) {
	t.Helper()
	status, tr, err := post(t, s.URL+"/oauth/token", form, auth)
	if err != nil {
		t.Fatalf("token request: %v", err)
	}
	if status == http.StatusOK || tr.Error != want {
		t.Fatalf("token request: status %d error %q, want error %q", status, tr.Error, want)
	}
}

// authorize runs the authorization endpoint and returns the parameters it
// put on the redirect URI.
func authorize(t *testing.T, s *Server, q url.Values) url.Values {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL+"/oauth/authorize?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("authorize: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("authorize: status %d, want 303 to the redirect URI", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatalf("authorize: bad Location: %v", err)
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != redirectURI {
		t.Fatalf("authorize: redirected to %s, want %s", got, redirectURI)
	}
	return loc.Query()
}

func authorizeQuery(c Client, scope, challenge string) url.Values {
	q := url.Values{
		"response_type": {"code"},
		"client_id":     {c.ID},
		"redirect_uri":  {redirectURI},
		"scope":         {scope},
		"state":         {state},
	}
	if challenge != "" {
		q.Set("code_challenge", challenge)
		q.Set("code_challenge_method", "S256")
	}
	return q
}

func newPKCE(t *testing.T) (verifier, challenge string) {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	verifier = base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

func codeForm(code, verifier string) url.Values {
	f := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}}
	if verifier != "" {
		f.Set("code_verifier", verifier)
	}
	return f
}

func refreshForm(refreshToken string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}}
}

// login runs the whole code flow with PKCE for the confidential client.
func login(t *testing.T, s *Server) tokenResponse {
	t.Helper()
	verifier, challenge := newPKCE(t)
	got := authorize(t, s, authorizeQuery(confidential, "read", challenge))
	return mustToken(t, s, codeForm(got.Get("code"), verifier), basicAuth(confidential.ID, confidential.Secret))
}

// callMe calls the protected resource and returns the status and "sub".
func callMe(t *testing.T, s *Server, accessToken string) (int, meResponse) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL+"/api/me", nil)
	if err != nil {
		t.Fatal(err)
	}
	if accessToken != "" {
		req.Header.Set("Authorization", "Bearer "+accessToken)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("GET /api/me: %v", err)
	}
	defer resp.Body.Close()
	var me meResponse
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&me); err != nil {
			t.Fatalf("GET /api/me: %v", err)
		}
	}
	return resp.StatusCode, me
}

func wantMe(t *testing.T, s *Server, accessToken string, want int) {
	t.Helper()
	if got, _ := callMe(t, s, accessToken); got != want {
		t.Fatalf("GET /api/me: status %d, want %d", got, want)
	}
}

func TestAuthorizationCodeFlowWithPKCE(t *testing.T) {
	for _, c := range []Client{confidential, public} {
		t.Run(c.ID, func(t *testing.T) {
			s := Start(t, Options{Clients: []Client{confidential, public}, RequirePKCE: true})
			auth := basicAuth(c.ID, c.Secret)
			if c.Public {
				auth = nil
			}
			verifier, challenge := newPKCE(t)

			got := authorize(t, s, authorizeQuery(c, "read", challenge))
			if got.Get("state") != state || got.Get("code") == "" || got.Get("scope") != "read" {
				t.Fatalf("authorize redirect: state %q, code present %t, scope %q", got.Get("state"), got.Get("code") != "", got.Get("scope"))
			}
			form := codeForm(got.Get("code"), verifier)
			if c.Public {
				form.Set("client_id", c.ID)
			}
			tr := mustToken(t, s, form, auth)
			if tr.RefreshToken == "" || !strings.EqualFold(tr.TokenType, "bearer") || tr.ExpiresIn <= 0 || tr.Scope != "read" {
				t.Fatalf("token response: refresh present %t, type %q, expires_in %d, scope %q", tr.RefreshToken != "", tr.TokenType, tr.ExpiresIn, tr.Scope)
			}
			status, me := callMe(t, s, tr.AccessToken)
			if status != http.StatusOK || me.Sub != Subject || me.ClientID != c.ID || me.Scope != "read" {
				t.Fatalf("GET /api/me: status %d, %+v", status, me)
			}

			// A code is single use; replaying it also revokes what it
			// bought (RFC 6749 section 4.1.2).
			tokenError(t, s, form, auth, "invalid_grant")
			wantMe(t, s, tr.AccessToken, http.StatusUnauthorized)
			refresh := refreshForm(tr.RefreshToken)
			if c.Public {
				refresh.Set("client_id", c.ID)
			}
			tokenError(t, s, refresh, auth, "invalid_grant")

			if st := s.Stats(); st.CodeExchanges != 1 || st.TokenRequests != 3 {
				t.Fatalf("stats: %+v, want 1 code exchange of 3 token requests", st)
			}
		})
	}
}

func TestPKCERules(t *testing.T) {
	tests := []struct {
		name        string
		requirePKCE bool
		method      string // code_challenge_method; "" sends no challenge
		verifier    string // "good", "wrong" or "" (none sent)
		wantAuthErr string // error on the redirect, if the authorization fails
		wantTokErr  string // error from the token endpoint, if the exchange fails
	}{
		{"required, missing", true, "", "", "invalid_request", ""},
		{"required, plain", true, "plain", "good", "invalid_request", ""},
		{"required, S256", true, "S256", "good", "", ""},
		{"S256, wrong verifier", true, "S256", "wrong", "", "invalid_grant"},
		{"S256, verifier missing", false, "S256", "", "", "invalid_grant"},
		{"optional, none", false, "", "", "", ""},
		{"optional, plain still refused", false, "plain", "good", "invalid_request", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Start(t, Options{Clients: []Client{confidential}, RequirePKCE: tt.requirePKCE})
			verifier, challenge := newPKCE(t)
			q := authorizeQuery(confidential, "read", "")
			switch tt.method {
			case "S256":
				q.Set("code_challenge", challenge)
				q.Set("code_challenge_method", "S256")
			case "plain":
				q.Set("code_challenge", verifier)
				q.Set("code_challenge_method", "plain")
			}
			got := authorize(t, s, q)
			if got.Get("error") != tt.wantAuthErr {
				t.Fatalf("authorize: error %q, want %q", got.Get("error"), tt.wantAuthErr)
			}
			if tt.wantAuthErr != "" {
				return
			}
			switch tt.verifier {
			case "wrong":
				verifier, _ = newPKCE(t)
			case "":
				verifier = ""
			}
			form := codeForm(got.Get("code"), verifier)
			auth := basicAuth(confidential.ID, confidential.Secret)
			if tt.wantTokErr != "" {
				tokenError(t, s, form, auth, tt.wantTokErr)
				return
			}
			mustToken(t, s, form, auth)
		})
	}
}

func TestDenyConsent(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		deny string // value of the deny query parameter
	}{
		{"option", Options{DenyConsent: true}, ""},
		{"query parameter", Options{}, "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Clients = []Client{confidential}
			s := Start(t, tt.opts)
			q := authorizeQuery(confidential, "read", "")
			if tt.deny != "" {
				q.Set("deny", tt.deny)
			}
			got := authorize(t, s, q)
			if got.Get("error") != "access_denied" || got.Get("state") != state || got.Has("code") {
				t.Fatalf("redirect: error %q, state %q, code present %t; want access_denied, the state, no code",
					got.Get("error"), got.Get("state"), got.Has("code"))
			}
		})
	}
}

func TestClientCredentials(t *testing.T) {
	s := Start(t, Options{Clients: []Client{confidential, public}, AccessTokenLifetime: 90 * time.Second})
	grant := func(scope string) url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}
	}
	inBody := grant("read write")
	inBody.Set("client_id", confidential.ID)
	inBody.Set("client_secret", confidential.Secret)

	for _, call := range []struct {
		name string
		form url.Values
		auth authOption
	}{
		{"client_secret_basic", grant("read write"), basicAuth(confidential.ID, confidential.Secret)},
		{"client_secret_post", inBody, nil},
	} {
		t.Run(call.name, func(t *testing.T) {
			tr := mustToken(t, s, call.form, call.auth)
			if tr.RefreshToken != "" {
				t.Error("client_credentials issued a refresh token")
			}
			// Only a bound, not a timing: the lifetime option reaches fosite.
			if tr.ExpiresIn <= 60 || tr.ExpiresIn > 90 {
				t.Errorf("expires_in %d, want about 90", tr.ExpiresIn)
			}
			status, me := callMe(t, s, tr.AccessToken)
			if status != http.StatusOK || me.Sub != confidential.ID || me.Scope != "read write" {
				t.Fatalf("GET /api/me: status %d, %+v", status, me)
			}
		})
	}

	refusals := []struct {
		name string
		form url.Values
		auth authOption
		want string
	}{
		{"scope not allowed", grant("admin"), basicAuth(confidential.ID, confidential.Secret), "invalid_scope"},
		{"wrong secret", grant("read"), basicAuth(confidential.ID, "nope"), "invalid_client"},
		{"unknown client", grant("read"), basicAuth("nobody", "x"), "invalid_client"},
		{"public client", url.Values{"grant_type": {"client_credentials"}, "client_id": {public.ID}}, nil, "invalid_grant"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) { tokenError(t, s, tt.form, tt.auth, tt.want) })
	}
	if st := s.Stats(); st.ClientCredentialsGrants != 2 {
		t.Fatalf("stats: %+v, want 2 client_credentials grants", st)
	}
}

// TestRefreshRotation records fosite's behaviour (MemoryStore): every
// refresh returns a new refresh token and retires the old pair; presenting
// a retired refresh token is invalid_grant and revokes the whole grant.
func TestRefreshRotation(t *testing.T) {
	s := Start(t, Options{Clients: []Client{confidential}})
	auth := basicAuth(confidential.ID, confidential.Secret)
	first := login(t, s)

	second := mustToken(t, s, refreshForm(first.RefreshToken), auth)
	if second.RefreshToken == "" || second.RefreshToken == first.RefreshToken || second.AccessToken == first.AccessToken {
		t.Fatal("refresh did not rotate both tokens")
	}
	if second.Scope != "read" {
		t.Fatalf("refreshed scope %q, want the original %q", second.Scope, "read")
	}
	// The rotation revokes the previous access token at once, not at expiry.
	wantMe(t, s, first.AccessToken, http.StatusUnauthorized)
	wantMe(t, s, second.AccessToken, http.StatusOK)

	third := mustToken(t, s, refreshForm(second.RefreshToken), auth)

	// Reuse of a retired refresh token: refused, and the newest tokens,
	// which the reuser never saw, are revoked with it.
	tokenError(t, s, refreshForm(first.RefreshToken), auth, "invalid_grant")
	wantMe(t, s, third.AccessToken, http.StatusUnauthorized)
	tokenError(t, s, refreshForm(third.RefreshToken), auth, "invalid_grant")
	// fosite deletes the reused token; a second reuse is still refused.
	tokenError(t, s, refreshForm(second.RefreshToken), auth, "invalid_grant")

	st := s.Stats()
	if st.Refreshes != 2 || st.RefreshReuseDetected != 2 {
		t.Fatalf("stats: %+v, want 2 refreshes and 2 reuses (the newest token is revoked, not retired)", st)
	}
}

// TestConcurrentRefreshWithOneToken shows the server treats a refresh
// token as single use even under a race: one refresh wins, the others are
// reuse, and the reuse revokes the winner's tokens too.
func TestConcurrentRefreshWithOneToken(t *testing.T) {
	s := Start(t, Options{Clients: []Client{confidential}})
	auth := basicAuth(confidential.ID, confidential.Secret)
	tr := login(t, s)

	const n = 6
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		winners []tokenResponse
		errs    []string
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, got, err := send(t.Context(), s.URL+"/oauth/token", refreshForm(tr.RefreshToken), auth)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				errs = append(errs, err.Error())
			case status == http.StatusOK:
				winners = append(winners, got)
			case got.Error != "invalid_grant":
				errs = append(errs, fmt.Sprintf("status %d error %q", status, got.Error))
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 || len(winners) != 1 {
		t.Fatalf("%d winners, unexpected outcomes %q; want 1 winner and %d invalid_grant", len(winners), errs, n-1)
	}
	wantMe(t, s, winners[0].AccessToken, http.StatusUnauthorized)
	if st := s.Stats(); st.Refreshes != 1 || st.RefreshReuseDetected != n-1 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestRevoke(t *testing.T) {
	auth := basicAuth(confidential.ID, confidential.Secret)
	tests := []struct {
		name string
		pick func(tokenResponse) string
		hint string
	}{
		{"refresh token", func(tr tokenResponse) string { return tr.RefreshToken }, "refresh_token"},
		{"access token", func(tr tokenResponse) string { return tr.AccessToken }, "access_token"},
		{"refresh token, no hint", func(tr tokenResponse) string { return tr.RefreshToken }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Start(t, Options{Clients: []Client{confidential}})
			tr := login(t, s)
			form := url.Values{"token": {tt.pick(tr)}}
			if tt.hint != "" {
				form.Set("token_type_hint", tt.hint)
			}
			if status, _, err := post(t, s.URL+"/oauth/revoke", form, auth); err != nil || status != http.StatusOK {
				t.Fatalf("revoke: status %d, err %v", status, err)
			}
			// Revoking either token ends the grant: both stop working.
			wantMe(t, s, tr.AccessToken, http.StatusUnauthorized)
			tokenError(t, s, refreshForm(tr.RefreshToken), auth, "invalid_grant")
			if st := s.Stats(); st.Revocations != 1 {
				t.Fatalf("stats: %+v", st)
			}
		})
	}

	t.Run("unknown token", func(t *testing.T) {
		// RFC 7009 section 2.2: an invalid token is not an error.
		s := Start(t, Options{Clients: []Client{confidential}})
		if status, _, err := post(t, s.URL+"/oauth/revoke", url.Values{"token": {"not-a-token"}}, auth); err != nil || status != http.StatusOK {
			t.Fatalf("revoke: status %d, err %v", status, err)
		}
	})
	t.Run("wrong client secret", func(t *testing.T) {
		s := Start(t, Options{Clients: []Client{confidential}})
		tr := login(t, s)
		status, _, err := post(t, s.URL+"/oauth/revoke", url.Values{"token": {tr.RefreshToken}}, basicAuth(confidential.ID, "nope"))
		if err != nil || status != http.StatusUnauthorized {
			t.Fatalf("revoke: status %d, err %v; want 401", status, err)
		}
		wantMe(t, s, tr.AccessToken, http.StatusOK)
	})
}

func TestClientAuthenticationWithSpecialCharacters(t *testing.T) {
	odd := Client{ID: "id?&:%+ é", Secret: "s?&:%+ /=", Scopes: []string{"read"}}
	s := Start(t, Options{Clients: []Client{odd}})
	grant := url.Values{"grant_type": {"client_credentials"}}
	inBody := url.Values{"grant_type": {"client_credentials"}, "client_id": {odd.ID}, "client_secret": {odd.Secret}}

	tests := []struct {
		name string
		form url.Values
		auth authOption
		ok   bool
	}{
		{"basic, form-encoded first (RFC 6749 2.3.1)", grant, basicAuth(odd.ID, odd.Secret), true},
		{"basic, not encoded", grant, rawBasicAuth(odd.ID, odd.Secret), false},
		{"client_secret_post", inBody, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, tr, err := post(t, s.URL+"/oauth/token", tt.form, tt.auth)
			if err != nil {
				t.Fatal(err)
			}
			if ok := status == http.StatusOK && tr.AccessToken != ""; ok != tt.ok {
				t.Fatalf("status %d error %q; want success %t", status, tr.Error, tt.ok)
			}
		})
	}
}

func TestDroppedTokenResponse(t *testing.T) {
	auth := basicAuth(confidential.ID, confidential.Secret)

	t.Run("refresh", func(t *testing.T) {
		s := Start(t, Options{Clients: []Client{confidential}})
		tr := login(t, s)

		s.DropNextTokenResponses(1)
		if status, _, err := post(t, s.URL+"/oauth/token", refreshForm(tr.RefreshToken), auth); err == nil {
			t.Fatalf("dropped refresh: got status %d, want no response", status)
		}
		if st := s.Stats(); st.Refreshes != 1 {
			t.Fatalf("stats: %+v; the dropped refresh should have been carried out", st)
		}
		// The client retries with the only refresh token it has: already
		// rotated out, so this is reuse and the grant is gone.
		tokenError(t, s, refreshForm(tr.RefreshToken), auth, "invalid_grant")
		if st := s.Stats(); st.RefreshReuseDetected != 1 {
			t.Fatalf("stats: %+v", st)
		}
		// Only one response was dropped.
		mustToken(t, s, url.Values{"grant_type": {"client_credentials"}}, auth)
	})

	t.Run("code exchange", func(t *testing.T) {
		s := Start(t, Options{Clients: []Client{confidential}})
		got := authorize(t, s, authorizeQuery(confidential, "read", ""))

		s.DropNextTokenResponses(1)
		if status, _, err := post(t, s.URL+"/oauth/token", codeForm(got.Get("code"), ""), auth); err == nil {
			t.Fatalf("dropped exchange: got status %d, want no response", status)
		}
		tokenError(t, s, codeForm(got.Get("code"), ""), auth, "invalid_grant")
		if st := s.Stats(); st.CodeExchanges != 1 || st.TokenRequests != 2 {
			t.Fatalf("stats: %+v", st)
		}
	})
}

// TestQueryParameters shows fosite reads token parameters from the body
// only, and that AcceptQueryParams makes it take them from the URL too.
func TestQueryParameters(t *testing.T) {
	tests := []struct {
		name   string
		accept bool
		body   url.Values
		query  func(code string) url.Values
		ok     bool
	}{
		{
			name: "all in query, ignored by fosite",
			body: url.Values{},
			query: func(code string) url.Values {
				return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI},
					"client_id": {confidential.ID}, "client_secret": {confidential.Secret}}
			},
		},
		{
			name: "code and secret in query, ignored by fosite",
			body: url.Values{"grant_type": {"authorization_code"}, "redirect_uri": {redirectURI}},
			query: func(code string) url.Values {
				return url.Values{"code": {code}, "client_id": {confidential.ID}, "client_secret": {confidential.Secret}}
			},
		},
		{
			name:   "all in query, accepted",
			accept: true,
			body:   url.Values{},
			query: func(code string) url.Values {
				return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI},
					"client_id": {confidential.ID}, "client_secret": {confidential.Secret}}
			},
			ok: true,
		},
		{
			name:   "body wins over query",
			accept: true,
			body: url.Values{"grant_type": {"authorization_code"}, "redirect_uri": {redirectURI},
				"client_id": {confidential.ID}, "client_secret": {confidential.Secret}},
			query: func(code string) url.Values {
				return url.Values{"code": {code}, "client_secret": {"wrong"}}
			},
			ok: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Start(t, Options{Clients: []Client{confidential}, AcceptQueryParams: tt.accept})
			code := authorize(t, s, authorizeQuery(confidential, "read", "")).Get("code")
			status, tr, err := post(t, s.URL+"/oauth/token?"+tt.query(code).Encode(), tt.body, nil)
			if err != nil {
				t.Fatal(err)
			}
			if ok := status == http.StatusOK && tr.AccessToken != ""; ok != tt.ok {
				t.Fatalf("status %d error %q; want success %t", status, tr.Error, tt.ok)
			}
			if !tt.ok && tr.Error != "invalid_request" {
				t.Fatalf("error %q, want invalid_request", tr.Error)
			}
		})
	}
}

func TestProtectedResource(t *testing.T) {
	s := Start(t, Options{Clients: []Client{confidential}})
	tr := login(t, s)

	tests := []struct {
		name      string
		token     string
		want      int
		challenge string
	}{
		{"access token", tr.AccessToken, http.StatusOK, ""},
		{"no token", "", http.StatusUnauthorized, `Bearer realm="fositeserver"`},
		{"garbage", "ory_at_garbage.garbage", http.StatusUnauthorized, `Bearer realm="fositeserver", error="invalid_token"`},
		// fosite's validator would accept a refresh token here; we must not.
		{"refresh token", tr.RefreshToken, http.StatusUnauthorized, `Bearer realm="fositeserver", error="invalid_token"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL+"/api/me", nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			resp, err := httpClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want || resp.Header.Get("WWW-Authenticate") != tt.challenge {
				t.Fatalf("status %d, WWW-Authenticate %q; want %d, %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), tt.want, tt.challenge)
			}
		})
	}
	if st := s.Stats(); st.APIRequests != 4 || st.API401s != 3 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestInvalidOptions(t *testing.T) {
	const secret = "do-not-print-me"
	tests := []struct {
		name    string
		clients []Client
		want    string
	}{
		{"no ID", []Client{{Secret: secret}}, "Options.Clients[0]: the client has no ID"},
		{"public with secret", []Client{{ID: "a", Public: true, Secret: secret}}, `client "a" is public but has a secret`},
		{"confidential without secret", []Client{{ID: "a"}}, `client "a" is confidential but has no secret`},
		{"duplicate", []Client{{ID: "a", Secret: secret}, {ID: "a", Secret: secret}}, `Options.Clients[1]: client ID "a" is registered twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newServer(Options{Clients: tt.clients})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error %q contains the client secret", err)
			}
		})
	}
}

func TestSecretsNotPrinted(t *testing.T) {
	c := Client{ID: "app", Secret: "do-not-print-me"}
	s := Start(t, Options{Clients: []Client{c}})
	tr := mustToken(t, s, url.Values{"grant_type": {"client_credentials"}}, basicAuth(c.ID, c.Secret))
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		for _, v := range []any{c, &c, Options{Clients: []Client{c}}, s} {
			out := fmt.Sprintf(verb, v)
			if strings.Contains(out, c.Secret) || strings.Contains(out, tr.AccessToken) {
				t.Errorf("%s of %T prints a secret: %s", verb, v, out)
			}
		}
	}
}
