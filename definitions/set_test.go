package definitions_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/connector-engine/connector/definitions"
)

func TestBuiltinProcore(t *testing.T) {
	set := definitions.Builtin()
	if w := set.Warnings(); len(w) > 0 {
		t.Errorf("built-in definitions warn: %v", w)
	}
	cases := []struct {
		name    string
		scheme  definitions.Scheme
		version string
		grant   definitions.GrantType
		refresh bool
	}{
		{"procore", definitions.SchemeOAuth, "V2", definitions.GrantAuthorizationCode, true},
		{"procore-client-credentials", definitions.SchemeOAuthClient, "V2", definitions.GrantClientCredentials, false},
		{"procore-v1", definitions.SchemeOAuth, "V1", definitions.GrantAuthorizationCode, false},
	}
	hosts := map[string][2]string{
		"production": {"https://api.procore.com", "https://login.procore.com"},
		"sandbox":    {"https://sandbox.procore.com", "https://login-sandbox.procore.com"},
		"monthly":    {"https://api-monthly.procore.com", "https://login-sandbox-monthly.procore.com"},
	}
	for _, c := range cases {
		d, err := set.Lookup(c.name)
		if err != nil {
			t.Fatal(err)
		}
		o := d.Auth.OAuth
		if d.Auth.Scheme != c.scheme || o.Version != c.version || o.GrantType != c.grant || (o.RefreshURI != nil) != c.refresh {
			t.Errorf("%s: scheme %s version %s grant %s refresh %v", c.name, d.Auth.Scheme, o.Version, o.GrantType, o.RefreshURI != nil)
		}
		if d.DefaultEnvironment != "production" || len(d.Environments) != 3 {
			t.Errorf("%s: environments %v default %s", c.name, d.Environments, d.DefaultEnvironment)
		}
		for env, h := range hosts {
			vals, err := d.Values(env, map[string]string{"CompanyId": "562949953421312"})
			if err != nil {
				t.Fatalf("%s %s: %v", c.name, env, err)
			}
			if vals[definitions.VarBaseURL] != h[0] || vals[definitions.VarLoginURL] != h[1] {
				t.Errorf("%s %s: hosts %s %s", c.name, env, vals[definitions.VarBaseURL], vals[definitions.VarLoginURL])
			}
		}
		if len(d.Headers) != 1 || d.Headers[0].Name != "Procore-Company-Id" {
			t.Errorf("%s: headers %v", c.name, d.Headers)
		}
		if f, ok := d.Field("companyid"); !ok || f.Required != (c.name == "procore-client-credentials") {
			t.Errorf("%s: CompanyId field %+v", c.name, f)
		}
	}
}

func TestExtends(t *testing.T) {
	base := file("base.yaml", minimal+`environments:
  production: {base_url: 'https://api.acme.test', login_url: 'https://auth.acme.test'}
  sandbox: {base_url: 'https://sandbox.acme.test', login_url: 'https://auth-sandbox.acme.test'}
fields:
  Tenant: {required: true}
`)
	child := file("child.yaml", `name: acme-cc
extends: acme
title: Acme service account
auth:
  scheme: oauth_client
  oauth:
    initiate_uri: null
    token_request_uri: ${LoginUrl}/token
fields:
  Tenant: {required: false}
`)
	set, diags := parse(t, base, child)
	if set == nil {
		t.Fatalf("invalid:\n%s", joinDiags(diags))
	}
	d, _ := set.Get("acme-cc")
	if d.Title != "Acme service account" || d.Auth.OAuth.InitiateURI != nil || d.GrantType() != definitions.GrantClientCredentials {
		t.Errorf("override not applied: %+v", d.Auth.OAuth)
	}
	if len(d.Environments) != 2 || d.Extends != "acme" || d.Source != "child.yaml" {
		t.Errorf("inherited environments %v extends %q source %q", d.Environments, d.Extends, d.Source)
	}
	if f, _ := d.Field("Tenant"); f.Required {
		t.Errorf("field override lost")
	}
	if _, err := d.Values("sandbox", nil); err != nil {
		t.Errorf("Values: %v", err)
	}

	// A definition of the same name as a built-in replaces it.
	over := file("procore.yaml", strings.Replace(minimal, "name: acme", "name: procore", 1))
	set, diags = parse(t, over)
	if set == nil {
		t.Fatalf("invalid:\n%s", joinDiags(diags))
	}
	if d, _ := set.Get("procore"); d.Title != "Acme" {
		t.Errorf("built-in not overridden")
	}
	// ... and definitions extending it still see the built-in tree they were made from.
	if d, _ := set.Get("procore-v1"); d == nil || !strings.HasPrefix(d.Title, "Procore V1") {
		t.Errorf("other built-ins lost")
	}
}

