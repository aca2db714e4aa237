package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/connector-engine/connector/definitions"
)

// attributeDefs are procore with deliveries attributed by a value learned
// when connecting (the emulator's created_at, as IssuedAt), and by a field
// with a default (Region, default us).
const attributeDefs = `name: procore-learned-hooks
title: Procore attributed by a learned value
extends: procore
fields:
  IssuedAt:
    title: Issued at
    type: integer
    learn: {from: token_response, path: created_at}
webhooks:
  attribute: {path: issued_at, field: IssuedAt}
---
name: procore-default-hooks
title: Procore attributed by a field with a default
extends: procore
fields:
  Region: {title: Region, default: us, pattern: "[a-z]{2}"}
webhooks:
  attribute: {path: region, field: Region}
`

// TestWebhookAttributionLearnedAndDefault: a delivery is attributed to the
// connection whose value came from the authorization (a learned value,
// also for a connection connected before its learned values were
// indexed) or from the field's default (the connection left it unset; one
// that set another value is not taken), not only from the fields given.
func TestWebhookAttributionLearnedAndDefault(t *testing.T) {
	var files []definitions.File
	for i, doc := range strings.Split(attributeDefs, "---\n") {
		files = append(files, definitions.File{Path: fmt.Sprintf("attr%d.yaml", i), Data: []byte(doc)})
	}
	set, err := definitions.Parse(definitions.Builtin(), files...)
	if err != nil {
		t.Fatal(err)
	}
	backends(t, func(t *testing.T, spec func(*testing.T) string) {
		e := newEnv(t, spec(t), envOptions{definitions: set})
		ctx := context.Background()
		db := e.replicas[0].storage.State
		admin, write := e.keys["acme:admin"], e.keys["acme:connections:write"]
		client := func(def string) (id, secret string) {
			cl := e.must(201, 0, "POST", "/v1/oauth-clients", admin, map[string]any{
				"definition": def, "client_id": emuClientID, "client_secret": emuSecret, "base_url": e.emuURL, "login_url": e.emuURL,
			})
			id = cl["id"].(string)
			secret = e.must(200, 0, "PUT", "/v1/oauth-clients/"+id+"/webhook-secret", admin, map[string]any{"generate": true})["secret"].(string)
			remember(secret)
			return id, secret
		}
		attributed := func(def, cl, secret string, n int, body string) string {
			t.Helper()
			if r := e.deliver(0, "/v1/webhooks/"+def+"/"+cl, bearer(secret), []byte(body)); r.status != 200 {
				t.Fatalf("delivery %s: %d %s", body, r.status, r.body)
			}
			evs := webhookEvents(t, db, "acme")
			if len(evs) != n {
				t.Fatalf("%d deliveries stored, want %d", len(evs), n)
			}
			return evs[n-1].Connection
		}

		// Learned.
		lcl, lsecret := client("procore-learned-hooks")
		other := e.connection("acme", lcl) // never connected: learned nothing
		conn := e.connection("acme", lcl)
		e.authorize("acme", conn, 0, 0)
		rec, err := e.replicas[0].storage.Tokens.Get(ctx, conn)
		if err != nil || rec.Token.Values["IssuedAt"] == "" {
			t.Fatalf("the connection learned no IssuedAt: %v %v", rec.Token.Values, err)
		}
		learned := rec.Token.Values["IssuedAt"]
		n := 0
		delivery := func(field, value string) string {
			n++
			return fmt.Sprintf(`{"id":%d,"company_id":1,"event_type":"create","%s":%s}`, n, field, value)
		}
		if got := attributed("procore-learned-hooks", lcl, lsecret, 1, delivery("issued_at", learned)); got != conn {
			t.Fatalf("a delivery with the learned value went to %q, want %s (not %s)", got, conn, other)
		}
		if got := attributed("procore-learned-hooks", lcl, lsecret, 2, delivery("issued_at", "17")); got != "" {
			t.Fatalf("a delivery with another value went to %q", got)
		}
		// A connection whose learned values were never indexed (connected
		// before the index held them) is found by the delivery that misses.
		if _, err := db.SQL().ExecContext(ctx, `DELETE FROM server_webhook_index WHERE learned = 1`); err != nil {
			t.Fatal(err)
		}
		if got := attributed("procore-learned-hooks", lcl, lsecret, 3, delivery("issued_at", learned)); got != conn {
			t.Fatalf("after losing the learned rows: %q, want %s", got, conn)
		}

		// Default.
		dcl, dsecret := client("procore-default-hooks")
		eu := e.must(201, 0, "POST", "/v1/connections", write, map[string]any{"oauth_client": dcl, "fields": map[string]any{"Region": "eu"}})["id"].(string)
		unset := e.connection("acme", dcl)
		if got := attributed("procore-default-hooks", dcl, dsecret, 4, delivery("region", `"us"`)); got != unset {
			t.Fatalf("a delivery with the default went to %q, want the connection leaving it unset %s (not %s)", got, unset, eu)
		}
		if got := attributed("procore-default-hooks", dcl, dsecret, 5, delivery("region", `"eu"`)); got != eu {
			t.Fatalf("a delivery with eu went to %q, want %s", got, eu)
		}
		if got := attributed("procore-default-hooks", dcl, dsecret, 6, delivery("region", `"fr"`)); got != "" {
			t.Fatalf("a delivery with fr went to %q, want none", got)
		}
	})
}
