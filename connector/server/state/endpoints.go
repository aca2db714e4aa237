package state

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Endpoint is where a tenant's events go: its URL and the secrets that sign
// them. Secrets are sealed at rest, bound to the tenant; while a rotated
// secret's grace period lasts, events are signed with both.
type Endpoint struct {
	Tenant string
	URL    string
	// Secrets signs the events: the current secret first, then the previous
	// one while its grace period lasts.
	Secrets       []string
	SecretCreated time.Time
	Created       time.Time
	Updated       time.Time
}

// String leaves the secrets out.
func (e Endpoint) String() string {
	return fmt.Sprintf("endpoint{tenant=%s url=%s secrets=%d}", e.Tenant, e.URL, len(e.Secrets))
}

// Format keeps every verb on String.
func (e Endpoint) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(e.String())) }

func endpointAD(tenant, which string) []byte {
	return []byte("server_event_endpoints\x00" + tenant + "\x00" + which)
}

// ErrInvalidSecret: a signing secret that is not a Standard Webhooks secret.
var ErrInvalidSecret = errors.New("a signing secret is whsec_ followed by the standard base64 of 24 to 64 random bytes (a Standard Webhooks secret)")

// CheckEndpointSecret says whether secret can sign events: whsec_ and the
// standard base64 (padded) of a 24- to 64-byte key, as the Standard Webhooks
// specification has it. A secret of another form would be stored, then
// make every delivery fail as unsignable, or sign with a key receivers'
// libraries decode differently.
func CheckEndpointSecret(secret string) error {
	raw, ok := strings.CutPrefix(secret, "whsec_")
	if !ok {
		return fmt.Errorf("%w: it does not start with whsec_", ErrInvalidSecret)
	}
	key, err := base64.StdEncoding.Strict().DecodeString(raw)
	if err != nil {
		return fmt.Errorf("%w: what follows whsec_ is not standard base64", ErrInvalidSecret)
	}
	if len(key) < 24 || len(key) > 64 {
		return fmt.Errorf("%w: it holds %d bytes", ErrInvalidSecret, len(key))
	}
	return nil
}

// SetEndpoint sets the tenant's event URL. A tenant without an endpoint
// gets one signed with secret, and created is true; an existing one keeps
// its secrets (rotate them with RotateEndpointSecret). A secret that
// CheckEndpointSecret refuses is refused (ErrInvalidSecret).
func (d *DB) SetEndpoint(ctx context.Context, tenant, url, secret string) (ep Endpoint, created bool, err error) {
	if err := CheckEndpointSecret(secret); err != nil {
		return Endpoint{}, false, err
	}
	if _, err := d.Tenant(ctx, tenant); err != nil {
		return Endpoint{}, false, err
	}
	sealed, err := d.sealer.Seal([]byte(secret), endpointAD(tenant, "current"))
	if err != nil {
		return Endpoint{}, false, err
	}
	now := nanos(d.Now())
	res, err := d.exec(ctx, `INSERT INTO server_event_endpoints (tenant, url, secret_sealed, previous_sealed, previous_until, secret_created, created, updated)
		VALUES (?, ?, ?, ?, 0, ?, ?, ?) ON CONFLICT (tenant) DO NOTHING`, tenant, url, sealed, []byte{}, now, now, now)
	if err != nil {
		return Endpoint{}, false, fmt.Errorf("state: storing the event endpoint: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		created = true
	} else if _, err := d.exec(ctx, `UPDATE server_event_endpoints SET url = ?, updated = ? WHERE tenant = ?`, url, now, tenant); err != nil {
		return Endpoint{}, false, fmt.Errorf("state: storing the event endpoint: %w", err)
	}
	ep, err = d.Endpoint(ctx, tenant)
	return ep, created, err
}

// Endpoint returns the tenant's event endpoint, ErrNotFound when it has none.
func (d *DB) Endpoint(ctx context.Context, tenant string) (Endpoint, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	var e Endpoint
	var cur, prev []byte
	var prevUntil, secretCreated, created, updated int64
	err := d.db.QueryRowContext(ctx, d.q(`SELECT tenant, url, secret_sealed, previous_sealed, previous_until, secret_created, created, updated
		FROM server_event_endpoints WHERE tenant = ?`), tenant).Scan(&e.Tenant, &e.URL, &cur, &prev, &prevUntil, &secretCreated, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return Endpoint{}, fmt.Errorf("event endpoint of tenant %s: %w", tenant, ErrNotFound)
	}
	if err != nil {
		return Endpoint{}, fmt.Errorf("state: reading the event endpoint: %w", err)
	}
	s, err := d.sealer.Open(cur, endpointAD(tenant, "current"))
	if err != nil {
		return Endpoint{}, fmt.Errorf("state: the signing secret of tenant %s cannot be decrypted (wrong key, or the row was altered): %w", tenant, err)
	}
	e.Secrets = []string{string(s)}
	if len(prev) > 0 && d.Now().Before(fromNanos(prevUntil)) {
		p, err := d.sealer.Open(prev, endpointAD(tenant, "previous"))
		if err != nil {
			return Endpoint{}, fmt.Errorf("state: the previous signing secret of tenant %s cannot be decrypted: %w", tenant, err)
		}
		e.Secrets = append(e.Secrets, string(p))
	}
	e.SecretCreated, e.Created, e.Updated = fromNanos(secretCreated), fromNanos(created), fromNanos(updated)
	return e, nil
}

// RotateEndpointSecret replaces the tenant's signing secret with secret; the
// old one keeps signing (beside the new) for grace, so that receivers can
// switch without losing events. A secret that CheckEndpointSecret refuses
// is refused (ErrInvalidSecret).
func (d *DB) RotateEndpointSecret(ctx context.Context, tenant, secret string, grace time.Duration) (Endpoint, error) {
	if err := CheckEndpointSecret(secret); err != nil {
		return Endpoint{}, err
	}
	old, err := d.Endpoint(ctx, tenant)
	if err != nil {
		return Endpoint{}, err
	}
	cur, err := d.sealer.Seal([]byte(secret), endpointAD(tenant, "current"))
	if err != nil {
		return Endpoint{}, err
	}
	prev, err := d.sealer.Seal([]byte(old.Secrets[0]), endpointAD(tenant, "previous"))
	if err != nil {
		return Endpoint{}, err
	}
	now := d.Now()
	res, err := d.exec(ctx, `UPDATE server_event_endpoints SET secret_sealed = ?, previous_sealed = ?, previous_until = ?, secret_created = ?, updated = ? WHERE tenant = ?`,
		cur, prev, nanos(now.Add(grace)), nanos(now), nanos(now), tenant)
	if err != nil {
		return Endpoint{}, fmt.Errorf("state: rotating the signing secret: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return Endpoint{}, fmt.Errorf("event endpoint of tenant %s: %w", tenant, ErrNotFound)
	}
	return d.Endpoint(ctx, tenant)
}

// DeleteEndpoint removes the tenant's endpoint and its secrets. Events keep
// queueing; they are delivered if an endpoint is set again before their
// retry budget ends.
func (d *DB) DeleteEndpoint(ctx context.Context, tenant string) error {
	res, err := d.exec(ctx, `DELETE FROM server_event_endpoints WHERE tenant = ?`, tenant)
	if err != nil {
		return fmt.Errorf("state: deleting the event endpoint: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("event endpoint of tenant %s: %w", tenant, ErrNotFound)
	}
	return nil
}
