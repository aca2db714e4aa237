package server_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/connector-engine/connector/connector/server/state"
	"github.com/connector-engine/connector/internal/browsertest"
)

// screenshotsEnv asks the browser test to write its screenshots (PNG) to
// testdata/screenshots, for the READMEs: CONNECTOR_SCREENSHOTS=1.
const screenshotsEnv = "CONNECTOR_SCREENSHOTS"

func shot(t *testing.T, tab context.Context, name string) {
	t.Helper()
	if os.Getenv(screenshotsEnv) == "" {
		return
	}
	png, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := filepath.Join("testdata", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func do(t *testing.T, tab context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(tab, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func text(t *testing.T, tab context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(tab, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("reading %s: %v", sel, err)
	}
	return s
}

func css(sel string) chromedp.CSS { return chromedp.CSS(sel) }

// TestBrowserPages drives the connect page, the result page and the admin
// pages with a real headless Chromium against the emulator: connect with a
// CompanyId in the sandbox after a refused value, approve, land on the
// result page and go back to the platform (a loopback server); deny;
// an expired link; sign in to the admin page, refresh and revoke the
// connection; a form posted without its CSRF token.
func TestBrowserPages(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	browser := browsertest.Start(t, 5*time.Minute)
	var mu sync.Mutex
	var landed []url.Values
	platform := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/connected" { // not the browser's /favicon.ico
			mu.Lock()
			landed = append(landed, r.URL.Query())
			mu.Unlock()
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, `<!doctype html><title>Platform</title><h1 id="platform">Back at the platform</h1>`)
	}))
	defer platform.Close()
	e := newEnv(t, t.TempDir()+"/connector.db", envOptions{returnTo: []string{platform.URL + "/connected"}})
	cl := e.oauthClient("acme")
	newLink := func() string {
		return e.connectLink("acme", map[string]any{"oauth_clients": []string{cl}, "end_user": "user-42", "return_to": platform.URL + "/connected"})
	}
	back := "a.button[href^='" + platform.URL + "/connected?']"
	var conn string

	t.Run("connect", func(t *testing.T) {
		tab := browsertest.Tab(t, browser, time.Minute)
		do(t, tab, "opening the connect link", chromedp.Navigate(newLink()), chromedp.WaitVisible(css("#field-CompanyId")))
		if help := text(t, tab, "#field-CompanyId-hint"); !strings.Contains(help, "The number after app.procore.com") {
			t.Fatalf("the CompanyId help: %q", help)
		}
		shot(t, tab, "connect")
		do(t, tab, "submitting a bad CompanyId",
			chromedp.SendKeys(css("#field-CompanyId"), "abc"), chromedp.Click(css("#env-sandbox")),
			chromedp.Click(css("button[type=submit]")), chromedp.WaitVisible(css("#field-CompanyId-error")))
		if msg := text(t, tab, "#field-CompanyId-error"); !strings.Contains(msg, `"abc" is not a whole number`) {
			t.Fatalf("the error beside CompanyId is %q, want the engine's message", msg)
		}
		if v, err := chromedp.Run(tab, chromedp.Value(css("#field-CompanyId"))); err != nil || v != "abc" {
			t.Fatalf("the refused value was not kept: %q %v", v, err)
		}
		if d, err := chromedp.Run(tab, chromedp.AttributeValue(css("#field-CompanyId"), "aria-describedby")); err != nil || !strings.Contains(d.Value, "field-CompanyId-error") {
			t.Fatalf("the error is not linked to the field: %+v %v", d, err)
		}
		shot(t, tab, "connect-error")
		if n := e.connectionCount("acme"); n != 0 {
			t.Fatalf("a refused CompanyId created %d connections", n)
		}
		// Keyboard only: type the value and press Enter; the sandbox stays chosen.
		do(t, tab, "submitting a good CompanyId",
			chromedp.Clear(css("#field-CompanyId")), chromedp.SendKeys(css("#field-CompanyId"), "562949953421312"+kb.Enter),
			chromedp.WaitVisible(css("button[value=allow]")))
		do(t, tab, "approving", chromedp.Click(css("button[value=allow]")), chromedp.WaitVisible(css(back)))
		if h := text(t, tab, "h1"); h != "Connected" {
			t.Fatalf("the result page says %q", h)
		}
		shot(t, tab, "result")
		do(t, tab, "returning to the platform", chromedp.Click(css(back)), chromedp.WaitVisible(css("#platform")))
		mu.Lock()
		got := landed[len(landed)-1]
		mu.Unlock()
		conn = got.Get("connection")
		if got.Get("status") != "connected" || !strings.HasPrefix(conn, "con_") {
			t.Fatalf("the platform got %v", got)
		}
		c := e.must(200, 0, "GET", "/v1/connections/"+conn, e.keys["acme:connections:read"], nil)
		if c["status"] != "connected" || c["environment"] != "sandbox" || c["fields"].(map[string]any)["CompanyId"] != "562949953421312" {
			t.Fatalf("the connection made in the browser: %v", c)
		}
	})

	t.Run("deny", func(t *testing.T) {
		tab := browsertest.Tab(t, browser, time.Minute)
		before := e.connectionCount("acme")
		do(t, tab, "connecting", chromedp.Navigate(newLink()), chromedp.WaitVisible(css("#field-CompanyId")),
			chromedp.SendKeys(css("#field-CompanyId"), "7"), chromedp.Click(css("button[type=submit]")),
			chromedp.WaitVisible(css("button[value=deny]")))
		do(t, tab, "denying", chromedp.Click(css("button[value=deny]")), chromedp.WaitVisible(css(back)))
		if h := text(t, tab, "h1"); !strings.Contains(h, "access was declined") {
			t.Fatalf("after Deny the result page says %q", h)
		}
		href, err := chromedp.Run(tab, chromedp.AttributeValue(css(back), "href"))
		if err != nil || !strings.Contains(href.Value, "status=denied") {
			t.Fatalf("the way back after Deny: %+v %v", href, err)
		}
		if st := e.emu.Stats(); st.TokenRequests["authorization_code"] != 1 {
			t.Fatalf("a code exchange after Deny: %v", st.TokenRequests)
		}
		if n := e.connectionCount("acme"); n != before {
			t.Fatalf("%d connections after Deny, want %d: the connection the link made is removed", n, before)
		}
	})

	t.Run("expired link", func(t *testing.T) {
		tab := browsertest.Tab(t, browser, time.Minute)
		link := newLink()
		db := e.replicas[0].storage.State
		db.Now = func() time.Time { return time.Now().Add(31 * time.Minute) }
		defer func() { db.Now = time.Now }()
		resp, err := chromedp.RunResponse(tab, chromedp.Navigate(link))
		if err != nil || resp.Status != http.StatusGone {
			t.Fatalf("an expired link: %v, %v", resp, err)
		}
		if h := text(t, tab, "h1"); h != "This link has expired" {
			t.Fatalf("an expired link says %q", h)
		}
	})

	if conn == "" {
		t.Fatal("no connection from the connect page to administer")
	}
	admin := browsertest.Tab(t, browser, 2*time.Minute)
	connPage := "a[href='/admin/connections/" + conn + "']"
	t.Run("admin", func(t *testing.T) {
		do(t, admin, "signing in", chromedp.Navigate(e.replicas[0].url+"/admin"), chromedp.WaitVisible(css("#api_key")),
			chromedp.SendKeys(css("#api_key"), e.keys["acme:admin"]+kb.Enter), chromedp.WaitVisible(css(connPage)))
		shot(t, admin, "admin")
		do(t, admin, "opening the connection", chromedp.Click(css(connPage)), chromedp.WaitVisible(css("form[action$='/refresh'] button")))
		before := e.emu.Stats()
		do(t, admin, "refreshing", chromedp.Click(css("form[action$='/refresh'] button")), chromedp.WaitVisible(css("p.notice")))
		if n := text(t, admin, "p.notice"); n != "The connection was refreshed." || e.emu.Stats().Refreshes != before.Refreshes+1 {
			t.Fatalf("after Refresh: %q, %d refreshes at the provider (want %d)", n, e.emu.Stats().Refreshes, before.Refreshes+1)
		}
		do(t, admin, "revoking", chromedp.Click(css("form[action$='/revoke'] button")), chromedp.WaitVisible(css("span.status.needs_reauthorization")))
		if e.emu.Stats().Revocations != before.Revocations+1 || e.connectionStatus("acme", conn) != state.StatusNeedsReauth {
			t.Fatalf("after Revoke: %d revocations, status %s", e.emu.Stats().Revocations, e.connectionStatus("acme", conn))
		}
		ev := text(t, admin, "table[aria-labelledby=events]")
		if !strings.Contains(ev, "connection.revoked") || !strings.Contains(ev, "connection.connected") {
			t.Fatalf("the connection's events do not show its authorization and revocation: %q", ev)
		}
		shot(t, admin, "admin-connection")
	})

	t.Run("dead letters", func(t *testing.T) {
		dead := e.deadLetter("acme")
		do(t, admin, "opening the dead letters", chromedp.Navigate(e.replicas[0].url+"/admin/dead-letters"),
			chromedp.WaitVisible(css("form[action='/admin/dead-letters/"+dead+"/replay'] button")))
		do(t, admin, "replaying", chromedp.Click(css("form[action='/admin/dead-letters/"+dead+"/replay'] button")), chromedp.WaitVisible(css("p.notice")))
		if ev, err := e.replicas[0].storage.State.GetEvent(context.Background(), "acme", dead); err != nil || ev.Delivery.Status != state.DeliveryPending {
			t.Fatalf("the replayed event: %v, %v", ev.Delivery, err)
		}
		do(t, admin, "back to the connection", chromedp.Navigate(e.replicas[0].url+"/admin/connections/"+conn), chromedp.WaitVisible(css("form[action$='/refresh'] button")))
	})

	t.Run("CSRF token missing", func(t *testing.T) {
		before := e.emu.Stats()
		do(t, admin, "dropping the token from the Refresh form", chromedp.RemoveAttribute(css("form[action$='/refresh'] input[name=csrf]"), "name"))
		resp, err := chromedp.RunResponse(admin, chromedp.Click(css("form[action$='/refresh'] button")))
		if err != nil || resp.Status != http.StatusForbidden {
			t.Fatalf("a form without its CSRF token: %v, %v", resp, err)
		}
		if h := text(t, admin, "h1"); h != "The form was refused" {
			t.Fatalf("a form without its CSRF token shows %q", h)
		}
		if e.emu.Stats().Refreshes != before.Refreshes {
			t.Fatal("a form without its CSRF token refreshed the connection")
		}
	})
}
