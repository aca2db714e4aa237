//go:build unix

package main

import (
	"io"
	"strings"
	"testing"
)

// TestReadDataLimits: -d @FILE reads only a regular file within the bound
// stdin has (64 MiB); -d @/dev/zero used to exhaust memory.
func TestReadDataLimits(t *testing.T) {
	if _, err := readData("@/dev/zero"); err == nil || !strings.Contains(err.Error(), "it is a device, not a regular file; a request body file (-d @FILE) must be a regular file") {
		t.Errorf("-d @/dev/zero: %v", err)
	}
	if _, err := readData("@" + t.TempDir()); err == nil || !strings.Contains(err.Error(), "it is a directory") {
		t.Errorf("-d @DIR: %v", err)
	}
}

// TestReadDataStdinLimit: -d @- refuses a body over 64 MiB instead of
// cutting it off (issue 13).
func TestReadDataStdinLimit(t *testing.T) {
	defer func(r io.Reader) { stdin = r }(stdin)
	stdin = io.LimitReader(zeros{}, maxBody+1)
	_, err := readData("@-")
	if err == nil || err.Error() != "reading the body from stdin (-d @-): it is larger than 64 MiB, the limit for a request body; nothing was sent" {
		t.Errorf("-d @- with 64 MiB + 1: %v", err)
	}
	stdin = strings.NewReader(`{"a":1}`)
	if b, err := readData("@-"); err != nil || string(b) != `{"a":1}` {
		t.Errorf("-d @-: %q, %v", b, err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
