package state

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// The browser sessions: connect sessions (a link a platform sends its end
// user to, to create and authorize one connection) and admin sessions (an
// admin API key exchanged for a cookie). Both are found by a random token
// the browser presents, kept here only as its SHA-256.
var browserMigrations = []migration{
	{400, "connect sessions, admin sessions", []string{
		`CREATE TABLE server_connect_sessions (
	id           TEXT PRIMARY KEY,
	tenant       TEXT NOT NULL REFERENCES server_tenants (id),
	token_hash   {bytes} NOT NULL UNIQUE,
	clients      TEXT NOT NULL,
	end_user     TEXT NOT NULL,
	return_to    TEXT NOT NULL,
	environment  TEXT NOT NULL,
	connection   TEXT NOT NULL,
	auth_session TEXT NOT NULL,
	expires      BIGINT NOT NULL,
	used         BIGINT NOT NULL,
	created      BIGINT NOT NULL
)`,
		`CREATE INDEX server_connect_sessions_auth ON server_connect_sessions (tenant, auth_session)`,
		`CREATE TABLE server_admin_sessions (
	id          TEXT PRIMARY KEY,
	tenant      TEXT NOT NULL REFERENCES server_tenants (id),
	key_id      TEXT NOT NULL,
	token_hash  {bytes} NOT NULL UNIQUE,
	csrf_sealed {bytes} NOT NULL,
	expires     BIGINT NOT NULL,
	created     BIGINT NOT NULL
)`,
	}},
	{401, "browser sessions: expiry indexes for the purge", []string{
		`CREATE INDEX server_connect_sessions_expires ON server_connect_sessions (expires)`,
		`CREATE INDEX server_admin_sessions_expires ON server_admin_sessions (expires)`,
	}},
}

// BrowserSessionRetention is how long an expired or used session is kept:
// for that long its link answers "expired" or "already used" rather than
// "not valid". Older ones are purged whenever a session is created.
const BrowserSessionRetention = 24 * time.Hour

// Prefixes of the browser tokens, so that a leaked one is recognisable.
const (
	ConnectTokenPrefix = "cct_"
	AdminTokenPrefix   = "cas_"
)

func randomToken(prefix string) string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

func hashToken(t string) []byte {
	sum := sha256.Sum256([]byte(t))
	return sum[:]
}

// ConnectSession is a link that lets one end user create (or re-authorize)
// one connection of the tenant: single purpose, short-lived, used once.
type ConnectSession struct {
	ID      string
	Tenant  string
	Clients []string // the OAuth clients the user may choose from
	EndUser string   // the platform's tag for its user
	// ReturnTo is where the result page sends the browser back ("" for none).
	ReturnTo string
	// Environment fixes the environment; "" lets the user choose.
	Environment string
	// Connection is the connection to authorize again (a re-authorization
	// link), or, once used, the one created.
	Connection  string
	AuthSession string // the authorization started with it, once used
	Expires     time.Time
	Used        time.Time // zero until used
	Created     time.Time
}

// Errors of the connect-session lookups.
var (
	ErrConnectUnknown = errors.New("no connect session has this link")
	ErrConnectUsed    = errors.New("this connect link was already used")
	ErrConnectExpired = errors.New("this connect link expired")
)

// CreateConnectSession stores cs for cs.Tenant and returns it with its id
// and the token of its link (the only time the token is seen).
func (d *DB) CreateConnectSession(ctx context.Context, cs ConnectSession) (ConnectSession, string, error) {
	if _, err := d.Tenant(ctx, cs.Tenant); err != nil {
		return ConnectSession{}, "", err
	}
	if cs.Connection != "" {
		if _, err := d.Connection(ctx, cs.Tenant, cs.Connection); err != nil {
			return ConnectSession{}, "", err
		}
	}
	for _, c := range cs.Clients { // an OAuth client, or the implicit client of a definition without OAuth
		if _, err := d.OfferedClient(ctx, cs.Tenant, c); err != nil {
			return ConnectSession{}, "", err
		}
	}
	d.purgeOld(ctx, "server_connect_sessions")
	cs.ID = newID("cse")
	cs.Created = d.Now().UTC()
	cs.Used, cs.AuthSession = time.Time{}, ""
	token := randomToken(ConnectTokenPrefix)
	clients, _ := json.Marshal(cs.Clients)
	_, err := d.exec(ctx, `INSERT INTO server_connect_sessions (id, tenant, token_hash, clients, end_user, return_to, environment, connection, auth_session, expires, used, created)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, '', ?, 0, ?)`,
		cs.ID, cs.Tenant, hashToken(token), string(clients), cs.EndUser, cs.ReturnTo, cs.Environment, cs.Connection, nanos(cs.Expires), nanos(cs.Created))
	if err != nil {
		return ConnectSession{}, "", fmt.Errorf("state: storing the connect session: %w", err)
	}
	return cs, token, nil
}

