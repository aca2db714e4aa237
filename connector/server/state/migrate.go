package state

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

// migration is one step of the schema. Steps never change once released: a
// new schema is a new step. {bytes} is the byte-string type.
//
// Each part of the server owns a range of versions, so that parts developed
// side by side add steps without renumbering each other's: 1-99 the core
// tables below, 100-199 events and jobs, 200-299 webhook deliveries, 300-399
// the refresh scheduler, 400-499 browser sessions (connect and admin pages:
// 400-401) and connections without OAuth (credentials.go: 402 on).
// A database applies every step it lacks in ascending version order; a
// recorded version this build does not know means a newer build migrated it.
type migration struct {
	version int
	name    string
	sql     []string
}

// migrations is every step, in ascending version order (allMigrations
// sorts the parts' lists; init checks versions are unique).
var migrations = allMigrations(coreMigrations, eventMigrations, retentionMigrations, webhookMigrations, schedulerMigrations, browserMigrations, credentialsMigrations)

func allMigrations(parts ...[]migration) []migration {
	var all []migration
	seen := map[int]string{}
	for _, part := range parts {
		for _, m := range part {
			if prev, dup := seen[m.version]; dup {
				panic(fmt.Sprintf("state: migration version %d is used by %q and %q", m.version, prev, m.name))
			}
			seen[m.version] = m.name
			all = append(all, m)
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].version < all[j].version })
	return all
}

var coreMigrations = []migration{
	{1, "tenants, keys, clients, connections, sessions", []string{
		`CREATE TABLE server_tenants (
	id      TEXT PRIMARY KEY,
	name    TEXT NOT NULL,
	created BIGINT NOT NULL
)`,
		`CREATE TABLE server_api_keys (
	id        TEXT PRIMARY KEY,
	tenant    TEXT NOT NULL REFERENCES server_tenants (id),
	hash      {bytes} NOT NULL UNIQUE,
	scopes    TEXT NOT NULL,
	created   BIGINT NOT NULL,
	last_used BIGINT NOT NULL
)`,
		`CREATE TABLE server_oauth_clients (
	id            TEXT PRIMARY KEY,
	tenant        TEXT NOT NULL REFERENCES server_tenants (id),
	definition    TEXT NOT NULL,
	client_id     TEXT NOT NULL,
	secret_sealed {bytes} NOT NULL,
	redirect_uri  TEXT NOT NULL,
	scopes        TEXT NOT NULL,
	base_url      TEXT NOT NULL,
	login_url     TEXT NOT NULL,
	created       BIGINT NOT NULL,
	updated       BIGINT NOT NULL,
	version       BIGINT NOT NULL
)`,
		`CREATE INDEX server_oauth_clients_tenant ON server_oauth_clients (tenant, id)`,
		`CREATE TABLE server_connections (
	id            TEXT PRIMARY KEY,
	tenant        TEXT NOT NULL REFERENCES server_tenants (id),
	client        TEXT NOT NULL REFERENCES server_oauth_clients (id),
	environment   TEXT NOT NULL,
	fields_sealed {bytes} NOT NULL,
	status        TEXT NOT NULL,
	reason        TEXT NOT NULL,
	created       BIGINT NOT NULL,
	updated       BIGINT NOT NULL,
	version       BIGINT NOT NULL
)`,
		`CREATE INDEX server_connections_tenant ON server_connections (tenant, id)`,
		`CREATE TABLE server_auth_sessions (
	id              TEXT PRIMARY KEY,
	tenant          TEXT NOT NULL,
	connection      TEXT NOT NULL REFERENCES server_connections (id) ON DELETE CASCADE,
	state_hash      {bytes} NOT NULL UNIQUE,
	verifier_sealed {bytes} NOT NULL,
	nonce           TEXT NOT NULL,
	return_to       TEXT NOT NULL,
	expires         BIGINT NOT NULL,
	used            BIGINT NOT NULL,
	created         BIGINT NOT NULL
)`,
	}},
	{2, "the change generation replicas check their caches against", generationSteps},
	// connector_connections counts by status at every scrape: through this
	// index the count reads the index's small entries, not every row with
	// its sealed fields (see CountConnections).
	{3, "connections by status, for metrics", []string{
		`CREATE INDEX server_connections_status ON server_connections (status)`,
	}},
	// A pushed authorization request's link expires on its own (RFC 9126
	// 2.2): the callback that comes back with an error after that time
	// says so instead of a bare provider error. A dpop definition's code
	// is bound to a key made at the authorization (RFC 9449 10), which the
	// callback's replica exchanges it with: sealed like the verifier.
	{4, "authorization sessions: the link's expiry, the code's DPoP key", []string{
		`ALTER TABLE server_auth_sessions ADD COLUMN link_expires BIGINT NOT NULL DEFAULT 0`,
		`ALTER TABLE server_auth_sessions ADD COLUMN dpop_key_sealed {bytes}`,
	}},
}

