package server_test

import (
	"strings"
	"testing"

	"github.com/connector-engine/connector/connector/internal/fositeserver"
	"github.com/connector-engine/connector/definitions"
)

// TestConnectionLifeFosite runs the life of a connection through the API
// against fosite, an OAuth server that is not ours: PKCE, rotating refresh
// tokens, revocation; on SQLite and on PostgreSQL.
func TestConnectionLifeFosite(t *testing.T) {
	backends(t, func(t *testing.T, spec func(*testing.T) string) {
		const id, secret = "fosite-app", "fosite-client-secret-0123456789"
		fs := fositeserver.Start(t, fositeserver.Options{
			Clients:     []fositeserver.Client{{ID: id, Secret: secret, RedirectURIs: []string{"http://127.0.0.1/oauth/callback"}, Scopes: []string{"read"}}},
			RequirePKCE: true,
		})
		set, err := definitions.Parse(definitions.Builtin(), definitions.File{Path: "fosite.yaml", Data: []byte(`name: fosite
title: fosite test server
base_url: ` + fs.URL + `
auth:
  scheme: oauth
  oauth:
    version: V2
    initiate_uri: ${BaseUrl}/oauth/authorize
    token_request_uri: ${BaseUrl}/oauth/token
    refresh_uri: ${BaseUrl}/oauth/token
    revoke_uri: ${BaseUrl}/oauth/revoke
    scopes: [read]
    pkce: true
actions:
  me:
    method: GET
    path: /api/me
`)})
		if err != nil {
			t.Fatal(err)
		}
		remember(secret)
		e := newEnv(t, spec(t), envOptions{definitions: set})
		c := e.must(201, 0, "POST", "/v1/oauth-clients", e.keys["acme:admin"], map[string]any{"definition": "fosite", "client_id": id, "client_secret": secret})
		conn := e.connection("acme", c["id"].(string))

		if page := e.authorizeApproved("acme", conn); page.status != 200 || !strings.Contains(string(page.body), "Connected") {
			t.Fatalf("callback: %d %s", page.status, page.body)
		}
		tok := e.must(200, 0, "POST", "/v1/connections/"+conn+"/token", e.keys["acme:token"], nil)
		remember(tok["access_token"].(string))
		if r := e.call(0, "GET", "/v1/connections/"+conn+"/proxy/api/me", e.keys["acme:proxy"], nil); r.status != 200 || !strings.Contains(string(r.body), "sub") {
			t.Fatalf("proxied /api/me: %d %s", r.status, r.body)
		}
		if r := e.call(0, "POST", "/v1/connections/"+conn+"/actions/me", e.keys["acme:proxy"], nil); r.status != 200 {
			t.Fatalf("action me: %d %s", r.status, r.body)
		}
		e.must(200, 0, "POST", "/v1/connections/"+conn+"/refresh", e.keys["acme:connections:write"], nil)
		if r := e.call(0, "GET", "/v1/connections/"+conn+"/proxy/api/me", e.keys["acme:proxy"], nil); r.status != 200 {
			t.Fatalf("proxied call after the refresh: %d %s", r.status, r.body)
		}
		e.must(204, 0, "DELETE", "/v1/connections/"+conn, e.keys["acme:connections:write"], nil)
		st := fs.Stats()
		if st.CodeExchanges != 1 || st.Refreshes != 1 || st.RefreshReuseDetected != 0 || st.Revocations != 1 {
			t.Fatalf("fosite saw %+v; want 1 exchange, 1 refresh, no reuse, 1 revocation", st)
		}
	})
}
