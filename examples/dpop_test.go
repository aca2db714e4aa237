package examples_test

import "testing"

// TestOktaDPoP pins examples/okta-dpop.yaml to Okta's DPoP guide: a public
// native app on the default authorization server, ES256 proofs, the token
// sent as Authorization: DPoP.
func TestOktaDPoP(t *testing.T) {
	d, err := load(t).Lookup("okta-dpop")
	if err != nil {
		t.Fatal(err)
	}
	o := d.Auth.OAuth
	if o.DPoP == nil || o.DPoP.Algorithm != "ES256" || !o.Public || !o.PKCE || !o.SendToken.TypePrefix {
		t.Fatalf("oauth %+v, dpop %+v", o, o.DPoP)
	}
	vals, err := d.Values("production", map[string]string{"OktaDomain": "acme.okta.com", "ApiUrl": "https://api.acme.example"})
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{
		"token_request_uri": "https://acme.okta.com/oauth2/default/v1/token",
		"initiate_uri":      "https://acme.okta.com/oauth2/default/v1/authorize",
	} {
		tmpl, _ := d.URI(key)
		if got, err := tmpl.Expand(vals); err != nil || got != want {
			t.Errorf("%s = %s, %v; want %s", key, got, err, want)
		}
	}
}
