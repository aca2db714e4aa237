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
	{301, "connections' change sequence, for the scheduler's discovery", changeSeqSteps},
	// claim numbers each lease of a row, so that a replica finishing a
	// claim that was taken from it (its lease ran out and the row was
	// claimed again, by another replica or by itself) records nothing.
	{302, "a claim token on refresh schedule rows", []string{
		`ALTER TABLE server_refresh_schedule ADD COLUMN claim BIGINT NOT NULL DEFAULT 0`,
	}},
	// The scheduler's gauges count rows by state, and the due ones, at
	// every scrape: through this index from its entries alone (see
	// ScheduleCounts).
	{303, "the refresh schedule by state and due time, for metrics", []string{
		`CREATE INDEX server_refresh_schedule_state_due ON server_refresh_schedule (state, due)`,
	}},
}

// A connection's change_seq is stamped by triggers from one counter
// (server_schedule_seq) whenever the connection is created or gets a new
// version (re-authorized, its status moved), by whichever writer. The
// scheduler remembers the highest it has seen and asks only for later ones
// through an index: an idle pass costs one index probe, not a look at
// every connection.
//
// The counter is one row, so its UPDATE holds a row lock until the writing
// transaction ends: stamps are handed out in commit order (a writer waits
// for the previous one to commit before it reads the counter). So once a
// reader sees stamp n, every stamp below n is committed and visible too,
// and a watermark never skips a change. Connection writes already
// serialise on server_generation the same way; every transaction takes
// this lock before that one (BEFORE vs AFTER triggers), so no deadlock.
// Rows from before this step have 0 and are found by the first pass.
var changeSeqSteps = []string{
	`CREATE TABLE server_schedule_seq (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	n  BIGINT NOT NULL
)`,
	`INSERT INTO server_schedule_seq (id, n) VALUES (1, 0)`,
	`ALTER TABLE server_connections ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0`,
	`CREATE INDEX server_connections_change_seq ON server_connections (change_seq)`,

	"-- sqlite\n" + `CREATE TRIGGER server_connections_seq_created AFTER INSERT ON server_connections
BEGIN
	UPDATE server_schedule_seq SET n = n + 1 WHERE id = 1;
	UPDATE server_connections SET change_seq = (SELECT n FROM server_schedule_seq WHERE id = 1) WHERE id = NEW.id;
END`,
	"-- sqlite\n" + `CREATE TRIGGER server_connections_seq_changed AFTER UPDATE OF version ON server_connections WHEN OLD.version <> NEW.version
BEGIN
	UPDATE server_schedule_seq SET n = n + 1 WHERE id = 1;
	UPDATE server_connections SET change_seq = (SELECT n FROM server_schedule_seq WHERE id = 1) WHERE id = NEW.id;
END`,

	"-- postgres\n" + `CREATE FUNCTION server_stamp_change_seq() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	UPDATE server_schedule_seq SET n = n + 1 WHERE id = 1 RETURNING n INTO NEW.change_seq;
	RETURN NEW;
END $$`,
	"-- postgres\n" + `CREATE TRIGGER server_connections_seq_created BEFORE INSERT ON server_connections
FOR EACH ROW EXECUTE FUNCTION server_stamp_change_seq()`,
	"-- postgres\n" + `CREATE TRIGGER server_connections_seq_changed BEFORE UPDATE OF version ON server_connections
FOR EACH ROW WHEN (OLD.version IS DISTINCT FROM NEW.version) EXECUTE FUNCTION server_stamp_change_seq()`,
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
	// Claim identifies the lease ClaimSchedules took; FinishSchedule
	// records an outcome only for the row's current claim.
	Claim int64
}

// maxScheduleError caps the stored error text.
const maxScheduleError = 500

