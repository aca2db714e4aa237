// Package examples_test checks the example definitions: that they load on
// top of the built-ins with exactly the intended warnings, that their URIs
// expand to the providers' documented endpoints, and that the loader program
// behaves as its documentation says.
package examples_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/connector-engine/connector/definitions"
)

var exampleNames = []string{
	"adp", "amazon-sp-api", "atlassian-jira-oauth", "box", "business-central-onprem", "datadog", "docusign", "dropbox", "fitbit", "github", "github-device", "github-enterprise-server", "google-drive", "google-service-account", "gusto", "hubspot", "jira-cloud", "keap", "lark", "microsoft-graph", "microsoft-graph-device", "monday", "netsuite", "okta", "okta-dpop", "paypal", "pipedrive", "quickbooks", "ryvit-v1", "sage-accounting", "salesforce", "shopify", "slack", "stripe", "strava", "tableau", "tiktok", "trello", "twilio", "xero", "zabbix", "zendesk", "zoho-crm",
}

func load(t *testing.T) *definitions.Set {
	t.Helper()
	set, err := definitions.Load(".")
	if err != nil {
		var de *definitions.Error
		if errors.As(err, &de) {
			for _, d := range de.Diagnostics {
				t.Log(d)
			}
		}
		t.Fatalf("the examples do not load: %v", err)
	}
	return set
}

func TestExamplesLoad(t *testing.T) {
	set := load(t)
	want := slices.Concat(definitions.Builtin().Names(), exampleNames)
	slices.Sort(want)
	if got := set.Names(); !slices.Equal(got, want) {
		t.Errorf("names = %v, want %v", got, want)
	}

	// ryvit-v1 keeps the App Xchange V1 token URI as written, and that must
	// draw the secret-in-URL warning for each secret in it (the client secret
	// and the code); nothing else may warn.
	// keap and shopify have no PKCE to turn on, and acknowledge the warning.
	ws := set.Warnings()
	if len(ws) != 2 {
		t.Fatalf("got %d warnings, want 2:\n%v", len(ws), ws)
	}
	for i, ph := range []string{"${clientSecret}", "${code}"} {
		w := ws[i]
		if w.File != "ryvit-v1.yaml" || w.Field != "auth.oauth.token_request_uri" || w.Code != "secret-in-token-query" || !strings.Contains(w.Message, ph+" travels in the URL") {
			t.Errorf("unexpected warning: %v", w)
		}
	}
	ack := set.Acknowledged()
	if len(ack) != 2 {
		t.Fatalf("acknowledged = %v, want keap's and shopify's pkce-off", ack)
	}
	for i, file := range []string{"keap.yaml", "shopify.yaml"} {
		if ack[i].File != file || ack[i].Code != "pkce-off" || ack[i].Reason == "" {
			t.Errorf("acknowledged = %v, want keap's and shopify's pkce-off", ack)
		}
	}
}

