package connector_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/emulator"
	"github.com/connector-engine/connector/connector/internal/fositeserver"
	"github.com/connector-engine/connector/connector/internal/pgtest"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/store/filestore"
	"github.com/connector-engine/connector/connector/store/pgstore"
	"github.com/connector-engine/connector/connector/token"
	"github.com/connector-engine/connector/definitions"
)

// The storm and chaos tests run this test binary again as child processes
// (TestHelperProcess); these variables tell a child what to do.
const (
	envHelper       = "CONNECTOR_TEST_HELPER"        // "storm" or "chaos"
	envHelperConfig = "CONNECTOR_TEST_HELPER_CONFIG" // helperConfig as JSON
	// envStormDuration lengthens (or, while iterating, shortens) each storm.
	envStormDuration = "STORM_DURATION"
	resultPrefix     = "HELPER-RESULT "
	callingLine      = "HELPER-CALLING" // a storm child's calls begin
)

// helperConfig is what a child needs to rebuild the parent's connections.
type helperConfig struct {
	Provider     string // "emulator" or "fosite"
	BaseURL      string
	ClientID     string
	ClientSecret string
	RedirectURI  string
	ConnIDs      []string // "" derives the key, as a user's connection does
	Store        string   // a file path, or a postgres:// URL
	Path         string   // the API endpoint each call GETs
	Goroutines   int
	Duration     time.Duration
	Margin       time.Duration
	Fault        string // chaos: "", "slow-answer" or "slow-send"
	// Hold, if set, is a file whose existence keeps a storm child calling
	// past Duration: a storm with an outage removes it once the outage is
	// over and calls have had time to recover, however slow the machine.
	Hold string
}

// TestHelperProcess is not a test: it is the body of a child process of the
// storm and chaos tests, and returns at once when run as part of the suite.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(envHelper)
	if mode == "" {
		return
	}
	var cfg helperConfig
	if err := json.Unmarshal([]byte(os.Getenv(envHelperConfig)), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "helper: bad config:", err)
		os.Exit(2)
	}
	var err error
	switch mode {
	case "storm":
		err = stormChild(t, cfg)
	case "chaos":
		err = chaosChild(t, cfg)
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// helperConnection builds the connection the parent and every child share;
// equal inputs give equal store keys.
func helperConnection(t *testing.T, cfg helperConfig, id string) *connector.Connection {
	t.Helper()
	c := &connector.Connection{ID: id, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, RedirectURI: cfg.RedirectURI}
	switch cfg.Provider {
	case "emulator":
		def, err := definitions.Builtin().Lookup("procore")
		if err != nil {
			t.Fatal(err)
		}
		c.Definition, c.BaseURL, c.LoginURL = def, cfg.BaseURL, cfg.BaseURL
		c.Fields = map[string]string{"CompanyId": strconv.FormatInt(emulator.DemoCompanyID, 10)}
	case "fosite":
		c.Definition = fositeDefinition(t, cfg.BaseURL, "")
	default:
		t.Fatalf("unknown provider %q", cfg.Provider)
	}
	return c
}

// openHelperStore opens the store at loc with the key in CONNECTOR_SECRET_KEY.
func openHelperStore(ctx context.Context, loc string) (store.Store, error) {
	sealer, err := store.LoadSealer("")
	if err != nil {
		return nil, err
	}
	if pgstore.IsURL(loc) {
		return pgstore.Open(ctx, loc, sealer)
	}
	return filestore.Open(loc, sealer)
}

// newSealingKey returns a random key in the form CONNECTOR_SECRET_KEY takes,
// and its sealer.
func newSealingKey(t *testing.T) (string, *store.Sealer) {
	t.Helper()
	raw := make([]byte, store.KeySize)
	_, _ = rand.Read(raw)
	sealer, err := store.NewSealer(raw)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(raw), sealer
}

// helperCommand prepares a child process of this test binary.
func helperCommand(t *testing.T, mode string, cfg helperConfig, key string) *exec.Cmd {
	t.Helper()
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1", "-test.timeout=10m")
	cmd.Env = append(os.Environ(), envHelper+"="+mode, envHelperConfig+"="+string(data), store.EnvSecretKey+"="+key)
	return cmd
}

// fingerprint names a token in a report without revealing it.
func fingerprint(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:8])
}

// observedStore watches the refresh protocol's writes in a child: each
// refresh starts with a Put that sets RefreshStarted on the record still
// holding the token to be replaced, so that Put tells when a refresh began
// and how much life the replaced token had left.
type observedStore struct {
	store.Store
	margin   time.Duration
	rejected *sync.Map // access tokens this process saw refused with 401

	// onMarker runs after a refresh's marker is stored, and onAnswer after
	// the provider answered, before the new token is stored (chaos faults).
	onMarker func(id string)
	onAnswer func(id string)

	mu         sync.Mutex
	marker     map[string]time.Time // the last RefreshStarted seen per connection
	markedWith map[string]string    // the access token the marked record held
	refreshes  int                  // refreshes begun
	early      int                  // ... of a token neither due nor refused
}

