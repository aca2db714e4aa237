package examples_test

import (
	"strings"
	"testing"

	"github.com/connector-engine/connector/definitions"
)

// The ADP example presents its client certificate on the token endpoint
// and the API (RFC 8705 mutual TLS, certificate-bound calls), with the id
// and secret in HTTP Basic, and renders a token request without them in
// the body.
func TestMutualTLSExample(t *testing.T) {
	d, err := load(t).Lookup("adp")
	if err != nil {
		t.Fatal(err)
	}
	o := d.Auth.OAuth
	if o.GrantType != definitions.GrantClientCredentials || o.TokenRequest.ClientAuth != definitions.ClientAuthBasic {
		t.Errorf("grant %s, client_auth %s", o.GrantType, o.TokenRequest.ClientAuth)
	}
	cc := o.ClientCertificate
	if cc == nil || !cc.APICalls {
		t.Fatalf("client_certificate %+v; want one presented on API calls", cc)
	}
	if ph := cc.PrivateKey.Placeholders(); len(ph) != 1 || ph[0].Name != "ClientKey" {
		t.Errorf("private_key placeholders %v", ph)
	}
	vals, err := d.Values("", map[string]string{"ClientId": "cid", "ClientSecret": "SECRET-VALUE", "ClientCertificate": "CERT", "ClientKey": "KEY-VALUE"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := d.Preview("", "token_request_uri", vals, false)
	if err != nil {
		t.Fatal(err)
	}
	want := "* TLS client certificate ${ClientCertificate}, presented to the token endpoint and the API: the value is not a PEM certificate\n" +
		"* TLS private key ${ClientKey}: not shown, never sent\n" +
		"POST https://accounts.adp.com/auth/oauth/v2/token\nAccept: application/json\nContent-Type: application/x-www-form-urlencoded\nAuthorization: Basic ***\n\ngrant_type=client_credentials\n"
	if got := p.String(); got != want {
		t.Errorf("render:\n%s\nwant:\n%s", got, want)
	}
	if strings.Contains(p.String(), "KEY-VALUE") || strings.Contains(p.String(), "SECRET-VALUE") {
		t.Errorf("the render shows a secret:\n%s", p)
	}
}
