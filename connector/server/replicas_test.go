package server_test

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/internal/pgtest"
)

// A proxied call in a storm on 1-second tokens ends one of three ways.
// What the storms assert are invariants, never speed: on a saturated
// machine a call may come too late (no answer within the client's
// timeout, a replay whose fresh token expired again before it reached the
// provider, a lock wait or request timeout: all answers that say "try
// again"), but none may lose the connection.
type outcome int

const (
	callOK   outcome = iota
	callLate         // too slow a machine: counted and logged, not failed
	callLost         // the invariants forbid it
)

// stormOutcome sorts an answer: 200 is ok; no answer, the provider's own
// 401 (a problem document of ours is never that) and 5xx are late;
// anything else, above all 409 needs-reauthorization, is lost.
func stormOutcome(code int, body string) outcome {
	switch {
	case code == 200:
		return callOK
	case code == 0 || code >= 500,
		code == 401 && !strings.Contains(body, "urn:connector:problem"):
		return callLate
	}
	return callLost
}

// maxRefreshes bounds the refreshes the provider may see in elapsed, one
// per token expiry: a token is refreshed only once it is within the
// margin of its expiry, so successive refreshes are at least
// lifetime-margin apart (a slower machine only spaces them further).
func maxRefreshes(elapsed, lifetime, margin time.Duration) int {
	return int(elapsed/(lifetime-margin)) + 1
}

// TestTwoReplicas: two servers on one PostgreSQL. The authorization starts
// on replica 0 and its callback lands on replica 1; then a storm of proxied
// calls through both replicas on 1-second tokens. Invariants: no call
// loses the connection, no refresh token is ever presented twice at the
// provider (the emulator revokes the grant when one is), at most one
// refresh per token expiry, and the refreshes happen (several generations
// of tokens, each replacing the last); at the end both replicas serve.
func TestTwoReplicas(t *testing.T) {
	const lifetime, margin = time.Second, 250 * time.Millisecond
	e := newEnv(t, pgtest.Shared(t), envOptions{replicas: 2, tokenLifetime: lifetime, margin: margin})
	cl := e.oauthClient("acme")
	conn := e.connection("acme", cl)
	e.authorize("acme", conn, 0, 1)
	for i := range 2 {
		if c := e.must(200, i, "GET", "/v1/connections/"+conn, e.keys["acme:connections:read"], nil); c["status"] != "connected" {
			t.Fatalf("replica %d sees %v", i, c["status"])
		}
	}

	const workers = 8
	key := e.keys["acme:proxy"]
	var calls, late, lost atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	var firstLate, firstLost atomic.Value
	before := e.emu.Stats().Refreshes
	start := time.Now()
	for w := range 2 * workers {
		wg.Go(func() {
			for !stop.Load() {
				code, body := proxyStatus(e.replicas[w%2].url, conn, key)
				calls.Add(1)
				switch stormOutcome(code, body) {
				case callLate:
					late.Add(1)
					firstLate.CompareAndSwap(nil, body)
				case callLost:
					lost.Add(1)
					firstLost.CompareAndSwap(nil, body)
				}
			}
		})
	}
	// Run until the provider has seen several refreshes, however long the
	// machine takes.
	for e.emu.Stats().Refreshes < before+4 && lost.Load() == 0 {
		time.Sleep(50 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(start)
	st := e.emu.Stats()
	t.Logf("%d proxied calls through 2 replicas in %v (%d late on this machine; first: %v), %d refreshes at the provider, %d grant revocations, %d API requests (401 replays included)",
		calls.Load(), elapsed.Round(time.Millisecond), late.Load(), firstLate.Load(), st.Refreshes-before, st.GrantRevocations, st.APIRequests)
	if n := lost.Load(); n != 0 {
		t.Fatalf("%d of %d proxied calls lost the connection; first: %v", n, calls.Load(), firstLost.Load())
	}
	if st.GrantRevocations != 0 {
		t.Fatalf("a refresh token was presented twice: the provider revoked %d grants", st.GrantRevocations)
	}
	if n, most := st.Refreshes-before, maxRefreshes(elapsed, lifetime, margin); n > most {
		t.Fatalf("%d refreshes at the provider in %v, more than one per expiry (at most %d)", n, elapsed, most)
	}
	// Nothing lost: both replicas still serve the connection, and the token
	// endpoint, on either, serves the current generation.
	for i := range 2 {
		serves(t, e.replicas[i].url, conn, key)
	}
	t0 := e.must(200, 0, "POST", "/v1/connections/"+conn+"/token", e.keys["acme:token"], nil)
	t1 := e.must(200, 1, "POST", "/v1/connections/"+conn+"/token", e.keys["acme:token"], nil)
	remember(t0["access_token"].(string), t1["access_token"].(string))
}

// serves asks base for a proxied call of conn until it answers 200, as
// long as its answers are late ones (20 of them at most); a lost one fails
// the test.
func serves(t *testing.T, base, conn, key string) {
	t.Helper()
	for range 20 {
		code, body := proxyStatus(base, conn, key)
		switch stormOutcome(code, body) {
		case callOK:
			return
		case callLost:
			t.Fatalf("%s no longer serves the connection: %d %s", base, code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s answered 20 proxied calls of the connection late", base)
}
