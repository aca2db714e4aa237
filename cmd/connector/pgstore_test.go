package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/store/filestore"
	"github.com/connector-engine/connector/connector/store/pgstore"
	"github.com/connector-engine/connector/connector/store/pgstore/pgstoretest"
)

// TestPostgresStore runs connect, token, refresh and connections with
// --store postgres://... (and with $CONNECTOR_STORE), against the emulator,
// and checks that the database password, refresh tokens and client secret
// never reach the output, also when opening the store fails.
func TestPostgresStore(t *testing.T) {
	const pw = "cli-Pa55word-never-shown"
	recordSecret(pw)
	dbURL := pgstoretest.Database(t, "cli")
	// The test server trusts local connections, so the password is accepted
	// and ignored: it is here to be hidden.
	withPW := strings.Replace(dbURL, "postgres@", "postgres:"+pw+"@", 1)
	r := newRig(t, "code", time.Hour)
	r.storePath = withPW
	var outputs []string
	run := func(args ...string) (int, string, string) {
		t.Helper()
		code, out, errOut := cli(t, args...)
		outputs = append(outputs, out, errOut)
		return code, out, errOut
	}

	summary := r.connect(t)
	outputs = append(outputs, summary)
	if !strings.HasPrefix(summary, "connected procore.production.") || !strings.HasSuffix(summary, "token expires in 1h0m\n") {
		t.Errorf("connect summary = %q", summary)
	}
	first := pgRecord(t, dbURL, r.keyFile)
	if first.Token.RefreshToken == "" || first.Status != store.StatusConnected {
		t.Fatalf("stored record after connect: status %s", first.Status)
	}

	code, tokOut, errOut := cli(t, r.args("token")...) // prints the access token, by design
	outputs = append(outputs, errOut)
	if code != 0 || tokOut != first.Token.AccessToken+"\n" {
		t.Errorf("token: exit %d, printed the stored access token: %v; stderr %s", code, tokOut == first.Token.AccessToken+"\n", errOut)
	}
	code, out, errOut := run(r.args("refresh")...)
	if code != 0 || !strings.HasPrefix(out, "refreshed procore.production.") {
		t.Errorf("refresh: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	second := pgRecord(t, dbURL, r.keyFile)
	if second.Token.RefreshToken == first.Token.RefreshToken {
		t.Error("refresh did not store the rotated refresh token")
	}

	listed := func(out string) bool {
		lines := strings.Split(strings.TrimSpace(out), "\n")
		return len(lines) == 2 && strings.HasPrefix(lines[0], "ID") && strings.Contains(lines[1], "procore     connected  1h0m        -")
	}
	if code, out, errOut := run("connections", "--store", withPW, "--key-file", r.keyFile); code != 0 || !listed(out) {
		t.Errorf("connections --store postgres://...: exit %d\n%s%s", code, out, errOut)
	}
	t.Setenv(filestore.EnvStore, withPW)
	if code, out, errOut := run("connections", "--key-file", r.keyFile); code != 0 || !listed(out) {
		t.Errorf("connections with %s=postgres://...: exit %d\n%s%s", filestore.EnvStore, code, out, errOut)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	unreachable := "postgres://postgres:" + pw + "@127.0.0.1:" + closedPort + "/gone?sslmode=disable"
	t.Setenv(store.EnvSecretKey, "")
	os.Unsetenv(store.EnvSecretKey)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"no key", []string{"connections", "--store", withPW}, 2,
			[]string{"shared by every host", store.EnvSecretKey, "--key-file"}},
		{"unreachable", []string{"connections", "--store", unreachable, "--key-file", r.keyFile}, 1,
			[]string{"postgres://postgres@127.0.0.1:" + closedPort + "/gone", "running and reachable"}},
		{"wrong key", []string{"connections", "--store", withPW, "--key-file", filepath.Join(t.TempDir(), "other.key")}, 1,
			[]string{"cannot be decrypted", "other.key"}},
		{"token, unreachable", append(r.args("token"), "--store", unreachable), 1,
			[]string{"running and reachable"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := run(tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tc.code, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q does not say %q", errOut, w)
				}
			}
		})
	}

	all := strings.Join(outputs, "\n") + tokOut
	for _, secret := range []string{pw, first.Token.RefreshToken, second.Token.RefreshToken, r.secret} {
		if strings.Contains(all, secret) {
			t.Errorf("the CLI printed a secret (%s...)", secret[:6])
		}
	}
}

// pgRecord reads the only record of the PostgreSQL store directly.
func pgRecord(t *testing.T, url, keyFile string) store.Record {
	t.Helper()
	sealer, err := store.LoadSealer(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := pgstore.Open(ctx, url, sealer)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs, err := st.List(ctx)
	if err != nil || len(recs) != 1 {
		t.Fatalf("store holds %d records (%v), want 1", len(recs), err)
	}
	return recs[0]
}
