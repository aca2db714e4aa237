// Package sqlitestore is the embedded SQL store.Store: every connection's
// record in tables of one SQLite database file (modernc.org/sqlite: pure Go,
// no cgo), which a program such as the runtime server shares for tables of
// its own. It owns those tables and their migrations, the sealing of tokens
// in rows, and the cross-process lock of each connection.
//
// Tables (named as pgstore's, with the connector_ prefix, so they sit beside
// the program's own):
//
//   - connector_connections: one row per connection; status, reason,
//     refresh_started, version and updated_at are columns a person can query
//     (times as RFC 3339 text in UTC, to the nanosecond), and so is binding,
//     what the token was issued for, as JSON (binding->>'tenant'); the token
//     is sealed (AES-256-GCM, bound to the connection id and the binding);
//   - connector_history: one row per Put (id, version, status, reason,
//     whether a refresh was in flight, when), never token material; the last
//     HistoryKept versions of each connection are kept;
//   - connector_schema_migrations: the migrations applied, which Open and New
//     apply themselves, each in one BEGIN IMMEDIATE transaction that re-checks
//     what is applied, so that any number of processes may start at once.
//
// Concurrency: the database runs in WAL mode, so readers never wait for a
// writer and see the last committed write. Every write is one BEGIN
// IMMEDIATE transaction, which takes SQLite's write lock before it reads, so
// writers of this and other processes queue (busy_timeout) rather than fail
// at commit, and the version check inside it makes Put a compare-and-set.
// Commits are synchronous=FULL: a Put that returned survives a power cut.
//
// Lock: SQLite has no advisory locks, and its write lock cannot be held for
// the length of a refresh without stopping every other writer of the file.
// So each connection's lock is a flock(2) on a file of its own under
// <database>.locks/, as filestore does: the kernel releases it when its
// holder dies, however it dies, with nothing to expire or guess, where a
// lease row would need a liveness check of its holder and a timeout. The
// file must be on a local file system, as SQLite's WAL mode requires anyway.
//
// A store is named, where a store location is asked for (the CLI's --store,
// $CONNECTOR_STORE, a connection's store setting), by sqlite:// followed by
// the file's path: sqlite:///var/lib/connector/state.db is an absolute path,
// sqlite://state.db a relative one (see IsURL and PathFromURL).
package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/connector-engine/connector/connector/store"
)

// HistoryKept is how many of a connection's latest versions the history keeps.
const HistoryKept = 1000

var historyKept = HistoryKept // lowered by tests

// URLPrefix starts every store location naming this store.
const URLPrefix = "sqlite://"

// IsURL reports whether s names an SQLite store (sqlite://, in any case)
// rather than a store file of filestore's or a PostgreSQL URL.
func IsURL(s string) bool {
	return len(s) >= len(URLPrefix) && strings.EqualFold(s[:len(URLPrefix)], URLPrefix)
}

// PathFromURL returns the database file's path that the store URL u names:
// everything after sqlite://, so sqlite:///srv/state.db is /srv/state.db and
// sqlite://state.db is state.db, relative to the working directory.
func PathFromURL(u string) (string, error) {
	if !IsURL(u) {
		return "", fmt.Errorf("sqlitestore: %q is not an SQLite store URL; write sqlite:// and the database file's path, e.g. sqlite:///var/lib/connector/state.db", u)
	}
	path := u[len(URLPrefix):]
	switch {
	case path == "":
		return "", fmt.Errorf("sqlitestore: the store URL %q names no file; write sqlite:// and the database file's path, e.g. sqlite:///var/lib/connector/state.db", u)
	case strings.ContainsAny(path, "?#"):
		return "", fmt.Errorf("sqlitestore: the store URL %q has a query or fragment, which the SQLite store does not take; write sqlite:// and the database file's path only", u)
	}
	return path, nil
}

// Store is a store.Store kept in an SQLite database. It is safe for
// concurrent use by goroutines, and by processes sharing the file.
type Store struct {
	db       *sql.DB
	ownDB    bool   // Close closes db: Open opened it
	path     string // the database file, for String and errors
	locksDir string // one lock file per connection, for Lock
	sealer   *store.Sealer
	get      *sql.Stmt // Get's query, prepared once per pooled connection, not once per call

	// writing queues this Store's write transactions, so that its
	// goroutines wait on a channel instead of in SQLite's busy handler,
	// which sleeps in steps; other processes still queue in busy_timeout.
	writing chan struct{}

	life    context.Context // canceled by Close: ends Lock waits
	die     context.CancelFunc
	closed  atomic.Bool
	heldMu  sync.Mutex
	held    map[*heldLock]struct{}
	closeMu sync.Mutex
}

