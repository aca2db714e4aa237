package state

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Scope is what an API key may do.
type Scope string

const (
	// ScopeAdmin manages the tenant's OAuth clients and may do everything below.
	ScopeAdmin Scope = "admin"
	// ScopeConnectionsRead reads connections.
	ScopeConnectionsRead Scope = "connections:read"
	// ScopeConnectionsWrite creates, authorizes, refreshes and deletes connections.
	ScopeConnectionsWrite Scope = "connections:write"
	// ScopeToken obtains connections' access tokens.
	ScopeToken Scope = "token"
	// ScopeProxy sends requests and runs actions through connections.
	ScopeProxy Scope = "proxy"
)

// Scopes lists every scope, in a stable order.
var Scopes = []Scope{ScopeAdmin, ScopeConnectionsRead, ScopeConnectionsWrite, ScopeToken, ScopeProxy}

// ParseScope checks a scope's name.
func ParseScope(s string) (Scope, error) {
	if slices.Contains(Scopes, Scope(s)) {
		return Scope(s), nil
	}
	names := make([]string, len(Scopes))
	for i, sc := range Scopes {
		names[i] = string(sc)
	}
	return "", fmt.Errorf("unknown scope %q; scopes are %s", s, strings.Join(names, ", "))
}

// Tenant owns OAuth clients, connections and API keys.
type Tenant struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
}

var tenantID = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// EnsureTenant creates the tenant when it does not exist and returns it.
func (d *DB) EnsureTenant(ctx context.Context, id, name string) (Tenant, error) {
	if !tenantID.MatchString(id) {
		return Tenant{}, fmt.Errorf("tenant id %q must be 1-63 lower-case letters, digits, '-' or '_', starting with a letter or digit", id)
	}
	if name == "" {
		name = id
	}
	now := d.Now()
	_, err := d.exec(ctx, `INSERT INTO server_tenants (id, name, created) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING`, id, name, nanos(now))
	if err != nil {
		return Tenant{}, fmt.Errorf("state: creating tenant %s: %w", id, err)
	}
	return d.Tenant(ctx, id)
}

