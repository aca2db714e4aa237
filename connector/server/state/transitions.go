package state

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
)

// RefreshOutcome is how a refresh of a connection went, for RecordRefresh.
type RefreshOutcome int

const (
	// RefreshOK: the refresh succeeded.
	RefreshOK RefreshOutcome = iota
	// RefreshFailed: it failed in a way that may pass (the provider was
	// down, a timeout); the connection is failing until a refresh succeeds.
	RefreshFailed
	// RefreshNeedsReauth: only a person running the authorization again can
	// fix the connection.
	RefreshNeedsReauth
)

// StatusFailing is the previous_status of a connection.refreshed event
// whose refreshes had been failing transiently.
const StatusFailing = "failing"

// transitionData is the payload of a connection event.
type transitionData struct {
	Status         string `json:"status"`
	Reason         string `json:"reason,omitempty"`
	PreviousStatus string `json:"previous_status,omitempty"`
	PreviousReason string `json:"previous_reason,omitempty"`
}

// RecordRefresh notes how a refresh of the tenant's connection went and, in
// the same transaction, appends the event a transition calls for (emitted
// true, and the event):
//
//   - RefreshOK after failing (transiently, or needing re-authorization):
//     status connected, connection.refreshed;
//   - RefreshNeedsReauth when the connection did not need it:
//     status needs_reauthorization with reason, connection.needs_reauth;
//   - RefreshFailed: the connection is failing; no event.
//
// The connection's row is locked for the transaction, so however many
// requests and replicas see the same change, one event is appended.
func (d *DB) RecordRefresh(ctx context.Context, tenant, connection string, outcome RefreshOutcome, reason string) (Event, bool, error) {
	return d.transition(ctx, tenant, connection, func(cur current) (string, string, *Event) {
		switch outcome {
		case RefreshOK:
			switch {
			case cur.status == StatusNeedsReauth:
				return StatusConnected, "", &Event{Type: TypeRefreshed, Data: marshal(transitionData{Status: StatusConnected, PreviousStatus: cur.status, PreviousReason: cur.reason})}
			case cur.failing:
				return StatusConnected, "", &Event{Type: TypeRefreshed, Data: marshal(transitionData{Status: StatusConnected, PreviousStatus: StatusFailing, PreviousReason: cur.failReason})}
			}
			return cur.status, cur.reason, nil
		case RefreshNeedsReauth:
			if cur.status == StatusNeedsReauth {
				return cur.status, cur.reason, nil // once per transition, not per request
			}
			return StatusNeedsReauth, reason, &Event{Type: TypeNeedsReauth, Data: marshal(transitionData{Status: StatusNeedsReauth, Reason: reason, PreviousStatus: cur.status})}
		}
		return cur.status, cur.reason, nil
	}, outcome == RefreshFailed, reason)
}

// RecordConnected notes a completed authorization of the tenant's
// connection (status connected) and appends connection.connected in the
// same transaction.
func (d *DB) RecordConnected(ctx context.Context, tenant, connection string) (Event, error) {
	ev, _, err := d.transition(ctx, tenant, connection, func(cur current) (string, string, *Event) {
		return StatusConnected, "", &Event{Type: TypeConnected, Data: marshal(transitionData{Status: StatusConnected, PreviousStatus: cur.status})}
	}, false, "")
	return ev, err
}

type current struct {
	status, reason string
	failing        bool
	failReason     string
}

func marshal(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

// transition reads the connection's status under a row lock, applies next,
// and records the failure marker (failed) or clears it.
func (d *DB) transition(ctx context.Context, tenant, connection string, next func(current) (string, string, *Event), failed bool, failReason string) (Event, bool, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return Event{}, false, fmt.Errorf("state: updating connection %s: %w", connection, err)
	}
	defer tx.Rollback()
	lock := ""
	if d.kind == Postgres {
		lock = " FOR UPDATE"
	}
	var cur current
	err = tx.QueryRowContext(ctx, d.q(`SELECT status, reason FROM server_connections WHERE tenant = ? AND id = ?`+lock), tenant, connection).Scan(&cur.status, &cur.reason)
	if errors.Is(err, sql.ErrNoRows) {
		return Event{}, false, fmt.Errorf("connection %s: %w", connection, ErrNotFound)
	}
	if err != nil {
		return Event{}, false, fmt.Errorf("state: reading connection %s: %w", connection, err)
	}
	err = tx.QueryRowContext(ctx, d.q(`SELECT reason FROM server_refresh_failures WHERE tenant = ? AND connection = ?`), tenant, connection).Scan(&cur.failReason)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Event{}, false, fmt.Errorf("state: reading connection %s: %w", connection, err)
	}
	cur.failing = err == nil
	status, reason, ev := next(cur)
	if status != cur.status || reason != cur.reason {
		if _, err := tx.ExecContext(ctx, d.q(`UPDATE server_connections SET status = ?, reason = ?, updated = ?, version = version + 1 WHERE tenant = ? AND id = ?`),
			status, reason, nanos(d.Now()), tenant, connection); err != nil {
			return Event{}, false, fmt.Errorf("state: updating connection %s: %w", connection, err)
		}
	}
	if failed {
		if _, err := tx.ExecContext(ctx, d.q(`INSERT INTO server_refresh_failures (tenant, connection, since, reason) VALUES (?, ?, ?, ?)
			ON CONFLICT (tenant, connection) DO UPDATE SET reason = excluded.reason`), tenant, connection, nanos(d.Now()), truncate(failReason, 500)); err != nil {
			return Event{}, false, fmt.Errorf("state: updating connection %s: %w", connection, err)
		}
	} else if cur.failing {
		if _, err := tx.ExecContext(ctx, d.q(`DELETE FROM server_refresh_failures WHERE tenant = ? AND connection = ?`), tenant, connection); err != nil {
			return Event{}, false, fmt.Errorf("state: updating connection %s: %w", connection, err)
		}
	}
	var out Event
	if ev != nil {
		ev.Tenant, ev.Connection = tenant, connection
		if _, err := d.insertEvent(ctx, tx, ev); err != nil {
			return Event{}, false, err
		}
		out = *ev
	}
	if err := tx.Commit(); err != nil {
		return Event{}, false, fmt.Errorf("state: updating connection %s: %w", connection, err)
	}
	return out, ev != nil, nil
}

// Recovering says whether a successful refresh of connection id now would
// be a recovery, for which RecordRefresh emits connection.refreshed: its
// refreshes have been failing, or it is marked as needing
// re-authorization. It also returns the connection's tenant. A refresh
// that was no recovery (nearly all) then costs this one read by key, not
// RecordRefresh's locking transaction. A missing connection is no
// recovery.
func (d *DB) Recovering(ctx context.Context, id string) (tenant string, recovering bool, err error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	var status string
	var failing int
	err = d.db.QueryRowContext(ctx, d.q(`SELECT c.tenant, c.status,
		(SELECT COUNT(*) FROM server_refresh_failures f WHERE f.tenant = c.tenant AND f.connection = c.id)
		FROM server_connections c WHERE c.id = ?`), id).Scan(&tenant, &status, &failing)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("state: reading connection %s: %w", id, err)
	}
	return tenant, failing > 0 || status == StatusNeedsReauth, nil
}
