package connector

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/definitions"
)

// The parsers that read what users and providers send: connection strings,
// connection files, token responses, Link headers and listing bodies. Run
// one with, e.g., go test -fuzz FuzzParseConnectionString ./connector.

func FuzzParseConnectionString(f *testing.F) {
	for _, s := range []string{
		"Definition=procore;OAuthClientId=abc;OAuthClientSecret=s3cr&t;CallbackURL=http://127.0.0.1:8765/callback;CompanyId=42",
		"AuthScheme=OAuth;InitiateOAuth=GETANDREFRESH;OAuthClientId='a;b';OAuthClientSecret=\"x\"\"y\";CallbackURL=http://localhost:1/cb;Definition=procore",
		"Definition=procore-client-credentials;OAuthClientId=id;OAuthClientSecret=sec;CompanyId=1;Environment=sandbox",
		"InitiateOAuth=OFF;OAuthAccessToken=tok;Definition=procore",
		";;=;'", "Definition=procore;Nonsense", "",
	} {
		f.Add(s)
	}
	defs := definitions.Builtin()
	f.Fuzz(func(t *testing.T, s string) {
		c, _, err := ParseConnectionString(s, defs)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		// What parses is valid, and parses the same way twice.
		if err := c.Validate(); err != nil {
			t.Fatalf("parsed but invalid: %v", err)
		}
		c2, _, err := ParseConnectionString(s, defs)
		if err != nil || c2.Key() != c.Key() || c2.ClientSecret != c.ClientSecret {
			t.Fatalf("a second parse differs: %v", err)
		}
	})
}

func FuzzLoadConnectionFile(f *testing.F) {
	for _, s := range []string{
		"definition: procore\nclient_id: abc\nclient_secret: ${env:NO_SUCH_VAR_FOR_FUZZ}\nredirect_uri: http://127.0.0.1:8765/callback\nfields:\n  CompanyId: 42\n",
		"definition: procore-client-credentials\nclient_id: a\nclient_secret: b\nenvironment: sandbox\nfields: {CompanyId: \"7\"}\n",
		"definition: [1, 2]\n", "fields: {a: {b: c}}\n", "{", "",
	} {
		f.Add(s)
	}
	defs := definitions.Builtin()
	f.Fuzz(func(t *testing.T, s string) {
		path := filepath.Join(t.TempDir(), "conn.yaml")
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		c, _, err := LoadConnectionFile(path, defs)
		if err != nil {
			if !strings.Contains(err.Error(), path) && !strings.Contains(err.Error(), "conn.yaml") {
				t.Fatalf("the error does not say which file: %v", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("loaded but invalid: %v", err)
		}
	})
}

func FuzzParseTokenResponse(f *testing.F) {
	for _, s := range []string{
		`{"access_token":"a","token_type":"bearer","expires_in":5400,"refresh_token":"r","created_at":1767225600,"scope":"read write"}`,
		`{"access_token":"a","expires_in":"60"}`, `{"access_token":"a","expires_in":1e300}`,
		`{"error":"invalid_grant","error_description":"bad"}`, `access_token=a&scope=repo%2Cuser&token_type=bearer`,
		`<html></html>`, `{"access_token":42}`, `[]`, ``,
	} {
		f.Add("application/json", []byte(s))
	}
	f.Add("application/x-www-form-urlencoded", []byte(`access_token=a&expires_in=3600`))
	m := &definitions.TokenResponse{AccessToken: "access_token", RefreshToken: "refresh_token", TokenType: "token_type",
		ExpiresIn: "expires_in", Scope: "scope", CreatedAt: "created_at", DefaultExpiresIn: time.Hour}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, ctype string, body []byte) {
		tok, err := parseTokenResponse(ctype, body, m, at)
		if err != nil {
			return
		}
		if tok.AccessToken == "" {
			t.Fatal("a token without an access token")
		}
		if !tok.Expiry.After(at) || tok.Expiry.After(at.Add(maxLifetime)) {
			t.Fatalf("expiry %v is not within (0, maxLifetime] of the request", tok.Expiry.Sub(at))
		}
	})
}

func FuzzLinkRel(f *testing.F) {
	for _, s := range []string{
		`<https://a/x?page=2>; rel="next", <https://a/x?page=9>; rel="last"`,
		`<https://a/x?p=1,2>; title="a;b"; rel="prev next"`, `<>; rel=next`, `<<>>; rel="next"`, `garbage`, ``,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		got := linkRel([]string{h}, "next")
		if got != "" && !strings.Contains(h, "<"+got+">") {
			t.Fatalf("linkRel(%q) = %q, which is not a bracketed target of the header", h, got)
		}
	})
}

func FuzzItemsOf(f *testing.F) {
	for _, s := range []struct{ body, path string }{
		{`[{"id":1},{"id":2}]`, ""}, {`{"data":{"list":[1,"two",null]}}`, "data.list"},
		{`{"files":[]}`, "files"}, {`{"a":1}`, "a"}, {`[`, ""}, {``, "x.y"},
	} {
		f.Add([]byte(s.body), s.path)
	}
	f.Fuzz(func(t *testing.T, body []byte, path string) {
		for item, err := range ItemsOf(body, path) {
			if err != nil {
				return
			}
			if !json.Valid(item) {
				t.Fatalf("item %q is not JSON", item)
			}
		}
	})
}