// Tenant returns the tenant id.
func (d *DB) Tenant(ctx context.Context, id string) (Tenant, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	var t Tenant
	var created int64
	err := d.db.QueryRowContext(ctx, d.q(`SELECT id, name, created FROM server_tenants WHERE id = ?`), id).Scan(&t.ID, &t.Name, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return Tenant{}, fmt.Errorf("tenant %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Tenant{}, fmt.Errorf("state: reading tenant %s: %w", id, err)
	}
	t.Created = fromNanos(created)
	return t, nil
}

// KeyPrefix starts every API key, so that a leaked one is recognisable (to
// secret scanners, say).
const KeyPrefix = "cks_"

// APIKey is a stored API key: its hash, never the key.
type APIKey struct {
	ID       string    `json:"id"`
	Tenant   string    `json:"tenant"`
	Scopes   []Scope   `json:"scopes"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used"`
}

// Principal is who a request comes from: a key's tenant and scopes.
type Principal struct {
	Tenant string
	KeyID  string
	Scopes []Scope
}

// Can reports whether the principal holds scope (admin holds every scope).
func (p Principal) Can(scope Scope) bool {
	return slices.Contains(p.Scopes, scope) || slices.Contains(p.Scopes, ScopeAdmin)
}

// ErrUnauthorized: the key is unknown (or malformed).
var ErrUnauthorized = errors.New("unknown API key")

func hashKey(key string) []byte {
	sum := sha256.Sum256([]byte(key))
	return sum[:]
}

// CreateKey makes an API key for tenant (which must exist) with scopes and
// returns it: the only time the key itself is seen. The database keeps its
// SHA-256; a 256-bit random key needs no slow hash.
func (d *DB) CreateKey(ctx context.Context, tenant string, scopes []Scope) (string, APIKey, error) {
	if len(scopes) == 0 {
		return "", APIKey{}, errors.New("an API key needs at least one scope")
	}
	for _, s := range scopes {
		if _, err := ParseScope(string(s)); err != nil {
			return "", APIKey{}, err
		}
	}
	if _, err := d.Tenant(ctx, tenant); err != nil {
		return "", APIKey{}, err
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	key := KeyPrefix + base64.RawURLEncoding.EncodeToString(b)
	k := APIKey{ID: newID("key"), Tenant: tenant, Scopes: slices.Clone(scopes), Created: d.Now().UTC()}
	_, err := d.exec(ctx, `INSERT INTO server_api_keys (id, tenant, hash, scopes, created, last_used) VALUES (?, ?, ?, ?, ?, 0)`,
		k.ID, tenant, hashKey(key), joinScopes(scopes), nanos(k.Created))
	if err != nil {
		return "", APIKey{}, fmt.Errorf("state: storing the API key: %w", err)
	}
	return key, k, nil
}

func joinScopes(s []Scope) string {
	out := make([]string, len(s))
	for i, sc := range s {
		out[i] = string(sc)
	}
	return strings.Join(out, " ")
}

func splitScopes(s string) []Scope {
	var out []Scope
	for _, f := range strings.Fields(s) {
		out = append(out, Scope(f))
	}
	return out
}

// Authenticate finds the key's tenant and scopes. Any failure is
// ErrUnauthorized, which says nothing about why.
func (d *DB) Authenticate(ctx context.Context, key string) (Principal, error) {
	if !strings.HasPrefix(key, KeyPrefix) || len(key) > 128 {
		return Principal{}, ErrUnauthorized
	}
	h := hashKey(key)
	ctx, cancel := bound(ctx)
	defer cancel()
	var p Principal
	var stored []byte
	var scopes string
	var lastUsed int64
	err := d.db.QueryRowContext(ctx, d.q(`SELECT id, tenant, hash, scopes, last_used FROM server_api_keys WHERE hash = ?`), h).
		Scan(&p.KeyID, &p.Tenant, &stored, &scopes, &lastUsed)
	if errors.Is(err, sql.ErrNoRows) {
		return Principal{}, ErrUnauthorized
	}
	if err != nil {
		return Principal{}, fmt.Errorf("state: reading API keys: %w", err)
	}
	// The lookup is by hash; comparing again in constant time keeps any
	// index or collation quirk from turning into a timing oracle.
	if subtle.ConstantTimeCompare(stored, h) != 1 {
		return Principal{}, ErrUnauthorized
	}
	p.Scopes = splitScopes(scopes)
	// Last use is coarse (a minute) so that reads do not each cost a write.
	if now := d.Now(); now.Sub(fromNanos(lastUsed)) > time.Minute {
		_, _ = d.exec(ctx, `UPDATE server_api_keys SET last_used = ? WHERE id = ?`, nanos(now), p.KeyID)
	}
	return p, nil
}

// Keys lists a tenant's keys (never the keys themselves).
func (d *DB) Keys(ctx context.Context, tenant string) ([]APIKey, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	rows, err := d.db.QueryContext(ctx, d.q(`SELECT id, tenant, scopes, created, last_used FROM server_api_keys WHERE tenant = ? ORDER BY id`), tenant)
	if err != nil {
		return nil, fmt.Errorf("state: listing API keys: %w", err)
	}
	defer rows.Close()
	var out []APIKey
	for rows.Next() {
		var k APIKey
		var scopes string
		var created, used int64
		if err := rows.Scan(&k.ID, &k.Tenant, &scopes, &created, &used); err != nil {
			return nil, err
		}
		k.Scopes, k.Created, k.LastUsed = splitScopes(scopes), fromNanos(created), fromNanos(used)
		out = append(out, k)
	}
	return out, rows.Err()
}

// DeleteKey revokes a tenant's key.
func (d *DB) DeleteKey(ctx context.Context, tenant, id string) error {
	res, err := d.exec(ctx, `DELETE FROM server_api_keys WHERE tenant = ? AND id = ?`, tenant, id)
	if err != nil {
		return fmt.Errorf("state: deleting API key: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("API key %s: %w", id, ErrNotFound)
	}
	return nil
}
