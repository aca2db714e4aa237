package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/server/state"
)

// TestBadInput: each malformed request gets the right status and a problem
// document naming the field, and nothing is written.
func TestBadInput(t *testing.T) {
	e := newEnv(t, t.TempDir()+"/connector.db", envOptions{})
	cl := e.oauthClient("acme")
	conn := e.connection("acme", cl)
	big := `{"client_secret":"` + strings.Repeat("x", 2<<20) + `"}`
	deep := strings.Repeat(`{"a":`, 40) + "1" + strings.Repeat("}", 40)
	admin, write, read := e.keys["acme:admin"], e.keys["acme:connections:write"], e.keys["acme:connections:read"]
	const unknownConn = "con_00000000000000000000000000000000"
	cases := []struct {
		name, method, path, key, body string
		status                        int
		field                         string
	}{
		{"no key", "GET", "/v1/connections", "", "", 401, "Authorization"},
		{"unknown key", "GET", "/v1/connections", state.KeyPrefix + "AAAA", "", 401, "Authorization"},
		{"missing scope", "POST", "/v1/oauth-clients", write, `{}`, 403, "Authorization"},
		{"read key writes", "POST", "/v1/connections", read, `{}`, 403, "Authorization"},
		{"token key proxies", "GET", "/v1/connections/" + conn + "/proxy/rest/v1.0/me", e.keys["acme:token"], "", 403, "Authorization"},
		{"malformed JSON", "POST", "/v1/oauth-clients", admin, `{"definition":`, 400, ""},
		{"two values", "POST", "/v1/oauth-clients", admin, `{} {}`, 400, ""},
		{"unknown field", "POST", "/v1/oauth-clients", admin, `{"definition":"procore","client_secrets":"x"}`, 400, "client_secrets"},
		{"wrong type", "POST", "/v1/oauth-clients", admin, `{"definition":"procore","client_id":42}`, 400, "client_id"},
		{"not an object", "POST", "/v1/oauth-clients", admin, `["procore"]`, 400, ""},
		{"oversized", "POST", "/v1/oauth-clients/" + cl + "/rotate-secret", admin, big, 413, ""},
		{"too deep", "POST", "/v1/connections/" + conn + "/actions/me", e.keys["acme:proxy"], deep, 400, ""},
		{"unknown definition", "POST", "/v1/oauth-clients", admin, `{"definition":"procor","client_id":"a","client_secret":"b"}`, 422, "definition"},
		{"missing secret", "POST", "/v1/oauth-clients", admin, `{"definition":"procore","client_id":"a"}`, 422, "client_secret"},
		{"host not allowed", "POST", "/v1/oauth-clients", admin, `{"definition":"procore","client_id":"a","client_secret":"b","base_url":"https://internal.example.net"}`, 422, "base_url"},
		{"empty rotation", "POST", "/v1/oauth-clients/" + cl + "/rotate-secret", admin, `{"client_secret":""}`, 422, "client_secret"},
		{"unknown client id", "GET", "/v1/oauth-clients/cli_nope", admin, "", 404, "id"},
		{"no client", "POST", "/v1/connections", write, `{}`, 422, "oauth_client"},
		{"unknown environment", "POST", "/v1/connections", write, `{"oauth_client":"` + cl + `","environment":"staging"}`, 422, "environment"},
		{"unknown field name", "POST", "/v1/connections", write, `{"oauth_client":"` + cl + `","fields":{"Company":"1"}}`, 422, "fields.Company"},
		{"bad field value", "POST", "/v1/connections", write, `{"oauth_client":"` + cl + `","fields":{"CompanyId":"abc"}}`, 422, "fields.CompanyId"},
		{"field of wrong type", "POST", "/v1/connections", write, `{"oauth_client":"` + cl + `","fields":{"CompanyId":{"n":7}}}`, 422, "fields.CompanyId"},
		{"unknown connection", "GET", "/v1/connections/" + unknownConn, read, "", 404, "id"},
		{"fields malformed", "PATCH", "/v1/connections/" + conn + "/fields", write, `{"fields":`, 400, ""},
		{"fields unknown member", "PATCH", "/v1/connections/" + conn + "/fields", write, `{"field":{"CompanyId":"1"}}`, 400, "field"},
		{"fields missing", "PATCH", "/v1/connections/" + conn + "/fields", write, `{}`, 422, "fields"},
		{"fields bad value", "PATCH", "/v1/connections/" + conn + "/fields", write, `{"fields":{"CompanyId":"abc"}}`, 422, "fields.CompanyId"},
		{"fields unknown name", "PATCH", "/v1/connections/" + conn + "/fields", write, `{"fields":{"Company":"1"}}`, 422, "fields.Company"},
		{"fields read key", "PATCH", "/v1/connections/" + conn + "/fields", read, `{"fields":{"CompanyId":"1"}}`, 403, "Authorization"},
		{"fields unknown connection", "PATCH", "/v1/connections/" + unknownConn + "/fields", write, `{"fields":{"CompanyId":"1"}}`, 404, "id"},
		{"both client and definition", "POST", "/v1/connections", write, `{"oauth_client":"` + cl + `","definition":"procore"}`, 422, "definition"},
		{"definition with OAuth", "POST", "/v1/connections", write, `{"definition":"procore"}`, 422, "definition"},
		{"bad limit", "GET", "/v1/connections?limit=0", read, "", 400, "limit"},
		{"bad cursor", "GET", "/v1/connections?cursor=zzz", read, "", 400, "cursor"},
		{"bad status filter", "GET", "/v1/connections?status=happy", read, "", 400, "status"},
		{"unknown parameter", "GET", "/v1/connections?tenant=globex", read, "", 400, "tenant"},
		{"return_to not allowed", "POST", "/v1/connections/" + conn + "/authorize", write, `{"return_to":"https://platform.example.com.evil.net/connected"}`, 422, "return_to"},
		{"return_to sibling path", "POST", "/v1/connections/" + conn + "/authorize", write, `{"return_to":"https://platform.example.com/connectedx"}`, 422, "return_to"},
		{"unknown action", "POST", "/v1/connections/" + conn + "/actions/nope", e.keys["acme:proxy"], "", 404, "action"},
		{"action input", "POST", "/v1/connections/" + conn + "/actions/get_project", e.keys["acme:proxy"], `{"project_id":"x"}`, 422, ""},
		{"action parameter", "POST", "/v1/connections/" + conn + "/actions/me?all=yes", e.keys["acme:proxy"], "", 400, "all"},
		{"unknown definition get", "GET", "/v1/definitions/nope", read, "", 404, "name"},
		{"unknown route", "GET", "/v1/nothing", read, "", 404, ""},
		{"webhook secret too short", "PUT", "/v1/oauth-clients/" + cl + "/webhook-secret", admin, `{"secret":"short"}`, 422, "secret"},
		{"webhook secret missing", "PUT", "/v1/oauth-clients/" + cl + "/webhook-secret", admin, `{}`, 422, "secret"},
		{"webhook secret and generate", "PUT", "/v1/oauth-clients/" + cl + "/webhook-secret", admin, `{"secret":"0123456789abcdef0","generate":true}`, 422, "secret"},
		{"webhook secret line break", "PUT", "/v1/oauth-clients/" + cl + "/webhook-secret", admin, `{"secret":"0123456789abcdef\n0"}`, 422, "secret"},
		{"webhook keep_previous_for", "PUT", "/v1/oauth-clients/" + cl + "/webhook-secret", admin, `{"generate":true,"keep_previous_for":"forever"}`, 422, "keep_previous_for"},
		{"webhook keep_previous_for too long", "PUT", "/v1/oauth-clients/" + cl + "/webhook-secret", admin, `{"generate":true,"keep_previous_for":"9000h"}`, 422, "keep_previous_for"},
		{"webhook secret unknown field", "PUT", "/v1/oauth-clients/" + cl + "/webhook-secret", admin, `{"secrets":"0123456789abcdef0"}`, 400, "secrets"},
		{"webhook secret wrong type", "PUT", "/v1/oauth-clients/" + cl + "/webhook-secret", admin, `{"generate":"yes"}`, 400, "generate"},
		{"webhook secret missing scope", "PUT", "/v1/oauth-clients/" + cl + "/webhook-secret", write, `{"generate":true}`, 403, "Authorization"},
		{"webhook secret of unknown client", "PUT", "/v1/oauth-clients/cli_nope/webhook-secret", admin, `{"generate":true}`, 404, "id"},
		{"webhook secret not set", "GET", "/v1/oauth-clients/" + cl + "/webhook-secret", admin, "", 404, "id"},
		{"webhook secret delete not set", "DELETE", "/v1/oauth-clients/" + cl + "/webhook-secret", admin, "", 404, "id"},
		{"webhook delivery unverified", "POST", "/v1/webhooks/procore/" + cl, "", `{"id":1}`, 401, "Authorization"},
		{"webhook delivery with an API key", "POST", "/v1/webhooks/procore/" + cl, admin, `{"id":1}`, 401, "Authorization"},
		{"webhook delivery unknown client", "POST", "/v1/webhooks/procore/cli_nope", "", `{"id":1}`, 404, "client"},
		{"webhook delivery unknown definition", "POST", "/v1/webhooks/procor/" + cl, "", `{"id":1}`, 404, "definition"},
		{"connection webhook secret too short", "PUT", "/v1/connections/" + conn + "/webhook-secret", write, `{"secret":"short"}`, 422, "secret"},
		{"connection webhook secret and generate", "PUT", "/v1/connections/" + conn + "/webhook-secret", write, `{"secret":"0123456789abcdef0","generate":true}`, 422, "secret"},
		{"connection webhook keep_previous_for", "PUT", "/v1/connections/" + conn + "/webhook-secret", write, `{"generate":true,"keep_previous_for":"forever"}`, 422, "keep_previous_for"},
		{"connection webhook secret unknown field", "PUT", "/v1/connections/" + conn + "/webhook-secret", write, `{"secrets":"0123456789abcdef0"}`, 400, "secrets"},
		{"connection webhook secret read key", "PUT", "/v1/connections/" + conn + "/webhook-secret", read, `{"generate":true}`, 403, "Authorization"},
		{"connection webhook secret unknown connection", "PUT", "/v1/connections/" + unknownConn + "/webhook-secret", write, `{"generate":true}`, 404, "id"},
		{"connection webhook secret not set", "GET", "/v1/connections/" + conn + "/webhook-secret", read, "", 404, "id"},
		{"connection webhook secret delete not set", "DELETE", "/v1/connections/" + conn + "/webhook-secret", write, "", 404, "id"},
		{"connection webhook delivery unverified", "POST", "/v1/webhooks/procore/connections/" + conn, "", `{"id":1}`, 401, "Authorization"},
		{"connection webhook delivery unknown connection", "POST", "/v1/webhooks/procore/connections/" + unknownConn, "", `{"id":1}`, 404, "connection"},
		{"connection webhook delivery unknown definition", "POST", "/v1/webhooks/procor/connections/" + conn, "", `{"id":1}`, 404, "definition"},
		{"connect link offers nothing", "POST", "/v1/connect-sessions", write, `{}`, 422, "oauth_clients"},
		{"connect link return_to", "POST", "/v1/connect-sessions", write, `{"oauth_clients":["` + cl + `"],"return_to":"https://platform.example.com.evil.net/connected"}`, 422, "return_to"},
		{"connect link environment", "POST", "/v1/connect-sessions", write, `{"oauth_clients":["` + cl + `"],"environment":"staging"}`, 422, "environment"},
	}
	ctx := context.Background()
	db := e.replicas[0].storage.State
	countAll := func() (int, int) {
		cs, _ := db.Clients(ctx, "acme")
		ns, _, _ := db.Connections(ctx, "acme", state.Filter{Limit: state.MaxLimit})
		return len(cs), len(ns)
	}
	c0, n0 := countAll()
	stats := e.emu.Stats()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var body any
			if tc.body != "" {
				body = tc.body
			}
			r := e.call(0, tc.method, tc.path, tc.key, body)
			if r.status != tc.status {
				t.Fatalf("%d, want %d: %s", r.status, tc.status, r.body)
			}
			if f := problemField(t, r); tc.field != "" && f != tc.field {
				t.Fatalf("problem names field %q, want %q: %s", f, tc.field, r.body)
			}
		})
	}
	if c, n := countAll(); c != c0 || n != n0 {
		t.Fatalf("bad requests wrote: clients %d->%d, connections %d->%d", c0, c, n0, n)
	}
	if _, err := db.WebhookSecretOf(ctx, "acme", cl); err == nil {
		t.Fatal("a refused webhook-secret request set one")
	}
	if evs, _, _ := db.ListEvents(ctx, "acme", "", state.EventFilter{Type: state.TypeWebhookDelivery}); len(evs) != 0 {
		t.Fatalf("refused deliveries were stored: %v", evs)
	}
	if got := e.emu.Stats(); got.APIRequests != stats.APIRequests || got.CodeExchanges != stats.CodeExchanges {
		t.Fatalf("bad requests reached the provider")
	}
	// The unchanged secret still works: the refused rotations wrote nothing.
	if c, _ := db.Client(ctx, "acme", cl); c.Secret != emuSecret {
		t.Fatal("a refused rotation changed the secret")
	}
}

