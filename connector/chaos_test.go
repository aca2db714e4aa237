package connector_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/emulator"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/store/filestore"
	"github.com/connector-engine/connector/connector/token"
)

// envChaosKills sets how many times the chaos test kills a refreshing process.
const envChaosKills = "CHAOS_KILLS"

// chaosChild forces refreshes of every connection in cfg.ConnIDs, one
// goroutine each, until killed. It prints "ready" once it is about to
// start, "needs-reauth ID" when a connection stops, and "error ID KIND
// MESSAGE" for a refresh that failed otherwise (KIND "request" when the
// answer was lost). With cfg.Fault it also stops dead once, announcing it,
// at the moment a fault needs: "answered ID" after the provider answered
// a refresh and before the new token is stored ("slow-answer"), "marked
// ID" after the in-flight marker is stored and before the request is sent
// ("slow-send").
func chaosChild(t *testing.T, cfg helperConfig) error {
	ctx := context.Background()
	raw, err := openHelperStore(ctx, cfg.Store)
	if err != nil {
		return err
	}
	defer raw.Close()
	st := newObservedStore(raw, 0)
	var out sync.Mutex
	say := func(format string, args ...any) {
		out.Lock()
		defer out.Unlock()
		fmt.Printf(format+"\n", args...) // os.Stdout is unbuffered: the parent reads it at once
	}
	var stopped atomic.Bool
	stopOnce := func(what string) func(id string) {
		return func(id string) {
			if stopped.CompareAndSwap(false, true) {
				say("%s %s", what, id)
				time.Sleep(time.Hour) // until killed
			}
		}
	}
	switch cfg.Fault {
	case "slow-answer":
		st.onAnswer = stopOnce("answered")
	case "slow-send":
		st.onMarker = stopOnce("marked")
	}

	sources := make([]*connector.Source, len(cfg.ConnIDs))
	for i, id := range cfg.ConnIDs {
		if sources[i], err = connector.NewSource(helperConnection(t, cfg, id), st); err != nil {
			return err
		}
	}
	say("ready")
	var wg sync.WaitGroup
	for i, src := range sources {
		id := cfg.ConnIDs[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				_, err := src.Refresh(ctx)
				var nr *connector.NeedsReauthError
				var re *connector.RequestError
				switch {
				case err == nil:
					continue
				case errors.As(err, &nr):
					say("needs-reauth %s", id)
					return
				case errors.As(err, &re):
					say("error %s request %s", id, oneLine(err))
				default:
					say("error %s other %s", id, oneLine(err))
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	wg.Wait() // every connection needs authorizing again
	return nil
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", " ") }

func chaosKills(t *testing.T) int {
	t.Helper()
	if v := os.Getenv(envChaosKills); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number of kills, such as 200", envChaosKills, v)
		}
		return n
	}
	return 200
}

// chaosChildRun is one started child and what it has said so far.
type chaosChildRun struct {
	lines  chan string // closed when the child's stdout ends
	seen   []string
	stderr *bytes.Buffer
	// kill SIGKILLs the child (if it still runs), collects what it said and
	// reaps it; true if it had ended on its own.
	kill func(t *testing.T) bool
}

// await returns the first line from the child starting with prefix; false
// if the child ended or the wait timed out first.
func (c *chaosChildRun) await(prefix string, timeout time.Duration) (string, bool) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				return "", false
			}
			c.seen = append(c.seen, line)
			if strings.HasPrefix(line, prefix) {
				return line, true
			}
		case <-timer.C:
			return "", false
		}
	}
}

