package state_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/server/state"
)

// TestPurgeEvents: events older than the cut that are delivered or dead
// letters go (a dead letter's job with it), in batches; pending ones, a dead
// letter replayed before the purge and newer events stay; a purged event's
// key no longer de-duplicates, a kept one's still does.
func TestPurgeEvents(t *testing.T) {
	backends(t, func(t *testing.T, open func() *state.DB) {
		ctx := context.Background()
		db := open()
		setup(t, db)
		base := time.Now()
		clock := base
		db.Now = func() time.Time { return clock }
		appendAt := func(at time.Time, conn, key string) state.Event {
			t.Helper()
			clock = at
			e, dup, err := db.AppendEvent(ctx, state.Event{Tenant: "acme", Connection: conn, Type: state.TypeWebhookDelivery, Key: key})
			if err != nil || dup {
				t.Fatalf("append %s: dup=%v %v", key, dup, err)
			}
			return e
		}
		finish := func(e state.Event, o state.Outcome) {
			t.Helper()
			jobs, err := db.ClaimJobs(ctx, "w", 100, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			for _, j := range jobs {
				if j.Event.ID == e.ID {
					if err := db.FinishJob(ctx, "w", e.ID, o); err != nil {
						t.Fatal(err)
					}
				} else if err := db.ReleaseJob(ctx, "w", j.Event.ID, clock); err != nil {
					t.Fatal(err)
				}
			}
		}
		var old []state.Event
		for i, k := range []string{"delivered-a", "delivered-b", "delivered-c", "dead", "replayed", "pending"} {
			old = append(old, appendAt(base.Add(time.Duration(i)*time.Second), "conn_"+k, k))
		}
		clock = base.Add(time.Minute)
		for _, e := range old[:3] {
			finish(e, state.Outcome{Delivered: true, HTTPStatus: 200})
		}
		finish(old[3], state.Outcome{Dead: true, HTTPStatus: 410, Error: "gone"})
		finish(old[4], state.Outcome{Dead: true, HTTPStatus: 410, Error: "gone"})
		if err := db.ReplayEvent(ctx, "acme", old[4].ID); err != nil {
			t.Fatal(err)
		}
		recent := appendAt(base.Add(40*24*time.Hour), "conn_recent", "recent")
		clock = recent.Created.Add(time.Minute)
		finish(recent, state.Outcome{Delivered: true, HTTPStatus: 200})

		// Batches of two: 2 + 2 + 0 from the four purgeable ones.
		cut := base.Add(30 * 24 * time.Hour)
		var rounds []int
		for {
			n, err := open().PurgeEvents(ctx, cut, 2)
			if err != nil {
				t.Fatal(err)
			}
			rounds = append(rounds, n)
			if n < 2 {
				break
			}
		}
		if len(rounds) != 3 || rounds[0]+rounds[1]+rounds[2] != 4 || rounds[2] != 0 {
			t.Fatalf("purge rounds %v, want 2, 2, 0", rounds)
		}
		for i, e := range old {
			_, err := db.GetEvent(ctx, "acme", e.ID)
			gone := errors.Is(err, state.ErrNotFound)
			if want := i < 4; gone != want {
				t.Fatalf("event %s (%d) gone=%v (%v), want %v", e.Key, i, gone, err, want)
			}
		}
		if _, err := db.GetEvent(ctx, "acme", recent.ID); err != nil {
			t.Fatalf("the recent event: %v", err)
		}
		var jobs int
		if err := db.SQL().QueryRowContext(ctx, rebind(db, `SELECT COUNT(*) FROM server_event_jobs WHERE event_id = ?`), old[3].ID).Scan(&jobs); err != nil || jobs != 0 {
			t.Fatalf("the purged dead letter's job: %d %v", jobs, err)
		}
		q, err := db.EventQueue(ctx)
		if err != nil || q.Pending != 2 || q.Dead != 0 {
			t.Fatalf("queue after the purge %+v %v, want the pending and the replayed event", q, err)
		}
		if _, dup, err := db.AppendEvent(ctx, state.Event{Tenant: "acme", Type: state.TypeWebhookDelivery, Key: "delivered-a"}); err != nil || dup {
			t.Fatalf("a purged event's key: dup=%v %v, want a new event", dup, err)
		}
		if _, dup, err := db.AppendEvent(ctx, state.Event{Tenant: "acme", Type: state.TypeWebhookDelivery, Key: "recent"}); err != nil || !dup {
			t.Fatalf("a kept event's key: dup=%v %v, want the duplicate", dup, err)
		}
	})
}

// TestClaimLease: one owner at a time, renewable by its owner, another's
// once it expires.
func TestClaimLease(t *testing.T) {
	backends(t, func(t *testing.T, open func() *state.DB) {
		ctx := context.Background()
		a, b := open(), open()
		now := time.Now()
		a.Now = func() time.Time { return now }
		b.Now = func() time.Time { return now }
		claim := func(db *state.DB, owner string, want bool) {
			t.Helper()
			got, err := db.ClaimLease(ctx, "events.purge", owner, time.Hour)
			if err != nil || got != want {
				t.Fatalf("%s claims: %v %v, want %v", owner, got, err, want)
			}
		}
		claim(a, "a", true)
		claim(b, "b", false)
		claim(a, "a", true)
		now = now.Add(59 * time.Minute)
		claim(b, "b", false) // a's renewal lasts until the hour is up
		now = now.Add(2 * time.Minute)
		claim(b, "b", true)
		claim(a, "a", false)
		if ok, err := a.ClaimLease(ctx, "other", "a", time.Hour); err != nil || !ok {
			t.Fatalf("another lease name: %v %v", ok, err)
		}
	})
}
