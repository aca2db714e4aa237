package state

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Retention of events. A delivered event, and a dead letter nobody
// replayed, is kept for a while (the admin page shows a connection's
// history; a dead letter can be replayed) and then purged. The purge also
// ends the event's de-duplication: a webhook delivery's key lives in its
// event row, so the retention must outlast the providers' redeliveries.

// MinEventRetention is the shortest retention allowed: Stripe redelivers an
// event for up to three days, and a redelivery after its first delivery was
// purged would be forwarded again as a new event.
const MinEventRetention = 72 * time.Hour

// DefaultEventRetention is the retention when none is configured.
const DefaultEventRetention = 30 * 24 * time.Hour

// PurgeBatch is how many events one purge transaction deletes at most: small
// enough that the locks it takes (and SQLite's write lock) are held briefly,
// large enough that a big backlog clears in a reasonable number of rounds.
const PurgeBatch = 500

var retentionMigrations = []migration{
	{102, "purging old events: an index by age, and leases for jobs that one replica runs", []string{
		// The purge looks for old events of every tenant; the other indexes
		// all lead with the tenant.
		`CREATE INDEX server_events_created ON server_events (created)`,
		// A named lease: the replica whose owner holds an unexpired row
		// runs the job it names, the others skip it.
		`CREATE TABLE server_leases (
	name  TEXT PRIMARY KEY,
	owner TEXT NOT NULL,
	until BIGINT NOT NULL
)`,
	}},
}

// ClaimLease makes owner the holder of the lease name until now+lease when the
// lease is free, expired or already owner's, and says whether it is owner's.
// Replicas use it so that periodic housekeeping runs on one of them at a
// time (it would be correct on several, but they would contend for the
// same rows).
func (d *DB) ClaimLease(ctx context.Context, name, owner string, lease time.Duration) (bool, error) {
	if name == "" || owner == "" || lease <= 0 {
		return false, errors.New("state: a lease needs a name, an owner and a duration")
	}
	now := d.Now()
	res, err := d.exec(ctx, `INSERT INTO server_leases (name, owner, until) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until
		WHERE server_leases.until <= ? OR server_leases.owner = ?`, name, owner, nanos(now.Add(lease)), nanos(now), owner)
	if err != nil {
		return false, fmt.Errorf("state: claiming the lease %s: %w", name, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// PurgeEvents deletes up to limit events appended before before that are
// done with: delivered, or dead letters (with their jobs). Pending events,
// queued or being retried, are never purged, however old. It returns how
// many it deleted; call it again while that equals limit.
//
// The candidates are read first and deleted by id, each delete re-checking
// the event's state, so that a dead letter replayed meanwhile stays.
func (d *DB) PurgeEvents(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit <= 0 || limit > PurgeBatch {
		limit = PurgeBatch
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	rows, err := d.db.QueryContext(ctx, d.q(`SELECT id FROM server_events WHERE created < ? AND status IN ('delivered', 'dead') ORDER BY created LIMIT ?`), nanos(before), limit)
	if err != nil {
		return 0, fmt.Errorf("state: purging events: %w", err)
	}
	var ids []any
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, fmt.Errorf("state: purging events: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("state: purging events: %w", err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	in := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(ids)), ", ") + ")"
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("state: purging events: %w", err)
	}
	defer tx.Rollback()
	defer d.wrote()
	// Dead letters' jobs first (the job references its event). A replay
	// makes the job pending in the same transaction as its event, so a
	// replayed event keeps both.
	if _, err := tx.ExecContext(ctx, d.q(`DELETE FROM server_event_jobs WHERE state = 'dead' AND event_id IN `+in), ids...); err != nil {
		return 0, fmt.Errorf("state: purging events: %w", err)
	}
	res, err := tx.ExecContext(ctx, d.q(`DELETE FROM server_events WHERE status IN ('delivered', 'dead') AND id IN `+in+`
		AND NOT EXISTS (SELECT 1 FROM server_event_jobs j WHERE j.event_id = server_events.id)`), ids...)
	if err != nil {
		return 0, fmt.Errorf("state: purging events: %w", err)
	}
	n, _ := res.RowsAffected()
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("state: purging events: %w", err)
	}
	return int(n), nil
}
