package server_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/connector-engine/connector/connector/server"
)

// uploadHosts is an uploaded definition naming hosts of every kind; the
// line:column of each value is in the table of TestUploadedDefinitionHosts.
const uploadHosts = `name: procore-hosts
title: Procore on other hosts
extends: procore
docs_url: https://evil.example.net/docs
environments:
  production:
    base_url: https://93.184.216.34
    login_url: https://evil.example.net
  sandbox:
    base_url: http://127.0.0.1:8080
    login_url: https://169.254.169.254/latest
  monthly:
    base_url: https://10.0.0.5
    login_url: https://${shop}.evil.net
  shop:
    base_url: https://${shop}.myshopify.com
    login_url: "https://user:pw@[fd00::1]:443/x"
auth:
  oauth:
    revoke_uri: ${Tenant}/oauth/revoke
    introspection_uri: ${LoginUrl}/oauth/introspect
`

// TestUploadedDefinitionHosts: POST /v1/definitions/validate reports every
// host of an uploaded definition that the server's --allow-hosts (and, by
// default, its refusal of loopback and private addresses) would refuse, as
// an error at the value's file:line:column with its field; allowed hosts,
// the environment's own ${LoginUrl}, and links (docs_url) are not reported.
func TestUploadedDefinitionHosts(t *testing.T) {
	e := newEnv(t, t.TempDir()+"/connector.db", envOptions{})
	st := e.replicas[0].storage
	srv, err := server.New(server.Config{State: st.State, Tokens: st.Tokens, PublicURL: "https://connect.example.com",
		AllowHosts: []string{"93.184.216.34", "127.0.0.1", "169.254.169.254", "10.0.0.5", "*.myshopify.com", "fd00::1"},
		Logger:     slog.New(slog.NewJSONHandler(logSink{}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	validate := func(base, body string) (bool, []map[string]any, []string) {
		t.Helper()
		req, _ := http.NewRequest("POST", base+"/v1/definitions/validate?filename=hosts.yaml", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+e.keys["acme:connections:read"])
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("validate: %d %s", resp.StatusCode, data)
		}
		var out struct {
			Valid       bool             `json:"valid"`
			Diagnostics []map[string]any `json:"diagnostics"`
			Messages    []string         `json:"messages"`
		}
		if err := json.Unmarshal(data, &out); err != nil {
			t.Fatal(err)
		}
		return out.Valid, out.Diagnostics, out.Messages
	}
	valid, diags, msgs := validate(hs.URL, uploadHosts)
	if valid {
		t.Fatalf("a definition naming refused hosts is valid: %v", msgs)
	}
	want := []struct{ at, field, says string }{
		{"hosts.yaml:8:16", "environments.production.login_url", "host evil.example.net is not in the server's allow-list (connector serve --allow-hosts)"},
		{"hosts.yaml:10:15", "environments.sandbox.base_url", "host 127.0.0.1 is a loopback or private address"},
		{"hosts.yaml:11:16", "environments.sandbox.login_url", "host 169.254.169.254 is a loopback or private address"},
		{"hosts.yaml:13:15", "environments.monthly.base_url", "host 10.0.0.5 is a loopback or private address"},
		{"hosts.yaml:14:16", "environments.monthly.login_url", "the host ${shop}.evil.net is made from a connection field"},
		{"hosts.yaml:17:16", "environments.shop.login_url", "host fd00::1 is a loopback or private address"},
		{"hosts.yaml:20:17", "auth.oauth.revoke_uri", "come from the connection field Tenant"},
	}
	for _, w := range want {
		found := false
		for _, d := range diags {
			at := d["file"].(string) + ":" + jsonInt(d["line"]) + ":" + jsonInt(d["column"])
			if at == w.at && d["field"] == w.field && d["severity"] == "error" && strings.Contains(d["message"].(string), w.says) {
				found = true
			}
		}
		if !found {
			t.Errorf("no error at %s (%s) saying %q; messages:\n%s", w.at, w.field, w.says, strings.Join(msgs, "\n"))
		}
	}
	for _, m := range msgs {
		for _, fine := range []string{"93.184.216.34", "myshopify.com", "docs_url", "introspection_uri"} {
			if strings.Contains(m, fine) {
				t.Errorf("an allowed host or a link was reported: %s", m)
			}
		}
	}

	// The test servers allow 127.0.0.1 and private addresses: the same file
	// with only loopback hosts is valid there.
	loopback := "name: procore-local\ntitle: Procore on loopback\nextends: procore\nenvironments:\n  production:\n    base_url: http://127.0.0.1:9\n    login_url: http://127.0.0.1:9\n"
	if valid, _, msgs := validate(e.replicas[0].url, loopback); !valid {
		t.Fatalf("a loopback definition is refused where loopback is allowed: %v", msgs)
	}
}

func jsonInt(v any) string {
	f, _ := v.(float64)
	return strconv.Itoa(int(f))
}
