package connector_test

import (
	"context"
	"strings"
	"testing"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/internal/fositeserver"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/definitions"
)

// TestPublicClientAgainstFosite: a public client (no secret) connects with
// the code flow and PKCE, and refreshes, against fosite's public client; the
// scopes are the environment's.
func TestPublicClientAgainstFosite(t *testing.T) {
	srv := fositeserver.Start(t, fositeserver.Options{RequirePKCE: true, Clients: []fositeserver.Client{
		{ID: "desktop-app", Public: true, RedirectURIs: []string{redirectURI}, Scopes: []string{"read", "write"}},
	}})
	src := `name: public
title: public client
default_environment: main
environments:
  main:
    base_url: ` + srv.URL + `
    login_url: ` + srv.URL + `
    scopes: [read, write]
  other:
    base_url: ` + srv.URL + `
    login_url: ` + srv.URL + `
auth:
  scheme: oauth
  oauth:
    version: V2
    client: public
    initiate_uri: ${LoginUrl}/oauth/authorize
    token_request_uri: ${LoginUrl}/oauth/token
    scopes: [read]
`
	set, err := definitions.Parse(nil, definitions.File{Path: "public.yaml", Data: []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	def, _ := set.Get("public")

	withSecret := &connector.Connection{Definition: def, ClientID: "desktop-app", ClientSecret: "nope", RedirectURI: redirectURI}
	if err := withSecret.Validate(); err == nil || !strings.Contains(err.Error(), "public client, which has no secret") {
		t.Fatalf("Validate with a secret: %v", err)
	}

	conn := &connector.Connection{Definition: def, ClientID: "desktop-app", RedirectURI: redirectURI}
	st := store.NewMemory()
	s, err := connector.NewSource(conn, st)
	if err != nil {
		t.Fatal(err)
	}
	attempt, err := s.Flow().AuthCodeURL()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(attempt.URL, "scope=read+write") || !strings.Contains(attempt.URL, "code_challenge=") {
		t.Fatalf("authorization URL %s: want the environment's scopes and a PKCE challenge", attempt.URL)
	}
	connectFosite(t, s)
	ctx := context.Background()
	tok, err := s.TokenContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	renewed, err := s.Flow().Refresh(ctx, tok.RefreshToken)
	if err != nil {
		t.Fatalf("refresh as a public client: %v", err)
	}
	if renewed.AccessToken == tok.AccessToken || srv.Stats().Refreshes != 1 || srv.Stats().CodeExchanges != 1 {
		t.Fatalf("stats %+v", srv.Stats())
	}
}
