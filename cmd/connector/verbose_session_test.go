package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// A session token sent in a query parameter (send_token in: query) is a
// secret in --verbose output: the URL of each API request shows it as ***,
// as does the login request, which carries the password in its body.
func TestVerboseSessionTokenInQuery(t *testing.T) {
	const sessionToken = "sess-3f9a0c7d2b1e"
	var logins atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/login":
			var body struct{ User, Password string }
			if json.NewDecoder(r.Body).Decode(&body) != nil || body.Password != "pw-7c1d9e" {
				http.Error(w, "bad login", http.StatusUnauthorized)
				return
			}
			logins.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"data":{"sid":"` + sessionToken + `"}}`))
		case "/items":
			if r.URL.Query().Get("sid") != sessionToken {
				http.Error(w, "no session", http.StatusUnauthorized)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`[{"id":1}]`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	writeFile(t, dir, "qs.yaml", `name: qs
title: Query session
base_url: `+srv.URL+`
fields:
  User: {required: true}
  Password: {secret: true, required: true}
auth:
  scheme: session
  session:
    login_uri: ${BaseUrl}/login
    body: {user: "${User}", password: "${Password}"}
    token_path: data.sid
    send_token: {in: query, name: sid}
actions:
  list_items:
    path: /items
    pagination: {style: none}
`)
	writeFile(t, dir, "hs.yaml", `name: hs
title: Header session
base_url: `+srv.URL+`
fields:
  User: {required: true}
  Password: {secret: true, required: true}
auth:
  scheme: session
  session:
    login_uri: ${BaseUrl}/login
    body: {user: "${User}", password: "${Password}"}
    token_path: data.sid
    send_token: {name: X-Session-Auth}
`)
	qs := writeFile(t, dir, "qs-conn.yaml", "definition: qs.yaml\nfields:\n  User: ada\n  Password: pw-7c1d9e\n")
	hs := writeFile(t, dir, "hs-conn.yaml", "definition: hs.yaml\nfields:\n  User: ada\n  Password: pw-7c1d9e\n")
	for _, tc := range []struct {
		conn        string
		args        []string
		out, errOut string
	}{
		{qs, []string{"request", "GET", "/items", "--verbose"}, `"id"`, "/items?sid=*** -> 200 OK"},
		{qs, []string{"call", "list_items", "-v"}, `"id"`, "/items?sid=*** -> 200 OK"},
		// --dry-run prints the request it would send, on stdout.
		{qs, []string{"request", "GET", "/items", "--dry-run", "-v"}, "GET " + srv.URL + "/items?sid=***\n", "/items?sid=***"},
		{hs, []string{"request", "GET", "/items", "--dry-run"}, "X-Session-Auth: ***\n", ""},
	} {
		code, out, errOut := runCLI(t, append(tc.args, "--connection", tc.conn, "--store", filepath.Join(dir, "store.json"))...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.args, code, errOut)
		}
		if !strings.Contains(out, tc.out) || !strings.Contains(errOut, tc.errOut) {
			t.Errorf("%v: want %q in the output and %q on stderr; got\n%s\n--- stderr\n%s", tc.args, tc.out, tc.errOut, out, errOut)
		}
		for _, secret := range []string{sessionToken, "pw-7c1d9e"} {
			if strings.Contains(errOut+out, secret) {
				t.Errorf("%v: a secret (%s...) is printed:\n%s\n--- stderr\n%s", tc.args, secret[:4], out, errOut)
			}
		}
	}
	if logins.Load() == 0 {
		t.Error("no login reached the server")
	}
}
