package state_test

import (
	"context"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/server/state"
)

// TestGeneration: every change a replica may have cached moves the
// generation, as the writing replica sees at once and another replica
// sees too (at once on SQLite; when the notification arrives on
// PostgreSQL); creations and last-use bookkeeping do not move it.
func TestGeneration(t *testing.T) {
	backends(t, func(t *testing.T, open func() *state.DB) {
		ctx := context.Background()
		a, b := open(), open()
		cl := setup(t, a)
		key, k, err := a.CreateKey(ctx, "acme", []state.Scope{state.ScopeProxy})
		if err != nil {
			t.Fatal(err)
		}
		conn, err := a.CreateConnection(ctx, state.Connection{Tenant: "acme", Client: cl.ID})
		if err != nil {
			t.Fatal(err)
		}
		gen := func(db *state.DB) int64 {
			t.Helper()
			g, err := db.Generation(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return g
		}
		// seen waits until b sees a generation above was (PostgreSQL's
		// notification is asynchronous; the wait has no deadline of its
		// own, the test's timeout is the bound).
		seen := func(was int64) int64 {
			t.Helper()
			for {
				if g := gen(b); g > was {
					return g
				}
				if a.Kind() == state.SQLite {
					t.Fatalf("another handle on the SQLite file still sees generation %d", was)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		g0 := gen(a)
		_ = gen(b) // b starts listening (PostgreSQL)
		if _, err := a.Authenticate(ctx, key); err != nil {
			t.Fatal(err)
		}
		if _, _, err := a.CreateKey(ctx, "acme", []state.Scope{state.ScopeToken}); err != nil {
			t.Fatal(err)
		}
		if g := gen(a); g != g0 {
			t.Fatalf("creating a key and using one moved the generation from %d to %d", g0, g)
		}
		steps := []struct {
			name string
			do   func() error
		}{
			{"rotating a client secret", func() error { _, err := a.RotateClientSecret(ctx, "acme", cl.ID, "client-secret-2"); return err }},
			{"a connection's new status", func() error {
				return a.SetConnectionStatus(ctx, "acme", conn.ID, state.StatusNeedsReauth, "revoked")
			}},
			{"deleting a key", func() error { return a.DeleteKey(ctx, "acme", k.ID) }},
			{"deleting a connection", func() error { return a.DeleteConnection(ctx, "acme", conn.ID) }},
			{"deleting a client", func() error { return a.DeleteClient(ctx, "acme", cl.ID) }},
		}
		was := g0
		for _, st := range steps {
			if err := st.do(); err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			g := gen(a)
			if g <= was {
				t.Fatalf("%s left the writer's generation at %d", st.name, g)
			}
			if got := seen(was); got > g {
				t.Fatalf("%s: the other handle sees %d, beyond the writer's %d", st.name, got, g)
			}
			was = g
		}
		if err := a.SetConnectionStatus(ctx, "acme", "con_missing", state.StatusConnected, ""); err == nil {
			t.Fatal("status of a missing connection was set")
		}
		if g := gen(a); g != was {
			t.Fatalf("a failed write moved the generation from %d to %d", was, g)
		}
	})
}
