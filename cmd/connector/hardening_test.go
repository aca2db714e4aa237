package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/store/filestore"
)

// fakePostgres accepts PostgreSQL connections on loopback, asks each client
// for a cleartext password and records what it is sent.
type fakePostgres struct {
	ln        net.Listener
	mu        sync.Mutex
	conns     int
	passwords []string
}

func newFakePostgres(t *testing.T) *fakePostgres {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &fakePostgres{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *fakePostgres) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	p.mu.Lock()
	p.conns++
	p.mu.Unlock()
	r := bufio.NewReader(c)
	for {
		// Startup-phase messages: int32 length, int32 code, body.
		var hdr [8]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(hdr[:4])
		if n < 8 || n > 1<<16 {
			return
		}
		if _, err := io.CopyN(io.Discard, r, int64(n-8)); err != nil {
			return
		}
		if binary.BigEndian.Uint32(hdr[4:]) == 80877103 { // SSLRequest
			c.Write([]byte{'N'})
			continue
		}
		break
	}
	c.Write([]byte{'R', 0, 0, 0, 8, 0, 0, 0, 3}) // AuthenticationCleartextPassword
	typ, err := r.ReadByte()
	if err != nil || typ != 'p' {
		return
	}
	var l [4]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return
	}
	n := binary.BigEndian.Uint32(l[:])
	if n < 4 || n > 1<<16 {
		return
	}
	pw := make([]byte, n-4)
	if _, err := io.ReadFull(r, pw); err != nil {
		return
	}
	p.mu.Lock()
	p.passwords = append(p.passwords, strings.TrimRight(string(pw), "\x00"))
	p.mu.Unlock()
}

func (p *fakePostgres) seen() (int, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conns, append([]string(nil), p.passwords...)
}

// The connection string and file are the tenant's; the store is the
// operator's. A connection naming another store (issue 10 item 3) is refused
// before anything is opened, so no password reaches that server and no file
// appears at that path; naming the chosen store is accepted (CData
// connection strings carry OAuthSettingsLocation).
func TestConnectionCannotChooseStore(t *testing.T) {
	pg := newFakePostgres(t)
	t.Setenv("PGPASSWORD", "operator-pg-password")
	t.Setenv(store.EnvSecretKey, "c2VjcmV0LWtleS1mb3ItdGhlLXRlc3Qtb25seS0xMjM=")
	r := newRig(t, "code", time.Hour)
	evil := "postgres://victim:url-password@" + pg.ln.Addr().String() + "/tokens"
	elsewhere := filepath.Join(t.TempDir(), "elsewhere", "store.json")
	connFile := writeFile(t, t.TempDir(), "conn.yaml", "definition: procore\nclient_id: "+testClientID+
		"\nclient_secret: x\nredirect_uri: http://127.0.0.1:8765/callback\nbase_url: "+r.base+"\nlogin_url: "+r.base+"\nstore: "+elsewhere+"\n")

	for _, c := range []struct {
		name, want string
		args       []string
		env        string
	}{
		{"string names postgres", "--connection-string: OAuthSettingsLocation names the store \"postgres://victim:xxxxx@", nil, ""},
		{"file names a path", "connection file " + connFile + ": store names the store \"" + elsewhere + "\"", []string{"token", "--connection", connFile, "--store", r.storePath}, ""},
		{"env store, string names postgres", "but this command uses \"" + r.storePath + "\" ($CONNECTOR_STORE)", nil, r.storePath},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(filestore.EnvStore, c.env)
			args := c.args
			if args == nil {
				args = []string{"token", "--connection-string", r.connString + ";OAuthSettingsLocation=" + evil, "--key-file", r.keyFile}
				if c.env == "" {
					args = append(args, "--store", r.storePath)
				}
			}
			code, out, errOut := cli(t, args...)
			if code != exitFailed || out != "" || !strings.Contains(errOut, c.want) ||
				!strings.Contains(errOut, "the store is chosen by whoever runs the command (--store or $CONNECTOR_STORE)") {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 1 and %q", code, out, errOut, c.want)
			}
			if strings.Contains(errOut, "url-password") {
				t.Errorf("the error shows the URL's password: %s", errOut)
			}
		})
	}
	if conns, pws := pg.seen(); conns != 0 || len(pws) != 0 {
		t.Errorf("the tenant's PostgreSQL server saw %d connections and was sent %d passwords", conns, len(pws))
	}
	if _, err := os.Stat(filepath.Dir(elsewhere)); !os.IsNotExist(err) {
		t.Errorf("the tenant's store path was created (%v)", err)
	}

	// Naming the store already chosen is fine: the command goes on (and
	// says the connection has no token yet).
	rel, err := filepath.Rel(".", r.storePath)
	if err != nil {
		rel = r.storePath
	}
	code, _, errOut := cli(t, "token", "--connection-string", r.connString+";OAuthSettingsLocation="+rel, "--store", r.storePath, "--key-file", r.keyFile)
	if code != exitReauth || strings.Contains(errOut, "names the store") {
		t.Errorf("naming the chosen store: exit %d, stderr %q", code, errOut)
	}
}

