package connector_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
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
		var b strings.Builder
		b.WriteString(r.Method + " http://" + r.Host + r.URL.RequestURI() + "\n")
		for _, h := range []string{"Accept", "Content-Type", "Authorization"} {
			if v := r.Header.Get(h); v != "" {
				b.WriteString(h + ": " + v + "\n")
			}
		}
		if len(body) > 0 {
			b.WriteString("\n" + string(body) + "\n")
		}
		mu.Lock()
		got = append(got, b.String())
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
