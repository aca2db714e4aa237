package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestConnectionMessages: the messages of issue 13 items 9 and 10 that were
// still open, in a golden file: one shape for every request that got no
// answer, API or token endpoint ("GET http://host/path: ..."; never Go's
// `Get "http://..."`); an empty base_url or login_url in a connection file
// is an error at its line and column, and so is BaseURL= in a connection
// string; connection-string errors quote a value only when it is not a
// secret.
func TestConnectionMessages(t *testing.T) {
	dead := "http://" + freeAddr(t) // nothing listens there
	dir := t.TempDir()
	store := []string{"--store", filepath.Join(dir, "store.json"), "--key-file", filepath.Join(dir, "secret.key")}
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cc := "Definition=procore-client-credentials;CompanyId=562949953421312;OAuthClientId=id;OAuthClientSecret=the-secret-value"
	emptyBase := write("empty-base.yaml", "definition: procore\nclient_id: id\nclient_secret: s\nredirect_uri: http://127.0.0.1:8765/callback\nbase_url:\nlogin_url: \"\"\n")
	cases := []struct {
		name string
		args []string
		code int
	}{
		{"an API that does not answer", append([]string{"request", "GET", "/rest/v1.0/me", "--connection-string", cc + ";BaseURL=" + dead + ";LoginURL=" + dead + ";OAuthAccessToken=tok-1234;InitiateOAuth=OFF"}, store...), 1},
		{"a token endpoint that does not answer", append([]string{"token", "--connection-string", cc + ";LoginURL=" + dead}, store...), 1},
		{"empty base_url and login_url in a file", append([]string{"token", "--connection", emptyBase}, store...), 1},
		{"empty BaseURL in a connection string", append([]string{"token", "--connection-string", cc + ";BaseURL=;LoginURL= "}, store...), 2},
		{"values quoted only when not secret", append([]string{"token", "--connection-string",
			"Definition=procore;OAuthClientId=id;OAuthClientSecret=the-secret-value;CallbackURL=http://example.com/cb;CompanyId=abc;InitiateOAuth=SOMETIMES"}, store...), 2},
		{"a syntax error gives a position", append([]string{"token", "--connection-string", "Definition=procore;OAuthClientSecret='the-secret-value"}, store...), 2},
	}
	port := regexp.MustCompile(`127\.0\.0\.1:\d+`)
	id := regexp.MustCompile(`\.production\.[0-9a-f]{12}`) // the id hashes the host, and so the port
	var golden strings.Builder
	for _, c := range cases {
		code, out, errOut := cli(t, c.args...)
		if code != c.code {
			t.Errorf("%s: exit %d, want %d\n%s%s", c.name, code, c.code, out, errOut)
		}
		if strings.Contains(errOut, "the-secret-value") || strings.Contains(errOut, "tok-1234") {
			t.Errorf("%s: a secret in the message:\n%s", c.name, errOut)
		}
		if strings.Contains(errOut, `Get "`) || strings.Contains(errOut, `Post "`) {
			t.Errorf("%s: Go's url.Error shape:\n%s", c.name, errOut)
		}
		errOut = strings.ReplaceAll(errOut, dir, "DIR")
		errOut = id.ReplaceAllString(port.ReplaceAllString(errOut, "127.0.0.1:PORT"), ".production.ID")
		golden.WriteString("# " + c.name + "\n" + errOut)
	}
	checkGolden(t, filepath.Join("testdata", "connection-messages.golden"), golden.String())
}
