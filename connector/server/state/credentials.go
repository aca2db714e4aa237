package state

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
)

// Connections of definitions without OAuth (an API key, basic or NTLM
// credentials, a session login, two-legged OAuth 1.0a): their credentials
// are field values, sealed with the others in server_connections, and
// there is no OAuth client to name. Every connection row still references
// a client (server_connections.client, NOT NULL, a foreign key since
// migration 1; SQLite cannot relax that without rebuilding the table and
// every table and trigger that depends on it), so such a connection
// belongs to the tenant's implicit registration of its definition: one
// row of server_oauth_clients per tenant and definition, implicit = 1,
// with no client id or secret. Client, Clients, RotateClientSecret,
// DeleteClient and WebhookReceiver never see implicit rows, so the API
// cannot list, use or delete them as OAuth clients; ConnectionAndClient
// reads them like any client, so the engine cache, the change generation
// and the scheduler treat these connections like every other.
//
// Migrations 402-499 are this part's (400-401 are the browser sessions').
var credentialsMigrations = []migration{
	{402, "implicit clients: connections of definitions without OAuth", []string{
		`ALTER TABLE server_oauth_clients ADD COLUMN implicit BIGINT NOT NULL DEFAULT 0`,
		// One implicit client per tenant and definition: replicas racing
		// to make the first agree on the row that won.
		`CREATE UNIQUE INDEX server_oauth_clients_implicit ON server_oauth_clients (tenant, definition) WHERE implicit = 1`,
	}},
	// A connection's own webhook receiver (webhooksecrets.go): its signing
	// secret, sealed, with the previous one during a rotation.
	{403, "connection webhook secrets", []string{
		`CREATE TABLE server_connection_webhook_secrets (
	connection      TEXT PRIMARY KEY REFERENCES server_connections (id) ON DELETE CASCADE,
	tenant          TEXT NOT NULL,
	secret_sealed   {bytes} NOT NULL,
	previous_sealed {bytes} NOT NULL,
	previous_until  BIGINT NOT NULL,
	created         BIGINT NOT NULL,
	updated         BIGINT NOT NULL
)`,
	}},
}

// implicitClient returns the id of the tenant's implicit client of
// definition, making it when missing.
func (d *DB) implicitClient(ctx context.Context, tenant, definition string) (string, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	var id string
	err := d.db.QueryRowContext(ctx, d.q(`SELECT id FROM server_oauth_clients WHERE tenant = ? AND definition = ? AND implicit = 1`), tenant, definition).Scan(&id)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("state: reading the registration of definition %s: %w", definition, err)
	}
	id = newID("cli")
	sealed, err := d.sealer.Seal(nil, clientAD(id))
	if err != nil {
		return "", err
	}
	now := nanos(d.Now())
	if _, err := d.exec(ctx, `INSERT INTO server_oauth_clients (id, tenant, definition, client_id, secret_sealed, redirect_uri, scopes, base_url, login_url, created, updated, version, implicit)
		VALUES (?, ?, ?, '', ?, '', 'null', '', '', ?, ?, 1, 1) ON CONFLICT (tenant, definition) WHERE implicit = 1 DO NOTHING`,
		id, tenant, definition, sealed, now, now); err != nil {
		return "", fmt.Errorf("state: storing the registration of definition %s: %w", definition, err)
	}
	if err := d.db.QueryRowContext(ctx, d.q(`SELECT id FROM server_oauth_clients WHERE tenant = ? AND definition = ? AND implicit = 1`), tenant, definition).Scan(&id); err != nil {
		return "", fmt.Errorf("state: reading the registration of definition %s: %w", definition, err)
	}
	return id, nil
}

