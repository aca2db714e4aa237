package definitions_test

import (
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/connector-engine/connector/definitions"
)

// FuzzParse feeds arbitrary bytes to the loader: it must never panic, and it
// must either accept the definition or explain every error with a position
// inside the file.
func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	for _, dir := range []string{"builtin", "testdata/invalid", "testdata/warnings"} {
		paths, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		for _, p := range paths {
			if data, err := os.ReadFile(p); err == nil {
				f.Add(data)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := definitions.Parse(definitions.Builtin(), definitions.File{Path: "f.yaml", Data: data})
		if err == nil {
			for _, d := range set.All() {
				if d.Source == "f.yaml" && len(d.Environments) == 0 {
					t.Fatalf("accepted a definition without environments")
				}
			}
			return
		}
		var de *definitions.Error
		if !errors.As(err, &de) {
			t.Fatalf("error is %T, not *definitions.Error: %v", err, err)
		}
		lines := strings.Count(string(data), "\n") + 2
		for _, d := range de.Diagnostics {
			if d.File != "f.yaml" {
				t.Fatalf("diagnostic for unknown file: %s", d)
			}
			if d.Line < 0 || d.Line > lines || d.Message == "" {
				t.Fatalf("diagnostic out of the file: %s", d)
			}
		}
	})
}

// FuzzParseInputs feeds arbitrary command-line inputs to ParseInputs and
// renders what it accepts: nothing may panic, errors are *InputError,
// bodies are JSON, and no value escapes its path segment or adds a query
// parameter.
func FuzzParseInputs(f *testing.F) {
	set, err := definitions.Parse(nil, definitions.File{Path: "things.yaml", Data: []byte(testDef)})
	if err != nil {
		f.Fatal(err)
	}
	d, _ := set.Get("things")
	vals, err := d.Values("", map[string]string{"Account": "12", "Region": "eu"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint8(0), "name", "a/b?c", "fields", "x&y=z")
	f.Add(uint8(0), "name", "..", "limit", "10")
	f.Add(uint8(2), "thing.size", "1.5", "name", "n")
	f.Add(uint8(2), "thing", `{"size":1,"kind":"k"}`, "id", "%2e%2e")
	f.Add(uint8(2), "count", "-0", "tag", "\u0000")
	f.Add(uint8(3), "doc", `{"a":[1,{"b":null}]}`, "doc.a", "1")
	f.Fuzz(func(t *testing.T, which uint8, k1, v1, k2, v2 string) {
		a := d.Actions[int(which)%len(d.Actions)]
		in, err := a.ParseInputs(map[string]string{k1: v1, k2: v2})
		if err != nil {
			var ie *definitions.InputError
			if !errors.As(err, &ie) || len(ie.Problems) == 0 {
				t.Fatalf("ParseInputs error %T: %v", err, err)
			}
			return
		}
		if _, err := json.Marshal(in); err != nil {
			t.Fatalf("ParseInputs gave what JSON cannot carry: %#v", in)
		}
		r, err := a.Render(vals, in)
		if err != nil {
			return
		}
		if r.Body != nil && !json.Valid(r.Body) {
			t.Fatalf("body is not JSON: %q", r.Body)
		}
		u, err := url.Parse(r.Path)
		if err != nil {
			t.Fatalf("rendered path %q does not parse: %v", r.Path, err)
		}
		if u.Host != "" || u.Scheme != "" || u.Fragment != "" || !strings.HasPrefix(u.EscapedPath(), "/") {
			t.Fatalf("rendered path %q leaves the base URL", r.Path)
		}
		want := map[string]int{"get_thing": 3, "put_thing": 2, "search": 1, "replace": 1}[a.Name]
		if segs := strings.Count(u.EscapedPath(), "/"); segs != want+1 && a.Name == "get_thing" || segs != want && a.Name != "get_thing" {
			t.Fatalf("rendered path %q has %d segments", r.Path, segs)
		}
		// As written or percent-decoded (RFC 3986 6.2.2.2 resolves %2E%2E
		// as ".."): the templates package refuses such values.
		for _, seg := range strings.Split(u.EscapedPath(), "/") {
			if dec, _ := url.PathUnescape(seg); dec == "." || dec == ".." {
				t.Fatalf("rendered path %q has a dot segment", r.Path)
			}
		}
		for k := range u.Query() {
			if !map[string]bool{"fields": true, "limit": true, "region": true, "sort": true, "range": true, "v": true, "q": true}[k] {
				t.Fatalf("rendered path %q has the parameter %q", r.Path, k)
			}
		}
	})
}

// BenchmarkParse1000 loads and validates 1,000 distinct definitions in one
// set, as a platform with many connectors would at start-up.
func BenchmarkParse1000(b *testing.B) {
	files := make([]definitions.File, 1000)
	for i := range files {
		name := "acme-" + strconv.Itoa(i)
		src := strings.Replace(minimal, "name: acme", "name: "+name, 1) + `fields:
  CompanyId: {type: integer, required: true, pattern: '[0-9]+'}
request:
  headers:
    X-Company: ${CompanyId}
`
		files[i] = definitions.File{Path: name + ".yaml", Data: []byte(src)}
	}
	base := definitions.Builtin()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		set, err := definitions.Parse(base, files...)
		if err != nil || len(set.Names()) != 1003 {
			b.Fatalf("%v %d", err, len(set.Names()))
		}
	}
}
