package server_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/server/state"
)

// connectLink asks for a connect link as tenant and returns its URL.
func (e *env) connectLink(tenant string, body map[string]any) string {
	e.t.Helper()
	m := e.must(201, 0, "POST", "/v1/connect-sessions", e.keys[tenant+":connections:write"], body)
	link, _ := m["url"].(string)
	if !strings.HasPrefix(link, e.replicas[0].url+"/connect/"+state.ConnectTokenPrefix) {
		e.t.Fatalf("connect session URL %q", link)
	}
	if exp, err := time.Parse(time.RFC3339, m["expires_at"].(string)); err != nil || time.Until(exp) > 31*time.Minute || time.Until(exp) < 25*time.Minute {
		e.t.Fatalf("expires_at %v (%v), want in about 30 minutes", m["expires_at"], err)
	}
	remember(strings.TrimPrefix(link, e.replicas[0].url+"/connect/"))
	return link
}

// page is a browser's GET.
func page(t testing.TB, u string) response {
	t.Helper()
	resp, err := client.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}

// submit is a browser's form POST.
func submit(t testing.TB, u string, form url.Values) response {
	t.Helper()
	resp, err := client.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}

func contains(t testing.TB, what string, r response, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(string(r.body), w) {
			t.Fatalf("%s (HTTP %d) does not contain %q:\n%s", what, r.status, w, r.body)
		}
	}
}

func (e *env) connectionCount(tenant string) int {
	e.t.Helper()
	cs, _, err := e.replicas[0].storage.State.Connections(context.Background(), tenant, state.Filter{Limit: state.MaxLimit})
	if err != nil {
		e.t.Fatal(err)
	}
	return len(cs)
}

