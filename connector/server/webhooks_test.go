package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/server/state"
	"github.com/connector-engine/connector/connector/server/webhooks"
	"github.com/connector-engine/connector/definitions"
)

// deliver POSTs a webhook delivery to replica i.
func (e *env) deliver(i int, path string, header http.Header, body []byte) response {
	e.t.Helper()
	req, err := http.NewRequest("POST", e.replicas[i].url+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		e.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}

// webhookEvents lists the tenant's webhook.delivery events, oldest first.
func webhookEvents(t testing.TB, db *state.DB, tenant string) []state.Event {
	t.Helper()
	var all []state.Event
	cursor := ""
	for {
		page, next, err := db.ListEvents(context.Background(), tenant, "", state.EventFilter{Type: state.TypeWebhookDelivery, After: cursor, Limit: state.MaxLimit})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if next == "" {
			break
		}
		cursor = next
	}
	for i, j := 0, len(all)-1; i < j; i, j = i+1, j-1 {
		all[i], all[j] = all[j], all[i]
	}
	return all
}

func procoreDelivery(id int, company string) []byte {
	return fmt.Appendf(nil, `{"id":%d,"ulid":"01J%020d","timestamp":"2026-12-02T14:00:00Z","user_id":77,"company_id":%s,"project_id":55,"api_version":"v2","event_type":"create","resource_name":"RFIs","resource_id":%d,"metadata":{"source_application_id":null}}`, id, id, company, 9000+id)
}

func bearer(secret string) http.Header { return http.Header{"Authorization": {"Bearer " + secret}} }

// TestWebhookReceiver: Procore deliveries are verified by the client's
// webhook secret before anything is stored, attributed to the client's
// connection by company_id (never another tenant's with the same
// company), stored once however often they are redelivered, and capped.
func TestWebhookReceiver(t *testing.T) {
	backends(t, func(t *testing.T, spec func(*testing.T) string) {
		e := newEnv(t, spec(t), envOptions{})
		db := e.replicas[0].storage.State
		acmeCl, globexCl := e.oauthClient("acme"), e.oauthClient("globex")
		acmeConn := e.must(201, 0, "POST", "/v1/connections", e.keys["acme:connections:write"], map[string]any{"oauth_client": acmeCl, "fields": map[string]any{"CompanyId": "1234567890123"}})["id"].(string)
		globexConn := e.must(201, 0, "POST", "/v1/connections", e.keys["globex:connections:write"], map[string]any{"oauth_client": globexCl, "fields": map[string]any{"CompanyId": "1234567890123"}})["id"].(string)
		globexOther := e.must(201, 0, "POST", "/v1/connections", e.keys["globex:connections:write"], map[string]any{"oauth_client": globexCl, "fields": map[string]any{"CompanyId": "42"}})["id"].(string)
		path := "/v1/webhooks/procore/" + acmeCl

		// No secret yet: refused, nothing stored.
		if r := e.deliver(0, path, bearer("anything-at-all-123"), procoreDelivery(1, "1234567890123")); r.status != 401 {
			t.Fatalf("before a secret: %d %s", r.status, r.body)
		}
		set := e.must(200, 0, "PUT", "/v1/oauth-clients/"+acmeCl+"/webhook-secret", e.keys["acme:admin"], map[string]any{"generate": true})
		secret := set["secret"].(string)
		remember(secret)
		if set["receiver_url"] != e.replicas[0].url+path || !strings.Contains(set["verification"].(string), "Authorization") {
			t.Fatalf("PUT answer: %v", set)
		}
		if got := e.must(200, 0, "GET", "/v1/oauth-clients/"+acmeCl+"/webhook-secret", e.keys["acme:admin"], nil); got["secret"] != nil {
			t.Fatalf("GET shows the secret: %v", got)
		}
		globexSecret := "globex-webhook-secret-0123456789"
		remember(globexSecret)
		e.must(200, 0, "PUT", "/v1/oauth-clients/"+globexCl+"/webhook-secret", e.keys["globex:admin"], map[string]any{"secret": globexSecret})

		refused := []struct {
			name   string
			path   string
			header http.Header
			body   []byte
			status int
			field  string
		}{
			{"no header", path, nil, procoreDelivery(2, "1"), 401, "Authorization"},
			{"wrong secret", path, bearer(secret + "x"), procoreDelivery(2, "1"), 401, "Authorization"},
			{"no prefix", path, http.Header{"Authorization": {secret}}, procoreDelivery(2, "1"), 401, "Authorization"},
			{"another tenant's secret", path, bearer(globexSecret), procoreDelivery(2, "1"), 401, "Authorization"},
			{"unknown client", "/v1/webhooks/procore/cli_00000000000000000000000000000000", bearer(secret), procoreDelivery(2, "1"), 404, "client"},
			{"another definition", "/v1/webhooks/procore-v1/" + acmeCl, bearer(secret), procoreDelivery(2, "1"), 404, "client"},
			{"definition without webhooks", "/v1/webhooks/nope/" + acmeCl, bearer(secret), procoreDelivery(2, "1"), 404, "definition"},
			{"not JSON", path, bearer(secret), []byte("id=2&company_id=1"), 400, ""},
			{"too deep", path, bearer(secret), []byte(strings.Repeat("[", 50) + strings.Repeat("]", 50)), 400, ""},
			{"too large", path, bearer(secret), []byte(`{"id":3,"pad":"` + strings.Repeat("x", 1<<20) + `"}`), 413, ""},
		}
		for _, rf := range refused {
			r := e.deliver(0, rf.path, rf.header, rf.body)
			if r.status != rf.status {
				t.Errorf("%s: %d, want %d: %s", rf.name, r.status, rf.status, r.body)
				continue
			}
			if f := problemField(t, r); f != rf.field {
				t.Errorf("%s: problem field %q, want %q", rf.name, f, rf.field)
			}
		}
		if evs := webhookEvents(t, db, "acme"); len(evs) != 0 {
			t.Fatalf("refused deliveries were stored: %v", evs)
		}

		// Accepted, attributed; a redelivery is answered alike and stored once.
		for i := range 3 {
			r := e.deliver(0, path, bearer(secret), procoreDelivery(100, "1234567890123"))
			if r.status != 200 || r.json(t)["duplicate"] != (i > 0) {
				t.Fatalf("delivery %d: %d %s", i, r.status, r.body)
			}
		}
		// No connection with that company (globex has one): kept, with no
		// connection, in acme's events only.
		if r := e.deliver(0, path, bearer(secret), procoreDelivery(101, "42")); r.status != 200 {
			t.Fatalf("unattributed: %d %s", r.status, r.body)
		}
		// The same delivery id sent to globex's client is globex's own event.
		if r := e.deliver(0, "/v1/webhooks/procore/"+globexCl, bearer(globexSecret), procoreDelivery(100, "1234567890123")); r.status != 200 || r.json(t)["duplicate"] != false {
			t.Fatalf("globex's delivery: %d %s", r.status, r.body)
		}
		evs := webhookEvents(t, db, "acme")
		if len(evs) != 2 || evs[0].Connection != acmeConn || evs[1].Connection != "" {
			t.Fatalf("acme's events: %v", evs)
		}
		for _, ev := range evs {
			if ev.Connection == globexConn || ev.Connection == globexOther || ev.Tenant != "acme" {
				t.Fatalf("acme's delivery became globex's: %v", ev)
			}
		}
		var data struct {
			Definition  string                        `json:"definition"`
			OAuthClient string                        `json:"oauth_client"`
			DeliveryID  string                        `json:"delivery_id"`
			EventType   string                        `json:"event_type"`
			Attributed  struct{ Field, Value string } `json:"attributed_by"`
			Body        map[string]any                `json:"body"`
		}
		if err := json.Unmarshal(evs[0].Data, &data); err != nil {
			t.Fatal(err)
		}
		if data.Definition != "procore" || data.OAuthClient != acmeCl || data.DeliveryID != "100" || data.EventType != "create" ||
			data.Attributed.Field != "CompanyId" || data.Attributed.Value != "1234567890123" || data.Body["resource_name"] != "RFIs" {
			t.Fatalf("event data: %s", evs[0].Data)
		}
		gevs := webhookEvents(t, db, "globex")
		if len(gevs) != 1 || gevs[0].Connection != globexConn {
			t.Fatalf("globex's events: %v", gevs)
		}

		// Rotation with a grace: both secrets verify; without one, only the new.
		newSecret := "acme-rotated-webhook-secret-0001"
		remember(newSecret)
		rot := e.must(200, 0, "PUT", "/v1/oauth-clients/"+acmeCl+"/webhook-secret", e.keys["acme:admin"], map[string]any{"secret": newSecret, "keep_previous_for": "1h"})
		if rot["previous_valid_until"] == nil || rot["secret"] != nil {
			t.Fatalf("rotation answer: %v", rot)
		}
		for i, sec := range []string{secret, newSecret} {
			if r := e.deliver(0, path, bearer(sec), procoreDelivery(200+i, "1")); r.status != 200 {
				t.Fatalf("secret %d during the grace: %d %s", i, r.status, r.body)
			}
		}
		e.must(200, 0, "PUT", "/v1/oauth-clients/"+acmeCl+"/webhook-secret", e.keys["acme:admin"], map[string]any{"secret": newSecret})
		if r := e.deliver(0, path, bearer(secret), procoreDelivery(300, "1")); r.status != 401 {
			t.Fatalf("the replaced secret after a rotation without grace: %d", r.status)
		}
		// Deleted: every delivery refused.
		e.must(204, 0, "DELETE", "/v1/oauth-clients/"+acmeCl+"/webhook-secret", e.keys["acme:admin"], nil)
		if r := e.deliver(0, path, bearer(newSecret), procoreDelivery(301, "1")); r.status != 401 {
			t.Fatalf("after delete: %d", r.status)
		}
		e.must(404, 0, "GET", "/v1/oauth-clients/"+acmeCl+"/webhook-secret", e.keys["acme:admin"], nil)
	})
}

// hooksDefinitions is the built-in set plus a definition that signs its
// deliveries Slack-style (a timestamped HMAC with a tolerance) and one that
// signs with the OAuth client's own secret, Shopify-style.
func hooksDefinitions(t testing.TB) *definitions.Set {
	t.Helper()
	set, err := definitions.Parse(definitions.Builtin(),
		definitions.File{Path: "signed.yaml", Data: []byte(`name: signed
extends: procore
title: Procore with signed deliveries
webhooks:
  shared_secret: null
  signature:
    header: X-Signature
    algorithm: hmac-sha256
    encoding: hex
    prefix: v0=
    signed: v0:${timestamp}:${body}
    timestamp_header: X-Timestamp
    tolerance: 5m
`)},
		definitions.File{Path: "clientsigned.yaml", Data: []byte(`name: clientsigned
extends: procore
title: Procore signed with the client secret
webhooks:
  shared_secret: null
  signature: {header: X-Hmac-Sha256, algorithm: hmac-sha256, encoding: base64, secret: client_secret}
  delivery_id: null
`)})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// TestWebhookSignedDeliveries: through the route, a timestamped signature
// is accepted in its window and refused when replayed later or forged, and
// a client-secret signature needs no webhook secret; with no delivery id
// declared, a byte-identical redelivery is still one event.
func TestWebhookSignedDeliveries(t *testing.T) {
	set := hooksDefinitions(t)
	e := newEnv(t, t.TempDir()+"/connector.db", envOptions{definitions: set})
	db := e.replicas[0].storage.State
	mkClient := func(def string) string {
		return e.must(201, 0, "POST", "/v1/oauth-clients", e.keys["acme:admin"], map[string]any{
			"definition": def, "client_id": emuClientID, "client_secret": emuSecret, "base_url": e.emuURL, "login_url": e.emuURL,
		})["id"].(string)
	}
	signedCl, clientCl := mkClient("signed"), mkClient("clientsigned")
	secret := "slack-style-signing-secret-000001"
	remember(secret)
	e.must(200, 0, "PUT", "/v1/oauth-clients/"+signedCl+"/webhook-secret", e.keys["acme:admin"], map[string]any{"secret": secret})
	signed, _ := set.Lookup("signed")
	path := "/v1/webhooks/signed/" + signedCl
	body := procoreDelivery(1, "5")
	now := time.Now()
	for _, tc := range []struct {
		name   string
		header http.Header
		body   []byte
		status int
	}{
		{"fresh", webhooks.Sign(signed.Webhooks.Signature, []byte(secret), body, now), body, 200},
		{"redelivered in the window", webhooks.Sign(signed.Webhooks.Signature, []byte(secret), body, now.Add(-time.Minute)), body, 200},
		{"replayed after the window", webhooks.Sign(signed.Webhooks.Signature, []byte(secret), body, now.Add(-10*time.Minute)), body, 401},
		{"another secret", webhooks.Sign(signed.Webhooks.Signature, []byte("not-the-secret-at-all"), body, now), body, 401},
		{"body changed", webhooks.Sign(signed.Webhooks.Signature, []byte(secret), body, now), procoreDelivery(1, "6"), 401},
	} {
		if r := e.deliver(0, path, tc.header, tc.body); r.status != tc.status {
			t.Errorf("%s: %d, want %d: %s", tc.name, r.status, tc.status, r.body)
		}
	}
	cs, _ := set.Lookup("clientsigned")
	cpath := "/v1/webhooks/clientsigned/" + clientCl
	for range 2 {
		if r := e.deliver(0, cpath, webhooks.Sign(cs.Webhooks.Signature, []byte(emuSecret), body, now), body); r.status != 200 {
			t.Fatalf("client-secret signature: %d %s", r.status, r.body)
		}
	}
	if r := e.deliver(0, cpath, webhooks.Sign(cs.Webhooks.Signature, []byte(secret), body, now), body); r.status != 401 {
		t.Fatalf("client-secret receiver took the webhook secret: %d", r.status)
	}
	evs := webhookEvents(t, db, "acme")
	if len(evs) != 2 {
		t.Fatalf("%d events, want 2 (one per receiver): %v", len(evs), evs)
	}
	var d struct {
		DeliveryID string `json:"delivery_id"`
	}
	_ = json.Unmarshal(evs[1].Data, &d)
	if !strings.HasPrefix(d.DeliveryID, "sha256:") {
		t.Fatalf("no delivery_id declared: id %q, want the body's hash", d.DeliveryID)
	}
}
