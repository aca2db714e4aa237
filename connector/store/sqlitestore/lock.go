package sqlitestore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/store/internal/flock"
)

var errStoreClosed = errors.New("sqlitestore: store closed")

// Lock takes the cross-process lock of connection id: a flock on the file
// <database>.locks/<sha256 of id>.lock, opened anew by every call, so that
// it excludes goroutines of this process as well as other processes (flock
// locks belong to the open file, not the process). It waits until ctx ends;
// then the error wraps both store.ErrLockTimeout and the context's error.
// The lock is released by unlock, by Close, or by the kernel when the
// holding process dies. It never touches the database, so a refresh holding
// it leaves every reader and writer of the file free.
func (s *Store) Lock(ctx context.Context, id string) (unlock func() error, err error) {
	// The context is checked by flock.Wait, so that an ended context always
	// gives ErrLockTimeout, whether it ended before or during the wait.
	if s.closed.Load() {
		return nil, s.errClosed()
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(s.life, func() { cancel(errStoreClosed) })
	defer stop()

	// Hashing gives every id, whatever its characters, a safe file name.
	sum := sha256.Sum256([]byte(id))
	f, err := flock.Open(filepath.Join(s.locksDir, hex.EncodeToString(sum[:])+".lock"))
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: opening the lock of connection %q beside %s: %w", id, s.path, err)
	}
	if err := flock.Wait(ctx, f); err != nil {
		f.Close()
		switch {
		case errors.Is(err, errStoreClosed):
			return nil, s.errClosed()
		case ctx.Err() != nil:
			return nil, fmt.Errorf("sqlitestore: connection %q: %w: another worker (in this or another process) held it until the wait ended (%w)", id, store.ErrLockTimeout, err)
		}
		return nil, fmt.Errorf("sqlitestore: locking connection %q beside %s: %w", id, s.path, err)
	}
	h := &heldLock{s: s, id: id, f: f}
	s.heldMu.Lock()
	if s.closed.Load() { // Close ran meanwhile and will not see h
		s.heldMu.Unlock()
		_ = h.unlock()
		return nil, s.errClosed()
	}
	s.held[h] = struct{}{}
	s.heldMu.Unlock()
	return h.unlock, nil
}

// heldLock is one taken lock and the open lock file holding it.
type heldLock struct {
	s    *Store
	id   string
	f    *os.File
	once sync.Once
	err  error
}

// unlock releases the lock once; later calls return what the first did.
func (h *heldLock) unlock() error {
	h.once.Do(func() {
		h.err = flock.Unlock(h.f)
		if cerr := h.f.Close(); h.err == nil && cerr != nil {
			h.err = cerr
		}
		if h.err != nil {
			h.err = fmt.Errorf("sqlitestore: unlocking connection %q beside %s: %w", h.id, h.s.path, h.err)
		}
		h.s.heldMu.Lock()
		delete(h.s.held, h)
		h.s.heldMu.Unlock()
	})
	return h.err
}
