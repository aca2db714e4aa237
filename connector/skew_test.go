package connector_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/emulator"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/definitions"
)

// Clock skew between this host and the provider.
//
// The engine counts a token's lifetime from the local time its request was
// sent: expiry = local request time + expires_in. Procore also sends
// created_at, the issue time on its own clock; the engine keeps it as
// IssuedAt but never derives the expiry from it, because created_at +
// expires_in compared with the local clock is off by exactly the skew: a
// slow local clock would keep spending a token the provider already
// rejects. So a constant offset between the clocks changes nothing: the
// token is refreshed Margin before the provider's expiry, whatever the
// offset. What skew can still do is move while a token lives (the local
// clock is stepped by NTP, a VM resumes): stepped forward, the token is
// refreshed early; stepped back by less than Margin, it is still refreshed
// before the provider rejects it; stepped back by more, the provider's 401
// makes the API refresh once and replay the request once.

// skewClock is a settable clock: the emulator's, and through an offset the
// engine's.
type skewClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *skewClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *skewClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// skewRig is the emulator on a provider clock and an API whose token source
// and flow read the provider clock plus a settable offset.
type skewRig struct {
	emu          *emulator.Server
	provider     *skewClock
	offset       atomic.Int64 // local clock minus provider clock, in nanoseconds
	api          *connector.API
	st           store.Store
	unauthorized atomic.Int64 // API answers 401
}

const skewClientSecret = "skew-secret"

func newSkewRig(t *testing.T, start time.Time, margin time.Duration) *skewRig {
	t.Helper()
	r := &skewRig{provider: &skewClock{now: start}}
	r.emu = emulator.New(emulator.Config{
		Clients: []emulator.Client{{ID: "skew-test", Secret: skewClientSecret}},
		Now:     r.provider.Now, // TokenLifetime: Procore's 5400 s
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		sw := &skewStatus{ResponseWriter: w}
		r.emu.ServeHTTP(sw, req)
		if strings.HasPrefix(req.URL.Path, "/rest/") && sw.status == http.StatusUnauthorized {
			r.unauthorized.Add(1)
		}
	}))
	t.Cleanup(srv.Close)
	def, err := definitions.Builtin().Lookup("procore")
	if err != nil {
		t.Fatal(err)
	}
	c := &connector.Connection{
		Definition: def, ClientID: "skew-test", ClientSecret: skewClientSecret,
		RedirectURI: "http://127.0.0.1:9/callback", BaseURL: srv.URL, LoginURL: srv.URL,
		Fields: map[string]string{"CompanyId": strconv.FormatInt(emulator.DemoCompanyID, 10)},
	}
	r.st = store.NewMemory()
	if r.api, err = connector.NewAPI(c, r.st, nil); err != nil {
		t.Fatal(err)
	}
	local := func() time.Time { return r.provider.Now().Add(time.Duration(r.offset.Load())) }
	r.api.Source().Now = local
	r.api.Source().Flow().Now = local
	r.api.Source().Margin = margin
	return r
}

type skewStatus struct {
	http.ResponseWriter
	status int
}

func (w *skewStatus) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *skewStatus) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

var skewRequestID = regexp.MustCompile(`name="request_id" value="([^"]+)"`)

