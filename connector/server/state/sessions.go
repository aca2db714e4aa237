package state

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"time"
)

// Session is one authorization attempt of a connection, kept so that the
// callback completes on any replica. The state is kept as its SHA-256 (the
// callback presents it), the PKCE verifier sealed.
type Session struct {
	ID         string
	Tenant     string
	Connection string
	Verifier   string
	// DPoPKey is the key the code is bound to (connector.Attempt.DPoPKey,
	// PEM): a secret, sealed at rest like Verifier; "" without dpop.
	DPoPKey  string
	Nonce    string
	ReturnTo string
	Expires  time.Time
	// LinkExpires is when the authorization URL stops working by itself
	// (connector.Attempt.URLExpires: a pushed request's lifetime); zero
	// when it does not.
	LinkExpires time.Time
	Created     time.Time
}

// String leaves the verifier and the DPoP key out.
func (s Session) String() string {
	return fmt.Sprintf("session{id=%s connection=%s expires=%s}", s.ID, s.Connection, s.Expires.Format(time.RFC3339))
}

// Format keeps every verb on String.
func (s Session) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// Errors of UseSession. Each means the callback must not be exchanged.
var (
	ErrSessionUnknown = errors.New("no authorization was started with this state")
	ErrSessionUsed    = errors.New("this authorization was already completed or abandoned; start it again")
	ErrSessionExpired = errors.New("this authorization expired before it was completed; start it again")
)

func sessionAD(id string) []byte { return []byte("server_auth_sessions\x00" + id) }

func sessionKeyAD(id string) []byte { return []byte("server_auth_sessions\x00dpop_key\x00" + id) }

func hashState(state string) []byte {
	sum := sha256.Sum256([]byte(state))
	return sum[:]
}

// CreateSession stores an attempt for s.Connection (of s.Tenant), found
// later by its state.
func (d *DB) CreateSession(ctx context.Context, s Session, state string) (Session, error) {
	if _, err := d.Connection(ctx, s.Tenant, s.Connection); err != nil {
		return Session{}, err
	}
	s.ID = newID("ses")
	s.Created = d.Now().UTC()
	if s.Nonce == "" {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		s.Nonce = base64.RawURLEncoding.EncodeToString(b)
	}
	sealed, err := d.sealer.Seal([]byte(s.Verifier), sessionAD(s.ID))
	if err != nil {
		return Session{}, err
	}
	var link int64
	if !s.LinkExpires.IsZero() {
		link = nanos(s.LinkExpires)
	}
	var keySealed []byte
	if s.DPoPKey != "" {
		if keySealed, err = d.sealer.Seal([]byte(s.DPoPKey), sessionKeyAD(s.ID)); err != nil {
			return Session{}, err
		}
	}
	_, err = d.exec(ctx, `INSERT INTO server_auth_sessions (id, tenant, connection, state_hash, verifier_sealed, dpop_key_sealed, nonce, return_to, expires, link_expires, used, created)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)`,
		s.ID, s.Tenant, s.Connection, hashState(state), sealed, keySealed, s.Nonce, s.ReturnTo, nanos(s.Expires), link, nanos(s.Created))
	if err != nil {
		return Session{}, fmt.Errorf("state: storing the authorization session: %w", err)
	}
	return s, nil
}

// UseSession consumes the session started with state: one conditional
// UPDATE, so that of any number of replicas receiving the same callback
// exactly one gets the session. An expired session is consumed too.
func (d *DB) UseSession(ctx context.Context, state string) (Session, error) {
	if state == "" || len(state) > 512 {
		return Session{}, ErrSessionUnknown
	}
	h := hashState(state)
	now := d.Now()
	ctx, cancel := bound(ctx)
	defer cancel()
	var s Session
	var sealed, keySealed []byte
	var expires, link, created int64
	err := d.db.QueryRowContext(ctx, d.q(`UPDATE server_auth_sessions SET used = ? WHERE state_hash = ? AND used = 0
		RETURNING id, tenant, connection, verifier_sealed, dpop_key_sealed, nonce, return_to, expires, link_expires, created`), nanos(now), h).
		Scan(&s.ID, &s.Tenant, &s.Connection, &sealed, &keySealed, &s.Nonce, &s.ReturnTo, &expires, &link, &created)
	if errors.Is(err, sql.ErrNoRows) {
		var n int
		if err := d.db.QueryRowContext(ctx, d.q(`SELECT count(*) FROM server_auth_sessions WHERE state_hash = ?`), h).Scan(&n); err == nil && n > 0 {
			return Session{}, ErrSessionUsed
		}
		return Session{}, ErrSessionUnknown
	}
	if err != nil {
		return Session{}, fmt.Errorf("state: reading the authorization session: %w", err)
	}
	s.Expires, s.LinkExpires, s.Created = fromNanos(expires), fromNanos(link), fromNanos(created)
	if !now.Before(s.Expires) {
		return s, ErrSessionExpired
	}
	v, err := d.sealer.Open(sealed, sessionAD(s.ID))
	if err != nil {
		return Session{}, fmt.Errorf("state: the verifier of session %s cannot be decrypted: %w", s.ID, err)
	}
	s.Verifier = string(v)
	if len(keySealed) > 0 {
		k, err := d.sealer.Open(keySealed, sessionKeyAD(s.ID))
		if err != nil {
			return Session{}, fmt.Errorf("state: the DPoP key of session %s cannot be decrypted: %w", s.ID, err)
		}
		s.DPoPKey = string(k)
	}
	return s, nil
}

// Session returns one of the tenant's sessions (without its verifier), and
// whether it was used.
func (d *DB) Session(ctx context.Context, tenant, id string) (Session, bool, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	var s Session
	var expires, created, used int64
	err := d.db.QueryRowContext(ctx, d.q(`SELECT id, tenant, connection, nonce, return_to, expires, created, used FROM server_auth_sessions WHERE tenant = ? AND id = ?`), tenant, id).
		Scan(&s.ID, &s.Tenant, &s.Connection, &s.Nonce, &s.ReturnTo, &expires, &created, &used)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, false, fmt.Errorf("session %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Session{}, false, err
	}
	s.Expires, s.Created = fromNanos(expires), fromNanos(created)
	return s, used != 0, nil
}

// PurgeSessions deletes sessions that expired before cutoff.
func (d *DB) PurgeSessions(ctx context.Context, cutoff time.Time) (int64, error) {
	res, err := d.exec(ctx, `DELETE FROM server_auth_sessions WHERE expires < ?`, nanos(cutoff))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
