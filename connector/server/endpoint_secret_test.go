package server_test

import (
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/connector-engine/connector/connector/server/events"
)

// TestEndpointOwnSecret: a platform may give the signing secret itself
// (PUT /v1/event-endpoint when the endpoint is made, or a rotation), and
// only a Standard Webhooks secret is taken: anything else is a 422 whose
// problem names the field secret, never echoes the value and stores
// nothing. Events are then signed with the secret given; another tenant
// neither reaches nor changes the endpoint.
func TestEndpointOwnSecret(t *testing.T) {
	e := newEnv(t, t.TempDir()+"/connector.db", envOptions{})
	admin, globex := e.keys["acme:admin"], e.keys["globex:admin"]
	key := func(n int) []byte { b := make([]byte, n); _, _ = rand.Read(b); return b }
	p := newPlatform(t)
	url := p.srv.URL + "/events"
	bad := []struct{ name, secret string }{
		{"no prefix", base64.StdEncoding.EncodeToString(key(32))},
		{"another prefix", "whsek_" + base64.StdEncoding.EncodeToString(key(32))},
		{"not base64", "whsec_not*base64!" + strings.Repeat("x", 30)},
		{"unpadded", "whsec_" + base64.RawStdEncoding.EncodeToString(key(32))},
		{"url alphabet", "whsec_" + strings.Repeat("-_", 22)},
		{"too short a key", "whsec_" + base64.StdEncoding.EncodeToString(key(16))},
		{"too long a key", "whsec_" + base64.StdEncoding.EncodeToString(key(65))},
		{"only the prefix", "whsec_"},
	}
	check := func(t *testing.T, r response, secret string) {
		t.Helper()
		if r.status != 422 || problemField(t, r) != "secret" || !strings.Contains(string(r.body), "whsec_") {
			t.Fatalf("%d %s, want 422 naming secret and its form", r.status, r.body)
		}
		if raw := strings.TrimPrefix(secret, "whsec_"); len(raw) > 4 && strings.Contains(string(r.body), raw) {
			t.Fatalf("the problem echoes the secret: %s", r.body)
		}
	}
	for _, tc := range bad {
		t.Run("put/"+tc.name, func(t *testing.T) {
			check(t, e.call(0, "PUT", "/v1/event-endpoint", admin, map[string]any{"url": url, "secret": tc.secret}), tc.secret)
		})
	}
	e.must(404, 0, "GET", "/v1/event-endpoint", admin, nil) // nothing stored

	own := events.NewSecret()
	remember(own)
	got := e.must(201, 0, "PUT", "/v1/event-endpoint", admin, map[string]any{"url": url, "secret": own})
	if _, shown := got["secret"]; shown {
		t.Fatalf("the answer shows the secret the platform gave: %v", got)
	}
	if r := e.call(0, "PUT", "/v1/event-endpoint", admin, map[string]any{"url": url, "secret": events.NewSecret()}); r.status != 409 || problemField(t, r) != "secret" {
		t.Fatalf("a secret for an endpoint that has one: %d %s, want 409 naming secret (rotate instead)", r.status, r.body)
	}
	e.must(200, 0, "PUT", "/v1/event-endpoint", admin, map[string]any{"url": url}) // the url alone may change
	for _, tc := range bad {
		t.Run("rotate/"+tc.name, func(t *testing.T) {
			check(t, e.call(0, "POST", "/v1/event-endpoint/rotate-secret", admin, map[string]any{"secret": tc.secret}), tc.secret)
		})
	}

	// Another tenant: no endpoint of acme's to rotate, and its own secret
	// makes its own endpoint only.
	theirs := events.NewSecret()
	remember(theirs)
	if r := e.call(0, "POST", "/v1/event-endpoint/rotate-secret", globex, map[string]any{"secret": theirs}); r.status != 404 {
		t.Fatalf("globex rotating with no endpoint of its own: %d %s", r.status, r.body)
	}
	e.must(201, 0, "PUT", "/v1/event-endpoint", globex, map[string]any{"url": "https://93.184.215.14/globex", "secret": theirs})
	if got := e.must(200, 0, "GET", "/v1/event-endpoint", admin, nil); got["url"] != url {
		t.Fatalf("acme's endpoint after globex's: %v", got)
	}

	// acme's events are signed with the secret it gave (the platform
	// verifies with it), and after a rotation to another of its own, with
	// both during the grace period.
	next := events.NewSecret()
	remember(next)
	rot := e.must(200, 0, "POST", "/v1/event-endpoint/rotate-secret", admin, map[string]any{"secret": next})
	if _, shown := rot["secret"]; shown || rot["previous_secret_valid_until"] == nil {
		t.Fatalf("rotation to a given secret: %v", rot)
	}
	p.mu.Lock()
	p.secret = own // the previous secret still signs, beside next
	p.mu.Unlock()
	e.startWorkers()
	conn := e.connection("acme", e.oauthClient("acme"))
	e.authorize("acme", conn, 0, 0)
	waitUntil(t, "connection.connected, verified with the given secret", func() bool { return len(p.types(conn)) > 0 })
	p.mu.Lock()
	p.secret = next
	p.mu.Unlock()
	e.must(204, 0, "DELETE", "/v1/connections/"+conn+"?force=true", e.keys["acme:connections:write"], nil)
	waitUntil(t, "connection.deleted, verified with the rotated-to secret", func() bool { return len(p.types(conn)) > 1 })
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.bad) > 0 {
		t.Fatalf("deliveries that did not verify: %v", p.bad)
	}
}
