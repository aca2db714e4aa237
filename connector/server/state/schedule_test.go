package state_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/server/state"
)

// discoverAll runs DiscoverSchedules from after until it has caught up, as
// the scheduler's discovery loop does, and returns the new watermark and
// the rows it added or woke.
func discoverAll(t *testing.T, db *state.DB, after int64) (int64, int) {
	t.Helper()
	total := 0
	for {
		next, n, err := db.DiscoverSchedules(context.Background(), time.Now(), after, 7) // small batches: several per pass
		if err != nil {
			t.Fatal(err)
		}
		total += n
		if next == after {
			return after, total
		}
		if next < after {
			t.Fatalf("the watermark went back from %d to %d", after, next)
		}
		after = next
	}
}

// DiscoverSchedules follows the connections by their change stamp: the
// first pass (from -1) gives every connection a row; later passes find
// only connections created or given a new version since, and a pass with
// nothing changed finds nothing and keeps the watermark.
func TestDiscoverSchedulesFollowsChanges(t *testing.T) {
	backends(t, func(t *testing.T, open func() *state.DB) {
		ctx := context.Background()
		db, other := open(), open() // other writes as another replica would
		cl := setup(t, db)
		var ids []string
		for range 20 {
			c, err := other.CreateConnection(ctx, state.Connection{Tenant: "acme", Client: cl.ID})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, c.ID)
		}
		mark, n := discoverAll(t, db, -1)
		if n != len(ids) {
			t.Fatalf("the first pass added %d rows for %d connections", n, len(ids))
		}
		if again, n := discoverAll(t, db, mark); n != 0 || again != mark {
			t.Fatalf("a pass with nothing changed added or woke %d rows and moved the watermark %d -> %d", n, mark, again)
		}
		// The scheduler parks a row; its connection then changes (on
		// another replica): the next pass wakes it, and only it.
		now := time.Now()
		rows, err := db.ClaimSchedules(ctx, "me", now, time.Minute, 100)
		if err != nil || len(rows) != len(ids) {
			t.Fatalf("claimed %d rows, %v", len(rows), err)
		}
		for _, r := range rows {
			if err := db.FinishSchedule(ctx, "me", r, state.ScheduleOutcome{Due: now.Add(time.Hour), State: state.ScheduleWaiting}); err != nil {
				t.Fatal(err)
			}
		}
		if err := other.SetConnectionStatus(ctx, "acme", ids[3], state.StatusConnected, ""); err != nil {
			t.Fatal(err)
		}
		late, err := other.CreateConnection(ctx, state.Connection{Tenant: "acme", Client: cl.ID})
		if err != nil {
			t.Fatal(err)
		}
		mark2, n := discoverAll(t, db, mark)
		if n != 2 || mark2 <= mark {
			t.Fatalf("after one change and one new connection: %d rows added or woken, watermark %d -> %d", n, mark, mark2)
		}
		for _, id := range []string{ids[3], late.ID} {
			s, err := db.ScheduleOf(ctx, "acme", id)
			if err != nil || s.State != state.ScheduleNew || s.Due.After(time.Now()) {
				t.Fatalf("connection %s: %+v, %v; want new and due", id, s, err)
			}
		}
		if s, _ := db.ScheduleOf(ctx, "acme", ids[4]); s.State != state.ScheduleWaiting {
			t.Fatalf("an unchanged connection's row was touched: %+v", s)
		}
		// A status set to what it is is no change (no new version).
		if err := other.SetConnectionStatus(ctx, "acme", ids[3], state.StatusConnected, ""); err != nil {
			t.Fatal(err)
		}
		if _, n := discoverAll(t, db, mark2); n != 0 {
			t.Fatalf("a no-op status update woke %d rows", n)
		}
		// A deleted connection's row goes with it.
		if err := other.DeleteConnection(ctx, "acme", ids[5]); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ScheduleOf(ctx, "acme", ids[5]); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("the deleted connection's row: %v", err)
		}
	})
}

