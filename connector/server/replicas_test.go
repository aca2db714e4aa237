package server_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/internal/pgtest"
)

// TestTwoReplicas: two servers on one PostgreSQL. The authorization starts
// on replica 0 and its callback lands on replica 1; then a storm of proxied
// calls through both replicas on 1-second tokens. Invariants: every call
// succeeds, no refresh token is ever presented twice at the provider (the
// emulator revokes the grant when one is), and the refreshes happen (at
// least three generations of tokens), each one replacing the last.
func TestTwoReplicas(t *testing.T) {
	e := newEnv(t, pgtest.Shared(t), envOptions{replicas: 2, tokenLifetime: time.Second, margin: 250 * time.Millisecond})
	cl := e.oauthClient("acme")
	conn := e.connection("acme", cl)
	e.authorize("acme", conn, 0, 1)
	for i := range 2 {
		if c := e.must(200, i, "GET", "/v1/connections/"+conn, e.keys["acme:connections:read"], nil); c["status"] != "connected" {
			t.Fatalf("replica %d sees %v", i, c["status"])
		}
	}

	const workers = 8
	var calls, failures atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for w := range 2 * workers {
		wg.Go(func() {
			rep := w % 2
			for !stop.Load() {
				r := e.call(rep, "GET", "/v1/connections/"+conn+"/proxy/rest/v1.0/me", e.keys["acme:proxy"], nil)
				calls.Add(1)
				if r.status != 200 {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, string(r.body))
				}
			}
		})
	}
	// Run until the provider has seen several refreshes (however long the
	// machine takes), with a bound on calls in case refreshes never come.
	for e.emu.Stats().Refreshes < 4 && calls.Load() < 200000 && failures.Load() == 0 {
		time.Sleep(50 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	st := e.emu.Stats()
	t.Logf("%d proxied calls through 2 replicas, %d refreshes at the provider, %d grant revocations, %d API requests (401 replays included)", calls.Load(), st.Refreshes, st.GrantRevocations, st.APIRequests)
	if f := failures.Load(); f != 0 {
		t.Fatalf("%d of %d proxied calls failed; first: %v", f, calls.Load(), firstErr.Load())
	}
	if st.GrantRevocations != 0 {
		t.Fatalf("a refresh token was presented twice: the provider revoked %d grants", st.GrantRevocations)
	}
	if st.Refreshes < 4 {
		t.Fatalf("only %d refreshes in %d calls on 1-second tokens", st.Refreshes, calls.Load())
	}
	// The token endpoint, on either replica, serves the current generation.
	t0 := e.must(200, 0, "POST", "/v1/connections/"+conn+"/token", e.keys["acme:token"], nil)
	t1 := e.must(200, 1, "POST", "/v1/connections/"+conn+"/token", e.keys["acme:token"], nil)
	remember(t0["access_token"].(string), t1["access_token"].(string))
}