// TestChaosKillDuringRefresh kills a process that refreshes four
// connections (each its own grant) in a loop, at random moments and, in a
// share of the iterations, at the two moments where a refresh token's fate
// is in doubt: after the in-flight marker is stored but before the request
// is sent, and after the provider rotated the token but before the new one
// is stored. After every kill each connection must either work for a fresh
// process or need re-authorization for the lost-refresh reason, and the
// provider must never have been shown a refresh token twice: no grant is
// ever revoked for reuse. A connection that needs re-authorization gets it
// (the code flow, approved programmatically) and the loop goes on.
func TestChaosKillDuringRefresh(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills 200 processes")
	}
	kills := chaosKills(t)
	emu, cfg := startStormEmulator(t, 0) // tokens live long: every refresh is forced
	cfg.ConnIDs = []string{"chaos-0", "chaos-1", "chaos-2", "chaos-3"}
	key, sealer := newSealingKey(t)
	path := filepath.Join(t.TempDir(), "store.json")
	st, err := filestore.Open(path, sealer)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg.Store = path
	for _, id := range cfg.ConnIDs {
		authorizeEmulator(t, cfg, st, id)
	}

	// The fault of each iteration, in turn. "drop" has the emulator process
	// one refresh and drop its answer, so the live child meets the lost
	// response itself; the others kill at random moments.
	faults := []string{"random", "slow-answer", "random", "slow-send", "drop", "random"}
	var (
		started                 = time.Now()
		needReauth              = map[string]int{} // by the fault of the iteration that found it
		worksWithMarker         int                // a fresh process worked although a refresh was in doubt
		windowsHit, windowsMiss int
		childStops              int // children that ended on their own: every connection needed re-authorization
		consumed                int // of needReauth: the stored refresh token had been used at the provider
		unconsumed              = map[string]int{}
	)
	for i := range kills {
		fault := faults[i%len(faults)]
		c := cfg
		if fault == "slow-answer" || fault == "slow-send" {
			c.Fault = fault
		}
		if fault == "drop" {
			emu.DropTokenResponses(1)
		}
		run := startChaosChild(t, c, key)
		if _, ok := run.await("ready", time.Minute); !ok {
			run.kill(t)
			t.Fatalf("iteration %d: the child did not start; stderr:\n%s", i, tail(run.stderr.String(), 4000))
		}
		var doubtful string // the connection stopped at a fault's moment
		switch fault {
		case "slow-answer", "slow-send":
			want := map[string]string{"slow-answer": "answered ", "slow-send": "marked "}[fault]
			if line, ok := run.await(want, 30*time.Second); ok {
				doubtful = strings.TrimPrefix(line, want)
				windowsHit++
			} else {
				windowsMiss++ // every connection needed re-authorization before getting there
			}
		default:
			time.Sleep(rand.N(60 * time.Millisecond))
		}
		if run.kill(t) {
			childStops++
		}
		emu.DropTokenResponses(0)
		for _, line := range run.seen {
			if strings.HasPrefix(line, "error ") && !strings.Contains(line, " request ") {
				t.Errorf("iteration %d (%s): the child's refresh failed unexpectedly: %s", i, fault, line)
			}
			if strings.HasPrefix(line, "error ") && fault != "drop" {
				t.Errorf("iteration %d (%s): a refresh lost its answer without a dropped response: %s", i, fault, line)
			}
		}

		quiesce(t, emu)
		before := emu.Stats()
		for _, id := range cfg.ConnIDs {
			rec, err := st.Get(context.Background(), id)
			if err != nil {
				t.Fatalf("iteration %d: connection %s: %v", i, id, err)
			}
			works := checkChaosConnection(t, cfg, st, id, i)
			switch {
			case works && !rec.RefreshStarted.IsZero():
				worksWithMarker++
			case !works:
				needReauth[fault]++
				// Was the stored refresh token really consumed (a lost
				// answer), or did the request never reach the provider?
				if used, issued := emu.RefreshTokenUsed(rec.Token.RefreshToken); !issued || used {
					consumed++
				} else {
					unconsumed[fault]++
				}
			}
			if id == doubtful {
				switch fault {
				case "slow-answer":
					// The provider rotated the token; its answer died with
					// the process. The next process must notice, not replay.
					if works {
						t.Errorf("iteration %d: connection %s works although the process died before storing the rotated token", i, id)
					}
				case "slow-send":
					// Killed before sending: the marker is durable, the old
					// access token still good, and the old refresh token
					// must not be presented either, since the engine
					// cannot know it was never sent.
					if !works || rec.RefreshStarted.IsZero() {
						t.Errorf("iteration %d: connection %s after a kill between marker and request: works=%v, marker=%v", i, id, works, !rec.RefreshStarted.IsZero())
					}
				}
			}
			if !works {
				authorizeEmulator(t, cfg, st, id)
			}
		}
		after := emu.Stats()
		if after.GrantRevocations != 0 {
			t.Fatalf("iteration %d (%s): the emulator revoked %d grants for a replayed refresh token", i, fault, after.GrantRevocations)
		}
		if n := after.TokenRequests["refresh_token"]; n != after.Refreshes {
			t.Fatalf("iteration %d (%s): %d refresh requests but %d refreshes: a refresh token was presented after it was used", i, fault, n, after.Refreshes)
		}
		if after.Refreshes != before.Refreshes {
			t.Fatalf("iteration %d: checking the connections refreshed %d times; a fresh process had no reason to", i, after.Refreshes-before.Refreshes)
		}
	}

	// Last, every connection, forced to refresh by a fresh process, either
	// works or needs authorizing again and then works.
	ctx := context.Background()
	for _, id := range cfg.ConnIDs {
		src, err := connector.NewSource(helperConnection(t, cfg, id), st)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := src.Refresh(ctx); err != nil {
			var nr *connector.NeedsReauthError
			if !errors.As(err, &nr) || nr.Reason != connector.ReasonLostRefresh {
				t.Fatalf("final refresh of %s: %v", id, err)
			}
			needReauth["final"]++
			authorizeEmulator(t, cfg, st, id)
		}
		api, err := connector.NewAPI(helperConnection(t, cfg, id), st, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := api.Do(ctx, connector.Request{Path: "/rest/v1.0/me"})
		if err != nil {
			t.Fatalf("connection %s does not work at the end: %v", id, err)
		}
		resp.Body.Close()
	}
	stats := emu.Stats()
	if stats.GrantRevocations != 0 || stats.TokenRequests["refresh_token"] != stats.Refreshes {
		t.Fatalf("at the end: %d grants revoked, %d refresh requests for %d refreshes", stats.GrantRevocations, stats.TokenRequests["refresh_token"], stats.Refreshes)
	}
	total := 0
	for _, n := range needReauth {
		total += n
	}
	t.Logf("%d kills in %s (%d children stopped on their own first); fault windows hit %d, missed %d; %d refreshes at the emulator, %d dropped answers, 0 grants revoked",
		kills, time.Since(started).Round(time.Millisecond), childStops, windowsHit, windowsMiss, stats.Refreshes, stats.DroppedTokenResponses)
	t.Logf("connections found needing re-authorization (lost-refresh reason): %d, by the fault of the iteration: %v; %d times a fresh process worked while a refresh was in doubt (that connection needs re-authorization at its next refresh); %d code exchanges",
		total, needReauth, worksWithMarker, stats.CodeExchanges)
	t.Logf("of those found during the loop, %d had their refresh token consumed at the provider (the rotated answer died with the process: no client can recover it) and %d had not (killed before the request reached the provider; by fault: %v), which the engine cannot tell apart without asking the provider",
		consumed, total-needReauth["final"]-consumed, unconsumed)
}

