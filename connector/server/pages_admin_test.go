package server_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/server"
	"github.com/connector-engine/connector/connector/server/state"
)

// browser is an HTTP client with cookies, as a browser on the admin pages.
type browser struct {
	t    testing.TB
	c    *http.Client
	base string
}

func newBrowser(t testing.TB, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, c: &http.Client{Jar: jar, Timeout: client.Timeout, CheckRedirect: client.CheckRedirect}}
}

func (b *browser) do(req *http.Request) response {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	for _, c := range resp.Cookies() {
		remember(c.Value)
	}
	r := response{status: resp.StatusCode, header: resp.Header, body: data}
	if m := csrfField.FindSubmatch(data); m != nil {
		remember(string(m[1]))
	}
	return r
}

func (b *browser) get(path string) response {
	b.t.Helper()
	req, _ := http.NewRequest("GET", b.base+path, nil)
	return b.do(req)
}

func (b *browser) post(path string, form url.Values, header ...string) response {
	b.t.Helper()
	req, _ := http.NewRequest("POST", b.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return b.do(req)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t testing.TB, r response) string {
	t.Helper()
	m := csrfField.FindSubmatch(r.body)
	if m == nil {
		t.Fatalf("no CSRF token in the page (HTTP %d): %s", r.status, r.body)
	}
	return string(m[1])
}

// signIn signs b in with key and returns the session's CSRF token.
func (b *browser) signIn(key string) string {
	b.t.Helper()
	login := b.get("/admin")
	r := b.post("/admin/login", url.Values{"csrf": {csrfOf(b.t, login)}, "api_key": {key}})
	if r.status != 303 || r.header.Get("Location") != "/admin" {
		b.t.Fatalf("sign-in: %d %s", r.status, r.body)
	}
	home := b.get("/admin")
	if home.status != 200 || !strings.Contains(string(home.body), "Sign out") {
		b.t.Fatalf("after sign-in: %d %s", home.status, home.body)
	}
	return csrfOf(b.t, home)
}

func (e *env) connectionStatus(tenant, id string) string {
	e.t.Helper()
	c, err := e.replicas[0].storage.State.Connection(context.Background(), tenant, id)
	if err != nil {
		return "gone"
	}
	return c.Status
}

// TestAdminPages: sign in with an admin key, see the connection, refresh,
// re-authorize, revoke and delete it, sign out.
func TestAdminPages(t *testing.T) {
	e := newEnv(t, t.TempDir()+"/connector.db", envOptions{})
	cl := e.oauthClient("acme")
	conn := e.connection("acme", cl)
	e.authorize("acme", conn, 0, 0)
	b := newBrowser(t, e.replicas[0].url)

	login := b.get("/admin")
	contains(t, "the sign-in page", login, `<label for="api_key">Admin API key</label>`, `aria-describedby="api_key-hint"`)
	r := b.post("/admin/login", url.Values{"csrf": {csrfOf(t, login)}, "api_key": {e.keys["acme:admin"]}})
	var session *http.Cookie
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == "connector_admin" {
			session = c
		}
	}
	if r.status != 303 || session == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Path != "/admin" || session.Secure || session.MaxAge <= 0 {
		t.Fatalf("sign-in: %d, cookie %+v", r.status, session)
	}
	if !strings.HasPrefix(session.Value, state.AdminTokenPrefix) || strings.Contains(session.Value, e.keys["acme:admin"]) {
		t.Fatal("the session cookie is not a token of its own")
	}
	home := b.get("/admin")
	csrf := csrfOf(t, home)
	contains(t, "the admin page", home, "Connections of acme", `href="/admin/connections/`+conn+`"`, `<span class="status connected">connected</span>`,
		"<code>"+cl+"</code>", "<code>procore-client-credentials</code>", "valid", "Sign out")

	page := b.get("/admin/connections/" + conn)
	contains(t, "the connection page", page, "<dd>production</dd>", "Refresh now", "Revoke access", "Make a re-authorization link", "Delete")
	// A refresh that failed transiently shows as the last error until one succeeds.
	if _, _, err := e.replicas[0].storage.State.RecordRefresh(context.Background(), "acme", conn, state.RefreshFailed, "the token endpoint timed out"); err != nil {
		t.Fatal(err)
	}
	contains(t, "a failing connection", b.get("/admin"), "refreshes failing since ", ": the token endpoint timed out")
	contains(t, "a failing connection", b.get("/admin/connections/"+conn), "<dt>Last error</dt>", "the token endpoint timed out")
	before := e.emu.Stats()
	r = b.post("/admin/connections/"+conn+"/refresh", url.Values{"csrf": {csrf}})
	if r.status != 303 || r.header.Get("Location") != "/admin/connections/"+conn+"?done=refreshed" {
		t.Fatalf("refresh: %d %s", r.status, r.body)
	}
	if got := e.emu.Stats().Refreshes; got != before.Refreshes+1 {
		t.Fatalf("refresh from the admin page: %d refreshes at the provider, want %d", got, before.Refreshes+1)
	}
	refreshed := b.get("/admin/connections/" + conn + "?done=refreshed")
	contains(t, "after the refresh", refreshed, "The connection was refreshed.", "connection.refreshed")
	if strings.Contains(string(refreshed.body), "Last error") {
		t.Fatal("a refreshed connection still shows its last error")
	}

	r = b.post("/admin/connections/"+conn+"/reauthorize", url.Values{"csrf": {csrf}})
	m := regexp.MustCompile(`<code>(http://[^<]+/connect/cct_[^<]+)</code>`).FindSubmatch(r.body)
	if r.status != 200 || m == nil {
		t.Fatalf("re-authorization link: %d %s", r.status, r.body)
	}
	remember(strings.TrimPrefix(string(m[1]), e.replicas[0].url+"/connect/"))
	contains(t, "the re-authorization link", pageGet(t, string(m[1])), "Reconnect your account")

	r = b.post("/admin/connections/"+conn+"/revoke", url.Values{"csrf": {csrf}})
	if r.status != 303 || e.emu.Stats().Revocations != before.Revocations+1 || e.connectionStatus("acme", conn) != state.StatusNeedsReauth {
		t.Fatalf("revoke: %d, %d revocations, status %s: %s", r.status, e.emu.Stats().Revocations, e.connectionStatus("acme", conn), r.body)
	}
	contains(t, "after revoking", b.get("/admin/connections/"+conn+"?done=revoked"), "needs_reauthorization", "access was revoked from the admin page",
		"connection.connected", "connection.revoked", "revoked: revoked from the admin page")
	if r := e.call(0, "POST", "/v1/connections/"+conn+"/token", e.keys["acme:token"], nil); r.status != 409 {
		t.Fatalf("a token of a revoked connection: %d %s", r.status, r.body)
	}

	r = b.post("/admin/connections/"+conn+"/delete", url.Values{"csrf": {csrf}})
	if r.status != 303 || e.connectionStatus("acme", conn) != "gone" {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if r := b.get("/admin/connections/" + conn); r.status != 404 {
		t.Fatalf("a deleted connection's page: %d", r.status)
	}

	r = b.post("/admin/logout", url.Values{"csrf": {csrf}})
	if r.status != 303 {
		t.Fatalf("sign-out: %d %s", r.status, r.body)
	}
	// The old cookie, replayed, is signed out too.
	replay := newBrowser(t, e.replicas[0].url)
	u, _ := url.Parse(e.replicas[0].url + "/admin")
	replay.c.Jar.SetCookies(u, []*http.Cookie{session})
	if r := replay.get("/admin"); strings.Contains(string(r.body), "Sign out") {
		t.Fatal("a signed-out session still works")
	}
}

func pageGet(t testing.TB, u string) response { return page(t, u) }

// TestAdminCSRF: a form without the session's token (or with another
// session's, or from another site) is refused with 403 and does nothing.
func TestAdminCSRF(t *testing.T) {
	e := newEnv(t, t.TempDir()+"/connector.db", envOptions{})
	cl := e.oauthClient("acme")
	conn := e.connection("acme", cl)
	e.authorize("acme", conn, 0, 0)
	b := newBrowser(t, e.replicas[0].url)
	csrf := b.signIn(e.keys["acme:admin"])
	other := newBrowser(t, e.replicas[0].url).signIn(e.keys["acme:admin"])
	before := e.emu.Stats()
	for _, action := range []string{"refresh", "revoke", "delete", "reauthorize"} {
		for name, form := range map[string]url.Values{"none": {}, "empty": {"csrf": {""}}, "another session's": {"csrf": {other}}, "truncated": {"csrf": {csrf[:len(csrf)-1]}}} {
			if r := b.post("/admin/connections/"+conn+"/"+action, form); r.status != 403 || !strings.Contains(string(r.body), "nothing was done") {
				t.Errorf("%s with %s token: %d %s", action, name, r.status, r.body)
			}
		}
		if r := b.post("/admin/connections/"+conn+"/"+action, url.Values{"csrf": {csrf}}, "Sec-Fetch-Site", "cross-site"); r.status != 403 {
			t.Errorf("%s from another site: %d", action, r.status)
		}
	}
	if r := b.post("/admin/logout", url.Values{}); r.status != 403 {
		t.Errorf("sign-out without a token: %d", r.status)
	}
	if r := newBrowser(t, e.replicas[0].url).post("/admin/connections/"+conn+"/refresh", url.Values{"csrf": {csrf}}); r.status != 401 {
		t.Errorf("a form without a session: %d", r.status)
	}
	if r := newBrowser(t, e.replicas[0].url).post("/admin/login", url.Values{"api_key": {e.keys["acme:admin"]}}); r.status != 403 {
		t.Errorf("a sign-in without its token: %d", r.status)
	}
	after := e.emu.Stats()
	if after.Refreshes != before.Refreshes || after.Revocations != before.Revocations || e.connectionStatus("acme", conn) != state.StatusConnected {
		t.Fatalf("refused forms acted: refreshes %d->%d, revocations %d->%d, status %s", before.Refreshes, after.Refreshes, before.Revocations, after.Revocations, e.connectionStatus("acme", conn))
	}
	var links int
	if err := e.replicas[0].storage.State.SQL().QueryRow(`SELECT count(*) FROM server_connect_sessions`).Scan(&links); err != nil || links != 0 {
		t.Fatalf("refused forms made %d links (%v)", links, err)
	}
	if r := b.get("/admin"); !strings.Contains(string(r.body), "Sign out") {
		t.Fatal("a refused sign-out signed out")
	}
}

// TestAdminSignInErrors: a wrong key and a key without the admin scope are
// refused beside the field.
func TestAdminSignInErrors(t *testing.T) {
	e := newEnv(t, t.TempDir()+"/connector.db", envOptions{})
	for _, tc := range []struct {
		key, want string
		status    int
	}{
		{state.KeyPrefix + "not-a-key", "This API key is not valid", 401},
		{e.keys["acme:connections:write"], "This API key lacks the admin scope", 403},
		{"", "Enter an admin API key.", 422},
	} {
		b := newBrowser(t, e.replicas[0].url)
		r := b.post("/admin/login", url.Values{"csrf": {csrfOf(t, b.get("/admin"))}, "api_key": {tc.key}})
		if r.status != tc.status {
			t.Fatalf("%q: %d %s", tc.want, r.status, r.body)
		}
		contains(t, "the refused sign-in", r, `<p class="error" id="api_key-error" role="alert"><span class="skip">Error:</span> `+tc.want, `aria-describedby="api_key-hint api_key-error" aria-invalid="true"`)
	}
}

// TestAdminTenantIsolation: globex's admin session sees nothing of acme's
// and cannot act on it: acme's connection answers like one that does not
// exist.
func TestAdminTenantIsolation(t *testing.T) {
	e := newEnv(t, t.TempDir()+"/connector.db", envOptions{})
	cl := e.oauthClient("acme")
	conn := e.connection("acme", cl)
	e.authorize("acme", conn, 0, 0)
	g := newBrowser(t, e.replicas[0].url)
	csrf := g.signIn(e.keys["globex:admin"])
	home := g.get("/admin")
	if strings.Contains(string(home.body), conn) || strings.Contains(string(home.body), cl) {
		t.Fatal("globex's admin page shows acme's objects")
	}
	const unknown = "con_00000000000000000000000000000000"
	before := e.emu.Stats()
	for _, req := range []struct{ method, path string }{
		{"GET", "/admin/connections/{id}"},
		{"POST", "/admin/connections/{id}/refresh"},
		{"POST", "/admin/connections/{id}/revoke"},
		{"POST", "/admin/connections/{id}/reauthorize"},
		{"POST", "/admin/connections/{id}/delete"},
	} {
		send := func(id string) response {
			path := strings.ReplaceAll(req.path, "{id}", id)
			if req.method == "GET" {
				return g.get(path)
			}
			return g.post(path, url.Values{"csrf": {csrf}})
		}
		theirs, none := send(conn), send(unknown)
		if theirs.status != 404 || none.status != 404 || strings.ReplaceAll(string(theirs.body), conn, "ID") != strings.ReplaceAll(string(none.body), unknown, "ID") {
			t.Errorf("%s %s: %d for acme's connection, %d for none; want the same 404", req.method, req.path, theirs.status, none.status)
		}
	}
	after := e.emu.Stats()
	if after.Refreshes != before.Refreshes || after.Revocations != before.Revocations || e.connectionStatus("acme", conn) != state.StatusConnected {
		t.Fatal("globex's admin session acted on acme's connection")
	}
	// acme's own session still sees it.
	a := newBrowser(t, e.replicas[0].url)
	a.signIn(e.keys["acme:admin"])
	contains(t, "acme's admin page", a.get("/admin"), conn)
}

// TestPageHeaders: every page the server registers, whatever it answers,
// carries the CSP (default-src 'self', frame-ancestors 'none') and nosniff;
// the stylesheet is served with its type.
func TestPageHeaders(t *testing.T) {
	e := newEnv(t, t.TempDir()+"/connector.db", envOptions{})
	cl := e.oauthClient("acme")
	conn := e.connection("acme", cl)
	link := e.connectLink("acme", map[string]any{"oauth_clients": []string{cl}})
	token := strings.TrimPrefix(link, e.replicas[0].url+"/connect/")
	signed := newBrowser(t, e.replicas[0].url)
	csrf := signed.signIn(e.keys["acme:admin"])
	patterns := e.replicas[0].srv.PagePatterns()
	if len(patterns) < 7 {
		t.Fatalf("only %d pages registered: %v", len(patterns), patterns)
	}
	for _, p := range patterns {
		method, path, _ := strings.Cut(p, " ")
		path = strings.NewReplacer("{token}", token, "{id}", conn, "{action}", "nothing", "{$}", "").Replace(path)
		for _, who := range []*browser{newBrowser(t, e.replicas[0].url), signed} {
			var r response
			if method == "GET" {
				r = who.get(path)
			} else {
				r = who.post(path, url.Values{"csrf": {csrf}, "client": {cl}, "field.CompanyId": {"x"}})
			}
			if strings.Contains(path, "/assets/") {
				if r.status != 200 || r.header.Get("Content-Type") != "text/css; charset=utf-8" || r.header.Get("X-Content-Type-Options") != "nosniff" {
					t.Errorf("%s: %d %v", p, r.status, r.header)
				}
				continue
			}
			csp := r.header.Get("Content-Security-Policy")
			if !strings.HasPrefix(csp, "default-src 'self';") || !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "form-action 'self'") ||
				r.header.Get("X-Content-Type-Options") != "nosniff" || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") && r.status != 303 {
				t.Errorf("%s (HTTP %d): CSP %q, nosniff %q, type %q", p, r.status, csp, r.header.Get("X-Content-Type-Options"), r.header.Get("Content-Type"))
			}
			if strings.Contains(string(r.body), "<script") || strings.Contains(string(r.body), "style=") {
				t.Errorf("%s has a script or an inline style", p)
			}
		}
	}
	// The callback's pages too.
	r := page(t, e.replicas[0].url+"/oauth/callback?state=nope")
	if csp := r.header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "default-src 'self';") || r.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("the callback page: CSP %q", csp)
	}
}

