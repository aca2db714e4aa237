package connector_test

import (
	"context"
	"crypto/x509"
	"net/http"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/internal/fositeserver"
	"github.com/connector-engine/connector/definitions"
)

// BenchmarkTokenRequestMTLS compares a client-credentials token request
// authenticated by a TLS client certificate (RFC 8705, over HTTPS) with
// the plain one (a client secret over HTTP), against fosite, in the same
// run: "pooled" reuses the connection, as a busy process does; "handshake"
// opens one per request, as a token request once an hour does. Quote the
// ratio of each pair, not the absolute times.
func BenchmarkTokenRequestMTLS(b *testing.B) {
	now := time.Now()
	cert := issueCert(b, "bench-app", nil, now.Add(-time.Hour), now.Add(24*time.Hour), false)
	cas := x509.NewCertPool()
	cas.AddCert(cert.cert)
	mtls := fositeserver.Start(b, fositeserver.Options{ClientCAs: cas, Clients: []fositeserver.Client{
		{ID: "app", TLSCertificate: cert.cert, Scopes: []string{"read"}, GrantTypes: []string{"client_credentials"}}}})
	plain := fositeserver.Start(b, fositeserver.Options{Clients: []fositeserver.Client{
		{ID: "app", Secret: "bench-secret", Scopes: []string{"read"}, GrantTypes: []string{"client_credentials"}}}})
	plainSet, err := definitions.Parse(nil, definitions.File{Path: "plain.yaml", Data: []byte("name: plain\ntitle: Plain\nbase_url: " + plain.URL +
		"\nauth:\n  scheme: oauth_client\n  oauth:\n    version: V2\n    token_request_uri: ${BaseUrl}/oauth/token\n    scopes: [read]\n")})
	if err != nil {
		b.Fatal(err)
	}
	plainDef, _ := plainSet.Get("plain")
	for _, keepAlive := range []bool{true, false} {
		mode := map[bool]string{true: "pooled", false: "handshake"}[keepAlive]
		for _, c := range []struct {
			name string
			conn *connector.Connection
			rt   *http.Transport
		}{
			{"plain", &connector.Connection{Definition: plainDef, ClientID: "app", ClientSecret: "bench-secret"}, &http.Transport{}},
			{"mtls", mtlsConn(mtlsDefinition(b, mtls.URL, "self_signed_tls_client_auth", false), "app", "", cert), trusting(mtls)},
		} {
			b.Run(mode+"/"+c.name, func(b *testing.B) {
				c.rt.DisableKeepAlives = !keepAlive
				f, err := connector.NewFlow(c.conn)
				if err != nil {
					b.Fatal(err)
				}
				f.HTTPClient = &http.Client{Timeout: 30 * time.Second, Transport: c.rt}
				ctx := context.Background()
				b.ReportAllocs()
				for b.Loop() {
					if _, err := f.ClientCredentials(ctx); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
