package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Webhook secrets live in two tables of one shape: an OAuth client's
// (server_webhook_secrets, migration 200: one receiver for all the
// client's connections, deliveries attributed by a field) and a
// connection's (server_connection_webhook_secrets, migration 403: a
// receiver of its own, as Stripe gives each account its own endpoint and
// signing secret). Both keep the secret sealed, bound to its owner's id,
// and, during a rotation, the previous one with the time it stops
// verifying. secretTable is the code both share.
type secretTable struct {
	table, owner string // the table and its key column
}

var (
	clientSecrets     = secretTable{"server_webhook_secrets", "client"}
	connectionSecrets = secretTable{"server_connection_webhook_secrets", "connection"}
)

// The associated data binds a sealed secret to its table and owner; the
// client table's is the one migration 200 shipped with.
func (t secretTable) ad(id string) []byte { return []byte(t.table + "\x00" + id) }
func (t secretTable) previousAD(id string) []byte {
	return []byte(t.table + ".previous\x00" + id)
}

// set stores secret as id's, keeping the one it replaces verifying for
// keepPrevious when that is positive. The caller checked that id is the
// tenant's.
func (t secretTable) set(ctx context.Context, d *DB, tenant, id, secret string, keepPrevious time.Duration) error {
	sealed, err := d.sealer.Seal([]byte(secret), t.ad(id))
	if err != nil {
		return err
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("state: setting the webhook secret of %s: %w", id, err)
	}
	defer tx.Rollback()
	now := d.Now().UTC()
	var oldSealed []byte
	err = tx.QueryRowContext(ctx, d.q(`SELECT secret_sealed FROM `+t.table+` WHERE `+t.owner+` = ? AND tenant = ?`), id, tenant).Scan(&oldSealed)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx, d.q(`INSERT INTO `+t.table+` (`+t.owner+`, tenant, secret_sealed, previous_sealed, previous_until, created, updated) VALUES (?, ?, ?, ?, 0, ?, ?)`),
			id, tenant, sealed, []byte{}, nanos(now), nanos(now)); err != nil {
			return fmt.Errorf("state: setting the webhook secret of %s: %w", id, err)
		}
	case err != nil:
		return fmt.Errorf("state: setting the webhook secret of %s: %w", id, err)
	default:
		prev, until := []byte{}, int64(0)
		if keepPrevious > 0 {
			old, err := d.sealer.Open(oldSealed, t.ad(id))
			if err != nil {
				return fmt.Errorf("state: the webhook secret of %s cannot be decrypted (wrong key, or the row was altered): %w", id, err)
			}
			if prev, err = d.sealer.Seal(old, t.previousAD(id)); err != nil {
				return err
			}
			until = nanos(now.Add(keepPrevious))
		}
		if _, err := tx.ExecContext(ctx, d.q(`UPDATE `+t.table+` SET secret_sealed = ?, previous_sealed = ?, previous_until = ?, updated = ? WHERE `+t.owner+` = ? AND tenant = ?`),
			sealed, prev, until, nanos(now), id, tenant); err != nil {
			return fmt.Errorf("state: setting the webhook secret of %s: %w", id, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("state: setting the webhook secret of %s: %w", id, err)
	}
	return nil
}

