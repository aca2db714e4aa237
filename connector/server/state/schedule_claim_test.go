package state_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/server/state"
)

// TestFinishScheduleAfterAChange drives, step by step, a replica's claim
// on a row during which the connection changes (it is re-authorized on
// another replica: a new version), which discovery then leaves alone
// because the row is leased. Finishing the claim must not overwrite that
// change with its outcome about the old connection: the row is new and due
// at once. A claim whose lease ran out and was claimed again (here by the
// same owner) records nothing; the current claim does. A row whose
// connection did not change takes the outcome.
func TestFinishScheduleAfterAChange(t *testing.T) {
	backends(t, func(t *testing.T, open func() *state.DB) {
		ctx := context.Background()
		db, other := open(), open()
		cl := setup(t, db)
		var ids []string
		for range 2 {
			c, err := other.CreateConnection(ctx, state.Connection{Tenant: "acme", Client: cl.ID})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, c.ID)
		}
		mark, _ := discoverAll(t, db, -1)
		now := time.Now()
		rows, err := db.ClaimSchedules(ctx, "replica-a", now, time.Minute, 10)
		if err != nil || len(rows) != 2 {
			t.Fatalf("claimed %v %v", rows, err)
		}
		byID := map[string]state.Schedule{rows[0].Connection: rows[0], rows[1].Connection: rows[1]}
		changed, same := byID[ids[0]], byID[ids[1]]

		// While claimed: ids[0] changes on the other replica; discovery
		// sees the change but leaves the leased row alone.
		if err := other.SetConnectionStatus(ctx, "acme", ids[0], state.StatusNeedsReauth, "revoked"); err != nil {
			t.Fatal(err)
		}
		if _, n := discoverAll(t, db, mark); n != 0 {
			t.Fatalf("discovery touched %d leased rows", n)
		}
		parked := state.ScheduleOutcome{Due: now.Add(24 * time.Hour), State: state.ScheduleNeedsReauth, LastError: "about the old token"}
		if err := db.FinishSchedule(ctx, "replica-a", changed, parked); err != nil {
			t.Fatal(err)
		}
		if err := db.FinishSchedule(ctx, "replica-a", same, parked); err != nil {
			t.Fatal(err)
		}
		s, err := db.ScheduleOf(ctx, "acme", ids[0])
		if err != nil || s.State != state.ScheduleNew || s.Due.After(time.Now()) || s.LastError != "" || s.LeaseOwner != "" {
			t.Fatalf("the changed connection's row after the claim: %+v %v; want new, due now, released", s, err)
		}
		if s, _ := db.ScheduleOf(ctx, "acme", ids[1]); s.State != state.ScheduleNeedsReauth || s.Due.Before(now.Add(23*time.Hour)) {
			t.Fatalf("the unchanged connection's row: %+v; want the outcome", s)
		}
		// It is claimed again at once, and its version is now the one seen:
		// finishing records the outcome.
		again, err := db.ClaimSchedules(ctx, "replica-a", time.Now(), time.Minute, 10)
		if err != nil || len(again) != 1 || again[0].Connection != ids[0] || again[0].Claim <= changed.Claim {
			t.Fatalf("claim after the change: %+v %v", again, err)
		}
		// Its lease runs out; the same owner claims it again (a new claim).
		later := time.Now().Add(2 * time.Minute)
		third, err := db.ClaimSchedules(ctx, "replica-a", later, time.Minute, 10)
		if err != nil || len(third) != 1 || third[0].Claim == again[0].Claim {
			t.Fatalf("claim after the lease ran out: %+v %v", third, err)
		}
		if err := db.FinishSchedule(ctx, "replica-a", again[0], parked); !errors.Is(err, state.ErrScheduleLeaseLost) {
			t.Fatalf("finishing a claim taken again: %v, want ErrScheduleLeaseLost", err)
		}
		if err := db.FinishSchedule(ctx, "replica-a", third[0], parked); err != nil {
			t.Fatal(err)
		}
		if s, _ := db.ScheduleOf(ctx, "acme", ids[0]); s.State != state.ScheduleNeedsReauth || s.LastError != parked.LastError {
			t.Fatalf("the current claim's outcome was not recorded: %+v", s)
		}
	})
}
