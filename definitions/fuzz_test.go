package definitions_test

import (
	"errors"
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
