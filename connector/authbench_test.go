package connector_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/jwtauth"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/token"
	"github.com/connector-engine/connector/definitions"
)

// answer is a base transport that answers 200 at once, so that a benchmark
// measures the engine's transport chain (auth included) and no network.
type answer struct{}

func (answer) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		r.Body.Close()
	}
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("{}")), Request: r}, nil
}

func benchDefinition(b *testing.B, auth string) *definitions.Definition {
	b.Helper()
	src := "name: bench\ntitle: Bench\nbase_url: https://api.bench.test\nfields:\n  Key: {}\n  Secret: {secret: true}\n  Token: {}\n  TokenSecret: {secret: true}\n  PrivateKey: {secret: true}\nauth:\n" + auth
	set, err := definitions.Parse(nil, definitions.File{Path: "bench.yaml", Data: []byte(src)})
	if err != nil {
		b.Fatal(err)
	}
	d, _ := set.Get("bench")
	return d
}

// BenchmarkAuthPerRequest compares what each scheme costs per API request
// in the same run, against the OAuth 2.0 bearer transport (a cached token
// placed in a header) as the baseline: OAuth 1.0a signs every request
// (nonce, base string, HMAC or RSA), a session token is placed like a
// bearer token. The base transport answers at once (no network).
func BenchmarkAuthPerRequest(b *testing.B) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	fields := map[string]string{"Key": "ck", "Secret": "consumer-secret", "Token": "tok", "TokenSecret": "token-secret", "PrivateKey": pemKey}
	oauth1 := func(method, secrets string) string {
		return "  scheme: oauth1\n  oauth1:\n    signature_method: " + method + "\n    consumer_key: ${Key}\n" + secrets + "    token: ${Token}\n"
	}
	hmacSecrets := "    consumer_secret: ${Secret}\n    token_secret: ${TokenSecret}\n"
	cases := []struct {
		name, auth string
		seed       bool // store a token first
	}{
		{"bearer", "  scheme: oauth\n  oauth:\n    version: V2\n    initiate_uri: ${BaseUrl}/authorize\n    token_request_uri: ${BaseUrl}/token\n", true},
		{"session", "  scheme: session\n  session:\n    login_uri: ${BaseUrl}/login\n    token_path: token\n", true},
		{"oauth1-hmac-sha1", oauth1("HMAC-SHA1", hmacSecrets), false},
		{"oauth1-hmac-sha256", oauth1("HMAC-SHA256", hmacSecrets), false},
		{"oauth1-rsa-sha1", oauth1("RSA-SHA1", "    private_key: ${PrivateKey}\n"), false},
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	p8, _ := x509.MarshalPKCS8PrivateKey(ek)
	ecPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}))
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			conn := &connector.Connection{Definition: benchDefinition(b, c.auth), Fields: fields,
				ClientID: "id", ClientSecret: "secret", RedirectURI: "http://127.0.0.1:1/cb"}
			if c.name != "bearer" {
				conn.ClientID, conn.ClientSecret, conn.RedirectURI = "", "", ""
			}
			api, err := connector.NewAPI(conn, store.NewMemory(), &connector.APIOptions{Base: answer{}})
			if err != nil {
				b.Fatal(err)
			}
			if c.seed {
				if err := api.Source().Store(context.Background(), &token.Token{AccessToken: "bench-token", Expiry: time.Now().Add(24 * time.Hour)}); err != nil {
					b.Fatal(err)
				}
			}
			client := api.Client()
			req, _ := http.NewRequest(http.MethodGet, "https://api.bench.test/v1/projects?company_id=42&page=3", nil)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
			}
		})
	}
	// private_key_jwt signs one client assertion per token request; these
	// measure the assertion alone (RS256 and ES256), to set against the
	// bearer request above.
	for _, k := range []struct{ name, pem string }{{"private_key_jwt-assertion-rs256", pemKey}, {"private_key_jwt-assertion-es256", ecPEM}} {
		b.Run(k.name, func(b *testing.B) {
			s, err := jwtauth.New(k.pem, "", "kid-1")
			if err != nil {
				b.Fatal(err)
			}
			c := jwtauth.Claims{Issuer: "client", Audience: "https://login.bench.test/oauth/token"}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Sign(c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
