package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/connector-engine/connector/definitions"
)

// TestCredentialsSessionLogin: a session-login connection logs in with its
// password at its first proxied call; replacing the password drops that
// session, and the next call logs in with the new one. The session token
// is not handed out by the token endpoint.
func TestCredentialsSessionLogin(t *testing.T) {
	var mu sync.Mutex
	logins := map[string]int{} // password -> logins
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/login" {
			var in struct{ User, Password string }
			if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.User != "ann" || strings.HasSuffix(in.Password, "Wrong") {
				w.WriteHeader(401)
				return
			}
			mu.Lock()
			logins[in.Password]++
			mu.Unlock()
			_, _ = w.Write([]byte(`{"token":"session-of-` + in.Password + `"}`))
			return
		}
		_, _ = w.Write([]byte(`{"session":"` + strings.TrimPrefix(r.Header.Get("X-Session"), "session-of-") + `"}`))
	}))
	defer hs.Close()
	def := `name: sessioned
title: Session login
base_url: ` + hs.URL + `
fields:
  User: {title: User, required: true}
  Password: {title: Password, secret: true, required: true}
auth:
  scheme: session
  session:
    login_uri: ${BaseUrl}/login
    body: {User: "${User}", Password: "${Password}"}
    token_path: token
    send_token: {name: X-Session}
`
	set, err := definitions.Parse(definitions.Builtin(), definitions.File{Path: "sessioned.yaml", Data: []byte(def)})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, t.TempDir()+"/connector.db", envOptions{definitions: set})
	pw1, pw2 := credentialsSecretPrefix+"SessionPasswordOne", credentialsSecretPrefix+"SessionPasswordTwo"
	remember(pw1, pw2, "session-of-"+pw1, "session-of-"+pw2)
	w, proxy := e.keys["acme:connections:write"], e.keys["acme:proxy"]
	c := e.must(201, 0, "POST", "/v1/connections", w, map[string]any{"definition": "sessioned", "fields": map[string]any{"User": "ann", "Password": pw1}})
	id := c["id"].(string)
	if c["auth"] != "session" || c["fields"].(map[string]any)["Password"] != "(set)" {
		t.Fatalf("created: %v", c)
	}
	for range 2 {
		if r := e.must(200, 0, "GET", "/v1/connections/"+id+"/proxy/me", proxy, nil); r["session"] != pw1 {
			t.Fatalf("proxy: %v", r)
		}
	}
	if tok := e.call(0, "POST", "/v1/connections/"+id+"/token", e.keys["acme:token"], nil); tok.status != 409 || strings.Contains(string(tok.body), "session-of-") {
		t.Fatalf("token endpoint: %d %s", tok.status, tok.body)
	}
	e.must(200, 0, "PATCH", "/v1/connections/"+id+"/fields", w, map[string]any{"fields": map[string]any{"Password": pw2}})
	if r := e.must(200, 0, "GET", "/v1/connections/"+id+"/proxy/me", proxy, nil); r["session"] != pw2 {
		t.Fatalf("after the password changed, the proxy sent the session of %v", r["session"])
	}
	// A refused login marks the connection as needing new credentials,
	// once, with the provider's reason; new ones bring it back.
	e.must(200, 0, "PATCH", "/v1/connections/"+id+"/fields", w, map[string]any{"fields": map[string]any{"Password": pw1 + "Wrong"}})
	for range 2 {
		bad := e.call(0, "GET", "/v1/connections/"+id+"/proxy/me", proxy, nil)
		if bad.status != 409 || !strings.Contains(string(bad.body), "credentials-refused") || !strings.Contains(string(bad.body), "PATCH /v1/connections/"+id+"/fields") {
			t.Fatalf("a refused login: %d %s", bad.status, bad.body)
		}
	}
	got := e.must(200, 0, "GET", "/v1/connections/"+id, e.keys["acme:connections:read"], nil)
	if got["status"] != "needs_reauthorization" || !strings.Contains(fmt.Sprint(got["reason"]), "session login failed (HTTP 401)") {
		t.Fatalf("after a refused login: %v", got)
	}
	if got := e.must(200, 0, "PATCH", "/v1/connections/"+id+"/fields", w, map[string]any{"fields": map[string]any{"Password": pw2}}); got["status"] != "connected" || got["reason"] != nil {
		t.Fatalf("after new credentials: %v", got)
	}
	var types []string
	for _, ev := range e.must(200, 0, "GET", "/v1/events?connection="+id, e.keys["acme:admin"], nil)["events"].([]any) {
		types = append([]string{ev.(map[string]any)["type"].(string)}, types...)
	}
	if want := "[connection.connected connection.needs_reauth connection.connected]"; fmt.Sprint(types) != want {
		t.Fatalf("events %v, want %s", types, want)
	}
	// Refreshing a session connection logs in again.
	if r := e.must(200, 0, "POST", "/v1/connections/"+id+"/refresh", w, nil); r["status"] != "connected" {
		t.Fatalf("refresh: %v", r)
	}
	// The admin page offers the same: "Log in again", and nothing an
	// OAuth connection has (revoke, a re-authorization link).
	b := newBrowser(t, e.replicas[0].url)
	csrf := b.signIn(e.keys["acme:admin"])
	page := b.get("/admin/connections/" + id)
	if body := string(page.body); page.status != 200 || !strings.Contains(body, "Log in again") || strings.Contains(body, "Revoke access") || strings.Contains(body, "re-authorization link") {
		t.Fatalf("the admin page of a session connection: %d %s", page.status, body)
	}
	if r := b.post("/admin/connections/"+id+"/refresh", url.Values{"csrf": {csrf}}); r.status != 303 || !strings.Contains(r.header.Get("Location"), "done=refreshed") {
		t.Fatalf("Log in again: %d %s", r.status, r.body)
	}
	if r := b.post("/admin/connections/"+id+"/revoke", url.Values{"csrf": {csrf}}); r.status != 409 {
		t.Fatalf("revoking a session connection from the admin page: %d; want 409", r.status)
	}
	mu.Lock()
	defer mu.Unlock()
	if logins[pw1] != 1 || logins[pw2] != 3 {
		t.Fatalf("logins: %d with the first password, %d with the second; want 1 and 3 (the proxied call after the first change, the API's refresh, the admin page's)", logins[pw1], logins[pw2])
	}
}
