package connector

import (
	"bytes"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/definitions"
)

// FuzzBodyPath: any JSON body and any path the validator accepts are read
// without panicking, and what a learned value takes is never an object or
// an array.
func FuzzBodyPath(f *testing.F) {
	for _, s := range [][2]string{
		{`{"team":{"id":"T1"}}`, "team.id"}, {`{"bot":{"bot_access_token":"x"}}`, "/bot/bot_access_token"},
		{`[{"tenantId":"a"}]`, "/0/tenantId"}, {`{"@odata.nextLink":"u"}`, "/@odata.nextLink"}, {`{"a~b":{"c/d":1}}`, "/a~0b/c~1d"},
		{`{"a":[1,2]}`, "a"}, {`{"a":null}`, "a"}, {`{"a":true}`, "a"}, {`{"a":1e400}`, "a"}, {`{`, "a"},
	} {
		f.Add([]byte(s[0]), s[1])
	}
	f.Fuzz(func(t *testing.T, body []byte, path string) {
		if definitions.BodyPathProblem(path) != "" {
			return
		}
		v, found, err := firstValue(body, []string{path, "fallback"})
		if err != nil || !found {
			return
		}
		if v == "" {
			t.Fatal("found an empty value")
		}
		if b := bytes.TrimSpace([]byte(v)); len(b) > 0 && (b[0] == '{' || b[0] == '[') && json0(body, path) {
			t.Fatalf("a learned value is an object or array: %q", v)
		}
	})
}

// json0 reports whether the raw value at path is itself an object or array
// (a string holding "{" is fine).
func json0(body []byte, path string) bool {
	raw, ok := lookupJSON(body, path)
	raw = bytes.TrimSpace(raw)
	return ok && len(raw) > 0 && (raw[0] == '{' || raw[0] == '[')
}

// FuzzLearnFromTokenResponse: whatever a token response says, a learned
// host value is kept only when it passes the field's type and pattern, so
// it can never point the API elsewhere; expires_at and milliseconds never
// give a lifetime outside (0, maxLifetime].
func FuzzLearnFromTokenResponse(f *testing.F) {
	for _, s := range []string{
		`{"access_token":"a","instance_url":"https://acme.my.salesforce.com","team":{"id":"T1"}}`,
		`{"access_token":"a","instance_url":"https://evil.example"}`,
		`{"access_token":"a","instance_url":"https://acme.my.salesforce.com.evil.example/"}`,
		`{"access_token":"a","urls":{"instance":"http://acme.my.salesforce.com"},"expires_at":1767229200}`,
		`{"access_token":"a","expires_at":"2026-01-01T02:00:00Z"}`, `{"access_token":"a","expires_at":-5}`,
		`{"access_token":"a","expires_in":3600000}`, `{"access_token":"a","instance_url":{"x":1}}`,
		`access_token=a&instance_url=https%3A%2F%2Facme.my.salesforce.com`,
	} {
		f.Add([]byte(s))
	}
	src := `name: fz
title: fuzz
base_url: ${InstanceUrl}/services/data
fields:
  InstanceUrl:
    type: url
    pattern: "https://[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)*\\.salesforce\\.com/?"
    learn: {from: token_response, path: [urls.instance, instance_url]}
  Team:
    pattern: "[A-Z0-9]+"
    learn: {from: token_response, path: team.id}
auth:
  scheme: oauth_client
  oauth:
    version: V2
    token_request_uri: https://login.salesforce.com/token
    token_response: {expires_at: expires_at, expires_in_unit: milliseconds}
`
	set, err := definitions.Parse(nil, definitions.File{Path: "fz.yaml", Data: []byte(src)})
	if err != nil {
		f.Fatal(err)
	}
	d, _ := set.Get("fz")
	fl, err := NewFlow(&Connection{Definition: d, ClientID: "c", ClientSecret: "s"})
	if err != nil {
		f.Fatal(err)
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, ctype := range []string{"application/json", "application/x-www-form-urlencoded"} {
			if tok, err := parseTokenResponse(ctype, body, &d.Auth.OAuth.TokenResponse, at); err == nil {
				if !tok.Expiry.After(at) || tok.Expiry.After(at.Add(maxLifetime)) {
					t.Fatalf("expiry %v is not within (0, maxLifetime] of the request", tok.Expiry.Sub(at))
				}
			}
			got := map[string]string{}
			if err := fl.learnResponse(ctype, body, got); err != nil {
				continue
			}
			if v, ok := got["InstanceUrl"]; ok {
				u, err := url.Parse(v)
				if err != nil || u.Scheme != "https" || !strings.HasSuffix(strings.ToLower(u.Hostname()), ".salesforce.com") || u.User != nil {
					t.Fatalf("learned InstanceUrl %q is not a salesforce.com https URL", v)
				}
			}
		}
	})
}
