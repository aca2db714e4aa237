//go:build unix

package readfile

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// specialFiles are the files that used to exhaust memory (/dev/zero, also
// behind a symlink named like a definition) or block (a FIFO).
func specialFiles(t *testing.T, dir string) []readCase {
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	devLink := filepath.Join(dir, "dev.yaml")
	if err := os.Symlink("/dev/zero", devLink); err != nil {
		t.Fatal(err)
	}
	return []readCase{
		{"device", "/dev/zero", "it is a device, not a regular file"},
		{"symlink to a device", devLink, "it is a device, not a regular file"},
		{"named pipe (never opened, so never blocks)", fifo, "it is a named pipe, not a regular file"},
	}
}