// connect approves the consent page as the user and stores the token, as
// connector connect does.
func (r *skewRig) connect(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	flow := r.api.Source().Flow()
	attempt, err := flow.AuthCodeURL()
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Get(attempt.URL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := skewRequestID.FindSubmatch(page)
	if m == nil {
		t.Fatalf("consent page (HTTP %d) has no request_id", resp.StatusCode)
	}
	u, _ := url.Parse(attempt.URL)
	u.RawQuery = ""
	resp, err = client.PostForm(u.String(), url.Values{"request_id": {string(m[1])}, "decision": {"allow"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Fatalf("consent answered HTTP %d", resp.StatusCode)
	}
	tok, err := flow.Exchange(ctx, attempt, loc.Query())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.api.Source().Store(ctx, tok); err != nil {
		t.Fatal(err)
	}
}

// me calls the API once and returns how many API requests, 401s and
// refreshes it took.
func (r *skewRig) me(t *testing.T) (requests, unauthorized, refreshes int, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	before, before401 := r.emu.Stats(), r.unauthorized.Load()
	resp, err := r.api.Do(ctx, connector.Request{Path: "/rest/v1.0/me"})
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	after := r.emu.Stats()
	return after.APIRequests - before.APIRequests, int(r.unauthorized.Load() - before401), after.Refreshes - before.Refreshes, err
}

func (r *skewRig) stored(t *testing.T) store.Record {
	t.Helper()
	recs, err := r.st.List(context.Background())
	if err != nil || len(recs) != 1 {
		t.Fatalf("store holds %d records (%v), want 1", len(recs), err)
	}
	return recs[0]
}

// TestSkewRefreshTiming runs a token's life under a local clock off by -5,
// 0 and +5 minutes, constant or stepped after the token was issued, and
// checks when (on the provider's clock) the engine refreshes and whether
// the provider ever refuses a token first.
func TestSkewRefreshTiming(t *testing.T) {
	const lifetime = 5400 * time.Second // the emulator's expires_in, Procore's
	start := time.Now().Truncate(time.Second)
	rows := []struct {
		name          string
		atIssue       time.Duration // local minus provider clock when the token is requested
		atUse         time.Duration // ... and afterwards
		margin        time.Duration
		refreshBefore time.Duration // how long before the provider's expiry the engine refreshes; negative: after it
	}{
		{"local 5m slow", -5 * time.Minute, -5 * time.Minute, connector.DefaultMargin, connector.DefaultMargin},
		{"in sync", 0, 0, connector.DefaultMargin, connector.DefaultMargin},
		{"local 5m fast", 5 * time.Minute, 5 * time.Minute, connector.DefaultMargin, connector.DefaultMargin},
		// The clock moves while the token lives: only then does skew show.
		{"stepped 5m fast", 0, 5 * time.Minute, connector.DefaultMargin, connector.DefaultMargin + 5*time.Minute},
		{"stepped 5m slow", 0, -5 * time.Minute, connector.DefaultMargin, connector.DefaultMargin - 5*time.Minute},
		{"stepped 5m slow, margin 6m", 0, -5 * time.Minute, 6 * time.Minute, time.Minute},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			r := newSkewRig(t, start, row.margin)
			r.offset.Store(int64(row.atIssue))
			r.connect(t)

			// The lifetime counts from the local request time; created_at
			// (the provider's clock) is kept but not used for it.
			tok := r.stored(t).Token
			if want := start.Add(row.atIssue).Add(lifetime); !tok.Expiry.Equal(want) {
				t.Errorf("expiry %s, want local request time + expires_in = %s", tok.Expiry, want)
			}
			if !tok.IssuedAt.Equal(start) {
				t.Errorf("IssuedAt %s, want the provider's created_at %s", tok.IssuedAt, start)
			}

			r.offset.Store(int64(row.atUse))
			providerExpiry := start.Add(lifetime)
			refreshAt := providerExpiry.Add(-row.refreshBefore) // on the provider's clock

			// Just before the refresh point, and before the provider's
			// expiry, the token is used as it is.
			first := refreshAt
			if providerExpiry.Before(first) {
				first = providerExpiry
			}
			r.provider.Set(first.Add(-time.Second))
			if n, n401, refreshes, err := r.me(t); err != nil || n != 1 || n401 != 0 || refreshes != 0 {
				t.Fatalf("at %s before the refresh point: err %v, %d requests, %d 401s, %d refreshes; want 1, 0, 0",
					refreshAt.Sub(r.provider.Now()), err, n, n401, refreshes)
			}

			if row.refreshBefore > 0 {
				// Refreshed at the refresh point, ahead of the provider's
				// expiry: the provider never refuses a token.
				r.provider.Set(refreshAt.Add(time.Second))
				if n, n401, refreshes, err := r.me(t); err != nil || n != 1 || n401 != 0 || refreshes != 1 {
					t.Fatalf("just after the refresh point (%s before the provider's expiry): err %v, %d requests, %d 401s, %d refreshes; want 1, 0, 1",
						row.refreshBefore-time.Second, err, n, n401, refreshes)
				}
			} else {
				// The local clock went back by more than the margin: the
				// engine still thinks the token fresh when the provider has
				// expired it. The 401 makes it refresh once and replay once.
				r.provider.Set(providerExpiry.Add(time.Second))
				if n, n401, refreshes, err := r.me(t); err != nil || n != 2 || n401 != 1 || refreshes != 1 {
					t.Fatalf("after the provider's expiry: err %v, %d requests, %d 401s, %d refreshes; want the replayed call to succeed after 2 requests, 1 401, 1 refresh",
						err, n, n401, refreshes)
				}
			}
			// The new token works, with no further refresh.
			if n, n401, refreshes, err := r.me(t); err != nil || n != 1 || n401 != 0 || refreshes != 0 {
				t.Fatalf("next call: err %v, %d requests, %d 401s, %d refreshes; want 1, 0, 0", err, n, n401, refreshes)
			}
			// The new token's lifetime again counts from the local time of
			// the refresh request.
			if tok := r.stored(t).Token; !tok.Expiry.Equal(r.provider.Now().Add(row.atUse).Add(lifetime)) {
				t.Errorf("refreshed token expiry %s, want local refresh time + expires_in %s", tok.Expiry, r.provider.Now().Add(row.atUse).Add(lifetime))
			}
		})
	}
}

// TestSkewPersistent401IsNotALoop: when the provider refuses the renewed
// token too (a clock so far off that even fresh tokens look expired, or a
// revoked grant), the API gives the 401 back after one refresh and one
// replay instead of refreshing again.
func TestSkewPersistent401IsNotALoop(t *testing.T) {
	for _, skew := range []time.Duration{-5 * time.Minute, 0, 5 * time.Minute} {
		t.Run(fmt.Sprint(skew), func(t *testing.T) {
			r := newSkewRig(t, time.Now().Truncate(time.Second), connector.DefaultMargin)
			r.offset.Store(int64(skew))
			r.connect(t)
			r.emu.ExpireAccessTokens(2) // the token in use and its replacement
			n, n401, refreshes, err := r.me(t)
			var apiErr *connector.APIError
			if !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized || !strings.Contains(apiErr.Message, "access token has expired") {
				t.Fatalf("err %v, want the provider's 401 as an *APIError", err)
			}
			if n != 2 || n401 != 2 || refreshes != 1 {
				t.Errorf("%d requests, %d 401s, %d refreshes; want 2, 2, 1 (one refresh, one replay, no loop)", n, n401, refreshes)
			}
			if rec := r.stored(t); rec.Status != store.StatusConnected {
				t.Errorf("status %s after a refused replay; a 401 is no reason to re-authorize", rec.Status)
			}
		})
	}
}