// TestConnectPage: the platform's link shows the definition's fields and
// environments; a bad value gets the engine's message beside its field and
// creates nothing; a good one creates the connection and starts its
// authorization; the result page says connected and returns the user to
// the platform with the connection and status. The link then works no more.
func TestConnectPage(t *testing.T) {
	e := newEnv(t, t.TempDir()+"/connector.db", envOptions{})
	cl := e.oauthClient("acme")
	link := e.connectLink("acme", map[string]any{"oauth_clients": []string{cl}, "end_user": "user-42", "return_to": "https://platform.example.com/connected/acme?from=test"})

	form := page(t, link)
	if form.status != 200 {
		t.Fatalf("connect page: %d %s", form.status, form.body)
	}
	contains(t, "the connect page", form,
		`<label for="field-CompanyId">Company ID</label>`,
		"The number after app.procore.com in your browser&#39;s address bar",
		`aria-describedby="field-CompanyId-hint"`, `inputmode="numeric"`, `pattern="[1-9][0-9]{0,19}"`,
		"<legend>Environment</legend>", `<input type="radio" id="env-sandbox" name="environment" value="sandbox">`,
		`value="production" checked`, "Developer sandbox")
	if csp := form.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "form-action 'self' "+e.emuURL) || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Fatalf("connect page CSP %q", csp)
	}

	for _, bad := range []struct{ value, message string }{
		{"abc", `&#34;abc&#34; is not a whole number`},
		{"0123", `&#34;0123&#34; does not match the pattern [1-9][0-9]{0,19}`},
	} {
		r := submit(t, link, url.Values{"client": {cl}, "environment": {"sandbox"}, "field.CompanyId": {bad.value}})
		if r.status != 422 {
			t.Fatalf("CompanyId %q: %d %s", bad.value, r.status, r.body)
		}
		contains(t, "the refused form", r,
			`<p class="error" id="field-CompanyId-error"><span class="skip">Error:</span> `+bad.message+`</p>`,
			`aria-describedby="field-CompanyId-hint field-CompanyId-error" aria-invalid="true"`,
			`value="`+bad.value+`"`, `value="sandbox" checked`, `<a href="#field-CompanyId">Company ID: `+bad.message)
	}
	if n := e.connectionCount("acme"); n != 0 {
		t.Fatalf("refused forms created %d connections", n)
	}
	if st := e.emu.Stats(); st.CodeExchanges != 0 {
		t.Fatal("a refused form reached the provider")
	}

	r := submit(t, link, url.Values{"client": {cl}, "environment": {"sandbox"}, "field.CompanyId": {" 562949953421312 "}})
	authURL := r.header.Get("Location")
	if r.status != 303 || !strings.HasPrefix(authURL, e.emuURL+"/oauth/authorize?") {
		t.Fatalf("a good form: %d, Location %q: %s", r.status, authURL, r.body)
	}
	cs, _, _ := e.replicas[0].storage.State.Connections(context.Background(), "acme", state.Filter{})
	if len(cs) != 1 || cs[0].Environment != "sandbox" || cs[0].Fields["CompanyId"] != "562949953421312" || cs[0].Status != state.StatusPending {
		t.Fatalf("connections after the form: %v %v", cs, cs[0].Fields)
	}
	conn := cs[0].ID
	result := e.browse(0, e.consent(authURL, "allow"))
	contains(t, "the result page", result, "Connected", "Your Procore V2 OAuth Code Flow account is connected, in the environment Developer sandbox")
	back := "https://platform.example.com/connected/acme?connection=" + conn + "&amp;from=test&amp;status=connected"
	contains(t, "the result page", result, `href="`+back+`"`, "Return to the application")
	if result.status != 200 || result.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("result page: %d %v", result.status, result.header)
	}
	c := e.must(200, 0, "GET", "/v1/connections/"+conn, e.keys["acme:connections:read"], nil)
	if c["status"] != "connected" || c["environment"] != "sandbox" {
		t.Fatalf("the connection after the connect page: %v", c)
	}
	e.must(200, 0, "POST", "/v1/connections/"+conn+"/actions/me", e.keys["acme:proxy"], nil)
	admin := newBrowser(t, e.replicas[0].url)
	admin.signIn(e.keys["acme:admin"])
	contains(t, "the admin page of the connection", admin.get("/admin/connections/"+conn), "<dt>End user</dt><dd>user-42")

	for _, again := range []response{page(t, link), submit(t, link, url.Values{"client": {cl}, "field.CompanyId": {"1"}})} {
		if again.status != 410 {
			t.Fatalf("a used link: %d %s", again.status, again.body)
		}
		contains(t, "a used link", again, "This link was already used", "connection="+conn)
	}
	if n := e.connectionCount("acme"); n != 1 {
		t.Fatalf("%d connections after a used link was posted again, want 1", n)
	}
}

