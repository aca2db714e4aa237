package state_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/server/state"
)

func TestWebhookSecrets(t *testing.T) {
	backends(t, func(t *testing.T, open func() *state.DB) {
		ctx := context.Background()
		db := open()
		for _, id := range []string{"acme", "globex"} {
			if _, err := db.EnsureTenant(ctx, id, ""); err != nil {
				t.Fatal(err)
			}
		}
		cl, err := db.CreateClient(ctx, state.Client{Tenant: "acme", Definition: "procore", ClientID: "app", Secret: "client-secret"})
		if err != nil {
			t.Fatal(err)
		}
		if r, err := db.WebhookReceiver(ctx, cl.ID); err != nil || len(r.Secrets) != 0 || r.Client.Tenant != "acme" {
			t.Fatalf("receiver before any secret: %v %v", r, err)
		}
		if _, err := db.WebhookSecretOf(ctx, "acme", cl.ID); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("no secret yet: %v", err)
		}
		// Another tenant can neither set, read nor delete it.
		if _, err := db.SetWebhookSecret(ctx, "globex", cl.ID, "stolen", 0); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("globex set acme's webhook secret: %v", err)
		}
		if _, err := db.SetWebhookSecret(ctx, "acme", cl.ID, "first-secret", 0); err != nil {
			t.Fatal(err)
		}
		if _, err := db.WebhookSecretOf(ctx, "globex", cl.ID); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("globex read acme's webhook secret: %v", err)
		}
		if err := db.DeleteWebhookSecret(ctx, "globex", cl.ID); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("globex deleted acme's webhook secret: %v", err)
		}
		secrets := func() []string {
			t.Helper()
			r, err := db.WebhookReceiver(ctx, cl.ID)
			if err != nil {
				t.Fatal(err)
			}
			if s := r.String(); strings.Contains(s, "secret") && !strings.Contains(s, "secrets=") {
				t.Fatalf("Receiver prints a secret: %s", s)
			}
			var out []string
			for _, s := range r.Secrets {
				out = append(out, string(s))
			}
			return out
		}
		if got := secrets(); len(got) != 1 || got[0] != "first-secret" {
			t.Fatalf("secrets = %q", got)
		}
		// A rotation keeping the previous secret for an hour.
		w, err := db.SetWebhookSecret(ctx, "acme", cl.ID, "second-secret", time.Hour)
		if err != nil || w.PreviousUntil.IsZero() {
			t.Fatalf("rotation: %+v %v", w, err)
		}
		if got := secrets(); len(got) != 2 || got[0] != "second-secret" || got[1] != "first-secret" {
			t.Fatalf("secrets during the grace = %q", got)
		}
		db.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
		if got := secrets(); len(got) != 1 || got[0] != "second-secret" {
			t.Fatalf("secrets after the grace = %q", got)
		}
		db.Now = time.Now
		// A rotation without grace drops the old one at once.
		if _, err := db.SetWebhookSecret(ctx, "acme", cl.ID, "third-secret", 0); err != nil {
			t.Fatal(err)
		}
		if got := secrets(); len(got) != 1 || got[0] != "third-secret" {
			t.Fatalf("secrets after a rotation without grace = %q", got)
		}
		// The secret is sealed at rest.
		var raw []byte
		if err := db.SQL().QueryRowContext(ctx, `SELECT secret_sealed FROM server_webhook_secrets WHERE client = '`+cl.ID+`'`).Scan(&raw); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(raw), "third-secret") {
			t.Fatal("the webhook secret is stored in the clear")
		}
		if err := db.DeleteWebhookSecret(ctx, "acme", cl.ID); err != nil {
			t.Fatal(err)
		}
		if got := secrets(); len(got) != 0 {
			t.Fatalf("secrets after delete = %q", got)
		}
		if _, err := db.WebhookReceiver(ctx, "cli_00000000000000000000000000000000"); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("unknown client: %v", err)
		}
	})
}

