package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// render --request prints the whole token request, standard parameters
// added, secrets as ***; every unknown placeholder of a template is named.
func TestRenderRequest(t *testing.T) {
	code, out, errOut := runCLI(t, "render", "procore", "token_request_uri", "--request", "--set", "ClientId=abc", "--set", "ClientSecret=topsecret", "--set", "code=thecode", "--set", "RedirectUri=http://127.0.0.1:8765/cb")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"POST https://login.procore.com/oauth/token\n", "Content-Type: application/x-www-form-urlencoded\n", "client_secret=***", "code=***", "grant_type=authorization_code"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "topsecret") || strings.Contains(out, "thecode") {
		t.Errorf("a secret shows:\n%s", out)
	}
	code, _, errOut = runCLI(t, "render", "procore", "${BaseUrl}/x/${nope}/${nada}")
	if code != 1 || !strings.Contains(errOut, "2 unknown placeholders: ${nope}, ${nada}") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

// render --request of a private_key_jwt client shows the assertion it signs
// (type and ***), not a client secret, even when one is given.
func TestRenderRequestPrivateKeyJWT(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "kj.yaml", `name: kj
title: KJ
base_url: https://api.kj.test
fields:
  PrivateKey: {secret: true, required: true}
auth:
  scheme: oauth_client
  oauth:
    version: V2
    token_request_uri: https://auth.kj.test/token
    token_request: {client_auth: private_key_jwt}
    assertion:
      private_key: ${PrivateKey}
`)
	code, out, errOut := runCLI(t, "render", "--definitions", dir, "kj", "token_request_uri", "--request", "--set", "ClientId=abc", "--set", "ClientSecret=topsecret", "--set", "PrivateKey=KEYPEM")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := "client_assertion=***&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_id=abc&grant_type=client_credentials\n"
	if !strings.HasSuffix(out, want) {
		t.Errorf("output:\n%s\nwant it to end in %s", out, want)
	}
	if strings.Contains(out, "client_secret") || strings.Contains(out, "topsecret") || strings.Contains(out, "KEYPEM") {
		t.Errorf("a secret shows:\n%s", out)
	}
}

// render --request previews the requests of the other schemes and what
// the TLS handshake presents: a session login (its password ***), OAuth
// 1.0a's three requests (the signature ***), and for mutual TLS the client
// certificate's file and subject, the key named and never shown.
func TestRenderRequestOtherSchemes(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "acme-client", Organization: []string{"Acme"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile := writeFile(t, dir, "client.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	keyFile := writeFile(t, dir, "client.key", keyPEM)
	ex := filepath.Join("..", "..", "examples")
	for _, tc := range []struct {
		args    []string
		want    []string
		secrets []string
	}{
		{[]string{"adp", "token_request_uri", "--set", "ClientId=c", "--set", "ClientSecret=SECRET-1", "--set", "ClientCertificate=${file:" + certFile + "}", "--set", "ClientKey=${file:" + keyFile + "}"},
			[]string{"* TLS client certificate ${ClientCertificate} (" + certFile + "), presented to the token endpoint and the API: subject CN=acme-client,O=Acme, issuer CN=acme-client,O=Acme, valid until ",
				"* TLS private key ${ClientKey} (" + keyFile + "): not shown, never sent\nPOST https://accounts.adp.com/auth/oauth/v2/token\n"},
			[]string{"SECRET-1", "PRIVATE KEY", keyPEM[40:80]}},
		{[]string{"zabbix", "login_uri", "--set", "ServerUrl=https://z.example", "--set", "Username=ada", "--set", "Password=SECRET-2"},
			[]string{"POST https://z.example/api_jsonrpc.php\n", `"params":{"username":"ada","password":"***"}`}, []string{"SECRET-2"}},
		{[]string{"trello", "request_token_uri", "--set", "ApiKey=k1", "--set", "OAuthSecret=SECRET-3", "--set", "RedirectUri=http://127.0.0.1:8765/cb"},
			[]string{"POST https://trello.com/1/OAuthGetRequestToken\nAuthorization: OAuth oauth_consumer_key=\"k1\", ", `oauth_callback="http%3A%2F%2F127.0.0.1%3A8765%2Fcb", oauth_signature="***"`}, []string{"SECRET-3"}},
		{[]string{"trello", "access_token_uri", "--set", "ApiKey=k1", "--set", "OAuthSecret=SECRET-3"},
			[]string{`oauth_token="***", oauth_verifier="***", oauth_signature="***"`}, []string{"SECRET-3"}},
		{[]string{"trello", "authorize_uri", "--set", "ApiKey=k1", "--set", "OAuthSecret=SECRET-3"},
			[]string{"GET https://trello.com/1/OAuthAuthorizeToken?expiration=never&name=Connector&oauth_token=***&scope=read%2Cwrite\n"}, []string{"SECRET-3"}},
	} {
		code, out, errOut := runCLI(t, append([]string{"render", "--definitions", ex, "--request"}, tc.args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.args[:2], code, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v: output lacks %q:\n%s", tc.args[:2], w, out)
			}
		}
		for _, s := range tc.secrets {
			if strings.Contains(out+errOut, s) {
				t.Errorf("%v: a secret (%.8s...) shows:\n%s", tc.args[:2], s, out)
			}
		}
	}
}
