package state

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Connection statuses the server keeps. The token store has the live status
// of an authorized connection (connected, needs_reauthorization); the
// server mirrors it here so that listings can filter on it.
const (
	StatusPending     = "pending" // created, never authorized
	StatusConnected   = "connected"
	StatusNeedsReauth = "needs_reauthorization"
)

// Connection is a tenant's connection: an OAuth client, an environment and
// the definition's field values. Its ID is its key in the token store.
type Connection struct {
	ID          string
	Tenant      string
	Client      string
	Environment string
	Fields      map[string]string // sealed at rest: some fields are secret
	Status      string
	Reason      string
	Created     time.Time
	Updated     time.Time
	Version     int64
}

// String leaves the field values out.
func (c Connection) String() string {
	return fmt.Sprintf("connection{id=%s tenant=%s client=%s env=%s status=%s}", c.ID, c.Tenant, c.Client, c.Environment, c.Status)
}

// Format keeps every verb on String.
func (c Connection) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(c.String())) }

func connAD(id string) []byte { return []byte("server_connections\x00" + id) }

// newConnection gives c, about to be inserted, its id, times, version and
// default status, and returns its fields sealed to that id.
func (d *DB) newConnection(c *Connection) (sealedFields []byte, err error) {
	c.ID = newID("con")
	now := d.Now().UTC()
	c.Created, c.Updated, c.Version = now, now, 1
	if c.Status == "" {
		c.Status = StatusPending
	}
	if c.Fields == nil {
		c.Fields = map[string]string{}
	}
	plain, _ := json.Marshal(c.Fields)
	return d.sealer.Seal(plain, connAD(c.ID))
}

