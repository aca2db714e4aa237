package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// The refresh scheduler's table (connector/server/scheduler): one row per
// connection with when it is next due, how many attempts failed in a row,
// and the lease of the replica working on it. Rows are claimed in batches;
// a claim is a lease, so the rows of a replica that died are claimed again
// once their lease has run out.
var schedulerMigrations = []migration{
	{300, "refresh schedule", []string{
		`CREATE TABLE server_refresh_schedule (
	connection   TEXT PRIMARY KEY REFERENCES server_connections (id) ON DELETE CASCADE,
	tenant       TEXT NOT NULL,
	definition   TEXT NOT NULL,
	due          BIGINT NOT NULL,
	state        TEXT NOT NULL,
	attempts     INTEGER NOT NULL,
	lease_owner  TEXT NOT NULL,
	lease_until  BIGINT NOT NULL,
	conn_version BIGINT NOT NULL,
	last_error   TEXT NOT NULL,
	last_refresh BIGINT NOT NULL,
	updated      BIGINT NOT NULL
)`,
		`CREATE INDEX server_refresh_schedule_due ON server_refresh_schedule (due)`,
	}},
}

// Schedule states: what the scheduler last found.
const (
	ScheduleNew         = "new"          // not looked at yet (or its connection changed)
	ScheduleScheduled   = "scheduled"    // due at Due
	ScheduleRetrying    = "retrying"     // the last Attempts refreshes failed transiently
	ScheduleOff         = "off"          // the definition asks for no keep-alive; looked at again now and then
	ScheduleWaiting     = "waiting"      // no token yet (never authorized); looked at again when the connection changes
	ScheduleNeedsReauth = "needs_reauth" // only authorizing again helps; looked at again when the connection changes
	ScheduleReporting   = "reporting"    // needs re-authorization, not yet recorded (with its event): tried again soon
)

// Schedule is a connection's row in the refresh schedule.
type Schedule struct {
	Connection  string
	Tenant      string
	Definition  string // its OAuth client's
	Due         time.Time
	State       string
	Attempts    int
	LastError   string
	LastRefresh time.Time
	LeaseOwner  string // the replica working on it, until LeaseUntil
	LeaseUntil  time.Time
}

// maxScheduleError caps the stored error text.
const maxScheduleError = 500

// DiscoverSchedules gives every connection without a row one, due at now,
// and makes a row due at now again when its connection changed since the
// scheduler last looked (re-authorized, its status moved): a parked
// connection is then looked at again. Rows of deleted connections go (the
// foreign key does it too; this covers a database that does not enforce
// it). It returns how many rows it added or woke; at most limit are added
// per call.
func (d *DB) DiscoverSchedules(ctx context.Context, now time.Time, limit int) (int, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	n := nanos(now)
	res, err := d.db.ExecContext(ctx, d.q(`INSERT INTO server_refresh_schedule
		(connection, tenant, definition, due, state, attempts, lease_owner, lease_until, conn_version, last_error, last_refresh, updated)
		SELECT c.id, c.tenant, cl.definition, ?, ?, 0, '', 0, c.version, '', 0, ?
		FROM server_connections c JOIN server_oauth_clients cl ON cl.id = c.client
		WHERE NOT EXISTS (SELECT 1 FROM server_refresh_schedule s WHERE s.connection = c.id)
		ORDER BY c.id LIMIT ?
		ON CONFLICT (connection) DO NOTHING`), n, ScheduleNew, n, limit)
	if err != nil {
		return 0, fmt.Errorf("state: adding connections to the refresh schedule: %w", err)
	}
	added, _ := res.RowsAffected()
	res, err = d.db.ExecContext(ctx, d.q(`UPDATE server_refresh_schedule SET due = ?, state = ?, attempts = 0, updated = ?,
		conn_version = (SELECT c.version FROM server_connections c WHERE c.id = server_refresh_schedule.connection)
		WHERE lease_until <= ? AND conn_version <> (SELECT c.version FROM server_connections c WHERE c.id = server_refresh_schedule.connection)`),
		n, ScheduleNew, n, n)
	if err != nil {
		return 0, fmt.Errorf("state: waking changed connections in the refresh schedule: %w", err)
	}
	woken, _ := res.RowsAffected()
	if _, err := d.db.ExecContext(ctx, `DELETE FROM server_refresh_schedule
		WHERE NOT EXISTS (SELECT 1 FROM server_connections c WHERE c.id = server_refresh_schedule.connection)`); err != nil {
		return 0, fmt.Errorf("state: removing deleted connections from the refresh schedule: %w", err)
	}
	return int(added + woken), nil
}

// ClaimSchedules leases up to limit rows due at now to owner until
// now+lease, earliest first, and returns them. On PostgreSQL the rows are
// picked FOR UPDATE SKIP LOCKED, so replicas claiming at once get disjoint
// batches without waiting on each other; SQLite serialises writers anyway.
// A row whose lease ran out (its replica died) is due again.
func (d *DB) ClaimSchedules(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]Schedule, error) {
	if owner == "" || lease <= 0 || limit <= 0 {
		return nil, errors.New("state: ClaimSchedules needs an owner, a lease and a limit")
	}
	lock := ""
	if d.kind == Postgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	n := nanos(now)
	rows, err := d.db.QueryContext(ctx, d.q(`UPDATE server_refresh_schedule SET lease_owner = ?, lease_until = ?
		WHERE connection IN (SELECT connection FROM server_refresh_schedule
			WHERE due <= ? AND lease_until <= ? ORDER BY due LIMIT ?`+lock+`)
		RETURNING connection, tenant, definition, due, state, attempts, last_error, last_refresh`),
		owner, nanos(now.Add(lease)), n, n, limit)
	if err != nil {
		return nil, fmt.Errorf("state: claiming due refreshes: %w", err)
	}
	defer rows.Close()
	var out []Schedule
	for rows.Next() {
		var s Schedule
		var due, last int64
		if err := rows.Scan(&s.Connection, &s.Tenant, &s.Definition, &due, &s.State, &s.Attempts, &s.LastError, &last); err != nil {
			return nil, err
		}
		s.Due, s.LastRefresh = fromNanos(due), fromNanos(last)
		out = append(out, s)
	}
	return out, rows.Err()
}

