// Package filestore is the embedded store.Store: every connection in one JSON
// file that a person can read, with each token sealed. It owns that file's
// format, its crash-safe replacement and the flock(2) locking that lets any
// number of goroutines and processes share it without losing an update.
//
// Locking: every read-modify-write (Put, Delete) holds an exclusive flock on
// the sidecar file <store>.lock and re-reads the store under it. Get and List
// take no lock: the file is only ever replaced by rename(2), which swaps the
// directory entry atomically, so a reader sees either the old or the new file
// whole, and not locking means a reader never waits for a writer's fsyncs.
// Each connection also has its own lock file under <store>.locks/ for Lock,
// which callers hold across a refresh.
package filestore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/store/internal/flock"
)

// EnvStore names the environment variable that chooses the store: a file path
// for this package, or a postgres:// URL for the PostgreSQL store.
const EnvStore = "CONNECTOR_STORE"

// DefaultPath is where the store file lives unless told otherwise:
// $CONNECTOR_STORE when it is set and not a postgres:// URL, else
// $XDG_STATE_HOME/connector/store.json, else ~/.local/state/connector/store.json.
func DefaultPath() (string, error) {
	if p := os.Getenv(EnvStore); p != "" && !isPostgresURL(p) {
		return p, nil
	}
	// The XDG spec says a relative value is invalid and must be ignored.
	if d := os.Getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "connector", "store.json"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("filestore: no place for the connection store: set %s to a file path (%w)", EnvStore, err)
	}
	return filepath.Join(home, ".local", "state", "connector", "store.json"), nil
}

func isPostgresURL(s string) bool {
	s = strings.ToLower(s)
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// Store is a store.Store kept in one file. It is safe for concurrent use by
// goroutines and by processes opening the same path.
type Store struct {
	path     string
	lockPath string // flocked by every read-modify-write
	locksDir string // one lock file per connection, for Lock
	sealer   *store.Sealer
	snap     snapshot // what Get and List read
	closed   atomic.Bool
}

var _ store.Store = (*Store)(nil)

// Open opens the store file at path, creating its directory (mode 0700) but
// not the file, which the first Put writes. An existing file that cannot be
// read or parsed is an error now rather than at first use.
func Open(path string, sealer *store.Sealer) (*Store, error) {
	if path == "" {
		return nil, errors.New("filestore: no store path given")
	}
	if sealer == nil {
		return nil, errors.New("filestore: no sealer given; the store needs the secret key to seal tokens")
	}
	s := &Store{
		path:     path,
		lockPath: path + ".lock",
		locksDir: path + ".locks",
		sealer:   sealer,
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("filestore: creating the store directory: %w", err)
	}
	if err := os.MkdirAll(s.locksDir, 0o700); err != nil {
		return nil, fmt.Errorf("filestore: creating the lock directory: %w", err)
	}
	if _, err := s.snap.load(path); err != nil {
		return nil, err
	}
	s.tidy()
	return s, nil
}

// tidy removes what a crashed writer left, if the store lock is free now; it
// is housekeeping, so it never waits and ignores failures.
func (s *Store) tidy() {
	f, err := flock.Open(s.lockPath)
	if err != nil {
		return
	}
	defer f.Close()
	if busy, err := flock.TryLock(f); err == nil && !busy {
		removeTemps(s.path)
	}
}

// Path is the store file's path.
func (s *Store) Path() string { return s.path }

// String names the store by its path.
func (s *Store) String() string { return "filestore(" + s.path + ")" }

func (s *Store) usable(ctx context.Context) error {
	if s.closed.Load() {
		return fmt.Errorf("filestore: the store %s is closed", s.path)
	}
	return ctx.Err()
}

// Get returns the record for id, or an error wrapping store.ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (store.Record, error) {
	if err := s.usable(ctx); err != nil {
		return store.Record{}, err
	}
	f, err := s.snap.load(s.path)
	if err != nil {
		return store.Record{}, err
	}
	i, ok := f.index(id)
	if !ok {
		return store.Record{}, fmt.Errorf("filestore: connection %q: %w", id, store.ErrNotFound)
	}
	return s.open(f.Connections[i])
}

