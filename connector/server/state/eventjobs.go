package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Job is a claimed delivery: the event to send, and how it has fared.
type Job struct {
	Event    Event
	Attempts int // attempts since the event was appended or replayed
	// Since is when the retry budget started: the event's first attempt
	// since it was appended or replayed (when it became the head of its
	// connection's queue and was first claimed), not when it was appended.
	Since time.Time
	Owner string
	Until time.Time // the lease: after this another worker may claim the job
}

// ErrLeaseLost: the job's lease expired and another worker claimed it; the
// outcome of this attempt is not recorded (the other worker's counts).
var ErrLeaseLost = errors.New("the job's lease was lost to another worker")

// ClaimJobs leases up to limit due jobs to owner for lease, and returns
// them. A job is claimable when it is pending, due, not leased, and the
// oldest pending job of its connection (its stream): so a connection's
// next event is never sent before the previous one is delivered or
// dead-lettered, and one stream is with one worker at a time. On
// PostgreSQL the claim is SELECT … FOR UPDATE SKIP LOCKED, so concurrent
// workers on any number of replicas take disjoint jobs without waiting on
// each other; on SQLite the transaction holds the database's write lock.
func (d *DB) ClaimJobs(ctx context.Context, owner string, limit int, lease time.Duration) ([]Job, error) {
	if limit <= 0 {
		return nil, nil
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("state: claiming jobs: %w", err)
	}
	defer tx.Rollback()
	jobs, err := d.claim(ctx, tx, owner, lease, limit, "")
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("state: claiming jobs: %w", err)
	}
	return jobs, nil
}

