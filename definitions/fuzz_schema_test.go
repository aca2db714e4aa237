package definitions_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/connector-engine/connector/definitions"
)

// FuzzInputSchemaGuard feeds arbitrary input schemas (a YAML fragment,
// wrapped in depth levels of items) to the loader: nothing panics, every
// finding lies inside the file, a schema wrapped past the depth bound is
// never accepted, and an accepted one is within the bounds the guard
// promises the validator.
func FuzzInputSchemaGuard(f *testing.F) {
	f.Add("{type: string}", uint8(0))
	f.Add("{type: string}", uint8(64))
	f.Add("{type: string}", uint8(200))
	f.Add("{type: object, properties: {a: {type: array, items: {type: integer}}}}", uint8(10))
	f.Add("{$ref: '#/$defs/a', $defs: {a: {items: {$ref: '#/$defs/a'}}}}", uint8(1))
	f.Add("&a [*a]", uint8(0))
	f.Add("{anyOf: [{type: string}, {type: integer}]}", uint8(62))
	f.Fuzz(func(t *testing.T, frag string, depth uint8) {
		if strings.ContainsAny(frag, "\n\r") {
			return // one line: the fragment is one YAML value
		}
		src := minimal + "actions:\n  a:\n    path: /x\n    query: {x: '${x}'}\n    input:\n      type: object\n      properties:\n        x: " +
			strings.Repeat("{items: ", int(depth)) + frag + strings.Repeat("}", int(depth)) + "\n"
		set, err := definitions.Parse(nil, definitions.File{Path: "f.yaml", Data: []byte(src)})
		if err != nil {
			var de *definitions.Error
			if !errors.As(err, &de) {
				t.Fatalf("error is %T: %v", err, err)
			}
			lines := strings.Count(src, "\n") + 1
			for _, d := range de.Diagnostics {
				if d.File != "f.yaml" || d.Line < 0 || d.Line > lines || d.Message == "" {
					t.Fatalf("diagnostic out of the file: %s", d)
				}
			}
			return
		}
		if depth > 64 {
			t.Fatalf("accepted an input schema %d levels deep", depth)
		}
		d, _ := set.Get("acme")
		a, err := d.Action("a")
		if err != nil {
			t.Fatal(err)
		}
		if got := jsonDepth(t, a.Schema); got > 65 {
			t.Fatalf("accepted an input schema of depth %d", got)
		}
	})
}

// jsonDepth returns how deeply a JSON document nests.
func jsonDepth(t *testing.T, doc []byte) int {
	dec := json.NewDecoder(bytes.NewReader(doc))
	depth, most := 0, 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return most
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
			most = max(most, depth)
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
}
