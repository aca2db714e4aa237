package server_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestConnectionLife runs the whole life of a connection through the API
// only, against the Procore emulator: client, connection, authorize,
// callback, token, proxy, action (one page and every page), refresh,
// delete with revocation; on SQLite and on PostgreSQL.
func TestConnectionLife(t *testing.T) {
	backends(t, func(t *testing.T, spec func(*testing.T) string) {
		e := newEnv(t, spec(t), envOptions{})
		cl := e.oauthClient("acme")
		got := e.must(200, 0, "GET", "/v1/oauth-clients/"+cl, e.keys["acme:admin"], nil)
		if _, leaked := got["client_secret"]; leaked || strings.Contains(string(mustJSON(got)), emuSecret) {
			t.Fatalf("the client secret is readable: %v", got)
		}
		if got["redirect_uri"] != e.replicas[0].url+"/oauth/callback" {
			t.Fatalf("redirect_uri %v", got["redirect_uri"])
		}
		conn := e.connection("acme", cl)
		c := e.must(200, 0, "GET", "/v1/connections/"+conn, e.keys["acme:connections:read"], nil)
		if c["status"] != "pending" {
			t.Fatalf("new connection: %v", c)
		}
		// No token before authorization: the API says why.
		r := e.call(0, "POST", "/v1/connections/"+conn+"/token", e.keys["acme:token"], nil)
		if r.status != 409 || !strings.Contains(string(r.body), "authorize") {
			t.Fatalf("token before authorization: %d %s", r.status, r.body)
		}

		e.authorize("acme", conn, 0, 0)
		c = e.must(200, 0, "GET", "/v1/connections/"+conn, e.keys["acme:connections:read"], nil)
		if c["status"] != "connected" || c["token_expires"] == nil {
			t.Fatalf("after the callback: %v", c)
		}

		tok := e.must(200, 0, "POST", "/v1/connections/"+conn+"/token", e.keys["acme:token"], nil)
		at, _ := tok["access_token"].(string)
		if at == "" || tok["token_type"] == nil || tok["expires_at"] == nil {
			t.Fatalf("token answer %v", tok)
		}
		if _, ok := tok["refresh_token"]; ok {
			t.Fatal("the token endpoint handed out the refresh token")
		}
		remember(at)

		// The proxy: the caller's own Authorization is the API key, which
		// never reaches the provider; the answer streams back.
		me := e.call(0, "GET", "/v1/connections/"+conn+"/proxy/rest/v1.0/me", e.keys["acme:proxy"], nil)
		if me.status != 200 || !strings.Contains(string(me.body), `"login"`) {
			t.Fatalf("proxied /me: %d %s", me.status, me.body)
		}
		companies := e.call(0, "GET", "/v1/connections/"+conn+"/proxy/rest/v1.0/companies?page=1&per_page=1", e.keys["acme:proxy"], nil)
		if companies.status != 200 || companies.header.Get("Total") == "" {
			t.Fatalf("proxied listing: %d %v %s", companies.status, companies.header, companies.body)
		}
		// A path that leaves the origin is refused.
		out := e.call(0, "GET", "/v1/connections/"+conn+"/proxy/%2F%2Fevil.example.com/x", e.keys["acme:proxy"], nil)
		if out.status == 200 {
			t.Fatalf("a proxied path left the origin: %d %s", out.status, out.body)
		}

		one := e.call(0, "POST", "/v1/connections/"+conn+"/actions/list_companies", e.keys["acme:proxy"], nil)
		if one.status != 200 || !bytes.HasPrefix(bytes.TrimSpace(one.body), []byte("[")) {
			t.Fatalf("action: %d %s", one.status, one.body)
		}
		all := e.call(0, "POST", "/v1/connections/"+conn+"/actions/list_companies?all=true", e.keys["acme:proxy"], nil)
		if all.status != 200 || all.header.Get("Content-Type") != "application/x-ndjson" {
			t.Fatalf("action ?all=true: %d %v %s", all.status, all.header, all.body)
		}
		lines := 0
		sc := bufio.NewScanner(bytes.NewReader(all.body))
		for sc.Scan() {
			var item map[string]any
			if err := json.Unmarshal(sc.Bytes(), &item); err != nil || item["id"] == nil {
				t.Fatalf("NDJSON line %q: %v", sc.Text(), err)
			}
			lines++
		}
		if lines < 2 {
			t.Fatalf("%d companies streamed, want the emulator's two", lines)
		}

		before := e.emu.Stats().Refreshes
		e.must(200, 0, "POST", "/v1/connections/"+conn+"/refresh", e.keys["acme:connections:write"], nil)
		tok2 := e.must(200, 0, "POST", "/v1/connections/"+conn+"/token", e.keys["acme:token"], nil)
		if e.emu.Stats().Refreshes != before+1 || tok2["access_token"] == at {
			t.Fatalf("refresh: %d refreshes at the provider (want %d), token changed: %v", e.emu.Stats().Refreshes, before+1, tok2["access_token"] != at)
		}
		remember(tok2["access_token"].(string))

		e.must(204, 0, "DELETE", "/v1/connections/"+conn, e.keys["acme:connections:write"], nil)
		if n := e.emu.Stats().Revocations; n != 1 {
			t.Fatalf("%d revocations at the provider, want 1", n)
		}
		if r := e.call(0, "GET", "/v1/connections/"+conn, e.keys["acme:connections:read"], nil); r.status != 404 {
			t.Fatalf("deleted connection: %d", r.status)
		}
		if r := e.call(0, "GET", "/v1/connections/"+conn+"/proxy/rest/v1.0/me", e.keys["acme:proxy"], nil); r.status != 404 {
			t.Fatalf("proxy through a deleted connection: %d", r.status)
		}
		e.must(204, 0, "DELETE", "/v1/oauth-clients/"+cl, e.keys["acme:admin"], nil)
	})
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
