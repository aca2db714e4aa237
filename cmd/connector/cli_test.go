package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// Every -o format of the commands that need no connection, and the help,
// against golden files (issue 13 item 5).
func TestOutputFormatsGolden(t *testing.T) {
	var golden strings.Builder
	for _, args := range [][]string{
		{"--help"},
		{"definitions"}, {"definitions", "-o", "json"}, {"definitions", "-o", "ndjson"}, {"definitions", "-o", "yaml"},
		{"actions", "procore", "get_project"}, {"actions", "procore", "get_project", "-o", "json"},
		{"actions", "procore", "get_project", "-o", "ndjson"}, {"actions", "procore", "get_project", "-o", "yaml"},
		{"validate"}, {"validate", "-o", "json"}, {"validate", "-o", "yaml"}, {"validate", "--format", "json"},
		{"render", "procore", "base_url"}, {"render", "procore", "base_url", "-o", "json"}, {"render", "procore", "base_url", "-o", "yaml"},
		{"definitions", "-o", "xml"}, {"token", "-o", "table"}, {"validate", "-o", "ndjson"},
	} {
		code, out, errOut := runCLI(t, args...)
		golden.WriteString("$ connector " + strings.Join(args, " ") + "\n" + out + errOut + "exit " + string(rune('0'+code)) + "\n\n")
	}
	checkGolden(t, filepath.Join("testdata", "output.golden"), golden.String())
}

// Exit statuses: 0 ok, 1 failure, 2 usage (an unknown command too), 4 the
// connection needs authorizing again (issue 13 item 6).
func TestExitCodes(t *testing.T) {
	r := newRig(t, "code", time.Hour)
	bad := writeFile(t, t.TempDir(), "bad.yaml", "name: bad\n")
	for _, c := range []struct {
		name string
		args []string
		code int
	}{
		{"ok", []string{"definitions"}, exitOK},
		{"invalid definition", []string{"validate", bad}, exitFailed},
		{"unknown command", []string{"frobnicate"}, exitUsage},
		{"unknown subcommand argument", []string{"definitions", "x"}, exitUsage},
		{"unknown flag", []string{"definitions", "--nope"}, exitUsage},
		{"bad -o", []string{"connections", "-o", "xml", "--store", r.storePath}, exitUsage},
		{"needs authorizing", r.args("token"), exitReauth},
		{"refresh needs authorizing", r.args("refresh"), exitReauth},
	} {
		t.Run(c.name, func(t *testing.T) {
			if code, _, errOut := cli(t, c.args...); code != c.code {
				t.Errorf("exit %d, want %d; stderr %q", code, c.code, errOut)
			}
		})
	}
}

// CONNECTOR_CONNECTION and CONNECTOR_DEFINITIONS stand in for the flags
// (issue 13 item 7).
func TestEnvironmentVariables(t *testing.T) {
	r := newRig(t, "client", time.Hour)
	t.Setenv(EnvConnection, r.connString)
	if code, out, errOut := cli(t, "connect", "--store", r.storePath, "--key-file", r.keyFile); code != 0 || !strings.HasPrefix(out, "connected ") {
		t.Fatalf("connect with $%s as a connection string: exit %d, %q %q", EnvConnection, code, out, errOut)
	}
	file := writeFile(t, t.TempDir(), "conn.yaml", "definition: procore-client-credentials\nclient_id: "+testClientID+
		"\nclient_secret: "+r.secret+"\nbase_url: "+r.base+"\nlogin_url: "+r.base+"\nfields: {CompanyId: 562949953421312}\n")
	if err := os.Chmod(file, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvConnection, file)
	if code, out, errOut := cli(t, "token", "-o", "json", "--store", r.storePath, "--key-file", r.keyFile); code != 0 || !strings.Contains(out, `"access_token"`) {
		t.Errorf("token with $%s as a file: exit %d, %q", EnvConnection, code, errOut)
	}
	t.Setenv(EnvConnection, "")
	if code, _, errOut := cli(t, "token", "--store", r.storePath); code != exitUsage || !strings.Contains(errOut, "or set $"+EnvConnection) {
		t.Errorf("no connection: exit %d, %q", code, errOut)
	}

	dir := t.TempDir()
	writeFile(t, dir, "x.yaml", hostileDef)
	t.Setenv(EnvDefinitions, dir)
	if code, out, _ := cli(t, "definitions"); code != 0 || !strings.Contains(out, "hostile ") {
		t.Errorf("definitions with $%s: exit %d\n%s", EnvDefinitions, code, out)
	}
}

