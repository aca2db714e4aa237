package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const goodDef = `name: acme
title: Acme
base_url: https://api.acme.test
fields:
  ApiKey: {secret: true}
auth:
  scheme: oauth
  oauth:
    version: V2
    initiate_uri: https://auth.acme.test/authorize?client_id=${ClientId}&state=${State}
    token_request_uri: https://auth.acme.test/token?code=${code}&secret=${ClientSecret}&key=${ApiKey}
`

func TestValidateExitCodesAndOutput(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yaml", goodDef)
	bad := writeFile(t, dir, "bad.yaml", "name: bad\ntitel: Bad\n")
	rows := []struct {
		name      string
		args      []string
		code      int
		stdout    string
		stderr    string
		stderrNot string
	}{
		{"builtins", []string{"validate"}, 0, "ok: the built-in definitions valid (3 definitions in the set), 0 warnings", "", ""},
		{"good file", []string{"validate", good}, 0, "ok: 1 file valid (4 definitions in the set, built-ins included)", "", ""},
		{"bad file", []string{"validate", bad}, 1, "", "bad.yaml:2:1: titel: unknown key \"titel\"; did you mean \"title\"?", ""},
		{"bad summary", []string{"validate", bad}, 1, "", "invalid: 4 errors, 0 warnings in 1 file", ""},
		{"directory", []string{"validate", dir}, 1, "", "bad.yaml:1:1: auth: missing required key", ""},
		{"missing path", []string{"validate", filepath.Join(dir, "nope")}, 2, "", "cannot read definitions from", ""},
		{"empty dir", []string{"validate", t.TempDir()}, 2, "", "no *.yaml or *.yml files", ""},
		{"bad format", []string{"validate", "--format", "xml"}, 2, "", "-o must be one of text, json, yaml, not \"xml\"", ""},
		{"unknown flag", []string{"validate", "--nope"}, 2, "", "unknown flag: --nope", ""},
		{"unknown command", []string{"frobnicate"}, 2, "", "unknown command \"frobnicate\"", ""},
		{"definitions table", []string{"definitions"}, 0, "procore-client-credentials  Procore V2 OAuth Client Credentials    oauth_client  V2       client_credentials", "", ""},
		{"definitions with dir", []string{"definitions", "--definitions", good}, 0, "acme ", "", ""},
		{"definitions with bad dir", []string{"definitions", "--definitions", bad}, 1, "", "the definitions given with --definitions are invalid", ""},
		{"definitions args", []string{"definitions", "x"}, 2, "", "unknown command \"x\" for \"connector definitions\"", ""},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			code, out, errs := runCLI(t, r.args...)
			if code != r.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, r.code, out, errs)
			}
			if !strings.Contains(out, r.stdout) {
				t.Errorf("stdout %q lacks %q", out, r.stdout)
			}
			if !strings.Contains(errs, r.stderr) {
				t.Errorf("stderr %q lacks %q", errs, r.stderr)
			}
		})
	}
}

func TestValidateJSON(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "bad.yaml", "name: bad\ntitel: Bad\n")
	code, out, errs := runCLI(t, "validate", "--format", "json", dir)
	if code != 1 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var report struct {
		Valid       bool
		Errors      int
		Diagnostics []struct {
			Severity, File, Field, Message string
			Line, Column                   int
		}
	}
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if report.Valid || report.Errors != 4 || len(report.Diagnostics) != 4 {
		t.Fatalf("report %+v", report)
	}
	d := report.Diagnostics[3]
	if d.Line != 2 || d.Column != 1 || d.Field != "titel" || d.Severity != "error" {
		t.Errorf("diagnostic %+v", d)
	}
	code, out, _ = runCLI(t, "validate", "--format", "json")
	if code != 0 || !strings.Contains(out, `"valid": true`) || !strings.Contains(out, `"diagnostics": []`) {
		t.Errorf("builtins JSON: %d %s", code, out)
	}
}

func TestRenderRedactsSecrets(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yaml", goodDef)
	const secret, code, key = "s3cr&t=x y", "the-code-123", "KEY-abc"
	base := []string{"render", "--definitions", good, "acme", "token_request_uri", "--set", "ClientSecret=" + secret, "--set", "CODE=" + code, "--set", "apikey=" + key}
	exit, out, errs := runCLI(t, base...)
	if exit != 0 {
		t.Fatalf("exit %d: %s", exit, errs)
	}
	want := "https://auth.acme.test/token?code=***&secret=***&key=***\n"
	if out != want {
		t.Errorf("got %q, want %q", out, want)
	}
	for _, s := range []string{secret, code, key, "s3cr"} {
		if strings.Contains(out+errs, s) {
			t.Errorf("secret %q printed", s)
		}
	}
	exit, out, _ = runCLI(t, append(base, "--show-secrets")...)
	if exit != 0 || out != "https://auth.acme.test/token?code=the-code-123&secret=s3cr%26t%3Dx%20y&key=KEY-abc\n" {
		t.Errorf("--show-secrets: %d %q", exit, out)
	}
}

func TestRenderErrors(t *testing.T) {
	rows := []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"render", "procore"}, 2, "accepts 2 arg(s), received 1"},
		{[]string{"render", "procor", "initiate_uri"}, 2, `no connection definition named "procor"; did you mean "procore"?`},
		{[]string{"render", "procore", "initiate"}, 2, "definition procore has no initiate; choose one of base_url, initiate_uri, login_url, refresh_uri, revoke_uri, token_request_uri, or give a template"},
		{[]string{"render", "procore", "refresh_uri", "--env", "staging"}, 1, `definition procore has no environment "staging"; choose one of: production, sandbox, monthly`},
		{[]string{"render", "procore", "refresh_uri", "--set", "CompanyId=abc"}, 1, `field CompanyId: "abc" is not a whole number`},
		{[]string{"render", "procore", "refresh_uri", "--set", "nonsense"}, 2, `--set "nonsense": write Name=value`},
		{[]string{"render", "procore", "refresh_uri", "--set", "ClientSecretIsHere"}, 2, `--set "Clie…": write Name=value`},
		{[]string{"render", "procore", "${BaseUrl}/rest/v1.0/projects/${nope}"}, 1, "unknown placeholder ${nope}"},
	}
	for _, r := range rows {
		t.Run(strings.Join(r.args, " "), func(t *testing.T) {
			code, _, errs := runCLI(t, r.args...)
			if code != r.code || !strings.Contains(errs, r.stderr) {
				t.Errorf("exit %d (want %d), stderr %q lacks %q", code, r.code, errs, r.stderr)
			}
		})
	}
	code, out, _ := runCLI(t, "render", "procore", "${BaseUrl}/rest/v1.0/projects/${CompanyId}", "--set", "CompanyId=42", "--env", "monthly")
	if code != 0 || out != "https://api-monthly.procore.com/rest/v1.0/projects/42\n" {
		t.Errorf("ad-hoc template: %d %q", code, out)
	}
}
