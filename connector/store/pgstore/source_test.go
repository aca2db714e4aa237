package pgstore

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/emulator"
	"github.com/connector-engine/connector/definitions"
)

var requestID = regexp.MustCompile(`name="request_id" value="([^"]+)"`)

// approve plays the user at the emulator's consent page and returns the
// query the provider sends back to the redirect URI.
func approve(t testing.TB, ctx context.Context, authURL string) url.Values {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, authURL, nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := requestID.FindSubmatch(page)
	if m == nil {
		t.Fatalf("the consent page (HTTP %d) has no request_id", resp.StatusCode)
	}
	u, _ := url.Parse(authURL)
	resp, err = hc.PostForm(u.Scheme+"://"+u.Host+"/oauth/authorize", url.Values{"request_id": {string(m[1])}, "decision": {"allow"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Fatalf("the consent answered HTTP %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return loc.Query()
}

// emulatorConnection starts a Procore emulator and returns a connection to
// it through the built-in procore definition.
func emulatorConnection(t testing.TB) (*emulator.Server, *connector.Connection) {
	t.Helper()
	const clientID, secret = "pgstore-test", "pgstore-test-secret-0123456789"
	emu := emulator.New(emulator.Config{
		Clients:       []emulator.Client{{ID: clientID, Secret: secret}},
		TokenLifetime: time.Hour,
	})
	// A slow token endpoint keeps a refresh in flight long enough for every
	// worker of both hosts to arrive while it is: without a lock that holds
	// across hosts, the other host would refresh too.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/oauth/token" {
			time.Sleep(300 * time.Millisecond)
		}
		emu.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	base := srv.URL
	def, err := definitions.Builtin().Lookup("procore")
	if err != nil {
		t.Fatal(err)
	}
	return emu, &connector.Connection{Definition: def, ClientID: clientID, ClientSecret: secret,
		RedirectURI: "http://127.0.0.1:8765/callback", BaseURL: base, LoginURL: base}
}

// Two hosts (stores with their own pools) of 25 workers each, every worker
// with its own Source (so no in-process deduplication helps), all needing a
// fresh token when the stored one has expired: exactly one refresh reaches
// the provider, no rotated refresh token is presented twice, and everyone
// gets the one new token.
func TestSourceRefreshOnceAcrossHosts(t *testing.T) {
	const hosts, workers = 2, 25
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a, b := twoHosts(t)
	emu, conn := emulatorConnection(t)

	first, err := connector.NewSource(conn, a)
	if err != nil {
		t.Fatal(err)
	}
	attempt, err := first.Flow().AuthCodeURL()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := first.Flow().Exchange(ctx, attempt, approve(t, ctx, attempt.URL))
	if err != nil {
		t.Fatal(err)
	}
	tok.Expiry = time.Now().Add(-time.Second) // expired: every worker must renew
	if err := first.Store(ctx, tok); err != nil {
		t.Fatal(err)
	}

	// Both hosts' pools warm, so that neither starts with a head start.
	for _, st := range []*Store{a, b} {
		unlock, err := st.Lock(ctx, "warm-up")
		if err != nil {
			t.Fatal(err)
		}
		unlock()
	}

	var wg sync.WaitGroup
	got := make(chan string, hosts*workers)
	errs := make(chan error, hosts*workers)
	start := make(chan struct{})
	for _, st := range []*Store{a, b} {
		for range workers {
			src, err := connector.NewSource(conn, st)
			if err != nil {
				t.Fatal(err)
			}
			wg.Go(func() {
				<-start
				nt, err := src.TokenContext(ctx)
				if err != nil {
					errs <- err
					return
				}
				got <- nt.AccessToken
			})
		}
	}
	close(start)
	wg.Wait()
	close(got)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	seen := map[string]int{}
	for at := range got {
		seen[at]++
	}
	if len(seen) != 1 || seen[tok.AccessToken] != 0 {
		t.Errorf("workers got %d distinct access tokens (the expired one %d times); want one new token", len(seen), seen[tok.AccessToken])
	}
	s := emu.Stats()
	if s.Refreshes != 1 || s.GrantRevocations != 0 || s.TokenRequests["refresh_token"] != 1 {
		t.Errorf("emulator: %d refreshes (%d refresh requests), %d reuse detections; want 1, 1, 0",
			s.Refreshes, s.TokenRequests["refresh_token"], s.GrantRevocations)
	}
	rec, err := b.Get(ctx, conn.Key())
	if err != nil {
		t.Fatal(err)
	}
	if rec.Token.RefreshToken == tok.RefreshToken || !rec.RefreshStarted.IsZero() {
		t.Error("the rotated refresh token was not stored, or the refresh was left marked in flight")
	}
	h, err := a.History(ctx, conn.Key())
	if err != nil {
		t.Fatal(err)
	}
	// Store, then the refresh: marked in flight, then its outcome.
	if len(h) != 3 || h[0].Refreshing || !h[1].Refreshing || h[2].Refreshing {
		t.Errorf("history = %s; want stored, refresh in flight, refreshed", fmt.Sprint(h))
	}
}
