package definitions_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/connector-engine/connector/definitions"
)

var update = flag.Bool("update", false, "rewrite the golden files from the current output")

// TestGoldenDiagnostics checks the exact messages, lines and columns for a
// corpus of broken definitions (testdata/invalid) and of valid but risky ones
// (testdata/warnings), the acknowledged warnings last. Review a changed
// .golden file like code.
func TestGoldenDiagnostics(t *testing.T) {
	for _, dir := range []string{"testdata/invalid", "testdata/warnings"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if dir == "testdata/invalid" && len(files) < 30 {
			t.Fatalf("the invalid corpus has %d files; keep at least 30", len(files))
		}
		for _, path := range files {
			t.Run(path, func(t *testing.T) {
				data, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				set, err := definitions.Parse(definitions.Builtin(), definitions.File{Path: path, Data: data})
				var diags []definitions.Diagnostic
				var de *definitions.Error
				switch {
				case errors.As(err, &de):
					diags = append(de.Diagnostics, de.Acknowledged...)
					if dir == "testdata/warnings" {
						t.Errorf("expected a valid definition with warnings, got errors:\n%v", err)
					}
				case err != nil:
					t.Fatalf("unexpected error type %T: %v", err, err)
				default:
					diags = append(set.Warnings(), set.Acknowledged()...)
					if dir == "testdata/invalid" {
						t.Fatalf("expected errors, the definition was accepted")
					}
					if len(diags) == 0 {
						t.Fatalf("expected warnings, got none")
					}
				}
				var b strings.Builder
				for _, d := range diags {
					b.WriteString(d.String())
					b.WriteByte('\n')
				}
				golden := strings.TrimSuffix(path, ".yaml") + ".golden"
				if *update {
					if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run go test -run TestGoldenDiagnostics -update to create it)", err)
				}
				if got := b.String(); got != string(want) {
					t.Errorf("diagnostics differ from %s\n--- got\n%s--- want\n%s", golden, got, want)
				}
			})
		}
	}
}