func newObservedStore(s store.Store, margin time.Duration) *observedStore {
	return &observedStore{Store: s, margin: margin, rejected: &sync.Map{},
		marker: map[string]time.Time{}, markedWith: map[string]string{}}
}

func (o *observedStore) Put(ctx context.Context, r store.Record) (store.Record, error) {
	o.mu.Lock()
	begins := !r.RefreshStarted.IsZero() && !r.RefreshStarted.Equal(o.marker[r.ID])
	answered := r.RefreshStarted.IsZero() && r.Status == store.StatusConnected &&
		o.markedWith[r.ID] != "" && r.Token.AccessToken != o.markedWith[r.ID]
	o.mu.Unlock()
	if answered && o.onAnswer != nil {
		o.onAnswer(r.ID)
	}
	saved, err := o.Store.Put(ctx, r)
	if err != nil {
		return saved, err // a refresh whose marker was not stored was not sent
	}
	o.mu.Lock()
	if begins {
		o.marker[r.ID], o.markedWith[r.ID] = r.RefreshStarted, r.Token.AccessToken
		o.refreshes++
		_, refused := o.rejected.Load(r.Token.AccessToken)
		if r.Token.Expiry.Sub(r.RefreshStarted) > r.Token.RefreshMargin(o.margin) && !refused {
			o.early++
		}
	}
	if r.RefreshStarted.IsZero() {
		o.markedWith[r.ID] = ""
	}
	o.mu.Unlock()
	if begins && o.onMarker != nil {
		o.onMarker(r.ID)
	}
	return saved, nil
}

// watchingTransport is the API's base transport in a child: it notes the
// access tokens the API refused and fingerprints those it accepted.
type watchingTransport struct {
	next     http.RoundTripper
	rejected *sync.Map
	accepted sync.Map // fingerprint -> true
	refused  atomic.Int64
}

func (w *watchingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	access := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	resp, err := w.next.RoundTrip(r)
	if err == nil {
		switch {
		case resp.StatusCode == http.StatusUnauthorized:
			w.rejected.Store(access, true)
			w.refused.Add(1)
		case resp.StatusCode/100 == 2:
			w.accepted.Store(fingerprint(access), true)
		}
	}
	return resp, err
}

// stormReport is what a storm child prints when done.
type stormReport struct {
	OK, Failed        int
	ExpiredInFlight   int // calls refused 401 after a renewal and replay: see stormChild
	MinOKPerGoroutine int
	Errors            []string // distinct messages, at most a few
	FirstOK, LastOK   time.Time
	// FirstFailure and LastFailure bound the failed calls; OKAfterFailures
	// is the fewest successful calls any goroutine made after its last
	// failure (-1 when no goroutine failed).
	FirstFailure, LastFailure time.Time
	OKAfterFailures           int
	Refreshes, Early          int
	Refused                   int // calls the API answered 401 (then renewed and replayed)
	// TotalLatency and MaxLatency are of the successful calls.
	TotalLatency, MaxLatency time.Duration
	Tokens                   []string // fingerprints of the access tokens the API accepted
}

// held reports whether the hold file exists.
func held(path string) bool {
	if path == "" {
		return false
	}
	_, err := os.Stat(path)
	return err == nil
}

