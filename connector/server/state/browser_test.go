package state_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/server/state"
)

// TestConnectSessions: a link is found by its token (stored hashed), used
// once however many submissions race, expires, and belongs to one tenant.
func TestConnectSessions(t *testing.T) {
	backends(t, func(t *testing.T, open func() *state.DB) {
		ctx := context.Background()
		db := open()
		c := setup(t, db)
		conn, err := db.CreateConnection(ctx, state.Connection{Tenant: "acme", Client: c.ID})
		if err != nil {
			t.Fatal(err)
		}
		cs, token, err := db.CreateConnectSession(ctx, state.ConnectSession{Tenant: "acme", Clients: []string{c.ID}, EndUser: "user-7", ReturnTo: "https://app.example/x", Expires: time.Now().Add(time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(token, state.ConnectTokenPrefix) || len(token) < 40 {
			t.Fatalf("token %q is not a prefixed random token", token[:4])
		}
		var stored []byte
		if err := db.SQL().QueryRowContext(ctx, `SELECT token_hash FROM server_connect_sessions`).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256([]byte(token)); !bytes.Equal(stored, sum[:]) {
			t.Fatal("the link's token is not stored as its SHA-256")
		}
		got, err := open().ConnectSessionByToken(ctx, token)
		if err != nil || got.ID != cs.ID || got.EndUser != "user-7" || len(got.Clients) != 1 || got.Clients[0] != c.ID {
			t.Fatalf("ConnectSessionByToken: %+v, %v", got, err)
		}
		if _, err := db.ConnectSessionByToken(ctx, token+"x"); !errors.Is(err, state.ErrConnectUnknown) {
			t.Fatalf("a wrong token: %v", err)
		}
		if err := db.UseConnectSession(ctx, "globex", cs.ID, conn.ID, "ses_1"); !errors.Is(err, state.ErrConnectUnknown) {
			t.Fatalf("globex uses acme's link: %v", err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins, used := 0, 0
		for i := range 8 {
			r := open()
			wg.Go(func() {
				err := r.UseConnectSession(ctx, "acme", cs.ID, conn.ID, fmt.Sprintf("ses_%d", i))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins++
				case errors.Is(err, state.ErrConnectUsed):
					used++
				default:
					t.Errorf("UseConnectSession: %v", err)
				}
			})
		}
		wg.Wait()
		if wins != 1 || used != 7 {
			t.Fatalf("%d submissions used the link and %d were refused; want 1 and 7", wins, used)
		}
		got, err = db.ConnectSessionByToken(ctx, token)
		if !errors.Is(err, state.ErrConnectUsed) || got.Connection != conn.ID || got.ReturnTo != "https://app.example/x" {
			t.Fatalf("a used link: %+v, %v", got, err)
		}
		byAuth, err := db.ConnectSessionForAuth(ctx, "acme", got.AuthSession)
		if err != nil || byAuth.ID != cs.ID {
			t.Fatalf("ConnectSessionForAuth: %+v, %v", byAuth, err)
		}
		if _, err := db.ConnectSessionForAuth(ctx, "globex", got.AuthSession); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("globex finds acme's connect session: %v", err)
		}
		if _, err := db.ConnectSessionForAuth(ctx, "acme", ""); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("an API authorization has a connect session: %v", err)
		}

		old, oldToken, err := db.CreateConnectSession(ctx, state.ConnectSession{Tenant: "acme", Clients: []string{c.ID}, Expires: time.Now().Add(time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		db.Now = func() time.Time { return time.Now().Add(time.Hour) }
		if _, err := db.ConnectSessionByToken(ctx, oldToken); !errors.Is(err, state.ErrConnectExpired) {
			t.Fatalf("an expired link: %v", err)
		}
		if err := db.UseConnectSession(ctx, "acme", old.ID, conn.ID, "ses_x"); !errors.Is(err, state.ErrConnectExpired) {
			t.Fatalf("using an expired link: %v", err)
		}
		if n, err := db.PurgeBrowserSessions(ctx, time.Now().Add(2*time.Minute)); err != nil || n != 2 {
			t.Fatalf("purged %d sessions (%v), want 2", n, err)
		}
		// Creating a link purges those expired for longer than the retention.
		_, staleToken, err := db.CreateConnectSession(ctx, state.ConnectSession{Tenant: "acme", Clients: []string{c.ID}, Expires: time.Now().Add(time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		db.Now = func() time.Time { return time.Now().Add(state.BrowserSessionRetention + 2*time.Minute) }
		if _, err := db.ConnectSessionByToken(ctx, staleToken); !errors.Is(err, state.ErrConnectExpired) {
			t.Fatalf("a link expired within the retention: %v", err)
		}
		if _, _, err := db.CreateConnectSession(ctx, state.ConnectSession{Tenant: "acme", Clients: []string{c.ID}, Expires: db.Now().Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ConnectSessionByToken(ctx, staleToken); !errors.Is(err, state.ErrConnectUnknown) {
			t.Fatalf("a link expired beyond the retention is still kept: %v", err)
		}
		db.Now = time.Now

		if _, _, err := db.CreateConnectSession(ctx, state.ConnectSession{Tenant: "globex", Clients: []string{c.ID}, Expires: time.Now().Add(time.Hour)}); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("a globex link for acme's client: %v", err)
		}
		if _, _, err := db.CreateConnectSession(ctx, state.ConnectSession{Tenant: "globex", Connection: conn.ID, Expires: time.Now().Add(time.Hour)}); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("a globex link for acme's connection: %v", err)
		}
	})
}

// TestAdminSessions: only an admin key signs in; the session carries its
// CSRF token sealed, ends at expiry, at sign-out and with its key.
func TestAdminSessions(t *testing.T) {
	backends(t, func(t *testing.T, open func() *state.DB) {
		ctx := context.Background()
		db := open()
		setup(t, db)
		adminKey, _, err := db.CreateKey(ctx, "acme", []state.Scope{state.ScopeAdmin})
		if err != nil {
			t.Fatal(err)
		}
		readKey, _, _ := db.CreateKey(ctx, "acme", []state.Scope{state.ScopeConnectionsRead})
		p, _ := db.Authenticate(ctx, adminKey)
		r, _ := db.Authenticate(ctx, readKey)
		if _, _, err := db.CreateAdminSession(ctx, r, time.Hour); !errors.Is(err, state.ErrUnauthorized) {
			t.Fatalf("a read key signs in: %v", err)
		}
		a, token, err := db.CreateAdminSession(ctx, p, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(fmt.Sprintf("%v %+v %s", a, a, a), a.CSRF) || len(a.CSRF) < 40 {
			t.Fatal("the session prints its CSRF token, or it is short")
		}
		got, err := open().AdminSessionByToken(ctx, token)
		if err != nil || got.ID != a.ID || got.Tenant != "acme" || got.CSRF != a.CSRF {
			t.Fatalf("AdminSessionByToken: %v, %v", got, err)
		}
		for _, bad := range []string{"", token + "x", strings.TrimPrefix(token, state.AdminTokenPrefix), adminKey} {
			if _, err := db.AdminSessionByToken(ctx, bad); !errors.Is(err, state.ErrUnauthorized) {
				t.Fatalf("token %.6q…: %v", bad, err)
			}
		}
		db.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
		if _, err := db.AdminSessionByToken(ctx, token); !errors.Is(err, state.ErrUnauthorized) {
			t.Fatalf("an expired session: %v", err)
		}
		db.Now = time.Now
		if err := db.DeleteAdminSession(ctx, "globex", a.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := db.AdminSessionByToken(ctx, token); err != nil {
			t.Fatalf("globex signed acme's session out: %v", err)
		}
		if err := db.DeleteAdminSession(ctx, "acme", a.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := db.AdminSessionByToken(ctx, token); !errors.Is(err, state.ErrUnauthorized) {
			t.Fatalf("a signed-out session: %v", err)
		}
		_, token2, err := db.CreateAdminSession(ctx, p, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteKey(ctx, "acme", p.KeyID); err != nil {
			t.Fatal(err)
		}
		if _, err := db.AdminSessionByToken(ctx, token2); !errors.Is(err, state.ErrUnauthorized) {
			t.Fatalf("a session of a deleted key: %v", err)
		}
	})
}
