//go:build unix

package connector

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/connector-engine/connector/definitions"
)

// TestConnectionFileLimits: a connection file, the definition file it names
// and every ${file:} reference are read only when they are regular files
// within a bound (1 MiB, 4 MiB, 64 KiB). client_id: ${file:/dev/zero} and a
// connection file symlinked to /dev/zero used to end in "fatal error: out
// of memory"; a FIFO blocked forever.
func TestConnectionFileLimits(t *testing.T) {
	const base = "definition: procore\nclient_id: cid\nclient_secret: literal\nredirect_uri: " + psCallback + "\n"
	sparse := func(t *testing.T, path string, size int64) {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) string // returns the connection file
		want  []string
	}{
		{"client_id from /dev/zero", func(t *testing.T, dir string) string {
			return psWriteFile(t, dir, "conn.yaml", strings.Replace(base, "cid", "${file:/dev/zero}", 1), 0o600)
		}, []string{"conn.yaml:2: client_id: cannot read ${file:/dev/zero}", "it is a device, not a regular file; a ${file:} reference must be a regular file"}},
		{"secret from a FIFO", func(t *testing.T, dir string) string {
			if err := syscall.Mkfifo(filepath.Join(dir, "secret"), 0o600); err != nil {
				t.Fatal(err)
			}
			return psWriteFile(t, dir, "conn.yaml", strings.Replace(base, "literal", "${file:secret}", 1), 0o600)
		}, []string{"conn.yaml:3: client_secret: cannot read ${file:secret}", "it is a named pipe, not a regular file"}},
		{"secret file over 64 KiB", func(t *testing.T, dir string) string {
			sparse(t, filepath.Join(dir, "secret"), 64<<10+1)
			return psWriteFile(t, dir, "conn.yaml", strings.Replace(base, "literal", "${file:secret}", 1), 0o600)
		}, []string{"conn.yaml:3: client_secret: cannot read ${file:secret}", "it is larger than 64 KiB, the limit for a ${file:} reference"}},
		{"connection file is /dev/zero behind a symlink", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "conn.yaml")
			if err := os.Symlink("/dev/zero", p); err != nil {
				t.Fatal(err)
			}
			return p
		}, []string{"cannot read connection file conn.yaml: it is a device, not a regular file; a connection file must be a regular file"}},
		{"connection file over 1 MiB", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "conn.yaml")
			sparse(t, p, 1<<20+1)
			return p
		}, []string{"cannot read connection file conn.yaml: it is larger than 1 MiB, the limit for a connection file"}},
		{"definition file is /dev/zero behind a symlink", func(t *testing.T, dir string) string {
			if err := os.Symlink("/dev/zero", filepath.Join(dir, "x.yaml")); err != nil {
				t.Fatal(err)
			}
			return psWriteFile(t, dir, "conn.yaml", strings.Replace(base, "procore", "x.yaml", 1), 0o600)
		}, []string{"conn.yaml:1: definition: definition file: cannot read definition file x.yaml: it is a device, not a regular file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := tt.setup(t, dir)
			c, _, err := LoadConnectionFile(path, definitions.Builtin())
			if err == nil {
				t.Fatalf("no error; want one containing %q", tt.want)
			}
			if c != nil {
				t.Errorf("got a connection with the error")
			}
			msg := strings.ReplaceAll(err.Error(), dir+string(filepath.Separator), "")
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error does not contain %q:\n%v", w, msg)
				}
			}
		})
	}
}