// stormChild runs Goroutines goroutines calling the API for Duration and
// prints a stormReport.
func stormChild(t *testing.T, cfg helperConfig) error {
	ctx := context.Background()
	raw, err := openHelperStore(ctx, cfg.Store)
	if err != nil {
		return err
	}
	defer raw.Close()
	st := newObservedStore(raw, cfg.Margin)
	conn := helperConnection(t, cfg, cfg.ConnIDs[0])
	src, err := connector.NewSource(conn, st)
	if err != nil {
		return err
	}
	src.Margin = cfg.Margin
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConnsPerHost = cfg.Goroutines // one kept-alive connection per goroutine
	wt := &watchingTransport{next: base, rejected: st.rejected}
	api, err := connector.NewAPI(conn, st, &connector.APIOptions{Base: wt, Source: src})
	if err != nil {
		return err
	}

	var (
		mu  sync.Mutex
		rep = stormReport{MinOKPerGoroutine: -1, OKAfterFailures: -1}
		wg  sync.WaitGroup
	)
	fmt.Println(callingLine)
	deadline := time.Now().Add(cfg.Duration)
	for range cfg.Goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ok, failed, okAfter, expired int
			var first, last, firstFail, lastFail time.Time
			var errs []string
			var slowest, total time.Duration
			// A goroutine whose last call failed (or that has made none)
			// goes on past the deadline until one succeeds: on a starved
			// CPU its every call within the deadline may have met a 1s
			// token expiring in flight, and "every goroutine succeeds, and
			// succeeds again after an outage" is the invariant checked,
			// not how many calls fit in Duration. Bounded by overtime.
			for time.Now().Before(deadline) || held(cfg.Hold) || okAfter == 0 && time.Now().Before(deadline.Add(stormOvertime)) {
				began := time.Now()
				cctx, cancel := context.WithTimeout(ctx, time.Minute)
				resp, err := api.Do(cctx, connector.Request{Path: cfg.Path})
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				cancel()
				now := time.Now()
				// A call refused with 401 even after the API layer renewed
				// its token and replayed it had a token that expired (or was
				// rotated away) while it was in flight: on a starved CPU a
				// 1s token can. That depends on speed, not on the refresh
				// protocol, whose invariants (no lost or reused token, one
				// refresh per expiry) are checked at the provider; so it is
				// counted apart, not as a failure.
				var apiErr *connector.APIError
				if errors.As(err, &apiErr) && apiErr.Status == http.StatusUnauthorized {
					expired++
					time.Sleep(10 * time.Millisecond)
					continue
				}
				if err != nil {
					failed, okAfter = failed+1, 0
					if firstFail.IsZero() {
						firstFail = now
					}
					lastFail = now
					if len(errs) < 3 {
						errs = append(errs, err.Error())
					}
					time.Sleep(10 * time.Millisecond) // an outage is not a reason to spin
					continue
				}
				ok++
				okAfter++
				if first.IsZero() {
					first = now
				}
				last = now
				if d := now.Sub(began); d > slowest {
					slowest = d
				}
				total += now.Sub(began)
				time.Sleep(stormThink/2 + mrand.N(stormThink)) // see stormThink
			}
			mu.Lock()
			defer mu.Unlock()
			rep.OK += ok
			rep.Failed += failed
			rep.ExpiredInFlight += expired
			rep.TotalLatency += total
			rep.MaxLatency = max(rep.MaxLatency, slowest)
			if rep.MinOKPerGoroutine < 0 || ok < rep.MinOKPerGoroutine {
				rep.MinOKPerGoroutine = ok
			}
			if !first.IsZero() && (rep.FirstOK.IsZero() || first.Before(rep.FirstOK)) {
				rep.FirstOK = first
			}
			if last.After(rep.LastOK) {
				rep.LastOK = last
			}
			if failed > 0 {
				if rep.FirstFailure.IsZero() || firstFail.Before(rep.FirstFailure) {
					rep.FirstFailure = firstFail
				}
				if lastFail.After(rep.LastFailure) {
					rep.LastFailure = lastFail
				}
				if rep.OKAfterFailures < 0 || okAfter < rep.OKAfterFailures {
					rep.OKAfterFailures = okAfter
				}
			}
			for _, e := range errs {
				if len(rep.Errors) < 5 && !containsString(rep.Errors, e) {
					rep.Errors = append(rep.Errors, e)
				}
			}
		}()
	}
	wg.Wait()
	st.mu.Lock()
	rep.Refreshes, rep.Early = st.refreshes, st.early
	rep.Refused = int(wt.refused.Load())
	st.mu.Unlock()
	wt.accepted.Range(func(k, _ any) bool {
		rep.Tokens = append(rep.Tokens, k.(string))
		return true
	})
	data, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	fmt.Println(resultPrefix + string(data))
	return nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// stormDuration is how long each storm's calls last: 30s, or STORM_DURATION.
func stormDuration(t *testing.T) time.Duration {
	t.Helper()
	if v := os.Getenv(envStormDuration); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second {
			t.Fatalf("%s=%q: want a duration of at least 1s, such as 30s or 2m", envStormDuration, v)
		}
		return d
	}
	return 30 * time.Second
}

const (
	stormProcs      = 8
	stormGoroutines = 50
	stormLifetime   = time.Second            // of each access token
	stormMargin     = 200 * time.Millisecond // refresh proactively this long before expiry
	// stormThink is the mean pause of a goroutine between calls. Without
	// it the 400 goroutines saturate two cores under the race detector
	// (measured: about 1000 calls/s, a mean call of 0.3s, the slowest over
	// 1s), and a call can then outlast a token: a call refused because its
	// token expired on the way is replayed with a fresh token that expires
	// on the way too, and fails whatever the client does. The storm is
	// about the refresh protocol, not throughput: with the pause, every
	// expiry still finds the 8 processes needing the new token within a
	// few milliseconds of each other.
	stormThink = time.Second
	// stormOvertime bounds how long past its Duration a goroutine goes on
	// to make the successful call it still lacks.
	stormOvertime = 2 * time.Minute
)

// storm is one run: a provider, a seeded connection, and the stores its
// child processes use (one entry per process).
type storm struct {
	cfg    helperConfig // Store is set per process from stores
	stores []string
	key    string
	// midway, if set, runs halfway through the storm (a database restart)
	// and returns the window in which calls may fail because of it.
	midway func(t *testing.T) (from, to time.Time)
	// tick, if set, runs every tickEvery while the children run.
	tick      func()
	tickEvery time.Duration
}

