package connector_test

import (
	"context"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/internal/dpopserver"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/definitions"
)

// The device grant with DPoP: every poll is signed with one key, the one
// the token is then bound to; the token endpoint's nonce challenge comes
// on the first poll. A learn request made right after connecting carries a
// proof too (it reads "as" from the resource's answer, which says how the
// call was accepted).
func TestDPoPDeviceGrantAndLearnRequest(t *testing.T) {
	srv := dpopserver.Start(t, dpopserver.Options{TokenNonce: "as-n", ResourceNonce: "rs-n", RequireDPoP: true})
	src := `name: dpop-device
title: DPoP device grant
environments:
  main:
    base_url: ` + srv.RS + `
    login_url: ` + srv.AS + `
fields:
  Accepted:
    title: How the API accepted the learn request
    learn: {from: request, url: "${BaseUrl}/api", path: as}
auth:
  scheme: oauth
  oauth:
    version: V2
    grant_type: device_code
    client: public
    device_authorization_uri: ${LoginUrl}/device
    token_request_uri: ${LoginUrl}/token
    dpop: {}
`
	set, err := definitions.Parse(nil, definitions.File{Path: "device.yaml", Data: []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	def, _ := set.Get("dpop-device")
	s, err := connector.NewSource(&connector.Connection{Definition: def, ClientID: clientID}, store.NewMemory())
	if err != nil {
		t.Fatal(err)
	}
	waits := 0
	s.Flow().Wait = func(context.Context, time.Duration) error { waits++; return nil } // count, never sleep
	ctx := context.Background()
	da, err := s.Flow().DeviceAuthorize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := s.PollDeviceAndStore(ctx, da)
	if err != nil {
		t.Fatalf("polling: %v (refused %v)", err, srv.Refusals())
	}
	jkt := thumbprintOf(t, tok.DPoPKey)
	polls := srv.DevicePolls()
	if waits != 2 || len(polls) != 2 || polls[0] != jkt || polls[1] != jkt || srv.BoundTo(tok.AccessToken) != jkt {
		t.Errorf("%d waits, polls signed by %v; want two, both by the token's key %s", waits, polls, jkt)
	}
	if tok.Values["Accepted"] != "dpop" {
		t.Errorf("the learn request was accepted as %q, want dpop", tok.Values["Accepted"])
	}
	if st := srv.Stats(); st.TokenChallenges != 1 || st.ResourceChallenges != 1 || len(srv.Refusals()) != 0 {
		t.Errorf("%+v, refused %v", st, srv.Refusals())
	}
}
