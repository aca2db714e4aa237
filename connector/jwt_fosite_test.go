package connector_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/internal/fositeserver"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/definitions"
)

// testKeys are an RSA key (PKCS #1 PEM) and an EC P-256 key (PKCS #8 PEM).
func testKeys(t testing.TB) []struct {
	name, pem, alg string
	pub            crypto.PublicKey
} {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p8, _ := x509.MarshalPKCS8PrivateKey(ek)
	return []struct {
		name, pem, alg string
		pub            crypto.PublicKey
	}{
		{"RSA", string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)})), "RS256", &rk.PublicKey},
		{"EC", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8})), "ES256", &ek.PublicKey},
	}
}

func jwtDefinition(t *testing.T, base, oauth string) *definitions.Definition {
	t.Helper()
	src := `name: jwt-test
title: JWT test
base_url: ` + base + `
fields:
  PrivateKey: {required: true, secret: true}
auth:
  scheme: oauth_client
  oauth:
    version: V2
    token_request_uri: ${BaseUrl}/oauth/token
    scopes: [read]
` + oauth
	set, err := definitions.Parse(nil, definitions.File{Path: "jwt.yaml", Data: []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := set.Get("jwt-test")
	return d
}

// private_key_jwt client authentication (RFC 7523 2.2) with client
// credentials, and the JWT bearer grant (2.1), against fosite, with RSA and
// EC keys from a PEM field. Each token request carries a fresh assertion
// (fosite refuses a jti used before), and no key or assertion is printed.
func TestAssertionsAgainstFosite(t *testing.T) {
	for _, k := range testKeys(t) {
		t.Run("private_key_jwt/"+k.name, func(t *testing.T) {
			srv := fositeserver.Start(t, fositeserver.Options{Clients: []fositeserver.Client{{ID: "svc-client", Scopes: []string{"read"},
				GrantTypes: []string{"client_credentials"}, PublicKey: k.pub, KeyAlgorithm: k.alg}}})
			def := jwtDefinition(t, srv.URL, "    token_request: {client_auth: private_key_jwt}\n    assertion:\n      private_key: ${PrivateKey}\n")
			conn := &connector.Connection{Definition: def, ClientID: "svc-client", Fields: map[string]string{"PrivateKey": k.pem}}
			assertTokens(t, srv, conn, k.pem)
		})
		t.Run("jwt_bearer/"+k.name, func(t *testing.T) {
			srv := fositeserver.Start(t, fositeserver.Options{JWTIssuers: []fositeserver.JWTIssuer{{Issuer: "svc@acme.iam", Subject: "svc@acme.iam",
				KeyID: "key-1", Algorithm: k.alg, PublicKey: k.pub, Scopes: []string{"read"}}}})
			def := jwtDefinition(t, srv.URL, "    grant_type: jwt_bearer\n    assertion:\n      private_key: ${PrivateKey}\n      key_id: key-1\n      lifetime: 10m\n")
			conn := &connector.Connection{Definition: def, ClientID: "svc@acme.iam", Fields: map[string]string{"PrivateKey": k.pem}}
			assertTokens(t, srv, conn, k.pem)
		})
	}
}

func assertTokens(t *testing.T, srv *fositeserver.Server, conn *connector.Connection, key string) {
	t.Helper()
	src, err := connector.NewSource(conn, store.NewMemory())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	first, err := src.TokenContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	second, err := src.Refresh(ctx) // a second assertion: its jti must be new
	if err != nil {
		t.Fatal(err)
	}
	if first.AccessToken == second.AccessToken {
		t.Error("the second request returned the first token")
	}
	api, err := connector.NewAPI(conn, store.NewMemory(), &connector.APIOptions{Source: src})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := api.Client().Get("/api/me")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/api/me: %d", resp.StatusCode)
	}
	keyBody := strings.Split(key, "\n")[1]
	for _, s := range []string{fmt.Sprintf("%v %+v %#v", src, src.Flow(), conn), fmt.Sprint(first)} {
		if strings.Contains(s, keyBody) || strings.Contains(s, first.AccessToken) {
			t.Errorf("a secret printed: %s", s)
		}
	}
}