// CreateConnection stores a new pending connection of c.Tenant, whose
// c.Client must be one of the tenant's clients.
func (d *DB) CreateConnection(ctx context.Context, c Connection) (Connection, error) {
	if _, err := d.Client(ctx, c.Tenant, c.Client); err != nil {
		return Connection{}, err
	}
	sealed, err := d.newConnection(&c)
	if err != nil {
		return Connection{}, err
	}
	now := c.Created
	_, err = d.exec(ctx, `INSERT INTO server_connections (id, tenant, client, environment, fields_sealed, status, reason, created, updated, version)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.Tenant, c.Client, c.Environment, sealed, c.Status, c.Reason, nanos(now), nanos(now), c.Version)
	if err != nil {
		return Connection{}, fmt.Errorf("state: storing connection: %w", err)
	}
	// A failure here leaves the connection to be indexed when a webhook
	// delivery for its client first finds nothing (deliveries.go).
	_ = d.indexConnection(ctx, c)
	return c, nil
}

const connCols = `id, tenant, client, environment, fields_sealed, status, reason, created, updated, version`

func (d *DB) scanConn(sc interface{ Scan(...any) error }) (Connection, error) {
	var c Connection
	var sealed []byte
	var created, updated int64
	if err := sc.Scan(&c.ID, &c.Tenant, &c.Client, &c.Environment, &sealed, &c.Status, &c.Reason, &created, &updated, &c.Version); err != nil {
		return Connection{}, err
	}
	plain, err := d.sealer.Open(sealed, connAD(c.ID))
	if err != nil {
		return Connection{}, fmt.Errorf("state: the fields of connection %s cannot be decrypted (wrong key, or the row was altered): %w", c.ID, err)
	}
	if err := json.Unmarshal(plain, &c.Fields); err != nil {
		return Connection{}, fmt.Errorf("state: the fields of connection %s are not valid", c.ID)
	}
	c.Created, c.Updated = fromNanos(created), fromNanos(updated)
	return c, nil
}

// Connection returns the tenant's connection id.
func (d *DB) Connection(ctx context.Context, tenant, id string) (Connection, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	c, err := d.scanConn(d.db.QueryRowContext(ctx, d.q(`SELECT `+connCols+` FROM server_connections WHERE tenant = ? AND id = ?`), tenant, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Connection{}, fmt.Errorf("connection %s: %w", id, ErrNotFound)
	}
	return c, err
}

// Filter narrows a listing; zero fields match everything.
type Filter struct {
	Client      string
	Definition  string // the definition of the connection's client, implicit or not
	Environment string
	Status      string
	After       string // a cursor from an earlier page
	Limit       int    // 1..MaxLimit; 0 means DefaultLimit
}

const (
	DefaultLimit = 50
	MaxLimit     = 200
)

// ErrCursor: a cursor this server did not issue.
var ErrCursor = errors.New("the cursor is not one this server issued; start from the first page")

// EncodeCursor and DecodeCursor make a page's last id opaque, so that
// callers do not build cursors of their own.
func EncodeCursor(id string) string { return base64.RawURLEncoding.EncodeToString([]byte("c1:" + id)) }

func DecodeCursor(s string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || !strings.HasPrefix(string(b), "c1:") || len(b) > 200 {
		return "", ErrCursor
	}
	return string(b[3:]), nil
}

// Connections lists the tenant's connections by id, one page at a time; next
// is the cursor of the following page, "" at the end.
func (d *DB) Connections(ctx context.Context, tenant string, f Filter) (page []Connection, next string, err error) {
	after := ""
	if f.After != "" {
		if after, err = DecodeCursor(f.After); err != nil {
			return nil, "", err
		}
	}
	query := `SELECT ` + connCols + ` FROM server_connections WHERE tenant = ? AND id > ?`
	args := []any{tenant, after}
	for _, c := range []struct{ col, val string }{{"client", f.Client}, {"environment", f.Environment}, {"status", f.Status}} {
		if c.val != "" {
			query += " AND " + c.col + " = ?"
			args = append(args, c.val)
		}
	}
	if f.Definition != "" {
		query += " AND client IN (SELECT id FROM server_oauth_clients WHERE tenant = ? AND definition = ?)"
		args = append(args, tenant, f.Definition)
	}
	query += " ORDER BY id"
	return queryPage(ctx, d, "connections", query, args, pageLimit(f.Limit), d.scanConn, func(c Connection) string { return EncodeCursor(c.ID) })
}

// SetConnectionStatus records the connection's status and reason; it is a
// no-op when they are already so.
func (d *DB) SetConnectionStatus(ctx context.Context, tenant, id, status, reason string) error {
	res, err := d.exec(ctx, `UPDATE server_connections SET status = ?, reason = ?, updated = ?, version = version + 1
		WHERE tenant = ? AND id = ? AND (status <> ? OR reason <> ?)`, status, reason, nanos(d.Now()), tenant, id, status, reason)
	if err != nil {
		return fmt.Errorf("state: updating connection %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := d.Connection(ctx, tenant, id); err != nil {
			return err
		}
	}
	return nil
}

// DeleteConnection removes the connection and its authorization sessions.
func (d *DB) DeleteConnection(ctx context.Context, tenant, id string) error {
	ctx, cancel := bound(ctx)
	defer cancel()
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("state: deleting connection %s: %w", id, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, d.q(`DELETE FROM server_auth_sessions WHERE tenant = ? AND connection = ?`), tenant, id); err != nil {
		return fmt.Errorf("state: deleting connection %s: %w", id, err)
	}
	if _, err := tx.ExecContext(ctx, d.q(`DELETE FROM server_webhook_index WHERE tenant = ? AND connection = ?`), tenant, id); err != nil {
		return fmt.Errorf("state: deleting connection %s: %w", id, err)
	}
	if _, err := tx.ExecContext(ctx, d.q(`DELETE FROM server_connection_webhook_secrets WHERE tenant = ? AND connection = ?`), tenant, id); err != nil {
		return fmt.Errorf("state: deleting connection %s: %w", id, err)
	}
	res, err := tx.ExecContext(ctx, d.q(`DELETE FROM server_connections WHERE tenant = ? AND id = ?`), tenant, id)
	if err != nil {
		return fmt.Errorf("state: deleting connection %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("connection %s: %w", id, ErrNotFound)
	}
	defer d.wrote()
	return tx.Commit()
}

// countConnectionsSQL is answered from the server_connections_status index
// alone (migration 3), not by reading every connection with its sealed
// fields: it runs at every scrape of every replica.
const countConnectionsSQL = `SELECT status, count(*) FROM server_connections GROUP BY status`

// CountConnections counts every tenant's connections by status (for metrics).
func (d *DB) CountConnections(ctx context.Context) (map[string]int, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	rows, err := d.db.QueryContext(ctx, countConnectionsSQL)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return nil, err
		}
		out[s] = n
	}
	return out, rows.Err()
}

// ConnectionAndClient returns the tenant's connection and its OAuth client
// in one query: the hot path of every proxied call and token request.
func (d *DB) ConnectionAndClient(ctx context.Context, tenant, id string) (Connection, Client, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	cols := func(prefix, list string) string {
		parts := strings.Split(list, ", ")
		for i, p := range parts {
			parts[i] = prefix + "." + p
		}
		return strings.Join(parts, ", ")
	}
	row := d.db.QueryRowContext(ctx, d.q(`SELECT `+cols("n", connCols)+`, `+cols("c", clientCols)+`
		FROM server_connections n JOIN server_oauth_clients c ON c.id = n.client AND c.tenant = n.tenant
		WHERE n.tenant = ? AND n.id = ?`), tenant, id)
	conn, cl, err := d.scanBoth(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Connection{}, Client{}, fmt.Errorf("connection %s: %w", id, ErrNotFound)
	}
	return conn, cl, err
}

// scanBoth scans a row of connCols followed by clientCols.
func (d *DB) scanBoth(row *sql.Row) (Connection, Client, error) {
	var n, c rawRow
	if err := row.Scan(append(n.conn(), c.client()...)...); err != nil {
		return Connection{}, Client{}, err
	}
	conn, err := d.scanConn(&n)
	if err != nil {
		return Connection{}, Client{}, err
	}
	cl, err := d.scanClient(&c)
	return conn, cl, err
}

// rawRow holds scanned columns so that scanConn and scanClient can read
// them again as a row of their own.
type rawRow struct{ vals []any }

func (r *rawRow) conn() []any {
	r.vals = []any{new(string), new(string), new(string), new(string), new([]byte), new(string), new(string), new(int64), new(int64), new(int64)}
	return r.vals
}

func (r *rawRow) client() []any {
	r.vals = []any{new(string), new(string), new(string), new(string), new([]byte), new(string), new(string), new(string), new(string), new(int64), new(int64), new(int64), new(int64)}
	return r.vals
}

func (r *rawRow) Scan(dest ...any) error {
	if len(dest) != len(r.vals) {
		return fmt.Errorf("state: scanning %d columns into %d", len(r.vals), len(dest))
	}
	for i, v := range r.vals {
		switch p := v.(type) {
		case *string:
			*dest[i].(*string) = *p
		case *[]byte:
			*dest[i].(*[]byte) = *p
		case *int64:
			*dest[i].(*int64) = *p
		}
	}
	return nil
}

// TouchConnection gives the connection a new version without changing
// what this table holds, so that every replica rebuilds its cached engine
// (the change generation moves, as for any new version). The server calls
// it when the values the connection learned from the provider, kept in the
// token store, change. id is the token-store key, unique across tenants.
func (d *DB) TouchConnection(ctx context.Context, id string) error {
	if _, err := d.exec(ctx, `UPDATE server_connections SET updated = ?, version = version + 1 WHERE id = ?`, nanos(d.Now()), id); err != nil {
		return fmt.Errorf("state: touching connection %s: %w", id, err)
	}
	return nil
}