// Connections created and changed concurrently, through several database
// handles and in transactions of many rows (ImportConnections), while a
// discovery loop advances its watermark: none is skipped. A stamp handed
// out to a transaction that commits after a later stamp was read would be
// skipped for good; the counter's row lock orders stamps by commit.
func TestDiscoverSchedulesSkipsNothingUnderConcurrentWrites(t *testing.T) {
	backends(t, func(t *testing.T, open func() *state.DB) {
		ctx := context.Background()
		reader := open()
		cl := setup(t, reader)
		writers := []*state.DB{open(), open(), open()}
		var mu sync.Mutex
		var ids []string
		keep := func(cs ...state.Connection) {
			mu.Lock()
			defer mu.Unlock()
			for _, c := range cs {
				ids = append(ids, c.ID)
			}
		}
		stop := make(chan struct{})
		discovered := make(chan int64)
		go func() { // the discovery loop, running all along
			mark := int64(-1)
			for {
				select {
				case <-stop:
					discovered <- mark
					return
				default:
				}
				next, _, err := reader.DiscoverSchedules(ctx, time.Now(), mark, 50)
				if err != nil {
					t.Error(err)
				}
				mark = next
			}
		}()
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for w, db := range writers {
			wg.Go(func() {
				for i := range 15 {
					if w == 0 && i%3 == 0 { // a large transaction now and then
						batch := make([]state.Connection, 120)
						for j := range batch {
							batch[j] = state.Connection{Tenant: "acme", Client: cl.ID}
						}
						cs, err := db.ImportConnections(ctx, batch)
						if err != nil {
							errs <- err
							return
						}
						keep(cs...)
						continue
					}
					c, err := db.CreateConnection(ctx, state.Connection{Tenant: "acme", Client: cl.ID})
					if err != nil {
						errs <- err
						return
					}
					keep(c)
					if err := db.SetConnectionStatus(ctx, "acme", c.ID, state.StatusConnected, fmt.Sprint(i)); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(stop)
		mark := <-discovered
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		// What the loop had not reached yet is after its watermark; what
		// it skipped would be before it, and is never found again.
		discoverAll(t, reader, mark)
		missing := 0
		for _, id := range ids {
			if _, err := reader.ScheduleOf(ctx, "acme", id); err != nil {
				missing++
			}
		}
		if missing > 0 {
			t.Fatalf("%d of %d connections written during discovery were never scheduled", missing, len(ids))
		}
	})
}

// The queries an idle scheduler runs over and over use their indexes: the
// discovery reads only the connections stamped after its watermark, the
// claim and the next-due lookup walk the due index. Asserted on the
// database's plan (EXPLAIN), over enough rows, with statistics, that a
// scan of the table would be the planner's choice if the index did not
// serve.
// TestClaimWithBacklogUsesIndexes: with every row due (a backlog, as after
// an outage or while 10,000 tokens expire at once), the claim statement as
// ClaimSchedules runs it picks through the due index and updates through
// the primary key; no step reads the schedule in full. The plan of the
// statement is asserted, not its inner pick alone: the UPDATE around an IN
// (subquery) was a hash join over a sequential scan on PostgreSQL.
func TestClaimWithBacklogUsesIndexes(t *testing.T) {
	backends(t, func(t *testing.T, open func() *state.DB) {
		ctx := context.Background()
		db := open()
		cl := setup(t, db)
		batch := make([]state.Connection, 5000)
		for i := range batch {
			batch[i] = state.Connection{Tenant: "acme", Client: cl.ID}
		}
		if _, err := db.ImportConnections(ctx, batch); err != nil {
			t.Fatal(err)
		}
		discoverAll(t, db, -1)
		past := time.Now().Add(-time.Hour).UnixNano()
		if _, err := db.SQL().ExecContext(ctx, fmt.Sprintf(`UPDATE server_refresh_schedule SET due = %d + length(connection), state = 'scheduled'`, past)); err != nil {
			t.Fatal(err)
		}
		analyze := "ANALYZE"
		if db.Kind() == state.Postgres {
			analyze = "VACUUM ANALYZE"
		}
		if _, err := db.SQL().ExecContext(ctx, analyze); err != nil {
			t.Fatal(err)
		}
		now := time.Now().UnixNano()
		for _, limit := range []int{32, 1000} {
			plan, err := state.Explain(ctx, db, state.ClaimSQL(db), "replica-a", now+1, now, now, limit)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("claim of %d:\n%s", limit, plan)
			if !strings.Contains(plan, "server_refresh_schedule_due") {
				t.Errorf("the claim of %d does not pick through server_refresh_schedule_due:\n%s", limit, plan)
			}
			for _, line := range strings.Split(plan, "\n") {
				f := strings.Fields(line)
				if strings.Contains(line, "Seq Scan on server_refresh_schedule") ||
					(len(f) >= 2 && f[0] == "SCAN" && f[1] == "server_refresh_schedule" && !strings.Contains(line, "INDEX")) {
					t.Errorf("the claim of %d reads the schedule in full: %q", limit, line)
				}
			}
		}
		// And it claims what it says: limit rows, once.
		rows, err := db.ClaimSchedules(ctx, "replica-a", time.Now(), time.Minute, 32)
		if err != nil || len(rows) != 32 {
			t.Fatalf("claimed %d rows (%v); want 32", len(rows), err)
		}
		again, err := db.ClaimSchedules(ctx, "replica-b", time.Now(), time.Minute, 5000)
		if err != nil || len(again) != len(batch)-32 {
			t.Fatalf("the second claim took %d rows (%v); want the %d not leased", len(again), err, len(batch)-32)
		}
	})
}

func TestSchedulerQueriesUseIndexes(t *testing.T) {
	backends(t, func(t *testing.T, open func() *state.DB) {
		ctx := context.Background()
		db := open()
		cl := setup(t, db)
		batch := make([]state.Connection, 3000)
		for i := range batch {
			batch[i] = state.Connection{Tenant: "acme", Client: cl.ID}
		}
		if _, err := db.ImportConnections(ctx, batch); err != nil {
			t.Fatal(err)
		}
		mark, n := discoverAll(t, db, -1)
		if n != len(batch) {
			t.Fatalf("discovered %d of %d", n, len(batch))
		}
		// Every row scheduled in the future, as in an idle server.
		future := time.Now().Add(time.Hour).UnixNano()
		if _, err := db.SQL().ExecContext(ctx, fmt.Sprintf(`UPDATE server_refresh_schedule SET due = %d + length(connection), state = 'scheduled'`, future)); err != nil {
			t.Fatal(err)
		}
		if _, err := db.SQL().ExecContext(ctx, "ANALYZE"); err != nil {
			t.Fatal(err)
		}
		postgres := db.Kind() == state.Postgres
		now := time.Now().UnixNano()
		for _, q := range []struct {
			name, sql string
			args      []any
			index     string
			table     string
		}{
			{"discovery: the next changes", state.DiscoverNextSQL, []any{mark, 5000}, "server_connections_change_seq", "server_connections"},
			{"discovery: the upsert", state.DiscoverUpsertSQL, []any{now, state.ScheduleNew, now, mark, mark + 3, now}, "server_connections_change_seq", "server_connections"},
			{"claim", state.ClaimDueSQL, []any{now, now, 32}, "server_refresh_schedule_due", "server_refresh_schedule"},
			{"next due", state.NextDueSQL, []any{now}, "server_refresh_schedule_due", "server_refresh_schedule"},
		} {
			plan, err := state.Explain(ctx, db, q.sql, q.args...)
			if err != nil {
				t.Fatalf("%s: %v", q.name, err)
			}
			t.Logf("%s:\n%s", q.name, plan)
			if !strings.Contains(plan, q.index) {
				t.Errorf("%s does not use %s:\n%s", q.name, q.index, plan)
			}
			for _, line := range strings.Split(plan, "\n") {
				// PostgreSQL names the table; SQLite the table or its alias
				// (c in the upsert), and a scan through an index says so.
				// (The join's other side, the tenants' OAuth clients, may
				// be scanned: it is read only when something changed.)
				f := strings.Fields(line)
				full := strings.Contains(line, "Seq Scan on "+q.table) ||
					(!postgres && len(f) >= 2 && f[0] == "SCAN" && (f[1] == q.table || f[1] == "c") && !strings.Contains(line, "INDEX"))
				if full || strings.Contains(line, "TEMP B-TREE") { // SQLite sorting what the index should order
					t.Errorf("%s reads %s in full or sorts it: %q", q.name, q.table, line)
				}
			}
		}
	})
}