// TestShapes pins what each example is meant to show.
func TestShapes(t *testing.T) {
	set := load(t)
	tests := []struct {
		name       string
		scheme     definitions.Scheme
		grant      definitions.GrantType
		version    string
		envs       []string
		defaultEnv string
		headers    []string
		params     string // token_request.params
		clientAuth string
		pkce       bool
		extends    string
	}{
		{name: "github", scheme: definitions.SchemeOAuth, grant: definitions.GrantAuthorizationCode, version: "V2",
			envs: []string{"default"}, defaultEnv: "default", headers: []string{"Accept", "X-GitHub-Api-Version"},
			params: "form", clientAuth: "body", pkce: true},
		{name: "github-enterprise-server", scheme: definitions.SchemeOAuth, grant: definitions.GrantAuthorizationCode, version: "V2",
			envs: []string{"default"}, defaultEnv: "default", headers: []string{"Accept"}, // the version header is removed by null
			params: "form", clientAuth: "body", pkce: true, extends: "github"},
		{name: "salesforce", scheme: definitions.SchemeOAuth, grant: definitions.GrantAuthorizationCode, version: "V2",
			envs: []string{"production", "sandbox"}, defaultEnv: "production", headers: []string{"Accept"},
			params: "form", clientAuth: "body", pkce: true},
		{name: "paypal", scheme: definitions.SchemeOAuthClient, grant: definitions.GrantClientCredentials, version: "V2",
			envs: []string{"live", "sandbox"}, defaultEnv: "live", params: "form", clientAuth: "basic"},
		{name: "datadog", scheme: definitions.SchemeAPIKey,
			envs: []string{"us1", "us3", "us5", "eu1", "ap1", "us1-fed"}, defaultEnv: "us1", headers: []string{"DD-APPLICATION-KEY"}},
		{name: "ryvit-v1", scheme: definitions.SchemeOAuth, grant: definitions.GrantAuthorizationCode, version: "V1",
			envs: []string{"default"}, defaultEnv: "default", headers: []string{"X-Application-Key"},
			params: "query", clientAuth: "body", pkce: true},
		{name: "jira-cloud", scheme: definitions.SchemeBasic,
			envs: []string{"default"}, defaultEnv: "default", headers: []string{"Accept"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := set.Lookup(tt.name)
			if err != nil {
				t.Fatal(err)
			}
			if d.Auth.Scheme != tt.scheme || d.GrantType() != tt.grant || d.Extends != tt.extends {
				t.Errorf("scheme, grant, extends = %s, %q, %q; want %s, %q, %q", d.Auth.Scheme, d.GrantType(), d.Extends, tt.scheme, tt.grant, tt.extends)
			}
			var envs []string
			for _, e := range d.Environments {
				envs = append(envs, e.Name)
			}
			if !slices.Equal(envs, tt.envs) || d.DefaultEnvironment != tt.defaultEnv {
				t.Errorf("environments %v (default %s), want %v (default %s)", envs, d.DefaultEnvironment, tt.envs, tt.defaultEnv)
			}
			var headers []string
			for _, h := range d.Headers {
				headers = append(headers, h.Name)
			}
			if !slices.Equal(headers, tt.headers) {
				t.Errorf("headers %v, want %v", headers, tt.headers)
			}
			if o := d.Auth.OAuth; o != nil {
				if o.Version != tt.version || o.TokenRequest.Params != tt.params || o.TokenRequest.ClientAuth != tt.clientAuth || o.PKCE != tt.pkce {
					t.Errorf("version %s, params %s, client_auth %s, pkce %v; want %s, %s, %s, %v",
						o.Version, o.TokenRequest.Params, o.TokenRequest.ClientAuth, o.PKCE, tt.version, tt.params, tt.clientAuth, tt.pkce)
				}
			}
		})
	}
}

