package server_test

import (
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/definitions"
)

// TestAuthorizePushed: a definition with par_uri, through the API against
// the emulator's pushed authorization endpoint. POST .../authorize pushes
// the request and says when its link expires (link_expires, within the
// provider's expires_in of now), the link carries only client_id and
// request_uri, and the callback completes on the session as usual.
func TestAuthorizePushed(t *testing.T) {
	set, err := definitions.Parse(definitions.Builtin(), definitions.File{Path: "procore-par.yaml", Data: []byte(`name: procore-par
extends: procore
auth:
  oauth:
    par_uri: ${LoginUrl}/oauth/par
`)})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, t.TempDir()+"/connector.db", envOptions{definitions: set})
	c := e.must(201, 0, "POST", "/v1/oauth-clients", e.keys["acme:admin"], map[string]any{
		"definition": "procore-par", "client_id": emuClientID, "client_secret": emuSecret,
		"base_url": e.emuURL, "login_url": e.emuURL,
	})
	conn := e.connection("acme", c["id"].(string))
	before := time.Now()
	a := e.must(201, 0, "POST", "/v1/connections/"+conn+"/authorize", e.keys["acme:connections:write"], nil)
	link, _ := a["link_expires"].(string)
	expires, err := time.Parse(time.RFC3339Nano, link)
	if err != nil {
		t.Fatalf("the answer's link_expires %q: %v (answer %v)", link, err, a)
	}
	// The emulator's pushed requests live a minute (emulator.Config.PARLifetime).
	if expires.Before(before) || expires.After(time.Now().Add(time.Minute+time.Second)) {
		t.Errorf("link_expires %s is not within a minute of the push at %s", expires, before)
	}
	u := a["authorization_url"].(string)
	if !strings.Contains(u, "request_uri=") || strings.Contains(u, "redirect_uri=") || strings.Contains(u, "code_challenge=") {
		t.Errorf("the pushed request's link carries more than client_id and request_uri: %s", u)
	}
	cb := e.consent(u, "allow")
	if page := e.browse(0, cb); page.status != 200 || !strings.Contains(string(page.body), "Connected") {
		t.Fatalf("callback: %d %s", page.status, page.body)
	}
	if st := e.emu.Stats(); st.PushedRequests != 1 {
		t.Errorf("the emulator saw %d pushed requests; want 1", st.PushedRequests)
	}
}
