package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/emulator"
)

var update = flag.Bool("update", false, "rewrite the golden files from the current output")

// connected is a rig (client credentials, CompanyId set) with a token.
func connected(t *testing.T) *rig {
	t.Helper()
	r := newRig(t, "client", time.Hour)
	if code, out, errOut := cli(t, r.args("connect")...); code != 0 {
		t.Fatalf("connect: exit %d\n%s%s", code, out, errOut)
	}
	return r
}

func ndjson(t *testing.T, out string) []map[string]any {
	t.Helper()
	var items []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q is not a JSON object: %v", sc.Text(), err)
		}
		items = append(items, m)
	}
	return items
}

func TestCallListsAndCreates(t *testing.T) {
	r := connected(t)

	code, out, errOut := cli(t, r.args("call", "list_projects", "--all", "-o", "ndjson")...)
	if code != 0 {
		t.Fatalf("call list_projects --all: exit %d: %s", code, errOut)
	}
	if items := ndjson(t, out); len(items) != emulator.DemoProjectCount {
		t.Fatalf("--all -o ndjson: %d lines, want %d", len(items), emulator.DemoProjectCount)
	}
	want := "progress: 250 of 250 items, 3 pages\n"
	if errOut != want {
		t.Errorf("progress on stderr = %q, want %q", errOut, want)
	}

	code, out, _ = cli(t, r.args("call", "list_projects", "--all", "--progress=false")...)
	var arr []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &arr) != nil || len(arr) != emulator.DemoProjectCount {
		t.Fatalf("--all -o json: exit %d, %d items in a valid array: %v", code, len(arr), json.Valid([]byte(out)))
	}

	code, out, _ = cli(t, r.args("call", "list_projects", "-o", "table")...)
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if code != 0 || len(lines) != 101 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[0], "NAME") {
		t.Fatalf("-o table (one page): exit %d, %d lines, header %q", code, len(lines), lines[0])
	}

	code, out, errOut = cli(t, r.args("call", "create_project", `project={"name":"From the CLI","project_number":"C-1"}`)...)
	var created map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &created) != nil || created["name"] != "From the CLI" {
		t.Fatalf("create_project: exit %d\n%s%s", code, out, errOut)
	}
	id := strconv.FormatFloat(created["id"].(float64), 'f', -1, 64)
	code, out, _ = cli(t, r.args("call", "get_project", "id="+id)...)
	if code != 0 || !strings.Contains(out, `"name": "From the CLI"`) {
		t.Fatalf("get_project id=%s: exit %d\n%s", id, code, out)
	}
	if n := r.emu.Stats().APIRequestsByRoute["POST /rest/v1.0/projects"]; n != 1 {
		t.Errorf("%d POSTs, want 1", n)
	}
}

