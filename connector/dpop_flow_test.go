package connector_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/dpop"
	"github.com/connector-engine/connector/connector/internal/dpopserver"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/store/filestore"
	"github.com/connector-engine/connector/connector/token"
	"github.com/connector-engine/connector/definitions"
)

// dpopDefinition describes the DPoP test servers as an admin would: the
// authorization server on the login URL, the resource server on the base
// URL (two origins, each with its own nonce).
func dpopDefinition(t *testing.T, srv *dpopserver.Server, scheme, dpopKey string) *definitions.Definition {
	t.Helper()
	return dpopDefinitionOf(t, srv, scheme, dpopKey, "")
}

// dpopDefinitionWith is the code-flow definition with more lines of
// auth.oauth.
func dpopDefinitionWith(t *testing.T, srv *dpopserver.Server, more string) *definitions.Definition {
	t.Helper()
	return dpopDefinitionOf(t, srv, "oauth", "{}", more)
}

func dpopDefinitionOf(t *testing.T, srv *dpopserver.Server, scheme, dpopKey, more string) *definitions.Definition {
	t.Helper()
	uris := "    initiate_uri: ${LoginUrl}/authorize\n"
	if scheme == "oauth_client" {
		uris = ""
	}
	src := `name: dpop-test
title: DPoP test servers
environments:
  main:
    base_url: ` + srv.RS + `
    login_url: ` + srv.AS + `
auth:
  scheme: ` + scheme + `
  oauth:
    version: V2
` + uris + `    token_request_uri: ${LoginUrl}/token
    dpop: ` + dpopKey + `
` + more + `actions:
  me: {path: /api}
`
	set, err := definitions.Parse(nil, definitions.File{Path: "dpop.yaml", Data: []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	def, _ := set.Get("dpop-test")
	return def
}

func sealedFileStore(t *testing.T) (*filestore.Store, string) {
	t.Helper()
	key := make([]byte, store.KeySize)
	_, _ = rand.Read(key)
	sealer, err := store.NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tokens.json")
	st, err := filestore.Open(path, sealer)
	if err != nil {
		t.Fatal(err)
	}
	return st, path
}

func callAPI(t *testing.T, api *connector.API) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "/api", nil)
	resp, err := api.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("API call: %d %s", resp.StatusCode, body)
	}
	return string(body)
}

func thumbprintOf(t *testing.T, pemKey string) string {
	t.Helper()
	k, err := dpop.ParseKey(pemKey)
	if err != nil {
		t.Fatal(err)
	}
	return k.Thumbprint()
}

