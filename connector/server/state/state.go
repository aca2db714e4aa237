// Package state owns the server's own tables: tenants, API keys, OAuth
// clients, connections and authorization sessions (and, in files of their
// own, events with their delivery jobs and the tenants' event endpoints:
// events.go, eventjobs.go, endpoints.go), with their migrations,
// on SQLite (the embedded default) or PostgreSQL (shared by replicas). It
// holds no tokens: those stay in the token store, keyed by connection id.
//
// Every read and write takes the tenant, and every query filters on it, so
// that an object of another tenant is indistinguishable from one that does
// not exist (ErrNotFound). Secrets (client secrets, field values, PKCE
// verifiers) are sealed with the store's AES-256-GCM Sealer, bound to the
// row they belong to; API keys and authorization states are kept only as
// SHA-256 hashes.
//
// The two databases share one code path: queries are written with ? and
// rewritten to $n for PostgreSQL, times are Unix nanoseconds, and the only
// difference in the schema is the name of the byte type.
package state

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite", pure Go

	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/store/sqlitestore"
)

// Kind is the database behind a DB.
type Kind string

const (
	SQLite   Kind = "sqlite"
	Postgres Kind = "postgres"
)

// Errors every method may return, matched with errors.Is.
var (
	// ErrNotFound: no such object for this tenant (it may exist for another).
	ErrNotFound = errors.New("not found")
	// ErrConflict: the object already exists, or changed meanwhile.
	ErrConflict = errors.New("conflict")
	// ErrInUse: the object is still referenced (an OAuth client with connections).
	ErrInUse = errors.New("in use")
)

// DefaultTimeout bounds a query whose context has no deadline.
const DefaultTimeout = 15 * time.Second

// DB is the server's state. It is safe for concurrent use, and by several
// processes sharing the database.
type DB struct {
	db     *sql.DB
	kind   Kind
	sealer *store.Sealer
	owned  bool // Close closes db

	// Now is the clock (tests move it).
	Now func() time.Time

	rebindMu sync.Mutex
	rebound  map[string]string

	changes changes // the change generation (changes.go)
}

// OpenSQLite opens (creating when missing) the SQLite database at path and
// applies the migrations it lacks.
func OpenSQLite(ctx context.Context, path string, sealer *store.Sealer) (*DB, error) {
	// The token store's opener gives the settings both rely on (WAL,
	// busy_timeout, immediate transactions, FULL sync) and escapes the path,
	// so a file name holding ? or # is not read as DSN parameters.
	db, err := sqlitestore.OpenDB(path)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	d, err := open(ctx, db, SQLite, sealer)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("state: opening %s: %w", path, err)
	}
	d.owned = true
	return d, nil
}

// OpenPostgres connects to PostgreSQL at url and applies the migrations it
// lacks. Errors never contain the URL's password.
func OpenPostgres(ctx context.Context, url string, sealer *store.Sealer) (*DB, error) {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return nil, errors.New("state: the database URL is not one PostgreSQL accepts")
	}
	db.SetMaxOpenConns(16)
	db.SetConnMaxIdleTime(time.Minute)
	d, err := open(ctx, db, Postgres, sealer)
	if err != nil {
		db.Close()
		return nil, scrubURL(err, url)
	}
	d.owned = true
	// The URL stays inside this closure: a DB printed with %v shows no password.
	d.changes.dial = func(ctx context.Context) (*pgx.Conn, error) { return pgx.Connect(ctx, url) }
	return d, nil
}

// New uses an existing database handle (one the token store shares, say)
// and applies the migrations it lacks. Close does not close db.
func New(ctx context.Context, db *sql.DB, kind Kind, sealer *store.Sealer) (*DB, error) {
	if kind != SQLite && kind != Postgres {
		return nil, fmt.Errorf("state: unknown database kind %q (sqlite or postgres)", kind)
	}
	return open(ctx, db, kind, sealer)
}

func open(ctx context.Context, db *sql.DB, kind Kind, sealer *store.Sealer) (*DB, error) {
	if sealer == nil {
		return nil, errors.New("state: no sealer given; the state needs the secret key to seal secrets")
	}
	d := &DB{db: db, kind: kind, sealer: sealer, Now: time.Now, rebound: map[string]string{}}
	ctx, cancel := bound(ctx)
	defer cancel()
	if err := d.migrate(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

// Kind says which database this is.
func (d *DB) Kind() Kind { return d.kind }

// SQL returns the database handle.
func (d *DB) SQL() *sql.DB { return d.db }

// Close closes the database when the DB opened it.
func (d *DB) Close() error {
	d.changes.close()
	if d.owned {
		return d.db.Close()
	}
	return nil
}

// Ready reports whether the database answers and its schema is the one this
// build knows.
func (d *DB) Ready(ctx context.Context) error {
	ctx, cancel := bound(ctx)
	defer cancel()
	pending, err := d.pendingMigrations(ctx)
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if len(pending) > 0 {
		return fmt.Errorf("state: the schema lacks migration %d (%s); restart a replica to apply it", pending[0].version, pending[0].name)
	}
	return nil
}

func bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, DefaultTimeout)
}

// q rewrites a query written with ? placeholders for the database.
func (d *DB) q(query string) string {
	if d.kind != Postgres {
		return query
	}
	d.rebindMu.Lock()
	defer d.rebindMu.Unlock()
	if r, ok := d.rebound[query]; ok {
		return r
	}
	var b strings.Builder
	n := 0
	for _, c := range query {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	d.rebound[query] = b.String()
	return b.String()
}

func (d *DB) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	defer d.wrote()
	return d.db.ExecContext(ctx, d.q(query), args...)
}

// newID returns prefix_ and 128 random bits in hex: unguessable, so an id
// learned from one tenant tells nothing about another's.
func newID(prefix string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return prefix + "_" + hex.EncodeToString(b)
}

func nanos(t time.Time) int64 { return t.UnixNano() }
func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// isUnique reports a unique-constraint violation on either database.
func isUnique(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "UNIQUE constraint failed") || strings.Contains(s, "SQLSTATE 23505") || strings.Contains(s, "duplicate key value")
}

func scrubURL(err error, url string) error {
	msg := err.Error()
	if i := strings.Index(url, "://"); i >= 0 {
		rest := url[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if c := strings.Index(rest[:at], ":"); c >= 0 {
				if pw := rest[c+1 : at]; pw != "" {
					msg = strings.ReplaceAll(msg, pw, "***")
				}
			}
		}
	}
	return errors.New(msg)
}