// The discovery's queries (exported to the plan test): the highest stamp
// of the next limit changes after a watermark, then one upsert of the
// connections stamped in (after, hi]. Both read server_connections
// through server_connections_change_seq.
const (
	discoverNextSQL = `SELECT max(change_seq) FROM (SELECT change_seq FROM server_connections
		WHERE change_seq > ? ORDER BY change_seq LIMIT ?) AS next_changes`
	discoverUpsertSQL = `INSERT INTO server_refresh_schedule
		(connection, tenant, definition, due, state, attempts, lease_owner, lease_until, conn_version, last_error, last_refresh, updated)
		SELECT c.id, c.tenant, cl.definition, ?, ?, 0, '', 0, c.version, '', 0, ?
		FROM server_connections c JOIN server_oauth_clients cl ON cl.id = c.client
		WHERE c.change_seq > ? AND c.change_seq <= ?
		ON CONFLICT (connection) DO UPDATE SET due = excluded.due, state = excluded.state, attempts = 0,
			updated = excluded.updated, conn_version = excluded.conn_version
		WHERE server_refresh_schedule.conn_version <> excluded.conn_version AND server_refresh_schedule.lease_until <= ?`
)

// DiscoverSchedules brings the schedule up to date with the connections
// created or changed (re-authorized, their status moved) after the
// watermark after, at most about limit of them: a new connection gets a
// row due at now, and a row whose connection has a new version is made due
// at now again, so a parked connection is looked at again. A row leased at
// the time is left alone: FinishSchedule records the version it finds.
// It returns the watermark to pass next time (after itself when nothing
// changed) and how many rows it added or woke. Pass -1 the first time:
// every connection is looked at once. Rows of deleted connections go with
// them (ON DELETE CASCADE; the scheduler drops any it meets).
func (d *DB) DiscoverSchedules(ctx context.Context, now time.Time, after int64, limit int) (next int64, n int, err error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	var hi *int64
	if err := d.db.QueryRowContext(ctx, d.q(discoverNextSQL), after, limit).Scan(&hi); err != nil {
		return after, 0, fmt.Errorf("state: looking for changed connections to schedule: %w", err)
	}
	if hi == nil {
		return after, 0, nil
	}
	t := nanos(now)
	res, err := d.db.ExecContext(ctx, d.q(discoverUpsertSQL), t, ScheduleNew, t, after, *hi, t)
	if err != nil {
		return after, 0, fmt.Errorf("state: adding changed connections to the refresh schedule: %w", err)
	}
	changed, _ := res.RowsAffected()
	return *hi, int(changed), nil
}

// claimDueSQL picks the rows a claim leases, through the due index.
const claimDueSQL = `SELECT connection FROM server_refresh_schedule WHERE due <= ? AND lease_until <= ? ORDER BY due LIMIT ?`

