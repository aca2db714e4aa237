package server_test

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/server/state"
	"github.com/connector-engine/connector/definitions"
)

// learnedHeader is procore with a value learned from every token response
// (the emulator's created_at, which moves each second) sent as a header on
// API requests, so that the header shows which learned value an engine
// holds.
const learnedHeader = `name: procore-learned
title: Procore with a learned value
extends: procore
fields:
  IssuedAt:
    title: Issued at
    type: integer
    learn: {from: token_response, path: created_at}
request:
  headers:
    X-Issued-At: ${IssuedAt}
`

// TestLearnedValuesReachCachedEngines: when a refresh on one replica
// learns a new value, every replica's cached engine uses it from then on
// (on SQLite at the next request, on PostgreSQL once the notification
// arrives, bounded by twice state.MaxStaleness as a failure check), not
// only once the connection changes otherwise.
func TestLearnedValuesReachCachedEngines(t *testing.T) {
	set, err := definitions.Parse(definitions.Builtin(), definitions.File{Path: "learned.yaml", Data: []byte(learnedHeader)})
	if err != nil {
		t.Fatal(err)
	}
	backends(t, func(t *testing.T, spec func(t *testing.T) string) {
		e := newEnv(t, spec(t), envOptions{replicas: 2, definitions: set})
		sqlite := e.replicas[0].storage.State.Kind() == state.SQLite
		// The API goes through a recorder of the header, to the emulator.
		emu, _ := url.Parse(e.emuURL)
		var mu sync.Mutex
		seen := ""
		rp := httputil.NewSingleHostReverseProxy(emu)
		rec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen = r.Header.Get("X-Issued-At")
			mu.Unlock()
			rp.ServeHTTP(w, r)
		}))
		defer rec.Close()
		cl := e.must(201, 0, "POST", "/v1/oauth-clients", e.keys["acme:admin"], map[string]any{
			"definition": "procore-learned", "client_id": emuClientID, "client_secret": emuSecret,
			"base_url": rec.URL, "login_url": e.emuURL,
		})
		conn := e.connection("acme", cl["id"].(string))
		e.authorize("acme", conn, 0, 0)
		sent := func(i int) string {
			t.Helper()
			e.must(200, i, "GET", "/v1/connections/"+conn+"/proxy/rest/v1.0/me", e.keys["acme:proxy"], nil)
			mu.Lock()
			defer mu.Unlock()
			return seen
		}
		first := sent(0)
		if first == "" || sent(1) != first {
			t.Fatalf("the learned header is %q on replica 0, want it on both", first)
		}
		// A refresh a second later learns another created_at.
		time.Sleep(1100 * time.Millisecond)
		e.must(200, 1, "POST", "/v1/connections/"+conn+"/refresh", e.keys["acme:connections:write"], nil)
		if got := sent(1); got == first || got == "" {
			t.Fatalf("replica 1 refreshed and still sends %q", got)
		}
		now := sent(1)
		deadline := time.Now().Add(2 * state.MaxStaleness)
		for {
			got := sent(0)
			if got == now {
				break
			}
			if sqlite || time.Now().After(deadline) {
				t.Fatalf("replica 0 sends the learned value %q after replica 1 learned %q (it had %q)", got, now, first)
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}
