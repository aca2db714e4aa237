package server_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/connector-engine/connector/connector/server/state"
	"github.com/connector-engine/connector/definitions"
)

// credentialsSecretPrefix starts the secret keys these tests issue, so
// that TestZZNoSecretInLogs knows they ran.
const credentialsSecretPrefix = "sk_test_credentials"

// upstream is a loopback API that records the credential of each request.
type upstream struct {
	mu    sync.Mutex
	auths []string
	url   string
}

func newUpstream(t testing.TB) *upstream {
	u := &upstream{}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.auths = append(u.auths, r.Header.Get("Authorization"))
		u.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"acct_1","path":"` + r.URL.Path + `"}`))
	}))
	t.Cleanup(hs.Close)
	u.url = hs.URL
	return u
}

func (u *upstream) last() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.auths) == 0 {
		return ""
	}
	return u.auths[len(u.auths)-1]
}

func (u *upstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.auths)
}

// credentialsDefs is the builtin set with an API-key definition ("keyed",
// Stripe's scheme, on the loopback upstream), a basic-auth one, and
// examples/stripe.yaml.
func credentialsDefs(t testing.TB, base string) *definitions.Set {
	t.Helper()
	keyed := `name: keyed
title: Keyed (secret key)
base_url: ` + base + `
fields:
  SecretKey:
    title: Secret key
    secret: true
    required: true
    pattern: "sk_(test|live)_[A-Za-z0-9_-]+"
  Account:
    title: Account
auth:
  scheme: apikey
  apikey:
    in: header
    name: Authorization
    value: Bearer ${SecretKey}
actions:
  me:
    title: Who am I
    path: /me
`
	basic := `name: basicauth
title: Basic
base_url: ` + base + `
fields:
  Username: {title: User, required: true}
  Password: {title: Password, secret: true, required: true}
auth:
  scheme: basic
  basic:
    username: ${Username}
    password: ${Password}
