package server_test

import (
	"strings"
	"testing"
)

// TestTenantIsolation: for every route that names an object, tenant
// globex's key (holding every scope) cannot read, use or learn the
// existence of acme's objects: the answer is the one for an id that does not
// exist, and nothing changes.
func TestTenantIsolation(t *testing.T) {
	backends(t, func(t *testing.T, spec func(*testing.T) string) {
		e := newEnv(t, spec(t), envOptions{})
		cl := e.oauthClient("acme")
		conn := e.connection("acme", cl)
		e.authorize("acme", conn, 0, 0)
		g := e.keys["globex:admin"]
		webhookSecret := "acme-webhook-secret-for-tenancy-01"
		remember(webhookSecret)
		e.must(200, 0, "PUT", "/v1/oauth-clients/"+cl+"/webhook-secret", e.keys["acme:admin"], map[string]any{"secret": webhookSecret})
		connWebhookSecret := "acme-connection-webhook-secret-02"
		remember(connWebhookSecret)
		e.must(200, 0, "PUT", "/v1/connections/"+conn+"/webhook-secret", e.keys["acme:connections:write"], map[string]any{"secret": connWebhookSecret})
		const unknownClient, unknownConn = "cli_00000000000000000000000000000000", "con_00000000000000000000000000000000"
		routes := []struct{ method, path, body string }{
			{"GET", "/v1/oauth-clients/{client}", ""},
			{"POST", "/v1/oauth-clients/{client}/rotate-secret", `{"client_secret":"stolen"}`},
			{"PUT", "/v1/oauth-clients/{client}/webhook-secret", `{"secret":"stolen-webhook-secret-0123"}`},
			{"GET", "/v1/oauth-clients/{client}/webhook-secret", ""},
			{"DELETE", "/v1/oauth-clients/{client}/webhook-secret", ""},
			{"DELETE", "/v1/oauth-clients/{client}", ""},
			{"GET", "/v1/connections/{conn}", ""},
			{"PATCH", "/v1/connections/{conn}/fields", `{"fields":{"CompanyId":"1"}}`},
			{"PUT", "/v1/connections/{conn}/webhook-secret", `{"secret":"stolen-webhook-secret-0123"}`},
			{"GET", "/v1/connections/{conn}/webhook-secret", ""},
			{"DELETE", "/v1/connections/{conn}/webhook-secret", ""},
			{"POST", "/v1/connections/{conn}/refresh", ""},
			{"POST", "/v1/connections/{conn}/authorize", ""},
			{"POST", "/v1/connections/{conn}/token", ""},
			{"GET", "/v1/connections/{conn}/proxy/rest/v1.0/me", ""},
			{"POST", "/v1/connections/{conn}/proxy/rest/v1.0/projects", `{"name":"x"}`},
			{"POST", "/v1/connections/{conn}/actions/me", ""},
			{"POST", "/v1/connections/{conn}/actions/list_companies?all=true", ""},
			{"DELETE", "/v1/connections/{conn}", ""},
		}
		stats := e.emu.Stats()
		for _, rt := range routes {
			path := func(c, n string) string {
				return strings.NewReplacer("{client}", c, "{conn}", n).Replace(rt.path)
			}
			var body any
			if rt.body != "" {
				body = rt.body
			}
			theirs := e.call(0, rt.method, path(cl, conn), g, body)
			none := e.call(0, rt.method, path(unknownClient, unknownConn), g, body)
			if theirs.status != 404 || none.status != 404 {
				t.Errorf("%s %s: %d for acme's object, %d for none; want 404 for both", rt.method, rt.path, theirs.status, none.status)
				continue
			}
			tb := strings.NewReplacer(cl, "ID", conn, "ID").Replace(string(theirs.body))
			nb := strings.NewReplacer(unknownClient, "ID", unknownConn, "ID").Replace(string(none.body))
			if tb != nb {
				t.Errorf("%s %s: the answer for acme's object differs from the one for none:\n%s\n%s", rt.method, rt.path, tb, nb)
			}
		}
		// Creating a connection on acme's client is refused like an unknown client.
		theirs := e.call(0, "POST", "/v1/connections", e.keys["globex:connections:write"], map[string]any{"oauth_client": cl})
		none := e.call(0, "POST", "/v1/connections", e.keys["globex:connections:write"], map[string]any{"oauth_client": unknownClient})
		if theirs.status != 422 || none.status != 422 || problemField(t, theirs) != "oauth_client" {
			t.Errorf("connection on acme's client: %d %s", theirs.status, theirs.body)
		}
		// Listings show nothing of acme's.
		for _, path := range []string{"/v1/connections", "/v1/oauth-clients", "/v1/connections?oauth_client=" + cl} {
			r := e.must(200, 0, "GET", path, g, nil)
			if s := string(mustJSON(r)); strings.Contains(s, cl) || strings.Contains(s, conn) {
				t.Errorf("GET %s as globex shows acme's objects: %s", path, s)
			}
		}
		// Nothing changed: acme's connection still works, the provider saw nothing.
		e.must(200, 0, "POST", "/v1/connections/"+conn+"/token", e.keys["acme:token"], nil)
		e.must(200, 0, "GET", "/v1/oauth-clients/"+cl, e.keys["acme:admin"], nil)
		if r := e.call(0, "POST", "/v1/webhooks/procore/"+cl, "", `{"id":1}`); r.status == 200 {
			t.Error("a delivery without acme's webhook secret was accepted")
		}
		if r := e.deliver(0, "/v1/webhooks/procore/"+cl, bearer(webhookSecret), []byte(`{"id":1}`)); r.status != 200 {
			t.Errorf("acme's webhook secret no longer verifies after globex's attempts: %d %s", r.status, r.body)
		}
		if r := e.deliver(0, "/v1/webhooks/procore/connections/"+conn, bearer(connWebhookSecret), []byte(`{"id":2}`)); r.status != 200 {
			t.Errorf("acme's connection's webhook secret no longer verifies after globex's attempts: %d %s", r.status, r.body)
		}
		if r := e.deliver(0, "/v1/webhooks/procore/connections/"+conn, bearer(webhookSecret), []byte(`{"id":3}`)); r.status != 401 {
			t.Errorf("the client's webhook secret verified a delivery to the connection's own receiver: %d %s", r.status, r.body)
		}
		after := e.emu.Stats()
		if after.Refreshes != stats.Refreshes || after.Revocations != stats.Revocations || after.APIRequests != stats.APIRequests {
			t.Errorf("globex's requests reached the provider: refreshes %d->%d, revocations %d->%d, API requests %d->%d",
				stats.Refreshes, after.Refreshes, stats.Revocations, after.Revocations, stats.APIRequests, after.APIRequests)
		}
		// An authorization started by acme completes for acme only: the
		// session, not the browser, carries the tenant.
		c := e.must(200, 0, "GET", "/v1/connections/"+conn, e.keys["acme:connections:read"], nil)
		if c["status"] != "connected" {
			t.Errorf("acme's connection after globex's attempts: %v", c)
		}
	})
}
