package connector_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/dpop"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/token"
)

// BenchmarkDPoPPerRequest sets a DPoP API request (a fresh proof with ath
// per request, RFC 9449 7.1) against the engine's bearer transport in the
// same run: through the whole API transport of a dpop definition (ES256,
// PS256) and through dpop.Transport alone; the base transport answers at
// once.
func BenchmarkDPoPPerRequest(b *testing.B) {
	req, _ := http.NewRequest(http.MethodGet, "https://api.bench.test/v1/projects?company_id=42&page=3", nil)
	run := func(b *testing.B, client *http.Client) {
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
		}
	}
	b.Run("bearer", func(b *testing.B) {
		conn := &connector.Connection{Definition: benchDefinition(b, "  scheme: oauth\n  oauth:\n    version: V2\n    initiate_uri: ${BaseUrl}/authorize\n    token_request_uri: ${BaseUrl}/token\n"),
			ClientID: "id", ClientSecret: "secret", RedirectURI: "http://127.0.0.1:1/cb"}
		api, err := connector.NewAPI(conn, store.NewMemory(), &connector.APIOptions{Base: answer{}})
		if err != nil {
			b.Fatal(err)
		}
		if err := api.Source().Store(context.Background(), &token.Token{AccessToken: "bench-token", Expiry: time.Now().Add(24 * time.Hour)}); err != nil {
			b.Fatal(err)
		}
		run(b, api.Client())
	})
	// The engine's own path for a dpop definition: scope, retry, the bearer
	// layer handing a token_type DPoP token to dpop.Transport with the key
	// kept in the token.
	for _, alg := range []string{"ES256", "PS256"} {
		b.Run("api-dpop-"+strings.ToLower(alg), func(b *testing.B) {
			conn := &connector.Connection{Definition: benchDefinition(b, "  scheme: oauth\n  oauth:\n    version: V2\n    initiate_uri: ${BaseUrl}/authorize\n    token_request_uri: ${BaseUrl}/token\n    dpop: {algorithm: "+alg+"}\n"),
				ClientID: "id", ClientSecret: "secret", RedirectURI: "http://127.0.0.1:1/cb"}
			api, err := connector.NewAPI(conn, store.NewMemory(), &connector.APIOptions{Base: answer{}})
			if err != nil {
				b.Fatal(err)
			}
			k, err := dpop.GenerateKeyFor(alg)
			if err != nil {
				b.Fatal(err)
			}
			pemKey, _ := k.PEM()
			if err := api.Source().Store(context.Background(), &token.Token{AccessToken: "bench-token", TokenType: "DPoP", DPoPKey: pemKey, Expiry: time.Now().Add(24 * time.Hour)}); err != nil {
				b.Fatal(err)
			}
			run(b, api.Client())
		})
	}
	b.Run("dpop-es256", func(b *testing.B) {
		k, err := dpop.GenerateKey()
		if err != nil {
			b.Fatal(err)
		}
		tr := &dpop.Transport{Base: answer{}, Key: k, Nonces: &dpop.Nonces{}, Token: func(*http.Request) (string, error) { return "bench-token", nil }}
		run(b, &http.Client{Transport: tr})
	})
}