// quiesce waits until the emulator has finished the requests of the child
// just killed: a request sent before the kill is still processed (that is
// how a refresh's answer gets lost), and counting must wait for it. A
// request still in the socket when the count is read would be missed, so
// the count must stay at zero for a while.
func quiesce(t *testing.T, emu *emulator.Server) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for idle := 0; idle < 3; {
		if time.Now().After(deadline) {
			t.Fatalf("the emulator is still handling %d requests 10s after the child died", emu.InFlight())
		}
		time.Sleep(10 * time.Millisecond)
		if emu.InFlight() == 0 {
			idle++
		} else {
			idle = 0
		}
	}
}

// startChaosChild starts a chaos child whose stdout lines arrive on lines.
func startChaosChild(t *testing.T, cfg helperConfig, key string) *chaosChildRun {
	t.Helper()
	cmd := helperCommand(t, "chaos", cfg, key)
	run := &chaosChildRun{lines: make(chan string, 256), stderr: &bytes.Buffer{}}
	cmd.Stderr = run.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(run.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			run.lines <- sc.Text()
		}
	}()
	run.kill = func(t *testing.T) bool {
		if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Fatal(err)
		}
		// Read what the child said before dying, then reap it.
		for line := range run.lines {
			run.seen = append(run.seen, line)
		}
		werr := cmd.Wait()
		var ee interface{ ExitCode() int }
		if errors.As(werr, &ee) && ee.ExitCode() > 0 {
			t.Errorf("the chaos child failed: %v\n%s", werr, tail(run.stderr.String(), 4000))
		}
		return werr == nil
	}
	return run
}

// checkChaosConnection calls the API as a fresh process would: true if the
// call works, false if the connection needs authorizing again for the
// lost-refresh reason; anything else fails the test.
//
// It does what API.Do's bearer layer does (a token from a fresh Source,
// one renewal and replay on 401) without API.Do's retry layer, which
// retries a GET whose token source failed, NeedsReauthError included, and
// would spend its backoff (about 1.3s) on every connection found broken.
func checkChaosConnection(t *testing.T, cfg helperConfig, st store.Store, id string, iteration int) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	src, err := connector.NewSource(helperConnection(t, cfg, id), st)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := src.TokenContext(ctx)
	for attempt := 0; err == nil; attempt++ {
		var status int
		if status, err = getMe(ctx, cfg.BaseURL, tok); err != nil {
			t.Fatal(err)
		}
		switch {
		case status == http.StatusOK:
			return true
		case status != http.StatusUnauthorized || attempt > 0:
			t.Fatalf("iteration %d: connection %s: the API answered %d", iteration, id, status)
		}
		tok, err = src.Reject(ctx, tok.AccessToken)
	}
	var nr *connector.NeedsReauthError
	if !errors.As(err, &nr) || nr.Reason != connector.ReasonLostRefresh {
		t.Fatalf("iteration %d: connection %s neither works nor needs re-authorization for a lost refresh: %v", iteration, id, err)
	}
	rec, err := st.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status != store.StatusNeedsReauth || rec.Reason != connector.ReasonLostRefresh || !rec.RefreshStarted.IsZero() {
		t.Fatalf("iteration %d: connection %s is stored as %s (%q, marker %v); want %s with the lost-refresh reason", iteration, id, rec.Status, rec.Reason, rec.RefreshStarted, store.StatusNeedsReauth)
	}
	return false
}

