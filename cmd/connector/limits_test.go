//go:build unix

package main

import (
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
