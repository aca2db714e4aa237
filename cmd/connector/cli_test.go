package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/connector-engine/connector/connector"
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

// --dry-run prints the request with its credentials as *** and sends
// nothing to the API (issue 13 item 8); a path without a leading slash is
// under the base URL; a paged call without --all says so; the doubled
// "connection string:" is gone (issue 13 item 9).
func TestDryRunAndMessages(t *testing.T) {
	r := connected(t)
	tok := r.record(t).Token.AccessToken
	before := r.emu.Stats().APIRequests
	code, out, errOut := cli(t, r.args("call", "create_project", `project={"name":"Tower"}`, "--dry-run")...)
	if code != 0 || !strings.HasPrefix(out, "POST "+r.base+"/rest/v1.0/projects\n") ||
		!strings.Contains(out, "Authorization: ***\n") || !strings.Contains(out, `"name": "Tower"`) || strings.Contains(out, tok) {
		t.Errorf("call --dry-run: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = cli(t, r.args("request", "GET", "rest/v1.0/me", "--dry-run", "-H", "X-Trace: 1")...)
	if code != 0 || !strings.HasPrefix(out, "GET "+r.base+"/rest/v1.0/me") || !strings.Contains(out, "X-Trace: 1\n") {
		t.Errorf("request --dry-run: exit %d\n%s%s", code, out, errOut)
	}
	if after := r.emu.Stats().APIRequests; after != before {
		t.Errorf("--dry-run sent %d requests to the API", after-before)
	}
	if code, out, errOut := cli(t, r.args("request", "GET", "rest/v1.0/me")...); code != 0 || !strings.Contains(out, `"id"`) {
		t.Errorf("request without a leading slash: exit %d, %s%s", code, out, errOut)
	}
	if code, _, errOut := cli(t, r.args("call", "list_projects")...); code != 0 || !strings.Contains(errOut, "note: list_projects is paged and this is its first page; --all fetches every page") {
		t.Errorf("paged call without --all: exit %d, stderr %q", code, errOut)
	}
	if _, _, errOut := cli(t, "token", "--connection-string", "Definition=procore;Nonsense"); strings.Contains(errOut, "connection string: connection string") || !strings.Contains(errOut, "--connection-string: the part at character 20") {
		t.Errorf("connection string error: %q", errOut)
	}
}

// The progress of --all ends its terminal line, and on a pipe always
// reports the final count, with or without a total (issue 13 item 9).
func TestProgressReportEnds(t *testing.T) {
	for _, tty := range []bool{false, true} {
		var b strings.Builder
		p := &progressReport{w: &b, tty: tty}
		for i := 1; i <= 3; i++ {
			p.update(connector.Progress{Items: i * 10, Pages: i, Total: -1})
		}
		p.finish()
		got := b.String()
		if !strings.HasSuffix(got, "progress: 30 items, 3 pages\n") || (!tty && strings.Count(got, "\n") != 1) {
			t.Errorf("tty=%v: progress output %q", tty, got)
		}
	}
}

// An API host that accepts and never answers: the error names the
// endpoint, the attempts and the timeout, not a bare "context deadline
// exceeded" (issue 13 item 9).
func TestSilentHostMessage(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	}()
	defs := writeFile(t, t.TempDir(), "hostile.yaml", hostileDef)
	code, _, errOut := cli(t, "--definitions", defs, "request", "GET", "/slow", "--timeout", "1s",
		"--connection-string", "Definition=hostile;BaseURL=http://"+ln.Addr().String())
	if code != exitFailed || !strings.Contains(errOut, "GET http://"+ln.Addr().String()+"/slow") ||
		!strings.Contains(errOut, "no answer within --timeout 1s") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

// --jq filters the JSON form of any command's output (gojq); strings print
// bare; a bad expression is a usage error (issue 13 item 5).
func TestJQ(t *testing.T) {
	if code, out, errOut := runCLI(t, "definitions", "--jq", ".[].name"); code != 0 || out != "procore\nprocore-client-credentials\nprocore-v1\n" {
		t.Errorf("definitions --jq: exit %d, %q %q", code, out, errOut)
	}
	if code, out, _ := runCLI(t, "validate", "-q", "{valid, errors}"); code != 0 || out != `{"errors":0,"valid":true}`+"\n" {
		t.Errorf("validate --jq: exit %d, %q", code, out)
	}
	if code, _, errOut := runCLI(t, "definitions", "--jq", ".["); code != exitUsage || !strings.Contains(errOut, `--jq ".[": unexpected EOF`) {
		t.Errorf("bad --jq: exit %d, %q", code, errOut)
	}
	r := connected(t)
	code, out, errOut := cli(t, r.args("call", "list_projects", "--all", "--progress=false", "--jq", ".id")...)
	if lines := strings.Count(out, "\n"); code != 0 || lines != 250 || strings.Contains(out, "{") {
		t.Errorf("call --all --jq .id: exit %d, %d lines, stderr %q", code, lines, errOut)
	}
	if code, out, _ := cli(t, r.args("call", "me", "--jq", "has(\"id\")")...); code != 0 || out != "true\n" {
		t.Errorf("call me --jq: exit %d, %q", code, out)
	}
	if code, _, errOut := cli(t, r.args("call", "me", "--jq", "error(\"boom\")")...); code != exitFailed || !strings.Contains(errOut, "--jq: error: boom") {
		t.Errorf("--jq error: exit %d, %q", code, errOut)
	}
}

// --connection completes to the connection files of the directory, each
// with its stored connection's id and status, and no secret (issue 13
// item 7).
func TestCompleteStoredConnections(t *testing.T) {
	r := connected(t) // client credentials, connected
	dir := t.TempDir()
	t.Chdir(dir)
	port := strings.TrimPrefix(r.base, "http://")
	writeFile(t, dir, "acme.yaml", "definition: procore-client-credentials\nclient_id: "+testClientID+"\nclient_secret: "+r.secret+
		"\nbase_url: http://"+port+"\nlogin_url: http://"+port+"\nfields: {CompanyId: 562949953421312}\n")
	writeFile(t, dir, "other.yaml", "definition: procore-client-credentials\nclient_id: someone-else\nclient_secret: x\nfields: {CompanyId: 1}\n")
	writeFile(t, dir, "not-a-connection.yaml", "name: x\n")
	code, out, errOut := runCLI(t, "__complete", "token", "--store", r.storePath, "--key-file", r.keyFile, "--connection", "")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	id := r.record(t).ID
	for _, want := range []string{"acme.yaml\tprocore-client-credentials, connected (" + id + ")\n", "other.yaml\tprocore-client-credentials, not connected\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("completion lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "not-a-connection") || strings.Contains(out, r.secret) {
		t.Errorf("completion offers a non-connection or a secret:\n%s", out)
	}
}
