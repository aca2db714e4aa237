package state_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/internal/pgtest"
	"github.com/connector-engine/connector/connector/server/state"
	"github.com/connector-engine/connector/connector/store"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func sealer(t testing.TB) *store.Sealer {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	s, err := store.NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// backends runs f on SQLite and on PostgreSQL; open returns another handle
// on the same database, as a second replica would have.
func backends(t *testing.T, f func(t *testing.T, open func() *state.DB)) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.db")
		s := sealer(t)
		f(t, func() *state.DB {
			db, err := state.OpenSQLite(context.Background(), path, s)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		})
	})
	t.Run("postgres", func(t *testing.T) {
		url := pgtest.Shared(t)
		s := sealer(t)
		f(t, func() *state.DB {
			db, err := state.OpenPostgres(context.Background(), url, s)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		})
	})
}

func TestKeys(t *testing.T) {
	backends(t, func(t *testing.T, open func() *state.DB) {
		ctx := context.Background()
		db := open()
		if _, err := db.EnsureTenant(ctx, "Bad Tenant!", ""); err == nil {
			t.Fatal("a tenant id with spaces was accepted")
		}
		if _, _, err := db.CreateKey(ctx, "nobody", []state.Scope{state.ScopeToken}); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("key for a missing tenant: %v", err)
		}
		for _, id := range []string{"acme", "globex"} {
			if _, err := db.EnsureTenant(ctx, id, ""); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.EnsureTenant(ctx, "acme", "again"); err != nil {
			t.Fatalf("EnsureTenant twice: %v", err)
		}
		if _, _, err := db.CreateKey(ctx, "acme", []state.Scope{"root"}); err == nil || !strings.Contains(err.Error(), "unknown scope") {
			t.Fatalf("unknown scope: %v", err)
		}
		key, k, err := db.CreateKey(ctx, "acme", []state.Scope{state.ScopeToken, state.ScopeProxy})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(key, state.KeyPrefix) || len(key) < 40 {
			t.Fatalf("key %q is too short or unprefixed", key)
		}
		// Another replica authenticates the key.
		p, err := open().Authenticate(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if p.Tenant != "acme" || p.KeyID != k.ID || !p.Can(state.ScopeProxy) || p.Can(state.ScopeAdmin) || p.Can(state.ScopeConnectionsRead) {
			t.Fatalf("principal %+v", p)
		}
		for _, bad := range []string{"", key + "x", key[:len(key)-1], "Bearer " + key, strings.ToUpper(key)} {
			if _, err := db.Authenticate(ctx, bad); !errors.Is(err, state.ErrUnauthorized) {
				t.Fatalf("Authenticate(%q) = %v, want ErrUnauthorized", bad, err)
			}
		}
		keys, err := db.Keys(ctx, "acme")
		if err != nil || len(keys) != 1 {
			t.Fatalf("Keys = %v, %v", keys, err)
		}
		if other, _ := db.Keys(ctx, "globex"); len(other) != 0 {
			t.Fatalf("globex sees acme's keys: %v", other)
		}
		if err := db.DeleteKey(ctx, "globex", k.ID); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("another tenant deleted the key: %v", err)
		}
		if err := db.DeleteKey(ctx, "acme", k.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Authenticate(ctx, key); !errors.Is(err, state.ErrUnauthorized) {
			t.Fatalf("a deleted key still authenticates: %v", err)
		}
		admin, _, _ := db.CreateKey(ctx, "acme", []state.Scope{state.ScopeAdmin})
		if p, _ := db.Authenticate(ctx, admin); !p.Can(state.ScopeToken) {
			t.Fatal("admin does not imply token")
		}
	})
}

func setup(t *testing.T, db *state.DB) state.Client {
	ctx := context.Background()
	for _, id := range []string{"acme", "globex"} {
		if _, err := db.EnsureTenant(ctx, id, ""); err != nil {
			t.Fatal(err)
		}
	}
	c, err := db.CreateClient(ctx, state.Client{Tenant: "acme", Definition: "procore", ClientID: "app", Secret: "client-secret-1", RedirectURI: "http://127.0.0.1/oauth/callback", Scopes: []string{"read"}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClientsAndConnections(t *testing.T) {
	backends(t, func(t *testing.T, open func() *state.DB) {
		ctx := context.Background()
		db := open()
		c := setup(t, db)
		got, err := open().Client(ctx, "acme", c.ID)
		if err != nil || got.Secret != "client-secret-1" || got.Scopes[0] != "read" {
			t.Fatalf("Client = %+v, %v", got, err)
		}
		if s := got.String(); strings.Contains(s, "client-secret-1") {
			t.Fatalf("String shows the secret: %s", s)
		}
		if _, err := db.Client(ctx, "globex", c.ID); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("globex reads acme's client: %v", err)
		}
		if _, err := db.RotateClientSecret(ctx, "globex", c.ID, "x"); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("globex rotates acme's client: %v", err)
		}
		rot, err := db.RotateClientSecret(ctx, "acme", c.ID, "client-secret-2")
		if err != nil || rot.Secret != "client-secret-2" || rot.Version != 2 {
			t.Fatalf("rotate: %+v, %v", rot, err)
		}
		if _, err := db.CreateConnection(ctx, state.Connection{Tenant: "globex", Client: c.ID}); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("globex made a connection on acme's client: %v", err)
		}
		var ids []string
		for i := range 5 {
			env := "production"
			if i%2 == 1 {
				env = "sandbox"
			}
			conn, err := db.CreateConnection(ctx, state.Connection{Tenant: "acme", Client: c.ID, Environment: env, Fields: map[string]string{"CompanyId": "42"}})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, conn.ID)
		}
		if err := db.DeleteClient(ctx, "acme", c.ID); !errors.Is(err, state.ErrInUse) {
			t.Fatalf("deleting a client in use: %v", err)
		}
		conn, err := open().Connection(ctx, "acme", ids[0])
		if err != nil || conn.Fields["CompanyId"] != "42" || conn.Status != state.StatusPending {
			t.Fatalf("Connection = %+v, %v", conn, err)
		}
		if n, c2, err := open().ConnectionAndClient(ctx, "acme", ids[0]); err != nil || n.Fields["CompanyId"] != "42" || c2.Secret != "client-secret-2" || c2.ID != c.ID {
			t.Fatalf("ConnectionAndClient = %v %v, %v", n, c2, err)
		}
		if _, _, err := db.ConnectionAndClient(ctx, "globex", ids[0]); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("globex reads acme's connection and client: %v", err)
		}
		if _, err := db.Connection(ctx, "globex", ids[0]); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("globex reads acme's connection: %v", err)
		}
		// Pages of two, in id order, across every connection exactly once.
		var seen []string
		cursor := ""
		for range 10 {
			page, next, err := db.Connections(ctx, "acme", state.Filter{Limit: 2, After: cursor})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range page {
				seen = append(seen, p.ID)
			}
			if next == "" {
				break
			}
			cursor = next
		}
		if len(seen) != 5 {
			t.Fatalf("paged %d connections, want 5: %v", len(seen), seen)
		}
		for i := 1; i < len(seen); i++ {
			if seen[i-1] >= seen[i] {
				t.Fatalf("pages out of order: %v", seen)
			}
		}
		sb, _, _ := db.Connections(ctx, "acme", state.Filter{Environment: "sandbox"})
		if len(sb) != 2 {
			t.Fatalf("sandbox filter: %d, want 2", len(sb))
		}
		if other, _, _ := db.Connections(ctx, "globex", state.Filter{}); len(other) != 0 {
			t.Fatalf("globex lists acme's connections: %v", other)
		}
		if _, _, err := db.Connections(ctx, "acme", state.Filter{After: "not-a-cursor"}); !errors.Is(err, state.ErrCursor) {
			t.Fatalf("bad cursor: %v", err)
		}
		if err := db.SetConnectionStatus(ctx, "acme", ids[1], state.StatusConnected, ""); err != nil {
			t.Fatal(err)
		}
		if err := db.SetConnectionStatus(ctx, "globex", ids[1], state.StatusNeedsReauth, "x"); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("globex changes acme's connection: %v", err)
		}
		counts, err := db.CountConnections(ctx)
		if err != nil || counts[state.StatusConnected] != 1 || counts[state.StatusPending] != 4 {
			t.Fatalf("counts %v, %v", counts, err)
		}
		if err := db.DeleteConnection(ctx, "globex", ids[0]); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("globex deletes acme's connection: %v", err)
		}
		for _, id := range ids {
			if err := db.DeleteConnection(ctx, "acme", id); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.DeleteClient(ctx, "acme", c.ID); err != nil {
			t.Fatal(err)
		}
		if err := db.Ready(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

func TestSessionsSingleUse(t *testing.T) {
	backends(t, func(t *testing.T, open func() *state.DB) {
		ctx := context.Background()
		db := open()
		c := setup(t, db)
		conn, err := db.CreateConnection(ctx, state.Connection{Tenant: "acme", Client: c.ID})
		if err != nil {
			t.Fatal(err)
		}
		s, err := db.CreateSession(ctx, state.Session{Tenant: "acme", Connection: conn.ID, Verifier: "the-verifier", Expires: time.Now().Add(time.Minute)}, "the-state")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(s.String(), "the-verifier") {
			t.Fatal("String shows the verifier")
		}
		// Eight replicas receive the same callback at once: one wins.
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins, used := 0, 0
		for range 8 {
			r := open()
			wg.Go(func() {
				got, err := r.UseSession(ctx, "the-state")
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil && got.Verifier == "the-verifier" && got.Connection == conn.ID:
					wins++
				case errors.Is(err, state.ErrSessionUsed):
					used++
				default:
					t.Errorf("UseSession: %+v, %v", got, err)
				}
			})
		}
		wg.Wait()
		if wins != 1 || used != 7 {
			t.Fatalf("%d replicas got the session and %d were told it was used; want 1 and 7", wins, used)
		}
		if _, err := db.UseSession(ctx, "other-state"); !errors.Is(err, state.ErrSessionUnknown) {
			t.Fatalf("unknown state: %v", err)
		}
		// A pushed request's link expiry goes with the session (to the
		// nanosecond the column keeps); none stays zero.
		link := time.Now().Add(90 * time.Second).UTC()
		const key = "-----BEGIN PRIVATE KEY-----\nthe-dpop-key\n-----END PRIVATE KEY-----\n"
		pushed, err := db.CreateSession(ctx, state.Session{Tenant: "acme", Connection: conn.ID, Expires: time.Now().Add(time.Minute), LinkExpires: link, DPoPKey: key}, "pushed-state")
		if err != nil {
			t.Fatal(err)
		}
		if s := fmt.Sprintf("%v %+v %#v", pushed, pushed, pushed); strings.Contains(s, "the-dpop-key") {
			t.Fatalf("printing the session shows its DPoP key: %s", s)
		}
		if got, err := db.UseSession(ctx, "pushed-state"); err != nil || !got.LinkExpires.Equal(link) || got.DPoPKey != key {
			t.Fatalf("the pushed session's link expiry and key: %v, %q, %v; want %v", got.LinkExpires, got.DPoPKey, err, link)
		}
		var raw []byte
		if err := db.SQL().QueryRowContext(ctx, `SELECT dpop_key_sealed FROM server_auth_sessions WHERE id = '`+pushed.ID+`'`).Scan(&raw); err != nil || len(raw) == 0 || bytes.Contains(raw, []byte("the-dpop-key")) {
			t.Fatalf("the DPoP key at rest: %q, %v; want it sealed", raw, err)
		}
		if got, err := open().UseSession(ctx, "the-state"); !errors.Is(err, state.ErrSessionUsed) || !got.LinkExpires.IsZero() {
			t.Fatalf("a used session: %+v, %v", got, err)
		}
		if _, err := db.CreateSession(ctx, state.Session{Tenant: "acme", Connection: conn.ID, Expires: time.Now().Add(-time.Second)}, "old-state"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.UseSession(ctx, "old-state"); !errors.Is(err, state.ErrSessionExpired) {
			t.Fatalf("expired session: %v", err)
		}
		if _, err := db.UseSession(ctx, "old-state"); !errors.Is(err, state.ErrSessionUsed) {
			t.Fatalf("expired session used again: %v", err)
		}
		if _, err := db.CreateSession(ctx, state.Session{Tenant: "globex", Connection: conn.ID, Expires: time.Now().Add(time.Minute)}, "x"); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("globex starts a session on acme's connection: %v", err)
		}
	})
}

// TestMigrationsConcurrent opens one PostgreSQL database from several
// replicas at once: each migration is applied exactly once.
func TestMigrationsConcurrent(t *testing.T) {
	url := pgtest.Shared(t)
	s := sealer(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			db, err := state.OpenPostgres(context.Background(), url, s)
			if err != nil {
				t.Error(err)
				return
			}
			defer db.Close()
			if err := db.Ready(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

func TestPasswordNotInErrors(t *testing.T) {
	_, err := state.OpenPostgres(context.Background(), "postgres://u:hunter2secret@127.0.0.1:1/db?connect_timeout=1", sealer(t))
	if err == nil || strings.Contains(err.Error(), "hunter2secret") {
		t.Fatalf("error %v", err)
	}
}

// A state file whose name holds DSN syntax (? and #) is opened as named,
// not cut at the ? with the rest read as parameters.
func TestOpenSQLitePathWithDSNSyntax(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a?mode=ro#x.db")
	db, err := state.OpenSQLite(context.Background(), path, sealer(t))
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := os.Stat(path); err != nil {
		t.Errorf("the state file %q was not created under its own name: %v", path, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a")); err == nil {
		t.Errorf("a file named %q was created: the path was cut at its '?'", "a")
	}
}

// A database migrated by a newer build (a version this one does not know)
// is refused with a message saying to upgrade; one lacking a step is not
// ready.
func TestMigrationVersions(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := state.OpenSQLite(ctx, path, sealer(t))
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`INSERT INTO server_schema_migrations (version, name, applied) VALUES (9999, 'from the future', 0)`); err != nil {
		t.Fatal(err)
	}
	if _, err := state.OpenSQLite(ctx, path, sealer(t)); err == nil || !strings.Contains(err.Error(), "schema version 9999, which this build does not know") || !strings.Contains(err.Error(), "upgrade the connector") {
		t.Fatalf("opening a database from a newer build: %v", err)
	}
	if _, err := raw.Exec(`DELETE FROM server_schema_migrations WHERE version = 9999`); err != nil {
		t.Fatal(err)
	}
	db, err = state.OpenSQLite(ctx, path, sealer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Ready(ctx); err != nil {
		t.Fatalf("a current database is not ready: %v", err)
	}
	if _, err := raw.Exec(`DELETE FROM server_schema_migrations WHERE version = 1`); err != nil {
		t.Fatal(err)
	}
	if err := db.Ready(ctx); err == nil || !strings.Contains(err.Error(), "lacks migration 1") {
		t.Fatalf("a database lacking a step is ready: %v", err)
	}
}
