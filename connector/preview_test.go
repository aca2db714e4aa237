package connector_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/definitions"
)

// TestPreviewMatchesTheRequestSent holds definitions.Preview (what render
// shows) to the requests the flow really sends, for each way token
// requests travel.
func TestPreviewMatchesTheRequestSent(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, sentRequest(r, body, "Accept", "Content-Type", "Authorization"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"access_token":"a","refresh_token":"r2","token_type":"bearer","expires_in":60}`)
	}))
	defer srv.Close()
	for _, style := range []string{"", "    token_request: {client_auth: basic}\n", "    token_request: {params: json}\n", "    token_request: {params: query}\n", "    token_request: {params: query, method: GET}\n"} {
		src := `name: preview
title: preview
base_url: ` + srv.URL + `
auth:
  scheme: oauth
  oauth:
    version: V2
    initiate_uri: ${BaseUrl}/authorize?prompt=consent
    token_request_uri: ${BaseUrl}/token?audience=api
    refresh_uri: ${BaseUrl}/refresh
    scopes: [read, write]
` + style
		set, err := definitions.Parse(nil, definitions.File{Path: "p.yaml", Data: []byte(src)})
		if err != nil {
			t.Fatal(err)
		}
		def, _ := set.Get("preview")
		conn := &connector.Connection{Definition: def, ClientID: "id", ClientSecret: "s3:cr%t", RedirectURI: "http://127.0.0.1:9/cb"}
		flow, err := connector.NewFlow(conn)
		if err != nil {
			t.Fatal(err)
		}
		got = nil
		ctx := context.Background()
		if _, err := flow.ExchangeCode(ctx, "the-code", "the-verifier"); err != nil {
			t.Fatal(err)
		}
		if _, err := flow.Refresh(ctx, "the-refresh"); err != nil {
			t.Fatal(err)
		}
		vals, _ := def.Values("", map[string]string{"ClientId": "id", "ClientSecret": "s3:cr%t", "RedirectUri": "http://127.0.0.1:9/cb", "Scope": "read write", "code": "the-code", "CodeVerifier": "the-verifier", "refreshToken": "the-refresh"})
		for i, key := range []string{"token_request_uri", "refresh_uri"} {
			p, err := def.Preview("", key, vals, true)
			if err != nil {
				t.Fatal(err)
			}
			if p.String() != got[i] {
				t.Errorf("%s%s: render shows\n%s\nthe flow sent\n%s", style, key, p, got[i])
			}
			red, _ := def.Preview("", key, vals, false)
			if s := red.String(); strings.Contains(s, "s3") || strings.Contains(s, "the-code") || strings.Contains(s, "the-refresh") || strings.Contains(s, "the-verifier") {
				t.Errorf("the redacted preview shows a secret:\n%s", s)
			}
		}
	}
}

// TestPreviewAssertionAuth holds render's token requests to what the flow
// sends when a signed JWT stands in for the secret: private_key_jwt client
// authentication (RFC 7523 2.2) carries client_assertion_type and
// client_assertion, never client_secret; the JWT bearer grant (2.1) carries
// the assertion as the grant. The flow's fresh JWT is replaced by the
// preview's stand-in, since no two are alike.
func TestPreviewAssertionAuth(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	var got []string
	var jwts []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		s := r.Method + " http://" + r.Host + r.URL.RequestURI() + "\nAccept: " + r.Header.Get("Accept") + "\nContent-Type: " + r.Header.Get("Content-Type") + "\n\n" + string(body) + "\n"
		for _, k := range []string{"client_assertion", "assertion"} {
			if v := form.Get(k); v != "" {
				jwts = append(jwts, v)
				s = strings.Replace(s, url.QueryEscape(v), definitions.PreviewAssertion, 1)
			}
		}
		got = append(got, s)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"access_token":"a","token_type":"bearer","expires_in":60}`)
	}))
	defer srv.Close()
	for _, tc := range []struct{ name, oauth string }{
		{"private_key_jwt", "    token_request: {client_auth: private_key_jwt}\n    assertion:\n      private_key: ${PrivateKey}\n"},
		{"jwt_bearer", "    grant_type: jwt_bearer\n    assertion:\n      private_key: ${PrivateKey}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			def := jwtDefinition(t, srv.URL, tc.oauth)
			conn := &connector.Connection{Definition: def, ClientID: "svc", Fields: map[string]string{"PrivateKey": pemKey}}
			flow, err := connector.NewFlow(conn)
			if err != nil {
				t.Fatal(err)
			}
			got, jwts = nil, nil
			if tc.name == "jwt_bearer" {
				_, err = flow.JWTBearer(context.Background())
			} else {
				_, err = flow.ClientCredentials(context.Background())
			}
			if err != nil {
				t.Fatal(err)
			}
			vals, _ := def.Values("", map[string]string{"ClientId": "svc", "PrivateKey": pemKey})
			p, err := def.Preview("", "token_request_uri", vals, true)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || p.String() != got[0] {
				t.Fatalf("render shows\n%s\nthe flow sent\n%v", p, got)
			}
			red, _ := def.Preview("", "token_request_uri", vals, false)
			s := red.String()
			if strings.Contains(s, "client_secret") || strings.Contains(s, jwts[0]) || strings.Contains(s, "PRIVATE KEY") {
				t.Errorf("the redacted preview shows a secret or a client_secret:\n%s", s)
			}
			want := "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
			if tc.name == "jwt_bearer" {
				want = "assertion=***"
			}
			if !strings.Contains(s, want) || !strings.Contains(s, "assertion=***") {
				t.Errorf("the redacted preview lacks %s and assertion=***:\n%s", want, s)
			}
		})
	}
}

