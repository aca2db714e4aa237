package sqlitestore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// BusyTimeout is how long a write waits for another connection's or
// process's write transaction before it fails. The store's own transactions
// last one statement or a few; the rest is for the program sharing the file.
const BusyTimeout = 10 * time.Second

// openTimeout bounds checking the database and migrating it.
const openTimeout = time.Minute

// ErrCorrupt: the file is not an SQLite database, or SQLite or the store
// found it damaged.
var ErrCorrupt = errors.New("sqlitestore: the database file is damaged or not an SQLite database")

// OpenDB opens the SQLite database file at path as the store needs it, for
// a program that keeps its own tables in the same file and gives the
// database to New: WAL mode, a busy_timeout of BusyTimeout, synchronous=FULL
// (a committed transaction survives a power cut), foreign keys enforced,
// and BEGIN IMMEDIATE for every transaction begun through database/sql (a
// transaction that reads before it writes then cannot fail with SQLITE_BUSY
// when it upgrades). The file is created, mode 0600, when missing, and its
// directory, mode 0700. The pool keeps a few connections: WAL lets readers
// run beside the one writer, and every connection has a page cache of its
// own.
func OpenDB(path string) (*sql.DB, error) {
	if path == "" {
		return nil, errors.New("sqlitestore: no database file given")
	}
	if err := mkdir(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("sqlitestore: creating the directory of %s: %w", path, err)
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return nil, fmt.Errorf("sqlitestore: %s is a directory, not a database file; name a file in it, e.g. %s", path, filepath.Join(path, "connector.db"))
	}
	// SQLite would create the file with the umask's mode; its -wal and
	// -shm files take the mode of the database file.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: opening %s: %w (check the file's and its directory's permissions)", path, err)
	}
	f.Close()
	if err := checkForeign(path); err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", dsn(path))
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: opening %s: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	db.SetConnMaxIdleTime(5 * time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), openTimeout)
	defer cancel()
	// Connections open lazily; one now makes a file that is not a database
	// an error of Open, not of the first Get.
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, wrap(err, path, "opening %s", path)
	}
	return db, nil
}

// checkForeign refuses, before anything is written to it, a database whose
// connector_connections table is not the store's (no migration record):
// opening it as the store would switch it to WAL mode (a change of its
// header), only for the migrations to refuse it after. A database that is
// empty, not a database at all, or the store's is left to the usual path.
func checkForeign(path string) error {
	if st, err := os.Stat(path); err != nil || st.Size() == 0 {
		return nil
	}
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(filepath.Clean(path))
	db, err := sql.Open("sqlite", "file:"+esc+"?mode=ro"+fmt.Sprintf("&_pragma=busy_timeout(%d)", BusyTimeout.Milliseconds()))
	if err != nil {
		return nil
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), openTimeout)
	defer cancel()
	var ours, theirs bool
	err = db.QueryRowContext(ctx, `SELECT
		coalesce(max(name = 'connector_schema_migrations'), 0), coalesce(max(name = 'connector_connections'), 0)
		FROM sqlite_schema WHERE type = 'table'`).Scan(&ours, &theirs)
	if err != nil || ours || !theirs {
		return nil // not readable as a database (the usual path says why), or not in the way
	}
	return fmt.Errorf("sqlitestore: %s already has a table connector_connections, but no record of the store's migrations (connector_schema_migrations): the table is another program's, or was made by hand; give the store a database file of its own, or drop that table; the file was left as it was", path)
}

// dsn is the driver's name for path with the settings of every connection.
// The path goes in a file: URI, so that no character of it can be read as
// the start of the settings.
func dsn(path string) string {
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(filepath.Clean(path))
	return "file:" + esc + "?_txlock=immediate" +
		fmt.Sprintf("&_pragma=busy_timeout(%d)", BusyTimeout.Milliseconds()) +
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)"
}

