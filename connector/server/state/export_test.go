package state

import (
	"context"
	"strings"
)

// The scheduler's idle-loop queries, for the plan test.
const (
	DiscoverNextSQL   = discoverNextSQL
	DiscoverUpsertSQL = discoverUpsertSQL
	ClaimDueSQL       = claimDueSQL
	NextDueSQL        = nextDueSQL
)

// ClaimSQL is the claim statement as ClaimSchedules runs it on d.
func ClaimSQL(d *DB) string { return claimSQL(d.kind) }

// Explain returns the database's plan of query (written with ?), one line
// per plan node: EXPLAIN on PostgreSQL, EXPLAIN QUERY PLAN's details on
// SQLite. Nothing is executed.
func Explain(ctx context.Context, d *DB, query string, args ...any) (string, error) {
	prefix := "EXPLAIN QUERY PLAN "
	if d.kind == Postgres {
		prefix = "EXPLAIN "
	}
	rows, err := d.db.QueryContext(ctx, prefix+d.q(query), args...)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return "", err
	}
	var lines []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return "", err
		}
		last := vals[len(vals)-1] // PostgreSQL's QUERY PLAN, SQLite's detail
		switch v := last.(type) {
		case string:
			lines = append(lines, v)
		case []byte:
			lines = append(lines, string(v))
		}
	}
	return strings.Join(lines, "\n"), rows.Err()
}

// The scrape's counting queries, for the plan test.
const (
	CountConnectionsSQL = countConnectionsSQL
	ScheduleCountsSQL   = scheduleCountsSQL
)

// Rebind rewrites a query written with ? for d's database, for tests that
// read a table directly.
func (d *DB) Rebind(query string) string { return d.q(query) }
