package server_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/connector-engine/connector/connector/server"
)

// ackedDefinition acknowledges pkce-off and leaves token-in-query shown;
// its hosts are loopback, which the test server allows.
const ackedDefinition = `name: legacy-acked
title: Legacy provider, warnings weighed
base_url: http://127.0.0.1:9/api
ignore_warnings:
  pkce-off: the provider answers invalid_request to code_challenge
auth:
  scheme: oauth
  oauth:
    version: V2
    pkce: false
    initiate_uri: http://127.0.0.1:9/authorize
    token_request_uri: http://127.0.0.1:9/token
    send_token: {in: query, name: access_token}
`

// validationCases are uploads whose answers cover every member of a
// diagnostic: errors (of the definitions package and of the host
// allow-list), warnings and acknowledged warnings with their reason.
var validationCases = []struct {
	name, yaml string
	valid      bool
	errors     int
	warnings   int
	acked      int
}{
	{"acknowledged and shown warnings", ackedDefinition, true, 0, 1, 1},
	{"all acknowledged", strings.Replace(ackedDefinition, "send_token: {in: query, name: access_token}", "", 1), true, 0, 0, 1},
	{"an error besides", strings.Replace(ackedDefinition, "version: V2", "version: V9", 1), false, 1, 1, 1},
	{"a refused host", strings.Replace(ackedDefinition, "base_url: http://127.0.0.1:9/api", "base_url: https://evil.example.net/api", 1), false, 1, 1, 1},
	{"no definition at all", "{}", false, -1, 0, 0},
}

func postValidate(t *testing.T, e *env, body string) map[string]any {
	t.Helper()
	return e.must(200, 0, "POST", "/v1/definitions/validate?filename=up.yaml", e.keys["acme:connections:read"], body)
}

// TestValidateAcknowledged: warnings a definition acknowledges in
// ignore_warnings are in the answer, last, marked acknowledged with their
// reason and code, formatted as connector validate formats them, and counted
// apart: they neither make the definition invalid nor count as warnings.
func TestValidateAcknowledged(t *testing.T) {
	e := newEnv(t, t.TempDir()+"/connector.db", envOptions{})
	for _, c := range validationCases {
		t.Run(c.name, func(t *testing.T) {
			out := postValidate(t, e, c.yaml)
			if out["valid"] != c.valid || (c.errors >= 0 && jsonInt(out["errors"]) != jsonInt(float64(c.errors))) ||
				jsonInt(out["warnings"]) != jsonInt(float64(c.warnings)) || jsonInt(out["acknowledged"]) != jsonInt(float64(c.acked)) {
				t.Fatalf("valid %v errors %v warnings %v acknowledged %v, want %v %d %d %d: %v",
					out["valid"], out["errors"], out["warnings"], out["acknowledged"], c.valid, c.errors, c.warnings, c.acked, out["messages"])
			}
			diags, msgs := out["diagnostics"].([]any), out["messages"].([]any)
			if len(diags) != len(msgs) {
				t.Fatalf("%d diagnostics, %d messages", len(diags), len(msgs))
			}
			acked := 0
			for i, d := range diags {
				d := d.(map[string]any)
				msg := msgs[i].(string)
				if d["acknowledged"] != true {
					if acked > 0 {
						t.Errorf("a shown finding after an acknowledged one: %s", msg)
					}
					if strings.Contains(msg, "acknowledged") {
						t.Errorf("a shown finding says acknowledged: %s", msg)
					}
					continue
				}
				acked++
				if d["severity"] != "warning" || d["code"] != "pkce-off" || d["field"] != "auth.oauth.pkce" ||
					d["reason"] != "the provider answers invalid_request to code_challenge" {
					t.Errorf("acknowledged warning %v", d)
				}
				if want := "up.yaml:10:11: acknowledged warning: auth.oauth.pkce: "; !strings.HasPrefix(msg, want) ||
					!strings.HasSuffix(msg, "[pkce-off] (ignore_warnings: the provider answers invalid_request to code_challenge)") {
					t.Errorf("message %q, want it to start %q and end with the code and reason", msg, want)
				}
			}
			if acked != c.acked {
				t.Errorf("%d diagnostics acknowledged, want %d", acked, c.acked)
			}
		})
	}
}

// TestOpenAPIValidateAnswers: the real answers of POST
// /v1/definitions/validate validate against the response schema the
// document declares, which forbids members it does not list, so the one
// cannot drift from the other.
func TestOpenAPIValidateAnswers(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(server.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatal(err)
	}
	op := doc.Paths.Find("/v1/definitions/validate").Post
	schema := op.Responses.Status(200).Value.Content.Get("application/json").Schema.Value
	e := newEnv(t, t.TempDir()+"/connector.db", envOptions{})
	seen := map[string]bool{}
	for _, c := range validationCases {
		out := postValidate(t, e, c.yaml)
		if err := schema.VisitJSON(out, openapi3.EnableJSONSchema2020()); err != nil {
			data, _ := json.Marshal(out)
			t.Errorf("%s: the answer does not match openapi.json: %v\n%s", c.name, err, data)
		}
		for _, d := range out["diagnostics"].([]any) {
			for k := range d.(map[string]any) {
				seen[k] = true
			}
		}
		// The check must be able to fail: an undeclared member does.
		out["diagnostics"] = append(out["diagnostics"].([]any), map[string]any{"severity": "error", "file": "x", "message": "m", "hint": "h"})
		if schema.VisitJSON(out, openapi3.EnableJSONSchema2020()) == nil {
			t.Errorf("%s: a diagnostic with an undeclared member matches the schema", c.name)
		}
	}
	for _, k := range []string{"severity", "file", "line", "column", "field", "code", "message", "acknowledged", "reason"} {
		if !seen[k] {
			t.Errorf("no answer had a diagnostic with %q: the cases do not cover the schema", k)
		}
	}
}
