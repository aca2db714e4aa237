package server_test

import (
	"strings"
	"testing"

	"github.com/connector-engine/connector/connector/internal/dpopserver"
	"github.com/connector-engine/connector/definitions"
)

// TestConnectionDPoP: a connection of a dpop definition, through the API,
// against a provider that checks every proof (dpopserver) and wants nonces
// at its token endpoint and its resource: the callback on the server binds
// the token to a key the server keeps (the code too: dpop_jkt, its key
// kept sealed in the authorization session); proxied calls and actions carry
// proofs; a refresh stays bound to the key; and POST .../token refuses to
// hand out the token, which the provider would refuse without a proof
// from the key.
func TestConnectionDPoP(t *testing.T) {
	backends(t, func(t *testing.T, spec func(*testing.T) string) {
		const id, secret = "dpop-app", "dpop-client-secret-0123456789"
		srv := dpopserver.Start(t, dpopserver.Options{TokenNonce: "as-nonce", ResourceNonce: "rs-nonce", ClientID: id, ClientSecret: secret, RequireDPoP: true})
		set, err := definitions.Parse(definitions.Builtin(), definitions.File{Path: "dpop.yaml", Data: []byte(`name: dpop-test
title: DPoP test servers
environments:
  production:
    base_url: ` + srv.RS + `
    login_url: ` + srv.AS + `
auth:
  scheme: oauth
  oauth:
    version: V2
    initiate_uri: ${LoginUrl}/authorize
    token_request_uri: ${LoginUrl}/token
    pkce: true
    dpop: {}
actions:
  me: {path: /api}
`)})
		if err != nil {
			t.Fatal(err)
		}
		remember(secret)
		e := newEnv(t, spec(t), envOptions{definitions: set})
		c := e.must(201, 0, "POST", "/v1/oauth-clients", e.keys["acme:admin"], map[string]any{"definition": "dpop-test", "client_id": id, "client_secret": secret})
		conn := e.connection("acme", c["id"].(string))

		if page := e.authorizeApproved("acme", conn); page.status != 200 || !strings.Contains(string(page.body), "Connected") {
			t.Fatalf("callback: %d %s (the provider refused: %v)", page.status, page.body, srv.Refusals())
		}

		if r := e.call(0, "GET", "/v1/connections/"+conn+"/proxy/api", e.keys["acme:proxy"], nil); r.status != 200 || !strings.Contains(string(r.body), `"as":"dpop"`) {
			t.Fatalf("proxied /api: %d %s (refused: %v)", r.status, r.body, srv.Refusals())
		}
		tok := e.call(0, "POST", "/v1/connections/"+conn+"/token", e.keys["acme:token"], nil)
		if tok.status != 409 || !strings.Contains(string(tok.body), "dpop-bound-token") || strings.Contains(string(tok.body), "access_token") {
			t.Fatalf("POST /token of a DPoP-bound connection: %d %s; want 409 dpop-bound-token without the token", tok.status, tok.body)
		}
		e.must(200, 0, "POST", "/v1/connections/"+conn+"/refresh", e.keys["acme:connections:write"], nil)
		if r := e.call(0, "POST", "/v1/connections/"+conn+"/actions/me", e.keys["acme:proxy"], nil); r.status != 200 || !strings.Contains(string(r.body), `"as":"dpop"`) {
			t.Fatalf("the action after the refresh: %d %s (refused: %v)", r.status, r.body, srv.Refusals())
		}
		if refused := srv.Refusals(); len(refused) != 0 {
			t.Errorf("the provider refused: %v", refused)
		}
		if s := srv.Stats(); s.BoundCodes != 1 {
			t.Errorf("%d authorization requests bound their code to a key (dpop_jkt); want 1, exchanged by the callback's replica with that key", s.BoundCodes)
		}
		if s := srv.Stats(); s.TokenChallenges == 0 {
			t.Errorf("the token endpoint's nonce was never asked for: %+v", s)
		}
	})
}
