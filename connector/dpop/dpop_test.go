package dpop_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/connector-engine/connector/connector/dpop"
	"github.com/connector-engine/connector/connector/internal/dpopserver"
)

// The RFCs' own examples: RFC 9449 6.1's jkt of the 4.1 proof's key, RFC
// 9449 7.1's ath of its access token, and RFC 7638 3.1's RSA thumbprint.
func TestRFCVectors(t *testing.T) {
	for _, v := range []struct{ jwk, want string }{
		{`{"kty":"EC","x":"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs","y":"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA","crv":"P-256"}`, "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"},
		{`{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB"}`, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"},
	} {
		var k jose.JSONWebKey
		if err := json.Unmarshal([]byte(v.jwk), &k); err != nil {
			t.Fatal(err)
		}
		if got, err := dpop.Thumbprint(k); err != nil || got != v.want {
			t.Errorf("thumbprint %s, %v; want %s", got, err, v.want)
		}
	}
	if got := dpop.AccessTokenHash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"); got != "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo" {
		t.Errorf("ath %s", got)
	}
}

// 4.2: the header and claims of a proof, and what it must not carry.
func TestProofShape(t *testing.T) {
	k, err := dpop.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse("HTTPS://Server.Example.com/api/v1/items?page=2&secret=x#frag")
	now := time.Unix(1562262616, 0)
	p, err := k.Proof("GET", u, "the-token", "the-nonce", now)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(p, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %d parts", len(parts))
	}
	var h map[string]any
	var c map[string]any
	decode(t, parts[0], &h)
	decode(t, parts[1], &c)
	jwk, _ := h["jwk"].(map[string]any)
	if h["typ"] != "dpop+jwt" || h["alg"] != "ES256" || jwk == nil || jwk["d"] != nil || jwk["kty"] != "EC" {
		t.Errorf("header %v", h)
	}
	if c["htm"] != "GET" || c["htu"] != "https://server.example.com/api/v1/items" || c["iat"] != float64(now.Unix()) ||
		c["ath"] != dpop.AccessTokenHash("the-token") || c["nonce"] != "the-nonce" || len(c["jti"].(string)) < 22 {
		t.Errorf("claims %v", c)
	}
	p2, _ := k.Proof("POST", u, "", "", now)
	c = nil
	decode(t, strings.Split(p2, ".")[1], &c)
	if _, has := c["ath"]; has {
		t.Errorf("a token request's proof carries ath: %v", c)
	}
	if _, has := c["nonce"]; has {
		t.Errorf("a proof without a nonce from the server carries one: %v", c)
	}
}

