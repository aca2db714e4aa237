package state_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/server/state"
)

// TestCredentialsConnections: a connection of a definition without OAuth
// belongs to its tenant's one implicit client of that definition, which no
// OAuth-client method shows; its fields (the credentials) are sealed at
// rest, and replacing them gives the connection a new version and moves
// the change generation.
func TestCredentialsConnections(t *testing.T) {
	backends(t, func(t *testing.T, open func() *state.DB) {
		ctx := context.Background()
		db, other := open(), open()
		for _, id := range []string{"acme", "globex"} {
			if _, err := db.EnsureTenant(ctx, id, ""); err != nil {
				t.Fatal(err)
			}
		}
		const secret = "sk_test_credentials-state-0123456789"
		// Replicas racing to make the first connection agree on one implicit client.
		var wg sync.WaitGroup
		conns := make([]state.Connection, 8)
		errs := make([]error, len(conns))
		for i := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d := db
				if i%2 == 1 {
					d = other
				}
				conns[i], errs[i] = d.CreateCredentialsConnection(ctx, state.Connection{Tenant: "acme", Fields: map[string]string{"SecretKey": fmt.Sprint(secret, i)}}, "stripe")
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("connection %d: %v", i, err)
			}
			if conns[i].Client != conns[0].Client || conns[i].Status != state.StatusConnected {
				t.Fatalf("connection %d: client %s status %s; connection 0: client %s", i, conns[i].Client, conns[i].Status, conns[0].Client)
			}
		}
		g, err := db.CreateCredentialsConnection(ctx, state.Connection{Tenant: "globex", Fields: map[string]string{"SecretKey": secret}}, "stripe")
		if err != nil {
			t.Fatal(err)
		}
		if g.Client == conns[0].Client {
			t.Fatal("two tenants share an implicit client")
		}
		if _, err := db.CreateCredentialsConnection(ctx, state.Connection{Tenant: "nobody"}, "stripe"); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("a connection for a missing tenant: %v", err)
		}

		// Not an OAuth client anywhere.
		cl := conns[0].Client
		if _, err := db.Client(ctx, "acme", cl); !errors.Is(err, state.ErrNotFound) {
			t.Errorf("Client of the implicit client: %v", err)
		}
		if cs, err := db.Clients(ctx, "acme"); err != nil || len(cs) != 0 {
			t.Errorf("Clients lists %d (%v), want none", len(cs), err)
		}
		if _, err := db.RotateClientSecret(ctx, "acme", cl, "x"); !errors.Is(err, state.ErrNotFound) {
			t.Errorf("RotateClientSecret of the implicit client: %v", err)
		}
		if err := db.DeleteClient(ctx, "acme", cl); !errors.Is(err, state.ErrNotFound) {
			t.Errorf("DeleteClient of the implicit client: %v", err)
		}
		if _, err := db.WebhookReceiver(ctx, cl); !errors.Is(err, state.ErrNotFound) {
			t.Errorf("WebhookReceiver of the implicit client: %v", err)
		}
		if _, err := db.CreateConnection(ctx, state.Connection{Tenant: "acme", Client: cl}); !errors.Is(err, state.ErrNotFound) {
			t.Errorf("CreateConnection naming the implicit client: %v", err)
		}
		c, icl, err := db.ConnectionAndClient(ctx, "acme", conns[0].ID)
		if err != nil || !icl.Implicit || icl.Definition != "stripe" || c.Fields["SecretKey"] != secret+"0" {
			t.Fatalf("ConnectionAndClient: %v %v %v", c, icl, err)
		}
		page, _, err := db.Connections(ctx, "acme", state.Filter{Definition: "stripe", Limit: 100})
		if err != nil || len(page) != len(conns) {
			t.Fatalf("connections of definition stripe: %d %v", len(page), err)
		}
		if page, _, _ := db.Connections(ctx, "acme", state.Filter{Definition: "procore"}); len(page) != 0 {
			t.Fatalf("connections of definition procore: %d", len(page))
		}

		// Sealed at rest.
		var raw []byte
		if err := db.SQL().QueryRowContext(ctx, db.Rebind(`SELECT fields_sealed FROM server_connections WHERE id = ?`), conns[0].ID).Scan(&raw); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, []byte(secret)) {
			t.Fatal("a secret field value is stored in the clear")
		}

		// Replaced: a new version, a new generation, the new value read back.
		gen, _ := other.Generation(ctx)
		const rotated = "sk_test_credentials-rotated-9876543210"
		if err := db.SetConnectionStatus(ctx, "acme", conns[0].ID, state.StatusNeedsReauth, "login refused"); err != nil {
			t.Fatal(err)
		}
		up, err := db.SetConnectionFields(ctx, "acme", conns[0].ID, map[string]string{"SecretKey": rotated}, state.StatusConnected)
		if err != nil {
			t.Fatal(err)
		}
		if up.Version <= c.Version || up.Fields["SecretKey"] != rotated || up.Status != state.StatusConnected || up.Reason != "" {
			t.Fatalf("after SetConnectionFields: %v version %d (was %d) reason %q", up, up.Version, c.Version, up.Reason)
		}
		if g2, _ := other.Generation(ctx); g2 == gen {
			t.Fatal("replacing a connection's fields did not move the change generation")
		}
		if c, err := other.Connection(ctx, "acme", conns[0].ID); err != nil || c.Fields["SecretKey"] != rotated {
			t.Fatalf("another replica reads %v %v", c, err)
		}
		if _, err := db.SetConnectionFields(ctx, "globex", conns[0].ID, map[string]string{"SecretKey": "stolen"}, ""); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("another tenant replaced the fields: %v", err)
		}
		if c, _ := db.Connection(ctx, "acme", conns[0].ID); c.Fields["SecretKey"] != rotated {
			t.Fatal("another tenant's attempt changed the fields")
		}
		if err := db.DeleteConnection(ctx, "acme", conns[0].ID); err != nil {
			t.Fatal(err)
		}
	})
}

