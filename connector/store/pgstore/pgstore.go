// Package pgstore is the PostgreSQL store.Store, for engines that run on
// several hosts at once. It owns the store's tables and their migrations,
// the sealing of tokens in rows, and the cross-host lock of each connection
// (a PostgreSQL advisory lock).
//
// Tables (in the first schema of the session's search_path, public unless
// the URL says ?search_path=...):
//
//   - connector_connections: one row per connection; status, reason,
//     refresh_started, version and updated_at are columns a person can query,
//     the token is sealed (AES-256-GCM, bound to the connection id and
//     the binding column, what the token was issued for);
//   - connector_history: one row per Put (id, version, status, reason,
//     whether a refresh was in flight, when), never token material; the last
//     HistoryKept versions of each connection are kept;
//   - connector_schema_migrations: the migrations applied, which Open applies
//     itself, each in one transaction under an advisory lock, so that any
//     number of hosts may start at once.
//
// Lock needs a database session of its own: do not put a transaction-mode
// pooler (PgBouncer pool_mode=transaction) between the engine and PostgreSQL.
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/connector-engine/connector/connector/store"
)

// DefaultTimeout bounds a Get, Put, Delete, List or History whose context
// has no deadline, so that an unreachable database gives an error, not a hang.
const DefaultTimeout = 30 * time.Second

// HistoryKept is how many of a connection's latest versions the history keeps.
const HistoryKept = 1000

var historyKept = HistoryKept // lowered by tests

// Keepalive settings for both ends of every connection. The server's side
// matters most: when a host holding a connection's lock dies without closing
// its socket, the server notices within about a minute and releases the lock,
// well inside connector.Source's default two-minute lock wait.
const (
	keepaliveIdle     = 30 * time.Second
	keepaliveInterval = 10 * time.Second
	keepaliveCount    = 3
	connectTimeout    = 10 * time.Second
)

// IsURL reports whether s names a PostgreSQL store (postgres:// or
// postgresql://, in any case) rather than a store file.
func IsURL(s string) bool {
	s = strings.ToLower(s)
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// Store is a store.Store kept in PostgreSQL. It is safe for concurrent use by
// goroutines, and by processes and hosts sharing the database.
type Store struct {
	pool   *pgxpool.Pool // Get, Put, Delete, List, History, migrations
	locks  *pgxpool.Pool // sessions that hold or wait for connection locks
	sealer *store.Sealer
	desc   string   // the URL without its password, for String and errors
	hide   []string // secrets of the URL, scrubbed from every error

	local localLocks // one waiter per connection per Store at the server

	life    context.Context // canceled by Close: ends Lock waits
	die     context.CancelFunc
	closed  atomic.Bool
	heldMu  sync.Mutex
	held    map[*heldLock]struct{}
	closeMu sync.Mutex
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at url (postgres://user:password@host:port/db?...,
// or any form pgx accepts), applies the migrations it lacks, and returns the
// store. Tokens are sealed with sealer. Errors never contain the password.
func Open(ctx context.Context, url string, sealer *store.Sealer) (*Store, error) {
	return open(ctx, url, sealer, migrations)
}

func open(ctx context.Context, url string, sealer *store.Sealer, ms []migration) (*Store, error) {
	if url == "" {
		return nil, errors.New("pgstore: no database URL given")
	}
	if sealer == nil {
		return nil, errors.New("pgstore: no sealer given; the store needs the secret key to seal tokens")
	}
	hide := urlSecrets(url)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, &opError{msg: scrub("pgstore: the store URL is not a PostgreSQL URL pgx can read: "+err.Error(), hide), err: err}
	}
	s := &Store{sealer: sealer, desc: describe(cfg.ConnConfig), hide: append(hide, cfg.ConnConfig.Password), held: map[*heldLock]struct{}{}}
	tune(cfg)

	lcfg := cfg.Copy()
	// A canceled lock wait is ended by a cancel request, which keeps the
	// session; cutting the socket instead would leave the server's backend
	// queued for the lock until it got it and found the client gone.
	lcfg.ConnConfig.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: 3 * time.Second}
	}
	// One session per connection being locked at once in this process (see
	// localLocks); idle ones go soon, as locks are taken only to refresh.
	lcfg.MaxConns = 32
	lcfg.MinConns = 0
	lcfg.MaxConnIdleTime = time.Minute

	if s.pool, err = pgxpool.NewWithConfig(context.Background(), cfg); err != nil {
		return nil, s.wrap(err, "pgstore: opening %s", s.desc)
	}
	if s.locks, err = pgxpool.NewWithConfig(context.Background(), lcfg); err != nil {
		s.pool.Close()
		return nil, s.wrap(err, "pgstore: opening %s", s.desc)
	}
	s.life, s.die = context.WithCancel(context.Background())
	mctx, cancel := bound(ctx)
	defer cancel()
	if err := s.migrate(mctx, ms); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// tune sets what the URL leaves unset: keepalives on both ends, a connect
// timeout, and the application name seen in pg_stat_activity.
func tune(cfg *pgxpool.Config) {
	cc := cfg.ConnConfig
	if cc.ConnectTimeout == 0 {
		cc.ConnectTimeout = connectTimeout
	}
	d := &net.Dialer{KeepAliveConfig: net.KeepAliveConfig{
		Enable: true, Idle: keepaliveIdle, Interval: keepaliveInterval, Count: keepaliveCount,
	}}
	cc.DialFunc = d.DialContext
	for k, v := range map[string]string{
		"application_name":        "connector",
		"tcp_keepalives_idle":     strconv.Itoa(int(keepaliveIdle.Seconds())),
		"tcp_keepalives_interval": strconv.Itoa(int(keepaliveInterval.Seconds())),
		"tcp_keepalives_count":    strconv.Itoa(keepaliveCount),
	} {
		if _, set := cc.RuntimeParams[k]; !set {
			cc.RuntimeParams[k] = v
		}
	}
}

// describe names the database without the password.
func describe(cc *pgx.ConnConfig) string {
	u := url.URL{Scheme: "postgres", User: url.User(cc.User), Path: "/" + cc.Database}
	if strings.HasPrefix(cc.Host, "/") {
		u.RawQuery = url.Values{"host": {cc.Host}, "port": {strconv.Itoa(int(cc.Port))}}.Encode()
	} else {
		u.Host = net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port)))
	}
	return u.String()
}