func decode(t *testing.T, part string, v any) {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(part)
	if err == nil {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// The key is a secret: no verb prints it, and PEM round-trips it (the
// store keeps it with the token, so a refresh signs with the same key).
func TestKeyStaysSecretAndRoundTrips(t *testing.T) {
	k, err := dpop.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pemKey, err := k.PEM()
	if err != nil {
		t.Fatal(err)
	}
	body := strings.Split(pemKey, "\n")[1]
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%+v", k), fmt.Sprintf("%#v", k), fmt.Sprintf("%s", k), fmt.Sprintf("%v", []any{k})} {
		if strings.Contains(s, body[:16]) || strings.Contains(s, "PRIVATE") || !strings.Contains(s, k.Thumbprint()) {
			t.Errorf("the key prints as %q", s)
		}
	}
	again, err := dpop.ParseKey(pemKey)
	if err != nil || again.Thumbprint() != k.Thumbprint() {
		t.Fatalf("PEM round trip: %v, %v", again, err)
	}
	if _, err := dpop.ParseKey("not a key " + body); err == nil || strings.Contains(err.Error(), body[:16]) {
		t.Errorf("a bad key: %v", err)
	}
}

func TestNonces(t *testing.T) {
	var n dpop.Nonces
	a, _ := url.Parse("https://AS.example/token?x=1")
	b, _ := url.Parse("https://as.example/other")
	c, _ := url.Parse("https://rs.example/api")
	if !n.Remember(a, "n-1") || n.Get(b) != "n-1" || n.Get(c) != "" {
		t.Errorf("nonces are per origin: %q %q", n.Get(b), n.Get(c))
	}
	for _, bad := range []string{"", "a b", "a\r\nX: y", `a"b`, strings.Repeat("x", dpop.MaxNonce+1)} {
		if n.Remember(a, bad) {
			t.Errorf("accepted nonce %q", bad)
		}
	}
	if n.Get(a) != "n-1" {
		t.Errorf("a refused nonce replaced the last one")
	}
	if !dpop.UseNonceChallenge([]string{`Bearer realm="x"`, `DPoP error="use_dpop_nonce", error_description="x"`}) || dpop.UseNonceChallenge([]string{`DPoP error="invalid_token"`}) || dpop.UseNonceChallenge([]string{`Bearer error="use_dpop_nonce"`}) {
		t.Error("UseNonceChallenge")
	}
}

// tokenRequest is a token request through dpop.TokenTransport: a proof,
// and one more attempt when the server answers 400 use_dpop_nonce (8).
func tokenRequest(t *testing.T, k *dpop.Key, nonces *dpop.Nonces, base string, form url.Values) (map[string]any, int) {
	t.Helper()
	hc := &http.Client{Transport: &dpop.TokenTransport{Key: k, Nonces: nonces}, Timeout: 10 * time.Second}
	resp, err := hc.PostForm(base+"/token", form) // strings.Reader body: GetBody is set
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	body, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(body, &out)
	return out, resp.StatusCode
}

func TestAgainstProofCheckingServer(t *testing.T) {
	for _, nonce := range []string{"", "first-nonce"} {
		t.Run("nonce="+nonce, func(t *testing.T) {
			srv := dpopserver.Start(t, dpopserver.Options{TokenNonce: nonce, ResourceNonce: nonce})
			k, err := dpop.GenerateKey()
			if err != nil {
				t.Fatal(err)
			}
			nonces := &dpop.Nonces{}
			tok, status := tokenRequest(t, k, nonces, srv.AS, url.Values{"grant_type": {"client_credentials"}})
			if status != 200 || tok["token_type"] != "DPoP" {
				t.Fatalf("token: %d %v (refused: %v)", status, tok, srv.Refusals())
			}
			at := tok["access_token"].(string)
			if srv.BoundTo(at) != k.Thumbprint() {
				t.Fatalf("the token is not bound to the key (cnf.jkt)")
			}
			var sent []string
			tr := &dpop.Transport{Key: k, Nonces: nonces, Token: func(*http.Request) (string, error) { return at, nil },
				Base: recordProofs(&sent)}
			hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			get := func(c *http.Client) int {
				req, _ := http.NewRequestWithContext(context.Background(), "GET", srv.RS+"/api?q=1", nil)
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp.StatusCode
			}
			if s := get(hc); s != 200 {
				t.Fatalf("API call: %d (refused: %v)", s, srv.Refusals())
			}
			// The resource server changes its nonce: one 401
			// use_dpop_nonce, retried with the new one.
			srv.RotateNonces()
			before := len(sent)
			if s := get(hc); s != 200 || (nonce != "" && len(sent)-before != 2) {
				t.Fatalf("after a new nonce: %d, %d proofs sent", s, len(sent)-before)
			}
			// A replayed proof is refused.
			replay, _ := http.NewRequest("GET", srv.RS+"/api", nil)
			replay.Header.Set("Authorization", "DPoP "+at)
			replay.Header.Set("DPoP", sent[len(sent)-1])
			resp, err := http.DefaultClient.Do(replay)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 401 || !strings.Contains(strings.Join(srv.Refusals(), ";"), "replayed") {
				t.Errorf("a replayed proof: %d, refused %v", resp.StatusCode, srv.Refusals())
			}
			// The token with another key's proofs is refused.
			other, _ := dpop.GenerateKey()
			if s := get(&http.Client{Transport: &dpop.Transport{Key: other, Nonces: nonces, Token: tr.Token}}); s != 401 {
				t.Errorf("the token with another key: %d", s)
			}
			// Refresh with the key read back from its PEM (as the store
			// keeps it) is accepted; with another key it is not.
			pemKey, _ := k.PEM()
			same, _ := dpop.ParseKey(pemKey)
			srv.RotateNonces() // and the token endpoint's nonce round trip once more
			rt := tok["refresh_token"].(string)
			if _, status := tokenRequest(t, other, nonces, srv.AS, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}); status != 400 {
				t.Errorf("refresh with another key: %d", status)
			}
			tok2, status := tokenRequest(t, same, nonces, srv.AS, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
			if status != 200 || srv.BoundTo(tok2["access_token"].(string)) != k.Thumbprint() {
				t.Errorf("refresh with the same key: %d %v (refused %v)", status, tok2, srv.Refusals())
			}
		})
	}
}

// A request with a body is retried on use_dpop_nonce only when it can be
// sent again (GetBody), and then with the same body.
func TestTransportRetriesBodies(t *testing.T) {
	srv := dpopserver.Start(t, dpopserver.Options{TokenNonce: "n0", ResourceNonce: "n0"})
	k, _ := dpop.GenerateKey()
	nonces := &dpop.Nonces{}
	tok, status := tokenRequest(t, k, nonces, srv.AS, url.Values{"grant_type": {"client_credentials"}})
	if status != 200 {
		t.Fatal(status)
	}
	at := tok["access_token"].(string)
	srv.RotateNonces()
	var sent []string
	hc := &http.Client{Transport: &dpop.Transport{Key: k, Nonces: nonces, Base: recordProofs(&sent), Token: func(*http.Request) (string, error) { return at, nil }}}
	resp, err := hc.Post(srv.RS+"/api", "application/json", strings.NewReader(`{"a":1}`)) // strings.Reader: GetBody is set
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || len(sent) != 2 {
		t.Errorf("POST with a replayable body: %d after %d proofs", resp.StatusCode, len(sent))
	}
	srv.RotateNonces()
	sent = nil
	req, _ := http.NewRequest("POST", srv.RS+"/api", io.NopCloser(strings.NewReader(`{}`))) // no GetBody
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || len(sent) != 1 {
		t.Errorf("POST with a one-shot body: %d after %d proofs; want the 401 handed back", resp.StatusCode, len(sent))
	}
}

type proofRecorder struct {
	sent *[]string
}

func (p proofRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	*p.sent = append(*p.sent, r.Header.Get("DPoP"))
	return http.DefaultTransport.RoundTrip(r)
}

func recordProofs(sent *[]string) http.RoundTripper { return proofRecorder{sent} }

// The test server's check refuses what 4.3 says to refuse, so the tests
// above cannot pass by it accepting anything.
func TestServerRefusesBadProofs(t *testing.T) {
	srv := dpopserver.Start(t, dpopserver.Options{})
	k, _ := dpop.GenerateKey()
	nonces := &dpop.Nonces{}
	tok, status := tokenRequest(t, k, nonces, srv.AS, url.Values{"grant_type": {"client_credentials"}})
	if status != 200 {
		t.Fatal(status)
	}
	at := tok["access_token"].(string)
	api, _ := url.Parse(srv.RS + "/api")
	other, _ := url.Parse(srv.RS + "/other")
	for _, c := range []struct {
		name, method string
		u            *url.URL
		token        string
		at           time.Time
		want         string
	}{
		{"wrong method", "POST", api, at, time.Now(), "htm"},
		{"wrong URI", "GET", other, at, time.Now(), "htu"},
		{"old", "GET", api, at, time.Now().Add(-10 * time.Minute), "iat"},
		{"future", "GET", api, at, time.Now().Add(10 * time.Minute), "iat"},
		{"another token's hash", "GET", api, "another", time.Now(), "ath"},
	} {
		proof, err := k.Proof(c.method, c.u, c.token, "", c.at)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("GET", api.String(), nil)
		req.Header.Set("Authorization", "DPoP "+at)
		req.Header.Set("DPoP", proof)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		r := srv.Refusals()
		if resp.StatusCode != 401 || len(r) == 0 || !strings.Contains(r[len(r)-1], c.want) {
			t.Errorf("%s: %d, refusals %v", c.name, resp.StatusCode, r)
		}
	}
	// A bearer-style request without a proof, and a tampered proof.
	good, _ := k.Proof("GET", api, at, "", time.Now())
	for _, proof := range []string{"", good[:len(good)-4] + "AAAA"} {
		req, _ := http.NewRequest("GET", api.String(), nil)
		req.Header.Set("Authorization", "DPoP "+at)
		if proof != "" {
			req.Header.Set("DPoP", proof)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("proof %q accepted", proof)
		}
	}
}

// The token endpoint's nonce dance (8): one 400 use_dpop_nonce, answered
// with a second proof carrying the nonce; the nonce is then kept, so the
// next request needs no second attempt. Any other 400 comes back whole.
func TestTokenTransportNonce(t *testing.T) {
	srv := dpopserver.Start(t, dpopserver.Options{TokenNonce: "as-nonce-1"})
	k, _ := dpop.GenerateKey()
	nonces := &dpop.Nonces{}
	tok, status := tokenRequest(t, k, nonces, srv.AS, url.Values{"grant_type": {"client_credentials"}})
	if status != 200 || tok["token_type"] != "DPoP" || srv.Stats().TokenChallenges != 1 {
		t.Fatalf("first request: %d %v, %+v, refused %v", status, tok, srv.Stats(), srv.Refusals())
	}
	as, _ := url.Parse(srv.AS)
	if nonces.Get(as) != "as-nonce-1" {
		t.Errorf("the nonce is not kept for the server's origin")
	}
	if _, status := tokenRequest(t, k, nonces, srv.AS, url.Values{"grant_type": {"client_credentials"}}); status != 200 || srv.Stats().TokenChallenges != 1 {
		t.Errorf("second request: %d, %+v: the kept nonce was not used", status, srv.Stats())
	}
	_, status = tokenRequest(t, k, nonces, srv.AS, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"unknown"}})
	if status != 400 {
		t.Errorf("an invalid_grant: %d", status)
	}
	// The answer's body is the server's, read through the peek.
	hc := &http.Client{Transport: &dpop.TokenTransport{Key: k, Nonces: nonces}}
	srv.RotateNonces()
	resp, err := hc.PostForm(srv.AS+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"unknown"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(body), "invalid_grant") {
		t.Errorf("after a nonce challenge, the answer is %d %s", resp.StatusCode, body)
	}
	// A body that cannot be sent again is not: the challenge is handed back.
	srv.RotateNonces()
	req, _ := http.NewRequest("POST", srv.AS+"/token", io.NopCloser(strings.NewReader("grant_type=client_credentials")))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(body), "use_dpop_nonce") {
		t.Errorf("a one-shot body: %d %s", resp.StatusCode, body)
	}
}

// Every algorithm a definition may name makes a key whose proofs the
// server verifies, and PS256 survives the PEM round trip.
func TestAlgorithms(t *testing.T) {
	srv := dpopserver.Start(t, dpopserver.Options{})
	for _, alg := range []string{"ES256", "ES384", "ES512", "RS256", "PS256"} {
		k, err := dpop.GenerateKeyFor(alg)
		if err != nil || k.Algorithm() != alg {
			t.Fatalf("%s: %v, %v", alg, k, err)
		}
		pemKey, _ := k.PEM()
		again, err := dpop.ParseKeyFor(pemKey, alg)
		if err != nil || again.Algorithm() != alg || again.Thumbprint() != k.Thumbprint() {
			t.Errorf("%s: read back as %v, %v", alg, again, err)
		}
		tok, status := tokenRequest(t, again, &dpop.Nonces{}, srv.AS, url.Values{"grant_type": {"client_credentials"}})
		if status != 200 || srv.BoundTo(tok["access_token"].(string)) != k.Thumbprint() {
			t.Errorf("%s: %d %v, refused %v", alg, status, tok, srv.Refusals())
		}
	}
	if _, err := dpop.GenerateKeyFor("HS256"); err == nil {
		t.Error("HS256 accepted")
	}
}