// ScheduleOutcome is what became of a claimed row.
type ScheduleOutcome struct {
	Due       time.Time
	State     string
	Attempts  int
	LastError string
	Refreshed time.Time // when the token was refreshed; zero keeps the last
}

// ErrScheduleLeaseLost: the row's lease ran out and another replica claimed it (or
// the connection was deleted); the outcome was not recorded.
var ErrScheduleLeaseLost = errors.New("the schedule row's lease was lost")

// FinishSchedule records the outcome of owner's claim on the connection's
// row and releases the lease, recording the connection's version as seen
// now (so that DiscoverSchedules wakes the row only for a later change).
func (d *DB) FinishSchedule(ctx context.Context, owner, connection string, o ScheduleOutcome) error {
	msg := o.LastError
	if len(msg) > maxScheduleError {
		msg = msg[:maxScheduleError] + "…"
	}
	var refreshed int64 // zero keeps the column
	if !o.Refreshed.IsZero() {
		refreshed = nanos(o.Refreshed)
	}
	res, err := d.exec(ctx, `UPDATE server_refresh_schedule SET due = ?, state = ?, attempts = ?, last_error = ?,
		last_refresh = CASE WHEN ? > last_refresh THEN ? ELSE last_refresh END, lease_owner = '', lease_until = 0, updated = ?,
		conn_version = COALESCE((SELECT c.version FROM server_connections c WHERE c.id = ?), conn_version)
		WHERE connection = ? AND lease_owner = ?`,
		nanos(o.Due), o.State, o.Attempts, msg, refreshed, refreshed, nanos(d.Now()), connection, connection, owner)
	if err != nil {
		return fmt.Errorf("state: recording the refresh of %s: %w", connection, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("connection %s: %w", connection, ErrScheduleLeaseLost)
	}
	return nil
}

// DropSchedule removes the connection's row (its connection is gone).
func (d *DB) DropSchedule(ctx context.Context, connection string) error {
	_, err := d.exec(ctx, `DELETE FROM server_refresh_schedule WHERE connection = ?`, connection)
	return err
}

// NextScheduleDue is the earliest due time of a row not leased at now;
// ok is false when there is none.
func (d *DB) NextScheduleDue(ctx context.Context, now time.Time) (due time.Time, ok bool, err error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	var n *int64
	if err := d.db.QueryRowContext(ctx, d.q(`SELECT min(due) FROM server_refresh_schedule WHERE lease_until <= ?`), nanos(now)).Scan(&n); err != nil {
		return time.Time{}, false, fmt.Errorf("state: reading the refresh schedule: %w", err)
	}
	if n == nil {
		return time.Time{}, false, nil
	}
	return fromNanos(*n), true, nil
}

// ScheduleCounts counts the rows by state, and those due at now (the
// backlog), for metrics.
func (d *DB) ScheduleCounts(ctx context.Context, now time.Time) (byState map[string]int, due int, err error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	rows, err := d.db.QueryContext(ctx, d.q(`SELECT state, count(*), sum(CASE WHEN due <= ? THEN 1 ELSE 0 END) FROM server_refresh_schedule GROUP BY state`), nanos(now))
	if err != nil {
		return nil, 0, fmt.Errorf("state: counting the refresh schedule: %w", err)
	}
	defer rows.Close()
	byState = map[string]int{}
	for rows.Next() {
		var s string
		var n, dn int
		if err := rows.Scan(&s, &n, &dn); err != nil {
			return nil, 0, err
		}
		byState[s], due = n, due+dn
	}
	return byState, due, rows.Err()
}

// ScheduleOf returns the tenant's connection's row.
func (d *DB) ScheduleOf(ctx context.Context, tenant, connection string) (Schedule, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	var s Schedule
	var due, last, until int64
	err := d.db.QueryRowContext(ctx, d.q(`SELECT connection, tenant, definition, due, state, attempts, last_error, last_refresh, lease_owner, lease_until
		FROM server_refresh_schedule WHERE tenant = ? AND connection = ?`), tenant, connection).
		Scan(&s.Connection, &s.Tenant, &s.Definition, &due, &s.State, &s.Attempts, &s.LastError, &last, &s.LeaseOwner, &until)
	if errors.Is(err, sql.ErrNoRows) {
		return Schedule{}, fmt.Errorf("the refresh schedule of connection %s: %w", connection, ErrNotFound)
	}
	if err != nil {
		return Schedule{}, fmt.Errorf("state: reading the refresh schedule: %w", err)
	}
	s.Due, s.LastRefresh, s.LeaseUntil = fromNanos(due), fromNanos(last), fromNanos(until)
	return s, nil
}