// Both databases serialise migrations: PostgreSQL with a transaction-level
// advisory lock, SQLite because the transaction's first statement writes,
// which takes the database's write lock (waiting under busy_timeout).
const migrationLock = 0x73727672 // "srvr"; fixed forever

// A statement of a step starting with "-- sqlite\n" or "-- postgres\n" runs
// on that database only (triggers are written differently on each); ddl
// returns "" for a statement of the other one.
func (d *DB) ddl(s string) string {
	for _, k := range []Kind{SQLite, Postgres} {
		if rest, ok := strings.CutPrefix(s, "-- "+string(k)+"\n"); ok {
			if k != d.kind {
				return ""
			}
			s = rest
		}
	}
	bytes := "BLOB"
	if d.kind == Postgres {
		bytes = "bytea"
	}
	return strings.ReplaceAll(s, "{bytes}", bytes)
}

func (d *DB) migrate(ctx context.Context) error {
	pending, err := d.pendingMigrations(ctx)
	if err != nil {
		return err
	}
	for _, m := range pending {
		if err := d.apply(ctx, m); err != nil {
			return fmt.Errorf("applying migration %d (%s): %w", m.version, m.name, err)
		}
	}
	return nil
}

// pendingMigrations lists the steps the database lacks, or fails when it
// holds one this build does not know.
func (d *DB) pendingMigrations(ctx context.Context) ([]migration, error) {
	applied, err := d.appliedVersions(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the schema version: %w", err)
	}
	known := map[int]bool{}
	var pending []migration
	for _, m := range migrations {
		known[m.version] = true
		if !applied[m.version] {
			pending = append(pending, m)
		}
	}
	for v := range applied {
		if !known[v] {
			return nil, fmt.Errorf("the server's tables hold schema version %d, which this build does not know (a newer connector migrated them); upgrade the connector", v)
		}
	}
	return pending, nil
}

func (d *DB) apply(ctx context.Context, m migration) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if d.kind == Postgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
			return err
		}
	}
	// Under the lock (PostgreSQL), or as the write that takes SQLite's.
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS server_schema_migrations (
	version INTEGER PRIMARY KEY,
	name    TEXT NOT NULL,
	applied BIGINT NOT NULL
)`); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE server_schema_migrations SET name = name WHERE version < 0`); err != nil {
		return err
	}
	var done int
	if err := tx.QueryRowContext(ctx, d.q(`SELECT count(*) FROM server_schema_migrations WHERE version = ?`), m.version).Scan(&done); err != nil {
		return err
	}
	if done > 0 { // another host applied it while this one waited
		return tx.Commit()
	}
	for _, s := range m.sql {
		if s = d.ddl(s); s == "" {
			continue
		}
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, d.q(`INSERT INTO server_schema_migrations (version, name, applied) VALUES (?, ?, ?)`), m.version, m.name, nanos(d.Now())); err != nil {
		return err
	}
	return tx.Commit()
}

func (d *DB) appliedVersions(ctx context.Context) (map[int]bool, error) {
	var exists bool
	var err error
	if d.kind == Postgres {
		err = d.db.QueryRowContext(ctx, `SELECT to_regclass('server_schema_migrations') IS NOT NULL`).Scan(&exists)
	} else {
		var n int
		err = d.db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'server_schema_migrations'`).Scan(&n)
		exists = n > 0
	}
	applied := map[int]bool{}
	if err != nil || !exists {
		return applied, err
	}
	rows, err := d.db.QueryContext(ctx, `SELECT version FROM server_schema_migrations`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		applied[v] = true
	}
	return applied, rows.Err()
}
