package state

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// The webhook receiver's tables (migrations 200-299): each OAuth client's
// webhook secret, sealed, with the previous one during a rotation; and the
// attribution index, which finds a client's connection by a field value
// without unsealing every connection's fields. The index holds an HMAC of
// each value, keyed with a random key kept sealed in server_webhook_keys, so
// that the table alone tells nothing about the values.
var webhookMigrations = []migration{
	{200, "webhook secrets and the attribution index", []string{
		`CREATE TABLE server_webhook_secrets (
	client          TEXT PRIMARY KEY,
	tenant          TEXT NOT NULL,
	secret_sealed   {bytes} NOT NULL,
	previous_sealed {bytes} NOT NULL,
	previous_until  BIGINT NOT NULL,
	created         BIGINT NOT NULL,
	updated         BIGINT NOT NULL
)`,
		`CREATE TABLE server_webhook_keys (
	id         INTEGER PRIMARY KEY,
	key_sealed {bytes} NOT NULL
)`,
		// field is the lower-case field name; "" marks the connection as
		// indexed (a connection without fields has only that row).
		`CREATE TABLE server_webhook_index (
	connection TEXT NOT NULL,
	field      TEXT NOT NULL,
	tenant     TEXT NOT NULL,
	client     TEXT NOT NULL,
	digest     {bytes} NOT NULL,
	PRIMARY KEY (connection, field)
)`,
		`CREATE INDEX server_webhook_index_lookup ON server_webhook_index (client, field, digest)`,
	}},
	// Values a connection learned when connecting (a realmId, a tenant id)
	// attribute deliveries too. They live with the token, not with the
	// connection's fields, so they are indexed apart (learned = 1) and
	// survive a re-indexing of the fields; the row of field learnedMarker
	// says the connection's learned values were indexed.
	{201, "learned values in the attribution index", []string{
		`ALTER TABLE server_webhook_index ADD COLUMN learned BIGINT NOT NULL DEFAULT 0`,
	}},
}

// learnedMarker is the index row saying a connection's learned values are
// indexed (even when it learned none). No field name holds a "+".
const learnedMarker = "+learned"

// WebhookSecret describes a webhook secret (an OAuth client's or a
// connection's), never its value.
type WebhookSecret struct {
	Client     string // the OAuth client's; "" for a connection's
	Connection string // the connection's; "" for an OAuth client's
	Tenant     string
	Created    time.Time
	Updated    time.Time
	// PreviousUntil is when the secret replaced by the last rotation stops
	// verifying deliveries; zero when none does.
	PreviousUntil time.Time
}

// SetWebhookSecret sets the webhook secret of the tenant's OAuth client.
// With keepPrevious > 0 the secret it replaces keeps verifying deliveries
// for that long (a rotation: the provider may still sign with it).
func (d *DB) SetWebhookSecret(ctx context.Context, tenant, client, secret string, keepPrevious time.Duration) (WebhookSecret, error) {
	if _, err := d.Client(ctx, tenant, client); err != nil {
		return WebhookSecret{}, err
	}
	if err := clientSecrets.set(ctx, d, tenant, client, secret, keepPrevious); err != nil {
		return WebhookSecret{}, err
	}
	return d.WebhookSecretOf(ctx, tenant, client)
}

// WebhookSecretOf describes the webhook secret of the tenant's client;
// ErrNotFound when the client has none (or is not the tenant's).
func (d *DB) WebhookSecretOf(ctx context.Context, tenant, client string) (WebhookSecret, error) {
	return clientSecrets.describe(ctx, d, tenant, client, "server_oauth_clients")
}

// DeleteWebhookSecret removes the client's webhook secret: its receiver
// refuses every delivery from then on.
func (d *DB) DeleteWebhookSecret(ctx context.Context, tenant, client string) error {
	return clientSecrets.delete(ctx, d, tenant, client)
}

// Receiver is what the webhook receiver needs of an OAuth client, found by
// its id alone: the delivery's URL names the client, and the client names
// the tenant.
type Receiver struct {
	Client Client
	// Secrets verify deliveries: the webhook secret, then the previous one
	// while its rotation's grace lasts. Empty when none is set.
	Secrets [][]byte
}

// String leaves the secrets out.
func (r Receiver) String() string {
	return fmt.Sprintf("receiver{%s secrets=%d}", r.Client, len(r.Secrets))
}

// Format keeps every verb on String.
func (r Receiver) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(r.String())) }