// TestPreviewMatchesThePushedRequest holds render to the pushed
// authorization request (par_uri) the flow sends and to the browser URL
// that replaces the parameters, with the initiate URI's own query pushed.
func TestPreviewMatchesThePushedRequest(t *testing.T) {
	var mu sync.Mutex
	var got []string
	var form url.Values
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, sentRequest(r, body, "Accept", "Content-Type", "Authorization"))
		form, _ = url.ParseQuery(string(body))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"request_uri":"urn:ietf:params:oauth:request_uri:abc","expires_in":60}`)
	}))
	defer srv.Close()
	for _, style := range []string{"", "    token_request: {client_auth: basic}\n", "    token_request: {params: json}\n"} {
		src := `name: preview
title: preview
base_url: ` + srv.URL + `
auth:
  scheme: oauth
  oauth:
    version: V2
    initiate_uri: ${BaseUrl}/authorize?prompt=consent
    par_uri: ${BaseUrl}/par?audience=api
    token_request_uri: ${BaseUrl}/token
    scopes: [read, write]
` + style
		set, err := definitions.Parse(nil, definitions.File{Path: "p.yaml", Data: []byte(src)})
		if err != nil {
			t.Fatal(err)
		}
		def, _ := set.Get("preview")
		flow, err := connector.NewFlow(&connector.Connection{Definition: def, ClientID: "id", ClientSecret: "s3:cr%t", RedirectURI: "http://127.0.0.1:9/cb"})
		if err != nil {
			t.Fatal(err)
		}
		got = nil
		a, err := flow.AuthCodeURLContext(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || form.Get("prompt") != "consent" || form.Get("audience") != "api" {
			t.Fatalf("%spushed %q", style, got)
		}
		vals, _ := def.Values("", map[string]string{"ClientId": "id", "ClientSecret": "s3:cr%t", "RedirectUri": "http://127.0.0.1:9/cb", "Scope": "read write", "State": form.Get("state"), "CodeChallenge": form.Get("code_challenge")})
		p, err := def.Preview("", "par_uri", vals, true)
		if err != nil {
			t.Fatal(err)
		}
		if p.String() != got[0] {
			t.Errorf("%spar_uri: render shows\n%s\nthe flow sent\n%s", style, p, got[0])
		}
		b, _ := def.Preview("", "initiate_uri", vals, false)
		if want := strings.Replace(b.URL, url.QueryEscape(definitions.PreviewRequestURI), url.QueryEscape("urn:ietf:params:oauth:request_uri:abc"), 1); a.URL != want {
			t.Errorf("%sinitiate_uri: render shows %s, the flow built %s", style, b.URL, a.URL)
		}
		// Not "s3" alone: the random state or challenge may contain it.
		if red, _ := def.Preview("", "par_uri", vals, false); strings.Contains(red.String(), "s3:cr%t") || strings.Contains(red.String(), url.QueryEscape("s3:cr%t")) {
			t.Errorf("the redacted preview shows the secret:\n%s", red)
		}
	}
}

// sentRequest writes a request as the preview tests compare it with
// definitions.Preview: the request line with the full URL, the named
// headers that are set, then the body after a blank line, if any.
func sentRequest(r *http.Request, body []byte, headers ...string) string {
	var b strings.Builder
	b.WriteString(r.Method + " http://" + r.Host + r.URL.RequestURI() + "\n")
	for _, h := range headers {
		if v := r.Header.Get(h); v != "" {
			b.WriteString(h + ": " + v + "\n")
		}
	}
	if len(body) > 0 {
		b.WriteString("\n" + string(body) + "\n")
	}
	return b.String()
}
