package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/emulator"
)

// parRig is the emulator with pushed authorization requests of the given
// lifetime, on its own settable clock, and a connection file whose
// definition (Procore's, plus par_uri) pushes them.
type parRig struct {
	emu  *emulator.Server
	base string
	conn string
	dir  string

	mu  sync.Mutex
	now time.Time
}

func (r *parRig) clock() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.now
}

func (r *parRig) advance(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.now = r.now.Add(d)
}

func newPARRig(t *testing.T, lifetime time.Duration) *parRig {
	t.Helper()
	r := &parRig{now: time.Now(), dir: t.TempDir()}
	r.emu = emulator.New(emulator.Config{
		Clients:     []emulator.Client{{ID: "par-cli", Secret: "par-cli-secret"}},
		AutoApprove: true, PARLifetime: lifetime, Now: r.clock,
	})
	srv := httptest.NewServer(r.emu)
	t.Cleanup(srv.Close)
	r.base = srv.URL
	writeFile(t, r.dir, "procore-par.yaml", "name: procore-par\nextends: procore\ntitle: Procore, pushed authorization requests\nauth:\n  oauth:\n    par_uri: ${LoginUrl}/oauth/par\n")
	r.conn = writeFile(t, r.dir, "conn.yaml", "definition: procore-par.yaml\nclient_id: par-cli\nclient_secret: par-cli-secret\n"+
		"redirect_uri: http://"+freeAddr(t)+"/callback\nbase_url: "+srv.URL+"\nlogin_url: "+srv.URL+"\n")
	return r
}

// connect starts connect --no-browser in process; it returns the
// authorization URL it printed, its stderr line by line, and a function
// that ends it (cancel: as Ctrl-C would) and returns its error and the rest
// of its stdout.
func (r *parRig) connect(t *testing.T) (authURL string, stderr <-chan string, end func(cancel bool) (string, error)) {
	t.Helper()
	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	a := &app{stdout: outW, stderr: errW}
	root := a.rootCommand()
	root.SetArgs([]string{"connect", "--no-browser", "--timeout", "1m", "--connection", r.conn,
		"--store", filepath.Join(r.dir, "store.json"), "--key-file", filepath.Join(r.dir, "secret.key")})
	root.SetOut(outW)
	root.SetErr(errW)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { err := root.ExecuteContext(ctx); outW.Close(); errW.Close(); done <- err }()
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(errR)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	stdout := bufio.NewScanner(outR)
	if !stdout.Scan() {
		cancel()
		t.Fatalf("connect printed no URL: %v", <-done)
	}
	return stdout.Text(), lines, func(c bool) (string, error) {
		if c {
			cancel()
		}
		var rest strings.Builder
		for stdout.Scan() {
			rest.WriteString(stdout.Text() + "\n")
		}
		err := <-done
		cancel()
		return rest.String(), err
	}
}

// nextLine returns the first line of lines that starts with prefix; the
// lines before it are skipped. It fails the test if lines end first, or
// nothing comes for 30 s (a hung command, not a slow one).
func nextLine(t *testing.T, lines <-chan string, prefix string) string {
	t.Helper()
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("stderr ended without a line starting %q", prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("no line starting %q on stderr", prefix)
		}
	}
}

// TestConnectPushedLinkInTime: with par_uri, connect says when the
// authorization link expires, and a link opened in time connects.
func TestConnectPushedLinkInTime(t *testing.T) {
	r := newPARRig(t, time.Minute)
	authURL, stderr, end := r.connect(t)
	if !strings.HasPrefix(authURL, r.base+"/oauth/authorize?client_id=par-cli&request_uri=urn") {
		t.Fatalf("connect printed %q; want the pushed request's short URL", authURL)
	}
	note := nextLine(t, stderr, "The authorization link expires at ")
	if !strings.Contains(note, "(in 1m0s): open it before then") {
		t.Errorf("the expiry note %q", note)
	}
	resp, err := http.Get(authURL) // the auto-approving emulator redirects to connect's callback
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	out, err := end(false)
	if err != nil || !strings.HasPrefix(out, "connected procore-par.") {
		t.Fatalf("connect: %v, stdout %q", err, out)
	}
	for l := range stderr {
		if strings.Contains(l, "expired") {
			t.Errorf("stderr says the link expired: %q", l)
		}
	}
}

// TestConnectPushedLinkExpired: once the link's expires_in has passed with
// no callback, connect says so and what to do, and goes on waiting; the
// provider refuses the link on its own page, which connect never sees.
func TestConnectPushedLinkExpired(t *testing.T) {
	r := newPARRig(t, time.Second)
	authURL, stderr, end := r.connect(t)
	nextLine(t, stderr, "The authorization link expires at ")
	note := nextLine(t, stderr, "The authorization link expired at ") // after 1 s, on connect's clock
	if !strings.Contains(note, "press Ctrl-C and run 'connector connect' again") || !strings.Contains(note, "Still waiting") {
		t.Errorf("the expired note %q", note)
	}
	r.advance(time.Second) // and on the emulator's
	resp, err := http.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "This authorization link expired") {
		t.Fatalf("the expired link: %d %s", resp.StatusCode, body)
	}
	if _, err := end(true); err == nil {
		t.Fatal("connect succeeded after the link expired")
	}
	if st := r.emu.Stats(); st.PushedRequests != 1 || st.PushedExpired != 1 || st.CodeExchanges != 0 {
		t.Errorf("stats %+v", st)
	}
}