// claim leases up to limit claimable jobs in tx; where (with its args)
// narrows them, to one connection's say.
func (d *DB) claim(ctx context.Context, tx *sql.Tx, owner string, lease time.Duration, limit int, where string, args ...any) ([]Job, error) {
	now := d.Now()
	query := `SELECT j.event_id FROM server_event_jobs j
		WHERE j.state = 'pending' AND j.next_run <= ? AND j.lease_until <= ?` + where + `
		AND NOT EXISTS (SELECT 1 FROM server_event_jobs p
			WHERE p.tenant = j.tenant AND p.connection = j.connection AND p.state = 'pending' AND p.seq < j.seq)
		ORDER BY j.next_run, j.seq LIMIT ?`
	if d.kind == Postgres {
		query += ` FOR UPDATE OF j SKIP LOCKED`
	}
	rows, err := tx.QueryContext(ctx, d.q(query), append(append([]any{nanos(now), nanos(now)}, args...), limit)...)
	if err != nil {
		return nil, fmt.Errorf("state: claiming jobs: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("state: claiming jobs: %w", err)
	}
	until := now.Add(lease)
	jobs := make([]Job, 0, len(ids))
	for _, id := range ids {
		// The first claim starts the retry budget (see migration 101).
		if _, err := tx.ExecContext(ctx, d.q(`UPDATE server_event_jobs SET lease_owner = ?, lease_until = ?,
			first_attempt = CASE WHEN first_attempt = 0 THEN ? ELSE first_attempt END WHERE event_id = ?`), owner, nanos(until), nanos(now), id); err != nil {
			return nil, fmt.Errorf("state: claiming jobs: %w", err)
		}
		var j Job
		var since int64
		row := tx.QueryRowContext(ctx, d.q(`SELECT `+eventCols+`, j.attempts, j.first_attempt`+eventFrom+` WHERE e.id = ?`), id)
		ev, err := d.scanEvent(scanFunc(func(dest ...any) error {
			return row.Scan(append(dest, &j.Attempts, &since)...)
		}))
		if err != nil {
			return nil, fmt.Errorf("state: claiming jobs: %w", err)
		}
		j.Event, j.Since, j.Owner, j.Until = ev, fromNanos(since), owner, until
		jobs = append(jobs, j)
	}
	return jobs, nil
}

type scanFunc func(dest ...any) error

func (f scanFunc) Scan(dest ...any) error { return f(dest...) }

// Outcome is the result of one delivery attempt, for FinishJob.
type Outcome struct {
	Delivered  bool
	Dead       bool      // give up: the job becomes a dead letter
	NextRun    time.Time // when neither: the next attempt
	HTTPStatus int       // 0 when no response came
	Error      string    // why it failed; never a secret
}

// FinishJob records the outcome of an attempt at the job owner leased: a
// delivered event's job is deleted, a dead one kept as a dead letter, a
// failed one rescheduled. ErrLeaseLost means another worker holds the job.
func (d *DB) FinishJob(ctx context.Context, owner, eventID string, o Outcome) error {
	_, err := d.FinishAndClaimNext(ctx, owner, eventID, o, 0)
	return err
}

// FinishAndClaimNext is FinishJob followed, in the same transaction, by a
// claim of the connection's next job when it is due (a lease > 0 asks for
// it, and the attempt was delivered or dead-lettered): one transaction per
// event for a connection with a backlog. next is nil when there is none.
func (d *DB) FinishAndClaimNext(ctx context.Context, owner, eventID string, o Outcome, lease time.Duration) (next *Job, err error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("state: recording a delivery: %w", err)
	}
	defer tx.Rollback()
	now := nanos(d.Now())
	var res sql.Result
	switch {
	case o.Delivered:
		res, err = tx.ExecContext(ctx, d.q(`DELETE FROM server_event_jobs WHERE event_id = ? AND lease_owner = ? AND state = 'pending'`), eventID, owner)
	case o.Dead:
		res, err = tx.ExecContext(ctx, d.q(`UPDATE server_event_jobs SET state = 'dead', attempts = attempts + 1, lease_owner = '', lease_until = 0
			WHERE event_id = ? AND lease_owner = ? AND state = 'pending'`), eventID, owner)
	default:
		res, err = tx.ExecContext(ctx, d.q(`UPDATE server_event_jobs SET attempts = attempts + 1, next_run = ?, lease_owner = '', lease_until = 0
			WHERE event_id = ? AND lease_owner = ? AND state = 'pending'`), nanos(o.NextRun), eventID, owner)
	}
	if err != nil {
		return nil, fmt.Errorf("state: recording a delivery: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, ErrLeaseLost
	}
	status, delivered := DeliveryPending, int64(0)
	switch {
	case o.Delivered:
		status, delivered = DeliveryDelivered, now
	case o.Dead:
		status = DeliveryDead
	}
	var tenant, connection string
	if err := tx.QueryRowContext(ctx, d.q(`UPDATE server_events SET status = ?, attempts = attempts + 1, last_status = ?, last_error = ?, delivered = ? WHERE id = ?
		RETURNING tenant, connection`),
		status, o.HTTPStatus, truncate(o.Error, 500), delivered, eventID).Scan(&tenant, &connection); err != nil {
		return nil, fmt.Errorf("state: recording a delivery: %w", err)
	}
	if lease > 0 && (o.Delivered || o.Dead) {
		jobs, err := d.claim(ctx, tx, owner, lease, 1, ` AND j.tenant = ? AND j.connection = ?`, tenant, connection)
		if err != nil {
			return nil, err
		}
		if len(jobs) == 1 {
			next = &jobs[0]
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("state: recording a delivery: %w", err)
	}
	return next, nil
}

// ReleaseJob gives a leased job back without counting an attempt (a worker
// shutting down), due again at next. A job never attempted gets its retry
// budget back whole.
func (d *DB) ReleaseJob(ctx context.Context, owner, eventID string, next time.Time) error {
	_, err := d.exec(ctx, `UPDATE server_event_jobs SET lease_owner = '', lease_until = 0, next_run = ?,
		first_attempt = CASE WHEN attempts = 0 THEN 0 ELSE first_attempt END WHERE event_id = ? AND lease_owner = ? AND state = 'pending'`,
		nanos(next), eventID, owner)
	return err
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// ReplayEvent queues the tenant's dead-lettered event id again, with a
// fresh retry budget. It is ErrNotFound for an event that is not a dead
// letter of the tenant (delivered, pending, another tenant's, none).
func (d *DB) ReplayEvent(ctx context.Context, tenant, id string) error {
	n, err := d.replay(ctx, `tenant = ? AND event_id = ?`, tenant, id)
	if err == nil && n == 0 {
		return fmt.Errorf("dead letter %s: %w", id, ErrNotFound)
	}
	return err
}

// ReplayConnection queues every dead letter of the tenant's connection again
// and says how many.
func (d *DB) ReplayConnection(ctx context.Context, tenant, connection string) (int, error) {
	return d.replay(ctx, `tenant = ? AND connection = ?`, tenant, connection)
}

func (d *DB) replay(ctx context.Context, where string, args ...any) (int, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("state: replaying: %w", err)
	}
	defer tx.Rollback()
	now := nanos(d.Now())
	res, err := tx.ExecContext(ctx, d.q(`UPDATE server_events SET status = 'pending', last_error = '' WHERE id IN
		(SELECT event_id FROM server_event_jobs WHERE state = 'dead' AND `+where+`)`), args...)
	if err != nil {
		return 0, fmt.Errorf("state: replaying: %w", err)
	}
	res, err = tx.ExecContext(ctx, d.q(`UPDATE server_event_jobs SET state = 'pending', attempts = 0, since = ?, first_attempt = 0, next_run = ?, lease_owner = '', lease_until = 0
		WHERE state = 'dead' AND `+where), append([]any{now, now}, args...)...)
	if err != nil {
		return 0, fmt.Errorf("state: replaying: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), tx.Commit()
}

// QueueStats describes the backlog of every tenant (for metrics): pending
// jobs, dead letters, and when the oldest pending one was appended or
// replayed (zero when none).
type QueueStats struct {
	Pending int
	Dead    int
	Oldest  time.Time
}

// EventQueue returns the backlog's QueueStats.
func (d *DB) EventQueue(ctx context.Context) (QueueStats, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	var q QueueStats
	var oldest sql.NullInt64
	err := d.db.QueryRowContext(ctx, `SELECT
		COALESCE(SUM(CASE WHEN state = 'pending' THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN state = 'dead' THEN 1 ELSE 0 END), 0),
		MIN(CASE WHEN state = 'pending' THEN since END)
		FROM server_event_jobs`).Scan(&q.Pending, &q.Dead, &oldest)
	if err != nil {
		return QueueStats{}, fmt.Errorf("state: reading the event queue: %w", err)
	}
	if oldest.Valid {
		q.Oldest = fromNanos(oldest.Int64)
	}
	return q, nil
}
