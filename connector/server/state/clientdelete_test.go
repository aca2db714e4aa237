package state_test

import (
	"context"
	"errors"
	"testing"

	"github.com/connector-engine/connector/connector/server/state"
)

// TestDeleteClientDeletesWebhookSecret: deleting an OAuth client deletes
// its webhook secret row with it (none is left in the table), a refused
// delete (the client still has a connection) keeps it, and another
// client's secret stays.
func TestDeleteClientDeletesWebhookSecret(t *testing.T) {
	backends(t, func(t *testing.T, open func() *state.DB) {
		ctx := context.Background()
		db := open()
		if _, err := db.EnsureTenant(ctx, "acme", ""); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, app := range []string{"app-1", "app-2"} {
			cl, err := db.CreateClient(ctx, state.Client{Tenant: "acme", Definition: "procore", ClientID: app, Secret: "client-secret"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.SetWebhookSecret(ctx, "acme", cl.ID, "webhook-secret-of-"+app, 0); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, cl.ID)
		}
		rows := func(client string) int {
			var n int
			q := `SELECT COUNT(*) FROM server_webhook_secrets WHERE client = ?`
			if db.Kind() == state.Postgres {
				q = `SELECT COUNT(*) FROM server_webhook_secrets WHERE client = $1`
			}
			if err := db.SQL().QueryRow(q, client).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		conn, err := db.CreateConnection(ctx, state.Connection{Tenant: "acme", Client: ids[0]})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteClient(ctx, "acme", ids[0]); !errors.Is(err, state.ErrInUse) || rows(ids[0]) != 1 {
			t.Fatalf("deleting a client with a connection: %v; %d secret rows, want it kept", err, rows(ids[0]))
		}
		if err := db.DeleteConnection(ctx, "acme", conn.ID); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteClient(ctx, "acme", ids[0]); err != nil {
			t.Fatal(err)
		}
		if n := rows(ids[0]); n != 0 {
			t.Fatalf("%d webhook secret rows left after deleting their client", n)
		}
		if _, err := db.WebhookReceiver(ctx, ids[0]); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("the deleted client's receiver: %v", err)
		}
		if r, err := db.WebhookReceiver(ctx, ids[1]); err != nil || len(r.Secrets) != 1 || rows(ids[1]) != 1 {
			t.Fatalf("the other client's secret after the delete: %v %v", r, err)
		}
	})
}