// claimSQL leases the rows claimDueSQL picks. On PostgreSQL the picked
// rows are locked (FOR UPDATE SKIP LOCKED) and handed to the UPDATE as an
// array: written as IN (subquery), the planner joins a backlog's batch to
// the table with a hash semi join over a sequential scan of every row, at
// every claim (seen as ~470 rows read per refresh in
// TestAcceptanceTwoReplicas); = ANY(ARRAY(...)) evaluates the pick once and
// updates through the primary key. SQLite looks an IN list up through the
// primary key already.
func claimSQL(kind Kind) string {
	picked := `connection IN (` + claimDueSQL + `)`
	if kind == Postgres {
		picked = `connection = ANY(ARRAY(` + claimDueSQL + ` FOR UPDATE SKIP LOCKED))`
	}
	return `UPDATE server_refresh_schedule SET lease_owner = ?, lease_until = ?, claim = claim + 1
		WHERE ` + picked + `
		RETURNING connection, tenant, definition, due, state, attempts, last_error, last_refresh, claim`
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
	ctx, cancel := bound(ctx)
	defer cancel()
	n := nanos(now)
	rows, err := d.db.QueryContext(ctx, d.q(claimSQL(d.kind)), owner, nanos(now.Add(lease)), n, n, limit)
	if err != nil {
		return nil, fmt.Errorf("state: claiming due refreshes: %w", err)
	}
	defer rows.Close()
	var out []Schedule
	for rows.Next() {
		var s Schedule
		var due, last int64
		if err := rows.Scan(&s.Connection, &s.Tenant, &s.Definition, &due, &s.State, &s.Attempts, &s.LastError, &last, &s.Claim); err != nil {
			return nil, err
		}
		s.Due, s.LastRefresh = fromNanos(due), fromNanos(last)
		s.LeaseOwner, s.LeaseUntil = owner, now.Add(lease)
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

// FinishSchedule records the outcome of owner's claim on the row (as
// ClaimSchedules returned it) and releases the lease. The outcome is
// recorded only for the row's current claim: a claim whose lease ran out
// and was taken again records nothing (ErrScheduleLeaseLost). And it is
// recorded only when the connection kept the version the row was claimed
// at: a connection re-authorized or otherwise changed meanwhile (which
// DiscoverSchedules left alone, the row being leased) gets its row made
// due now as new instead, as discovery would have done, so that the
// finished claim never overwrites the newer state with an outcome about
// the old one. The statement reads the version and writes in one step,
// so a change committed after it is discovered as usual.
func (d *DB) FinishSchedule(ctx context.Context, owner string, row Schedule, o ScheduleOutcome) error {
	msg := o.LastError
	if len(msg) > maxScheduleError {
		msg = msg[:maxScheduleError] + "…"
	}
	var refreshed int64 // zero keeps the column
	if !o.Refreshed.IsZero() {
		refreshed = nanos(o.Refreshed)
	}
	now := nanos(d.Now())
	const changed = `COALESCE((SELECT c.version FROM server_connections c WHERE c.id = server_refresh_schedule.connection), conn_version) <> conn_version`
	res, err := d.exec(ctx, `UPDATE server_refresh_schedule SET
		due = CASE WHEN `+changed+` THEN CAST(? AS BIGINT) ELSE CAST(? AS BIGINT) END,
		state = CASE WHEN `+changed+` THEN ? ELSE ? END,
		attempts = CASE WHEN `+changed+` THEN 0 ELSE CAST(? AS INTEGER) END,
		last_error = CASE WHEN `+changed+` THEN '' ELSE ? END,
		last_refresh = CASE WHEN ? > last_refresh THEN ? ELSE last_refresh END, lease_owner = '', lease_until = 0, updated = ?,
		conn_version = COALESCE((SELECT c.version FROM server_connections c WHERE c.id = server_refresh_schedule.connection), conn_version)
		WHERE connection = ? AND lease_owner = ? AND claim = ?`,
		now, nanos(o.Due), ScheduleNew, o.State, o.Attempts, msg, refreshed, refreshed, now, row.Connection, owner, row.Claim)
	if err != nil {
		return fmt.Errorf("state: recording the refresh of %s: %w", row.Connection, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("connection %s: %w", row.Connection, ErrScheduleLeaseLost)
	}
	return nil
}

// DropSchedule removes the connection's row (its connection is gone).
func (d *DB) DropSchedule(ctx context.Context, connection string) error {
	_, err := d.exec(ctx, `DELETE FROM server_refresh_schedule WHERE connection = ?`, connection)
	return err
}

// nextDueSQL walks the due index from its start to the first row not
// leased (min(due) with that WHERE clause is a full scan on SQLite).
const nextDueSQL = `SELECT due FROM server_refresh_schedule WHERE lease_until <= ? ORDER BY due LIMIT 1`

// NextScheduleDue is the earliest due time of a row not leased at now;
// ok is false when there is none.
func (d *DB) NextScheduleDue(ctx context.Context, now time.Time) (due time.Time, ok bool, err error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	var n int64
	err = d.db.QueryRowContext(ctx, d.q(nextDueSQL), nanos(now)).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("state: reading the refresh schedule: %w", err)
	}
	return fromNanos(n), true, nil
}

// scheduleCountsSQL is answered from the server_refresh_schedule_state_due
// index alone (migration 302): it runs at every scrape of every replica.
const scheduleCountsSQL = `SELECT state, count(*), sum(CASE WHEN due <= ? THEN 1 ELSE 0 END) FROM server_refresh_schedule GROUP BY state`

// ScheduleCounts counts the rows by state, and those due at now (the
// backlog), for metrics.
func (d *DB) ScheduleCounts(ctx context.Context, now time.Time) (byState map[string]int, due int, err error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	rows, err := d.db.QueryContext(ctx, d.q(scheduleCountsSQL), nanos(now))
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