// TestDPoPCodeFlowRefreshAndAPI: the code flow, refreshes and API calls of
// a dpop definition, against servers that check every proof (signature,
// typ, alg, htm, htu, iat, jti never reused, ath on API calls, the
// tokens' cnf.jkt binding) and want nonces at both the token endpoint and
// the resource, with the key sealed in the store.
func TestDPoPCodeFlowRefreshAndAPI(t *testing.T) {
	srv := dpopserver.Start(t, dpopserver.Options{TokenNonce: "as-nonce", ResourceNonce: "rs-nonce", ClientID: clientID, ClientSecret: clientSecret, RequireDPoP: true})
	conn := &connector.Connection{Definition: dpopDefinition(t, srv, "oauth", "{}"), ClientID: clientID, ClientSecret: clientSecret, RedirectURI: redirectURI}
	st, path := sealedFileStore(t)
	src, err := connector.NewSource(conn, st)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	attempt, err := src.Flow().AuthCodeURL()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := src.ExchangeAndStore(ctx, attempt, approve(t, attempt.URL))
	if err != nil {
		t.Fatalf("code exchange: %v (refused: %v)", err, srv.Refusals())
	}
	if tok.TokenType != "DPoP" || tok.DPoPKey == "" {
		t.Fatalf("the token is %v", tok)
	}
	jkt := thumbprintOf(t, tok.DPoPKey)
	if srv.BoundTo(tok.AccessToken) != jkt {
		t.Fatal("the access token is not bound to the key kept with it")
	}
	// The code was bound to the attempt's key (dpop_jkt, 10), the one
	// the token is bound to and kept with.
	if q := mustQuery(t, attempt.URL); q.Get("dpop_jkt") != jkt || tok.DPoPKey != attempt.DPoPKey() || srv.Stats().BoundCodes != 1 {
		t.Errorf("the authorization request's dpop_jkt %q, the attempt's key and the token's differ (thumbprint %s)", q.Get("dpop_jkt"), jkt)
	}
	if s := srv.Stats(); s.TokenChallenges != 1 || s.ProofsAtToken != 1 {
		t.Errorf("the code exchange's nonce dance: %+v; want one use_dpop_nonce, then one accepted proof", s)
	}

	// Sealed at rest: the file holds neither the key nor the tokens.
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	keyBody := strings.Split(tok.DPoPKey, "\n")[1]
	for _, secret := range []string{"PRIVATE KEY", keyBody[:20], tok.AccessToken, tok.RefreshToken} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("the store file holds %q in clear", secret)
		}
	}

	api, err := connector.NewAPI(conn, st, &connector.APIOptions{Source: src})
	if err != nil {
		t.Fatal(err)
	}
	if body := callAPI(t, api); !strings.Contains(body, `"as":"dpop"`) {
		t.Errorf("the API call was accepted as %s", body)
	}
	if s := srv.Stats(); s.ResourceChallenges != 1 || s.APIOK != 1 {
		t.Errorf("the resource's nonce dance: %+v", s)
	}
	callAPI(t, api) // the resource's nonce is kept: no second challenge
	if s := srv.Stats(); s.ResourceChallenges != 1 || s.APIOK != 2 {
		t.Errorf("a second call: %+v", s)
	}

	// Refresh: the same key, so the provider binds the new tokens to the
	// same thumbprint; and both servers change their nonces.
	srv.RotateNonces()
	renewed, err := src.Refresh(ctx)
	if err != nil {
		t.Fatalf("refresh: %v (refused: %v)", err, srv.Refusals())
	}
	if renewed.AccessToken == tok.AccessToken || renewed.DPoPKey != tok.DPoPKey || srv.BoundTo(renewed.AccessToken) != jkt {
		t.Errorf("the refreshed token is not bound to the same key")
	}
	callAPI(t, api)
	if s := srv.Stats(); s.TokenChallenges != 2 || s.ResourceChallenges != 2 || s.APIOK != 3 || s.TokensIssued != 2 {
		t.Errorf("after new nonces: %+v", s)
	}
	if r := srv.Refusals(); len(r) != 0 {
		t.Errorf("the servers refused: %v", r)
	}

	// The record read back carries the key; printed, it does not show it.
	rec, err := st.Get(ctx, conn.Key())
	if err != nil || rec.Token.DPoPKey != tok.DPoPKey {
		t.Fatalf("the store read back: %v", err)
	}
	for _, s := range []string{fmt.Sprint(rec), fmt.Sprintf("%+v", rec), fmt.Sprintf("%#v", rec), fmt.Sprintf("%v", rec.Token), fmt.Sprint(renewed)} {
		if strings.Contains(s, keyBody[:20]) || strings.Contains(s, "PRIVATE") {
			t.Errorf("printing the record shows the key: %s", s)
		}
	}
}

