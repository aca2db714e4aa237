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
	t.Logf("%d log lines checked for %d secrets", bytes.Count(logs, []byte("\n")), len(secrets.issued))
}
