package events_test

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/server/events"
	"github.com/connector-engine/connector/connector/server/state"
)

// fakeClock is the database's clock in a test: it moves only when told.
type fakeClock struct{ n atomic.Int64 }

func newFakeClock(at time.Time) *fakeClock {
	c := &fakeClock{}
	c.n.Store(at.UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time      { return time.Unix(0, c.n.Load()) }
func (c *fakeClock) Set(t time.Time)     { c.n.Store(t.UnixNano()) }
func (c *fakeClock) Add(d time.Duration) { c.n.Add(int64(d)) }

// schedule is the attempts Decide grants an event whose every attempt
// answers status, each made when the previous one said: what a worker
// following p makes of it.
func schedule(p events.Policy, status int) (attempts int, span time.Duration) {
	since := time.Unix(1_800_000_000, 0)
	now := since
	for n := 1; ; n++ {
		d := p.Decide(events.Attempt{N: n, Since: since, Now: now, Status: status})
		if !d.Retry {
			return n, now.Sub(since)
		}
		now = now.Add(d.Delay)
	}
}

// TestBudgetFromFirstAttempt: with the receiver down, each of a
// connection's three events gets the policy's whole schedule in its turn
// (the same number of attempts, over at least the budget), not only the
// first: the budget of an event queued behind a failing one starts at its
// own first attempt. The database's clock is moved from one due attempt
// to the next, so a day of retries takes no day.
func TestBudgetFromFirstAttempt(t *testing.T) {
	p := events.Policy{Base: time.Minute, Cap: time.Hour, Budget: 24 * time.Hour, RefusedAttempts: 3, Jitter: func() float64 { return 0.5 }}
	want, span := schedule(p, http.StatusServiceUnavailable)
	if want < 10 || span < p.Budget {
		t.Fatalf("the policy's schedule: %d attempts over %v", want, span)
	}
	databases(t, func(t *testing.T, open func() *state.DB) {
		ctx := context.Background()
		db := open()
		clock := newFakeClock(time.Now())
		db.Now = clock.Now
		rc := newReceiver(t)
		setup(t, db, rc)
		rc.setFail(func(events.Payload) int { return http.StatusServiceUnavailable })
		appended := map[string][]string{}
		appendEvents(t, db, []string{"con_a"}, 3, appended)
		start(t, db, func(w *events.Worker) { w.Policy = p; w.Poll = 10 * time.Millisecond })

		attempts := func() int {
			rc.mu.Lock()
			defer rc.mu.Unlock()
			return rc.attempts
		}
		// idle: every attempt the receiver saw is recorded, and no job is
		// leased (the next one is due later, or there is none).
		idle := func() bool {
			var recorded, leased int
			if err := db.SQL().QueryRow(`SELECT COALESCE(SUM(attempts), 0) FROM server_events`).Scan(&recorded); err != nil {
				t.Fatal(err)
			}
			if err := db.SQL().QueryRow(`SELECT COUNT(*) FROM server_event_jobs WHERE lease_owner <> ''`).Scan(&leased); err != nil {
				t.Fatal(err)
			}
			return recorded == attempts() && leased == 0
		}
		seen := 0
		for step := 0; ; step++ {
			if step > 4*want {
				t.Fatalf("%d steps of the clock and the events are not all dead (%d attempts, want %d each)", step, attempts(), want)
			}
			waitFor(t, "an attempt", func() bool { return attempts() > seen })
			waitFor(t, "the worker idle", idle)
			seen = attempts()
			// The head of the queue (the event being retried) is due next.
			var next int64
			err := db.SQL().QueryRow(`SELECT next_run FROM server_event_jobs WHERE state = 'pending' ORDER BY seq LIMIT 1`).Scan(&next)
			if errors.Is(err, sql.ErrNoRows) {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			clock.Set(time.Unix(0, next))
		}
		for i, id := range appended["con_a"] {
			e, err := db.GetEvent(ctx, "acme", id)
			if err != nil {
				t.Fatal(err)
			}
			if e.Delivery.Status != state.DeliveryDead || e.Delivery.Attempts != want {
				t.Fatalf("event %d of 3: %s after %d attempts (%s), want dead after the policy's %d", i+1, e.Delivery.Status, e.Delivery.Attempts, e.Delivery.LastError, want)
			}
		}
		if got := attempts(); got != 3*want {
			t.Fatalf("the receiver saw %d attempts, want %d", got, 3*want)
		}
		t.Logf("each of 3 events: %d attempts over %v of the database's clock", want, span)
	})
}