const connectCols = `id, tenant, clients, end_user, return_to, environment, connection, auth_session, expires, used, created`

func scanConnect(sc interface{ Scan(...any) error }) (ConnectSession, error) {
	var cs ConnectSession
	var clients string
	var expires, used, created int64
	if err := sc.Scan(&cs.ID, &cs.Tenant, &clients, &cs.EndUser, &cs.ReturnTo, &cs.Environment, &cs.Connection, &cs.AuthSession, &expires, &used, &created); err != nil {
		return ConnectSession{}, err
	}
	_ = json.Unmarshal([]byte(clients), &cs.Clients)
	cs.Expires, cs.Used, cs.Created = fromNanos(expires), fromNanos(used), fromNanos(created)
	return cs, nil
}

// ConnectSessionByToken finds the session of a link. A used or expired one
// is returned with ErrConnectUsed or ErrConnectExpired, so that the page
// can still send the user back to the platform.
func (d *DB) ConnectSessionByToken(ctx context.Context, token string) (ConnectSession, error) {
	if !strings.HasPrefix(token, ConnectTokenPrefix) || len(token) > 128 {
		return ConnectSession{}, ErrConnectUnknown
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	cs, err := scanConnect(d.db.QueryRowContext(ctx, d.q(`SELECT `+connectCols+` FROM server_connect_sessions WHERE token_hash = ?`), hashToken(token)))
	if errors.Is(err, sql.ErrNoRows) {
		return ConnectSession{}, ErrConnectUnknown
	}
	if err != nil {
		return ConnectSession{}, fmt.Errorf("state: reading the connect session: %w", err)
	}
	switch {
	case !cs.Used.IsZero():
		return cs, ErrConnectUsed
	case !d.Now().Before(cs.Expires):
		return cs, ErrConnectExpired
	}
	return cs, nil
}

// UseConnectSession marks the session used for connection and the
// authorization authSession: one conditional UPDATE, so that of two
// submissions of the same link exactly one wins (the other gets
// ErrConnectUsed, or ErrConnectExpired).
func (d *DB) UseConnectSession(ctx context.Context, tenant, id, connection, authSession string) error {
	now := d.Now()
	res, err := d.exec(ctx, `UPDATE server_connect_sessions SET used = ?, connection = ?, auth_session = ?
		WHERE tenant = ? AND id = ? AND used = 0 AND expires > ?`, nanos(now), connection, authSession, tenant, id, nanos(now))
	if err != nil {
		return fmt.Errorf("state: using the connect session: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	cs, err := scanConnect(d.db.QueryRowContext(ctx, d.q(`SELECT `+connectCols+` FROM server_connect_sessions WHERE tenant = ? AND id = ?`), tenant, id))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return ErrConnectUnknown
	case err != nil:
		return fmt.Errorf("state: reading the connect session: %w", err)
	case !cs.Used.IsZero():
		return ErrConnectUsed
	}
	return ErrConnectExpired
}

// ConnectSessionForAuth returns the connect session that started the
// authorization authSession, or ErrNotFound when the API started it.
func (d *DB) ConnectSessionForAuth(ctx context.Context, tenant, authSession string) (ConnectSession, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	cs, err := scanConnect(d.db.QueryRowContext(ctx, d.q(`SELECT `+connectCols+` FROM server_connect_sessions WHERE tenant = ? AND auth_session = ? AND auth_session <> ''`), tenant, authSession))
	if errors.Is(err, sql.ErrNoRows) {
		return ConnectSession{}, fmt.Errorf("connect session for %s: %w", authSession, ErrNotFound)
	}
	return cs, err
}

// AdminSession is a browser's sign-in to the admin pages: an admin API key
// exchanged for a cookie. It ends at Expires, at sign-out, or when the key
// is deleted.
type AdminSession struct {
	ID      string
	Tenant  string
	KeyID   string
	CSRF    string // the synchronizer token every form of the session carries
	Expires time.Time
	Created time.Time
}

// String leaves the CSRF token out.
func (a AdminSession) String() string {
	return fmt.Sprintf("admin-session{id=%s tenant=%s expires=%s}", a.ID, a.Tenant, a.Expires.Format(time.RFC3339))
}

// Format keeps every verb on String.
func (a AdminSession) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(a.String())) }

func adminAD(id string) []byte { return []byte("server_admin_sessions\x00" + id) }

