package state

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Client is an OAuth client a tenant registered with a provider, made from
// a definition: the App Xchange "OAuth client". Secret is write-only in the
// API; it is sealed at rest, bound to the client's id.
type Client struct {
	ID          string
	Tenant      string
	Definition  string
	ClientID    string
	Secret      string
	RedirectURI string
	Scopes      []string // nil: the definition's
	// BaseURL and LoginURL replace the environments' hosts (a private
	// deployment, an emulator); "" keeps the definition's.
	BaseURL  string
	LoginURL string
	// Implicit marks the tenant's registration of a definition without
	// OAuth (credentials.go): it holds no client id or secret, is never
	// listed or addressable as an OAuth client, and exists because every
	// connection row names a client.
	Implicit bool
	Created  time.Time
	Updated  time.Time
	Version  int64
}

// String leaves the secret out.
func (c Client) String() string {
	return fmt.Sprintf("client{id=%s tenant=%s definition=%s client_id=%s}", c.ID, c.Tenant, c.Definition, c.ClientID)
}

// Format keeps every verb on String.
func (c Client) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(c.String())) }

func clientAD(id string) []byte { return []byte("server_oauth_clients\x00" + id) }

// CreateClient stores a new client for c.Tenant and returns it with its id.
func (d *DB) CreateClient(ctx context.Context, c Client) (Client, error) {
	c.ID = newID("cli")
	now := d.Now().UTC()
	c.Created, c.Updated, c.Version = now, now, 1
	sealed, err := d.sealer.Seal([]byte(c.Secret), clientAD(c.ID))
	if err != nil {
		return Client{}, err
	}
	scopes, _ := json.Marshal(c.Scopes)
	_, err = d.exec(ctx, `INSERT INTO server_oauth_clients (id, tenant, definition, client_id, secret_sealed, redirect_uri, scopes, base_url, login_url, created, updated, version)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.Tenant, c.Definition, c.ClientID, sealed, c.RedirectURI, string(scopes), c.BaseURL, c.LoginURL, nanos(now), nanos(now), c.Version)
	if err != nil {
		return Client{}, fmt.Errorf("state: storing OAuth client: %w", err)
	}
	return c, nil
}

const clientCols = `id, tenant, definition, client_id, secret_sealed, redirect_uri, scopes, base_url, login_url, created, updated, version, implicit`

func (d *DB) scanClient(sc interface{ Scan(...any) error }) (Client, error) {
	var c Client
	var sealed []byte
	var scopes string
	var created, updated, implicit int64
	if err := sc.Scan(&c.ID, &c.Tenant, &c.Definition, &c.ClientID, &sealed, &c.RedirectURI, &scopes, &c.BaseURL, &c.LoginURL, &created, &updated, &c.Version, &implicit); err != nil {
		return Client{}, err
	}
	c.Implicit = implicit != 0
	secret, err := d.sealer.Open(sealed, clientAD(c.ID))
	if err != nil {
		return Client{}, fmt.Errorf("state: the secret of OAuth client %s cannot be decrypted (wrong key, or the row was altered): %w", c.ID, err)
	}
	c.Secret = string(secret)
	_ = json.Unmarshal([]byte(scopes), &c.Scopes)
	c.Created, c.Updated = fromNanos(created), fromNanos(updated)
	return c, nil
}

// Client returns the tenant's client id.
func (d *DB) Client(ctx context.Context, tenant, id string) (Client, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	c, err := d.scanClient(d.db.QueryRowContext(ctx, d.q(`SELECT `+clientCols+` FROM server_oauth_clients WHERE tenant = ? AND id = ? AND implicit = 0`), tenant, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Client{}, fmt.Errorf("OAuth client %s: %w", id, ErrNotFound)
	}
	return c, err
}

// Clients lists the tenant's clients by id.
func (d *DB) Clients(ctx context.Context, tenant string) ([]Client, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	rows, err := d.db.QueryContext(ctx, d.q(`SELECT `+clientCols+` FROM server_oauth_clients WHERE tenant = ? AND implicit = 0 ORDER BY id`), tenant)
	if err != nil {
		return nil, fmt.Errorf("state: listing OAuth clients: %w", err)
	}
	defer rows.Close()
	out := []Client{}
	for rows.Next() {
		c, err := d.scanClient(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// RotateClientSecret replaces the client's secret. The connections made
// with the client use the new one from their next token request.
func (d *DB) RotateClientSecret(ctx context.Context, tenant, id, secret string) (Client, error) {
	sealed, err := d.sealer.Seal([]byte(secret), clientAD(id))
	if err != nil {
		return Client{}, err
	}
	res, err := d.exec(ctx, `UPDATE server_oauth_clients SET secret_sealed = ?, updated = ?, version = version + 1 WHERE tenant = ? AND id = ? AND implicit = 0`,
		sealed, nanos(d.Now()), tenant, id)
	if err != nil {
		return Client{}, fmt.Errorf("state: rotating the secret of OAuth client %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return Client{}, fmt.Errorf("OAuth client %s: %w", id, ErrNotFound)
	}
	return d.Client(ctx, tenant, id)
}

// DeleteClient removes a client that no connection uses.
func (d *DB) DeleteClient(ctx context.Context, tenant, id string) error {
	if _, err := d.Client(ctx, tenant, id); err != nil {
		return err
	}
	// The client's webhook secret goes with it, in the same transaction:
	// a row left behind would outlive the client it verified for.
	ctx, cancel := bound(ctx)
	defer cancel()
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("state: deleting OAuth client %s: %w", id, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, d.q(`DELETE FROM server_oauth_clients WHERE tenant = ? AND id = ? AND implicit = 0
		AND NOT EXISTS (SELECT 1 FROM server_connections WHERE client = server_oauth_clients.id)`), tenant, id)
	if err != nil {
		return fmt.Errorf("state: deleting OAuth client %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("OAuth client %s still has connections; delete them first: %w", id, ErrInUse)
	}
	if _, err := tx.ExecContext(ctx, d.q(`DELETE FROM server_webhook_secrets WHERE client = ? AND tenant = ?`), id, tenant); err != nil {
		return fmt.Errorf("state: deleting the webhook secret of OAuth client %s: %w", id, err)
	}
	defer d.wrote()
	return tx.Commit()
}
