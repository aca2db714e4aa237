package main

import (
	"strings"
	"testing"
)

// render --request prints the whole token request, standard parameters
// added, secrets as ***; every unknown placeholder of a template is named.
func TestRenderRequest(t *testing.T) {
	code, out, errOut := runCLI(t, "render", "procore", "token_request_uri", "--request", "--set", "ClientId=abc", "--set", "ClientSecret=topsecret", "--set", "code=thecode", "--set", "RedirectUri=http://127.0.0.1:8765/cb")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"POST https://login.procore.com/oauth/token\n", "Content-Type: application/x-www-form-urlencoded\n", "client_secret=***", "code=***", "grant_type=authorization_code"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "topsecret") || strings.Contains(out, "thecode") {
		t.Errorf("a secret shows:\n%s", out)
	}
	code, _, errOut = runCLI(t, "render", "procore", "${BaseUrl}/x/${nope}/${nada}")
	if code != 1 || !strings.Contains(errOut, "2 unknown placeholders: ${nope}, ${nada}") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

// render --request of a private_key_jwt client shows the assertion it signs
// (type and ***), not a client secret, even when one is given.
func TestRenderRequestPrivateKeyJWT(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "kj.yaml", `name: kj
title: KJ
base_url: https://api.kj.test
fields:
  PrivateKey: {secret: true, required: true}
auth:
  scheme: oauth_client
  oauth:
    version: V2
    token_request_uri: https://auth.kj.test/token
    token_request: {client_auth: private_key_jwt}
    assertion:
      private_key: ${PrivateKey}
`)
	code, out, errOut := runCLI(t, "render", "--definitions", dir, "kj", "token_request_uri", "--request", "--set", "ClientId=abc", "--set", "ClientSecret=topsecret", "--set", "PrivateKey=KEYPEM")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := "client_assertion=***&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_id=abc&grant_type=client_credentials\n"
	if !strings.HasSuffix(out, want) {
		t.Errorf("output:\n%s\nwant it to end in %s", out, want)
	}
	if strings.Contains(out, "client_secret") || strings.Contains(out, "topsecret") || strings.Contains(out, "KEYPEM") {
		t.Errorf("a secret shows:\n%s", out)
	}
}
