package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/emulator"
)

// deviceRig is the emulator with a public client, a definition with the
// device grant pointing at it, and the device codes and tokens it issued
// recorded as secrets for TestNoSecretsInOutput.
type deviceRig struct {
	emu     *emulator.Server
	base    string
	defsDir string
	store   string
	keyFile string
}

func newDeviceRig(t *testing.T) *deviceRig {
	t.Helper()
	emu := emulator.New(emulator.Config{Clients: []emulator.Client{{ID: "cli-device", Name: "Connector CLI"}}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		emu.ServeHTTP(rec, r)
		var body struct {
			DeviceCode   string `json:"device_code"`
			AccessToken  string `json:"access_token"`
			RefreshToken string `json:"refresh_token"`
		}
		if json.Unmarshal(rec.Body.Bytes(), &body) == nil {
			for _, s := range []string{body.DeviceCode, body.AccessToken, body.RefreshToken} {
				if s != "" {
					recordSecret(s)
				}
			}
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	def := `name: emulator-device
title: Emulator, device grant
base_url: ` + srv.URL + `/rest/v1.0
auth:
  scheme: oauth
  oauth:
    version: V2
    grant_type: device_code
    client: public
    device_authorization_uri: ` + srv.URL + `/oauth/device/code
    token_request_uri: ` + srv.URL + `/oauth/token
`
	defs := filepath.Join(dir, "defs")
	if err := os.Mkdir(defs, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(defs, "emulator-device.yaml"), []byte(def), 0o644); err != nil {
		t.Fatal(err)
	}
	return &deviceRig{emu: emu, base: srv.URL, defsDir: defs, store: filepath.Join(dir, "store.json"), keyFile: filepath.Join(dir, "secret.key")}
}

func (r *deviceRig) args(cmd ...string) []string {
	return append(cmd, "--definitions", r.defsDir, "--connection-string", "Definition=emulator-device;OAuthClientId=cli-device",
		"--store", r.store, "--key-file", r.keyFile)
}

// connectDevice runs connect --device --no-browser, reads the verification
// URL and code it prints, answers decision on the emulator's page as the
// user would, and returns the exit code with everything printed after.
// deviceWait holds the polls until the user has answered, so nothing sleeps.
func (r *deviceRig) connectDevice(t *testing.T, decision string) (code int, first, rest, stderr string) {
	t.Helper()
	answered := make(chan struct{})
	polls := 0
	deviceWait = func(ctx context.Context, d time.Duration) error {
		polls++
		select {
		case <-answered:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	t.Cleanup(func() { deviceWait = nil })
	pr, pw := io.Pipe()
	var errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		c := run(r.args("connect", "--device", "--no-browser", "--timeout", "1m"), pw, &errb)
		pw.Close()
		done <- c
	}()
	lines := bufio.NewScanner(pr)
	if !lines.Scan() {
		pw.Close()
		t.Fatalf("connect --device printed nothing; stderr: %s (exit %d)", errb.String(), <-done)
	}
	first = lines.Text()
	prefix := "To authorize emulator-device, open " + r.base + "/oauth/device and enter the code "
	userCode, ok := strings.CutPrefix(first, prefix)
	if !ok || len(userCode) != 9 {
		t.Fatalf("first line %q, want %q and the code", first, prefix)
	}
	if !lines.Scan() || lines.Text() != "or open "+r.base+"/oauth/device?user_code="+url.QueryEscape(userCode)+", which carries the code" {
		t.Fatalf("second line %q, want the complete URL", lines.Text())
	}
	resp, err := http.PostForm(r.base+"/oauth/device", url.Values{"user_code": {userCode}, "decision": {decision}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	close(answered)
	var b strings.Builder
	for lines.Scan() {
		b.WriteString(lines.Text() + "\n")
	}
	code = <-done
	record(first+"\n", b.String(), errb.String())
	if polls != 1 {
		t.Errorf("%d waits, want 1: the first poll after the answer decides", polls)
	}
	return code, first, b.String(), errb.String()
}

// TestConnectDevice: connect --device against the emulator's device grant
// stores a token that token then prints, with the summary connect prints
// for the other flows.
func TestConnectDevice(t *testing.T) {
	r := newDeviceRig(t)
	code, _, rest, stderr := r.connectDevice(t, "allow")
	if code != 0 || !strings.HasPrefix(rest, "connected emulator-device.") || !strings.HasSuffix(rest, ": token expires in 1h30m\n") {
		t.Fatalf("connect --device: exit %d, stdout %q, stderr %q", code, rest, stderr)
	}
	if !strings.Contains(stderr, "Waiting for the code to be approved") {
		t.Errorf("stderr %q", stderr)
	}
	if st := r.emu.Stats(); st.DeviceGrants != 1 || st.DevicePolls != 1 {
		t.Errorf("stats %+v", st)
	}
	// token prints the access token, by design: run it unrecorded, since
	// the access token is among the secrets TestNoSecretsInOutput looks for.
	var out, errb bytes.Buffer
	if code := run(r.args("token"), &out, &errb); code != 0 || len(strings.TrimSpace(out.String())) < 20 {
		t.Errorf("token after connect --device: exit %d, stderr %q", code, errb.String())
	}
}

// TestConnectDeviceDenied: a denied code fails connect and stores nothing.
func TestConnectDeviceDenied(t *testing.T) {
	r := newDeviceRig(t)
	code, _, rest, stderr := r.connectDevice(t, "deny")
	if code != exitFailed || rest != "" || !strings.Contains(stderr, "the user denied access") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, rest, stderr)
	}
	if code, _, errOut := cli(t, r.args("token")...); code == 0 {
		t.Errorf("token after a denied device grant succeeded; stderr %q", errOut)
	}
}

// TestConnectDeviceNeedsDeviceGrant: --device on a code-flow definition is
// a usage error naming the grant.
func TestConnectDeviceNeedsDeviceGrant(t *testing.T) {
	r := newRig(t, "code", time.Hour)
	code, _, errOut := cli(t, r.args("connect", "--device")...)
	if code != exitUsage || !strings.Contains(errOut, "--device needs a definition with grant_type: device_code") || !strings.Contains(errOut, "authorization_code") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}
