package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/store/filestore"
	"github.com/connector-engine/connector/internal/browsertest"
)

// browserTimeout bounds each consent case: its pages and the CLI's wait for
// the callback. The browser process lives at most browserLifetime.
const (
	browserTimeout  = 60 * time.Second
	browserLifetime = 3 * browserTimeout
)

// browserConnect runs connect --no-browser and has a real Chromium open the
// printed authorization URL and click the consent page's button decision
// ("allow" or "deny"). It returns connect's exit code, the rest of its
// stdout and its stderr, and the URL the browser landed on after the
// provider's redirect (not recorded: it carries the code).
func browserConnect(t *testing.T, browser context.Context, r *rig, decision, wantPage string) (code int, stdout, stderr, landed string) {
	t.Helper()
	pr, pw := io.Pipe()
	var errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		code := run(r.args("connect", "--no-browser", "--timeout", browserTimeout.String()), pw, &errb)
		pw.Close()
		done <- code
	}()
	// The CLI is always waited for, even when the test fails half-way (it
	// gives up after --timeout), so that its listener and store are released
	// before the test's directories go.
	waited := false
	defer func() {
		if !waited {
			go io.Copy(io.Discard, pr)
			<-done
		}
	}()
	lines := bufio.NewScanner(pr)
	if !lines.Scan() {
		code, waited = <-done, true
		t.Fatalf("connect printed no URL (exit %d); stderr: %s", code, errb.String())
	}
	authURL := lines.Text()
	record(authURL + "\n")
	if !strings.HasPrefix(authURL, r.base+"/oauth/authorize?") {
		t.Fatalf("first stdout line is %q, want the authorization URL", authURL)
	}

	tab, closeTab := chromedp.NewContext(browser)
	defer closeTab()
	if err := chromedp.Do(tab); err != nil { // opens the tab; a deadline here would close it
		t.Fatalf("opening a Chromium tab: %v", err)
	}
	tab, cancel := context.WithTimeout(tab, browserTimeout)
	defer cancel()
	if err := chromedp.Do(tab, chromedp.Navigate(authURL), chromedp.WaitVisible(chromedp.CSS("button[value=allow]"))); err != nil {
		t.Fatalf("opening the authorization URL in Chromium: %v", err)
	}
	heading, err := chromedp.Run(tab, chromedp.Text(chromedp.CSS("h1")))
	if err != nil || !strings.Contains(heading, "wants to access your Procore account") {
		t.Fatalf("the browser is not on the consent page: heading %q, %v", heading, err)
	}
	// The click submits the consent form; the emulator answers 302 to the
	// CLI's loopback callback, which the browser follows.
	resp, err := chromedp.RunResponse(tab, chromedp.Click(chromedp.CSS("button[value="+decision+"]")))
	if err != nil {
		t.Fatalf("clicking %s: %v", decision, err)
	}
	landed = resp.URL
	body, err := chromedp.Run(tab, chromedp.Text(chromedp.CSS("body")))
	if err != nil || resp.Status != 200 || !strings.Contains(body, wantPage) {
		t.Errorf("after %s the browser shows HTTP %d %q (%v), want the CLI's callback page saying %q", decision, resp.Status, body, err, wantPage)
	}

	var rest strings.Builder
	for lines.Scan() {
		rest.WriteString(lines.Text() + "\n")
	}
	code, waited = <-done, true
	stdout, stderr = rest.String(), errb.String()
	record(stdout, stderr)
	return code, stdout, stderr, landed
}

