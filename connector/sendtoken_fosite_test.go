package connector_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/internal/fositeserver"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/definitions"
)

// headerGateway plays a provider that takes the token in its own header
// (X-Shopify-Access-Token: <token>, Authorization: Zoho-oauthtoken <token>):
// it accepts only that form, then lets fosite's resource endpoint judge the
// token itself, so the token checked is a real fosite access token.
type headerGateway struct {
	*httptest.Server
	mu   sync.Mutex
	seen []http.Header
}

func startHeaderGateway(t *testing.T, fosite, name, prefix string) *headerGateway {
	target, _ := url.Parse(fosite)
	proxy := httputil.NewSingleHostReverseProxy(target)
	g := &headerGateway{}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		g.seen = append(g.seen, r.Header.Clone())
		g.mu.Unlock()
		v := r.Header.Get(name)
		if !strings.HasPrefix(v, prefix) || len(v) == len(prefix) || (name != "Authorization" && r.Header.Get("Authorization") != "") {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"the token goes in `+name+`"}`)
			return
		}
		r.Header.Del(name)
		r.Header.Set("Authorization", "Bearer "+strings.TrimPrefix(v, prefix))
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(g.Close)
	return g
}

func sendTokenDefinition(t *testing.T, base, login, sendToken string) *definitions.Definition {
	t.Helper()
	src := `name: send-token
title: send_token against fosite
base_url: ` + base + `
auth:
  scheme: oauth_client
  oauth:
    version: V2
    token_request_uri: ` + login + `/oauth/token
    scopes: [read]
    token_request: {client_auth: basic}
` + sendToken
	set, err := definitions.Parse(nil, definitions.File{Path: "send-token.yaml", Data: []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := set.Get("send-token")
	return d
}

// TestSendTokenAgainstFosite gets a real token from fosite and sends it
// where each definition says; the API answers only when it is there.
func TestSendTokenAgainstFosite(t *testing.T) {
	srv := fositeServer(t, fositeserver.Options{})
	tests := []struct {
		name, sendToken string
		header, prefix  string // what the gateway insists on; "" talks to fosite directly
	}{
		{"default Authorization: Bearer", "", "", ""},
		{"query parameter access_token", "    send_token: {in: query, name: access_token}\n", "", ""},
		{"Shopify header, no prefix", "    send_token: {name: X-Shopify-Access-Token}\n", "X-Shopify-Access-Token", ""},
		{"Zoho prefix in Authorization", "    send_token: {prefix: 'Zoho-oauthtoken '}\n", "Authorization", "Zoho-oauthtoken "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := srv.URL
			var g *headerGateway
			if tt.header != "" {
				g = startHeaderGateway(t, srv.URL, tt.header, tt.prefix)
				base = g.URL
			}
			conn := &connector.Connection{Definition: sendTokenDefinition(t, base, srv.URL, tt.sendToken), ClientID: clientID, ClientSecret: clientSecret}
			api, err := connector.NewAPI(conn, store.NewMemory(), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := api.Do(context.Background(), connector.Request{Path: "/api/me"})
			if err != nil {
				t.Fatal(err)
			}
			var me struct {
				Sub      string `json:"sub"`
				ClientID string `json:"client_id"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&me)
			resp.Body.Close()
			if me.ClientID != clientID {
				t.Fatalf("fosite answered %+v", me)
			}
			if g != nil && tt.header != "Authorization" {
				for _, h := range g.seen {
					if h.Get("Authorization") != "" {
						t.Fatalf("the token went in Authorization too: %v", h)
					}
				}
			}
		})
	}
}

// A 401 on a token in the query renews it and replaces the parameter
// rather than adding a second access_token.
func TestSendTokenQueryReplay(t *testing.T) {
	srv := fositeServer(t, fositeserver.Options{})
	var mu sync.Mutex
	var queries []string
	calls := 0
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		queries = append(queries, r.URL.RawQuery)
		if calls++; calls == 1 {
			w.WriteHeader(http.StatusUnauthorized) // revoked early
			return
		}
		io.WriteString(w, `{}`)
	}))
	defer api.Close()
	conn := &connector.Connection{Definition: sendTokenDefinition(t, api.URL, srv.URL, "    send_token: {in: query, name: access_token}\n"), ClientID: clientID, ClientSecret: clientSecret}
	a, err := connector.NewAPI(conn, store.NewMemory(), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := a.Do(context.Background(), connector.Request{Path: "/x?a=1"})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(queries) != 2 {
		t.Fatalf("queries %q", queries)
	}
	for _, q := range queries {
		v, _ := url.ParseQuery(q)
		if len(v["access_token"]) != 1 || v.Get("a") != "1" {
			t.Fatalf("query %q: want one access_token and a=1", q)
		}
	}
	if queries[0] == queries[1] {
		t.Fatalf("the replay sent the refused token again: %q", queries)
	}
}
