package readfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

type readCase struct {
	name, path string
	want       string // substring of the error; "" means success
}

func TestRead(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, n int) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(strings.Repeat("a", n)), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	atLimit := write("at-limit", 100)
	over := write("over", 101)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(atLimit, link); err != nil {
		t.Fatal(err)
	}
	tests := []readCase{
		{"at the limit", atLimit, ""},
		{"symlink to a regular file", link, ""},
		{"one byte over", over, "it is larger than 100 bytes, the limit for a test file"},
		{"directory", dir, "it is a directory, not a regular file; a test file must be a regular file"},
		{"missing", filepath.Join(dir, "nope"), "no such file"},
	}
	tests = append(tests, specialFiles(t, dir)...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := Read(tt.path, 100, "a test file")
			if tt.want == "" {
				if err != nil || len(data) != 100 {
					t.Fatalf("Read = %d bytes, %v; want 100 bytes", len(data), err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			if data != nil {
				t.Errorf("data returned with the error")
			}
		})
	}
}

func TestReadFS(t *testing.T) {
	fsys := fstest.MapFS{
		"ok.yaml":  {Data: []byte("12345")},
		"big.yaml": {Data: []byte("123456")},
		"dir.yaml": {Mode: os.ModeDir},
		"dev.yaml": {Mode: os.ModeDevice},
	}
	if data, err := ReadFS(fsys, "ok.yaml", 5, "a test file"); err != nil || string(data) != "12345" {
		t.Errorf("ok.yaml: %q, %v", data, err)
	}
	for name, want := range map[string]string{
		"big.yaml": "it is larger than 5 bytes, the limit for a test file",
		"dir.yaml": "it is a directory",
		"dev.yaml": "it is a device",
	} {
		if _, err := ReadFS(fsys, name, 5, "a test file"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one containing %q", name, err, want)
		}
	}
}

func TestSize(t *testing.T) {
	for n, want := range map[int64]string{4 * MiB: "4 MiB", 64 * KiB: "64 KiB", 1000: "1000 bytes", MiB + 1: "1048577 bytes"} {
		if got := Size(n); got != want {
			t.Errorf("Size(%d) = %q, want %q", n, got, want)
		}
	}
}
