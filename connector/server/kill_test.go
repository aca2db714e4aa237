package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	neturl "net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/internal/pgtest"
	"github.com/connector-engine/connector/connector/server"
	"github.com/connector-engine/connector/connector/store"
)

const (
	envReplica = "CONNECTOR_SERVER_TEST_REPLICA" // the database URL a child replica serves
	envVia     = "CONNECTOR_SERVER_TEST_VIA"     // host:port the child sends every provider request to
)

// runChildReplica is a replica in a process of its own (this test binary
// run again), so that a test can SIGKILL it: it prints its address and
// serves until killed.
func runChildReplica() int {
	key, _ := base64.StdEncoding.DecodeString(os.Getenv("CONNECTOR_SERVER_TEST_KEY"))
	sealer, err := store.NewSealer(key)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	st, err := server.OpenStorage(context.Background(), os.Getenv(envReplica), sealer)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var transport http.RoundTripper
	if via := os.Getenv(envVia); via != "" {
		// Every connection to a provider goes through the test's front
		// (which forwards it), so the test can hold a token answer.
		transport = &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, via)
		}}
	}
	srv, err := server.New(server.Config{State: st.State, Tokens: st.Tokens, PublicURL: "http://" + ln.Addr().String(),
		AllowHosts: []string{"127.0.0.1"}, AllowPrivate: true, TokenMargin: 250 * time.Millisecond, Transport: transport,
		Logger: slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("ADDR %s\n", ln.Addr())
	_ = server.HTTPServer("", srv).Serve(ln)
	return 0
}

// startChild runs a child replica on url and returns its base URL and
// process; via, when not "", is where it sends its provider requests.
func startChild(t *testing.T, url, via string) (string, *exec.Cmd) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envReplica+"="+url, envVia+"="+via, "CONNECTOR_SERVER_TEST_KEY="+base64.StdEncoding.EncodeToString(lastKey))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ADDR ") {
		t.Fatalf("child replica: %q, %v", line, err)
	}
	return "http://" + strings.TrimSpace(strings.TrimPrefix(line, "ADDR ")), cmd
}