// TestConnectionWebhookSecrets: a connection's webhook secret is sealed,
// the previous one verifies during a rotation's grace only, another
// tenant can neither set, read nor delete it, and it goes with the
// connection.
func TestConnectionWebhookSecrets(t *testing.T) {
	backends(t, func(t *testing.T, open func() *state.DB) {
		ctx := context.Background()
		db := open()
		for _, id := range []string{"acme", "globex"} {
			if _, err := db.EnsureTenant(ctx, id, ""); err != nil {
				t.Fatal(err)
			}
		}
		c, err := db.CreateCredentialsConnection(ctx, state.Connection{Tenant: "acme", Fields: map[string]string{"SecretKey": "sk_test_x"}}, "stripe")
		if err != nil {
			t.Fatal(err)
		}
		const first, second = "whsec_connection-secret-first-0123", "whsec_connection-secret-second-456"
		if _, err := db.SetConnectionWebhookSecret(ctx, "globex", c.ID, first, 0); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("globex set acme's connection's secret: %v", err)
		}
		if r, err := db.ConnectionWebhookReceiver(ctx, c.ID); err != nil || len(r.Secrets) != 0 || r.Connection.Tenant != "acme" || !r.Client.Implicit {
			t.Fatalf("receiver without a secret: %v %v", r, err)
		}
		ws, err := db.SetConnectionWebhookSecret(ctx, "acme", c.ID, first, 0)
		if err != nil || ws.Connection != c.ID || ws.Client != "" || !ws.PreviousUntil.IsZero() {
			t.Fatalf("set: %+v %v", ws, err)
		}
		var raw []byte
		if err := db.SQL().QueryRowContext(ctx, db.Rebind(`SELECT secret_sealed FROM server_connection_webhook_secrets WHERE connection = ?`), c.ID).Scan(&raw); err != nil || bytes.Contains(raw, []byte(first)) {
			t.Fatalf("stored in the clear, or not stored: %v", err)
		}
		if ws, err = db.SetConnectionWebhookSecret(ctx, "acme", c.ID, second, time.Hour); err != nil || ws.PreviousUntil.IsZero() {
			t.Fatalf("rotate: %+v %v", ws, err)
		}
		r, err := db.ConnectionWebhookReceiver(ctx, c.ID)
		if err != nil || len(r.Secrets) != 2 || string(r.Secrets[0]) != second || string(r.Secrets[1]) != first {
			t.Fatalf("during the grace: %d secrets, %v", len(r.Secrets), err)
		}
		if s := fmt.Sprint(r); strings.Contains(s, first) || strings.Contains(s, second) || strings.Contains(s, "sk_test_x") {
			t.Fatalf("a receiver prints a secret: %s", s)
		}
		db.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
		if r, _ := db.ConnectionWebhookReceiver(ctx, c.ID); len(r.Secrets) != 1 || string(r.Secrets[0]) != second {
			t.Fatalf("after the grace: %d secrets", len(r.Secrets))
		}
		db.Now = time.Now
		if _, err := db.ConnectionWebhookSecretOf(ctx, "globex", c.ID); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("globex read it: %v", err)
		}
		if err := db.DeleteConnectionWebhookSecret(ctx, "globex", c.ID); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("globex deleted it: %v", err)
		}
		if err := db.DeleteConnection(ctx, "acme", c.ID); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.SQL().QueryRowContext(ctx, db.Rebind(`SELECT count(*) FROM server_connection_webhook_secrets WHERE connection = ?`), c.ID).Scan(&n); err != nil || n != 0 {
			t.Fatalf("the secret outlived its connection: %d %v", n, err)
		}
		if _, err := db.ConnectionWebhookReceiver(ctx, c.ID); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("receiver of a deleted connection: %v", err)
		}
	})
}
