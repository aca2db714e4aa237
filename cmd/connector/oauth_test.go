package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/emulator"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/store/filestore"
)

// transcript collects everything the CLI printed in these tests, and the
// secrets the emulators issued, for TestNoSecretsInOutput.
var transcript struct {
	sync.Mutex
	out     bytes.Buffer
	secrets []string
}

func record(out ...string) {
	transcript.Lock()
	defer transcript.Unlock()
	for _, s := range out {
		transcript.out.WriteString(s)
	}
}

func recordSecret(s string) {
	transcript.Lock()
	defer transcript.Unlock()
	transcript.secrets = append(transcript.secrets, s)
}

// cli runs the CLI in-process and records what it printed.
func cli(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	record(out.String(), errb.String())
	return code, out.String(), errb.String()
}

// rig is an emulator, a store and a connection string pointing at them.
type rig struct {
	emu        *emulator.Server
	base       string
	secret     string
	storePath  string
	keyFile    string
	connString string
}

const testClientID = "cli-test"

// newRig serves the emulator through a handler that records every refresh
// token it issues, so that the leak test knows what to look for.
func newRig(t *testing.T, grant string, lifetime time.Duration) *rig {
	t.Helper()
	secret := demoSecret()
	recordSecret(secret)
	emu := emulator.New(emulator.Config{
		Clients:       []emulator.Client{{ID: testClientID, Secret: secret, ServiceAccount: true}},
		TokenLifetime: lifetime,
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/oauth/token" {
			emu.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		emu.ServeHTTP(rec, r)
		var body struct {
			RefreshToken string `json:"refresh_token"`
			AccessToken  string `json:"access_token"`
		}
		if json.Unmarshal(rec.Body.Bytes(), &body) == nil && body.RefreshToken != "" {
			recordSecret(body.RefreshToken)
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	r := &rig{emu: emu, base: srv.URL, secret: secret, storePath: filepath.Join(dir, "store.json"), keyFile: filepath.Join(dir, "secret.key")}
	var cs string
	switch grant {
	case "code":
		cs = "Definition=procore;CallbackURL=http://" + freeAddr(t) + "/callback"
	case "client":
		cs = "Definition=procore-client-credentials;CompanyId=562949953421312"
	}
	r.connString = cs + ";OAuthClientId=" + testClientID + ";OAuthClientSecret=" + secret + ";BaseURL=" + srv.URL + ";LoginURL=" + srv.URL
	return r
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// args adds the connection and store flags to a command.
func (r *rig) args(cmd ...string) []string {
	return append(cmd, "--connection-string", r.connString, "--store", r.storePath, "--key-file", r.keyFile)
}

// record reads the connection's stored record directly.
func (r *rig) record(t *testing.T) store.Record {
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
	if err != nil || len(recs) != 1 {
		t.Fatalf("store holds %d records (%v), want 1", len(recs), err)
	}
	return recs[0]
}

// connect runs connect --no-browser, approves the printed URL over HTTP as a
// user would, and returns the summary line.
func (r *rig) connect(t *testing.T) string {
	t.Helper()
	pr, pw := io.Pipe()
	var errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		code := run(r.args("connect", "--no-browser", "--timeout", "1m"), pw, &errb)
		pw.Close()
		done <- code
	}()
	lines := bufio.NewScanner(pr)
	if !lines.Scan() {
		t.Fatalf("connect printed no URL; stderr: %s", errb.String())
	}
	authURL := lines.Text()
	record(authURL + "\n")
	if !strings.HasPrefix(authURL, r.base+"/oauth/authorize?") {
		t.Fatalf("first stdout line is %q, want the authorization URL", authURL)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := approve(ctx, &http.Client{Timeout: 10 * time.Second}, authURL); err != nil {
		t.Fatalf("approving: %v", err)
	}
	var rest strings.Builder
	for lines.Scan() {
		rest.WriteString(lines.Text() + "\n")
	}
	code := <-done
	record(rest.String(), errb.String())
	if code != 0 {
		t.Fatalf("connect exited %d; stderr: %s", code, errb.String())
	}
	return rest.String()
}

func TestConnectCodeFlowThenTokenRefreshConnectionsRevoke(t *testing.T) {
	r := newRig(t, "code", time.Hour)
	summary := r.connect(t)
	if !strings.HasPrefix(summary, "connected procore.production.") || !strings.Contains(summary, "(procore, production): token expires in 1h0m\n") {
		t.Errorf("connect summary = %q", summary)
	}
	first := r.record(t)
	if first.Token.RefreshToken == "" || first.Status != store.StatusConnected {
		t.Fatalf("stored record after connect: %v status %s", first.Token, first.Status)
	}

	code, out, errOut := cli(t, r.args("token")...)
	if code != 0 || out != first.Token.AccessToken+"\n" {
		t.Errorf("token: exit %d, printed the stored access token: %v; stderr %s", code, out == first.Token.AccessToken+"\n", errOut)
	}

	var js map[string]any
	code, out, _ = cli(t, r.args("token", "--json")...)
	if code != 0 || json.Unmarshal([]byte(out), &js) != nil {
		t.Fatalf("token --json: exit %d, output not JSON", code)
	}
	if js["access_token"] != first.Token.AccessToken || js["token_type"] != "Bearer" || js["expiry"] == nil || js["scopes"] == nil {
		t.Errorf("token --json fields: %v", keys(js))
	}
	if _, ok := js["refresh_token"]; ok {
		t.Error("token --json printed the refresh token without --show-secrets")
	}
	// --show-secrets is asked for, so its output stays out of the transcript.
	var sb, eb bytes.Buffer
	if code := run(r.args("token", "--json", "--show-secrets"), &sb, &eb); code != 0 || !strings.Contains(sb.String(), `"refresh_token": "`+first.Token.RefreshToken+`"`) {
		t.Errorf("token --json --show-secrets: exit %d, refresh token shown: %v", code, strings.Contains(sb.String(), first.Token.RefreshToken))
	}

	code, out, errOut = cli(t, r.args("refresh")...)
	if code != 0 || !strings.HasPrefix(out, "refreshed procore.production.") || !strings.HasSuffix(out, ": token expires in 1h0m\n") {
		t.Errorf("refresh: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	second := r.record(t)
	if second.Token.RefreshToken == first.Token.RefreshToken || second.Token.AccessToken == first.Token.AccessToken {
		t.Error("refresh did not store the rotated tokens")
	}

	code, out, _ = cli(t, "connections", "--store", r.storePath, "--key-file", r.keyFile)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 2 || !strings.HasPrefix(lines[0], "ID") ||
		!strings.Contains(lines[0], "DEFINITION  STATUS     EXPIRES IN  VALUES  REASON") ||
		!strings.Contains(lines[1], "procore     connected  1h0m        -       -") {
		t.Errorf("connections: exit %d\n%s", code, out)
	}

	code, out, errOut = cli(t, r.args("revoke")...)
	if code != 0 || !strings.Contains(out, "revoked at the provider and removed from the store") {
		t.Errorf("revoke: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if st := r.emu.Stats(); st.Revocations != 1 {
		t.Errorf("emulator revocations = %d, want 1", st.Revocations)
	}
	// After a revoke, token, call and connections say it was revoked, not
	// that there is no token "yet" (issue 13 item 10).
	code, _, errOut = cli(t, r.args("token")...)
	if code != exitReauth || !strings.Contains(errOut, "needs authorizing again: the connection was revoked with connector revoke on ") ||
		!strings.Contains(errOut, "connector connect") || strings.Contains(errOut, "yet") {
		t.Errorf("token after revoke: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = cli(t, r.args("call", "me")...)
	if code != exitReauth || !strings.Contains(errOut, "was revoked with connector revoke") {
		t.Errorf("call after revoke: exit %d, stderr %q", code, errOut)
	}
	code, out, _ = cli(t, "connections", "--store", r.storePath, "--key-file", r.keyFile)
	if code != 0 || !strings.Contains(out, "needs_reauthorization  -           -       the connection was revoked with connector revoke on ") {
		t.Errorf("connections after revoke: exit %d\n%s", code, out)
	}
	code, _, errOut = cli(t, r.args("revoke")...)
	if code != 1 || !strings.Contains(errOut, "the connection was revoked with connector revoke on ") || !strings.Contains(errOut, "nothing to revoke") {
		t.Errorf("second revoke: exit %d, stderr %q", code, errOut)
	}
	if st := r.emu.Stats(); st.Revocations != 1 {
		t.Errorf("emulator revocations = %d after a second revoke, want 1", st.Revocations)
	}
	// connect again replaces the mark.
	r.connect(t)
	if code, _, errOut = cli(t, r.args("token")...); code != 0 {
		t.Errorf("token after connecting again: exit %d, %s", code, errOut)
	}
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestConnectClientCredentials(t *testing.T) {
	r := newRig(t, "client", 90*time.Minute)
	code, out, errOut := cli(t, r.args("connect")...)
	if code != 0 || !strings.HasPrefix(out, "connected procore-client-credentials.production.") ||
		!strings.HasSuffix(out, "(procore-client-credentials, production): token expires in 1h30m\n") {
		t.Errorf("connect: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if st := r.emu.Stats(); st.ClientCredentials != 1 {
		t.Errorf("client-credentials grants = %d, want 1", st.ClientCredentials)
	}
	code, out, _ = cli(t, r.args("token")...)
	if code != 0 || out != r.record(t).Token.AccessToken+"\n" {
		t.Errorf("token: exit %d", code)
	}
}

func TestConnectNeedsLoopbackRedirect(t *testing.T) {
	r := newRig(t, "code", time.Hour)
	r.connString = strings.Replace(r.connString, "CallbackURL=http://127.0.0.1", "CallbackURL=https://app.example.com", 1)
	code, _, errOut := cli(t, r.args("connect", "--no-browser")...)
	if code != 1 || !strings.Contains(errOut, "must be loopback") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestCommandErrors(t *testing.T) {
	r := newRig(t, "code", time.Hour)
	dir := t.TempDir()
	rows := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"no connection", []string{"token", "--store", r.storePath}, 2, "no connection given: pass --connection FILE or --connection-string"},
		{"bad string", []string{"refresh", "--connection-string", "Definition=procore;Nonsense", "--store", r.storePath}, 2, "--connection-string:"},
		{"unknown definition", []string{"token", "--connection-string", "Definition=nope;OAuthClientId=x", "--store", r.storePath}, 2, "--connection-string:"},
		{"missing file", []string{"token", "--connection", filepath.Join(dir, "none.yaml"), "--store", r.storePath}, 1, "none.yaml"},
		{"both", []string{"token", "--connection", "x", "--connection-string", "y"}, 2, "both --connection and --connection-string given"},
		{"never connected", r.args("token"), exitReauth, "; run connector connect\n"},
		{"connect with InitiateOAuth=OFF", []string{"connect", "--connection-string", r.connString + ";InitiateOAuth=OFF;OAuthAccessToken=given-token", "--store", r.storePath, "--key-file", r.keyFile}, 2,
			"has InitiateOAuth=OFF: it uses only the OAuthAccessToken it is given, so there is nothing to connect"},
		{"emulate unknown", []string{"emulate", "jira"}, 2, `no emulator for "jira"`},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			code, _, errOut := cli(t, row.args...)
			if code != row.code || !strings.Contains(errOut, row.stderr) {
				t.Errorf("exit %d, want %d; stderr %q, want it to contain %q", code, row.code, errOut, row.stderr)
			}
		})
	}
}

func TestNeedsReauthorization(t *testing.T) {
	r := newRig(t, "code", time.Hour)
	r.connect(t)
	// Another party spends the stored refresh token: the CLI's refresh is
	// then a reuse, which the provider answers by ending the grant.
	stolen := r.record(t).Token.RefreshToken
	resp, err := http.PostForm(r.base+"/oauth/token", map[string][]string{
		"grant_type": {"refresh_token"}, "refresh_token": {stolen},
		"client_id": {testClientID}, "client_secret": {r.secret},
	})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("out-of-band refresh: HTTP %d", resp.StatusCode)
	}
	code, _, errOut := cli(t, r.args("refresh")...)
	if code != exitReauth || !strings.Contains(errOut, "needs authorizing again") || !strings.Contains(errOut, "run 'connector connect'") {
		t.Errorf("refresh: exit %d, stderr %q", code, errOut)
	}
	code, out, _ := cli(t, "connections", "--store", r.storePath, "--key-file", r.keyFile)
	if code != 0 || !strings.Contains(out, "needs_reauthorization") || !strings.Contains(out, "rejected the refresh token") {
		t.Errorf("connections: exit %d\n%s", code, out)
	}
	// Connecting again repairs it.
	r.connect(t)
	if code, _, errOut := cli(t, r.args("refresh")...); code != 0 {
		t.Errorf("refresh after reconnecting: exit %d, %s", code, errOut)
	}
}

var built struct {
	once sync.Once
	dir  string
	path string
	err  error
	out  []byte
}

// buildBinary builds the command once for the tests that need processes.
func buildBinary(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "connector-bin-")
		if built.err != nil {
			return
		}
		built.path = filepath.Join(built.dir, "connector")
		built.out, built.err = exec.Command("go", "build", "-o", built.path, ".").CombinedOutput()
	})
	if built.err != nil {
		t.Fatalf("go build: %v\n%s", built.err, built.out)
	}
	return built.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// TestEmulate runs the emulator command, uses it, and interrupts it. Its
// output shows the emulator's client secret on purpose, so it is not recorded.
func TestEmulate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	cmd := exec.Command(buildBinary(t), "emulate", "procore", "--addr", "127.0.0.1:0", "--client-id", "me", "--token-lifetime", "60s")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	var base, secret, public string
	for lines.Scan() && public == "" {
		l := lines.Text()
		if rest, ok := strings.CutPrefix(l, "Procore emulator at "); ok {
			base, _, _ = strings.Cut(rest, " ")
		}
		if rest, ok := strings.CutPrefix(l, "client secret: "); ok {
			secret = rest
		}
		if rest, ok := strings.CutPrefix(l, "public client: "); ok {
			public, _, _ = strings.Cut(rest, " ")
		}
	}
	if base == "" || !strings.HasPrefix(secret, "demo-") {
		cmd.Process.Kill()
		t.Fatalf("emulate printed base %q and a secret: %v", base, secret != "")
	}
	resp, err := http.PostForm(base+"/oauth/token", map[string][]string{
		"grant_type": {"client_credentials"}, "client_id": {"me"}, "client_secret": {secret},
	})
	if err == nil {
		resp.Body.Close()
	}
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("client-credentials token from the emulator: %v %v", err, resp)
	}
	// The public client has no secret, so the emulator refuses it the
	// grant that needs one, as a real provider would.
	if public != "connector-demo-public" {
		t.Errorf("emulate printed the public client %q, want connector-demo-public", public)
	}
	resp, err = http.PostForm(base+"/oauth/token", map[string][]string{"grant_type": {"client_credentials"}, "client_id": {public}})
	if err == nil {
		resp.Body.Close()
	}
	if err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("client credentials for the public client: %v %v, want 400", err, resp)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil {
		t.Errorf("emulate after Ctrl-C: %v, want exit 0", err)
	}
}

// TestParallelRefreshProcesses runs two refresh processes at once against one
// store file, ten times: the store's lock must keep them from spending the
// same rotating refresh token twice.
func TestParallelRefreshProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	r := newRig(t, "code", time.Hour)
	r.connect(t)
	for round := range 10 {
		var wg sync.WaitGroup
		outs := make([][]byte, 2)
		errs := make([]error, 2)
		for i := range 2 {
			wg.Go(func() {
				cmd := exec.Command(bin, r.args("refresh")...)
				cmd.Env = os.Environ()
				outs[i], errs[i] = cmd.CombinedOutput()
			})
		}
		wg.Wait()
		for i := range 2 {
			record(string(outs[i]))
			if errs[i] != nil {
				t.Fatalf("round %d: refresh process %d: %v\n%s", round, i, errs[i], outs[i])
			}
		}
		if code, _, errOut := cli(t, r.args("token")...); code != 0 {
			t.Fatalf("round %d: token after parallel refreshes: exit %d, %s", round, code, errOut)
		}
		if st := r.emu.Stats(); st.GrantRevocations != 0 {
			t.Fatalf("round %d: %d grants revoked for refresh-token reuse", round, st.GrantRevocations)
		}
	}
	// Force a real refresh to prove the stored refresh token is still the live one.
	if code, _, errOut := cli(t, r.args("refresh")...); code != 0 {
		t.Fatalf("final refresh: %s", errOut)
	}
	if st := r.emu.Stats(); st.GrantRevocations != 0 || st.Refreshes < 11 {
		t.Errorf("emulator: %d refreshes, %d grant revocations", st.Refreshes, st.GrantRevocations)
	}
}

// TestNoSecretsInOutput runs last in this package (files and tests run in
// order): nothing the CLI printed above may contain a client secret or any
// refresh token the emulators issued.
func TestNoSecretsInOutput(t *testing.T) {
	transcript.Lock()
	defer transcript.Unlock()
	if transcript.out.Len() == 0 || len(transcript.secrets) < 5 {
		t.Fatalf("nothing collected (%d bytes, %d secrets): run the whole package", transcript.out.Len(), len(transcript.secrets))
	}
	out := transcript.out.String()
	for _, s := range transcript.secrets {
		if strings.Contains(out, s) {
			t.Errorf("the CLI printed a secret (%s...)", s[:6])
		}
	}
}