// TestSecureCookies: behind an https public URL the admin cookies are
// Secure; on loopback http (TestAdminPages) they are not, or no browser
// would send them back.
func TestSecureCookies(t *testing.T) {
	e := newEnv(t, t.TempDir()+"/connector.db", envOptions{})
	st := e.replicas[0].storage
	for public, secure := range map[string]bool{"https://connect.example.com": true, "http://connect.example.com": true, "http://127.0.0.1:8080": false, "http://localhost:8080": false} {
		srv, err := server.New(server.Config{State: st.State, Tokens: st.Tokens, PublicURL: public, Logger: slog.New(slog.NewJSONHandler(logSink{}, nil))})
		if err != nil {
			t.Fatal(err)
		}
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, httptest.NewRequest("GET", "/admin", nil))
		cookies := w.Result().Cookies()
		if len(cookies) != 1 || cookies[0].Secure != secure || !cookies[0].HttpOnly || cookies[0].SameSite != http.SameSiteStrictMode {
			t.Errorf("public URL %s: cookies %+v, want Secure=%v", public, cookies, secure)
		}
		for _, c := range cookies {
			remember(c.Value)
		}
	}
}

// deadLetter makes the oldest pending event of tenant a dead letter, as
// the delivery worker does when the platform's URL keeps failing, and
// returns its id.
func (e *env) deadLetter(tenant string) string {
	e.t.Helper()
	ctx := context.Background()
	db := e.replicas[0].storage.State
	jobs, err := db.ClaimJobs(ctx, "test-worker", 100, time.Minute)
	if err != nil {
		e.t.Fatal(err)
	}
	id := ""
	for _, j := range jobs {
		if j.Event.Tenant == tenant && id == "" {
			id = j.Event.ID
			if err := db.FinishJob(ctx, "test-worker", id, state.Outcome{Dead: true, HTTPStatus: 503, Error: "HTTP 503 from the event URL"}); err != nil {
				e.t.Fatal(err)
			}
			continue
		}
		if err := db.ReleaseJob(ctx, "test-worker", j.Event.ID, time.Now()); err != nil {
			e.t.Fatal(err)
		}
	}
	if id == "" {
		e.t.Fatalf("no pending event of %s to dead-letter", tenant)
	}
	return id
}