// CreateAdminSession signs p (which must hold the admin scope) in for
// lifetime and returns the session and its cookie token.
func (d *DB) CreateAdminSession(ctx context.Context, p Principal, lifetime time.Duration) (AdminSession, string, error) {
	if !slices.Contains(p.Scopes, ScopeAdmin) {
		return AdminSession{}, "", ErrUnauthorized
	}
	d.purgeOld(ctx, "server_admin_sessions")
	now := d.Now().UTC()
	a := AdminSession{ID: newID("ads"), Tenant: p.Tenant, KeyID: p.KeyID, CSRF: randomToken(""), Expires: now.Add(lifetime), Created: now}
	sealed, err := d.sealer.Seal([]byte(a.CSRF), adminAD(a.ID))
	if err != nil {
		return AdminSession{}, "", err
	}
	token := randomToken(AdminTokenPrefix)
	_, err = d.exec(ctx, `INSERT INTO server_admin_sessions (id, tenant, key_id, token_hash, csrf_sealed, expires, created) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		a.ID, a.Tenant, a.KeyID, hashToken(token), sealed, nanos(a.Expires), nanos(a.Created))
	if err != nil {
		return AdminSession{}, "", fmt.Errorf("state: storing the admin session: %w", err)
	}
	return a, token, nil
}

// AdminSessionByToken finds a live session by its cookie; any failure
// (unknown, expired, its key deleted or no longer admin) is ErrUnauthorized.
func (d *DB) AdminSessionByToken(ctx context.Context, token string) (AdminSession, error) {
	if !strings.HasPrefix(token, AdminTokenPrefix) || len(token) > 128 {
		return AdminSession{}, ErrUnauthorized
	}
	h := hashToken(token)
	ctx, cancel := bound(ctx)
	defer cancel()
	var a AdminSession
	var stored, sealed []byte
	var scopes string
	var expires, created int64
	err := d.db.QueryRowContext(ctx, d.q(`SELECT s.id, s.tenant, s.key_id, s.token_hash, s.csrf_sealed, s.expires, s.created, k.scopes
		FROM server_admin_sessions s JOIN server_api_keys k ON k.id = s.key_id AND k.tenant = s.tenant
		WHERE s.token_hash = ?`), h).Scan(&a.ID, &a.Tenant, &a.KeyID, &stored, &sealed, &expires, &created, &scopes)
	if errors.Is(err, sql.ErrNoRows) {
		return AdminSession{}, ErrUnauthorized
	}
	if err != nil {
		return AdminSession{}, fmt.Errorf("state: reading admin sessions: %w", err)
	}
	a.Expires, a.Created = fromNanos(expires), fromNanos(created)
	if subtle.ConstantTimeCompare(stored, h) != 1 || !d.Now().Before(a.Expires) || !slices.Contains(splitScopes(scopes), ScopeAdmin) {
		return AdminSession{}, ErrUnauthorized
	}
	csrf, err := d.sealer.Open(sealed, adminAD(a.ID))
	if err != nil {
		return AdminSession{}, fmt.Errorf("state: the admin session %s cannot be decrypted: %w", a.ID, err)
	}
	a.CSRF = string(csrf)
	return a, nil
}

// DeleteAdminSession signs the session out.
func (d *DB) DeleteAdminSession(ctx context.Context, tenant, id string) error {
	_, err := d.exec(ctx, `DELETE FROM server_admin_sessions WHERE tenant = ? AND id = ?`, tenant, id)
	if err != nil {
		return fmt.Errorf("state: deleting the admin session: %w", err)
	}
	return nil
}

// purgeOld deletes the table's sessions expired for longer than the
// retention; a failure only leaves them for the next creation.
func (d *DB) purgeOld(ctx context.Context, table string) {
	_, _ = d.exec(ctx, `DELETE FROM `+table+` WHERE expires < ?`, nanos(d.Now().Add(-BrowserSessionRetention)))
}

// PurgeBrowserSessions deletes connect and admin sessions that expired
// before cutoff.
func (d *DB) PurgeBrowserSessions(ctx context.Context, cutoff time.Time) (int64, error) {
	var total int64
	for _, table := range []string{"server_connect_sessions", "server_admin_sessions"} {
		res, err := d.exec(ctx, `DELETE FROM `+table+` WHERE expires < ?`, nanos(cutoff))
		if err != nil {
			return total, err
		}
		n, _ := res.RowsAffected()
		total += n
	}
	return total, nil
}

// ConnectEndUser is the end_user tag of the connect link that last
// authorized the tenant's connection ("" when none did).
func (d *DB) ConnectEndUser(ctx context.Context, tenant, connection string) (string, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	var u string
	err := d.db.QueryRowContext(ctx, d.q(`SELECT end_user FROM server_connect_sessions WHERE tenant = ? AND connection = ? AND used <> 0 ORDER BY used DESC LIMIT 1`), tenant, connection).Scan(&u)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return u, err
}

// RefreshFailure is why the tenant's connection's refreshes have been
// failing transiently, and since when (the marker RecordRefresh keeps);
// zero when they are not.
func (d *DB) RefreshFailure(ctx context.Context, tenant, connection string) (since time.Time, reason string, err error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	var n int64
	err = d.db.QueryRowContext(ctx, d.q(`SELECT since, reason FROM server_refresh_failures WHERE tenant = ? AND connection = ?`), tenant, connection).Scan(&n, &reason)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, "", nil
	}
	return fromNanos(n), reason, err
}
