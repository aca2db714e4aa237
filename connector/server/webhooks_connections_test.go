package server_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// stripeSignature is the Stripe-Signature header of body signed with
// secret at t, as Stripe documents it
// (https://docs.stripe.com/webhooks#verify-manually): t=<unix seconds>,
// v1=<hex HMAC-SHA256 of "<t>.<body>">, one v1 pair per secret.
func stripeSignature(t time.Time, body []byte, secrets ...string) http.Header {
	ts := fmt.Sprint(t.Unix())
	parts := []string{"t=" + ts}
	for _, s := range secrets {
		m := hmac.New(sha256.New, []byte(s))
		m.Write([]byte(ts + "." + string(body)))
		parts = append(parts, "v1="+hex.EncodeToString(m.Sum(nil)))
	}
	return http.Header{"Stripe-Signature": {strings.Join(parts, ",")}}
}

func stripeEvent(id, typ string) []byte {
	return fmt.Appendf(nil, `{"id":%q,"object":"event","type":%q,"created":1780000000,"data":{"object":{"id":"in_1","amount_paid":2000}}}`, id, typ)
}

// TestConnectionWebhookStripe: Stripe deliveries to a Stripe (secret key)
// connection's own receiver, through the server: verified with the
// connection's signing secret before anything is stored, attributed to
// it, stored once however often they are redelivered, refused when the
// signature is wrong or old, forwarded to the platform; the previous
// secret verifies during a rotation; another tenant's secret, connection
// or key reaches nothing.
func TestConnectionWebhookStripe(t *testing.T) {
	backends(t, func(t *testing.T, spec func(*testing.T) string) {
		up := newUpstream(t)
		e := newEnv(t, spec(t), envOptions{definitions: credentialsDefs(t, up.url)})
		e.startWorkers()
		plat := newPlatform(t)
		e.setEndpoint("acme", plat)
		db := e.replicas[0].storage.State
		stripeConn := func(tenant, key string) string {
			remember(key)
			return e.must(201, 0, "POST", "/v1/connections", e.keys[tenant+":connections:write"], map[string]any{"definition": "stripe", "fields": map[string]any{"SecretKey": key}})["id"].(string)
		}
		acme := stripeConn("acme", credentialsSecretPrefix+"StripeAcme0123456789")
		globex := stripeConn("globex", credentialsSecretPrefix+"StripeGlobex0123456789")
		w := e.keys["acme:connections:write"]

		// No secret yet: refused, nothing stored.
		path := "/v1/webhooks/stripe/connections/" + acme
		if r := e.deliver(0, path, stripeSignature(time.Now(), stripeEvent("evt_0", "invoice.paid"), "whsec_guess_guess_guess"), stripeEvent("evt_0", "invoice.paid")); r.status != 401 {
			t.Fatalf("a delivery before any secret was set: %d %s", r.status, r.body)
		}
		ws := e.must(200, 0, "PUT", "/v1/connections/"+acme+"/webhook-secret", w, map[string]any{"generate": true})
		secret, _ := ws["secret"].(string)
		remember(secret)
		if !strings.HasPrefix(secret, "whsec_") || !strings.HasSuffix(ws["receiver_url"].(string), path) || ws["connection"] != acme || !strings.Contains(ws["verification"].(string), "Stripe-Signature") {
			t.Fatalf("PUT webhook-secret: %v", ws)
		}
		if got := e.must(200, 0, "GET", "/v1/connections/"+acme+"/webhook-secret", e.keys["acme:connections:read"], nil); got["secret"] != nil {
			t.Fatalf("GET shows the secret: %v", got)
		}
		br := newBrowser(t, e.replicas[0].url)
		br.signIn(e.keys["acme:admin"])
		if pg := br.get("/admin/connections/" + acme); !strings.Contains(string(pg.body), ws["receiver_url"].(string)) || strings.Contains(string(pg.body), secret) {
			t.Fatalf("the connection's admin page: %d %s", pg.status, pg.body)
		}
		globexSecret := "whsec_globex-connection-signing-secret"
		remember(globexSecret)
		e.must(200, 0, "PUT", "/v1/connections/"+globex+"/webhook-secret", e.keys["globex:connections:write"], map[string]any{"secret": globexSecret})

		body := stripeEvent("evt_1NG8Du2eZvKYlo2CUI79vXWy", "invoice.paid")
		r := e.deliver(0, path, stripeSignature(time.Now(), body, secret), body)
		if r.status != 200 || r.json(t)["duplicate"] != false {
			t.Fatalf("a signed delivery: %d %s", r.status, r.body)
		}
		evs := webhookEvents(t, db, "acme")
		if len(evs) != 1 || evs[0].Connection != acme {
			t.Fatalf("stored: %d events, connection %v", len(evs), evs)
		}
		var data map[string]any
		if err := json.Unmarshal(evs[0].Data, &data); err != nil {
			t.Fatal(err)
		}
		if data["definition"] != "stripe" || data["delivery_id"] != "evt_1NG8Du2eZvKYlo2CUI79vXWy" || data["event_type"] != "invoice.paid" || data["oauth_client"] != nil {
			t.Fatalf("the delivery's data: %v", data)
		}
		// Redelivered (Stripe signs each attempt anew): one event.
		if r := e.deliver(0, path, stripeSignature(time.Now().Add(time.Second), body, secret), body); r.status != 200 || r.json(t)["duplicate"] != true {
			t.Fatalf("a redelivery: %d %s", r.status, r.body)
		}
		refused := func(what string, header http.Header, body []byte, to string) {
			t.Helper()
			before := len(webhookEvents(t, db, "acme")) + len(webhookEvents(t, db, "globex"))
			if r := e.deliver(0, to, header, body); r.status != 401 {
				t.Errorf("%s: %d %s", what, r.status, r.body)
			}
			if after := len(webhookEvents(t, db, "acme")) + len(webhookEvents(t, db, "globex")); after != before {
				t.Errorf("%s stored a delivery", what)
			}
		}
		other := stripeEvent("evt_other", "charge.succeeded")
		refused("a wrong signature", stripeSignature(time.Now(), other, "whsec_not_the_secret_at_all"), other, path)
		refused("a body altered after signing", stripeSignature(time.Now(), body, secret), other, path)
		refused("an old timestamp", stripeSignature(time.Now().Add(-10*time.Minute), other, secret), other, path)
		refused("no signature", nil, other, path)
		refused("globex's secret on acme's receiver", stripeSignature(time.Now(), other, globexSecret), other, path)
		refused("acme's secret on globex's receiver", stripeSignature(time.Now(), other, secret), other, "/v1/webhooks/stripe/connections/"+globex)
		for _, to := range []string{"/v1/webhooks/keyed/connections/" + acme, "/v1/webhooks/procore/connections/" + acme, "/v1/webhooks/stripe/connections/con_00000000000000000000000000000000"} {
			if r := e.deliver(0, to, stripeSignature(time.Now(), other, secret), other); r.status != 404 {
				t.Errorf("POST %s: %d %s", to, r.status, r.body)
			}
		}
		// globex's own delivery is globex's, not acme's.
		gbody := stripeEvent("evt_1NG8Du2eZvKYlo2CUI79vXWy", "invoice.paid") // the same Stripe id, another account
		if r := e.deliver(0, "/v1/webhooks/stripe/connections/"+globex, stripeSignature(time.Now(), gbody, globexSecret), gbody); r.status != 200 || r.json(t)["duplicate"] != false {
			t.Fatalf("globex's delivery: %d %s", r.status, r.body)
		}
		if g := webhookEvents(t, db, "globex"); len(g) != 1 || g[0].Connection != globex {
			t.Fatalf("globex's events: %v", g)
		}

		// Rotation: the previous secret verifies for keep_previous_for.
		rotated := e.must(200, 0, "PUT", "/v1/connections/"+acme+"/webhook-secret", w, map[string]any{"generate": true, "keep_previous_for": "1h"})
		secret2, _ := rotated["secret"].(string)
		remember(secret2)
		if secret2 == "" || secret2 == secret || rotated["previous_valid_until"] == nil {
			t.Fatalf("rotation: %v", rotated)
		}
		for i, s := range []string{secret, secret2} {
			b := stripeEvent(fmt.Sprint("evt_rotation_", i), "invoice.paid")
			if r := e.deliver(0, path, stripeSignature(time.Now(), b, s), b); r.status != 200 {
				t.Errorf("during the rotation, secret %d: %d %s", i, r.status, r.body)
			}
		}
		// Stripe signs with both during its own rotation: either verifies.
		b := stripeEvent("evt_both", "invoice.paid")
		if r := e.deliver(0, path, stripeSignature(time.Now(), b, "whsec_unknown_unknown", secret2), b); r.status != 200 {
			t.Errorf("two v1 signatures, the second good: %d %s", r.status, r.body)
		}
		e.must(204, 0, "DELETE", "/v1/connections/"+acme+"/webhook-secret", w, nil)
		refused("after the secret was deleted", stripeSignature(time.Now(), other, secret2), other, path)

		// Forwarded to the platform, attributed to the connection, once each.
		waitUntil(t, "the deliveries forwarded", func() bool {
			n := 0
			for _, typ := range plat.types(acme) {
				if typ == "webhook.delivery" {
					n++
				}
			}
			return n == 4
		})
		if got := plat.types(acme); got[0] != "connection.connected" {
			t.Fatalf("the platform got %v", got)
		}
		plat.mu.Lock()
		for _, b := range plat.bodies {
			for _, s := range []string{secret, secret2, globexSecret} {
				if strings.Contains(string(b), s) {
					t.Error("a forwarded event carries a webhook secret")
				}
			}
		}
		plat.mu.Unlock()
	})
}
