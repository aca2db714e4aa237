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

// TestVerboseSessionLogin: --verbose logs the session login like every
// other exchange, named "(session login)", before the API request it
// serves, with the password as *** in its URL. The password travels in the
// login URL, a header and the JSON body; in the second definition its field
// is not marked secret, and the body's member name (password) is what
// tells the log it is one. The test fails if the login is not logged, or
// if the password shows anywhere in the output.
func TestVerboseSessionLogin(t *testing.T) {
	const password, sessionToken = "pw-41c9e2aa", "sess-9d0c7e1f55"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/login":
			var body struct {
				User        string
				Credentials struct{ Password string }
			}
			q := r.URL.Query()
			if json.NewDecoder(r.Body).Decode(&body) != nil || body.Credentials.Password != password ||
				q.Get("password")+q.Get("pass") != password || r.Header.Get("X-Login-Pass") != password {
				http.Error(w, "bad login", http.StatusUnauthorized)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"data":{"sid":"` + sessionToken + `"}}`))
		case "/items":
			if r.Header.Get("X-Session-Auth") != sessionToken {
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
	def := func(name, secret, param string) {
		writeFile(t, dir, name+".yaml", `name: `+name+`
title: Session login in --verbose
base_url: `+srv.URL+`
fields:
  User: {required: true}
  Password: {required: true`+secret+`}
ignore_warnings: {secret-in-url: the test sends the password in the URL on purpose}
auth:
  scheme: session
  session:
    login_uri: ${BaseUrl}/login?user=${User}&`+param+`=${Password}
    headers: {X-Login-Pass: "${Password}"}
    body: {user: "${User}", credentials: {password: "${Password}"}}
    token_path: data.sid
    send_token: {name: X-Session-Auth}
`)
		writeFile(t, dir, name+"-conn.yaml", "definition: "+name+".yaml\nfields:\n  User: ada\n  Password: "+password+"\n")
	}
	def("secret", ", secret: true", "password")
	def("plain", "", "pass") // Password not marked secret; pass is no secret parameter name
	for name, param := range map[string]string{"secret": "password", "plain": "pass"} {
		code, out, errOut := runCLI(t, "request", "GET", "/items", "-v", "--connection", filepath.Join(dir, name+"-conn.yaml"),
			"--store", filepath.Join(dir, name+"-store.json"))
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", name, code, errOut)
		}
		login := "http 1: POST " + srv.URL + "/login?" + param + "=***&user=ada (session login) -> 200 OK in "
		if !strings.Contains(errOut, login) || !strings.Contains(errOut, "http 2: GET "+srv.URL+"/items -> 200 OK") {
			t.Errorf("%s: --verbose should log the login as %q, then the API request; stderr:\n%s", name, login, errOut)
		}
		for _, secret := range []string{password, sessionToken} {
			if strings.Contains(out+errOut, secret) {
				t.Errorf("%s: a secret (%s...) is printed:\n%s\n--- stderr\n%s", name, secret[:4], out, errOut)
			}
		}
	}
}
