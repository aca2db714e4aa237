package connector

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/token"
	"github.com/connector-engine/connector/definitions"
)

// TestNoSecretInFormatting prints every exported type of connector,
// connector/token and connector/store that can hold a secret, as a value,
// as a pointer and inside structs (embedded and named, by value and by
// pointer), with %v %+v %#v %s %q: no secret may show. A Connection value
// used to print its client secret and tokens (pointer receivers), and Flow,
// API and Attempt values their expanded values and the PKCE verifier.
// (definitions holds no connection secret: its types describe definitions.)
func TestNoSecretInFormatting(t *testing.T) {
	const (
		clientSecret = "cs-Mq4tZ8rW"
		access       = "at-Mq4tZ8rW"
		refresh      = "rt-Mq4tZ8rW"
		fieldSecret  = "fk-Mq4tZ8rW"
	)
	secrets := []string{clientSecret, access, refresh, fieldSecret}
	set, err := definitions.Parse(nil, definitions.File{Path: "t.yaml", Data: []byte(`name: t
title: T
base_url: https://api.t.test
fields:
  Key: {secret: true}
auth:
  scheme: oauth
  oauth:
    version: V2
    pkce: true
    initiate_uri: https://auth.t.test/authorize
    token_request_uri: https://auth.t.test/token
request:
  headers:
    X-Key: ${Key}
`)})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := set.Get("t")
	conn := &Connection{Definition: d, ClientID: "cid", ClientSecret: clientSecret, RedirectURI: "http://127.0.0.1:1/cb",
		Fields: map[string]string{"Key": fieldSecret}, AccessToken: access, RefreshToken: refresh}
	flow, err := NewFlow(conn)
	if err != nil {
		t.Fatal(err)
	}
	attempt, err := flow.AuthCodeURL()
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, attempt.verifier)
	mem := store.NewMemory()
	tok := token.Token{AccessToken: access, RefreshToken: refresh, TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)}
	rec, err := mem.Put(context.Background(), store.Record{ID: conn.Key(), Definition: "t", Token: tok, Status: store.StatusConnected})
	if err != nil {
		t.Fatal(err)
	}
	src, err := NewSource(conn, mem)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Token(); err != nil { // fills its cache with the tokens
		t.Fatal(err)
	}
	api, err := NewAPI(conn, mem, &APIOptions{Source: src})
	if err != nil {
		t.Fatal(err)
	}

	values := map[string]any{
		"Connection": *conn, "*Connection": conn,
		"Flow": *flow, "*Flow": flow,
		"Attempt": *attempt, "*Attempt": attempt,
		"API": *api, "*API": api,
		"*Source": src,
		"Token":   tok, "*Token": &tok,
		"Record": rec, "*Record": &rec,
		"*Memory": mem,
	}
	for name, v := range values {
		wrapped := map[string]any{
			name:                    v,
			"embedded " + name:      struct{ V any }{v},
			"in a slice " + name:    []any{v},
			"in a map " + name:      map[string]any{"k": v},
			"in two levels " + name: struct{ Outer struct{ Inner any } }{struct{ Inner any }{v}},
		}
		for what, w := range wrapped {
			for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
				out := fmt.Sprintf(verb, w)
				for _, s := range secrets {
					if strings.Contains(out, s) {
						t.Errorf("%s with %s shows a secret: %s", what, verb, out)
					}
				}
			}
		}
	}
	// The types Go lets a caller embed by value print redacted there too.
	embedded := map[string]any{
		"Connection": struct{ Connection }{*conn},
		"Flow":       struct{ Flow }{*flow},
		"API":        struct{ API }{*api},
		"Attempt":    struct{ Attempt }{*attempt},
		"Record":     struct{ store.Record }{rec},
		"*Source":    struct{ *Source }{src},
		"*Memory":    struct{ *store.Memory }{mem},
	}
	for name, w := range embedded {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
			out := fmt.Sprintf(verb, w)
			for _, s := range secrets {
				if strings.Contains(out, s) {
					t.Errorf("a struct embedding %s, with %s, shows a secret: %s", name, verb, out)
				}
			}
		}
	}
	// What they print still says which connection it is.
	if got := fmt.Sprintf("%+v", *conn); !strings.Contains(got, "definition=t") || !strings.Contains(got, "client=cid") {
		t.Errorf("Connection prints %q", got)
	}
	if got := fmt.Sprintf("%v", api); !strings.Contains(got, "api{connection{") || !strings.Contains(got, "base=https://api.t.test") {
		t.Errorf("API prints %q", got)
	}
}