var kvPassword = regexp.MustCompile(`(?:^|\s)(?:ssl)?password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)`)

// urlSecrets returns the secrets a connection string may hold, as written,
// so that they can be scrubbed from messages even when it does not parse.
func urlSecrets(s string) []string {
	var out []string
	if u, err := url.Parse(s); err == nil && u.Scheme != "" {
		if pw, ok := u.User.Password(); ok {
			out = append(out, pw, url.PathEscape(pw), url.QueryEscape(pw))
		}
		q := u.Query()
		for _, k := range []string{"password", "sslpassword"} {
			for _, v := range q[k] {
				out = append(out, v, url.QueryEscape(v))
			}
		}
	}
	for _, m := range kvPassword.FindAllStringSubmatch(s, -1) {
		out = append(out, strings.Trim(m[1], "'"))
	}
	return out
}

func scrub(msg string, secrets []string) string {
	for _, sec := range secrets {
		if sec != "" {
			msg = strings.ReplaceAll(msg, sec, "xxxxx")
		}
	}
	return msg
}

// opError is a store error whose message has been scrubbed of the URL's
// secrets; it still matches the error it wraps.
type opError struct {
	msg string
	err error
}

func (e *opError) Error() string { return e.msg }
func (e *opError) Unwrap() error { return e.err }

// wrap says what failed ("pgstore: reading connection x from URL") and why.
func (s *Store) wrap(err error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...) + ": " + err.Error()
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		msg += " (is PostgreSQL running and reachable at that address?)"
	}
	return &opError{msg: scrub(msg, s.hide), err: err}
}

// String names the store by its URL, without the password.
func (s *Store) String() string { return "pgstore(" + s.desc + ")" }

// bound gives ctx DefaultTimeout when it has no deadline.
func bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, DefaultTimeout)
}

func (s *Store) usable(ctx context.Context) error {
	if s.closed.Load() {
		return s.errClosed()
	}
	return ctx.Err()
}

func (s *Store) errClosed() error {
	return fmt.Errorf("pgstore: the store %s is closed", s.desc)
}

// retry runs op, and once more when its first failure is one a second
// attempt on a fresh session can cure: a pooled session that died with a
// server restart. Writes are retried only when the failed attempt cannot
// have been carried out; a retried write after a lost reply would at worst
// be refused by the version check, never applied twice.
func retry(ctx context.Context, idempotent bool, op func() error) error {
	err := op()
	if err == nil || ctx.Err() != nil || !retryable(err, idempotent) {
		return err
	}
	return op()
}

func retryable(err error, idempotent bool) bool {
	if errors.Is(err, pgx.ErrNoRows) {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// The server ended the session (shutdown, restart) before or
		// instead of running the statement.
		return pe.Code == "57P01" || pe.Code == "57P02"
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return false // a new session failed: a second try would too
	}
	return idempotent || pgconn.SafeToRetry(err)
}