// TestExpansions checks that the templates produce the providers' documented
// endpoints, with values escaped for where they stand.
func TestExpansions(t *testing.T) {
	set := load(t)
	oauth := map[string]string{
		"ClientId": "cid", "ClientSecret": "s3cr3t/+", "RedirectUri": "https://platform.example/cb",
		"State": "st", "code": "c0de", "refreshToken": "rt", "CodeVerifier": "ver", "CodeChallenge": "chal",
	}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range oauth {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name, env, key string
		assign         map[string]string
		want           string
	}{
		{"github", "", "base_url", nil, "https://api.github.com"},
		{"github", "", "initiate_uri", with(map[string]string{"Scope": "repo read:org"}),
			"https://github.com/login/oauth/authorize?client_id=cid&redirect_uri=https%3A%2F%2Fplatform.example%2Fcb&scope=repo%20read%3Aorg&state=st"},
		{"github", "", "token_request_uri", oauth,
			"https://github.com/login/oauth/access_token?client_id=cid&client_secret=s3cr3t%2F%2B&code=c0de&redirect_uri=https%3A%2F%2Fplatform.example%2Fcb"},
		{"github-enterprise-server", "", "base_url", map[string]string{"ServerUrl": "https://github.acme.example/"},
			"https://github.acme.example/api/v3"},
		{"github-enterprise-server", "", "initiate_uri", with(map[string]string{"ServerUrl": "https://github.acme.example", "Scope": "repo"}),
			"https://github.acme.example/login/oauth/authorize?client_id=cid&redirect_uri=https%3A%2F%2Fplatform.example%2Fcb&scope=repo&state=st"},
		{"salesforce", "", "base_url", map[string]string{"InstanceUrl": "https://acme.my.salesforce.com"},
			"https://acme.my.salesforce.com/services/data/v60.0"},
		{"salesforce", "sandbox", "base_url", map[string]string{"InstanceUrl": "https://acme--uat.sandbox.my.salesforce.com"},
			"https://acme--uat.sandbox.my.salesforce.com/services/data/v60.0"},
		{"salesforce", "", "initiate_uri", with(map[string]string{"InstanceUrl": "https://acme.my.salesforce.com", "Scope": "api refresh_token"}),
			"https://login.salesforce.com/services/oauth2/authorize?response_type=code&client_id=cid&redirect_uri=https%3A%2F%2Fplatform.example%2Fcb&state=st&scope=api%20refresh_token&code_challenge=chal&code_challenge_method=S256"},
		{"salesforce", "sandbox", "refresh_uri", with(map[string]string{"InstanceUrl": "https://acme--uat.sandbox.my.salesforce.com"}),
			"https://test.salesforce.com/services/oauth2/token?grant_type=refresh_token&client_id=cid&client_secret=s3cr3t%2F%2B&refresh_token=rt"},
		{"salesforce", "sandbox", "revoke_uri", map[string]string{"InstanceUrl": "https://acme--uat.sandbox.my.salesforce.com"},
			"https://acme--uat.sandbox.my.salesforce.com/services/oauth2/revoke"}, // the org's own host, learned
		{"paypal", "", "token_request_uri", nil, "https://api-m.paypal.com/v1/oauth2/token?grant_type=client_credentials"},
		{"paypal", "sandbox", "token_request_uri", nil, "https://api-m.sandbox.paypal.com/v1/oauth2/token?grant_type=client_credentials"},
		{"datadog", "eu1", "base_url", map[string]string{"ApiKey": "k", "ApplicationKey": "a"}, "https://api.datadoghq.eu"},
		{"datadog", "us1-fed", "base_url", map[string]string{"ApiKey": "k", "ApplicationKey": "a"}, "https://api.ddog-gov.com"},
		{"ryvit-v1", "", "base_url", map[string]string{"PartnerApiKey": "pk"}, "https://api.xchange.trimble.com/connect/v1"},
		{"ryvit-v1", "", "authorize_uri", map[string]string{"PartnerApiKey": "pk"}, "https://login.ryvit.com/Connect/Begin"},
		{"ryvit-v1", "", "token_request_uri", with(map[string]string{"PartnerApiKey": "pk"}),
			"https://login.ryvit.com/oauth/token?grant_type=authorization_code&code=c0de&client_id=cid&client_secret=s3cr3t%2F%2B&redirect_uri=https%3A%2F%2Fplatform.example%2Fcb"},
		{"jira-cloud", "", "base_url", map[string]string{"SiteUrl": "https://acme.atlassian.net", "Email": "a@acme.example", "ApiToken": "tok"},
			"https://acme.atlassian.net"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/"+tt.env+"/"+tt.key, func(t *testing.T) {
			d, err := set.Lookup(tt.name)
			if err != nil {
				t.Fatal(err)
			}
			vals, err := d.Values(tt.env, tt.assign)
			if err != nil {
				t.Fatal(err)
			}
			var got string
			if tt.key == "base_url" {
				got = vals[definitions.VarBaseURL]
			} else {
				tmpl, ok := d.URI(tt.key)
				if !ok {
					t.Fatalf("%s has no %s", tt.name, tt.key)
				}
				if got, err = tmpl.Expand(vals); err != nil {
					t.Fatal(err)
				}
				if red := tmpl.Redacted(vals); strings.Contains(red, "s3cr3t") || strings.Contains(red, "c0de") {
					t.Errorf("Redacted shows a secret: %s", red)
				}
			}
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// TestActions checks GitHub's declared calls, inherited by the Enterprise
// Server definition: link pagination, escaped path values, typed bodies.
func TestActions(t *testing.T) {
	set := load(t)
	for _, tt := range []struct{ name, base string }{{"github", ""}, {"github-enterprise-server", "https://github.acme.example"}} {
		d, err := set.Lookup(tt.name)
		if err != nil {
			t.Fatal(err)
		}
		if p := d.Pagination; p == nil || p.Style != definitions.PageLink || p.SizeParam != "per_page" || p.Size != 100 {
			t.Errorf("%s: pagination %+v", tt.name, p)
		}
		if d.RateLimit.ResetHeader != "x-ratelimit-reset" || d.Retry.IdempotencyHeader != "" {
			t.Errorf("%s: rate limit %+v, retry %+v", tt.name, d.RateLimit, d.Retry)
		}
		var assign map[string]string
		if tt.base != "" {
			assign = map[string]string{"ServerUrl": tt.base}
		}
		vals, err := d.Values("", assign)
		if err != nil {
			t.Fatal(err)
		}
		list, err := d.Action("list_issues")
		if err != nil {
			t.Fatal(err)
		}
		r, err := list.Render(vals, map[string]any{"owner": "octo cat", "repo": "../hello", "issue_state": "all"})
		if err != nil || r.Path != "/repos/octo%20cat/..%2Fhello/issues?state=all" || list.Pagination == nil {
			t.Errorf("%s list_issues: %+v %v", tt.name, r, err)
		}
		create, _ := d.Action("create_issue")
		r, err = create.Render(vals, map[string]any{"owner": "o", "repo": "r", "title": "Bug", "labels": []string{"bug"}})
		if err != nil || r.Method != "POST" || string(r.Body) != `{"title":"Bug","labels":["bug"]}` {
			t.Errorf("%s create_issue: %+v %s %v", tt.name, r, r.Body, err)
		}
	}
}

// TestFieldRules checks the anchored patterns and types of the per-tenant
// host fields: a value naming another host must be refused.
func TestFieldRules(t *testing.T) {
	set := load(t)
	tests := []struct {
		name, field, value string
		ok                 bool
	}{
		{"salesforce", "InstanceUrl", "https://acme.my.salesforce.com", true},
		{"salesforce", "InstanceUrl", "https://acme.my.salesforce.com/", true},
		{"salesforce", "InstanceUrl", "https://acme.my.salesforce.com.evil.example", false},
		{"salesforce", "InstanceUrl", "http://acme.my.salesforce.com", false},
		{"salesforce", "InstanceUrl", "acme.my.salesforce.com", false},
		{"jira-cloud", "SiteUrl", "https://acme.atlassian.net", true},
		{"jira-cloud", "SiteUrl", "https://acme.atlassian.net/jira", false},
		{"jira-cloud", "SiteUrl", "https://evil.example/?x=.atlassian.net", false},
		{"jira-cloud", "Email", "admin@acme.example", true},
		{"jira-cloud", "Email", "admin", false},
		{"github-enterprise-server", "ServerUrl", "https://github.acme.example", true},
		{"github-enterprise-server", "ServerUrl", "github.acme.example", false},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/"+tt.value, func(t *testing.T) {
			d, _ := set.Get(tt.name)
			f, ok := d.Field(tt.field)
			if !ok {
				t.Fatalf("%s has no field %s", tt.name, tt.field)
			}
			if msg := f.Check(tt.value); (msg == "") != tt.ok {
				t.Errorf("Check(%q) = %q, want ok=%v", tt.value, msg, tt.ok)
			}
		})
	}
}

// buildLoader compiles the loader program once per test run.
func buildLoader(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH; cannot build the loader")
	}
	bin := filepath.Join(t.TempDir(), "loader")
	out, err := exec.Command(goTool, "build", "-o", bin, "./loader").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./loader: %v\n%s", err, out)
	}
	return bin
}

