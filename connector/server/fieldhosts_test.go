package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/connector-engine/connector/connector/server"
	"github.com/connector-engine/connector/definitions"
)

// selfHosted is a definition whose API and login are wherever the
// connection's url field ServerUrl says (a self-hosted instance), with a
// hostname field for its mail relay.
const selfHosted = `name: selfhosted
title: A self-hosted service
fields:
  ServerUrl:
    title: Server URL
    type: url
    required: true
  Relay:
    title: Relay host
    type: hostname
  Team:
    title: Team
    type: host_label
base_url: ${ServerUrl}/api
auth:
  scheme: oauth
  oauth:
    version: V2
    initiate_uri: ${ServerUrl}/oauth/authorize
    token_request_uri: ${ServerUrl}/oauth/token
    refresh_uri: ${ServerUrl}/oauth/token
`

// TestConnectionFieldHosts: a connection's url and hostname field values
// (a tenant-supplied origin the engine sends credentials to) pass the same
// --allow-hosts and private-address policy as an OAuth client's base_url,
// when the connection is made by the API or on the connect page; the
// problem names the field. Another tenant's client cannot be used to make
// one at all.
func TestConnectionFieldHosts(t *testing.T) {
	set, err := definitions.Parse(definitions.Builtin(), definitions.File{Path: "selfhosted.yaml", Data: []byte(selfHosted)})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, t.TempDir()+"/connector.db", envOptions{definitions: set})
	cl := e.must(201, 0, "POST", "/v1/oauth-clients", e.keys["acme:admin"], map[string]any{"definition": "selfhosted", "client_id": "app", "client_secret": "app-secret-0123456789"})["id"].(string)
	write := e.keys["acme:connections:write"]

	// The test replica allows 127.0.0.1 and private addresses.
	e.must(201, 0, "POST", "/v1/connections", write, map[string]any{"oauth_client": cl, "fields": map[string]any{"ServerUrl": "http://127.0.0.1:9"}})

	// A replica with the default policy: private addresses refused even when listed.
	st := e.replicas[0].storage
	strict, err := server.New(server.Config{State: st.State, Tokens: st.Tokens, Definitions: set, PublicURL: "https://connect.example.com",
		AllowHosts: []string{"93.184.216.34", "127.0.0.1", "localhost", "10.0.0.5"},
		Logger:     slog.New(slog.NewJSONHandler(logSink{}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(strict)
	defer hs.Close()
	create := func(key, oauthClient string, fields map[string]any) response {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"oauth_client": oauthClient, "fields": fields})
		req, _ := http.NewRequest("POST", hs.URL+"/v1/connections", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return response{status: resp.StatusCode, header: resp.Header, body: data}
	}
	for _, tc := range []struct {
		name   string
		fields map[string]any
		field  string
		says   string
	}{
		{"loopback", map[string]any{"ServerUrl": "http://127.0.0.1:8080"}, "fields.ServerUrl", "host 127.0.0.1 is a loopback or private address, which the server refuses unless started with --allow-private"},
		{"localhost", map[string]any{"ServerUrl": "https://localhost"}, "fields.ServerUrl", "host localhost is a loopback or private address"},
		{"private", map[string]any{"ServerUrl": "https://10.0.0.5"}, "fields.ServerUrl", "host 10.0.0.5 is a loopback or private address"},
		{"metadata", map[string]any{"ServerUrl": "https://169.254.169.254/latest"}, "fields.ServerUrl", "host 169.254.169.254 is not in the server's allow-list (connector serve --allow-hosts)"},
		{"elsewhere", map[string]any{"ServerUrl": "https://evil.example.net"}, "fields.ServerUrl", "host evil.example.net is not in the server's allow-list"},
		{"upper case", map[string]any{"ServerUrl": "https://EVIL.example.net"}, "fields.ServerUrl", "host evil.example.net is not in the server's allow-list"},
		{"hostname field", map[string]any{"ServerUrl": "https://93.184.216.34", "Relay": "localhost"}, "fields.Relay", "host localhost is a loopback or private address"},
		{"hostname elsewhere", map[string]any{"ServerUrl": "https://93.184.216.34", "Relay": "smtp.evil.net"}, "fields.Relay", "host smtp.evil.net is not in the server's allow-list"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.connectionCount("acme")
			r := create(write, cl, tc.fields)
			if r.status != 422 {
				t.Fatalf("%d, want 422: %s", r.status, r.body)
			}
			var p struct {
				Errors []struct{ Field, Detail string } `json:"errors"`
			}
			_ = json.Unmarshal(r.body, &p)
			found := false
			for _, fe := range p.Errors {
				found = found || (fe.Field == tc.field && strings.Contains(fe.Detail, tc.field+": ") && strings.Contains(fe.Detail, tc.says))
			}
			if !found {
				t.Fatalf("no problem naming %s saying %q: %s", tc.field, tc.says, r.body)
			}
			if e.connectionCount("acme") != before {
				t.Fatal("a refused connection was stored")
			}
		})
	}
	// An allow-listed host passes (a public IP literal: names are resolved,
	// and tests reach no DNS).
	strictPublic, err := server.New(server.Config{State: st.State, Tokens: st.Tokens, Definitions: set, PublicURL: "https://connect.example.com",
		AllowHosts: []string{"93.184.216.34"}, Logger: slog.New(slog.NewJSONHandler(logSink{}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	hs.Config.Handler = strictPublic
	if r := create(write, cl, map[string]any{"ServerUrl": "https://93.184.216.34", "Team": "anything"}); r.status != 201 {
		t.Fatalf("an allow-listed public host is refused: %d %s", r.status, r.body)
	}
	// Another tenant cannot use acme's client, whatever the host.
	if r := create(e.keys["globex:connections:write"], cl, map[string]any{"ServerUrl": "https://93.184.216.34"}); r.status != 422 || !strings.Contains(string(r.body), `"field":"oauth_client"`) || !strings.Contains(string(r.body), "no OAuth client") {
		t.Fatalf("globex made a connection with acme's client: %d %s", r.status, r.body)
	}

	// The connect page applies the same check (checkConnectionInput).
	hs.Config.Handler = strict
	m := e.must(201, 0, "POST", "/v1/connect-sessions", write, map[string]any{"oauth_clients": []string{cl}})
	link := strings.Replace(m["url"].(string), e.replicas[0].url, hs.URL, 1)
	remember(strings.TrimPrefix(link, hs.URL+"/connect/"))
	r := submit(t, link, map[string][]string{"client": {cl}, "field.ServerUrl": {"http://127.0.0.1:8080"}})
	if r.status == 303 || !strings.Contains(string(r.body), "127.0.0.1 is a loopback or private address") {
		t.Fatalf("the connect page took a loopback server URL: %d %s", r.status, r.body)
	}
}