// CreateCredentialsConnection stores a new connection of c.Tenant to a
// definition without OAuth, whose credentials are among c.Fields (sealed
// with them, bound to the connection's id). c.Client is ignored: the
// connection belongs to the tenant's implicit client of definition. It is
// connected at once (the caller checked the values with the engine's
// rules, and there is nothing to authorize), and connection.connected is
// appended in the same transaction, so neither exists without the other.
func (d *DB) CreateCredentialsConnection(ctx context.Context, c Connection, definition string) (Connection, error) {
	if _, err := d.Tenant(ctx, c.Tenant); err != nil {
		return Connection{}, err
	}
	client, err := d.implicitClient(ctx, c.Tenant, definition)
	if err != nil {
		return Connection{}, err
	}
	c.Client, c.Status, c.Reason = client, StatusConnected, ""
	sealed, err := d.newConnection(&c)
	if err != nil {
		return Connection{}, err
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return Connection{}, fmt.Errorf("state: storing connection: %w", err)
	}
	defer tx.Rollback()
	now := c.Created
	if _, err := tx.ExecContext(ctx, d.q(`INSERT INTO server_connections (id, tenant, client, environment, fields_sealed, status, reason, created, updated, version)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		c.ID, c.Tenant, c.Client, c.Environment, sealed, c.Status, c.Reason, nanos(now), nanos(now), c.Version); err != nil {
		return Connection{}, fmt.Errorf("state: storing connection: %w", err)
	}
	ev := &Event{Tenant: c.Tenant, Connection: c.ID, Type: TypeConnected, Data: marshal(transitionData{Status: StatusConnected, PreviousStatus: StatusPending})}
	if _, err := d.insertEvent(ctx, tx, ev); err != nil {
		return Connection{}, err
	}
	defer d.wrote()
	if err := tx.Commit(); err != nil {
		return Connection{}, fmt.Errorf("state: storing connection: %w", err)
	}
	return c, nil
}

// SetConnectionFields replaces the connection's field values (the caller
// merged and checked them) and gives it a new version, so that every
// replica rebuilds its engine with them at its next use (the change
// generation moves). With status set, the status becomes it, its reason
// cleared (new credentials for a connection whose login failed). The
// attribution index is brought up to date for connections of an OAuth
// client.
func (d *DB) SetConnectionFields(ctx context.Context, tenant, id string, fields map[string]string, status string) (Connection, error) {
	if fields == nil {
		fields = map[string]string{}
	}
	plain, _ := json.Marshal(fields)
	sealed, err := d.sealer.Seal(plain, connAD(id))
	if err != nil {
		return Connection{}, err
	}
	query := `UPDATE server_connections SET fields_sealed = ?, updated = ?, version = version + 1`
	args := []any{sealed, nanos(d.Now())}
	if status != "" {
		query += `, status = ?, reason = ''`
		args = append(args, status)
	}
	res, err := d.exec(ctx, query+` WHERE tenant = ? AND id = ?`, append(args, tenant, id)...)
	if err != nil {
		return Connection{}, fmt.Errorf("state: updating the fields of connection %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return Connection{}, fmt.Errorf("connection %s: %w", id, ErrNotFound)
	}
	c, cl, err := d.ConnectionAndClient(ctx, tenant, id)
	if err != nil {
		return Connection{}, err
	}
	if !cl.Implicit {
		// As in CreateConnection: a failure leaves the connection to be
		// indexed by the next delivery that finds nothing.
		_ = d.indexConnection(ctx, c)
	}
	return c, nil
}

// ImplicitClient returns the tenant's implicit client of definition (a
// definition without OAuth), making it when missing: a connect link that
// offers the definition names it.
func (d *DB) ImplicitClient(ctx context.Context, tenant, definition string) (Client, error) {
	id, err := d.implicitClient(ctx, tenant, definition)
	if err != nil {
		return Client{}, err
	}
	return d.OfferedClient(ctx, tenant, id)
}

// OfferedClient returns the tenant's client id, an OAuth client or an
// implicit one: for the connect page, whose links may offer definitions
// without OAuth. The API's OAuth-client routes use Client, which never
// returns an implicit client.
func (d *DB) OfferedClient(ctx context.Context, tenant, id string) (Client, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	c, err := d.scanClient(d.db.QueryRowContext(ctx, d.q(`SELECT `+clientCols+` FROM server_oauth_clients WHERE tenant = ? AND id = ?`), tenant, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Client{}, fmt.Errorf("client %s: %w", id, ErrNotFound)
	}
	return c, err
}
