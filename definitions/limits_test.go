package definitions_test

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/connector-engine/connector/definitions"
)

// nestedInput is a definition whose action input x nests items depth
// levels deep, written in flow style on line 17 (2,000 levels are 18 KB).
func nestedInput(depth int) string {
	return minimal + "actions:\n  a:\n    path: /x\n    query: {x: '${x}'}\n    input:\n      type: object\n      properties:\n        x: " +
		strings.Repeat("{items: ", depth) + "{type: string}" + strings.Repeat("}", depth) + "\n"
}

// TestInputSchemaLimits: an input schema is bounded in depth and node count
// before the validator compiles it (2,000 levels of items took ~9 s, 10,000
// minutes and 790 MB), with an error at the node past the bound.
func TestInputSchemaLimits(t *testing.T) {
	wide := func(n int) string {
		var b strings.Builder
		b.WriteString(minimal + "actions:\n  a:\n    path: /x\n    input:\n      type: object\n      properties:\n")
		for i := range n {
			fmt.Fprintf(&b, "        p%d: {type: string, description: d}\n", i)
		}
		return b.String()
	}
	tests := []struct {
		name, src string
		want      string // the one diagnostic; "" means accepted
	}{
		{"nesting within the bound", nestedInput(60), ""},
		{"nesting 2,000 deep", nestedInput(2000),
			"a.yaml:17:509: actions.a.input: the input schema nests more than 64 levels deep here, the limit for an input schema; flatten it, or name the repeated part under $defs and $ref it"},
		{"nesting 9,000 deep (YAML stops at 10,000)", nestedInput(9000), "the input schema nests more than 64 levels deep here"},
		{"a few thousand properties", wide(3000), ""},
		{"too many properties", wide(5000),
			"actions.a.input: the input schema has more than 20000 nodes (aliases counted as they expand), the limit for an input schema"},
	}
	// Aliases count as they expand: 10 references to 10 references to ... a
	// schema, 31,111 nodes from a few lines (and within the file's own bound).
	bomb := "actions:\n  a:\n    path: /x\n    input:\n      type: object\n      $defs:\n        l0: &l0 {type: string}\n"
	for i := 1; i <= 4; i++ {
		bomb += fmt.Sprintf("        l%d: &l%d [", i, i) + strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*l%d, ", i-1), 10), ", ") + "]\n"
	}
	tests = append(tests, struct{ name, src, want string }{"alias bomb", minimal + bomb, "more than 20000 nodes"})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := parse(t, file("a.yaml", tt.src))
			var errs []string
			for _, d := range diags {
				if d.Severity == definitions.SeverityError {
					errs = append(errs, d.String())
				}
			}
			if tt.want == "" {
				if len(errs) > 0 {
					t.Fatalf("unexpected errors:\n%s", strings.Join(errs, "\n"))
				}
				return
			}
			if len(errs) != 1 || !strings.Contains(errs[0], tt.want) {
				t.Fatalf("errors:\n%s\nwant exactly one containing %q", strings.Join(errs, "\n"), tt.want)
			}
		})
	}
}

// TestReadFilesLimits: only regular files of at most MaxFileSize are read;
// /dev/zero (given, or behind a symlink named x.yaml in a directory) used to
// end in "fatal error: out of memory".
func TestReadFilesLimits(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.yaml")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(definitions.MaxFileSize + 1); err != nil { // sparse: costs no disk
		t.Fatal(err)
	}
	f.Close()
	tests := []struct {
		name  string
		paths []string
		want  string
	}{
		{"too large", []string{big}, "cannot read definition file " + big + ": it is larger than 4 MiB, the limit for a definition file"},
		{"too large in a directory", []string{dir}, "cannot read definitions directory " + dir + ": big.yaml: it is larger than 4 MiB"},
	}
	if runtime.GOOS != "windows" {
		devDir := t.TempDir()
		if err := os.Symlink("/dev/zero", filepath.Join(devDir, "x.yaml")); err != nil {
			t.Fatal(err)
		}
		tests = append(tests,
			struct {
				name  string
				paths []string
				want  string
			}{"device", []string{"/dev/zero"}, "cannot read definition file /dev/zero: it is a device, not a regular file; a definition file must be a regular file"},
			struct {
				name  string
				paths []string
				want  string
			}{"symlink to a device in a directory", []string{devDir}, "cannot read definitions directory " + devDir + ": x.yaml: it is a device, not a regular file"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files, err := definitions.ReadFiles(tt.paths...)
			if err == nil || err.Error() != tt.want && !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("ReadFiles = %d files, %v\nwant an error starting %q", len(files), err, tt.want)
			}
			if _, err := definitions.Load(tt.paths...); err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("Load: %v, want the same error", err)
			}
		})
	}
	// At the bound a file is read (and then judged as YAML).
	at := filepath.Join(dir, "at.yaml")
	if err := os.WriteFile(at, []byte(minimal+strings.Repeat("#", definitions.MaxFileSize-len(minimal))), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := definitions.ReadFiles(at); err != nil {
		t.Fatalf("a file of exactly MaxFileSize: %v", err)
	}
}
