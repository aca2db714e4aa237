// Package browsertest starts a real headless Chromium for tests, confined
// to loopback, through chromedp: the browser tests of the CLI's consent
// flow and of the server's pages. Without a Chromium the tests skip, except
// under CI=true, where they fail (.ci/test.sh installs it).
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Path finds the browser: $CHROME_BIN, else the usual names in PATH.
func Path(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("CHROME_BIN"); p != "" {
		found, err := exec.LookPath(p)
		if err != nil {
			t.Fatalf("CHROME_BIN=%s is not an executable: %v; point it at a Chromium or Chrome binary, or unset it", p, err)
		}
		return found
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no Chromium to drive: none of chromium, chromium-browser, google-chrome is in PATH and CHROME_BIN is unset; install it with: apt-get install chromium"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Start starts one headless Chromium living at most lifetime and returns
// its context, from which Tab opens tabs. Every host name but localhost
// fails to resolve and no proxy is used, so nothing the browser does can
// leave the machine.
//
// A launch that dies before DevTools answers is tried again, up to
// launchAttempts times, each with a new profile: on a saturated CI machine
// Chromium sometimes exits at start with nothing in its output (seen once,
// while four other test binaries ran), and that says nothing about the
// pages under test. Every failed attempt is logged; the last one fails the
// test.
func Start(t testing.TB, lifetime time.Duration) context.Context {
	t.Helper()
	bin := Path(t)
	ctx, cancel := context.WithTimeout(context.Background(), lifetime)
	t.Cleanup(cancel)
	var err error
	for attempt := 1; attempt <= launchAttempts; attempt++ {
		var browser context.Context
		var stop func()
		browser, stop, err = launch(ctx, bin, t.TempDir())
		if err == nil {
			t.Cleanup(stop)
			return browser
		}
		stop()
		t.Logf("starting %s headless, attempt %d of %d: %v", bin, attempt, launchAttempts, err)
		if ctx.Err() != nil {
			break
		}
		time.Sleep(time.Duration(attempt) * time.Second)
	}
	t.Fatalf("starting %s headless: %v", bin, err)
	return nil
}

const launchAttempts = 3

// launch starts one browser with profile as its user data directory
// (removed by t.TempDir's cleanup after stop has ended the browser).
func launch(ctx context.Context, bin, profile string) (context.Context, func(), error) {
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(profile),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-quic", true),
		// Debian's launcher decides this from /dev/shm's free space with a
		// shell test that breaks when findmnt prints two lines; say it here.
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"),
		chromedp.WindowSize(1100, 900),
	)
	if os.Geteuid() == 0 {
		// Chromium refuses to start its sandbox as root.
		opts = append(opts, chromedp.NoSandbox)
	}
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	stop := func() { bcancel(); acancel() }
	if err := chromedp.Do(bctx); err != nil {
		return nil, stop, err
	}
	return bctx, stop, nil
}

// Tab opens a tab of browser whose steps must finish within timeout; it
// is closed when the test ends.
func Tab(t testing.TB, browser context.Context, timeout time.Duration) context.Context {
	t.Helper()
	tab, closeTab := chromedp.NewContext(browser)
	t.Cleanup(closeTab)
	if err := chromedp.Do(tab); err != nil { // opens the tab; a deadline here would close it
		t.Fatalf("opening a Chromium tab: %v", err)
	}
	tab, cancel := context.WithTimeout(tab, timeout)
	t.Cleanup(cancel)
	return tab
}