// TestConnectPageOutcomes: denied, expired link, expired authorization,
// unknown link, wrong environment (the provider refuses the client), and a
// choice between two services.
func TestConnectPageOutcomes(t *testing.T) {
	e := newEnv(t, t.TempDir()+"/connector.db", envOptions{})
	cl := e.oauthClient("acme")
	db := e.replicas[0].storage.State
	start := func(link string) string {
		t.Helper()
		r := submit(t, link, url.Values{"client": {cl}, "environment": {"production"}, "field.CompanyId": {"7"}})
		if r.status != 303 {
			t.Fatalf("form: %d %s", r.status, r.body)
		}
		return r.header.Get("Location")
	}
	ret := map[string]any{"oauth_clients": []string{cl}, "return_to": "https://platform.example.com/connected"}

	t.Run("denied", func(t *testing.T) {
		before := e.connectionCount("acme")
		res := e.browse(0, e.consent(start(e.connectLink("acme", ret)), "deny"))
		contains(t, "the denied page", res, "access was declined", "nothing was connected", `href="https://platform.example.com/connected?status=denied"`)
		if n := e.connectionCount("acme"); n != before {
			t.Fatalf("a denied connect left %d connections, want %d", n, before)
		}
	})
	t.Run("expired link", func(t *testing.T) {
		link := e.connectLink("acme", ret)
		db.Now = func() time.Time { return time.Now().Add(31 * time.Minute) }
		defer func() { db.Now = time.Now }()
		for _, r := range []response{page(t, link), submit(t, link, url.Values{"client": {cl}, "field.CompanyId": {"7"}})} {
			if r.status != 410 {
				t.Fatalf("an expired link: %d %s", r.status, r.body)
			}
			contains(t, "an expired link", r, "This link has expired", "status=expired", `<link rel="stylesheet" href="/assets/style.`)
		}
	})
	t.Run("expired authorization", func(t *testing.T) {
		cb := e.consent(start(e.connectLink("acme", ret)), "allow")
		db.Now = func() time.Time { return time.Now().Add(11 * time.Minute) }
		defer func() { db.Now = time.Now }()
		contains(t, "an expired authorization", e.browse(0, cb), "the sign-in took too long", "status=expired")
	})
	t.Run("unknown link", func(t *testing.T) {
		r := page(t, e.replicas[0].url+"/connect/"+state.ConnectTokenPrefix+"nope")
		if r.status != 404 {
			t.Fatalf("%d", r.status)
		}
		contains(t, "an unknown link", r, "This link is not valid")
	})
	t.Run("wrong environment", func(t *testing.T) {
		bad := e.must(201, 0, "POST", "/v1/oauth-clients", e.keys["acme:admin"], map[string]any{
			"definition": "procore", "client_id": emuClientID, "client_secret": "the-sandbox-app-secret",
			"base_url": e.emuURL, "login_url": e.emuURL,
		})["id"].(string)
		link := e.connectLink("acme", map[string]any{"oauth_clients": []string{bad}, "return_to": "https://platform.example.com/connected"})
		r := submit(t, link, url.Values{"environment": {"sandbox"}})
		if r.status != 303 {
			t.Fatalf("form: %d %s", r.status, r.body)
		}
		contains(t, "the wrong-environment page", e.browse(0, e.consent(r.header.Get("Location"), "allow")),
			"did not accept this application in the Developer sandbox", "status=wrong_environment")
	})
	t.Run("two services", func(t *testing.T) {
		other := e.oauthClient("acme")
		link := e.connectLink("acme", map[string]any{"oauth_clients": []string{cl, other}})
		r := page(t, link)
		contains(t, "the chooser", r, "<legend>Service</legend>", `value="`+cl+`" checked`, `value="`+other+`"`)
		r = page(t, link+"?client="+other)
		contains(t, "the form of the second", r, `name="client" value="`+other+`"`)
		if r := page(t, link+"?client=cli_other"); r.status != 404 {
			t.Fatalf("a service the link does not offer: %d", r.status)
		}
		if r := submit(t, link, url.Values{"client": {"cli_other"}}); r.status != 400 {
			t.Fatalf("posting a service the link does not offer: %d", r.status)
		}
	})
	t.Run("fixed environment", func(t *testing.T) {
		link := e.connectLink("acme", map[string]any{"oauth_clients": []string{cl}, "environment": "sandbox"})
		r := page(t, link)
		contains(t, "a fixed environment", r, "<strong>Environment:</strong> Developer sandbox")
		if strings.Contains(string(r.body), "<legend>Environment</legend>") {
			t.Fatal("a fixed environment is offered as a choice")
		}
		r = submit(t, link, url.Values{"client": {cl}, "environment": {"production"}})
		if r.status != 303 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		cs, err := db.ConnectSessionByToken(context.Background(), strings.TrimPrefix(link, e.replicas[0].url+"/connect/"))
		if c, _ := db.Connection(context.Background(), "acme", cs.Connection); err == nil || c.Environment != "sandbox" {
			t.Fatalf("the posted environment replaced the link's: %q (%v)", c.Environment, err)
		}
	})
}

