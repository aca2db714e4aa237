package definitions_test

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/connector-engine/connector/definitions"
	"github.com/connector-engine/connector/internal/markdown"
)

// readmeAnchors returns the anchors of definitions/README.md: explicit
// <a id="..."></a> ones and GitHub's heading ids, each with the heading of
// the section it is in (for messages).
func readmeAnchors(t *testing.T) (anchors map[string]string, text string) {
	t.Helper()
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	return markdown.Anchors(string(data)), string(data)
}

// Every key of schemas/definition.schema.json has its entry, with an anchor,
// in definitions/README.md; a key added to the schema without one fails
// here with the row to add.
func TestEverySchemaKeyIsDocumented(t *testing.T) {
	anchors, text := readmeAnchors(t)
	keys := definitions.SchemaKeys()
	if len(keys) < 80 {
		t.Fatalf("SchemaKeys found %d keys; the schema walk is broken", len(keys))
	}
	for _, k := range keys {
		if _, ok := anchors[k]; ok {
			continue
		}
		parent, leaf := "", k
		if i := strings.LastIndexByte(k, '.'); i >= 0 {
			parent, leaf = k[:i], k[i+1:]
		}
		where := "the table of top-level keys (## Top-level keys)"
		if parent != "" {
			sibling := ""
			for _, o := range keys {
				if _, ok := anchors[o]; ok && strings.HasPrefix(o, parent+".") && !strings.Contains(o[len(parent)+1:], ".") {
					sibling = o
					break
				}
			}
			if h, ok := anchors[sibling]; ok {
				where = "the table of section " + strings.TrimSpace(h) + " (beside " + sibling + ")"
			} else if h, ok := anchors[parent]; ok {
				where = "the table of section " + strings.TrimSpace(h) + " (where " + parent + " is documented)"
			} else {
				where = "a table for " + parent + " (it has no anchor either)"
			}
		}
		t.Errorf("schemas/definition.schema.json declares the key %s, but definitions/README.md does not document it.\n"+
			"Add a row to %s:\n    | <a id=\"%s\"></a>`%s` | <type> | <default> | <what it does> |",
			k, where, k, leaf)
	}
	// Anchors name schema keys only (or headings): a renamed key leaves
	// no stale anchor behind.
	explicit := regexp.MustCompile(`<a id="([^"]+)"></a>`)
	for _, m := range explicit.FindAllStringSubmatch(text, -1) {
		if !slices.Contains(keys, m[1]) && !slices.Contains(definitions.WarningCodes(), m[1]) {
			t.Errorf("definitions/README.md has the anchor %q, which is no key of schemas/definition.schema.json nor a warning code; rename or remove it", m[1])
		}
	}
}

// Every finding the validator reports links to a section that exists: its
// field's DocAnchor is an anchor of definitions/README.md. The fields come
// from the golden corpus of broken and risky definitions, which covers the
// rules, and from every schema key.
func TestEveryFindingLinksToItsSection(t *testing.T) {
	anchors, _ := readmeAnchors(t)
	fields := map[string]string{} // field -> example finding
	for _, k := range definitions.SchemaKeys() {
		fields[k] = "schema key " + k
	}
	files, err := filepath.Glob("testdata/*/*.yaml")
	if err != nil || len(files) < 30 {
		t.Fatalf("corpus: %d files, %v", len(files), err)
	}
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		set, err := definitions.Parse(definitions.Builtin(), definitions.File{Path: path, Data: data})
		var diags []definitions.Diagnostic
		var de *definitions.Error
		if errors.As(err, &de) {
			diags = de.Diagnostics
		} else if set != nil {
			diags = set.Warnings()
		}
		for _, d := range diags {
			fields[d.Field] = d.String()
		}
	}
	if len(fields) < 100 {
		t.Errorf("only %d distinct fields; the corpus lost its coverage", len(fields))
	}
	for field, example := range fields {
		d := definitions.Diagnostic{Field: field}
		a := d.DocAnchor()
		if _, ok := anchors[a]; !ok {
			t.Errorf("the finding %q links to %s, which definitions/README.md lacks; add <a id=%q></a> to the row of that key (or a heading)",
				example, d.DocLink(), a)
		}
	}
}

func TestDocAnchor(t *testing.T) {
	for _, tc := range []struct{ field, want string }{
		{"", "validation-findings"},
		{"name", "name"},
		{"environments.sandbox.base_url", "environments.base_url"},
		{"environments.sandbox", "environments"},
		{"fields.CompanyId.pattern", "fields.pattern"},
		{"auth.oauth.token_request.params", "auth.oauth.token_request.params"},
		{"auth.oauth.token_response.default_expires_in", "auth.oauth.token_response.default_expires_in"},
		{"request.headers.Procore-Company-Id", "request.headers"},
		{"request.pagination.cursor_path", "request.pagination.cursor_path"},
		{"actions.list_rfis.pagination.cursor_path", "actions.pagination.cursor_path"},
		{"actions.create_rfi.input.properties.rfi.type", "actions.input.properties"},
		{"actions.create_rfi.body.rfi", "actions.body"},
		{"nonsense.key", "validation-findings"},
		{"auth.oauth.unknown_key", "auth.oauth"},
	} {
		d := definitions.Diagnostic{Field: tc.field}
		if got := d.DocAnchor(); got != tc.want {
			t.Errorf("DocAnchor(%q) = %q, want %q", tc.field, got, tc.want)
		}
	}
	if got := (definitions.Diagnostic{Field: "fields.X.type"}).DocLink(); got != "definitions/README.md#fields.type" {
		t.Errorf("DocLink = %q", got)
	}
}