// TestAdminDeadLetters: the tenant's dead letters are listed with a replay
// button that needs the CSRF token; another tenant's cannot be seen or
// replayed.
func TestAdminDeadLetters(t *testing.T) {
	e := newEnv(t, t.TempDir()+"/connector.db", envOptions{})
	cl := e.oauthClient("acme")
	conn := e.connection("acme", cl)
	e.authorize("acme", conn, 0, 0) // connection.connected
	dead := e.deadLetter("acme")
	b := newBrowser(t, e.replicas[0].url)
	csrf := b.signIn(e.keys["acme:admin"])
	list := b.get("/admin/dead-letters")
	contains(t, "the dead letters", list, "<code>"+dead+"</code>", "connection.connected", "HTTP 503 from the event URL", `action="/admin/dead-letters/`+dead+`/replay"`)
	g := newBrowser(t, e.replicas[0].url)
	gcsrf := g.signIn(e.keys["globex:admin"])
	if r := g.get("/admin/dead-letters"); strings.Contains(string(r.body), dead) {
		t.Fatal("globex sees acme's dead letter")
	}
	if r := g.post("/admin/dead-letters/"+dead+"/replay", url.Values{"csrf": {gcsrf}}); r.status != 404 {
		t.Fatalf("globex replays acme's dead letter: %d", r.status)
	}
	if r := b.post("/admin/dead-letters/"+dead+"/replay", url.Values{}); r.status != 403 {
		t.Fatalf("a replay without the CSRF token: %d", r.status)
	}
	db := e.replicas[0].storage.State
	if ev, _ := db.GetEvent(context.Background(), "acme", dead); ev.Delivery.Status != state.DeliveryDead {
		t.Fatalf("refused replays replayed: %v", ev.Delivery.Status)
	}
	r := b.post("/admin/dead-letters/"+dead+"/replay", url.Values{"csrf": {csrf}})
	if r.status != 303 || r.header.Get("Location") != "/admin/dead-letters?done=replayed" {
		t.Fatalf("replay: %d %s", r.status, r.body)
	}
	if ev, _ := db.GetEvent(context.Background(), "acme", dead); ev.Delivery.Status != state.DeliveryPending {
		t.Fatalf("the replayed event is %s", ev.Delivery.Status)
	}
	contains(t, "after the replay", b.get("/admin/dead-letters?done=replayed"), "The event was queued for delivery again.", "No dead letters")
	if r := b.post("/admin/dead-letters/"+dead+"/replay", url.Values{"csrf": {csrf}}); r.status != 404 {
		t.Fatalf("replaying a replayed event: %d", r.status)
	}
}
