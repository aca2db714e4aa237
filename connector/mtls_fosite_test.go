package connector_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/internal/fositeserver"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/definitions"
)

// testCert is a client certificate and its key, as PEM and as parsed.
type testCert struct {
	certPEM, keyPEM string
	cert            *x509.Certificate
	key             *ecdsa.PrivateKey
}

// issueCert makes a client certificate for cn valid from notBefore to
// notAfter, signed by parent (self-signed when parent is nil). isCA makes
// it a CA that can sign others.
func issueCert(t testing.TB, cn string, parent *testCert, notBefore, notAfter time.Time, isCA bool) *testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn, Organization: []string{"Acme"}},
		NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		IsCA:        isCA, BasicConstraintsValid: true,
	}
	signer, signerCert := key, tmpl
	if parent != nil {
		signer, signerCert = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p8, _ := x509.MarshalPKCS8PrivateKey(key)
	return &testCert{
		certPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		keyPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8})),
		cert:    cert, key: key,
	}
}

func (c *testCert) tls() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{c.cert.Raw}, PrivateKey: c.key, Leaf: c.cert}
}

// keyBody is a line of the key's PEM: a secret that must never be printed.
func (c *testCert) keyBody() string { return strings.Split(c.keyPEM, "\n")[1] }

func mtlsDefinition(t testing.TB, base, clientAuth string, apiCalls bool) *definitions.Definition {
	t.Helper()
	src := fmt.Sprintf(`name: mtls-test
title: mTLS test
base_url: %s
fields:
  ClientCertificate: {title: Client certificate}
  ClientKey: {title: Client key, secret: true}
auth:
  scheme: oauth_client
  oauth:
    version: V2
    token_request_uri: ${BaseUrl}/oauth/token
    scopes: [read]
    token_request: {client_auth: %s}
    client_certificate:
      certificate: ${ClientCertificate}
      private_key: ${ClientKey}
      api_calls: %t
`, base, clientAuth, apiCalls)
	set, err := definitions.Parse(nil, definitions.File{Path: "mtls.yaml", Data: []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := set.Get("mtls-test")
	return d
}

// mtlsConn is a connection presenting c, whose flow trusts srv.
func mtlsConn(def *definitions.Definition, id, secret string, c *testCert) *connector.Connection {
	return &connector.Connection{Definition: def, ClientID: id, ClientSecret: secret,
		Fields: map[string]string{"ClientCertificate": c.certPEM, "ClientKey": c.keyPEM}}
}

func trusting(srv *fositeserver.Server) *http.Transport {
	return &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.RootCAs}}
}

func newMTLSSource(t testing.TB, srv *fositeserver.Server, conn *connector.Connection, rt http.RoundTripper) *connector.Source {
	t.Helper()
	src, err := connector.NewSource(conn, store.NewMemory())
	if err != nil {
		t.Fatal(err)
	}
	src.Flow().HTTPClient = &http.Client{Timeout: 30 * time.Second, Transport: rt}
	return src
}