// recordingTransport keeps the body of every answer to the loopback
// callback, which is what the browser shows.
type recordingTransport struct {
	mu    sync.Mutex
	pages []string
}

func (rt *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil || req.URL.Path != "/callback" {
		return resp, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	rt.mu.Lock()
	rt.pages = append(rt.pages, string(body))
	rt.mu.Unlock()
	return resp, nil
}

// startConnect runs connect --no-browser and returns the authorization URL
// and a function that waits for the command's end.
func startConnect(t *testing.T, args []string) (authURL string, wait func() (int, string, string)) {
	t.Helper()
	pr, pw := io.Pipe()
	var errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		code := run(args, pw, &errb)
		pw.Close()
		done <- code
	}()
	lines := bufio.NewScanner(pr)
	if !lines.Scan() {
		code := <-done
		t.Fatalf("connect printed no URL (exit %d); stderr: %s", code, errb.String())
	}
	authURL = lines.Text()
	record(authURL + "\n")
	var waited bool
	wait = func() (int, string, string) {
		var rest strings.Builder
		for lines.Scan() {
			rest.WriteString(lines.Text() + "\n")
		}
		code := <-done
		waited = true
		record(rest.String(), errb.String())
		return code, rest.String(), errb.String()
	}
	t.Cleanup(func() {
		if !waited {
			go io.Copy(io.Discard, pr)
			<-done
		}
	})
	return authURL, wait
}

func redirectOf(t *testing.T, authURL string) string {
	t.Helper()
	i := strings.Index(authURL, "redirect_uri=")
	if i < 0 {
		t.Fatalf("no redirect_uri in the authorization URL")
	}
	v := authURL[i+len("redirect_uri="):]
	if j := strings.IndexByte(v, '&'); j >= 0 {
		v = v[:j]
	}
	return strings.NewReplacer("%3A", ":", "%2F", "/").Replace(v)
}