var _ store.Store = (*Store)(nil)

// Open opens the database file at path (creating it, mode 0600, and its
// directory, 0700, when missing) with OpenDB, applies the migrations it
// lacks, and returns the store, which closes the database on Close. Tokens
// are sealed with sealer. A file that is not an SQLite database, or whose
// connector tables are not this store's, is an error now, naming the file.
func Open(path string, sealer *store.Sealer) (*Store, error) {
	return open(path, sealer, migrations)
}

func open(path string, sealer *store.Sealer, ms []migration) (*Store, error) {
	if sealer == nil {
		return nil, errNoSealer
	}
	db, err := OpenDB(path)
	if err != nil {
		return nil, err
	}
	s, err := newStore(db, sealer, path, ms)
	if err != nil {
		db.Close()
		return nil, err
	}
	s.ownDB = true
	return s, nil
}

// New returns a store on db, an SQLite database that the caller opened with
// OpenDB (or with the same settings: WAL, a busy_timeout, synchronous=FULL)
// and keeps its own tables in, applying the migrations the store's tables
// lack. Close does not close db.
func New(db *sql.DB, sealer *store.Sealer) (*Store, error) {
	if db == nil {
		return nil, errors.New("sqlitestore: no database given")
	}
	if sealer == nil {
		return nil, errNoSealer
	}
	return newStore(db, sealer, "", migrations)
}

var errNoSealer = errors.New("sqlitestore: no sealer given; the store needs the secret key to seal tokens")

func newStore(db *sql.DB, sealer *store.Sealer, path string, ms []migration) (*Store, error) {
	ctx, cancel := context.WithTimeout(context.Background(), openTimeout)
	defer cancel()
	var file string
	err := retryBusy(ctx, func() (err error) {
		file, err = checkDB(ctx, db, path)
		return err
	})
	if err != nil {
		return nil, err
	}
	if path == "" {
		path = file
	}
	s := &Store{
		db:       db,
		path:     path,
		locksDir: path + ".locks",
		sealer:   sealer,
		writing:  make(chan struct{}, 1),
		held:     map[*heldLock]struct{}{},
	}
	if err := mkdir(s.locksDir); err != nil {
		return nil, fmt.Errorf("sqlitestore: creating the lock directory of %s: %w", path, err)
	}
	if err := retryBusy(ctx, func() error { return s.migrate(ctx, ms) }); err != nil {
		return nil, err
	}
	if s.get, err = db.PrepareContext(ctx, `SELECT `+selectColumns+` FROM connector_connections WHERE id = ?`); err != nil {
		return nil, s.wrap(err, "opening %s (preparing its queries)", path)
	}
	s.life, s.die = context.WithCancel(context.Background())
	return s, nil
}