// Completion loads each definition file once, however it is named, and
// offers definition names, actions, inputs, enum values and -o values
// (issue 13 item 7).
func TestCompletion(t *testing.T) {
	dir := t.TempDir()
	x := writeFile(t, dir, "x.yaml", hostileDef)
	ext := writeFile(t, t.TempDir(), "ext.yaml", "name: hostile2\nextends: hostile\ntitle: H2\n")
	r := newRig(t, "code", time.Hour)
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"definitions dir", []string{"__complete", "--definitions", dir, "actions", ""}, []string{"hostile\tHostile", "procore\t"}},
		{"dir and its file", []string{"__complete", "--definitions", dir, "--definitions", x, "render", ""}, []string{"hostile\tHostile"}},
		{"actions", []string{"__complete", "actions", "procore", ""}, []string{"get_project\t", "list_projects\t"}},
		{"call actions", []string{"__complete", "call", "--connection-string", r.connString, ""}, []string{"list_projects\t"}},
		{"call inputs", []string{"__complete", "call", "--connection-string", r.connString, "get_project", ""}, []string{"id=\tINTEGER, required"}},
		{"call enum", []string{"__complete", "call", "--connection-string", r.connString, "list_projects", "status="}, []string{"status=Active"}},
		{"-o", []string{"__complete", "definitions", "-o", ""}, []string{"table\n", "json\n", "ndjson\n", "yaml\n"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, c.args...)
			if code != 0 || strings.Contains(out, ":1\n") || strings.Contains(errOut, "already used") {
				t.Errorf("exit %d\nstdout %s\nstderr %s", code, out, errOut)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("completion lacks %q:\n%s", w, out)
				}
			}
		})
	}
	// validate PATH honours --definitions like every other command.
	if code, out, errOut := runCLI(t, "validate", "--definitions", dir, ext); code != 0 || !strings.HasPrefix(out, "ok: 1 file valid") {
		t.Errorf("validate with --definitions: exit %d, %s%s", code, out, errOut)
	}
	if code, out, errOut := runCLI(t, "validate", "--definitions", dir, dir); code != 0 {
		t.Errorf("validate of the --definitions directory itself: exit %d, %s%s", code, out, errOut)
	}
}

// call and request print items as a YAML sequence with -o yaml.
func TestCallYAML(t *testing.T) {
	r := connected(t)
	code, out, errOut := cli(t, r.args("call", "list_projects", "--all", "-o", "yaml", "--progress=false")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var items []map[string]any
	if err := yaml.Unmarshal([]byte(out), &items); err != nil || len(items) == 0 || items[0]["id"] == nil {
		t.Errorf("-o yaml is not a sequence of items (%v):\n%.300s", err, out)
	}
	code, out, _ = cli(t, r.args("call", "me", "-o", "yaml")...)
	var me map[string]any
	if code != 0 || yaml.Unmarshal([]byte(out), &me) != nil || me["id"] == nil {
		t.Errorf("call me -o yaml: exit %d\n%s", code, out)
	}
}

// --verbose shows each exchange, token requests included, and no secret of
// the run: the client secret, every access and refresh token issued
// (issue 13 item 8).
func TestVerboseHidesSecrets(t *testing.T) {
	r := newRig(t, "code", time.Hour)
	r.connect(t)
	before := r.record(t).Token
	var logs strings.Builder
	for _, args := range [][]string{
		r.args("refresh", "--verbose"),
		r.args("call", "list_companies", "-v"),
		r.args("request", "GET", "/rest/v1.0/me", "-v"),
		r.args("token", "-v"),
	} {
		code, _, errOut := cli(t, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d, %s", args, code, errOut)
		}
		logs.WriteString(errOut)
	}
	after := r.record(t).Token
	out := logs.String()
	for _, want := range []string{
		"http 1: POST " + r.base + "/oauth/token (token request: refresh_token) -> 200 OK in ",
		"http 1: GET " + r.base + "/rest/v1.0/companies",
		"http 1: GET " + r.base + "/rest/v1.0/me -> 200 OK in ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("--verbose output lacks %q:\n%s", want, out)
		}
	}
	transcript.Lock()
	secrets := append([]string{r.secret, before.AccessToken, before.RefreshToken, after.AccessToken, after.RefreshToken}, transcript.secrets...)
	transcript.Unlock()
	for _, s := range secrets {
		if s != "" && strings.Contains(out, s) {
			t.Errorf("--verbose printed a secret (%s...):\n%s", s[:4], out)
		}
	}
}