// getMe calls the emulator's GET /rest/v1.0/me with tok.
func getMe(ctx context.Context, base string, tok token.Token) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/rest/v1.0/me", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", tok.Type()+" "+tok.AccessToken)
	req.Header.Set("Procore-Company-Id", strconv.FormatInt(emulator.DemoCompanyID, 10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// seededSource returns a Source for a connection to the token endpoint at
// base whose store holds a token due for refresh.
func seededSource(t *testing.T, base string) (*connector.Source, *connector.Connection, *store.Memory) {
	t.Helper()
	conn := &connector.Connection{Definition: fositeDefinition(t, base, ""), ClientID: clientID, ClientSecret: clientSecret, RedirectURI: redirectURI}
	st := store.NewMemory()
	src, err := connector.NewSource(conn, st)
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Store(context.Background(), &token.Token{AccessToken: "at-1", RefreshToken: "rt-1", Expiry: time.Now().Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	return src, conn, st
}

// TestChaosUnreachableProviderKeepsConnection: a refresh that never reached
// the provider (nothing listens at its address) consumed nothing, so it
// leaves no in-flight marker, and once the provider is back the refresh
// works: an outage of the provider must not cost a connection.
func TestChaosUnreachableProviderKeepsConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // connections to addr are now refused
	src, conn, st := seededSource(t, "http://"+addr)
	ctx := context.Background()

	_, err = src.Refresh(ctx)
	var re *connector.RequestError
	if !errors.As(err, &re) {
		t.Fatalf("refresh with the provider down: %v; want a RequestError", err)
	}
	rec, _ := st.Get(ctx, conn.Key())
	if !rec.RefreshStarted.IsZero() || rec.Status != store.StatusConnected {
		t.Fatalf("after a refresh that was never sent: marker %v, status %s; want no marker, connected", rec.RefreshStarted, rec.Status)
	}

	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listening again on %s: %v", addr, err)
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"at-2","refresh_token":"rt-2","expires_in":3600,"token_type":"bearer"}`)
	})}}
	srv.Start()
	defer srv.Close()
	tok, err := src.Refresh(ctx)
	if err != nil || tok.AccessToken != "at-2" {
		t.Fatalf("refresh with the provider back: %v, %v", tok, err)
	}
}

// TestChaosCancelledCallerDoesNotAbandonRefresh: a caller that gives up
// while its refresh is at the provider gets its context's error at once,
// but the refresh runs on and its answer is stored. Abandoning it would
// leave a refresh token the provider may have consumed, and the connection
// would need authorizing again.
func TestChaosCancelledCallerDoesNotAbandonRefresh(t *testing.T) {
	arrived, answer := make(chan struct{}), make(chan struct{})
	base := startLoopbackServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-answer
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"at-2","refresh_token":"rt-2","expires_in":3600,"token_type":"bearer"}`)
	}))
	src, conn, st := seededSource(t, base)

	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() {
		_, err := src.TokenContext(ctx)
		gaveUp <- err
	}()
	<-arrived
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("the caller that gave up got %v; want context.Canceled", err)
	}
	close(answer)

	// The refresh completes on its own; a later caller gets its token
	// without another request (the handler would panic on a second one).
	deadline := time.Now().Add(30 * time.Second)
	for {
		rec, err := st.Get(context.Background(), conn.Key())
		if err != nil {
			t.Fatal(err)
		}
		if rec.Token.AccessToken == "at-2" {
			if !rec.RefreshStarted.IsZero() || rec.Status != store.StatusConnected {
				t.Fatalf("stored the answer with marker %v, status %s", rec.RefreshStarted, rec.Status)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the abandoned refresh's answer was never stored (token %v, marker %v)", rec.Token, rec.RefreshStarted)
		}
		time.Sleep(5 * time.Millisecond)
	}
	tok, err := src.TokenContext(context.Background())
	if err != nil || tok.AccessToken != "at-2" {
		t.Fatalf("after the refresh: %v, %v", tok, err)
	}
}
