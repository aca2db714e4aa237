package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// migration is one step of the schema. Steps are applied in order, each in
// its own transaction, and never change once released: a new schema is a new
// step at the end.
type migration struct {
	version int
	name    string
	sql     string
}

// The tables are STRICT, so a value of the wrong type written by another
// tool is refused rather than read back as something else.
var migrations = []migration{
	{1, "connections", `
CREATE TABLE connector_connections (
	id              TEXT NOT NULL PRIMARY KEY, -- BINARY collation: byte order, so List's order is Go's
	definition      TEXT NOT NULL,
	status          TEXT NOT NULL,
	reason          TEXT NOT NULL,
	refresh_started TEXT,                      -- NULL unless a refresh is in flight
	version         INTEGER NOT NULL CHECK (version > 0),
	updated_at      TEXT NOT NULL,
	token_sealed    BLOB NOT NULL              -- AES-256-GCM, associated data = id
) STRICT`},
	{2, "history", `
CREATE TABLE connector_history (
	id         TEXT NOT NULL,
	version    INTEGER NOT NULL,
	status     TEXT NOT NULL,
	reason     TEXT NOT NULL,
	refreshing INTEGER NOT NULL CHECK (refreshing IN (0, 1)),
	at         TEXT NOT NULL,
	PRIMARY KEY (id, version)
) STRICT, WITHOUT ROWID`},
	{3, "binding", `
-- What the token was issued for (store.Binding as JSON); NULL for rows
-- written before bindings. The token is sealed with it as associated data.
ALTER TABLE connector_connections ADD COLUMN binding TEXT`},
}

// migrate brings the schema up to ms. When it already is, it costs one
// query; otherwise each missing step runs in a BEGIN IMMEDIATE transaction,
// which holds the database's write lock from its start, and re-checks, so
// that processes opening the store at once apply every step exactly once.
func (s *Store) migrate(ctx context.Context, ms []migration) error {
	current, err := schemaVersion(ctx, s.db)
	if err != nil {
		return s.wrap(err, "opening %s (reading its schema version)", s.path)
	}
	if current > len(ms) {
		return fmt.Errorf("sqlitestore: the connector tables in %s are at schema version %d, newer than this build knows (%d); upgrade the connector", s.path, current, len(ms))
	}
	for _, m := range ms[current:] {
		if err := s.apply(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func schemaVersion(ctx context.Context, q querier) (int, error) {
	// Two queries: a query naming a missing table fails when prepared,
	// whatever its conditions say.
	var exists bool
	if err := q.QueryRowContext(ctx, `SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = 'connector_schema_migrations'`).Scan(&exists); err != nil || !exists {
		return 0, err
	}
	var v int
	err := q.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM connector_schema_migrations`).Scan(&v)
	return v, err
}

func (s *Store) apply(ctx context.Context, m migration) error {
	err := s.write(ctx, func(c *sql.Conn) error {
		if _, err := c.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS connector_schema_migrations (
			version    INTEGER NOT NULL PRIMARY KEY,
			name       TEXT NOT NULL,
			applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
		) STRICT`); err != nil {
			return err
		}
		var done bool
		if err := c.QueryRowContext(ctx, `SELECT count(*) > 0 FROM connector_schema_migrations WHERE version = ?`, m.version).Scan(&done); err != nil {
			return err
		}
		if done { // another process applied it while this one waited
			return nil
		}
		if _, err := c.ExecContext(ctx, m.sql); err != nil {
			return err
		}
		_, err := c.ExecContext(ctx, `INSERT INTO connector_schema_migrations (version, name) VALUES (?, ?)`, m.version, m.name)
		return err
	})
	if err == nil {
		return nil
	}
	if strings.Contains(err.Error(), "already exists") {
		// The step is not recorded as applied, yet its table is there:
		// something other than this store made it.
		return fmt.Errorf("sqlitestore: %s already has a table that schema migration %d (%s) would create, but no record of the migration (connector_schema_migrations): the table is another program's, or was made by hand; give the store a database file of its own, or drop that table (%w)", s.path, m.version, m.name, err)
	}
	return s.wrap(err, "applying schema migration %d (%s) to %s", m.version, m.name, s.path)
}