func TestSetErrors(t *testing.T) {
	rows := []struct {
		name  string
		files []definitions.File
		want  string
	}{
		{"duplicate names", []definitions.File{file("a.yaml", minimal), file("b.yaml", minimal)},
			`b.yaml:1:1: name: the definition name "acme" is already used by a.yaml:1; names must be unique`},
		{"cycle", []definitions.File{
			file("a.yaml", "name: a\nextends: b\n"), file("b.yaml", "name: b\nextends: a\n")},
			`forms a cycle; a definition cannot (indirectly) extend itself`},
		{"parent invalid", []definitions.File{
			file("a.yaml", strings.Replace(minimal, "version: V2", "version: V9", 1)), file("b.yaml", "name: b\nextends: acme\n")},
			`b.yaml:2:1: extends: extends "acme", which is invalid; fix it first`},
		{"child completes nothing", []definitions.File{file("c.yaml", "name: c\nextends: procore\nauth: {scheme: nonsense}\n")},
			`c.yaml:3:16: auth.scheme: must be one of`},
		{"child breaks the merged whole", []definitions.File{file("c.yaml", "name: c\nextends: procore\nauth: {oauth: {version: V1}}\n")},
			`auth.oauth: missing authorize_uri`},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			set, diags := parse(t, r.files...)
			if set != nil {
				t.Fatalf("accepted")
			}
			if !strings.Contains(joinDiags(diags), r.want) {
				t.Errorf("want %q in:\n%s", r.want, joinDiags(diags))
			}
		})
	}
}

func TestValues(t *testing.T) {
	set, diags := parse(t, file("x.yaml", minimal+`fields:
  CompanyId: {type: integer, required: true}
  Region: {default: eu, pattern: 'eu|us'}
  ApiKey: {secret: true, pattern: '[a-z]+'}
`))
	if set == nil {
		t.Fatal(joinDiags(diags))
	}
	d, _ := set.Get("acme")
	rows := []struct {
		assign map[string]string
		want   string // error substring, "" for success
	}{
		{map[string]string{"companyid": "12"}, ""},
		{map[string]string{}, "needs a value for CompanyId"},
		{map[string]string{"CompanyId": "x"}, `field CompanyId: "x" is not a whole number`},
		{map[string]string{"CompanyId": "1", "Region": "asia"}, `"asia" does not match the pattern eu|us`},
		{map[string]string{"CompanyId": "1", "ApiKey": "S3CRET-VALUE"}, "field ApiKey: (secret) does not match"},
		{map[string]string{"CompanyId": "1", "Regoin": "eu"}, `did you mean "Region"?`},
		{map[string]string{"CompanyId": "1", "BaseUrl": "https://evil.test"}, "comes from the environment"},
	}
	for _, r := range rows {
		t.Run(fmt.Sprint(r.assign), func(t *testing.T) {
			vals, err := d.Values("", r.assign)
			if r.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if vals[definitions.VarBaseURL] != "https://api.acme.test" {
					t.Errorf("BaseUrl %q", vals[definitions.VarBaseURL])
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), r.want) {
				t.Fatalf("error %v, want %q", err, r.want)
			}
			if strings.Contains(err.Error(), "S3CRET") {
				t.Errorf("secret leaked: %v", err)
			}
		})
	}
	if _, err := d.Environment("staging"); err == nil || !strings.Contains(err.Error(), "choose one of: default") {
		t.Errorf("Environment: %v", err)
	}
}
