package server_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/connector-engine/connector/connector/server"
)

func TestOpenAPIValid(t *testing.T) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(server.OpenAPI)
	if err != nil {
		t.Fatalf("openapi.json does not load: %v", err)
	}
	if doc.OpenAPIMajorMinor() != "3.1" {
		t.Fatalf("openapi.json is version %s, want 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json is not valid: %v", err)
	}
}

// TestOpenAPICoversRoutes: every route the server registers is in the
// document, and every operation of the document is a route.
func TestOpenAPICoversRoutes(t *testing.T) {
	e := newEnv(t, t.TempDir()+"/connector.db", envOptions{})
	doc, err := openapi3.NewLoader().LoadFromData(server.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	registered := map[string]bool{}
	for _, p := range e.replicas[0].srv.Patterns() {
		method, path, ok := strings.Cut(p, " ")
		if !ok { // a pattern without a method serves every method
			path = p
			for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"} {
				registered[m+" "+strings.ReplaceAll(path, "...}", "}")] = true
			}
			continue
		}
		registered[method+" "+strings.ReplaceAll(path, "...}", "}")] = true
	}
	var missing, extra []string
	for r := range registered {
		if !documented[r] {
			missing = append(missing, r)
		}
	}
	for d := range documented {
		if !registered[d] {
			extra = append(extra, d)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	if len(missing)+len(extra) > 0 {
		t.Fatalf("routes not in openapi.json: %v\noperations in openapi.json the server does not serve: %v", missing, extra)
	}
	r := e.call(0, "GET", "/v1/openapi.json", "", nil)
	if r.status != 200 || string(r.body) != string(server.OpenAPI) {
		t.Fatalf("/v1/openapi.json: %d", r.status)
	}
}

// TestOpenAPIValidatorCatches keeps TestOpenAPIValid honest: a document
// with a dangling reference or a path parameter it does not declare fails.
func TestOpenAPIValidatorCatches(t *testing.T) {
	for _, bad := range []string{
		strings.Replace(string(server.OpenAPI), `"#/components/schemas/Token"`, `"#/components/schemas/Nope"`, 1),
		strings.Replace(string(server.OpenAPI), `"/v1/oauth-clients/{id}/rotate-secret"`, `"/v1/oauth-clients/{client}/rotate-secret"`, 1),
	} {
		doc, err := openapi3.NewLoader().LoadFromData([]byte(bad))
		if err == nil {
			err = doc.Validate(context.Background())
		}
		if err == nil {
			t.Error("a broken document validated")
		}
	}
}