// checkDB checks that db has the settings the store relies on (New is given
// a database the caller opened) and returns the path of its file.
func checkDB(ctx context.Context, db *sql.DB, path string) (string, error) {
	c, err := db.Conn(ctx)
	if err != nil {
		return "", wrap(err, path, "opening %s", orDatabase(path))
	}
	defer c.Close()
	var file string
	rows, err := c.QueryContext(ctx, `SELECT name, file FROM pragma_database_list`)
	if err != nil {
		return "", wrap(err, path, "opening %s", orDatabase(path))
	}
	for rows.Next() {
		var name, f string
		if err := rows.Scan(&name, &f); err != nil {
			rows.Close()
			return "", wrap(err, path, "opening %s", orDatabase(path))
		}
		if name == "main" {
			file = f
		}
	}
	if err := rows.Close(); err != nil {
		return "", wrap(err, path, "opening %s", orDatabase(path))
	}
	if file == "" {
		return "", errors.New("sqlitestore: the database is in memory or temporary; the store needs a database file, which other processes can open and beside which its locks live")
	}
	if path == "" {
		path = file
	}
	var (
		mode        string
		busy, synch int
	)
	for _, q := range []struct {
		sql  string
		dest any
	}{
		{`PRAGMA journal_mode`, &mode},
		{`PRAGMA busy_timeout`, &busy},
		{`PRAGMA synchronous`, &synch},
	} {
		if err := c.QueryRowContext(ctx, q.sql).Scan(q.dest); err != nil {
			return "", wrap(err, path, "opening %s", path)
		}
	}
	var missing []string
	if !strings.EqualFold(mode, "wal") {
		missing = append(missing, "journal_mode=WAL (it is "+mode+")")
	}
	if busy <= 0 {
		missing = append(missing, "a busy_timeout")
	}
	if synch < 2 {
		missing = append(missing, "synchronous=FULL")
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("sqlitestore: the database %s was opened without %s, which the store needs to share the file safely; open it with sqlitestore.OpenDB", path, strings.Join(missing, ", "))
	}
	return file, nil
}

func orDatabase(path string) string {
	if path == "" {
		return "the database"
	}
	return path
}

func mkdir(dir string) error { return os.MkdirAll(dir, 0o700) }

// write runs fn in one BEGIN IMMEDIATE transaction on a connection of its
// own, and commits it when fn returns nil. BEGIN is sent by hand, rather
// than by db.BeginTx, so that it is IMMEDIATE whatever the settings of a
// database given to New.
func (s *Store) write(ctx context.Context, fn func(*sql.Conn) error) error {
	select {
	case s.writing <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.writing }()
	c, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		return err
	}
	if err := fn(c); err != nil {
		rollback(c)
		return err
	}
	// Once fn has run, the commit is not abandoned for a canceled context:
	// its outcome would then be unknown.
	if _, err := c.ExecContext(context.WithoutCancel(ctx), `COMMIT`); err != nil {
		rollback(c)
		return err
	}
	return nil
}

// rollback ends the transaction on c; a connection where that fails (SQLite
// may have rolled back by itself, or may be in a state unknown) is closed
// rather than pooled with a transaction perhaps still open.
func rollback(c *sql.Conn) {
	if _, err := c.ExecContext(context.Background(), `ROLLBACK`); err != nil {
		_ = c.Raw(func(any) error { return driver.ErrBadConn })
	}
}

// opError says what failed, where and what to do, and matches the driver's
// error (and ErrCorrupt, when it is about the file's content).
type opError struct {
	msg     string
	err     error
	corrupt bool
}

func (e *opError) Error() string { return e.msg }
func (e *opError) Unwrap() []error {
	if e.corrupt {
		return []error{e.err, ErrCorrupt}
	}
	return []error{e.err}
}

func (s *Store) wrap(err error, format string, args ...any) error {
	return wrap(err, s.path, format, args...)
}

// wrap explains err, an error of the driver on the database file path, by
// what SQLite said of it.
func wrap(err error, path, format string, args ...any) error {
	msg := "sqlitestore: " + fmt.Sprintf(format, args...) + ": " + err.Error()
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return &opError{msg: msg, err: err}
	}
	corrupt := false
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_NOTADB:
		corrupt = true
		msg += "; the file is not an SQLite database: if it is another program's file, name another file for the store; if it was the store, restore it from a backup, or move it aside and authorize the connections again"
	case sqlite3.SQLITE_CORRUPT:
		corrupt = true
		msg += "; the database file is damaged: restore it from a backup, or move it (with its -wal and -shm files) aside and authorize the connections again"
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		msg += fmt.Sprintf("; another connection or process held the database's write lock for more than %v: try again, and look for a process stuck in a transaction on %s", BusyTimeout, path)
	case sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_AUTH:
		msg += fmt.Sprintf("; check that this user may read and write %s, its -wal and -shm files and its directory", path)
	case sqlite3.SQLITE_FULL:
		msg += "; the disk is full: free space and try again"
	}
	return &opError{msg: msg, err: err, corrupt: corrupt}
}

// isBusy reports whether err is SQLite's SQLITE_BUSY or SQLITE_LOCKED:
// another connection held a lock the operation needed.
func isBusy(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	code := se.Code() & 0xff
	return code == sqlite3.SQLITE_BUSY || code == sqlite3.SQLITE_LOCKED
}