func runLoader(t *testing.T, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

func TestLoaderProgram(t *testing.T) {
	bin := buildLoader(t)

	broken := t.TempDir()
	if err := os.WriteFile(filepath.Join(broken, "bad.yaml"), []byte("name: bad\ntitle: Bad\nbase_url: https://api.example.com\nauth:\n  scheme: oauth\n  oauth:\n    version: V2\n    initiate_uri: https://example.com/authorize?code=${code}\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		args      []string
		code      int
		stdout    []string // substrings, in order
		stderr    []string
		notStdout []string
	}{
		{
			name: "examples",
			args: []string{"."},
			stdout: []string{
				"NAME", "datadog", "apikey", "us1*,us3,us5,eu1,ap1,us1-fed",
				"github ", "oauth", "authorization_code",
				"github-enterprise-server", "(extends github)",
				"paypal", "oauth_client", "client_credentials", "live*,sandbox",
				"procore ", "ryvit-v1", "salesforce", "production*,sandbox",
				"salesforce, environment production",
				"https://login.salesforce.com/services/oauth2/authorize?response_type=code&client_id=sample-client-id&redirect_uri=https%3A%2F%2Fplatform.example%2Foauth%2Fcallback&state=",
				"&scope=api%20refresh_token&code_challenge=",
			},
			stderr: []string{"ryvit-v1.yaml:", "warning: auth.oauth.token_request_uri: ${clientSecret} travels in the URL"},
		},
		{
			name:   "sandbox environment",
			args:   []string{"-env", "sandbox", "."},
			stdout: []string{"salesforce, environment sandbox", "https://test.salesforce.com/services/oauth2/authorize?"},
		},
		{
			name:      "V1 authorize URI",
			args:      []string{"-show", "ryvit-v1", "-set", "PartnerApiKey=partner-key", "."},
			stdout:    []string{"ryvit-v1, environment default", "https://login.ryvit.com/Connect/Begin\n"},
			notStdout: []string{"partner-key"},
		},
		{
			name:   "tenant value refused",
			args:   []string{"-set", "InstanceUrl=https://evil.example", "."},
			code:   1,
			stderr: []string{"field InstanceUrl", "does not match the pattern"},
		},
		{
			name:   "not a code flow",
			args:   []string{"-show", "paypal", "."},
			code:   1,
			stderr: []string{"paypal is not a code flow"},
		},
		{
			name:      "list only",
			args:      []string{"-show", "", "."},
			stdout:    []string{"salesforce"},
			notStdout: []string{"is sent to"},
		},
		{
			name:   "invalid definitions",
			args:   []string{broken},
			code:   1,
			stderr: []string{filepath.Join(broken, "bad.yaml") + ":8:", "${code} has no value in the authorization request", "the definitions are invalid"},
		},
		{name: "no directory", args: nil, code: 2, stderr: []string{"usage: loader"}},
		{name: "missing directory", args: []string{filepath.Join(broken, "nope")}, code: 1, stderr: []string{"cannot read definitions from"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := runLoader(t, bin, tt.args...)
			if code != tt.code {
				t.Fatalf("exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, stdout, stderr)
			}
			inOrder(t, "stdout", stdout, tt.stdout)
			inOrder(t, "stderr", stderr, tt.stderr)
			for _, s := range tt.notStdout {
				if strings.Contains(stdout, s) {
					t.Errorf("stdout contains %q:\n%s", s, stdout)
				}
			}
		})
	}
}

func inOrder(t *testing.T, what, out string, want []string) {
	t.Helper()
	rest := out
	for _, s := range want {
		i := strings.Index(rest, s)
		if i < 0 {
			t.Errorf("%s lacks %q (in this order):\n%s", what, s, out)
			return
		}
		rest = rest[i+len(s):]
	}
}
