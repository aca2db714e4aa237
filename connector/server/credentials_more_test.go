package server_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/connector-engine/connector/definitions"
	"github.com/connector-engine/connector/internal/ntlmserver"
	"github.com/connector-engine/connector/internal/oauth1server"
)

// The two schemes without OAuth 2 whose credentials are used in a
// handshake or a signature rather than sent: NTLM (a Windows server
// verifying NTLMv2 responses) and two-legged OAuth 1.0a (a provider
// verifying every signature and refusing reused nonces). Both go through
// the same server code as the API-key connections of credentials_test.go;
// these tests run them through the API against the real server sides.

// noSecrets fails the test when a body shows one of the secrets.
func noSecrets(t *testing.T, where string, body []byte, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(string(body), s) {
			t.Errorf("%s shows a secret (%s…)", where, s[:4])
		}
	}
}

// TestCredentialsConnectionNTLM: an NTLM connection created with its
// user, domain and password through the API authenticates its proxied
// calls and actions with ntlmserver; a wrong password is a 409
// credentials-refused naming the account, marks the connection as needing
// new credentials, and the right one brings it back. The password is
// never shown.
func TestCredentialsConnectionNTLM(t *testing.T) {
	backends(t, func(t *testing.T, spec func(*testing.T) string) {
		right := credentialsSecretPrefix + "NtlmRight0123"
		wrong := credentialsSecretPrefix + "NtlmWrong4567"
		remember(right, wrong)
		srv := ntlmserver.Start(t, "CONTOSO", map[string]string{`CONTOSO\alice`: right}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"user":%q,"path":%q}`, ntlmserver.User(r), r.URL.Path)
		}))
		// A server that offers no NTLM at all (no WWW-Authenticate on its
		// 401): its configuration, not the password.
		plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusUnauthorized) }))
		t.Cleanup(plain.Close)
		other := `name: windowsother
title: Not Windows authentication
base_url: ` + plain.URL + `
fields:
  User: {title: User, required: true}
  Password: {title: Password, secret: true, required: true}
auth:
  scheme: ntlm
  ntlm: {username: "${User}", password: "${Password}"}
`
		src := `name: windowsauth
title: Windows authentication
base_url: ` + srv.URL + `
fields:
  User: {title: User, required: true}
  Password: {title: Password, secret: true, required: true}
  Domain: {title: Domain}
auth:
  scheme: ntlm
  ntlm: {username: "${User}", password: "${Password}", domain: "${Domain}"}
actions:
  company:
    title: Companies
    path: /Company
`
		set, err := definitions.Parse(definitions.Builtin(), definitions.File{Path: "windowsauth.yaml", Data: []byte(src)},
			definitions.File{Path: "windowsother.yaml", Data: []byte(other)})
		if err != nil {
			t.Fatal(err)
		}
		e := newEnv(t, spec(t), envOptions{definitions: set})
		w, rd, proxy, admin := e.keys["acme:connections:write"], e.keys["acme:connections:read"], e.keys["acme:proxy"], e.keys["acme:admin"]
		shows := func(where string, body []byte) { t.Helper(); noSecrets(t, where, body, right, wrong) }

		c := e.must(201, 0, "POST", "/v1/connections", w, map[string]any{"definition": "windowsauth", "fields": map[string]any{"User": "alice", "Domain": "CONTOSO", "Password": right}})
		id := c["id"].(string)
		if c["status"] != "connected" || c["auth"] != "ntlm" || c["fields"].(map[string]any)["Password"] != "(set)" || c["fields"].(map[string]any)["User"] != "alice" {
			t.Fatalf("created: %v", c)
		}
		for range 2 {
			p := e.call(0, "GET", "/v1/connections/"+id+"/proxy/ODataV4/items", proxy, nil)
			if p.status != 200 || p.json(t)["user"] != `CONTOSO\ALICE` || p.json(t)["path"] != "/ODataV4/items" {
				t.Fatalf("proxy: %d %s", p.status, p.body)
			}
		}
		a := e.call(0, "POST", "/v1/connections/"+id+"/actions/company", proxy, nil)
		if a.status != 200 || !strings.Contains(string(a.body), `CONTOSO\\ALICE`) {
			t.Fatalf("action: %d %s", a.status, a.body)
		}
		if srv.Handshakes.Load() < 1 || srv.Refused.Load() != 0 {
			t.Fatalf("handshakes %d, refused %d", srv.Handshakes.Load(), srv.Refused.Load())
		}

		// A wrong password: the server refuses the handshake; the call is a
		// 409 that names the account and what to do, and the connection
		// needs new credentials (one event however many calls fail).
		e.must(200, 0, "PATCH", "/v1/connections/"+id+"/fields", w, map[string]any{"fields": map[string]any{"Password": wrong}})
		for _, call := range []struct{ method, path string }{
			{"GET", "/proxy/ODataV4/items"}, {"GET", "/proxy/ODataV4/items"}, {"POST", "/actions/company"},
		} {
			bad := e.call(0, call.method, "/v1/connections/"+id+call.path, proxy, nil)
			m := bad.json(t)
			if bad.status != 409 || !strings.HasSuffix(fmt.Sprint(m["type"]), "credentials-refused") ||
				!strings.Contains(fmt.Sprint(m["detail"]), `refused the credentials of CONTOSO\alice`) ||
				!strings.Contains(fmt.Sprint(m["detail"]), "PATCH /v1/connections/"+id+"/fields") {
				t.Fatalf("%s %s with a wrong password: %d %s", call.method, call.path, bad.status, bad.body)
			}
			shows("the problem of a refused password", bad.body)
		}
		if srv.Refused.Load() == 0 {
			t.Fatal("ntlmserver refused nothing: the wrong password was not sent")
		}
		got := e.must(200, 0, "GET", "/v1/connections/"+id, rd, nil)
		if got["status"] != "needs_reauthorization" || !strings.Contains(fmt.Sprint(got["reason"]), `CONTOSO\alice`) {
			t.Fatalf("after a refused password: %v", got)
		}
		if got := e.must(200, 0, "PATCH", "/v1/connections/"+id+"/fields", w, map[string]any{"fields": map[string]any{"Password": right}}); got["status"] != "connected" || got["reason"] != nil {
			t.Fatalf("after the right password: %v", got)
		}
		if p := e.call(0, "GET", "/v1/connections/"+id+"/proxy/ODataV4/items", proxy, nil); p.status != 200 || p.json(t)["user"] != `CONTOSO\ALICE` {
			t.Fatalf("proxy with the right password again: %d %s", p.status, p.body)
		}

		o := e.must(201, 0, "POST", "/v1/connections", w, map[string]any{"definition": "windowsother", "fields": map[string]any{"User": "bob", "Password": right}})["id"].(string)
		if p := e.call(0, "GET", "/v1/connections/"+o+"/proxy/x", proxy, nil); p.status != 502 || !strings.Contains(string(p.body), "provider-login-error") || !strings.Contains(string(p.body), "offers no NTLM") {
			t.Fatalf("a server without NTLM: %d %s", p.status, p.body)
		}
		if got := e.must(200, 0, "GET", "/v1/connections/"+o, rd, nil); got["status"] != "connected" {
			t.Fatalf("a server without NTLM changed the connection's status: %v", got)
		}

		var types []string
		for _, ev := range e.must(200, 0, "GET", "/v1/events?connection="+id, admin, nil)["events"].([]any) {
			types = append([]string{ev.(map[string]any)["type"].(string)}, types...)
		}
		if want := "[connection.connected connection.needs_reauth connection.connected]"; fmt.Sprint(types) != want {
			t.Fatalf("events %v, want %s", types, want)
		}
		for _, path := range []string{"/v1/connections/" + id, "/v1/connections", "/v1/connections?definition=windowsauth", "/v1/events?connection=" + id} {
			key := rd
			if strings.HasPrefix(path, "/v1/events") {
				key = admin
			}
			resp := e.call(0, "GET", path, key, nil)
			if resp.status != 200 {
				t.Fatalf("GET %s: %d %s", path, resp.status, resp.body)
			}
			shows("GET "+path, resp.body)
		}
		if tok := e.call(0, "POST", "/v1/connections/"+id+"/token", e.keys["acme:token"], nil); tok.status != 409 {
			t.Fatalf("token endpoint: %d %s", tok.status, tok.body)
		} else {
			shows("the token endpoint", tok.body)
		}
	})
}

// TestCredentialsConnectionOAuth1TwoLegged: a two-legged OAuth 1.0a
// connection (consumer key and secret, token and token secret as fields,
// HMAC-SHA256 with a realm, NetSuite's shape) signs every proxied call and
// action; oauth1server verifies each signature and refuses a reused nonce,
// so calls in a row all passing means each was signed anew. A wrong token
// secret is the provider's 401, passed back. The secrets are never shown.
func TestCredentialsConnectionOAuth1TwoLegged(t *testing.T) {
	backends(t, func(t *testing.T, spec func(*testing.T) string) {
		consumerSecret := credentialsSecretPrefix + "OAuth1Consumer0123"
		tokenSecret := credentialsSecretPrefix + "OAuth1Token4567"
		wrongSecret := credentialsSecretPrefix + "OAuth1Wrong8901"
		remember(consumerSecret, tokenSecret, wrongSecret)
		srv := oauth1server.Start(t, "ck-server", consumerSecret)
		srv.Fixed["tok-server"] = tokenSecret
		srv.Realm = "1234567_SB1"
		src := `name: signed
title: Two-legged OAuth 1.0a
base_url: ` + srv.URL + `/1
fields:
  ConsumerKey: {title: Consumer key, required: true}
  ConsumerSecret: {title: Consumer secret, secret: true, required: true}
  TokenId: {title: Token id, required: true}
  TokenSecret: {title: Token secret, secret: true, required: true}
  AccountId: {title: Account, required: true}
auth:
  scheme: oauth1
  oauth1:
    signature_method: HMAC-SHA256
    consumer_key: ${ConsumerKey}
    consumer_secret: ${ConsumerSecret}
    token: ${TokenId}
    token_secret: ${TokenSecret}
    realm: ${AccountId}
actions:
  me:
    title: Who am I
    path: /members/me
`
		set, err := definitions.Parse(definitions.Builtin(), definitions.File{Path: "signed.yaml", Data: []byte(src)})
		if err != nil {
			t.Fatal(err)
		}
		e := newEnv(t, spec(t), envOptions{definitions: set})
		w, rd, proxy, admin := e.keys["acme:connections:write"], e.keys["acme:connections:read"], e.keys["acme:proxy"], e.keys["acme:admin"]
		shows := func(where string, body []byte) {
			t.Helper()
			noSecrets(t, where, body, consumerSecret, tokenSecret, wrongSecret)
		}

		c := e.must(201, 0, "POST", "/v1/connections", w, map[string]any{"definition": "signed", "fields": map[string]any{
			"ConsumerKey": "ck-server", "ConsumerSecret": consumerSecret, "TokenId": "tok-server", "TokenSecret": tokenSecret, "AccountId": "1234567_SB1"}})
		id := c["id"].(string)
		f := c["fields"].(map[string]any)
		if c["status"] != "connected" || c["auth"] != "oauth1" || f["ConsumerSecret"] != "(set)" || f["TokenSecret"] != "(set)" || f["TokenId"] != "tok-server" {
			t.Fatalf("created: %v", c)
		}
		// Each call is signed with a fresh nonce: the server refuses a
		// reused one, so every call passing is the check.
		for i := range 6 {
			method, body := "GET", any(nil)
			if i%2 == 1 {
				method, body = "POST", `{"name":"A b+c"}`
			}
			p := e.call(0, method, "/v1/connections/"+id+"/proxy/members/me?fields=id,name&x=a%20b", proxy, body)
			if p.status != 200 || p.json(t)["token"] != "tok-server" {
				t.Fatalf("proxied call %d (%s): %d %s", i, method, p.status, p.body)
			}
		}
		for range 2 {
			if a := e.call(0, "POST", "/v1/connections/"+id+"/actions/me", proxy, nil); a.status != 200 || a.json(t)["id"] != "member-1" {
				t.Fatalf("action: %d %s", a.status, a.body)
			}
		}

		// A wrong token secret: the provider refuses the signature, and its
		// 401 is the answer (a signature, unlike a login, is no handshake
		// the engine can tell refused from the API's own 401s).
		e.must(200, 0, "PATCH", "/v1/connections/"+id+"/fields", w, map[string]any{"fields": map[string]any{"TokenSecret": wrongSecret}})
		bad := e.call(0, "GET", "/v1/connections/"+id+"/proxy/members/me", proxy, nil)
		if bad.status != 401 || !strings.Contains(string(bad.body), "invalid signature") {
			t.Fatalf("a wrong token secret: %d %s", bad.status, bad.body)
		}
		shows("the answer to a wrong secret", bad.body)
		e.must(200, 0, "PATCH", "/v1/connections/"+id+"/fields", w, map[string]any{"fields": map[string]any{"TokenSecret": tokenSecret}})
		if p := e.call(0, "GET", "/v1/connections/"+id+"/proxy/members/me", proxy, nil); p.status != 200 {
			t.Fatalf("with the right secret again: %d %s", p.status, p.body)
		}

		for _, path := range []string{"/v1/connections/" + id, "/v1/connections", "/v1/connections?definition=signed", "/v1/events?connection=" + id} {
			key := rd
			if strings.HasPrefix(path, "/v1/events") {
				key = admin
			}
			resp := e.call(0, "GET", path, key, nil)
			if resp.status != 200 {
				t.Fatalf("GET %s: %d %s", path, resp.status, resp.body)
			}
			shows("GET "+path, resp.body)
		}
		for _, path := range []string{"/token", "/refresh", "/authorize"} {
			key := w
			if path == "/token" {
				key = e.keys["acme:token"]
			}
			resp := e.call(0, "POST", "/v1/connections/"+id+path, key, nil)
			if resp.status != 409 || !strings.Contains(string(resp.body), "credentials-connection") {
				t.Errorf("POST %s: %d %s", path, resp.status, resp.body)
			}
			shows("POST "+path, resp.body)
		}
	})
}
