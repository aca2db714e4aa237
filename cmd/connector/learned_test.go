package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/emulator"
)

// connect learns the company from GET /rest/v1.0/companies with the new
// token, asking which one (the emulator's user sees two); connections
// shows it; API requests carry it in Procore-Company-Id.
func TestConnectLearnsChosenValue(t *testing.T) {
	dir := t.TempDir()
	def := `name: procore-pick
extends: procore
fields:
  CompanyId:
    learn: {from: request, url: "${BaseUrl}/rest/v1.0/companies", path: id, label: name, choose: ask}
`
	if err := os.WriteFile(filepath.Join(dir, "procore-pick.yaml"), []byte(def), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvDefinitions, dir)
	r := newRig(t, "code", time.Hour)
	r.connString = strings.Replace(r.connString, "Definition=procore;", "Definition=procore-pick;", 1)

	// The person connecting answers 2.
	in, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	w.WriteString("2\n")
	w.Close()
	old := os.Stdin
	os.Stdin = in
	t.Cleanup(func() { os.Stdin = old; in.Close() })
	r.connect(t)

	rec := r.record(t)
	got := rec.Token.Values["CompanyId"]
	if want := strconv.FormatInt(emulator.SecondCompanyID, 10); got != want {
		t.Fatalf("learned CompanyId %q; want the second company offered, %s", got, want)
	}
	code, out, errOut := cli(t, "connections", "--store", r.storePath, "--key-file", r.keyFile)
	if code != 0 || !strings.Contains(out, "VALUES") || !strings.Contains(out, "CompanyId="+got) {
		t.Errorf("connections: exit %d\n%s%s", code, out, errOut)
	}
	// Procore refuses this without Procore-Company-Id: it carries the learned one.
	code, out, errOut = cli(t, r.args("request", "GET", "/rest/v1.0/projects?company_id="+got)...)
	if code != 0 {
		t.Errorf("request with the learned company: exit %d\n%s%s", code, out, errOut)
	}
}
