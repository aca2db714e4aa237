package server_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// With an engine cache far smaller than the connections in use, engines
// are evicted all the time, also while a request of another worker is
// using them, and rebuilt from the store on the next use. Tokens expire
// every couple of seconds, so refreshes happen on evicted and rebuilt
// engines alike: every call still works, no refresh token is presented
// twice (the emulator would revoke the grant) and none is lost (each
// connection still refreshes at the end).
func TestEngineCacheEviction(t *testing.T) {
	backends(t, func(t *testing.T, spec func(t *testing.T) string) {
		e := newEnv(t, spec(t), envOptions{engineCache: 2, tokenLifetime: 3 * time.Second, margin: time.Second})
		cl := e.oauthClient("acme")
		conns := make([]string, 6)
		for i := range conns {
			conns[i] = e.connection("acme", cl)
			e.authorize("acme", conns[i], 0, 0)
		}
		var calls, failed atomic.Int64
		var wg sync.WaitGroup
		stop := time.Now().Add(8 * time.Second) // a few token lifetimes
		for w := range 4 {
			wg.Go(func() {
				for i := w; time.Now().Before(stop); i++ {
					r := e.call(0, "GET", "/v1/connections/"+conns[i%len(conns)]+"/proxy/rest/v1.0/me", e.keys["acme:proxy"], nil)
					calls.Add(1)
					if r.status != 200 {
						failed.Add(1)
						t.Errorf("call %d through connection %d: %d %s", i, i%len(conns), r.status, r.body)
					}
				}
			})
		}
		wg.Wait()
		st := e.emu.Stats()
		if st.GrantRevocations != 0 {
			t.Fatalf("%d grants revoked: a refresh token was presented twice", st.GrantRevocations)
		}
		if st.Refreshes == 0 {
			t.Fatalf("no refresh in %d calls over tokens of 3 s: the test did not exercise refreshes", calls.Load())
		}
		for _, c := range conns { // every connection's latest refresh token was kept
			e.must(200, 0, "POST", "/v1/connections/"+c+"/refresh", e.keys["acme:connections:write"], nil)
		}
		if st := e.emu.Stats(); st.GrantRevocations != 0 {
			t.Fatalf("%d grants revoked after the final refreshes", st.GrantRevocations)
		}
		t.Logf("%d calls (%d failed), %d refreshes, over %d connections with 2 engines cached", calls.Load(), failed.Load(), st.Refreshes, len(conns))
	})
}