// TestCallbackReplayAndExpiry: a callback is exchanged once; a replay, an
// unknown state, a denied consent and an expired session each get a page
// saying why, and exchange nothing.
func TestCallbackReplayAndExpiry(t *testing.T) {
	e := newEnv(t, t.TempDir()+"/connector.db", envOptions{})
	cl := e.oauthClient("acme")
	conn := e.connection("acme", cl)
	a := e.must(201, 0, "POST", "/v1/connections/"+conn+"/authorize", e.keys["acme:connections:write"], map[string]any{"return_to": "https://platform.example.com/connected/acme"})
	cb := e.consent(a["authorization_url"].(string), "allow")
	first := e.browse(0, cb)
	if first.status != 303 || !strings.HasPrefix(first.header.Get("Location"), "https://platform.example.com/connected/acme?") || !strings.Contains(first.header.Get("Location"), "status=connected") {
		t.Fatalf("first callback: %d %v", first.status, first.header)
	}
	exchanges := e.emu.Stats().CodeExchanges
	check := func(name string, r response, want string) {
		t.Helper()
		if r.status != 400 && r.status != 502 {
			t.Fatalf("%s: %d %s", name, r.status, r.body)
		}
		if !strings.Contains(string(r.body), want) {
			t.Fatalf("%s: page %q does not say %q", name, r.body, want)
		}
		for _, h := range []string{"Content-Security-Policy", "X-Content-Type-Options"} {
			if r.header.Get(h) == "" {
				t.Fatalf("%s: page without %s", name, h)
			}
		}
	}
	check("replay", e.browse(0, cb), "already completed")
	q := cb.Query()
	q.Set("state", "forged-state-value")
	forged := *cb
	forged.RawQuery = q.Encode()
	check("unknown state", e.browse(0, &forged), "does not belong")

	a2 := e.must(201, 0, "POST", "/v1/connections/"+conn+"/authorize", e.keys["acme:connections:write"], nil)
	denied := e.consent(a2["authorization_url"].(string), "deny")
	check("denied", e.browse(0, denied), "denied")

	a3 := e.must(201, 0, "POST", "/v1/connections/"+conn+"/authorize", e.keys["acme:connections:write"], nil)
	cb3 := e.consent(a3["authorization_url"].(string), "allow")
	db := e.replicas[0].storage.State
	db.Now = func() time.Time { return time.Now().Add(time.Hour) }
	check("expired", e.browse(0, cb3), "expired")
	if got := e.emu.Stats().CodeExchanges; got != exchanges {
		t.Fatalf("%d code exchanges after refused callbacks, want %d", got, exchanges)
	}
}