// apiMe calls /api/me through api and returns the status and the body's client_id.
func apiMe(t testing.TB, api *connector.API) (int, string) {
	t.Helper()
	resp, err := api.Client().Get("/api/me")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var me struct {
		ClientID string `json:"client_id"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&me)
	return resp.StatusCode, me.ClientID
}

// RFC 8705 against fosite behind crypto/tls's RequireAndVerifyClientCert:
// tls_client_auth (a CA's certificate, matched by subject), self-signed
// (the registered certificate), and a secret plus the certificate (ADP).
// The token is bound to the certificate: the API answers it over the same
// certificate, and refuses it over another.
func TestMutualTLSAgainstFosite(t *testing.T) {
	now := time.Now()
	ca := issueCert(t, "Test CA", nil, now.Add(-time.Hour), now.Add(24*time.Hour), true)
	alice := issueCert(t, "alice-app", ca, now.Add(-time.Hour), now.Add(24*time.Hour), false)
	other := issueCert(t, "other-app", ca, now.Add(-time.Hour), now.Add(24*time.Hour), false)
	self := issueCert(t, "self-signed-app", nil, now.Add(-time.Hour), now.Add(24*time.Hour), false)
	cas := x509.NewCertPool()
	cas.AddCert(ca.cert)
	cas.AddCert(self.cert)

	for _, tc := range []struct {
		name, clientAuth, secret string
		client                   fositeserver.Client
		cert                     *testCert
	}{
		{"tls_client_auth", "tls_client_auth", "", fositeserver.Client{TLSSubject: alice.cert.Subject.String()}, alice},
		{"self_signed_tls_client_auth", "self_signed_tls_client_auth", "", fositeserver.Client{TLSCertificate: self.cert}, self},
		{"basic and certificate (ADP)", "basic", "s3cret-value", fositeserver.Client{TLSSubject: alice.cert.Subject.String(), Secret: "s3cret-value"}, alice},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.client.ID, tc.client.Scopes, tc.client.GrantTypes = "app", []string{"read"}, []string{"client_credentials"}
			srv := fositeserver.Start(t, fositeserver.Options{ClientCAs: cas, Clients: []fositeserver.Client{tc.client}})
			conn := mtlsConn(mtlsDefinition(t, srv.URL, tc.clientAuth, true), "app", tc.secret, tc.cert)
			src := newMTLSSource(t, srv, conn, trusting(srv))
			tok, err := src.TokenContext(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got := srv.TokenRequestCertificates(); len(got) != 1 || got[0] != tc.cert.cert.Subject.String() {
				t.Errorf("the token endpoint saw certificates %q", got)
			}
			api, err := connector.NewAPI(conn, store.NewMemory(), &connector.APIOptions{Source: src, Base: trusting(srv)})
			if err != nil {
				t.Fatal(err)
			}
			if code, id := apiMe(t, api); code != 200 || id != "app" {
				t.Errorf("/api/me over the token's certificate: %d %q", code, id)
			}

			// The same token over another certificate of the same CA, and
			// over the bound certificate without the token.
			otherRT := trusting(srv)
			otherRT.TLSClientConfig.Certificates = []tls.Certificate{other.tls()}
			req, _ := http.NewRequest("GET", srv.URL+"/api/me", nil)
			req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
			resp, err := (&http.Client{Transport: otherRT}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 401 || srv.Stats().BoundTokenRefusals != 1 {
				t.Errorf("the token over another certificate: HTTP %d, %d bound-token refusals; want 401 and 1", resp.StatusCode, srv.Stats().BoundTokenRefusals)
			}
			for _, s := range []string{fmt.Sprintf("%v %+v %#v", src, src.Flow(), conn), fmt.Sprint(tok)} {
				if strings.Contains(s, tc.cert.keyBody()) || strings.Contains(s, tok.AccessToken) || tc.secret != "" && strings.Contains(s, tc.secret) {
					t.Errorf("a secret printed: %s", s)
				}
			}
		})
	}

	// What the server refuses: no certificate at all (crypto/tls ends the
	// handshake), a certificate from a CA it does not trust (likewise), and
	// a trusted certificate with another subject (fosite: invalid_client).
	srv := fositeserver.Start(t, fositeserver.Options{ClientCAs: cas, Clients: []fositeserver.Client{
		{ID: "app", TLSSubject: alice.cert.Subject.String(), Scopes: []string{"read"}, GrantTypes: []string{"client_credentials"}}}})
	stranger := issueCert(t, "alice-app", nil, now.Add(-time.Hour), now.Add(24*time.Hour), false) // alice's subject, no trusted CA
	t.Run("refused/no certificate", func(t *testing.T) {
		d, err := definitions.Parse(nil, definitions.File{Path: "plain.yaml", Data: []byte("name: plain\ntitle: Plain\nbase_url: " + srv.URL +
			"\nauth:\n  scheme: oauth_client\n  oauth:\n    version: V2\n    token_request_uri: ${BaseUrl}/oauth/token\n")})
		if err != nil {
			t.Fatal(err)
		}
		def, _ := d.Get("plain")
		src := newMTLSSource(t, srv, &connector.Connection{Definition: def, ClientID: "app", ClientSecret: "x-secret"}, trusting(srv))
		_, err = src.TokenContext(context.Background())
		if err == nil || !strings.Contains(err.Error(), "the server wants a client certificate (mutual TLS, RFC 8705); add auth.oauth.client_certificate") {
			t.Errorf("without a certificate: %v", err)
		}
	})
	for _, c := range []struct {
		name string
		cert *testCert
		want string
	}{
		{"untrusted CA", stranger, `the server refused the client certificate (subject "CN=alice-app,O=Acme"`},
		{"wrong subject", other, "invalid_client"},
	} {
		t.Run("refused/"+c.name, func(t *testing.T) {
			src := newMTLSSource(t, srv, mtlsConn(mtlsDefinition(t, srv.URL, "tls_client_auth", false), "app", "", c.cert), trusting(srv))
			_, err := src.TokenContext(context.Background())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error with %q", err, c.want)
			}
			if strings.Contains(err.Error(), c.cert.keyBody()) {
				t.Errorf("the error shows the key: %v", err)
			}
		})
	}
	if n := srv.Stats().ClientCredentialsGrants; n != 0 {
		t.Errorf("%d tokens issued to refused clients", n)
	}
}

// Tenants never share a client certificate: two connections of one
// definition, with one HTTPClient and one API base transport given to
// both, alternate token requests and API calls. Each token request shows
// its own certificate, and each bound token works over its own: a pooled
// TLS connection of the other tenant would present the wrong one.
func TestMutualTLSTenantsNeverShareCertificate(t *testing.T) {
	now := time.Now()
	ca := issueCert(t, "Test CA", nil, now.Add(-time.Hour), now.Add(24*time.Hour), true)
	certs := []*testCert{
		issueCert(t, "tenant-a", ca, now.Add(-time.Hour), now.Add(24*time.Hour), false),
		issueCert(t, "tenant-b", ca, now.Add(-time.Hour), now.Add(24*time.Hour), false),
	}
	cas := x509.NewCertPool()
	cas.AddCert(ca.cert)
	srv := fositeserver.Start(t, fositeserver.Options{ClientCAs: cas, Clients: []fositeserver.Client{
		{ID: "a", TLSSubject: certs[0].cert.Subject.String(), Scopes: []string{"read"}, GrantTypes: []string{"client_credentials"}},
		{ID: "b", TLSSubject: certs[1].cert.Subject.String(), Scopes: []string{"read"}, GrantTypes: []string{"client_credentials"}},
	}})
	def := mtlsDefinition(t, srv.URL, "tls_client_auth", true)
	shared := trusting(srv) // one transport for both, as a careless caller would pass
	var apis []*connector.API
	var srcs []*connector.Source
	for i, id := range []string{"a", "b"} {
		conn := mtlsConn(def, id, "", certs[i])
		conn.Tenant = "tenant-" + id
		src := newMTLSSource(t, srv, conn, shared)
		api, err := connector.NewAPI(conn, store.NewMemory(), &connector.APIOptions{Source: src, Base: shared})
		if err != nil {
			t.Fatal(err)
		}
		srcs, apis = append(srcs, src), append(apis, api)
	}
	ctx := context.Background()
	var want []string
	for round := 0; round < 3; round++ {
		for i, src := range srcs {
			if _, err := src.Refresh(ctx); err != nil {
				t.Fatalf("round %d, tenant %d: %v", round, i, err)
			}
			want = append(want, certs[i].cert.Subject.String())
			if code, id := apiMe(t, apis[i]); code != 200 || id != []string{"a", "b"}[i] {
				t.Errorf("round %d: tenant %d's API call: HTTP %d as %q", round, i, code, id)
			}
		}
	}
	if got := srv.TokenRequestCertificates(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("certificates seen by the token endpoint:\n got %q\nwant %q", got, want)
	}
	if n := srv.Stats().BoundTokenRefusals; n != 0 {
		t.Errorf("%d API calls presented another tenant's certificate", n)
	}
	if shared.TLSClientConfig.GetClientCertificate != nil || len(shared.TLSClientConfig.Certificates) != 0 {
		t.Error("the caller's transport was given a certificate")
	}
}

// Every way the certificate or key can be wrong is refused before anything
// is sent, with a message that names the field and what to do, and never
// quotes the key.
func TestClientCertificateErrors(t *testing.T) {
	now := time.Now()
	good := issueCert(t, "good-app", nil, now.Add(-time.Hour), now.Add(24*time.Hour), false)
	another := issueCert(t, "another-app", nil, now.Add(-time.Hour), now.Add(24*time.Hour), false)
	expired := issueCert(t, "old-app", nil, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC), false)
	future := issueCert(t, "new-app", nil, now.Add(72*time.Hour), now.Add(96*time.Hour), false)
	cas := x509.NewCertPool()
	cas.AddCert(good.cert)
	srv := fositeserver.Start(t, fositeserver.Options{ClientCAs: cas, Clients: []fositeserver.Client{
		{ID: "app", TLSCertificate: good.cert, Scopes: []string{"read"}, GrantTypes: []string{"client_credentials"}}}})
	def := mtlsDefinition(t, srv.URL, "self_signed_tls_client_auth", true)
	for _, tc := range []struct {
		name, cert, key string
		want            []string
	}{
		{"certificate missing", "", good.keyPEM, []string{"field ClientCertificate (the certificate) is empty", "${file:cert.pem}"}},
		{"certificate not PEM", "MIIB-not-a-pem", good.keyPEM, []string{"field ClientCertificate holds no PEM certificate", "-----BEGIN CERTIFICATE-----"}},
		{"key in the certificate field", good.keyPEM, good.keyPEM, []string{"field ClientCertificate holds no PEM certificate"}},
		{"certificate garbled", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", good.keyPEM, []string{"the first certificate in field ClientCertificate does not parse"}},
		{"key missing", good.certPEM, "", []string{"field ClientKey (the private key) is empty", "${file:key.pem}"}},
		{"key not PEM", good.certPEM, "not a key at all", []string{"field ClientKey holds no PEM private key"}},
		{"key garbled", good.certPEM, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", []string{"the private key in field ClientKey does not parse"}},
		{"key of another certificate", good.certPEM, another.keyPEM, []string{"the private key in field ClientKey is not the key of the certificate in field ClientCertificate", `subject "CN=good-app,O=Acme"`}},
		{"expired", expired.certPEM, expired.keyPEM, []string{`the client certificate (subject "CN=old-app,O=Acme"`, "expired at 2025-03-01T12:00:00Z", "days ago", "ask the provider for a new one and put it (with its key) in field ClientCertificate"}},
		{"not yet valid", future.certPEM, future.keyPEM, []string{"is not valid before", "check this machine's clock"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := &connector.Connection{Definition: def, ClientID: "app", Fields: map[string]string{"ClientCertificate": tc.cert, "ClientKey": tc.key}}
			src := newMTLSSource(t, srv, conn, trusting(srv))
			_, err := src.TokenContext(context.Background())
			if err == nil {
				t.Fatal("accepted")
			}
			var tokenErr *connector.TokenError
			if errors.As(err, &tokenErr) {
				t.Fatalf("sent to the provider: %v", err)
			}
			for _, w := range append(tc.want, "auth.oauth.client_certificate", conn.Key()) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
			for _, k := range []*testCert{good, another, expired, future} {
				if strings.Contains(err.Error(), k.keyBody()) {
					t.Errorf("the error quotes a key: %v", err)
				}
			}
			// The API refuses at construction for what does not parse,
			// and at the handshake for what has expired.
			if _, err := connector.NewAPI(conn, store.NewMemory(), &connector.APIOptions{Source: src, Base: trusting(srv)}); err == nil && !strings.Contains(tc.name, "valid") && tc.name != "expired" {
				t.Error("NewAPI accepted the broken certificate")
			}
		})
	}
	if n := srv.Stats().TokenRequests; n != 0 {
		t.Errorf("%d token requests reached the server", n)
	}
}
