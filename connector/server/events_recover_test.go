package server_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/server/state"
)

// TestRecoveredOutsideTheScheduler: a connection whose refreshes were
// failing, and whose next refresh succeeds inside a call to the token
// endpoint, or inside a proxied call (the provider answered 401 and the
// engine refreshed and replayed), emits connection.refreshed (previous
// status failing), once per recovery: the refreshes and calls after it emit
// nothing, and neither does an authorization's token write.
func TestRecoveredOutsideTheScheduler(t *testing.T) {
	backends(t, func(t *testing.T, spec func(*testing.T) string) {
		e := newEnv(t, spec(t), envOptions{})
		ctx := context.Background()
		db := e.replicas[0].storage.State
		conn := e.connection("acme", e.oauthClient("acme"))
		e.authorize("acme", conn, 0, 0)
		write, tokenKey, proxy := e.keys["acme:connections:write"], e.keys["acme:token"], e.keys["acme:proxy"]
		fail := func() {
			t.Helper()
			e.emu.FailTokenRequests(1000, 503) // past the engine's own retries
			if r := e.call(0, "POST", "/v1/connections/"+conn+"/refresh", write, nil); r.status/100 == 2 {
				t.Fatalf("a refresh against a failing provider: %d", r.status)
			}
			e.emu.FailTokenRequests(0, 0)
			if _, reason, err := db.RefreshFailure(ctx, "acme", conn); err != nil || reason == "" {
				t.Fatalf("the failed refresh was not recorded: %q %v", reason, err)
			}
		}
		types := func() []string {
			t.Helper()
			page, _, err := db.ListEvents(ctx, "acme", conn, state.EventFilter{})
			if err != nil {
				t.Fatal(err)
			}
			var ts []string
			for _, ev := range slices.Backward(page) {
				ts = append(ts, ev.Type)
				if ev.Type == state.TypeRefreshed {
					var d map[string]string
					if err := json.Unmarshal(ev.Data, &d); err != nil || d["previous_status"] != state.StatusFailing {
						t.Fatalf("connection.refreshed data %s", ev.Data)
					}
				}
			}
			return ts
		}

		// Through the token endpoint: the stored token has expired, and the
		// engine is rebuilt (a new connection version), so that it reads it.
		fail()
		before, err := e.replicas[0].storage.Tokens.Get(ctx, conn)
		if err != nil {
			t.Fatal(err)
		}
		before.Token.Expiry = time.Now().Add(-time.Minute)
		if _, err := e.replicas[0].storage.Tokens.Put(ctx, before); err != nil {
			t.Fatal(err)
		}
		if err := db.TouchConnection(ctx, conn); err != nil {
			t.Fatal(err)
		}
		tok := e.must(200, 0, "POST", "/v1/connections/"+conn+"/token", tokenKey, nil)
		if tok["access_token"] == before.Token.AccessToken {
			t.Fatal("the token endpoint handed out the expired token: no refresh happened")
		}
		e.must(200, 0, "POST", "/v1/connections/"+conn+"/token", tokenKey, nil)
		if got, want := types(), []string{state.TypeConnected, state.TypeRefreshed}; !slices.Equal(got, want) {
			t.Fatalf("after recovering through the token endpoint: %v, want %v", got, want)
		}
		if _, reason, _ := db.RefreshFailure(ctx, "acme", conn); reason != "" {
			t.Fatalf("still failing after the recovery: %q", reason)
		}

		// Through a proxied call.
		fail()
		refreshes := e.emu.Stats().Refreshes
		e.emu.ExpireAccessTokens(1)
		e.must(200, 0, "GET", "/v1/connections/"+conn+"/proxy/rest/v1.0/me", proxy, nil)
		if e.emu.Stats().Refreshes != refreshes+1 {
			t.Fatalf("the proxied call did not refresh: %d refreshes, want %d", e.emu.Stats().Refreshes, refreshes+1)
		}
		e.must(200, 0, "GET", "/v1/connections/"+conn+"/proxy/rest/v1.0/me", proxy, nil)
		e.must(200, 0, "POST", "/v1/connections/"+conn+"/refresh", write, nil) // healthy: no event
		want := []string{state.TypeConnected, state.TypeRefreshed, state.TypeRefreshed}
		if got := types(); !slices.Equal(got, want) {
			t.Fatalf("after recovering through the proxy: %v, want %v", got, want)
		}

		// A re-authorization after failing emits connected, not refreshed.
		fail()
		e.authorize("acme", conn, 0, 0)
		if got := types(); !slices.Equal(got, append(want, state.TypeConnected)) {
			t.Fatalf("after re-authorizing a failing connection: %v, want %v", got, append(want, state.TypeConnected))
		}
	})
}
