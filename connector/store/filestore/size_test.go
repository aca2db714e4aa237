package filestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/connector-engine/connector/connector/store/storetest"
)

// A store file over the cap is refused by every reader (the cached one of
// Get and List, and the one of writers) without being read into memory,
// and a write that would grow the file past it fails with nothing written.
func TestFileSizeCap(t *testing.T) {
	old := maxFileSize
	maxFileSize = 8 << 10
	t.Cleanup(func() { maxFileSize = old })
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "store.json")
	s := openStore(t, path, storetest.NewSealer(t))
	if _, err := s.Put(ctx, storetest.Record("conn-1")); err != nil {
		t.Fatal(err)
	}

	// Growing past the cap: refused, the file as it was.
	before, _ := os.ReadFile(path)
	var putErr error
	for i := 2; putErr == nil && i < 1000; i++ {
		before, _ = os.ReadFile(path)
		_, putErr = s.Put(ctx, storetest.Record(fmt.Sprintf("conn-%d", i)))
	}
	if putErr == nil || !strings.Contains(putErr.Error(), "would grow past 8 KiB") {
		t.Fatalf("filling the store past its cap: %v; want a refusal", putErr)
	}
	if !strings.Contains(putErr.Error(), "nothing was written") || !strings.Contains(putErr.Error(), "sqlite://") {
		t.Errorf("error %q does not say nothing was written and what to do", putErr)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
		t.Error("a refused write changed the file")
	}

	// A file replaced by something larger than the cap.
	huge := append([]byte(`{"format": 1, "connections": [`), bytes.Repeat([]byte(" "), int(maxFileSize))...)
	replaceFile(t, path, append(huge, "]}"...))
	_, openErr := Open(path, storetest.NewSealer(t))
	_, getErr := s.Get(ctx, "conn-1")
	_, listErr := s.List(ctx)
	_, putErr = s.Put(ctx, storetest.Record("conn-x"))
	for _, err := range []error{openErr, getErr, listErr, putErr} {
		if err == nil {
			t.Fatal("a store file over the cap was read")
		}
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "larger than 8 KiB") {
			t.Errorf("error %q should be ErrCorrupt, name %s and say it is too large", err, path)
		}
	}
	if after, _ := os.ReadFile(path); len(after) != len(huge)+2 {
		t.Error("the oversized file was rewritten")
	}
}