// retryBusy runs step (checking or migrating the database, both safe to
// run again) until it does not fail with SQLITE_BUSY, within ctx. SQLite
// answers some lock conflicts at once without its busy handler: while
// another connection recovers the write-ahead log of a file it has just
// opened, or turns a new file to WAL mode. Seen as "database is locked"
// from one of eight processes opening one new file at once, on a loaded
// machine (TestMigrationsConcurrent).
func retryBusy(ctx context.Context, step func() error) error {
	wait := 20 * time.Millisecond
	for {
		err := step()
		if err == nil || !isBusy(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// Path is the database file's path: as given to Open, or as SQLite names it
// for New.
func (s *Store) Path() string { return s.path }

// String names the store by its file.
func (s *Store) String() string { return "sqlitestore(" + s.path + ")" }

func (s *Store) usable(ctx context.Context) error {
	if s.closed.Load() {
		return s.errClosed()
	}
	return ctx.Err()
}

func (s *Store) errClosed() error {
	return fmt.Errorf("sqlitestore: the store %s is closed", s.path)
}

// timeLayout writes times fixed-width, so that the text sorts as the times
// do, and to the nanosecond, so that an instant reads back exactly.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(timeLayout, s)
	return t.UTC(), err
}

const selectColumns = `definition, binding, status, reason, refresh_started, version, updated_at, token_sealed`

// row is one connector_connections row as read.
type row struct {
	id, definition, status, reason string
	binding                        sql.NullString // JSON; NULL for rows written before bindings
	refreshStarted                 sql.NullString
	version                        int64
	updatedAt                      string
	sealed                         []byte
}

func (r *row) dest() []any {
	return []any{&r.definition, &r.binding, &r.status, &r.reason, &r.refreshStarted, &r.version, &r.updatedAt, &r.sealed}
}

// Get returns the record for id, or an error wrapping store.ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (store.Record, error) {
	if err := s.usable(ctx); err != nil {
		return store.Record{}, err
	}
	r := row{id: id}
	err := s.get.QueryRowContext(ctx, id).Scan(r.dest()...)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Record{}, fmt.Errorf("sqlitestore: connection %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Record{}, s.wrap(err, "reading connection %q from %s", id, s.path)
	}
	return s.open(r)
}

// List returns every record ordered by ID (byte order: SQLite's BINARY
// collation compares UTF-8 as Go compares strings). One record that cannot
// be opened fails the whole list, naming that record.
func (s *Store) List(ctx context.Context) ([]store.Record, error) {
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	rows, err := s.list(ctx)
	if err != nil {
		return nil, s.wrap(err, "listing connections in %s", s.path)
	}
	out := make([]store.Record, 0, len(rows))
	for _, r := range rows {
		rec, err := s.open(r)
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}

func (s *Store) list(ctx context.Context) ([]row, error) {
	rs, err := s.db.QueryContext(ctx, `SELECT id, `+selectColumns+` FROM connector_connections ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []row
	for rs.Next() {
		var r row
		if err := rs.Scan(append([]any{&r.id}, r.dest()...)...); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rs.Err()
}

// Put writes r durably if r.Version is the stored version (0 for a new
// record), and returns it as stored: Version incremented, UpdatedAt set to
// now, times in UTC. The record and its history row are written in one
// transaction. A stale Version gives an error wrapping store.ErrConflict and
// changes nothing.
func (s *Store) Put(ctx context.Context, r store.Record) (store.Record, error) {
	if err := s.usable(ctx); err != nil {
		return store.Record{}, err
	}
	if r.ID == "" {
		return store.Record{}, errors.New("sqlitestore: cannot store a connection without an id")
	}
	r.RefreshStarted = r.RefreshStarted.UTC() // UTC also drops the monotonic reading
	r.Token = r.Token.UTC()
	// Sealing before the transaction keeps the write lock held for the write only.
	sealed, err := s.sealer.SealToken(r.ID, r.Binding, r.Token)
	if err != nil {
		return store.Record{}, err
	}
	binding, err := store.BindingColumn(r.Binding) // NULL for an unbound record
	if err != nil {
		return store.Record{}, fmt.Errorf("sqlitestore: connection %q: %w", r.ID, err)
	}
	var started any // NULL when no refresh is in flight
	if !r.RefreshStarted.IsZero() {
		started = formatTime(r.RefreshStarted)
	}
	var conflict error
	err = s.write(ctx, func(c *sql.Conn) error {
		var current int64
		err := c.QueryRowContext(ctx, `SELECT version FROM connector_connections WHERE id = ?`, r.ID).Scan(&current)
		found := err == nil
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if r.Version != current {
			if !found {
				conflict = fmt.Errorf("sqlitestore: connection %q does not exist but the write was based on version %d: %w", r.ID, r.Version, store.ErrConflict)
			} else {
				conflict = fmt.Errorf("sqlitestore: connection %q is at version %d but the write was based on version %d: %w", r.ID, current, r.Version, store.ErrConflict)
			}
			return conflict
		}
		version, now := current+1, time.Now().UTC()
		at := formatTime(now)
		if found {
			_, err = c.ExecContext(ctx, `UPDATE connector_connections
			   SET definition = ?, status = ?, reason = ?, refresh_started = ?, token_sealed = ?, binding = ?, version = ?, updated_at = ?
			 WHERE id = ?`, r.Definition, string(r.Status), r.Reason, started, sealed, binding, version, at, r.ID)
		} else {
			_, err = c.ExecContext(ctx, `INSERT INTO connector_connections
			  (id, definition, status, reason, refresh_started, token_sealed, binding, version, updated_at)
			  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, r.ID, r.Definition, string(r.Status), r.Reason, started, sealed, binding, version, at)
		}
		if err != nil {
			return err
		}
		if _, err := c.ExecContext(ctx, `INSERT INTO connector_history (id, version, status, reason, refreshing, at)
		  VALUES (?, ?, ?, ?, ?, ?)`, r.ID, version, string(r.Status), r.Reason, started != nil, at); err != nil {
			return err
		}
		if _, err := c.ExecContext(ctx, `DELETE FROM connector_history WHERE id = ? AND version <= ?`, r.ID, version-int64(historyKept)); err != nil {
			return err
		}
		r.Version, r.UpdatedAt = version, now
		return nil
	})
	if conflict != nil {
		return store.Record{}, conflict
	}
	if err != nil {
		return store.Record{}, s.wrap(err, "writing connection %q to %s (nothing was written)", r.ID, s.path)
	}
	return r, nil
}