// Stray requests to the loopback callback (any web page can make the
// browser send them) get 400 and do not consume the attempt: the real
// redirect that follows still connects (issue 10 item 8), and its page says
// the connection is stored (item 13).
func TestConnectIgnoresStrayCallbacks(t *testing.T) {
	r := newRig(t, "code", time.Hour)
	authURL, wait := startConnect(t, r.args("connect", "--no-browser", "--timeout", "1m"))
	cb := redirectOf(t, authURL)
	for _, q := range []string{"", "?code=forged", "?state=wrong&code=forged", "?state=&error=access_denied"} {
		resp, err := http.Get(cb + q)
		if err != nil {
			t.Fatalf("stray callback %q: %v", q, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "it was ignored. connector is still waiting") {
			t.Errorf("stray callback %q: HTTP %d %q, want 400 and the still-waiting page", q, resp.StatusCode, body)
		}
	}
	rt := &recordingTransport{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := approve(ctx, &http.Client{Timeout: 10 * time.Second, Transport: rt}, authURL); err != nil {
		t.Fatalf("approving after the strays: %v", err)
	}
	code, out, errOut := wait()
	if code != 0 || !strings.HasPrefix(out, "connected procore.production.") {
		t.Fatalf("connect after stray callbacks: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if len(rt.pages) != 1 || !strings.Contains(rt.pages[0], "Authorization received and the connection is stored.") {
		t.Errorf("callback pages %q, want one saying the connection is stored", rt.pages)
	}
	if st := r.emu.Stats(); st.CodeExchanges != 1 {
		t.Errorf("emulator saw %d code exchanges, want 1", st.CodeExchanges)
	}
}

// The callback page tells the user what happened: a denial, or an answer
// the CLI could not use (here the client secret is wrong, so the exchange
// fails); nothing is stored either way (issue 10 item 13).
func TestCallbackPageTellsTheOutcome(t *testing.T) {
	for _, c := range []struct {
		name, decision, wrongSecret string
		status                      int
		page, stderr                string
	}{
		{"denied", "deny", "", http.StatusOK, "The authorization was not granted: the user denied access (access_denied); nothing was stored", "the user denied access"},
		{"exchange fails", "allow", "wrong-secret", http.StatusBadGateway, "connector could not complete the authorization, so nothing was stored: ", "invalid_client"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, "code", time.Hour)
			args := r.args("connect", "--no-browser", "--timeout", "1m")
			if c.wrongSecret != "" {
				args[5] = strings.Replace(r.connString, "OAuthClientSecret="+r.secret, "OAuthClientSecret="+c.wrongSecret, 1)
			}
			authURL, wait := startConnect(t, args)
			rt := &recordingTransport{}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = decide(ctx, &http.Client{Timeout: 10 * time.Second, Transport: rt}, authURL, c.decision)
			code, out, errOut := wait()
			if code != exitFailed || out != "" || !strings.Contains(errOut, c.stderr) {
				t.Errorf("connect: exit %d, stdout %q, stderr %q", code, out, errOut)
			}
			if len(rt.pages) != 1 || !strings.Contains(rt.pages[0], c.page) || strings.Contains(rt.pages[0], "Authorization received") {
				t.Errorf("callback page %q, want it to say %q", rt.pages, c.page)
			}
			if strings.Contains(strings.Join(rt.pages, ""), c.wrongSecret+"x") || (c.wrongSecret != "" && strings.Contains(strings.Join(rt.pages, ""), c.wrongSecret)) {
				t.Errorf("the page shows the client secret")
			}
			if _, err := os.Stat(r.storePath); err == nil {
				if recs := listRecords(t, r); len(recs) != 0 {
					t.Errorf("%d records stored after a failed connect", len(recs))
				}
			}
		})
	}
}

func listRecords(t *testing.T, r *rig) []store.Record {
	t.Helper()
	sealer, err := store.LoadSealer(r.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	st, err := filestore.Open(r.storePath, sealer)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs, err := st.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// A record whose refresh was marked in flight by a process that died shows
// as "refresh interrupted" with what the next use does, not as connected
// (issue 10 item 11).
func TestConnectionsShowsInterruptedRefresh(t *testing.T) {
	r := newRig(t, "code", time.Hour)
	r.connect(t)
	sealer, err := store.LoadSealer(r.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	st, err := filestore.Open(r.storePath, sealer)
	if err != nil {
		t.Fatal(err)
	}
	rec := r.record(t)
	rec.RefreshStarted = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if _, err := st.Put(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	st.Close()
	code, out, errOut := cli(t, "connections", "--store", r.storePath, "--key-file", r.keyFile)
	if code != 0 || strings.Contains(out, " connected ") || !strings.Contains(out, "refresh interrupted") ||
		!strings.Contains(out, "a refresh started at 2026-01-02T03:04:05Z did not finish; the access token works until it expires; the next refresh then marks the connection as needing authorization again") ||
		!strings.Contains(out, "run connector connect") {
		t.Errorf("connections: exit %d\n%s%s", code, out, errOut)
	}
}

const hostileDef = `name: hostile
title: Hostile
base_url: https://api.hostile.test
auth:
  scheme: none
`

// Text from a server reaches the terminal without control sequences
// (issue 10 item 9): error bodies, error descriptions, table cells and raw
// C1 controls inside JSON strings are escaped; newline and tab are kept.
func TestServerTextIsEscaped(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/err":
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, "bad\x1b]0;pwned\x07 request\x1b[2J\u009b31m\tend\n")
		case "/list":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `[{"id":1,"name":"a\u001b[31mred","note":"c1 `+"\u009b"+`0m"}]`)
		case "/oauth/token":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"invalid_client","error_description":"no \u001b[2Jsuch client"}`)
		}
	}))
	defer srv.Close()
	defs := writeFile(t, t.TempDir(), "hostile.yaml", hostileDef)
	conn := "Definition=hostile;BaseURL=" + srv.URL
	noControls := func(what, s string) {
		t.Helper()
		for _, r := range s {
			if (r < 0x20 && r != '\n' && r != '\t') || r == 0x7f || (r >= 0x80 && r <= 0x9f) {
				t.Errorf("%s carries control character %U: %q", what, r, s)
				return
			}
		}
	}
	code, out, errOut := cli(t, "--definitions", defs, "request", "GET", "/err", "--connection-string", conn)
	if code != exitFailed || !strings.Contains(errOut, `bad\x1b]0;pwned\x07 request\x1b[2J\u009b31m`) {
		t.Errorf("error body: exit %d, stderr %q", code, errOut)
	}
	noControls("stderr", errOut)
	noControls("stdout", out)
	for _, format := range []string{"json", "ndjson", "table"} {
		code, out, errOut = cli(t, "--definitions", defs, "request", "GET", "/list", "-o", format, "--connection-string", conn)
		if code != 0 || !strings.Contains(out, "red") {
			t.Errorf("-o %s: exit %d, stdout %q, stderr %q", format, code, out, errOut)
		}
		noControls("-o "+format, out)
	}
	dir := t.TempDir()
	code, _, errOut = cli(t, "token", "--connection-string", "Definition=procore-client-credentials;CompanyId=1;OAuthClientId=x;OAuthClientSecret=y;BaseURL="+srv.URL+";LoginURL="+srv.URL,
		"--store", filepath.Join(dir, "store.json"))
	if code != exitFailed || !strings.Contains(errOut, `no \x1b[2Jsuch client`) {
		t.Errorf("error description: exit %d, stderr %q", code, errOut)
	}
	noControls("stderr", errOut)
}

func TestSafeText(t *testing.T) {
	for in, want := range map[string]string{
		"plain\ttext\n": "plain\ttext\n",
		"\x1b[31mred":   `\x1b[31mred`,
		"bell\x07":      `bell\x07`,
		"cr\rline":      `cr\x0dline`,
		"del\x7f":       `del\x7f`,
		"c1 \u009b0m":   `c1 \u009b0m`,
		"bad \xff utf8": `bad \xff utf8`,
		"ünïcödé ✓":     "ünïcödé ✓",
	} {
		if got := safeText(in); got != want {
			t.Errorf("safeText(%q) = %q, want %q", in, got, want)
		}
	}
	if got := string(escapeJSONControls([]byte(`{"a":"x` + "\u009b\x7f" + `ü"}`))); got != `{"a":"x\u009b\u007fü"}` {
		t.Errorf("escapeJSONControls = %q", got)
	}
}
