package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/connector-engine/connector/internal/ntlmserver"
)

// connector call and request with examples/business-central-onprem.yaml
// against a loopback server that verifies NTLMv2 responses (as IIS does for
// a Business Central instance with the Windows credential type), the
// account given by a connection file and by a connection string
// (AuthScheme=NTLM): the OData listing is followed through @odata.nextLink,
// a wrong password is a final error naming the account, and no password is
// printed, --verbose included.
func TestNTLMCall(t *testing.T) {
	const password = "Winter-SECRET-2026"
	var srv *ntlmserver.Server
	srv = ntlmserver.Start(t, "CONTOSO", map[string]string{`CONTOSO\alice`: password}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.RequestURI() {
		case "/BC230/ODataV4/Company":
			fmt.Fprintf(w, `{"value":[{"Name":"CRONUS USA, Inc.","by":%q}],"@odata.nextLink":"%s/BC230/ODataV4/Company?$skiptoken=1"}`, ntlmserver.User(r), srv.URL)
		case "/BC230/ODataV4/Company?$skiptoken=1":
			fmt.Fprint(w, `{"value":[{"Name":"My Company"}]}`)
		case "/BC230/ODataV4/Company('CRONUS%20USA%2C%20Inc.')/Customer":
			fmt.Fprint(w, `{"value":[{"No":"10000","Name":"Adatum Corporation"}]}`)
		default:
			http.Error(w, `{"error":{"code":"BadRequest_NotFound","message":"no such service"}}`, http.StatusNotFound)
		}
	}))
	dir := t.TempDir()
	ex := filepath.Join("..", "..", "examples")
	odata := srv.URL + "/BC230/ODataV4"
	connFile := writeFile(t, dir, "bc.yaml", "definition: business-central-onprem\nfields:\n  ServerUrl: "+odata+"\n  User: alice\n  Password: ${file:password.txt}\n  Domain: CONTOSO\n  Company: CRONUS USA, Inc.\n")
	writeFile(t, dir, "password.txt", password+"\n")
	if err := os.Chmod(filepath.Join(dir, "password.txt"), 0o600); err != nil {
		t.Fatal(err)
	}
	connString := "Definition=business-central-onprem;AuthScheme=NTLM;ServerUrl=" + odata + `;User=CONTOSO\alice;Password='` + password + "';Company=CRONUS USA, Inc."
	store := filepath.Join(dir, "store.json")
	for _, conn := range [][]string{{"--connection", connFile}, {"--connection-string", connString}} {
		code, out, errOut := runCLI(t, append([]string{"--definitions", ex, "call", "list_companies", "--all", "-v"}, append(conn, "--store", store)...)...)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", conn[0], code, errOut)
		}
		if !strings.Contains(out, `"CRONUS USA, Inc."`) || !strings.Contains(out, `"My Company"`) || !strings.Contains(out, `CONTOSO\\ALICE`) {
			t.Errorf("%s: list_companies --all:\n%s", conn[0], out)
		}
		code, out, errOut = runCLI(t, append([]string{"--definitions", ex, "call", "list_published", "service=Customer"}, append(conn, "--store", store)...)...)
		if code != 0 || !strings.Contains(out, "Adatum Corporation") {
			t.Errorf("%s: list_published: exit %d\n%s\n%s", conn[0], code, out, errOut)
		}
		if strings.Contains(out+errOut, password) {
			t.Errorf("%s: the password is printed", conn[0])
		}
	}
	wrong := strings.Replace(connString, password, "Wrong-SECRET-1", 1)
	code, out, errOut := runCLI(t, "--definitions", ex, "request", "GET", "/Company", "--connection-string", wrong, "--store", store)
	if code == 0 || !strings.Contains(errOut, `refused the credentials of CONTOSO\alice`) || strings.Contains(out+errOut, "Wrong-SECRET-1") {
		t.Errorf("a wrong password: exit %d\n%s\n%s", code, out, errOut)
	}
	if srv.Handshakes.Load() == 0 || srv.Refused.Load() == 0 {
		t.Errorf("handshakes %d, refused %d", srv.Handshakes.Load(), srv.Refused.Load())
	}
}
