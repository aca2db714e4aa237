package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/server/events"
)

// platform is a tenant's event receiver: it verifies each signature with
// the secret the API showed, de-duplicates by webhook-id, and keeps what
// it accepted in order.
type platform struct {
	srv    *httptest.Server
	mu     sync.Mutex
	secret string
	refuse bool
	got    []events.Payload
	seen   map[string]bool
	bodies [][]byte
	bad    []string
}

func newPlatform(t *testing.T) *platform {
	p := &platform{seen: map[string]bool{}}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 2<<20))
		p.mu.Lock()
		defer p.mu.Unlock()
		if err := events.Verify(p.secret, r.Header, body, time.Now(), events.DefaultTolerance); err != nil {
			p.bad = append(p.bad, err.Error())
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if p.refuse {
			w.WriteHeader(http.StatusUnprocessableEntity)
			return
		}
		var ev events.Payload
		if err := json.Unmarshal(body, &ev); err != nil {
			p.bad = append(p.bad, err.Error())
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if !p.seen[ev.ID] {
			p.seen[ev.ID] = true
			p.got = append(p.got, ev)
			p.bodies = append(p.bodies, body)
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *platform) types(conn string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, ev := range p.got {
		if ev.Connection == conn {
			out = append(out, ev.Type)
		}
	}
	return out
}

// fastEvents is the delivery policy scaled down for tests.
var fastEvents = events.Policy{Base: 20 * time.Millisecond, Cap: 200 * time.Millisecond, Budget: time.Hour, RefusedAttempts: 2}

// startWorkers runs every replica's event worker until the test ends.
func (e *env) startWorkers() {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, r := range e.replicas {
		w := r.srv.EventWorker()
		w.Policy, w.Poll = fastEvents, 50*time.Millisecond
		wg.Add(1)
		go func() { defer wg.Done(); _ = w.Run(ctx) }()
	}
	e.t.Cleanup(func() { cancel(); wg.Wait() })
}

// setEndpoint points tenant's events at p, keeping the secret shown.
func (e *env) setEndpoint(tenant string, p *platform) {
	e.t.Helper()
	ep := e.must(201, 0, "PUT", "/v1/event-endpoint", e.keys[tenant+":admin"], map[string]any{"url": p.srv.URL + "/events"})
	secret, _ := ep["secret"].(string)
	if !strings.HasPrefix(secret, events.SecretPrefix) {
		e.t.Fatalf("PUT /v1/event-endpoint showed no secret: %v", ep)
	}
	remember(secret)
	p.mu.Lock()
	p.secret = secret
	p.mu.Unlock()
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestConnectionEvents: a connection's life through the API emits, once
// each and in order, connected, refreshed (after a failing refresh),
// needs_reauth (with its reason, once however often it is seen), connected
// again, revoked and deleted; each signed, none carrying a token.
func TestConnectionEvents(t *testing.T) {
	backends(t, func(t *testing.T, spec func(*testing.T) string) {
		e := newEnv(t, spec(t), envOptions{replicas: 2})
		p := newPlatform(t)
		e.setEndpoint("acme", p)
		e.startWorkers()
		ctx := context.Background()
		cl := e.oauthClient("acme")
		conn := e.connection("acme", cl)
		e.authorize("acme", conn, 0, 1)
		write := e.keys["acme:connections:write"]
		rec, err := e.replicas[0].storage.Tokens.Get(ctx, conn)
		if err != nil {
			t.Fatal(err)
		}
		remember(rec.Token.AccessToken, rec.Token.RefreshToken)
		tokens := []string{rec.Token.AccessToken, rec.Token.RefreshToken}

		e.emu.FailTokenRequests(1000, 503) // past the engine's own retries
		if r := e.call(0, "POST", "/v1/connections/"+conn+"/refresh", write, nil); r.status/100 == 2 {
			t.Fatalf("a refresh against a failing provider: %d", r.status)
		}
		e.emu.FailTokenRequests(0, 0)
		e.must(200, 1, "POST", "/v1/connections/"+conn+"/refresh", write, nil) // refreshed after failing
		e.must(200, 0, "POST", "/v1/connections/"+conn+"/refresh", write, nil) // no event

		rec, _ = e.replicas[0].storage.Tokens.Get(ctx, conn)
		tokens = append(tokens, rec.Token.AccessToken, rec.Token.RefreshToken)
		rec.Token.RefreshToken = "refresh-token-the-provider-never-issued"
		rec.Token.Expiry = time.Now().Add(-time.Minute)
		if _, err := e.replicas[0].storage.Tokens.Put(ctx, rec); err != nil {
			t.Fatal(err)
		}
		for i := range 3 { // seen on both replicas, by refreshes and token requests: one event
			e.call(i%2, "POST", "/v1/connections/"+conn+"/refresh", write, nil)
			e.call(i%2, "POST", "/v1/connections/"+conn+"/token", e.keys["acme:token"], nil)
		}
		c := e.must(200, 0, "GET", "/v1/connections/"+conn, e.keys["acme:connections:read"], nil)
		if c["status"] != "needs_reauthorization" {
			t.Fatalf("after invalid_grant: %v", c)
		}
		e.authorize("acme", conn, 1, 0)
		rec, _ = e.replicas[0].storage.Tokens.Get(ctx, conn)
		tokens = append(tokens, rec.Token.AccessToken, rec.Token.RefreshToken)
		remember(tokens...)
		e.must(204, 1, "DELETE", "/v1/connections/"+conn, write, nil)

		want := []string{"connection.connected", "connection.refreshed", "connection.needs_reauth", "connection.connected", "connection.revoked", "connection.deleted"}
		waitUntil(t, "the connection's events", func() bool { return len(p.types(conn)) >= len(want) })
		time.Sleep(300 * time.Millisecond) // a duplicate event would arrive meanwhile
		if got := p.types(conn); !slices.Equal(got, want) {
			t.Fatalf("events %v, want %v", got, want)
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if len(p.bad) > 0 {
			t.Fatalf("signatures failed: %v", p.bad)
		}
		needs := p.got[2]
		var data map[string]string
		_ = json.Unmarshal(needs.Data, &data)
		if data["status"] != "needs_reauthorization" || data["reason"] == "" || needs.Occurred.IsZero() || !strings.HasPrefix(needs.ID, "evt_") {
			t.Fatalf("the needs_reauth event: %+v %s", needs, needs.Data)
		}
		var refreshed map[string]string
		_ = json.Unmarshal(p.got[1].Data, &refreshed)
		if refreshed["previous_status"] != "failing" {
			t.Fatalf("the refreshed event: %s", p.got[1].Data)
		}
		for _, b := range p.bodies {
			for _, tok := range tokens {
				if tok != "" && bytes.Contains(b, []byte(tok)) {
					t.Fatalf("an event carries a token: %s", b)
				}
			}
		}
		// The history is in the API too, newest first, delivered.
		list := e.must(200, 0, "GET", "/v1/events?connection="+conn, e.keys["acme:admin"], nil)
		evs := list["events"].([]any)
		if len(evs) != len(want) || evs[0].(map[string]any)["type"] != "connection.deleted" ||
			evs[0].(map[string]any)["delivery"].(map[string]any)["status"] != "delivered" {
			t.Fatalf("GET /v1/events: %v", list)
		}
	})
}

// TestDeadLettersAPI: events the platform refuses become dead letters,
// listed and replayed through the API; a rotated secret signs beside the
// old one, and the receiver switching to the new one keeps verifying.
func TestDeadLettersAPI(t *testing.T) {
	e := newEnv(t, t.TempDir()+"/connector.db", envOptions{})
	p := newPlatform(t)
	e.setEndpoint("acme", p)
	p.refuse = true
	e.startWorkers()
	admin := e.keys["acme:admin"]
	cl := e.oauthClient("acme")
	conn := e.connection("acme", cl)
	e.authorize("acme", conn, 0, 0)
	var dead []any
	waitUntil(t, "a dead letter", func() bool {
		dead = e.must(200, 0, "GET", "/v1/dead-letters", admin, nil)["dead_letters"].([]any)
		return len(dead) == 1
	})
	d := dead[0].(map[string]any)
	if d["type"] != "connection.connected" || d["connection"] != conn || d["delivery"].(map[string]any)["last_status"] != float64(422) {
		t.Fatalf("dead letter %v", d)
	}
	rot := e.must(200, 0, "POST", "/v1/event-endpoint/rotate-secret", admin, nil)
	newSecret := rot["secret"].(string)
	remember(newSecret)
	if newSecret == p.secret || rot["previous_secret_valid_until"] == nil {
		t.Fatalf("rotation: %v", rot)
	}
	p.mu.Lock()
	p.refuse, p.secret = false, newSecret
	p.mu.Unlock()
	id := d["id"].(string)
	r := e.must(202, 0, "POST", "/v1/dead-letters/"+id+"/replay", admin, nil)
	if r["replayed"] != float64(1) {
		t.Fatalf("replay: %v", r)
	}
	waitUntil(t, "the replayed event", func() bool { return len(p.types(conn)) == 1 })
	ev := e.must(200, 0, "GET", "/v1/events/"+id, admin, nil)
	if ev["delivery"].(map[string]any)["status"] != "delivered" {
		waitUntil(t, "delivered status", func() bool {
			return e.must(200, 0, "GET", "/v1/events/"+id, admin, nil)["delivery"].(map[string]any)["status"] == "delivered"
		})
	}
	if r := e.call(0, "POST", "/v1/dead-letters/"+id+"/replay", admin, nil); r.status != 404 {
		t.Fatalf("replaying a delivered event: %d %s", r.status, r.body)
	}
	// Replay by connection.
	p.mu.Lock()
	p.refuse = true
	p.mu.Unlock()
	e.must(204, 0, "DELETE", "/v1/connections/"+conn, e.keys["acme:connections:write"], nil)
	waitUntil(t, "two dead letters", func() bool {
		return len(e.must(200, 0, "GET", "/v1/dead-letters?connection="+conn, admin, nil)["dead_letters"].([]any)) == 2
	})
	p.mu.Lock()
	p.refuse = false
	p.mu.Unlock()
	if r := e.must(202, 0, "POST", "/v1/dead-letters/replay", admin, map[string]any{"connection": conn}); r["replayed"] != float64(2) {
		t.Fatalf("replay by connection: %v", r)
	}
	waitUntil(t, "the replayed events", func() bool { return len(p.types(conn)) == 3 })
	if got := p.types(conn); !slices.Equal(got, []string{"connection.connected", "connection.revoked", "connection.deleted"}) {
		t.Fatalf("events after replays: %v", got)
	}
	got := e.must(200, 0, "GET", "/v1/event-endpoint", admin, nil)
	if _, shown := got["secret"]; shown || got["url"] != p.srv.URL+"/events" {
		t.Fatalf("GET /v1/event-endpoint: %v", got)
	}
	e.must(204, 0, "DELETE", "/v1/event-endpoint", admin, nil)
	e.must(404, 0, "GET", "/v1/event-endpoint", admin, nil)
}

// TestEventsTenantIsolation: globex's admin key (every scope) cannot read,
// replay or learn of acme's events, dead letters or endpoint: each answer
// is the one for an id that does not exist.
func TestEventsTenantIsolation(t *testing.T) {
	backends(t, func(t *testing.T, spec func(*testing.T) string) {
		e := newEnv(t, spec(t), envOptions{})
		p := newPlatform(t)
		e.setEndpoint("acme", p)
		p.refuse = true
		e.startWorkers()
		admin, g := e.keys["acme:admin"], e.keys["globex:admin"]
		cl := e.oauthClient("acme")
		conn := e.connection("acme", cl)
		e.authorize("acme", conn, 0, 0)
		var id string
		waitUntil(t, "a dead letter", func() bool {
			dead := e.must(200, 0, "GET", "/v1/dead-letters", admin, nil)["dead_letters"].([]any)
			if len(dead) == 1 {
				id = dead[0].(map[string]any)["id"].(string)
			}
			return id != ""
		})
		const none = "evt_00000000000000000000000000000000"
		for _, rt := range []struct{ method, path string }{
			{"GET", "/v1/events/{id}"},
			{"POST", "/v1/dead-letters/{id}/replay"},
		} {
			theirs := e.call(0, rt.method, strings.ReplaceAll(rt.path, "{id}", id), g, nil)
			unknown := e.call(0, rt.method, strings.ReplaceAll(rt.path, "{id}", none), g, nil)
			if theirs.status != 404 || unknown.status != 404 ||
				strings.ReplaceAll(string(theirs.body), id, "ID") != strings.ReplaceAll(string(unknown.body), none, "ID") {
				t.Errorf("%s %s: acme's answers %d %s; none answers %d %s", rt.method, rt.path, theirs.status, theirs.body, unknown.status, unknown.body)
			}
		}
		theirs := e.call(0, "POST", "/v1/dead-letters/replay", g, map[string]any{"connection": conn})
		unknown := e.call(0, "POST", "/v1/dead-letters/replay", g, map[string]any{"connection": "con_00000000000000000000000000000000"})
		if theirs.status != 404 || unknown.status != 404 {
			t.Errorf("replaying acme's connection as globex: %d, unknown %d", theirs.status, unknown.status)
		}
		for _, path := range []string{"/v1/events", "/v1/dead-letters", "/v1/events?connection=" + conn, "/v1/dead-letters?connection=" + conn} {
			r := e.must(200, 0, "GET", path, g, nil)
			if s := string(mustJSON(r)); strings.Contains(s, conn) || strings.Contains(s, id) {
				t.Errorf("GET %s as globex shows acme's events: %s", path, s)
			}
		}
		for _, rt := range []struct{ method, path string }{
			{"GET", "/v1/event-endpoint"}, {"DELETE", "/v1/event-endpoint"}, {"POST", "/v1/event-endpoint/rotate-secret"},
		} {
			if r := e.call(0, rt.method, rt.path, g, nil); r.status != 404 || strings.Contains(string(r.body), p.srv.URL) {
				t.Errorf("%s %s as globex: %d %s", rt.method, rt.path, r.status, r.body)
			}
		}
		// acme's endpoint, secret and dead letter are as they were.
		if got := e.must(200, 0, "GET", "/v1/event-endpoint", admin, nil); got["url"] != p.srv.URL+"/events" {
			t.Fatalf("acme's endpoint after globex's attempts: %v", got)
		}
		if d := e.must(200, 0, "GET", "/v1/dead-letters", admin, nil)["dead_letters"].([]any); len(d) != 1 {
			t.Fatalf("acme's dead letters after globex's replay attempts: %v", d)
		}
	})
}

// TestEventsBadInput: each malformed request to the event routes gets the
// right status and a problem naming the field, and nothing is written.
func TestEventsBadInput(t *testing.T) {
	e := newEnv(t, t.TempDir()+"/connector.db", envOptions{})
	admin := e.keys["acme:admin"]
	cases := []struct {
		name, method, path, key, body string
		status                        int
		field                         string
	}{
		{"no key", "GET", "/v1/events", "", "", 401, "Authorization"},
		{"not admin", "GET", "/v1/events", e.keys["acme:connections:read"], "", 403, "Authorization"},
		{"not admin endpoint", "PUT", "/v1/event-endpoint", e.keys["acme:connections:write"], `{"url":"https://93.184.215.14/x"}`, 403, "Authorization"},
		{"no url", "PUT", "/v1/event-endpoint", admin, `{}`, 422, "url"},
		{"url of wrong type", "PUT", "/v1/event-endpoint", admin, `{"url":7}`, 400, "url"},
		{"unknown field", "PUT", "/v1/event-endpoint", admin, `{"url":"https://93.184.215.14/x","token":"mine"}`, 400, "token"},
		{"malformed JSON", "PUT", "/v1/event-endpoint", admin, `{"url":`, 400, ""},
		{"oversized", "PUT", "/v1/event-endpoint", admin, `{"url":"https://93.184.215.14/` + strings.Repeat("x", 2<<20) + `"}`, 413, ""},
		{"http off loopback", "PUT", "/v1/event-endpoint", admin, `{"url":"http://93.184.215.14/x"}`, 422, "url"},
		{"ftp", "PUT", "/v1/event-endpoint", admin, `{"url":"ftp://93.184.215.14/x"}`, 422, "url"},
		{"relative", "PUT", "/v1/event-endpoint", admin, `{"url":"/events"}`, 422, "url"},
		{"credentials", "PUT", "/v1/event-endpoint", admin, `{"url":"https://u:p@93.184.215.14/x"}`, 422, "url"},
		{"too long", "PUT", "/v1/event-endpoint", admin, `{"url":"https://93.184.215.14/` + strings.Repeat("x", 3000) + `"}`, 422, "url"},
		{"no endpoint to rotate", "POST", "/v1/event-endpoint/rotate-secret", admin, "", 404, ""},
		{"no endpoint to get", "GET", "/v1/event-endpoint", admin, "", 404, ""},
		{"rotate with an unknown field", "POST", "/v1/event-endpoint/rotate-secret", admin, `{"grace":"1h"}`, 400, "grace"},
		{"bad limit", "GET", "/v1/events?limit=500", admin, "", 400, "limit"},
		{"bad cursor", "GET", "/v1/events?cursor=nope", admin, "", 400, "cursor"},
		{"bad status", "GET", "/v1/events?status=lost", admin, "", 400, "status"},
		{"unknown parameter", "GET", "/v1/events?tenant=globex", admin, "", 400, "tenant"},
		{"status on dead letters", "GET", "/v1/dead-letters?status=pending", admin, "", 400, "status"},
		{"unknown event", "GET", "/v1/events/evt_nope", admin, "", 404, "id"},
		{"unknown dead letter", "POST", "/v1/dead-letters/evt_nope/replay", admin, "", 404, "id"},
		{"replay without connection", "POST", "/v1/dead-letters/replay", admin, `{}`, 422, "connection"},
		{"replay unknown field", "POST", "/v1/dead-letters/replay", admin, `{"connection":"con_x","all":true}`, 400, "all"},
		{"replay, none dead", "POST", "/v1/dead-letters/replay", admin, `{"connection":"con_x"}`, 404, "connection"},
	}
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
	if _, err := e.replicas[0].storage.State.Endpoint(context.Background(), "acme"); err == nil {
		t.Fatal("a refused request stored an endpoint")
	}
}