const selectColumns = `definition, binding, status, reason, refresh_started, version, updated_at, token_sealed`

// row is one connector_connections row as read.
type row struct {
	id, definition, status, reason string
	binding                        []byte // JSON; nil when NULL
	refreshStarted                 *time.Time
	version                        int64
	updatedAt                      time.Time
	sealed                         []byte
}

func (r *row) dest() []any {
	return []any{&r.definition, &r.binding, &r.status, &r.reason, &r.refreshStarted, &r.version, &r.updatedAt, &r.sealed}
}

// Get returns the record for id, or an error wrapping store.ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (store.Record, error) {
	if err := s.usable(ctx); err != nil {
		return store.Record{}, err
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	r := row{id: id}
	err := retry(ctx, true, func() error {
		return s.pool.QueryRow(ctx, `SELECT `+selectColumns+` FROM connector_connections WHERE id = $1`, id).Scan(r.dest()...)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Record{}, fmt.Errorf("pgstore: connection %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Record{}, s.wrap(err, "pgstore: reading connection %q from %s", id, s.desc)
	}
	return s.open(r)
}

// List returns every record ordered by ID (byte order, whatever the
// database's collation). One record that cannot be opened fails the whole
// list, naming that record.
func (s *Store) List(ctx context.Context) ([]store.Record, error) {
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	var rows []row
	err := retry(ctx, true, func() error {
		rows = rows[:0]
		rs, err := s.pool.Query(ctx, `SELECT id, `+selectColumns+` FROM connector_connections ORDER BY id`)
		if err != nil {
			return err
		}
		defer rs.Close()
		for rs.Next() {
			var r row
			if err := rs.Scan(append([]any{&r.id}, r.dest()...)...); err != nil {
				return err
			}
			rows = append(rows, r)
		}
		return rs.Err()
	})
	if err != nil {
		return nil, s.wrap(err, "pgstore: listing connections in %s", s.desc)
	}
	out := make([]store.Record, 0, len(rows))
	for _, r := range rows {
		rec, err := s.open(r)
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}

// putSQL writes the record and its history row in one statement, so that
// both are written or neither; the version check is in the WHERE clause (or
// the insert's ON CONFLICT), so a stale writer changes nothing.
const (
	putUpdate = `WITH w AS (
	UPDATE connector_connections
	   SET definition = $2, status = $3, reason = $4, refresh_started = $5, token_sealed = $6, binding = $9,
	       version = version + 1, updated_at = now()
	 WHERE id = $1 AND version = $7
	RETURNING id, version, status, reason, refresh_started, updated_at
), h AS (
	INSERT INTO connector_history (id, version, status, reason, refreshing, at)
	SELECT id, version, status, reason, refresh_started IS NOT NULL, updated_at FROM w
), pruned AS (
	DELETE FROM connector_history old USING w
	 WHERE old.id = w.id AND old.version <= w.version - $8
)
SELECT version, updated_at FROM w`
	putInsert = `WITH w AS (
	INSERT INTO connector_connections (id, definition, status, reason, refresh_started, token_sealed, binding, version, updated_at)
	VALUES ($1, $2, $3, $4, $5, $6, $7, 1, now())
	ON CONFLICT (id) DO NOTHING
	RETURNING id, version, status, reason, refresh_started, updated_at
), h AS (
	INSERT INTO connector_history (id, version, status, reason, refreshing, at)
	SELECT id, version, status, reason, refresh_started IS NOT NULL, updated_at FROM w
)
SELECT version, updated_at FROM w`
)

// Put writes r durably if r.Version is the stored version (0 for a new
// record), and returns it as stored: Version incremented, UpdatedAt set by
// the database's clock, times in UTC and to the microsecond (PostgreSQL's
// precision). A stale Version gives an error wrapping store.ErrConflict and
// changes nothing.
func (s *Store) Put(ctx context.Context, r store.Record) (store.Record, error) {
	if err := s.usable(ctx); err != nil {
		return store.Record{}, err
	}
	if r.ID == "" {
		return store.Record{}, errors.New("pgstore: cannot store a connection without an id")
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	r.RefreshStarted = r.RefreshStarted.UTC().Truncate(time.Microsecond)
	r.Token = r.Token.UTC()
	sealed, err := s.sealer.SealToken(r.ID, r.Binding, r.Token)
	if err != nil {
		return store.Record{}, err
	}
	binding, err := store.BindingColumn(r.Binding) // NULL for an unbound record
	if err != nil {
		return store.Record{}, fmt.Errorf("pgstore: connection %q: %w", r.ID, err)
	}
	var started any // NULL when no refresh is in flight
	if !r.RefreshStarted.IsZero() {
		started = r.RefreshStarted
	}
	var (
		version   int64
		updatedAt time.Time
	)
	err = retry(ctx, false, func() error {
		if r.Version == 0 {
			return s.pool.QueryRow(ctx, putInsert, r.ID, r.Definition, string(r.Status), r.Reason, started, sealed, binding).Scan(&version, &updatedAt)
		}
		return s.pool.QueryRow(ctx, putUpdate, r.ID, r.Definition, string(r.Status), r.Reason, started, sealed, r.Version, historyKept, binding).Scan(&version, &updatedAt)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Record{}, s.conflict(ctx, r)
	}
	if err != nil {
		return store.Record{}, s.wrap(err, "pgstore: writing connection %q to %s (nothing was written)", r.ID, s.desc)
	}
	r.Version, r.UpdatedAt = version, updatedAt.UTC()
	return r, nil
}

// conflict explains a refused Put with the version the record is at now.
func (s *Store) conflict(ctx context.Context, r store.Record) error {
	var current int64
	err := s.pool.QueryRow(ctx, `SELECT version FROM connector_connections WHERE id = $1`, r.ID).Scan(&current)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("pgstore: connection %q does not exist but the write was based on version %d: %w", r.ID, r.Version, store.ErrConflict)
	case err != nil:
		return fmt.Errorf("pgstore: connection %q changed since version %d was read: %w", r.ID, r.Version, store.ErrConflict)
	}
	return fmt.Errorf("pgstore: connection %q is at version %d but the write was based on version %d: %w", r.ID, current, r.Version, store.ErrConflict)
}

// Delete removes the record for id and its history; a missing record is not
// an error.
func (s *Store) Delete(ctx context.Context, id string) error {
	if err := s.usable(ctx); err != nil {
		return err
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	err := retry(ctx, true, func() error {
		_, err := s.pool.Exec(ctx, `DELETE FROM connector_connections WHERE id = $1`, id)
		return err
	})
	if err != nil {
		return s.wrap(err, "pgstore: deleting connection %q from %s", id, s.desc)
	}
	return nil
}

// Event is one version of a connection as the history keeps it.
type Event = store.Event

// History returns the kept versions of connection id, oldest first; none
// for an unknown connection.
func (s *Store) History(ctx context.Context, id string) ([]Event, error) {
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	var out []Event
	err := retry(ctx, true, func() error {
		out = out[:0]
		rs, err := s.pool.Query(ctx, `SELECT version, status, reason, refreshing, at FROM connector_history WHERE id = $1 ORDER BY version`, id)
		if err != nil {
			return err
		}
		defer rs.Close()
		for rs.Next() {
			var e Event
			var status string
			if err := rs.Scan(&e.Version, &status, &e.Reason, &e.Refreshing, &e.At); err != nil {
				return err
			}
			e.Status, e.At = store.Status(status), e.At.UTC()
			out = append(out, e)
		}
		return rs.Err()
	})
	if err != nil {
		return nil, s.wrap(err, "pgstore: reading the history of connection %q from %s", id, s.desc)
	}
	return out, nil
}

// Close ends the store's database sessions. A lock still held through it is
// released with its session (its holder can no longer write through this
// store anyway), and Lock calls still waiting return. Close is idempotent.
func (s *Store) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed.Swap(true) {
		return nil
	}
	if s.die != nil {
		s.die()
	}
	s.heldMu.Lock()
	held := make([]*heldLock, 0, len(s.held))
	for h := range s.held {
		held = append(held, h)
	}
	s.heldMu.Unlock()
	for _, h := range held {
		h.once.Do(func() { h.drop(true) })
	}
	if s.locks != nil {
		s.locks.Close()
	}
	if s.pool != nil {
		s.pool.Close()
	}
	return nil
}

// open turns a row into a store.Record, unsealing its token.
func (s *Store) open(r row) (store.Record, error) {
	b := store.ParseBindingColumn(r.binding)
	tok, err := s.sealer.OpenStoredToken(r.id, b, r.sealed, "pgstore "+s.desc)
	if err != nil {
		return store.Record{}, err
	}
	rec := store.Record{
		ID:         r.id,
		Definition: r.definition,
		Binding:    b,
		Token:      tok,
		Status:     store.Status(r.status),
		Reason:     r.reason,
		Version:    r.version,
		UpdatedAt:  r.updatedAt.UTC(),
	}
	if r.refreshStarted != nil {
		rec.RefreshStarted = r.refreshStarted.UTC()
	}
	return rec, nil
}