func TestRequestRawCalls(t *testing.T) {
	r := connected(t)
	code, out, errOut := cli(t, r.args("request", "GET", "/rest/v1.0/me")...)
	if code != 0 || !strings.Contains(out, `"login"`) {
		t.Fatalf("request GET /me: exit %d\n%s%s", code, out, errOut)
	}
	body := writeFile(t, t.TempDir(), "p.json", `{"company_id": 562949953421312, "project": {"name": "Raw"}}`)
	code, out, errOut = cli(t, r.args("request", "post", "/rest/v1.0/projects", "-d", "@"+body)...)
	if code != 0 || !strings.Contains(out, `"name": "Raw"`) {
		t.Fatalf("request POST -d @file: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = cli(t, r.args("request", "GET", "/rest/v1.0/projects?company_id=562949953421312", "--all", "-o", "ndjson", "--progress=false")...)
	if items := ndjson(t, out); code != 0 || len(items) != emulator.DemoProjectCount+1 {
		t.Fatalf("request --all: exit %d, %d items", code, len(items))
	}
	code, out, errOut = cli(t, r.args("request", "GET", "/rest/v1.0/projects/1?company_id=562949953421312")...)
	if code != 1 || out != "" || !strings.Contains(errOut, "404 Not Found") {
		t.Fatalf("request for a missing project: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestActionsCommand(t *testing.T) {
	code, out, _ := cli(t, "actions", "procore")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if l != "" && !strings.HasPrefix(l, " ") {
			n++
		}
	}
	if n != 27 {
		t.Errorf("actions procore listed %d actions, want 27", n)
	}
	if !strings.Contains(out, "list_files  GET /rest/v1.0/folders/${folder_id}?project_id=${project_id}\n") {
		t.Error("list_files (one request whose items are the folder's files) is shown as paged or missing")
	}
	if !strings.Contains(out, "list_projects  GET /rest/v1.0/projects?company_id=${CompanyId}&filters[by_status]=${status}  (paged: --all fetches every page)\n") {
		t.Error("list_projects is not shown as paged")
	}
	code, out, _ = cli(t, "actions", "procore", "create_rfi")
	if code != 0 || !strings.Contains(out, "    project_id=INTEGER (required)  The project's id.\n") || !strings.Contains(out, "input schema:") {
		t.Errorf("actions procore create_rfi: exit %d\n%s", code, out)
	}
}

// TestAPICommandErrors runs every way to misuse actions, call and request;
// the messages are in testdata/api-errors.golden, and none of these sends a
// request.
func TestAPICommandErrors(t *testing.T) {
	r := connected(t)
	before := r.emu.Stats().APIRequests
	bad := writeFile(t, t.TempDir(), "bad.json", `{"project": `)
	cases := []struct {
		name string
		args []string
		code int
	}{
		{"unknown definition", []string{"actions", "nope"}, 2},
		{"unknown action listed", []string{"actions", "procore", "list_project"}, 2},
		{"unknown action called", r.args("call", "list_project"), 0},
		{"input not name=value", r.args("call", "get_project", "42"), 0},
		{"input twice", r.args("call", "get_project", "id=1", "id=2"), 0},
		{"unknown input", r.args("call", "get_project", "id=1", "project_id=2"), 0},
		{"input of the wrong type", r.args("call", "get_project", "id=forty-two"), 0},
		{"required input missing", r.args("call", "get_project"), 0},
		{"nested required field missing", r.args("call", "create_project", `project={"project_number":"X"}`), 0},
		{"input not JSON", r.args("call", "create_project", `project={name:"X"}`), 0},
		{"enum", r.args("call", "list_projects", "status=Archived"), 0},
		{"bad output", r.args("call", "me", "-o", "xml"), 0},
		{"bad method", r.args("request", "FETCH", "/rest/v1.0/me"), 0},
		{"body not JSON", r.args("request", "POST", "/rest/v1.0/projects", "-d", `{"name":`), 0},
		{"body file not JSON", r.args("request", "POST", "/rest/v1.0/projects", "-d", "@"+bad), 0},
		{"body file missing", r.args("request", "POST", "/rest/v1.0/projects", "-d", "@/nonexistent/body.json"), 0},
		{"header not name: value", r.args("request", "GET", "/rest/v1.0/me", "-H", "X-Trace"), 0},
		{"another host", r.args("request", "GET", "http://127.0.0.1:9/rest/v1.0/me"), 0},
	}
	var golden strings.Builder
	for _, c := range cases {
		want := c.code
		if want == 0 {
			want = 2
		}
		code, out, errOut := cli(t, c.args...)
		if code != want || out != "" {
			t.Errorf("%s: exit %d (want %d), stdout %q", c.name, code, want, out)
		}
		golden.WriteString("# " + c.name + "\n" + strings.ReplaceAll(errOut, r.base, "BASE"))
	}
	if after := r.emu.Stats().APIRequests; after != before {
		t.Errorf("%d requests reached the API", after-before)
	}
	checkGolden(t, filepath.Join("testdata", "api-errors.golden"), golden.String())
}

var trailingSpace = regexp.MustCompile(`[ \t]+\n`)

func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	got = trailingSpace.ReplaceAllString(got, "\n")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if string(want) != got {
		t.Errorf("output differs from %s (go test -update rewrites it after review):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}
