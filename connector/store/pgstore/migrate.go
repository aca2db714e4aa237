package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// migration is one step of the schema. Steps are applied in order, each in
// its own transaction, and never change once released: a new schema is a new
// step at the end.
type migration struct {
	version int
	name    string
	sql     string
}

var migrations = []migration{
	{1, "connections", `
CREATE TABLE connector_connections (
	id              text COLLATE "C" PRIMARY KEY, -- byte order, so List's order is Go's
	definition      text NOT NULL,
	status          text NOT NULL,
	reason          text NOT NULL,
	refresh_started timestamptz,                  -- NULL unless a refresh is in flight
	version         bigint NOT NULL CHECK (version > 0),
	updated_at      timestamptz NOT NULL,
	token_sealed    bytea NOT NULL                -- AES-256-GCM, associated data = id
)`},
	{2, "history", `
CREATE TABLE connector_history (
	id         text COLLATE "C" NOT NULL REFERENCES connector_connections (id) ON DELETE CASCADE,
	version    bigint NOT NULL,
	status     text NOT NULL,
	reason     text NOT NULL,
	refreshing boolean NOT NULL,
	at         timestamptz NOT NULL,
	PRIMARY KEY (id, version)
)`},
	{3, "binding", `
-- What the token was issued for (store.Binding as JSON); NULL for rows
-- written before bindings. The token is sealed with it as associated data.
ALTER TABLE connector_connections ADD COLUMN binding jsonb`},
}

// Advisory lock keys. The migration lock uses the two-int4 key space, which
// PostgreSQL keeps apart from the bigint space of connection locks, so the
// two can never collide. The values are arbitrary and fixed forever: hosts
// running different builds must agree on them.
const (
	lockSpace     = 0x636f6e6e // "conn"
	migrationsKey = 1
)

// migrate brings the schema up to ms. When it already is, it costs one
// query and takes no lock; otherwise each missing step runs in a transaction
// that first takes a transaction-level advisory lock and re-checks, so hosts
// opening the store at once apply every step exactly once.
func (s *Store) migrate(ctx context.Context, ms []migration) error {
	current, err := s.schemaVersion(ctx)
	if err != nil {
		return s.wrap(err, "pgstore: opening %s (reading its schema version)", s.desc)
	}
	if current > len(ms) {
		return fmt.Errorf("pgstore: the tables in %s are at schema version %d, newer than this build knows (%d); upgrade the connector", s.desc, current, len(ms))
	}
	for _, m := range ms[current:] {
		if err := s.apply(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) schemaVersion(ctx context.Context) (int, error) {
	var v int
	err := retry(ctx, true, func() error {
		// Two queries: a query naming a missing table fails at planning,
		// whatever its conditions say.
		var exists bool
		if err := s.pool.QueryRow(ctx, `SELECT to_regclass('connector_schema_migrations') IS NOT NULL`).Scan(&exists); err != nil || !exists {
			v = 0
			return err
		}
		return s.pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM connector_schema_migrations`).Scan(&v)
	})
	return v, err
}

func (s *Store) apply(ctx context.Context, m migration) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, lockSpace, migrationsKey); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS connector_schema_migrations (
			version    integer PRIMARY KEY,
			name       text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return err
		}
		var done bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM connector_schema_migrations WHERE version = $1)`, m.version).Scan(&done); err != nil {
			return err
		}
		if done { // another host applied it while this one waited
			return nil
		}
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO connector_schema_migrations (version, name) VALUES ($1, $2)`, m.version, m.name)
		return err
	})
	if err != nil {
		hint := ""
		var pe *pgconn.PgError
		switch {
		case errors.As(err, &pe) && pe.Code == "42501": // insufficient_privilege
			hint = " (the store creates its tables itself: grant its user CREATE on the schema, or run it once as the tables' owner)"
		case errors.Is(err, context.DeadlineExceeded):
			hint = " (another host may be holding the migration lock; try again)"
		}
		return s.wrap(err, "pgstore: applying schema migration %d (%s) to %s%s", m.version, m.name, s.desc, hint)
	}
	return nil
}