// A provider that declines DPoP answers token_type Bearer (RFC 9449 5):
// the API calls send a bearer token, without a proof.
func TestDPoPDeclinedIsBearer(t *testing.T) {
	srv := dpopserver.Start(t, dpopserver.Options{Decline: true})
	conn := &connector.Connection{Definition: dpopDefinition(t, srv, "oauth_client", "{algorithm: ES384}"), ClientID: clientID, ClientSecret: clientSecret}
	api, err := connector.NewAPI(conn, store.NewMemory(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if body := callAPI(t, api); !strings.Contains(body, `"as":"bearer"`) {
		t.Errorf("accepted as %s", body)
	}
	if s := srv.Stats(); s.ProofsAtToken != 1 || s.BearerIssued != 1 || s.BearerAPIOK != 1 {
		t.Errorf("%+v", s)
	}
	if r := srv.Refusals(); len(r) != 0 {
		t.Errorf("refused: %v", r)
	}
}

// Client credentials with RSA-PSS proofs: each fetched token gets a key of
// its own, and calls sign with the key of the token in hand.
func TestDPoPClientCredentials(t *testing.T) {
	srv := dpopserver.Start(t, dpopserver.Options{ResourceNonce: "rs", RequireDPoP: true})
	conn := &connector.Connection{Definition: dpopDefinition(t, srv, "oauth_client", "{algorithm: PS256}"), ClientID: clientID, ClientSecret: clientSecret}
	st := store.NewMemory()
	api, err := connector.NewAPI(conn, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	callAPI(t, api)
	first, _ := api.Source().TokenContext(context.Background())
	if k, err := dpop.ParseKeyFor(first.DPoPKey, "PS256"); err != nil || k.Algorithm() != "PS256" || srv.BoundTo(first.AccessToken) != k.Thumbprint() {
		t.Fatalf("the token's key: %v, %v", k, err)
	}
	next, err := api.Source().Refresh(context.Background()) // a fetch anew
	if err != nil {
		t.Fatal(err)
	}
	callAPI(t, api)
	if next.DPoPKey == first.DPoPKey || srv.BoundTo(next.AccessToken) != thumbprintOf(t, next.DPoPKey) {
		t.Errorf("the second fetch's key")
	}
	if s := srv.Stats(); s.APIOK != 2 || s.ResourceChallenges != 1 || len(srv.Refusals()) != 0 {
		t.Errorf("%+v, refused %v", s, srv.Refusals())
	}
}

// A token stored before the definition had dpop has no key: it is sent
// as a bearer token, and refreshed without a proof (its refresh token was
// never bound), so it keeps working.
func TestDPoPStoredBearerTokenKeepsWorking(t *testing.T) {
	srv := dpopserver.Start(t, dpopserver.Options{})
	conn := &connector.Connection{Definition: dpopDefinition(t, srv, "oauth", "{}"), ClientID: clientID, ClientSecret: clientSecret, RedirectURI: redirectURI}
	st := store.NewMemory()
	src, err := connector.NewSource(conn, st)
	if err != nil {
		t.Fatal(err)
	}
	at, rt := srv.IssueBearer()
	ctx := context.Background()
	if err := src.Store(ctx, &token.Token{AccessToken: at, RefreshToken: rt, TokenType: "bearer", Expiry: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	api, err := connector.NewAPI(conn, st, &connector.APIOptions{Source: src})
	if err != nil {
		t.Fatal(err)
	}
	callAPI(t, api)
	renewed, err := src.Refresh(ctx)
	if err != nil {
		t.Fatalf("refresh: %v (refused %v)", err, srv.Refusals())
	}
	callAPI(t, api)
	if renewed.DPoPKey != "" || renewed.Type() != "Bearer" {
		t.Errorf("the refreshed token: %v", renewed)
	}
	if s := srv.Stats(); s.BearerAPIOK != 2 || s.ProofsAtToken != 0 || len(srv.Refusals()) != 0 {
		t.Errorf("%+v, refused %v", s, srv.Refusals())
	}
}

// A resource that wants a new nonce at every request: the call gets one
// retry with the nonce (dpop.Transport), then the 401 is the answer; the
// token is not renewed, since a refresh cannot fix a nonce.
func TestDPoPNonceRefusalSpendsNoRefresh(t *testing.T) {
	srv := dpopserver.Start(t, dpopserver.Options{})
	calls := 0
	rs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		w.Header().Set("DPoP-Nonce", dpopserver.Random())
		w.Header().Set("WWW-Authenticate", `DPoP error="use_dpop_nonce"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer rs.Close()
	srv.RS = rs.URL
	conn := &connector.Connection{Definition: dpopDefinition(t, srv, "oauth_client", "{}"), ClientID: clientID, ClientSecret: clientSecret}
	api, err := connector.NewAPI(conn, store.NewMemory(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, "/api", nil)
	resp, err := api.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || calls != 2 || srv.Stats().TokensIssued != 1 {
		t.Errorf("HTTP %d after %d calls, %d tokens issued; want the 401 after two calls and one token", resp.StatusCode, calls, srv.Stats().TokensIssued)
	}
}

func mustQuery(t *testing.T, raw string) url.Values {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

// TestDPoPBoundCodeResumed: a server starts the authorization in one
// process and receives the callback in another. The code is bound to the
// attempt's key (dpop_jkt), so the other process exchanges it with that key
// (Attempt.DPoPKey, kept sealed with the verifier, given back through
// Flow.WithDPoPKey); a fresh key is refused. parameters: {dpop_jkt: false}
// leaves the code unbound.
func TestDPoPBoundCodeResumed(t *testing.T) {
	srv := dpopserver.Start(t, dpopserver.Options{ClientID: clientID, ClientSecret: clientSecret, RequireDPoP: true})
	conn := &connector.Connection{Definition: dpopDefinition(t, srv, "oauth", "{}"), ClientID: clientID, ClientSecret: clientSecret, RedirectURI: redirectURI}
	ctx := context.Background()
	start := func() (*connector.Attempt, url.Values) {
		src, err := connector.NewSource(conn, store.NewMemory())
		if err != nil {
			t.Fatal(err)
		}
		a, err := src.Flow().AuthCodeURL()
		if err != nil {
			t.Fatal(err)
		}
		return a, approve(t, a.URL)
	}
	other := func() *connector.Flow { // the process receiving the callback
		src, err := connector.NewSource(conn, store.NewMemory())
		if err != nil {
			t.Fatal(err)
		}
		return src.Flow()
	}

	a, cb := start()
	f := other()
	if _, err := f.Exchange(ctx, f.ResumeAttempt(a.State, a.Verifier(), a.Expires), cb); err == nil {
		t.Fatal("a bound code was exchanged with a key other than its own")
	}
	if r := srv.Refusals(); len(r) != 1 || !strings.Contains(r[0], "dpop_jkt") {
		t.Fatalf("the provider refused %v; want the code bound to another key", r)
	}

	a, cb = start()
	f, err := other().WithDPoPKey(a.DPoPKey())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := f.Exchange(ctx, f.ResumeAttempt(a.State, a.Verifier(), a.Expires), cb)
	if err != nil {
		t.Fatalf("the resumed exchange with the attempt's key: %v (refused: %v)", err, srv.Refusals())
	}
	if tok.DPoPKey != a.DPoPKey() || srv.BoundTo(tok.AccessToken) != thumbprintOf(t, a.DPoPKey()) {
		t.Error("the token is not bound to the key its code was bound to")
	}
	if strings.Contains(fmt.Sprint(a), "PRIVATE") || strings.Contains(fmt.Sprintf("%+v", *a), "PRIVATE") {
		t.Error("printing the attempt shows its DPoP key")
	}

	// Turned off: no dpop_jkt, and a key of the exchange's own.
	unbound := &connector.Connection{Definition: dpopDefinitionWith(t, srv, "    parameters: {dpop_jkt: false}\n"), ClientID: clientID, ClientSecret: clientSecret, RedirectURI: redirectURI}
	src, err := connector.NewSource(unbound, store.NewMemory())
	if err != nil {
		t.Fatal(err)
	}
	a, err = src.Flow().AuthCodeURL()
	if err != nil {
		t.Fatal(err)
	}
	if mustQuery(t, a.URL).Has("dpop_jkt") || a.DPoPKey() != "" {
		t.Errorf("parameters: {dpop_jkt: false} still binds the code: %s", a.URL)
	}
	if _, err := src.ExchangeAndStore(ctx, a, approve(t, a.URL)); err != nil {
		t.Fatalf("the unbound code's exchange: %v (refused: %v)", err, srv.Refusals())
	}
}
