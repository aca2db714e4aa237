package state_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/server/state"
)

// countsDB is an SQLite database with n connections, each with its
// refresh schedule row, as a server with n connections has.
func countsDB(b *testing.B, n int) *state.DB {
	ctx := context.Background()
	db, err := state.OpenSQLite(ctx, filepath.Join(b.TempDir(), "state.db"), sealer(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	if _, err := db.EnsureTenant(ctx, "acme", ""); err != nil {
		b.Fatal(err)
	}
	cl, err := db.CreateClient(ctx, state.Client{Tenant: "acme", Definition: "procore", ClientID: "app", Secret: "client-secret-1", RedirectURI: "http://127.0.0.1/oauth/callback"})
	if err != nil {
		b.Fatal(err)
	}
	batch := make([]state.Connection, n)
	for i := range batch {
		batch[i] = state.Connection{Tenant: "acme", Client: cl.ID, Fields: map[string]string{"Company": strings.Repeat("x", 40)}}
	}
	if _, err := db.ImportConnections(ctx, batch); err != nil {
		b.Fatal(err)
	}
	for after := int64(-1); ; {
		next, _, err := db.DiscoverSchedules(ctx, time.Now(), after, 5000)
		if err != nil {
			b.Fatal(err)
		}
		if next == after {
			break
		}
		after = next
	}
	if _, err := db.SQL().ExecContext(ctx, "ANALYZE"); err != nil {
		b.Fatal(err)
	}
	return db
}

// BenchmarkScrapeCounts: what one /metrics scrape asks of the database
// with 100,000 connections (connector_connections and the scheduler's
// gauges), against the same queries made to read every row (NOT INDEXED),
// in the same run.
func BenchmarkScrapeCounts(b *testing.B) {
	db := countsDB(b, 100_000)
	ctx := context.Background()
	b.Run("CountConnections", func(b *testing.B) {
		for b.Loop() {
			if c, err := db.CountConnections(ctx); err != nil || c[state.StatusPending] != 100_000 {
				b.Fatal(c, err)
			}
		}
	})
	b.Run("ScheduleCounts", func(b *testing.B) {
		for b.Loop() {
			if c, _, err := db.ScheduleCounts(ctx, time.Now()); err != nil || len(c) == 0 {
				b.Fatal(c, err)
			}
		}
	})
	for name, q := range map[string]string{
		"CountConnections-table-scan": `SELECT status, count(*) FROM server_connections NOT INDEXED GROUP BY status`,
		"ScheduleCounts-table-scan":   fmt.Sprintf(`SELECT state, count(*), sum(CASE WHEN due <= %d THEN 1 ELSE 0 END) FROM server_refresh_schedule NOT INDEXED GROUP BY state`, time.Now().UnixNano()),
	} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				rows, err := db.SQL().QueryContext(ctx, q)
				if err != nil {
					b.Fatal(err)
				}
				for rows.Next() {
				}
				rows.Close()
			}
		})
	}
}

// TestScrapeCountsUseIndexes: the counts every /metrics scrape asks for
// are answered from an index's entries (SQLite: a covering index;
// PostgreSQL: an index-only scan), not by reading every row. Asserted on
// the plan over enough rows, with statistics and (PostgreSQL) the
// visibility map that autovacuum keeps in production, that a read of the
// table would be the planner's choice if the index did not serve.
func TestScrapeCountsUseIndexes(t *testing.T) {
	backends(t, func(t *testing.T, open func() *state.DB) {
		ctx := context.Background()
		db := open()
		cl := setup(t, db)
		batch := make([]state.Connection, 3000)
		for i := range batch {
			batch[i] = state.Connection{Tenant: "acme", Client: cl.ID, Fields: map[string]string{"Company": strings.Repeat("x", 200)}}
		}
		if _, err := db.ImportConnections(ctx, batch); err != nil {
			t.Fatal(err)
		}
		discoverAll(t, db, -1)
		analyze := "ANALYZE"
		if db.Kind() == state.Postgres {
			analyze = "VACUUM ANALYZE"
		}
		if _, err := db.SQL().ExecContext(ctx, analyze); err != nil {
			t.Fatal(err)
		}
		for _, q := range []struct {
			name, sql, index string
			args             []any
		}{
			{"connections by status", state.CountConnectionsSQL, "server_connections_status", nil},
			{"schedule by state", state.ScheduleCountsSQL, "server_refresh_schedule_state_due", []any{time.Now().UnixNano()}},
		} {
			plan, err := state.Explain(ctx, db, q.sql, q.args...)
			if err != nil {
				t.Fatalf("%s: %v", q.name, err)
			}
			t.Logf("%s:\n%s", q.name, plan)
			want := "USING COVERING INDEX " + q.index
			if db.Kind() == state.Postgres {
				want = "Index Only Scan using " + q.index
			}
			if !strings.Contains(plan, want) {
				t.Errorf("%s is not answered from the index (%q):\n%s", q.name, want, plan)
			}
		}
	})
}