`
	set, err := definitions.Parse(definitions.Builtin(),
		definitions.File{Path: "keyed.yaml", Data: []byte(keyed)},
		definitions.File{Path: "basicauth.yaml", Data: []byte(basic)},
		stripeFile(t))
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// TestCredentialsConnection: the whole life of a connection of a
// definition without OAuth, through the API only: created with its
// definition and secret key, connected at once, used through the proxy
// and an action, its key replaced (the cached engine uses the new one at
// the next call), never shown anywhere, deleted.
func TestCredentialsConnection(t *testing.T) {
	backends(t, func(t *testing.T, spec func(*testing.T) string) {
		up := newUpstream(t)
		e := newEnv(t, spec(t), envOptions{definitions: credentialsDefs(t, up.url)})
		w, r, admin := e.keys["acme:connections:write"], e.keys["acme:connections:read"], e.keys["acme:admin"]
		key1, key2 := credentialsSecretPrefix+"One0123456789", credentialsSecretPrefix+"Two9876543210"
		refused := "pk_live_" + credentialsSecretPrefix[8:] + "Refused"
		remember(key1, key2, refused)

		c := e.must(201, 0, "POST", "/v1/connections", w, map[string]any{"definition": "keyed", "fields": map[string]any{"SecretKey": key1, "Account": "acct_1"}})
		id := c["id"].(string)
		if c["status"] != "connected" || c["auth"] != "apikey" || c["definition"] != "keyed" || c["oauth_client"] != nil {
			t.Fatalf("created: %v", c)
		}
		if f := c["fields"].(map[string]any); f["SecretKey"] != "(set)" || f["Account"] != "acct_1" {
			t.Fatalf("fields: %v", f)
		}
		shows := func(where string, body []byte) {
			t.Helper()
			for _, k := range []string{key1, key2, refused} {
				if strings.Contains(string(body), k) {
					t.Errorf("%s shows a secret key", where)
				}
			}
		}
		for _, path := range []string{"/v1/connections/" + id, "/v1/connections", "/v1/connections?definition=keyed", "/v1/events?connection=" + id} {
			key := r
			if strings.HasPrefix(path, "/v1/events") {
				key = admin
			}
			resp := e.call(0, "GET", path, key, nil)
			if resp.status != 200 {
				t.Fatalf("GET %s: %d %s", path, resp.status, resp.body)
			}
			shows("GET "+path, resp.body)
		}
		if l := e.must(200, 0, "GET", "/v1/connections?definition=keyed", r, nil)["connections"].([]any); len(l) != 1 {
			t.Fatalf("connections of definition keyed: %v", l)
		}
		if l := e.must(200, 0, "GET", "/v1/connections?definition=procore", r, nil)["connections"].([]any); len(l) != 0 {
			t.Fatalf("connections of definition procore: %v", l)
		}
		if l := e.must(200, 0, "GET", "/v1/oauth-clients", admin, nil)["oauth_clients"].([]any); len(l) != 0 {
			t.Fatalf("a credentials connection shows as an OAuth client: %v", l)
		}
		evs := e.must(200, 0, "GET", "/v1/events?connection="+id, admin, nil)["events"].([]any)
		if len(evs) != 1 || evs[0].(map[string]any)["type"] != "connection.connected" {
			t.Fatalf("events: %v", evs)
		}

		// The proxy and actions send the key; the caller's Authorization is not forwarded.
		p := e.call(0, "GET", "/v1/connections/"+id+"/proxy/balance", e.keys["acme:proxy"], nil)
		if p.status != 200 || up.last() != "Bearer "+key1 || !strings.Contains(string(p.body), `"/balance"`) {
			t.Fatalf("proxy: %d %s; upstream saw %q", p.status, p.body, strings.ReplaceAll(up.last(), key1, "KEY1"))
		}
		if a := e.call(0, "POST", "/v1/connections/"+id+"/actions/me", e.keys["acme:proxy"], nil); a.status != 200 || up.last() != "Bearer "+key1 {
			t.Fatalf("action: %d %s", a.status, a.body)
		}

		// What only OAuth has is a 409 that says what to do instead.
		for _, path := range []string{"/token", "/authorize", "/refresh"} {
			key := w
			if path == "/token" {
				key = e.keys["acme:token"]
			}
			resp := e.call(0, "POST", "/v1/connections/"+id+path, key, nil)
			m := resp.json(t)
			if resp.status != 409 || m["type"] == nil || !strings.HasSuffix(m["type"].(string), "credentials-connection") || !strings.Contains(m["detail"].(string), "PATCH /v1/connections/"+id+"/fields") {
				t.Errorf("POST %s: %d %s", path, resp.status, resp.body)
			}
			shows("POST "+path, resp.body)
		}

		// Replaced: write-only, checked like a new connection's, and the
		// cached engine sends the new key at the next call.
		before := up.count()
		bad := e.call(0, "PATCH", "/v1/connections/"+id+"/fields", w, map[string]any{"fields": map[string]any{"SecretKey": refused}})
		if bad.status != 422 || problemField(t, bad) != "fields.SecretKey" {
			t.Fatalf("a key of the wrong form: %d %s", bad.status, bad.body)
		}
		shows("the problem for a refused key", bad.body)
		if bad := e.call(0, "PATCH", "/v1/connections/"+id+"/fields", w, map[string]any{"fields": map[string]any{"SecretKey": nil}}); bad.status != 422 || problemField(t, bad) != "fields.SecretKey" {
			t.Fatalf("unsetting a required key: %d %s", bad.status, bad.body)
		}
		if bad := e.call(0, "PATCH", "/v1/connections/"+id+"/fields", w, map[string]any{"fields": map[string]any{}}); bad.status != 422 || problemField(t, bad) != "fields" {
			t.Fatalf("no fields: %d %s", bad.status, bad.body)
		}
		if up.count() != before {
			t.Fatal("a refused change reached the upstream")
		}
		e.must(200, 0, "GET", "/v1/connections/"+id+"/proxy/balance", e.keys["acme:proxy"], nil)
		if up.last() != "Bearer "+key1 {
			t.Fatal("a refused change replaced the key")
		}
		u := e.must(200, 0, "PATCH", "/v1/connections/"+id+"/fields", w, map[string]any{"fields": map[string]any{"SecretKey": key2, "Account": nil}})
		if f := u["fields"].(map[string]any); f["SecretKey"] != "(set)" || f["Account"] != nil || u["status"] != "connected" {
			t.Fatalf("after PATCH: %v", u)
		}
		e.must(200, 0, "GET", "/v1/connections/"+id+"/proxy/balance", e.keys["acme:proxy"], nil)
		if up.last() != "Bearer "+key2 {
			t.Fatal("after the key was replaced, the proxy still sends the old one")
		}

		// The admin page lists it and shows no secret.
		b := newBrowser(t, e.replicas[0].url)
		b.signIn(admin)
		home := b.get("/admin")
		conn := b.get("/admin/connections/" + id)
		if !strings.Contains(string(home.body), id) || conn.status != 200 || !strings.Contains(string(conn.body), "Credentials") || strings.Contains(string(conn.body), "Refresh now") {
			t.Fatalf("admin pages: %d %s", conn.status, conn.body)
		}
		shows("the admin page", home.body)
		shows("the connection's admin page", conn.body)
		shows("/metrics", e.call(0, "GET", "/metrics", "", nil).body)

		// Another tenant's key learns nothing.
		g := e.keys["globex:admin"]
		const none = "con_00000000000000000000000000000000"
		for _, rt := range []struct{ method, path, body string }{
			{"GET", "/v1/connections/{conn}", ""},
			{"PATCH", "/v1/connections/{conn}/fields", `{"fields":{"SecretKey":"sk_test_stolen"}}`},
			{"GET", "/v1/connections/{conn}/proxy/balance", ""},
			{"POST", "/v1/connections/{conn}/token", ""},
			{"DELETE", "/v1/connections/{conn}", ""},
		} {
			var body any
			if rt.body != "" {
				body = rt.body
			}
			theirs := e.call(0, rt.method, strings.ReplaceAll(rt.path, "{conn}", id), g, body)
			nobody := e.call(0, rt.method, strings.ReplaceAll(rt.path, "{conn}", none), g, body)
			if theirs.status != 404 || strings.ReplaceAll(string(theirs.body), id, "ID") != strings.ReplaceAll(string(nobody.body), none, "ID") {
				t.Errorf("%s %s as globex: %d %s", rt.method, rt.path, theirs.status, theirs.body)
			}
		}
		if l := e.must(200, 0, "GET", "/v1/connections?definition=keyed", g, nil)["connections"].([]any); len(l) != 0 {
			t.Fatalf("globex lists acme's connection: %v", l)
		}
		e.must(200, 0, "GET", "/v1/connections/"+id+"/proxy/balance", e.keys["acme:proxy"], nil)
		if up.last() != "Bearer "+key2 {
			t.Fatal("globex's attempts changed acme's key")
		}

		// Delete: nothing to revoke at the provider.
		calls := up.count()
		e.must(204, 0, "DELETE", "/v1/connections/"+id, w, nil)
		if resp := e.call(0, "GET", "/v1/connections/"+id, r, nil); resp.status != 404 {
			t.Fatalf("after delete: %d", resp.status)
		}
		if up.count() != calls {
			t.Fatal("deleting called the upstream")
		}
		if err := e.replicas[0].storage.State.Ready(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

// TestCredentialsConnectionProblems: every wrong way to name what a new
// connection is of gets a 422 naming the member and saying what to do,
// and stores nothing.
func TestCredentialsConnectionProblems(t *testing.T) {
	up := newUpstream(t)
	e := newEnv(t, t.TempDir()+"/connector.db", envOptions{definitions: credentialsDefs(t, up.url)})
	w := e.keys["acme:connections:write"]
	cl := e.oauthClient("acme")
	// A client whose definition has no OAuth (stored before the definition
	// changed): only the state can make one now.
	odd, err := e.replicas[0].storage.State.CreateClient(context.Background(), state.Client{Tenant: "acme", Definition: "keyed", ClientID: "x", Secret: "odd-client-secret-0123"})
	if err != nil {
		t.Fatal(err)
	}
	remember("odd-client-secret-0123")
	for _, tc := range []struct {
		name  string
		body  map[string]any
		field string
		says  string
	}{
		{"both", map[string]any{"oauth_client": cl, "definition": "keyed"}, "definition", "not both"},
		{"neither", map[string]any{"fields": map[string]any{"SecretKey": "sk_test_x"}}, "oauth_client", "oauth_client or definition is required"},
		{"definition with OAuth", map[string]any{"definition": "procore"}, "definition", "POST /v1/oauth-clients"},
		{"unknown definition", map[string]any{"definition": "nope"}, "definition", "nope"},
		{"client without OAuth", map[string]any{"oauth_client": odd.ID}, "oauth_client", "instead of oauth_client"},
		{"missing key", map[string]any{"definition": "keyed"}, "fields.SecretKey", "required"},
		{"wrong key", map[string]any{"definition": "keyed", "fields": map[string]any{"SecretKey": "nope"}}, "fields.SecretKey", ""},
		{"unknown field", map[string]any{"definition": "keyed", "fields": map[string]any{"SecretKey": "sk_test_x", "Nope": "x"}}, "fields.Nope", ""},
		{"missing password", map[string]any{"definition": "basicauth", "fields": map[string]any{"Username": "u"}}, "fields.Password", "required"},
	} {
		resp := e.call(0, "POST", "/v1/connections", w, tc.body)
		if resp.status != 422 || problemField(t, resp) != tc.field || !strings.Contains(string(resp.body), tc.says) {
			t.Errorf("%s: %d %s", tc.name, resp.status, resp.body)
		}
	}
	if l := e.must(200, 0, "GET", "/v1/connections", e.keys["acme:connections:read"], nil)["connections"].([]any); len(l) != 0 {
		t.Fatalf("refused requests stored connections: %v", l)
	}
	// Basic credentials: the password is sent, never shown.
	const pw = "basic-password-credentials-0123"
	remember(pw)
	c := e.must(201, 0, "POST", "/v1/connections", w, map[string]any{"definition": "basicauth", "fields": map[string]any{"Username": "ann", "Password": pw}})
	if c["fields"].(map[string]any)["Password"] != "(set)" || c["auth"] != "basic" {
		t.Fatalf("basic connection: %v", c)
	}
	e.must(200, 0, "GET", "/v1/connections/"+c["id"].(string)+"/proxy/x", e.keys["acme:proxy"], nil)
	if want := "Basic " + basicAuth("ann", pw); up.last() != want {
		t.Fatal("the proxy did not send the basic credentials")
	}
}

func basicAuth(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}

// stripeFile is examples/stripe.yaml.
func stripeFile(t testing.TB) definitions.File {
	t.Helper()
	path := filepath.Join("..", "..", "examples", "stripe.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return definitions.File{Path: path, Data: data}
}

// TestConnectPageCredentials: a connect link offering a definition without
// OAuth shows its fields, the secret one as a password input; a refused
// key is answered with the engine's message and never echoed; a good form
// connects at once, lands on the result page with the link back, and uses
// the link up.
func TestConnectPageCredentials(t *testing.T) {
	up := newUpstream(t)
	e := newEnv(t, t.TempDir()+"/connector.db", envOptions{definitions: credentialsDefs(t, up.url)})
	cs := e.must(201, 0, "POST", "/v1/connect-sessions", e.keys["acme:connections:write"], map[string]any{
		"definitions": []string{"keyed"}, "end_user": "user-7", "return_to": "https://platform.example.com/connected",
	})
	link := cs["url"].(string)
	remember(strings.TrimPrefix(link, e.replicas[0].url+"/connect/"))
	if cl := cs["oauth_clients"].([]any); len(cl) != 0 || fmt.Sprint(cs["credentials_definitions"]) != "[keyed]" {
		t.Fatalf("connect session: %v", cs)
	}
	form := page(t, link)
	contains(t, "the form", form, `type="password" id="field-SecretKey"`, `name="field.Account"`, "Connect</button>")
	if strings.Contains(string(form.body), "sign in") {
		t.Fatalf("a credentials form says the user signs in elsewhere:\n%s", form.body)
	}
	refused := "pk_live_" + credentialsSecretPrefix[8:] + "ConnectPage"
	remember(refused)
	bad := submit(t, link, url.Values{"field.SecretKey": {refused}})
	if bad.status != 422 || strings.Contains(string(bad.body), refused) {
		t.Fatalf("a refused key: %d (echoed: %v)", bad.status, strings.Contains(string(bad.body), refused))
	}
	contains(t, "the refused form", bad, "does not match the pattern")
	key := credentialsSecretPrefix + "ConnectPage0123456789"
	remember(key)
	done := submit(t, link, url.Values{"field.SecretKey": {key}, "field.Account": {"acct_9"}})
	contains(t, "the result page", done, "Connected", "https://platform.example.com/connected?connection=con_")
	if done.status != 200 || strings.Contains(string(done.body), key) {
		t.Fatalf("result: %d %s", done.status, done.body)
	}
	list := e.must(200, 0, "GET", "/v1/connections?definition=keyed", e.keys["acme:connections:read"], nil)["connections"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["status"] != "connected" {
		t.Fatalf("connections: %v", list)
	}
	id := list[0].(map[string]any)["id"].(string)
	e.must(200, 0, "GET", "/v1/connections/"+id+"/proxy/x", e.keys["acme:proxy"], nil)
	if up.last() != "Bearer "+key {
		t.Fatal("the connection made on the connect page does not send its key")
	}
	if again := submit(t, link, url.Values{"field.SecretKey": {key}}); again.status != 410 {
		t.Fatalf("the link used again: %d", again.status)
	}
	if l := e.must(200, 0, "GET", "/v1/connections", e.keys["acme:connections:read"], nil)["connections"].([]any); len(l) != 1 {
		t.Fatalf("the used link made another connection: %d", len(l))
	}
	// A re-authorization link for it is refused: there is nothing to authorize.
	if r := e.call(0, "POST", "/v1/connect-sessions", e.keys["acme:connections:write"], map[string]any{"connection": id}); r.status != 422 || problemField(t, r) != "connection" {
		t.Fatalf("re-authorization link: %d %s", r.status, r.body)
	}
}