// WebhookReceiver returns the client with id and its webhook secrets,
// whatever its tenant (the route is public; the secret authenticates).
// ErrNotFound when there is no such client.
func (d *DB) WebhookReceiver(ctx context.Context, id string) (Receiver, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	c, err := d.scanClient(d.db.QueryRowContext(ctx, d.q(`SELECT `+clientCols+` FROM server_oauth_clients WHERE id = ? AND implicit = 0`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return Receiver{}, fmt.Errorf("OAuth client %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Receiver{}, err
	}
	secrets, err := clientSecrets.open(ctx, d, c.Tenant, c.ID)
	if err != nil {
		return Receiver{}, err
	}
	return Receiver{Client: c, Secrets: secrets}, nil
}

// indexKeys caches each DB's index key (it never changes once made).
var indexKeys sync.Map // *DB -> []byte

// indexKey returns the key of the attribution index's HMACs, making it on
// first use; replicas racing to make it agree on the first one stored.
func (d *DB) indexKey(ctx context.Context) ([]byte, error) {
	if k, ok := indexKeys.Load(d); ok {
		return k.([]byte), nil
	}
	ad := []byte("server_webhook_keys\x001")
	fresh := make([]byte, 32)
	_, _ = rand.Read(fresh)
	sealed, err := d.sealer.Seal(fresh, ad)
	if err != nil {
		return nil, err
	}
	if _, err := d.exec(ctx, `INSERT INTO server_webhook_keys (id, key_sealed) VALUES (1, ?) ON CONFLICT (id) DO NOTHING`, sealed); err != nil {
		return nil, fmt.Errorf("state: storing the attribution index key: %w", err)
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	if err := d.db.QueryRowContext(ctx, `SELECT key_sealed FROM server_webhook_keys WHERE id = 1`).Scan(&sealed); err != nil {
		return nil, fmt.Errorf("state: reading the attribution index key: %w", err)
	}
	key, err := d.sealer.Open(sealed, ad)
	if err != nil {
		return nil, fmt.Errorf("state: the attribution index key cannot be decrypted (wrong key, or the row was altered): %w", err)
	}
	indexKeys.Store(d, key)
	return key, nil
}

func digest(key []byte, tenant, client, field, value string) []byte {
	m := hmac.New(sha256.New, key)
	for _, s := range []string{tenant, client, field, value} {
		m.Write([]byte(s))
		m.Write([]byte{0})
	}
	return m.Sum(nil)
}

// indexConnection records c's field values in the attribution index. It
// is idempotent; a connection it missed (a crash between the connection's
// insert and this) is indexed when a delivery for its client finds nothing.
func (d *DB) indexConnection(ctx context.Context, c Connection) error {
	key, err := d.indexKey(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("state: indexing connection %s: %w", c.ID, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, d.q(`DELETE FROM server_webhook_index WHERE connection = ? AND learned = 0`), c.ID); err != nil {
		return fmt.Errorf("state: indexing connection %s: %w", c.ID, err)
	}
	rows := map[string][]byte{"": {}}
	for name, v := range c.Fields {
		if name = strings.ToLower(name); name != "" && v != "" {
			rows[name] = digest(key, c.Tenant, c.Client, name, v)
		}
	}
	for field, dg := range rows {
		// A learned value of the same name wins: it is what the engine uses.
		if _, err := tx.ExecContext(ctx, d.q(`INSERT INTO server_webhook_index (connection, field, tenant, client, digest) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (connection, field) DO NOTHING`),
			c.ID, field, c.Tenant, c.Client, dg); err != nil {
			return fmt.Errorf("state: indexing connection %s: %w", c.ID, err)
		}
	}
	return tx.Commit()
}

// IndexLearned records the values connection id learned when connecting
// (learned field name to value; the token record keeps them) in the
// attribution index, replacing those recorded before. The server calls it
// when a connection's learned values change.
func (d *DB) IndexLearned(ctx context.Context, id string, values map[string]string) error {
	key, err := d.indexKey(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("state: indexing the learned values of connection %s: %w", id, err)
	}
	defer tx.Rollback()
	var tenant, client string
	err = tx.QueryRowContext(ctx, d.q(`SELECT tenant, client FROM server_connections WHERE id = ?`), id).Scan(&tenant, &client)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("connection %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("state: indexing the learned values of connection %s: %w", id, err)
	}
	if _, err := tx.ExecContext(ctx, d.q(`DELETE FROM server_webhook_index WHERE connection = ? AND learned = 1`), id); err != nil {
		return fmt.Errorf("state: indexing the learned values of connection %s: %w", id, err)
	}
	rows := map[string][]byte{learnedMarker: {}}
	for name, v := range values {
		if name = strings.ToLower(name); name != "" && v != "" {
			rows[name] = digest(key, tenant, client, name, v)
		}
	}
	for field, dg := range rows {
		if _, err := tx.ExecContext(ctx, d.q(`INSERT INTO server_webhook_index (connection, field, tenant, client, digest, learned) VALUES (?, ?, ?, ?, ?, 1)
			ON CONFLICT (connection, field) DO UPDATE SET digest = excluded.digest, learned = 1`), id, field, tenant, client, dg); err != nil {
			return fmt.Errorf("state: indexing the learned values of connection %s: %w", id, err)
		}
	}
	defer d.wrote()
	return tx.Commit()
}

// UnindexedLearned returns up to limit connections of the tenant's client
// whose learned values were never indexed (connected before the index
// held them), for the caller to read from the token store and IndexLearned.
func (d *DB) UnindexedLearned(ctx context.Context, tenant, client string, limit int) ([]string, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	rows, err := d.db.QueryContext(ctx, d.q(`SELECT n.id FROM server_connections n WHERE n.tenant = ? AND n.client = ?
		AND NOT EXISTS (SELECT 1 FROM server_webhook_index i WHERE i.connection = n.id AND i.field = ?)
		ORDER BY n.created, n.id LIMIT ?`), tenant, client, learnedMarker, limit)
	if err != nil {
		return nil, fmt.Errorf("state: finding connections with unindexed learned values: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// indexPending indexes the client's connections the index lacks, and
// reports how many it found.
func (d *DB) indexPending(ctx context.Context, tenant, client string) (int, error) {
	qctx, cancel := bound(ctx)
	defer cancel()
	rows, err := d.db.QueryContext(qctx, d.q(`SELECT `+connCols+` FROM server_connections n WHERE n.tenant = ? AND n.client = ?
		AND NOT EXISTS (SELECT 1 FROM server_webhook_index i WHERE i.connection = n.id AND i.field = '')`), tenant, client)
	if err != nil {
		return 0, fmt.Errorf("state: finding unindexed connections: %w", err)
	}
	var pending []Connection
	for rows.Next() {
		c, err := d.scanConn(rows)
		if err != nil {
			rows.Close()
			return 0, err
		}
		pending = append(pending, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	for _, c := range pending {
		if err := d.indexConnection(ctx, c); err != nil {
			return 0, err
		}
	}
	return len(pending), nil
}

// AttributeDelivery returns the id of the tenant's connection of client
// whose field holds value, or "" when none does. Only that client's
// connections are candidates. When several match, a connected one is
// preferred, then the oldest: one delivery is one event. With isDefault
// (value is the field's default in the definition) a connection that
// leaves the field unset holds it too, when none sets it explicitly.
func (d *DB) AttributeDelivery(ctx context.Context, tenant, client, field, value string, isDefault bool) (string, error) {
	if value == "" || field == "" {
		return "", nil
	}
	key, err := d.indexKey(ctx)
	if err != nil {
		return "", err
	}
	field = strings.ToLower(field)
	dg := digest(key, tenant, client, field, value)
	find := func() (string, error) {
		ctx, cancel := bound(ctx)
		defer cancel()
		var id string
		err := d.db.QueryRowContext(ctx, d.q(`SELECT n.id FROM server_webhook_index i
			JOIN server_connections n ON n.id = i.connection AND n.tenant = i.tenant AND n.client = i.client
			WHERE i.client = ? AND i.field = ? AND i.digest = ? AND i.tenant = ?
			ORDER BY CASE WHEN n.status = ? THEN 0 ELSE 1 END, n.created, n.id LIMIT 1`), client, field, dg, tenant, StatusConnected).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return "", nil
		}
		if err != nil {
			return "", fmt.Errorf("state: attributing a delivery: %w", err)
		}
		return id, nil
	}
	unset := func() (string, error) {
		if !isDefault {
			return "", nil
		}
		ctx, cancel := bound(ctx)
		defer cancel()
		var id string
		err := d.db.QueryRowContext(ctx, d.q(`SELECT n.id FROM server_webhook_index i
			JOIN server_connections n ON n.id = i.connection AND n.tenant = i.tenant AND n.client = i.client
			WHERE i.client = ? AND i.field = '' AND i.tenant = ?
			AND NOT EXISTS (SELECT 1 FROM server_webhook_index f WHERE f.connection = i.connection AND f.field = ?)
			ORDER BY CASE WHEN n.status = ? THEN 0 ELSE 1 END, n.created, n.id LIMIT 1`), client, tenant, field, StatusConnected).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return "", nil
		}
		if err != nil {
			return "", fmt.Errorf("state: attributing a delivery: %w", err)
		}
		return id, nil
	}
	id, err := find()
	if id != "" || err != nil {
		return id, err
	}
	if n, err := d.indexPending(ctx, tenant, client); err != nil {
		return "", err
	} else if n > 0 {
		if id, err := find(); id != "" || err != nil {
			return id, err
		}
	}
	return unset()
}