// TestConnectSessionAPI: bad requests name their member and create nothing;
// another tenant's clients and connections are unknown.
func TestConnectSessionAPI(t *testing.T) {
	e := newEnv(t, t.TempDir()+"/connector.db", envOptions{})
	cl := e.oauthClient("acme")
	conn := e.connection("acme", cl)
	cc := e.must(201, 0, "POST", "/v1/oauth-clients", e.keys["acme:admin"], map[string]any{
		"definition": "procore-client-credentials", "client_id": "svc", "client_secret": "svc-secret-123",
		"base_url": e.emuURL, "login_url": e.emuURL,
	})["id"].(string)
	remember("svc-secret-123")
	write := e.keys["acme:connections:write"]
	cases := []struct {
		name, key, body string
		status          int
		field           string
	}{
		{"nothing offered", write, `{}`, 422, "oauth_clients"},
		{"unknown client", write, `{"oauth_clients":["cli_nope"]}`, 422, "oauth_clients"},
		{"another tenant's client", e.keys["globex:connections:write"], `{"oauth_clients":["` + cl + `"]}`, 422, "oauth_clients"},
		{"another tenant's connection", e.keys["globex:connections:write"], `{"connection":"` + conn + `"}`, 422, "connection"},
		{"no client for definition", e.keys["globex:connections:write"], `{"definitions":["procore"]}`, 422, "definitions"},
		{"client credentials", write, `{"oauth_clients":["` + cc + `"]}`, 422, "oauth_clients"},
		{"return_to not allowed", write, `{"oauth_clients":["` + cl + `"],"return_to":"https://evil.example.net/"}`, 422, "return_to"},
		{"unknown environment", write, `{"oauth_clients":["` + cl + `"],"environment":"staging"}`, 422, "environment"},
		{"end user on two lines", write, `{"oauth_clients":["` + cl + `"],"end_user":"a\nb"}`, 422, "end_user"},
		{"connection and clients", write, `{"connection":"` + conn + `","oauth_clients":["` + cl + `"]}`, 422, "connection"},
		{"unknown member", write, `{"oauth_client":"` + cl + `"}`, 400, "oauth_client"},
		{"read key", e.keys["acme:connections:read"], `{"oauth_clients":["` + cl + `"]}`, 403, "Authorization"},
		{"no key", "", `{}`, 401, "Authorization"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.call(0, "POST", "/v1/connect-sessions", tc.key, tc.body)
			if r.status != tc.status {
				t.Fatalf("%d, want %d: %s", r.status, tc.status, r.body)
			}
			if f := problemField(t, r); f != tc.field {
				t.Fatalf("problem names %q, want %q: %s", f, tc.field, r.body)
			}
		})
	}
	var n int
	if err := e.replicas[0].storage.State.SQL().QueryRow(`SELECT count(*) FROM server_connect_sessions`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("refused requests stored %d connect sessions (%v)", n, err)
	}
	// By definition name: every client of the tenant using it.
	m := e.must(201, 0, "POST", "/v1/connect-sessions", write, map[string]any{"definitions": []string{"procore"}})
	remember(strings.TrimPrefix(m["url"].(string), e.replicas[0].url+"/connect/"))
	if got := m["oauth_clients"].([]any); len(got) != 1 || got[0] != cl {
		t.Fatalf("definitions resolved to %v", got)
	}
}

// TestReauthorizeLink: a link for an existing connection authorizes it
// again without asking for its fields, keeping its environment.
func TestReauthorizeLink(t *testing.T) {
	e := newEnv(t, t.TempDir()+"/connector.db", envOptions{})
	cl := e.oauthClient("acme")
	conn := e.connection("acme", cl)
	link := e.connectLink("acme", map[string]any{"connection": conn})
	r := page(t, link)
	contains(t, "the re-authorization page", r, "Reconnect your account", "<strong>Environment:</strong> Production")
	if strings.Contains(string(r.body), "field-CompanyId") {
		t.Fatal("a re-authorization asks for the fields again")
	}
	r = submit(t, link, url.Values{"client": {cl}})
	if r.status != 303 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	res := e.browse(0, e.consent(r.header.Get("Location"), "allow"))
	contains(t, "the result", res, "Connected", "You can close this window.")
	if n := e.connectionCount("acme"); n != 1 {
		t.Fatalf("%d connections, want the one authorized again", n)
	}
	if c := e.must(200, 0, "GET", "/v1/connections/"+conn, e.keys["acme:connections:read"], nil); c["status"] != "connected" {
		t.Fatalf("%v", c)
	}
	_ = http.StatusOK
}
