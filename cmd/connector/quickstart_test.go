package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestREADMEQuickStartCompiles compiles the Go quick start of the top-level
// README.md as a function body, so that it keeps matching the real API: a
// renamed method or a changed signature fails here, not in a reader's editor.
func TestREADMEQuickStartCompiles(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program")
	}
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	i := strings.Index(s, "## Go quick start")
	if i < 0 {
		t.Fatal(`README.md has no "## Go quick start" section`)
	}
	m := regexp.MustCompile("(?s)```go\n(.*?)```").FindStringSubmatch(s[i:])
	if m == nil {
		t.Fatal("the Go quick start has no ```go block")
	}
	program := `package main

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/store/filestore"
	"github.com/connector-engine/connector/definitions"
)

func quickstart(ctx context.Context, w http.ResponseWriter, r *http.Request, yamlBytes []byte,
	keyFile, path, clientID, clientSecret string, process func(json.RawMessage)) error {
` + m[1] + `
	_ = err
	return nil
}

func main() { _ = quickstart }
`
	// Inside the module, so that it builds against this tree.
	dir, err := os.MkdirTemp(".", "quickstart-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(program), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", "build", "-o", os.DevNull, "./"+dir).CombinedOutput()
	if err != nil {
		t.Fatalf("the README's Go quick start does not compile against this tree:\n%s\nprogram:\n%s", out, program)
	}
}