// Delete removes the record for id and its history; a missing record is not
// an error. The connection's lock file stays (see flock.Open).
func (s *Store) Delete(ctx context.Context, id string) error {
	if err := s.usable(ctx); err != nil {
		return err
	}
	err := s.write(ctx, func(c *sql.Conn) error {
		if _, err := c.ExecContext(ctx, `DELETE FROM connector_history WHERE id = ?`, id); err != nil {
			return err
		}
		_, err := c.ExecContext(ctx, `DELETE FROM connector_connections WHERE id = ?`, id)
		return err
	})
	if err != nil {
		return s.wrap(err, "deleting connection %q from %s", id, s.path)
	}
	return nil
}

// Event is one version of a connection as the history keeps it.
type Event = store.Event

// History returns the kept versions of connection id, oldest first; none
// for an unknown connection.
func (s *Store) History(ctx context.Context, id string) ([]Event, error) {
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	out, err := s.history(ctx, id)
	if err != nil {
		return nil, s.wrap(err, "reading the history of connection %q from %s", id, s.path)
	}
	return out, nil
}

func (s *Store) history(ctx context.Context, id string) ([]Event, error) {
	rs, err := s.db.QueryContext(ctx, `SELECT version, status, reason, refreshing, at FROM connector_history WHERE id = ? ORDER BY version`, id)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []Event
	for rs.Next() {
		var (
			e          Event
			status, at string
		)
		if err := rs.Scan(&e.Version, &status, &e.Reason, &e.Refreshing, &at); err != nil {
			return nil, err
		}
		if e.At, err = parseTime(at); err != nil {
			return nil, fmt.Errorf("version %d has a malformed time %q", e.Version, at)
		}
		e.Status = store.Status(status)
		out = append(out, e)
	}
	return out, rs.Err()
}

// Close marks the store closed, releases the locks still held through it
// (their holders can no longer write through this store anyway), ends Lock
// calls still waiting, and closes the database if Open opened it. Close is
// idempotent.
func (s *Store) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed.Swap(true) {
		return nil
	}
	s.die()
	s.heldMu.Lock()
	held := make([]*heldLock, 0, len(s.held))
	for h := range s.held {
		held = append(held, h)
	}
	s.heldMu.Unlock()
	for _, h := range held {
		_ = h.unlock()
	}
	s.get.Close()
	if s.ownDB {
		if err := s.db.Close(); err != nil {
			return fmt.Errorf("sqlitestore: closing %s: %w", s.path, err)
		}
	}
	return nil
}

// open turns a row into a store.Record, unsealing its token.
func (s *Store) open(r row) (store.Record, error) {
	b := store.ParseBindingColumn([]byte(r.binding.String))
	tok, err := s.sealer.OpenStoredToken(r.id, b, r.sealed, "sqlitestore "+s.path)
	if err != nil {
		return store.Record{}, err
	}
	rec := store.Record{
		ID:         r.id,
		Definition: r.definition,
		Binding:    b,
		Token:      tok,
		Status:     store.Status(r.status),
		Reason:     r.reason,
		Version:    r.version,
	}
	if rec.UpdatedAt, err = parseTime(r.updatedAt); err != nil {
		return store.Record{}, s.malformed(r.id, "updated_at", r.updatedAt)
	}
	if r.refreshStarted.Valid {
		if rec.RefreshStarted, err = parseTime(r.refreshStarted.String); err != nil {
			return store.Record{}, s.malformed(r.id, "refresh_started", r.refreshStarted.String)
		}
	}
	return rec, nil
}

func (s *Store) malformed(id, column, value string) error {
	return fmt.Errorf("sqlitestore: %s: connection %q has %s %q, which is not a time this store wrote (%s); it was altered outside the store: %w",
		s.path, id, column, value, timeLayout, ErrCorrupt)
}