// List returns every record ordered by ID. One record that cannot be opened
// fails the whole list, naming that record.
func (s *Store) List(ctx context.Context) ([]store.Record, error) {
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	f, err := s.snap.load(s.path)
	if err != nil {
		return nil, err
	}
	out := make([]store.Record, 0, len(f.Connections))
	for _, fr := range f.Connections {
		r, err := s.open(fr)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Put writes r durably if r.Version is the stored version (0 for a new
// record), and returns it as stored: Version incremented, UpdatedAt set to
// now, times in UTC. A stale Version gives an error wrapping
// store.ErrConflict and changes nothing.
func (s *Store) Put(ctx context.Context, r store.Record) (store.Record, error) {
	if err := s.usable(ctx); err != nil {
		return store.Record{}, err
	}
	if r.ID == "" {
		return store.Record{}, errors.New("filestore: cannot store a connection without an id")
	}
	r.RefreshStarted = r.RefreshStarted.UTC() // UTC also drops the monotonic reading, as JSON does
	r.Token = r.Token.UTC()
	// Sealing before taking the lock keeps the lock held for the write only.
	sealed, err := s.sealer.SealToken(r.ID, r.Binding, r.Token)
	if err != nil {
		return store.Record{}, err
	}
	err = s.update(ctx, func(f *fileData) (bool, error) {
		i, found := f.index(r.ID)
		var current int64
		if found {
			current = f.Connections[i].Version
		}
		if r.Version != current {
			return false, fmt.Errorf("filestore: connection %q is at version %d but the write was based on version %d: %w", r.ID, current, r.Version, store.ErrConflict)
		}
		r.Version++
		r.UpdatedAt = time.Now().UTC()
		fr := fileRecord{
			ID:             r.ID,
			Definition:     r.Definition,
			Binding:        r.Binding,
			Status:         r.Status,
			Reason:         r.Reason,
			RefreshStarted: r.RefreshStarted,
			Version:        r.Version,
			UpdatedAt:      r.UpdatedAt,
			SealedToken:    sealed,
		}
		if found {
			f.Connections[i] = fr
		} else {
			f.Connections = slices.Insert(f.Connections, i, fr)
		}
		return true, nil
	})
	if err != nil {
		return store.Record{}, err
	}
	return r, nil
}

// Delete removes the record for id; a missing record is not an error. The
// connection's lock file stays (see flock.Open).
func (s *Store) Delete(ctx context.Context, id string) error {
	if err := s.usable(ctx); err != nil {
		return err
	}
	return s.update(ctx, func(f *fileData) (bool, error) {
		i, found := f.index(id)
		if found {
			f.Connections = slices.Delete(f.Connections, i, i+1)
		}
		return found, nil
	})
}

// update runs one read-modify-write under the store lock. The file is read
// after the lock is taken, so change sees every write that finished before;
// when change reports a change the new file replaces the old before the lock
// is released.
func (s *Store) update(ctx context.Context, change func(*fileData) (bool, error)) error {
	lf, err := flock.Open(s.lockPath)
	if err != nil {
		return fmt.Errorf("filestore: opening the store lock: %w", err)
	}
	defer lf.Close() // closing releases the flock
	if err := flock.Wait(ctx, lf); err != nil {
		return fmt.Errorf("filestore: waiting for the lock of %s: %w", s.path, err)
	}
	f, err := readFile(s.path)
	if err != nil {
		return err
	}
	changed, err := change(f)
	if err != nil || !changed {
		return err
	}
	data, err := encodeFile(f)
	if err != nil {
		return err
	}
	return writeAtomic(s.path, data)
}

// Lock takes the cross-process lock of connection id, waiting until ctx ends;
// then the error wraps both store.ErrLockTimeout and the context's error. The
// lock is a flock on a file of its own, so it is released by unlock, or by the
// kernel when the holding process dies. Two Lock
// calls in one process exclude each other too: each opens the file anew, and
// flock locks belong to the open file, not the process.
func (s *Store) Lock(ctx context.Context, id string) (unlock func() error, err error) {
	// The context is checked by flock.Wait, so that an ended context always
	// gives ErrLockTimeout, whether it ended before or during the wait.
	if err := s.usable(context.Background()); err != nil {
		return nil, err
	}
	// Hashing gives every id, whatever its characters, a safe file name.
	sum := sha256.Sum256([]byte(id))
	f, err := flock.Open(filepath.Join(s.locksDir, hex.EncodeToString(sum[:])+".lock"))
	if err != nil {
		return nil, fmt.Errorf("filestore: opening the lock of connection %q: %w", id, err)
	}
	if err := flock.Wait(ctx, f); err != nil {
		f.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("filestore: connection %q: %w (%w)", id, store.ErrLockTimeout, err)
		}
		return nil, fmt.Errorf("filestore: locking connection %q: %w", id, err)
	}
	var once sync.Once
	var uerr error
	return func() error {
		once.Do(func() {
			uerr = flock.Unlock(f)
			if cerr := f.Close(); uerr == nil && cerr != nil {
				uerr = fmt.Errorf("filestore: unlocking connection %q: %w", id, cerr)
			}
		})
		return uerr
	}, nil
}

// Close marks the store closed and releases the file it keeps open. Locks
// already taken stay held until their unlock functions are called.
func (s *Store) Close() error {
	s.closed.Store(true)
	s.snap.close()
	return nil
}

// open turns a record read from the file into a store.Record, unsealing its
// token.
func (s *Store) open(fr fileRecord) (store.Record, error) {
	tok, err := s.sealer.OpenStoredToken(fr.ID, fr.Binding, fr.SealedToken, "filestore "+s.path)
	if err != nil {
		return store.Record{}, err
	}
	return store.Record{
		ID:             fr.ID,
		Definition:     fr.Definition,
		Binding:        fr.Binding,
		Token:          tok,
		Status:         fr.Status,
		Reason:         fr.Reason,
		RefreshStarted: fr.RefreshStarted,
		Version:        fr.Version,
		UpdatedAt:      fr.UpdatedAt,
	}, nil
}