// stormOutcome is what the parent learnt from a storm's children.
type stormOutcome struct {
	reports             []stormReport
	wall                time.Duration // from starting the first child to the exit of the last
	start               time.Time
	outage              [2]time.Time // the window midway returned, if any
	ok                  int
	failed              int
	expiredInFlight     int // calls whose token expired in flight, summed over the children
	refresh             int // refreshes begun, summed over the children
	early               int
	refused             int // calls answered 401, summed over the children
	tokens              int // distinct access tokens the API accepted
	minOK               int
	maxSpan             time.Duration // the longest stretch over which one child's calls succeeded
	latency, maxLatency time.Duration // summed over, and the longest of, the successful calls
	firstErr            []string
}

// run starts the children, waits for them and sums their reports.
func (s *storm) run(t *testing.T) stormOutcome {
	t.Helper()
	var out stormOutcome
	cmds := make([]*exec.Cmd, len(s.stores))
	stdout := make([]startWatcher, len(s.stores))
	stderr := make([]bytes.Buffer, len(s.stores))
	if s.midway != nil {
		s.cfg.Hold = filepath.Join(t.TempDir(), "hold")
		if err := os.WriteFile(s.cfg.Hold, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out.start = time.Now()
	for i, loc := range s.stores {
		cfg := s.cfg
		cfg.Store = loc
		cmds[i] = helperCommand(t, "storm", cfg, s.key)
		stdout[i].started = make(chan struct{})
		cmds[i].Stdout, cmds[i].Stderr = &stdout[i], &stderr[i]
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	// A child that hangs is killed well after its calls should have ended,
	// so that the test fails instead of waiting for the suite's timeout.
	watchdog := time.AfterFunc(s.cfg.Duration+3*time.Minute, func() {
		for _, c := range cmds {
			c.Process.Kill()
		}
	})
	defer watchdog.Stop()
	if s.tick != nil {
		ticker := time.NewTicker(s.tickEvery)
		done := make(chan struct{})
		var ticking sync.WaitGroup
		ticking.Add(1)
		go func() {
			defer ticking.Done()
			for {
				select {
				case <-ticker.C:
					s.tick()
				case <-done:
					return
				}
			}
		}()
		defer func() {
			ticker.Stop()
			close(done)
			ticking.Wait()
		}()
	}
	if s.midway != nil {
		// Halfway through the calls, which begin once every child is up.
		for i := range stdout {
			select {
			case <-stdout[i].started:
			case <-time.After(2 * time.Minute):
				t.Errorf("child %d did not start calling within 2 minutes", i)
			}
		}
		time.Sleep(s.cfg.Duration / 2)
		out.outage[0], out.outage[1] = s.midway(t)
		// As long again after the outage as before it, then let the
		// children stop.
		time.Sleep(s.cfg.Duration / 2)
		if err := os.Remove(s.cfg.Hold); err != nil {
			t.Errorf("releasing the children: %v", err)
		}
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Errorf("child %d: %v\nstderr:\n%s", i, err, tail(stderr[i].String(), 4000))
		}
	}
	out.wall = time.Since(out.start)
	if t.Failed() {
		t.FailNow()
	}
	tokens := map[string]bool{}
	out.minOK = -1
	for i := range cmds {
		var rep stormReport
		line := resultLine(stdout[i].buf.String())
		if err := json.Unmarshal([]byte(line), &rep); err != nil {
			t.Fatalf("child %d printed no report (%v); stdout:\n%s\nstderr:\n%s", i, err, tail(stdout[i].buf.String(), 2000), tail(stderr[i].String(), 2000))
		}
		out.reports = append(out.reports, rep)
		out.ok += rep.OK
		out.failed += rep.Failed
		out.expiredInFlight += rep.ExpiredInFlight
		out.refresh += rep.Refreshes
		out.refused += rep.Refused
		out.latency += rep.TotalLatency
		out.maxLatency = max(out.maxLatency, rep.MaxLatency)
		out.early += rep.Early
		if out.minOK < 0 || rep.MinOKPerGoroutine < out.minOK {
			out.minOK = rep.MinOKPerGoroutine
		}
		if span := rep.LastOK.Sub(rep.FirstOK); span > out.maxSpan {
			out.maxSpan = span
		}
		for _, tok := range rep.Tokens {
			tokens[tok] = true
		}
		for _, e := range rep.Errors {
			if len(out.firstErr) < 5 && !containsString(out.firstErr, e) {
				out.firstErr = append(out.firstErr, e)
			}
		}
	}
	out.tokens = len(tokens)
	return out
}

// startWatcher collects a storm child's stdout and closes started when the
// child says it begins calling.
type startWatcher struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	once    sync.Once
	started chan struct{}
}

func (w *startWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	if bytes.Contains(w.buf.Bytes(), []byte(callingLine+"\n")) {
		w.once.Do(func() { close(w.started) })
	}
	return n, err
}

func resultLine(stdout string) string {
	for _, line := range strings.Split(stdout, "\n") {
		if rest, ok := strings.CutPrefix(line, resultPrefix); ok {
			return rest
		}
	}
	return ""
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// providerCounts is what the provider saw of a storm.
type providerCounts struct {
	refreshes       int // refresh grants that issued tokens
	refreshRequests int // refresh requests, granted or not
	revocations     int // grants revoked (or reuses detected) for a replayed refresh token
	injected        int // access tokens the provider was told to expire early
}

// checkRefreshCadence asserts that the storm refreshed exactly once per
// expiry. The argument, each step checked:
//
//  1. No refresh token was presented twice: the provider answered every
//     refresh request with new tokens (refreshRequests == refreshes) and
//     revoked no grant. So refreshes form one chain, each replacing the
//     token the previous one issued.
//  2. Every refresh replaced a token that was due: the children's stores
//     saw each refresh begin (their count equals the provider's) and, for
//     each, the token being replaced had at most Margin left before its
//     expiry, or the API had just refused it with 401 in that process
//     (early == 0). A redundant refresh — two workers both renewing, or
//     one renewing a token another had just renewed — replaces a token
//     that is neither, and fails this.
//  3. Hence consecutive refreshes are at least minSpacing apart (the
//     token's lifetime less Margin; less when the provider may expire a
//     token sooner than it says), except that each token the provider
//     expired early (injected) allows one more; so over the wall time W
//     there are at most W/minSpacing + 1 + injected of them. This checks
//     the provider's own count against the children's claim.
//  4. And since every call succeeded while one child's calls spanned S,
//     and no token lives longer than maxLife at the provider, at least
//     S/maxLife - 1 refreshes took place: tokens really expired and were
//     renewed throughout.
func checkRefreshCadence(t *testing.T, out stormOutcome, p providerCounts, minSpacing, maxLife time.Duration) {
	t.Helper()
	if p.revocations != 0 {
		t.Errorf("the provider revoked %d grants for a replayed refresh token; want 0", p.revocations)
	}
	if p.refreshRequests != p.refreshes {
		t.Errorf("the provider got %d refresh requests but granted %d: a refresh presented a used or unknown refresh token", p.refreshRequests, p.refreshes)
	}
	if out.refresh != p.refreshes {
		t.Errorf("the children began %d refreshes; the provider granted %d", out.refresh, p.refreshes)
	}
	if out.early != 0 {
		t.Errorf("%d refreshes replaced a token that had more than the margin left and that the API had not refused: redundant refreshes", out.early)
	}
	if most := int(out.wall/minSpacing) + 1 + p.injected; p.refreshes > most {
		t.Errorf("%d refreshes in %s with %d early expiries; at one per expiry there can be at most %d", p.refreshes, out.wall.Round(time.Millisecond), p.injected, most)
	}
	// While the store is down no token is needed: the span counts without
	// the outage.
	span := out.maxSpan - out.outage[1].Sub(out.outage[0])
	if least := int(span/maxLife) - 1; p.refreshes < least {
		t.Errorf("%d refreshes while calls succeeded for %s (outside any outage); tokens living at most %s need at least %d", p.refreshes, span.Round(time.Millisecond), maxLife, least)
	}
}

// checkAllCalls asserts that every call succeeded and every goroutine got
// to make calls.
func checkAllCalls(t *testing.T, out stormOutcome) {
	t.Helper()
	if out.failed != 0 {
		t.Errorf("%d of %d API calls failed; first errors: %q", out.failed, out.ok+out.failed, out.firstErr)
	}
	if out.minOK < 1 {
		t.Errorf("a goroutine made no successful call")
	}
}

func logStorm(t *testing.T, name string, out stormOutcome, refreshes int) {
	t.Helper()
	mean := time.Duration(0)
	if out.ok > 0 {
		mean = out.latency / time.Duration(out.ok)
	}
	t.Logf("%s: %d processes x %d goroutines, %d calls (%d failed, %d expired in flight, %.0f/s, mean %s, slowest %s) in %s wall; %d refreshes at the provider, %d begun by the children, %d distinct access tokens served calls, %d calls refused with 401 and replayed",
		name, len(out.reports), stormGoroutines, out.ok+out.failed+out.expiredInFlight, out.failed, out.expiredInFlight, float64(out.ok+out.failed+out.expiredInFlight)/out.wall.Seconds(),
		mean.Round(time.Millisecond), out.maxLatency.Round(time.Millisecond),
		out.wall.Round(time.Millisecond), refreshes, out.refresh, out.tokens, out.refused)
}

// startStormEmulator runs an emulator whose access tokens last
// stormLifetime, with a rate limit the storm cannot reach.
func startStormEmulator(t *testing.T, lifetime time.Duration) (*emulator.Server, helperConfig) {
	t.Helper()
	cfg := helperConfig{Provider: "emulator", ClientID: "storm", ClientSecret: "storm-secret-&?%+", RedirectURI: "http://127.0.0.1:9/callback"}
	emu := emulator.New(emulator.Config{
		Clients:       []emulator.Client{{ID: cfg.ClientID, Secret: cfg.ClientSecret}},
		TokenLifetime: lifetime,
		RateLimit:     1 << 30,
	})
	base, err := emu.Start(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	cfg.BaseURL = base
	return emu, cfg
}

// authorizeEmulator runs the code flow against the emulator for the
// connection id and stores the token.
func authorizeEmulator(t *testing.T, cfg helperConfig, st store.Store, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	src, err := connector.NewSource(helperConnection(t, cfg, id), st)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := authorizeAtEmulator(ctx, src.Flow())
	if err != nil {
		t.Fatalf("authorizing connection %s: %v", id, err)
	}
	if err := src.Store(ctx, tok); err != nil {
		t.Fatal(err)
	}
}

// expireNow has the emulator expire, every 2s, the access token of the
// next API call on arrival, so that every storm also has expiries that the
// children learn of only from a 401: all of them then present the refused
// token to Source.Reject at once, and exactly one may refresh.
func expireNow(s *storm, emu *emulator.Server) {
	s.tick, s.tickEvery = func() { emu.ExpireAccessTokens(1) }, 2*time.Second
}

func emulatorCounts(st emulator.Stats) providerCounts {
	return providerCounts{refreshes: st.Refreshes, refreshRequests: st.TokenRequests["refresh_token"],
		revocations: st.GrantRevocations, injected: st.ExpiredAccessTokens}
}

func stormStorePath(t *testing.T) string {
	return filepath.Join(t.TempDir(), "store.json")
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// TestStormEmulatorFilestore: 8 processes x 50 goroutines share one
// connection in the embedded file store; its access tokens last 1s.
func TestStormEmulatorFilestore(t *testing.T) {
	if testing.Short() {
		t.Skip("a storm of 8 processes for 30s")
	}
	emu, cfg := startStormEmulator(t, stormLifetime)
	key, sealer := newSealingKey(t)
	path := stormStorePath(t)
	st, err := filestore.Open(path, sealer)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg.ConnIDs = []string{""}
	authorizeEmulator(t, cfg, st, "")
	cfg.Path, cfg.Goroutines, cfg.Duration, cfg.Margin = "/rest/v1.0/me", stormGoroutines, stormDuration(t), stormMargin

	s := &storm{cfg: cfg, stores: repeat(path, stormProcs), key: key}
	expireNow(s, emu)
	out := s.run(t)
	stats := emu.Stats()
	logStorm(t, "emulator+filestore", out, stats.Refreshes)
	checkAllCalls(t, out)
	checkRefreshCadence(t, out, emulatorCounts(stats), stormLifetime-stormMargin, stormLifetime)
}

// TestStormFositeFilestore is the same storm against ory/fosite, a real
// authorization server with refresh-token rotation and reuse detection.
func TestStormFositeFilestore(t *testing.T) {
	if testing.Short() {
		t.Skip("a storm of 8 processes for 30s")
	}
	srv := fositeServer(t, fositeserver.Options{AccessTokenLifetime: stormLifetime})
	cfg := helperConfig{Provider: "fosite", BaseURL: srv.URL, ClientID: clientID, ClientSecret: clientSecret, RedirectURI: redirectURI, ConnIDs: []string{""}}
	key, sealer := newSealingKey(t)
	path := stormStorePath(t)
	st, err := filestore.Open(path, sealer)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	src, err := connector.NewSource(helperConnection(t, cfg, ""), st)
	if err != nil {
		t.Fatal(err)
	}
	connectFosite(t, src)
	cfg.Path, cfg.Goroutines, cfg.Duration, cfg.Margin = "/api/me", stormGoroutines, stormDuration(t), stormMargin

	s := &storm{cfg: cfg, stores: repeat(path, stormProcs), key: key}
	out := s.run(t)
	stats := srv.Stats()
	logStorm(t, "fosite+filestore", out, stats.Refreshes)
	checkAllCalls(t, out)
	// fosite rounds an access token's expiry to the second, so a token of
	// 1s lives between 0.5s and 1.5s, and it truncates expires_in, which
	// then says 0 or 1. The engine takes an expires_in of 0 as "unknown"
	// and assumes an hour; such a token is renewed when the API refuses it
	// (the children count that as due). Refreshes are therefore at least
	// 0.5s apart and tokens live at most 1.5s.
	checkRefreshCadence(t, out, providerCounts{refreshes: stats.Refreshes, refreshRequests: stats.TokenRequests - stats.CodeExchanges, revocations: stats.RefreshReuseDetected},
		stormLifetime/2, stormLifetime*3/2)
}

// TestStormEmulatorPostgres is the storm on two "hosts": two groups of 4
// processes, each process with its own pgstore pools, one group reaching
// PostgreSQL over TCP and the other over its unix socket. Halfway through,
// PostgreSQL restarts (a fast shutdown, which ends every session and so
// every advisory lock held). Calls that need the store may fail while it is
// down, with an error saying so; all others succeed, every goroutine works
// again afterwards, and the refresh protocol holds throughout: no grant
// revoked, no refresh token presented twice, no redundant refresh.
func TestStormEmulatorPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("a storm of 8 processes for 30s")
	}
	cluster := pgtest.New(t)
	tcpURL := cluster.CreateDatabase(t, "storm")
	socketURL := cluster.SocketURL("storm")
	emu, cfg := startStormEmulator(t, stormLifetime)
	key, sealer := newSealingKey(t)
	st, err := pgstore.Open(context.Background(), tcpURL, sealer)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnIDs = []string{""}
	authorizeEmulator(t, cfg, st, "")
	st.Close() // the parent must hold no session across the restart
	cfg.Path, cfg.Goroutines, cfg.Duration, cfg.Margin = "/rest/v1.0/me", stormGoroutines, stormDuration(t), stormMargin

	s := &storm{cfg: cfg, stores: append(repeat(tcpURL, stormProcs/2), repeat(socketURL, stormProcs/2)...), key: key}
	var down atomic.Bool
	expireNow(s, emu)
	tick := s.tick
	s.tick = func() {
		if !down.Load() {
			tick()
		}
	}
	s.midway = func(t *testing.T) (time.Time, time.Time) {
		// The stop comes just after a refresh was stored. A stop in the
		// milliseconds between a refresh's request and the write of its
		// answer would lose that answer, and the connection would rightly
		// need authorizing again: that is the chaos test's subject. Here
		// the outage must prove that the engine recovers.
		down.Store(true)
		defer down.Store(false)
		waitForFreshToken(t, tcpURL, sealer, helperConnection(t, cfg, "").Key())
		// Down for longer than a token lives, so that refreshes must fail
		// meanwhile; Restart would be back too soon for that, as the API
		// layer retries a GET whose token could not be had.
		from := time.Now()
		if err := cluster.Stop(); err != nil {
			t.Errorf("stopping PostgreSQL: %v", err)
		}
		time.Sleep(2 * stormLifetime)
		if err := cluster.Start(); err != nil {
			t.Errorf("starting PostgreSQL again: %v", err)
		}
		return from, time.Now()
	}
	out := s.run(t)
	stats := emu.Stats()
	logStorm(t, "emulator+postgres", out, stats.Refreshes)
	from, to := out.outage[0], out.outage[1]
	t.Logf("PostgreSQL was down for %s, %s into the storm; %d calls failed; errors: %q",
		to.Sub(from).Round(time.Millisecond), from.Sub(out.start).Round(time.Millisecond), out.failed, out.firstErr)
	for i, rep := range out.reports {
		if rep.Failed == 0 {
			continue
		}
		// Only the outage may fail calls: none before it began, each one
		// naming the store (below), and every goroutine calling
		// successfully after its last failure. How soon after the restart
		// the last failure comes depends on the machine's speed (pools
		// reconnecting, backoff), so it is logged, not asserted.
		if rep.FirstFailure.Before(from) {
			t.Errorf("child %d: calls failed from %s into the storm, before PostgreSQL went down at %s",
				i, rep.FirstFailure.Sub(out.start).Round(time.Millisecond), from.Sub(out.start).Round(time.Millisecond))
		}
		t.Logf("child %d: last failed call %s after PostgreSQL was back", i, rep.LastFailure.Sub(to).Round(time.Millisecond))
		if rep.OKAfterFailures < 1 {
			t.Errorf("child %d: a goroutine made no successful call after its calls failed", i)
		}
		for _, e := range rep.Errors {
			if !strings.Contains(e, "pgstore") {
				t.Errorf("child %d: a call failed during the outage without saying the store is the cause: %s", i, e)
			}
		}
	}
	if out.minOK < 1 {
		t.Errorf("a goroutine made no successful call")
	}
	checkRefreshCadence(t, out, emulatorCounts(stats), stormLifetime-stormMargin, stormLifetime)

	// Afterwards the connection works for a fresh process.
	st, err = pgstore.Open(context.Background(), tcpURL, sealer)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	api, err := connector.NewAPI(helperConnection(t, cfg, ""), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := api.Do(context.Background(), connector.Request{Path: cfg.Path})
	if err != nil {
		t.Fatalf("after the storm: %v", err)
	}
	resp.Body.Close()
}

// waitForFreshToken waits until the connection's stored token was issued
// moments ago and no refresh is in flight.
func waitForFreshToken(t *testing.T, url string, sealer *store.Sealer, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := pgstore.Open(ctx, url, sealer)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for {
		rec, err := st.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if rec.RefreshStarted.IsZero() && time.Until(rec.Token.Expiry) > stormLifetime*7/10 {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// gatedStore holds every Lock call at a gate until release is closed,
// telling entered about each, so that a test can line up concurrent
// renewals inside Source.
type gatedStore struct {
	store.Store
	entered chan struct{}
	release chan struct{}
}

func (g *gatedStore) Lock(ctx context.Context, id string) (func() error, error) {
	g.entered <- struct{}{}
	<-g.release
	return g.Store.Lock(ctx, id)
}

// TestStormRejectedTokenNeverHandedBack pins down a race the storms can
// only hit by chance: a goroutine whose cached token is old renews while
// another, whose call was just refused with 401, rejects the stored token.
// The first may rightly get the stored token back; the second must not,
// or it replays the call with the token the API refused. (Both once shared
// one in-process flight per connection.)
func TestStormRejectedTokenNeverHandedBack(t *testing.T) {
	var refreshes atomic.Int32
	srv := startLoopbackServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := refreshes.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"renewed-%d","refresh_token":"rt-%d","expires_in":3600,"token_type":"bearer"}`, n, n)
	}))
	conn := &connector.Connection{Definition: fositeDefinition(t, srv, ""), ClientID: clientID, ClientSecret: clientSecret, RedirectURI: redirectURI}
	mem := store.NewMemory()
	gated := &gatedStore{Store: mem, entered: make(chan struct{}, 4), release: make(chan struct{})}
	src, err := connector.NewSource(conn, gated)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// This process cached "old", now due; meanwhile another process stored
	// "current", which the API has just refused.
	close(gated.release)
	if err := src.Store(ctx, &token.Token{AccessToken: "old", RefreshToken: "rt-old", Expiry: time.Now().Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	<-gated.entered
	rec, err := mem.Get(ctx, conn.Key())
	if err != nil {
		t.Fatal(err)
	}
	rec.Token = token.Token{AccessToken: "current", RefreshToken: "rt-current", Expiry: time.Now().Add(time.Hour)}
	if _, err := mem.Put(ctx, rec); err != nil {
		t.Fatal(err)
	}
	gated.release = make(chan struct{})

	type result struct {
		tok token.Token
		err error
	}
	renewed, rejected := make(chan result, 1), make(chan result, 1)
	go func() {
		tok, err := src.TokenContext(ctx)
		renewed <- result{tok, err}
	}()
	<-gated.entered // the renewal of "old" is under way
	go func() {
		tok, err := src.Reject(ctx, "current")
		rejected <- result{tok, err}
	}()
	// The rejection must take the lock itself; if it joined the renewal
	// instead, it never arrives here (the wait then ends, and the checks
	// below fail).
	select {
	case <-gated.entered:
	case <-time.After(2 * time.Second):
	}
	close(gated.release)

	r := <-renewed
	// Whichever got the lock first, the renewal gets a fresh token: the
	// stored one, or the one the rejection refreshed to.
	if r.err != nil || r.tok.AccessToken == "old" || r.tok.AccessToken == "" {
		t.Errorf("the renewal of a due cached token got %v, %v; want a fresh token", r.tok, r.err)
	}
	r = <-rejected
	if r.err != nil || r.tok.AccessToken == "current" || r.tok.AccessToken == "" {
		t.Errorf("Reject of the stored token got %v, %v; want a refreshed token", r.tok, r.err)
	}
	if n := refreshes.Load(); n != 1 {
		t.Errorf("%d refreshes; want 1", n)
	}
}

// startLoopbackServer serves h on 127.0.0.1 until the test ends and returns
// its URL.
func startLoopbackServer(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: h}}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestStormShortTokensDefaultMargin: 8 processes share tokens that live 2s
// under the default margin cap of 2 minutes. A fixed margin longer than the
// lifetime renewed the token on every call (220 refreshes for ~30 expiries
// measured); a margin of a tenth of the lifetime renews about once per
// expiry, whatever the machine's speed.
func TestStormShortTokensDefaultMargin(t *testing.T) {
	if testing.Short() {
		t.Skip("a storm of 8 processes")
	}
	const lifetime = 2 * time.Second
	emu, cfg := startStormEmulator(t, lifetime)
	key, sealer := newSealingKey(t)
	path := stormStorePath(t)
	st, err := filestore.Open(path, sealer)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg.ConnIDs = []string{""}
	authorizeEmulator(t, cfg, st, "")
	cfg.Path, cfg.Goroutines, cfg.Duration, cfg.Margin = "/rest/v1.0/me", stormGoroutines, min(stormDuration(t), 10*time.Second), connector.DefaultMargin

	s := &storm{cfg: cfg, stores: repeat(path, stormProcs), key: key}
	expireNow(s, emu)
	out := s.run(t)
	stats := emu.Stats()
	logStorm(t, "emulator+filestore, 2s tokens, default margin", out, stats.Refreshes)
	checkRefreshCadence(t, out, emulatorCounts(stats), lifetime-lifetime/token.MarginFraction, lifetime)
}