// proxyStatus sends one proxied call of conn to base and returns the status
// (0 when the replica did not answer) and the body.
func proxyStatus(base, conn, key string) (int, string) {
	req, _ := http.NewRequest("GET", base+"/v1/connections/"+conn+"/proxy/rest/v1.0/me", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, string(body)
}

// TestReplicaKilledMidStorm: a storm of proxied calls through an
// in-process replica and a child-process replica on one PostgreSQL, on
// 1-second tokens. The child is SIGKILLed mid-storm, at a moment it has no
// refresh in flight: it is stopped (SIGSTOP) first, and killed only if the
// stored record then carries no in-flight marker, else let go on and
// stopped again a moment later (the kill inside a refresh is
// TestReplicaKilledInRefresh). Invariants, never speed (stormOutcome):
// nothing is lost: no call through the surviving replica, before, during
// or after the kill, nor through a live child, loses the connection; no
// refresh token is presented twice; at most one refresh per expiry; a
// restarted child rejoins and serves.
func TestReplicaKilledMidStorm(t *testing.T) {
	url := pgtest.Shared(t)
	const lifetime, margin = time.Second, 250 * time.Millisecond
	e := newEnv(t, url, envOptions{tokenLifetime: lifetime, margin: margin})
	cl := e.oauthClient("acme")
	conn := e.connection("acme", cl)
	e.authorize("acme", conn, 0, 0)
	var bases [3]string // the child's URL in each phase: 0 up, 1 killed, 2 restarted
	var phase atomic.Int32
	first, child := startChild(t, url, "")
	bases[0] = first
	key := e.keys["acme:proxy"]
	var inProc, late, lost atomic.Int64
	var childOK [3]atomic.Int64
	var firstLate, firstLost atomic.Value
	note := func(who string, code int, body string) {
		switch stormOutcome(code, body) {
		case callLate:
			late.Add(1)
			firstLate.CompareAndSwap(nil, fmt.Sprintf("%s: %d %s", who, code, body))
		case callLost:
			lost.Add(1)
			firstLost.CompareAndSwap(nil, fmt.Sprintf("%s: %d %s", who, code, body))
		}
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	before := e.emu.Stats().Refreshes
	start := time.Now()
	for w := range 12 {
		wg.Go(func() {
			for !stop.Load() {
				if w%2 == 0 {
					code, body := proxyStatus(e.replicas[0].url, conn, key)
					inProc.Add(1)
					note("surviving replica", code, body)
					continue
				}
				ph := phase.Load()
				if ph == 1 {
					time.Sleep(5 * time.Millisecond)
					continue
				}
				code, body := proxyStatus(bases[ph], conn, key)
				if code == 200 {
					childOK[ph].Add(1)
				} else if phase.Load() == ph { // not a call the kill cut short
					note("child", code, body)
				}
			}
		})
	}
	failed := func() bool { return lost.Load() != 0 }
	// Both replicas serve (the child too) through two refreshes; then the kill.
	ctx := context.Background()
	for (e.emu.Stats().Refreshes < before+2 || childOK[0].Load() < 5) && !failed() {
		time.Sleep(20 * time.Millisecond)
	}
	phase.Store(1)
	for !failed() {
		if err := child.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		// Stopped, the child can start no refresh; one it started shows
		// as the record's in-flight marker until its answer is stored.
		rec, err := e.replicas[0].storage.Tokens.Get(ctx, conn)
		if err != nil {
			t.Fatal(err)
		}
		if rec.RefreshStarted.IsZero() {
			break
		}
		if err := child.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	afterKill := e.emu.Stats().Refreshes
	for e.emu.Stats().Refreshes < afterKill+2 && !failed() { // the survivor alone, through two expiries
		time.Sleep(20 * time.Millisecond)
	}
	bases[2], _ = startChild(t, url, "")
	phase.Store(2)
	afterRestart := e.emu.Stats().Refreshes
	for (childOK[2].Load() < 5 || e.emu.Stats().Refreshes < afterRestart+1) && !failed() {
		time.Sleep(20 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(start)
	st := e.emu.Stats()
	t.Logf("%d calls through the surviving replica; through the child %d before the kill, %d after its restart; %d late on this machine (first: %v); %d refreshes in %v, %d grant revocations",
		inProc.Load(), childOK[0].Load(), childOK[2].Load(), late.Load(), firstLate.Load(), st.Refreshes-before, elapsed.Round(time.Millisecond), st.GrantRevocations)
	if failed() {
		t.Fatalf("%d calls lost the connection; first: %v", lost.Load(), firstLost.Load())
	}
	if st.GrantRevocations != 0 {
		t.Fatalf("a refresh token was presented twice: %d grants revoked", st.GrantRevocations)
	}
	if n, most := st.Refreshes-before, maxRefreshes(elapsed, lifetime, margin); n > most {
		t.Fatalf("%d refreshes at the provider in %v, more than one per expiry (at most %d)", n, elapsed, most)
	}
	rec, err := e.replicas[0].storage.Tokens.Get(ctx, conn)
	if err != nil || rec.Status != "connected" || !rec.RefreshStarted.IsZero() {
		t.Fatalf("after the storm the record is %v (in flight since %v), %v", rec.Status, rec.RefreshStarted, err)
	}
	serves(t, e.replicas[0].url, conn, key)
	serves(t, bases[2], conn, key)
}

// tokenFront stands between a child replica and the emulator and holds the
// child's first refresh: forwarded to the emulator first (which carries it
// out, rotating the refresh token) or not at all. Either way the child never
// gets an answer: the test kills it while it waits.
type tokenFront struct {
	url  string
	held chan struct{}
}

func newTokenFront(t *testing.T, target string, forward bool) *tokenFront {
	u, err := neturl.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	f := &tokenFront{held: make(chan struct{}, 1)}
	release := make(chan struct{})
	var once atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		form, _ := neturl.ParseQuery(string(body))
		if r.URL.Path != "/oauth/token" || form.Get("grant_type") != "refresh_token" || !once.CompareAndSwap(false, true) {
			r.Body = io.NopCloser(bytes.NewReader(body))
			rp.ServeHTTP(w, r)
			return
		}
		if forward {
			out, _ := http.NewRequestWithContext(context.Background(), "POST", target+"/oauth/token", bytes.NewReader(body))
			out.Header = r.Header.Clone()
			resp, err := client.Do(out)
			if err != nil {
				t.Errorf("forwarding the refresh: %v", err)
			} else {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
		f.held <- struct{}{}
		select {
		case <-r.Context().Done(): // the child died
		case <-release:
		}
		panic(http.ErrAbortHandler) // no answer, ever
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	f.url = strings.TrimPrefix(srv.URL, "http://")
	return f
}

// TestReplicaKilledInRefresh: the one case a SIGKILL loses a connection.
// The child replica is killed while its refresh is in flight, after it
// marked the refresh in the store and sent it, before the answer came
// back; the refresh token it presented is then either consumed (the
// provider carried the refresh out and rotated the token, and the new one
// died with the process: Procore's tokens are single-use with no grace for
// a lost answer, and so are the emulator's) or, in the second row, never
// reached the provider at all. The surviving replica finds the in-flight
// marker once the dead replica's lock is released with its database
// session, cannot tell the two apart (Procore offers no introspection, the
// one way a provider can say whether a refresh token is still unused), and
// does not present the token again: that would be a reuse when it was
// consumed, which a rotating provider answers by revoking the grant. It
// answers 409 needs-reauthorization instead, the provider sees no reuse,
// and authorizing the connection again brings it back.
func TestReplicaKilledInRefresh(t *testing.T) {
	for _, tc := range []struct {
		name     string
		forward  bool // the provider carried the refresh out
		consumed bool
	}{
		{"provider rotated the token", true, true},
		{"refresh never reached the provider", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := pgtest.Shared(t)
			e := newEnv(t, url, envOptions{tokenLifetime: time.Second, margin: 250 * time.Millisecond})
			cl := e.oauthClient("acme")
			conn := e.connection("acme", cl)
			e.authorize("acme", conn, 0, 0)
			front := newTokenFront(t, e.emuURL, tc.forward)
			childURL, child := startChild(t, url, front.url)
			key := e.keys["acme:proxy"]
			refreshes := e.emu.Stats().Refreshes

			// Only the child serves until its token nears expiry and it
			// sends a refresh, which the front holds.
			var stop atomic.Bool
			var wg sync.WaitGroup
			for range 3 {
				wg.Go(func() {
					for !stop.Load() {
						proxyStatus(childURL, conn, key)
					}
				})
			}
			<-front.held
			ctx := context.Background()
			rec, err := e.replicas[0].storage.Tokens.Get(ctx, conn)
			if err != nil || rec.RefreshStarted.IsZero() {
				t.Fatalf("the child's refresh is not marked in flight: %v (%v)", rec.RefreshStarted, err)
			}
			presented := rec.Token.RefreshToken
			if err := child.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = child.Wait()
			stop.Store(true)
			wg.Wait()
			used, issued := e.emu.RefreshTokenUsed(presented)
			if !issued || used != tc.consumed {
				t.Fatalf("at the provider, the presented refresh token is issued=%v used=%v; want used=%v", issued, used, tc.consumed)
			}

			// The survivor serves while the access token it has is good,
			// then refreshes, finds the marker and asks for a person.
			var code int
			var body string
			for code, body = proxyStatus(e.replicas[0].url, conn, key); code == 200; code, body = proxyStatus(e.replicas[0].url, conn, key) {
				time.Sleep(10 * time.Millisecond)
			}
			if code != http.StatusConflict || !strings.Contains(body, "needs-reauthorization") || !strings.Contains(body, "interrupted") {
				t.Fatalf("after the kill the survivor answers %d %s; want 409 needs-reauthorization (an interrupted refresh)", code, body)
			}
			st := e.emu.Stats()
			if st.GrantRevocations != 0 {
				t.Fatalf("the refresh token was presented again: %d grants revoked", st.GrantRevocations)
			}
			if want := refreshes + map[bool]int{true: 1, false: 0}[tc.consumed]; st.Refreshes != want {
				t.Fatalf("%d refreshes at the provider, want %d (the held one only if forwarded)", st.Refreshes, want)
			}
			c := e.must(200, 0, "GET", "/v1/connections/"+conn, e.keys["acme:connections:read"], nil)
			if c["status"] != "needs_reauthorization" || !strings.Contains(fmt.Sprint(c["reason"]), "interrupted") {
				t.Fatalf("the connection reads %v: %v", c["status"], c["reason"])
			}
			e.authorize("acme", conn, 0, 0)
			if code, body := proxyStatus(e.replicas[0].url, conn, key); code != 200 {
				t.Fatalf("after authorizing again: %d %s", code, body)
			}
		})
	}
}