// TestAttributeDelivery: a delivery's value finds the connection of the
// receiving client whose field holds it; never another client's or
// another tenant's with the same value, never a deleted one; a connection
// the index missed is found all the same.
func TestAttributeDelivery(t *testing.T) {
	backends(t, func(t *testing.T, open func() *state.DB) {
		ctx := context.Background()
		db := open()
		for _, id := range []string{"acme", "globex"} {
			if _, err := db.EnsureTenant(ctx, id, ""); err != nil {
				t.Fatal(err)
			}
		}
		mk := func(tenant string) state.Client {
			c, err := db.CreateClient(ctx, state.Client{Tenant: tenant, Definition: "procore", ClientID: "app", Secret: "s"})
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		acme, acme2, globex := mk("acme"), mk("acme"), mk("globex")
		conn := func(cl state.Client, company string) string {
			c, err := db.CreateConnection(ctx, state.Connection{Tenant: cl.Tenant, Client: cl.ID, Fields: map[string]string{"CompanyId": company}})
			if err != nil {
				t.Fatal(err)
			}
			return c.ID
		}
		a1 := conn(acme, "1001")
		a2 := conn(acme, "1002")
		conn(acme2, "1003")
		g := conn(globex, "1003") // the same company at another tenant
		conn(globex, "1001")
		find := func(cl state.Client, field, value string) string {
			t.Helper()
			id, err := db.AttributeDelivery(ctx, cl.Tenant, cl.ID, field, value, false)
			if err != nil {
				t.Fatal(err)
			}
			return id
		}
		if got := find(acme, "CompanyId", "1001"); got != a1 {
			t.Errorf("1001 -> %q, want %s", got, a1)
		}
		if got := find(acme, "companyid", "1002"); got != a2 {
			t.Errorf("field names compare without case: %q, want %s", got, a2)
		}
		if got := find(acme, "CompanyId", "1003"); got != "" {
			t.Errorf("acme's client matched a connection of another client or tenant: %s", got)
		}
		if got := find(acme, "CompanyId", "9999"); got != "" {
			t.Errorf("no connection has 9999, yet %s matched", got)
		}
		if got := find(globex, "CompanyId", "1003"); got != g {
			t.Errorf("globex's own 1003 -> %q, want %s", got, g)
		}
		if got := find(state.Client{Tenant: "globex", ID: acme.ID}, "CompanyId", "1001"); got != "" {
			t.Errorf("globex asking with acme's client id matched %s", got)
		}
		// Deleted: no longer attributed.
		if err := db.DeleteConnection(ctx, "acme", a2); err != nil {
			t.Fatal(err)
		}
		if got := find(acme, "CompanyId", "1002"); got != "" {
			t.Errorf("a deleted connection is attributed: %s", got)
		}
		// A connected one is preferred over an older pending one.
		a3 := conn(acme, "1001")
		if err := db.SetConnectionStatus(ctx, "acme", a3, state.StatusConnected, ""); err != nil {
			t.Fatal(err)
		}
		if got := find(acme, "CompanyId", "1001"); got != a3 {
			t.Errorf("two matches: %q, want the connected %s", got, a3)
		}
		// The index lost a connection (a crash after its insert): found anyway.
		a4 := conn(acme, "1004")
		if _, err := db.SQL().ExecContext(ctx, `DELETE FROM server_webhook_index WHERE connection = '`+a4+`'`); err != nil {
			t.Fatal(err)
		}
		if got := find(acme, "CompanyId", "1004"); got != a4 {
			t.Errorf("an unindexed connection: %q, want %s", got, a4)
		}
		// The index holds no value in the clear.
		rows, err := db.SQL().QueryContext(ctx, `SELECT field, digest FROM server_webhook_index`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var field string
			var dg []byte
			if err := rows.Scan(&field, &dg); err != nil {
				t.Fatal(err)
			}
			if field != "" && field != "companyid" || strings.Contains(string(dg), "100") {
				t.Errorf("the index holds %q %q", field, dg)
			}
		}
		rows.Close()
		// Another replica on the same database uses the same index key.
		if id, err := open().AttributeDelivery(ctx, "acme", acme.ID, "CompanyId", "1004", false); err != nil || id != a4 {
			t.Errorf("second handle: %q %v", id, err)
		}
	})
}