// redactURL shows a URL with its query values hidden but error's: a
// callback URL carries the authorization code.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(not a URL)"
	}
	q := u.Query()
	for k := range q {
		if k != "error" {
			q.Set(k, "***")
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// callbackURL is the redirect URI of the rig's connection string.
func (r *rig) callbackURL(t *testing.T) string {
	t.Helper()
	for part := range strings.SplitSeq(r.connString, ";") {
		if v, ok := strings.CutPrefix(part, "CallbackURL="); ok {
			return v
		}
	}
	t.Fatal("the rig's connection string has no CallbackURL")
	return ""
}

// TestBrowserConsent drives the emulator's consent page with a real headless
// Chromium: Allow ends in a stored, usable token; Deny in a clear error and
// an empty store.
func TestBrowserConsent(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	browser := browsertest.Start(t, browserLifetime)

	t.Run("Allow", func(t *testing.T) {
		r := newRig(t, "code", time.Hour)
		code, out, errOut, landed := browserConnect(t, browser, r, "allow", "Authorization received and the connection is stored. You can close this window.")
		if code != 0 {
			t.Fatalf("connect exited %d; stderr: %s", code, errOut)
		}
		if !strings.HasPrefix(out, "connected procore.production.") || !strings.HasSuffix(out, " (procore, production): token expires in 1h0m\n") {
			t.Errorf("connect summary = %q", out)
		}
		u, err := url.Parse(landed)
		if err != nil || !strings.HasPrefix(landed, r.callbackURL(t)+"?") || u.Query().Get("code") == "" || u.Query().Get("state") == "" {
			t.Errorf("the browser landed on %s, want the CLI's callback with a code and the state", redactURL(landed))
		}
		rec := r.record(t)
		if rec.Status != store.StatusConnected || rec.Token.AccessToken == "" || rec.Token.RefreshToken == "" {
			t.Fatalf("stored record: %v, status %s", rec.Token, rec.Status)
		}
		if st := r.emu.Stats(); st.CodeExchanges != 1 || st.TokenRequests["authorization_code"] != 1 {
			t.Errorf("emulator saw %d code exchanges in %d requests, want 1", st.CodeExchanges, st.TokenRequests["authorization_code"])
		}
		code, out, errOut = cli(t, r.args("token")...)
		if code != 0 || out != rec.Token.AccessToken+"\n" {
			t.Errorf("token after a browser connect: exit %d, printed the stored token: %v; stderr %s", code, out == rec.Token.AccessToken+"\n", errOut)
		}
	})

	t.Run("Deny", func(t *testing.T) {
		r := newRig(t, "code", time.Hour)
		code, out, errOut, landed := browserConnect(t, browser, r, "deny", "The authorization was not granted: the user denied access (access_denied); nothing was stored")
		if code != 1 || !strings.Contains(errOut, "the user denied access (access_denied)") {
			t.Errorf("connect after Deny: exit %d, stderr %q; want exit 1 and the access_denied message", code, errOut)
		}
		if out != "" {
			t.Errorf("connect after Deny printed a summary: %q", out)
		}
		u, err := url.Parse(landed)
		if err != nil || !strings.HasPrefix(landed, r.callbackURL(t)+"?") || u.Query().Get("error") != "access_denied" || u.Query().Has("code") {
			t.Errorf("the browser landed on %s, want the CLI's callback with error=access_denied and no code", redactURL(landed))
		}
		if st := r.emu.Stats(); st.TokenRequests["authorization_code"] != 0 {
			t.Errorf("a code exchange was attempted after Deny: %v", st.TokenRequests)
		}
		// Nothing stored: connect writes only after a successful exchange.
		if _, err := os.Stat(r.storePath); !errors.Is(err, fs.ErrNotExist) {
			sealer, err := store.LoadSealer(r.keyFile)
			if err != nil {
				t.Fatal(err)
			}
			st, err := filestore.Open(r.storePath, sealer)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if recs, err := st.List(context.Background()); err != nil || len(recs) != 0 {
				t.Errorf("the store holds %d records after Deny (%v), want none", len(recs), err)
			}
		}
		code, _, errOut = cli(t, r.args("token")...)
		if code != exitReauth || !strings.Contains(errOut, "run connector connect") {
			t.Errorf("token after Deny: exit %d, stderr %q", code, errOut)
		}
	})
}
