package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestRenderMessages: what render says when it is asked for something it
// cannot expand, in a golden file: an unknown key lists only the URIs the
// definition has (never one of the format's that it lacks, which would
// fail in turn); an action's name says it is an action and how to see its
// request; every unknown placeholder of a template is named, with the
// known ones written as placeholders; a placeholder the engine fills while
// it runs the flow (the code, the state, ${Random}) is said to be one, not
// a value the user forgot.
func TestRenderMessages(t *testing.T) {
	cases := []struct {
		name string
		args []string
		code int
		out  bool // prints the expansion on stdout
	}{
		{"an unknown key, code flow", []string{"render", "procore", "initiate"}, 2, false},
		{"an unknown key, client credentials", []string{"render", "procore-client-credentials", "token_uri"}, 2, false},
		{"an action's name", []string{"render", "procore", "list_projects"}, 2, false},
		{"unknown placeholders in a template", []string{"render", "procore", "${BaseUrl}/rest/v1.0/projects/${nope}/${nada}"}, 1, false},
		{"one unknown placeholder", []string{"render", "procore", "${BaseUrl}/rest/v1.0/projects/${ProjectID}"}, 1, false},
		{"values made in the flow", []string{"render", "procore", "token_request_uri", "--set", "ClientId=c", "--set", "RedirectUri=http://127.0.0.1:8765/cb"}, 0, true},
		{"a nonce", []string{"render", "procore", "${LoginUrl}/x?nonce=${Random}&s=${State}"}, 0, true},
	}
	var golden strings.Builder
	for _, c := range cases {
		code, out, errOut := cli(t, c.args...)
		if code != c.code || (out != "") != c.out {
			t.Errorf("%s: exit %d (want %d), stdout %q", c.name, code, c.code, out)
		}
		golden.WriteString("# " + c.name + ": connector " + strings.Join(c.args, " ") + "\n" + out + errOut)
	}
	checkGolden(t, filepath.Join("testdata", "render-messages.golden"), golden.String())
	for _, key := range []string{"authorize_uri", "par_uri", "device_authorization_uri", "introspection_uri"} {
		if strings.Contains(golden.String(), key) {
			t.Errorf("render offers %s, which procore does not have:\n%s", key, golden.String())
		}
	}
}
