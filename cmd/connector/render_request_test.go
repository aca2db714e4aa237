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
