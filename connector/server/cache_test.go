package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/server/state"
)

// TestCachesFollowOtherReplicas: replica 1 caches API keys and connection
// engines; a change made through replica 0 (or another process, as
// `connector serve keys delete` is) takes effect on replica 1. On SQLite
// the next request sees it; on PostgreSQL it is seen once the change's
// notification arrives, within state.MaxStaleness (the wait below is
// bounded by twice that, as a failure, not a speed, check).
func TestCachesFollowOtherReplicas(t *testing.T) {
	backends(t, func(t *testing.T, spec func(t *testing.T) string) {
		e := newEnv(t, spec(t), envOptions{replicas: 2})
		ctx := context.Background()
		db := e.replicas[0].storage.State
		sqlite := db.Kind() == state.SQLite
		cl := e.oauthClient("acme")
		conn := e.connection("acme", cl)
		e.authorize("acme", conn, 0, 1)
		proxyPath := "/v1/connections/" + conn + "/proxy/rest/v1.0/me"

		// eventually asks replica 1 until ok holds: on SQLite the first
		// answer must already be the new one.
		eventually := func(what string, ok func() bool) {
			t.Helper()
			deadline := time.Now().Add(2 * state.MaxStaleness)
			start := time.Now()
			defer func() { t.Logf("%s: followed after %v", what, time.Since(start)) }()
			for !ok() {
				if sqlite || time.Now().After(deadline) {
					t.Fatalf("replica 1 did not follow: %s", what)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}

		// A deleted key.
		key, k, err := db.CreateKey(ctx, "acme", []state.Scope{state.ScopeProxy})
		if err != nil {
			t.Fatal(err)
		}
		remember(key)
		for range 3 { // cached on replica 1
			e.must(200, 1, "GET", proxyPath, key, nil)
		}
		if err := db.DeleteKey(ctx, "acme", k.ID); err != nil {
			t.Fatal(err)
		}
		eventually("a deleted API key still authenticates", func() bool {
			r := e.call(1, "GET", proxyPath, key, nil)
			return r.status == 401 && problemField(t, r) == "Authorization"
		})

		// A rotated client secret: a wrong one makes replica 1's next
		// refresh fail at the provider; the right one again makes it work.
		e.must(200, 1, "POST", "/v1/connections/"+conn+"/refresh", e.keys["acme:connections:write"], nil)
		wrong := "rotated-wrong-secret-0123456789"
		remember(wrong)
		e.must(200, 0, "POST", "/v1/oauth-clients/"+cl+"/rotate-secret", e.keys["acme:admin"], map[string]any{"client_secret": wrong})
		eventually("a refresh still uses the secret rotated away", func() bool {
			r := e.call(1, "POST", "/v1/connections/"+conn+"/refresh", e.keys["acme:connections:write"], nil)
			return r.status == 502 && strings.Contains(string(r.body), "invalid_client")
		})
		e.must(200, 0, "POST", "/v1/oauth-clients/"+cl+"/rotate-secret", e.keys["acme:admin"], map[string]any{"client_secret": emuSecret})
		eventually("a refresh still uses the wrong secret", func() bool {
			return e.call(1, "POST", "/v1/connections/"+conn+"/refresh", e.keys["acme:connections:write"], nil).status == 200
		})
		if st := e.emu.Stats(); st.GrantRevocations != 0 {
			t.Fatalf("%d grants revoked for a reused refresh token", st.GrantRevocations)
		}

		// A deleted connection.
		e.must(200, 1, "GET", proxyPath, e.keys["acme:proxy"], nil)
		e.must(204, 0, "DELETE", "/v1/connections/"+conn, e.keys["acme:connections:write"], nil)
		eventually("a deleted connection still proxies", func() bool {
			r := e.call(1, "GET", proxyPath, e.keys["acme:proxy"], nil)
			return r.status == 404 && problemField(t, r) == "id"
		})
	})
}
