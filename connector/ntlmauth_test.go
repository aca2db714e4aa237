package connector_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/definitions"
	"github.com/connector-engine/connector/internal/ntlmserver"
)

// An ntlm connection against a server verifying NTLMv2: a 503 is retried
// through the NTLM layer with its body, and a wrong password is a final
// error naming the account, not the password.
func TestNTLMAPI(t *testing.T) {
	var calls atomic.Int64
	srv := ntlmserver.Start(t, "CONTOSO", map[string]string{`CONTOSO\alice`: "Right-SECRET-1"}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if calls.Add(1) == 1 {
			w.WriteHeader(503)
			return
		}
		fmt.Fprintf(w, `{"user":%q,"body":%q}`, ntlmserver.User(r), body)
	}))
	src := `name: bc
title: Business Central
auth:
  scheme: ntlm
  ntlm: {username: "${Username}", password: "${Password}", domain: "${Domain}"}
environments: {default: {base_url: "` + srv.URL + `"}}
fields:
  Username: {type: string, required: true}
  Password: {type: string, required: true, secret: true}
  Domain: {type: string}
request: {retry: {max_attempts: 3}}
`
	set, err := definitions.Parse(nil, definitions.File{Path: "bc.yaml", Data: []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	def, _ := set.Lookup("bc")
	for _, pass := range []string{"Right-SECRET-1", "Wrong-SECRET-2"} {
		conn := &connector.Connection{Definition: def, Fields: map[string]string{"Username": "alice", "Password": pass, "Domain": "CONTOSO"}}
		api, err := connector.NewAPI(conn, store.NewMemory(), nil)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequestWithContext(context.Background(), "PUT", srv.URL+"/odata", strings.NewReader("payload"))
		resp, err := api.Client().Do(req)
		if pass == "Wrong-SECRET-2" {
			if err == nil || !strings.Contains(err.Error(), `the server refused the credentials of CONTOSO\alice`) || strings.Contains(err.Error(), pass) {
				t.Fatalf("wrong password: %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(data) != `{"user":"CONTOSO\\ALICE","body":"payload"}` {
			t.Fatalf("got %d %s", resp.StatusCode, data)
		}
	}
}
