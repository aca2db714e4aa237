package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/store/filestore"
	"github.com/connector-engine/connector/connector/store/sqlitestore"
)

// TestSQLiteStore runs connect, token and connections with --store
// sqlite:///path (and with $CONNECTOR_STORE) against the emulator, and the
// errors of a URL naming no file and of a file that is not a database.
func TestSQLiteStore(t *testing.T) {
	r := newRig(t, "code", time.Hour)
	dbPath := filepath.Join(t.TempDir(), "state", "connector.db")
	r.storePath = "sqlite://" + dbPath

	if summary := r.connect(t); !strings.HasPrefix(summary, "connected procore.production.") {
		t.Errorf("connect summary = %q", summary)
	}
	sealer, err := store.LoadSealer(r.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlitestore.Open(dbPath, sealer)
	if err != nil {
		t.Fatal(err)
	}
	list, err := st.List(context.Background())
	st.Close()
	if err != nil || len(list) != 1 || list[0].Token.RefreshToken == "" || list[0].Status != store.StatusConnected {
		t.Fatalf("the SQLite store after connect holds %d records (%v)", len(list), err)
	}
	if code, out, errOut := cli(t, r.args("token")...); code != 0 || out != list[0].Token.AccessToken+"\n" {
		t.Errorf("token: exit %d, printed the stored access token: %v; stderr %s", code, out == list[0].Token.AccessToken+"\n", errOut)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dbPath), "store.json")); !os.IsNotExist(err) {
		t.Errorf("a file store was made beside the database (%v)", err)
	}

	listed := func(out string) bool {
		lines := strings.Split(strings.TrimSpace(out), "\n")
		return len(lines) == 2 && strings.Contains(lines[1], "procore     connected")
	}
	if code, out, errOut := cli(t, "connections", "--store", r.storePath, "--key-file", r.keyFile); code != 0 || !listed(out) {
		t.Errorf("connections --store sqlite://...: exit %d\n%s%s", code, out, errOut)
	}
	t.Setenv(filestore.EnvStore, r.storePath)
	if code, out, errOut := cli(t, "connections", "--key-file", r.keyFile); code != 0 || !listed(out) {
		t.Errorf("connections with %s=sqlite://...: exit %d\n%s%s", filestore.EnvStore, code, out, errOut)
	}

	notDB := filepath.Join(t.TempDir(), "notes.db")
	if err := os.WriteFile(notDB, []byte("these are notes, not a database\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		store string
		code  int
		want  []string
	}{
		{"no file", "sqlite://", 2, []string{"names no file", "sqlite:///var/lib/connector/state.db"}},
		{"not a database", "sqlite://" + notDB, 1, []string{notDB, "not an SQLite database", "name another file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := cli(t, "connections", "--store", tc.store, "--key-file", r.keyFile)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr %s", code, tc.code, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q does not say %q", errOut, w)
				}
			}
		})
	}
}