// describe reads id's secret row, never the secret; join names the
// owner's table, so that a row whose owner is gone is not found.
func (t secretTable) describe(ctx context.Context, d *DB, tenant, id, join string) (WebhookSecret, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	var w WebhookSecret
	var owner string
	var created, updated, until int64
	err := d.db.QueryRowContext(ctx, d.q(`SELECT s.`+t.owner+`, s.tenant, s.created, s.updated, s.previous_until FROM `+t.table+` s
		JOIN `+join+` o ON o.id = s.`+t.owner+` AND o.tenant = s.tenant WHERE s.`+t.owner+` = ? AND s.tenant = ?`), id, tenant).
		Scan(&owner, &w.Tenant, &created, &updated, &until)
	if errors.Is(err, sql.ErrNoRows) {
		return WebhookSecret{}, fmt.Errorf("webhook secret of %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return WebhookSecret{}, fmt.Errorf("state: reading the webhook secret of %s: %w", id, err)
	}
	if t == clientSecrets {
		w.Client = owner
	} else {
		w.Connection = owner
	}
	w.Created, w.Updated = fromNanos(created), fromNanos(updated)
	if until > nanos(d.Now()) {
		w.PreviousUntil = fromNanos(until)
	}
	return w, nil
}

func (t secretTable) delete(ctx context.Context, d *DB, tenant, id string) error {
	res, err := d.exec(ctx, `DELETE FROM `+t.table+` WHERE `+t.owner+` = ? AND tenant = ?`, id, tenant)
	if err != nil {
		return fmt.Errorf("state: deleting the webhook secret of %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("webhook secret of %s: %w", id, ErrNotFound)
	}
	return nil
}

// open returns the secrets that verify id's deliveries: the secret, then
// the previous one while its grace lasts; none when no secret is set.
func (t secretTable) open(ctx context.Context, d *DB, tenant, id string) ([][]byte, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	var sealed, prev []byte
	var until int64
	err := d.db.QueryRowContext(ctx, d.q(`SELECT secret_sealed, previous_sealed, previous_until FROM `+t.table+` WHERE `+t.owner+` = ? AND tenant = ?`), id, tenant).
		Scan(&sealed, &prev, &until)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state: reading the webhook secret of %s: %w", id, err)
	}
	s, err := d.sealer.Open(sealed, t.ad(id))
	if err != nil {
		return nil, fmt.Errorf("state: the webhook secret of %s cannot be decrypted (wrong key, or the row was altered): %w", id, err)
	}
	out := [][]byte{s}
	if len(prev) > 0 && until > nanos(d.Now()) {
		p, err := d.sealer.Open(prev, t.previousAD(id))
		if err != nil {
			return nil, fmt.Errorf("state: the previous webhook secret of %s cannot be decrypted: %w", id, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// SetConnectionWebhookSecret sets the webhook secret of the tenant's
// connection, which verifies the deliveries of its own receiver. With
// keepPrevious > 0 the secret it replaces keeps verifying for that long.
func (d *DB) SetConnectionWebhookSecret(ctx context.Context, tenant, conn, secret string, keepPrevious time.Duration) (WebhookSecret, error) {
	if _, err := d.Connection(ctx, tenant, conn); err != nil {
		return WebhookSecret{}, err
	}
	if err := connectionSecrets.set(ctx, d, tenant, conn, secret, keepPrevious); err != nil {
		return WebhookSecret{}, err
	}
	return d.ConnectionWebhookSecretOf(ctx, tenant, conn)
}

// ConnectionWebhookSecretOf describes the webhook secret of the tenant's
// connection; ErrNotFound when it has none (or is not the tenant's).
func (d *DB) ConnectionWebhookSecretOf(ctx context.Context, tenant, conn string) (WebhookSecret, error) {
	return connectionSecrets.describe(ctx, d, tenant, conn, "server_connections")
}

// DeleteConnectionWebhookSecret removes the connection's webhook secret:
// its receiver refuses every delivery from then on. Deleting the
// connection removes it too (ON DELETE CASCADE).
func (d *DB) DeleteConnectionWebhookSecret(ctx context.Context, tenant, conn string) error {
	return connectionSecrets.delete(ctx, d, tenant, conn)
}

// ConnectionReceiver is what a connection's own webhook receiver needs,
// found by the connection's id alone: the URL names the connection, and
// the connection names the tenant.
type ConnectionReceiver struct {
	Connection Connection
	Client     Client // its OAuth client, or its implicit one
	// Secrets verify deliveries: the webhook secret, then the previous one
	// while its rotation's grace lasts. Empty when none is set.
	Secrets [][]byte
}

// String leaves the secrets and field values out.
func (r ConnectionReceiver) String() string {
	return fmt.Sprintf("receiver{%s secrets=%d}", r.Connection, len(r.Secrets))
}

// Format keeps every verb on String.
func (r ConnectionReceiver) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(r.String())) }

// ConnectionWebhookReceiver returns connection id, its client and its
// webhook secrets, whatever its tenant (the route is public; the secret
// authenticates). ErrNotFound when there is no such connection.
func (d *DB) ConnectionWebhookReceiver(ctx context.Context, id string) (ConnectionReceiver, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	var tenant string
	err := d.db.QueryRowContext(ctx, d.q(`SELECT tenant FROM server_connections WHERE id = ?`), id).Scan(&tenant)
	if errors.Is(err, sql.ErrNoRows) {
		return ConnectionReceiver{}, fmt.Errorf("connection %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return ConnectionReceiver{}, fmt.Errorf("state: reading connection %s: %w", id, err)
	}
	c, cl, err := d.ConnectionAndClient(ctx, tenant, id)
	if err != nil {
		return ConnectionReceiver{}, err
	}
	secrets, err := connectionSecrets.open(ctx, d, tenant, id)
	if err != nil {
		return ConnectionReceiver{}, err
	}
	return ConnectionReceiver{Connection: c, Client: cl, Secrets: secrets}, nil
}
