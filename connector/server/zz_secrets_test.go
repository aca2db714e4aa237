package server_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestZZNoSecretInLogs runs last (files and tests run in name order): it
// greps every log line the servers of this test binary wrote for every
// secret the tests issued: API keys, client secrets, codes, states, tokens.
func TestZZNoSecretInLogs(t *testing.T) {
	secrets.Lock()
	defer secrets.Unlock()
	logs := secrets.logs.Bytes()
	if len(logs) == 0 || len(secrets.issued) == 0 {
		t.Skip("run with the other tests: nothing was logged or issued")
	}
	for _, line := range bytes.Split(bytes.TrimSpace(logs), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("a log line is not JSON: %q", line)
		}
	}
	for _, s := range secrets.issued {
		if bytes.Contains(logs, []byte(s)) {
			i := bytes.Index(logs, []byte(s))
			t.Errorf("a secret (%s…) is in the logs near %q", s[:4], strings.ReplaceAll(string(logs[max(0, i-80):i]), s, "***"))
		}
	}
	// Credentials connections (credentials_test.go) carry their secrets in
	// request bodies (a secret key, a password, a webhook signing secret):
	// when those tests ran, the requests that carried them must be among
	// the lines checked, or the grep above proved nothing for them.
	for _, s := range secrets.issued {
		if strings.HasPrefix(s, credentialsSecretPrefix) {
			for _, route := range []string{`"route":"POST /v1/connections"`, `"route":"PATCH /v1/connections/{id}/fields"`} {
				if !bytes.Contains(logs, []byte(route)) {
					t.Errorf("the credentials tests ran but no request of %s was logged", route)
				}
			}
			break
		}
	}
	t.Logf("%d log lines checked for %d secrets", bytes.Count(logs, []byte("\n")), len(secrets.issued))
}
