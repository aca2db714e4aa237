package events_test

import (
	"context"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/server/events"
	"github.com/connector-engine/connector/connector/server/state"
)

// TestInOrderWithFailures: a receiver failing every other attempt for a
// while (500s, dropped connections, 429 with Retry-After) then recovering
// gets every event of every connection, in append order per connection.
func TestInOrderWithFailures(t *testing.T) {
	databases(t, func(t *testing.T, open func() *state.DB) {
		db := open()
		rc := newReceiver(t)
		setup(t, db, rc)
		var mu sync.Mutex
		n := 0
		rc.setFail(func(events.Payload) int {
			mu.Lock()
			defer mu.Unlock()
			n++
			if n > 150 {
				return 0 // recovered
			}
			return []int{0, 500, 0, -1, 0, 429}[n%6]
		})
		appended := map[string][]string{}
		conns := []string{"con_a", "con_b", "con_c", ""}
		appendEvents(t, db, conns, 10, appended)
		start(t, db, nil)
		appendEvents(t, db, conns, 15, appended) // while delivering
		waitFor(t, "every event accepted", func() bool { return rc.accepted() == total(appended) })
		waitFor(t, "an empty queue", queueEmpty(t, db))
		dups := rc.check(t, appended)
		page, _, err := db.ListEvents(context.Background(), "acme", "con_a", state.EventFilter{Limit: 1})
		if err != nil || page[0].Delivery.Status != state.DeliveryDelivered || page[0].Delivery.Delivered.IsZero() {
			t.Fatalf("the newest event of con_a: %+v %v", page[0].Delivery, err)
		}
		t.Logf("%d events, %d attempts, %d redeliveries", total(appended), rc.attempts, dups)
	})
}

// TestReceiverDown: the receiver is down (connections dropped, then 503s)
// for a while with events arriving meanwhile; once it is up it gets
// everything, in order per connection. 10 s down by default; a full
// minute with CONNECTOR_EVENTS_FULL=1.
func TestReceiverDown(t *testing.T) {
	down := 10 * time.Second
	if os.Getenv("CONNECTOR_EVENTS_FULL") != "" {
		down = time.Minute
	}
	databases(t, func(t *testing.T, open func() *state.DB) {
		db := open()
		rc := newReceiver(t)
		setup(t, db, rc)
		var mu sync.Mutex
		isDown := true
		rc.setFail(func(p events.Payload) int {
			mu.Lock()
			defer mu.Unlock()
			if !isDown {
				return 0
			}
			if strings.HasSuffix(p.ID, "0") || strings.HasSuffix(p.ID, "5") {
				return 503
			}
			return -1
		})
		start(t, db, nil)
		appended := map[string][]string{}
		conns := []string{"con_a", "con_b", "con_c", "con_d", "con_e"}
		began := time.Now()
		for time.Since(began) < down {
			appendEvents(t, db, conns, 2, appended)
			time.Sleep(200 * time.Millisecond)
		}
		if got := rc.accepted(); got != 0 {
			t.Fatalf("%d events accepted while down", got)
		}
		mu.Lock()
		isDown = false
		mu.Unlock()
		up := time.Now()
		waitFor(t, "every event accepted", func() bool { return rc.accepted() == total(appended) })
		dups := rc.check(t, appended)
		t.Logf("down %v: %d events over %d connections, all accepted %v after the receiver came back, in order; %d attempts, %d redeliveries",
			down, total(appended), len(conns), time.Since(up).Round(time.Millisecond), rc.attempts, dups)
	})
}

// TestTwoWorkersOnePostgres: two workers on two handles of one PostgreSQL
// (two replicas) share the queue: every event is accepted, once in effect,
// in order per connection, and both workers took part.
func TestTwoWorkersOnePostgres(t *testing.T) {
	postgres(t, func(t *testing.T, open func() *state.DB) {
		db1, db2 := open(), open()
		rc := newReceiver(t)
		setup(t, db1, rc)
		var mu sync.Mutex
		by := map[string]int{}
		count := func(id string) func(*events.Worker) {
			return func(w *events.Worker) {
				w.ID = id
				base := w.Transport
				if base == nil {
					base = events.Transport(true)
				}
				w.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
					mu.Lock()
					by[id]++
					mu.Unlock()
					return base.RoundTrip(r)
				})
			}
		}
		appended := map[string][]string{}
		var conns []string
		for i := range 8 {
			conns = append(conns, "con_"+string(rune('a'+i)))
		}
		appendEvents(t, db1, conns, 10, appended)
		start(t, db1, count("replica-1"))
		start(t, db2, count("replica-2"))
		appendEvents(t, db2, conns, 15, appended)
		waitFor(t, "every event accepted", func() bool { return rc.accepted() == total(appended) })
		waitFor(t, "an empty queue", queueEmpty(t, db1))
		dups := rc.check(t, appended)
		if dups != 0 {
			t.Fatalf("%d events were delivered twice with no worker killed", dups)
		}
		mu.Lock()
		defer mu.Unlock()
		if by["replica-1"] == 0 || by["replica-2"] == 0 {
			t.Fatalf("one worker did everything: %v", by)
		}
		t.Logf("%d events over %d connections; attempts by worker %v", total(appended), len(conns), by)
	})
}

// TestKilledWorkerLeases: a worker killed with jobs leased (the leases
// taken as its ClaimJobs took them, never finished) leaves them to the
// other worker once the leases expire; nothing is lost and order holds.
func TestKilledWorkerLeases(t *testing.T) {
	databases(t, func(t *testing.T, open func() *state.DB) {
		db, other := open(), open()
		rc := newReceiver(t)
		setup(t, db, rc)
		appended := map[string][]string{}
		conns := []string{"con_a", "con_b", "con_c"}
		appendEvents(t, db, conns, 5, appended)
		leased, err := db.ClaimJobs(context.Background(), "killed-replica", 10, 2*time.Second)
		if err != nil || len(leased) != len(conns) {
			t.Fatalf("the killed worker leased %d jobs (%v), want one per connection: %d", len(leased), err, len(conns))
		}
		start(t, other, nil)
		waitFor(t, "every event accepted", func() bool { return rc.accepted() == total(appended) })
		rc.check(t, appended)
		for _, j := range leased {
			if err := db.FinishJob(context.Background(), "killed-replica", j.Event.ID, state.Outcome{Delivered: true}); err != state.ErrLeaseLost {
				t.Fatalf("the killed worker's late finish of %s: %v, want ErrLeaseLost", j.Event.ID, err)
			}
		}
	})
}

// TestDeadLetterAndReplay: a connection whose events the receiver refuses
// dead-letters them after the refusal attempts, without holding back its
// later events or other connections'; a replay delivers them.
func TestDeadLetterAndReplay(t *testing.T) {
	databases(t, func(t *testing.T, open func() *state.DB) {
		ctx := context.Background()
		db := open()
		rc := newReceiver(t)
		setup(t, db, rc)
		var mu sync.Mutex
		refuse := map[string]bool{}
		rc.setFail(func(p events.Payload) int {
			mu.Lock()
			defer mu.Unlock()
			if refuse[p.ID] {
				return 422
			}
			return 0
		})
		appended := map[string][]string{}
		appendEvents(t, db, []string{"con_a", "con_b"}, 2, appended)
		mu.Lock()
		refuse[appended["con_a"][0]] = true
		mu.Unlock()
		start(t, db, nil)
		waitFor(t, "the refused event dead", queueEmpty(t, db))
		dead, _, err := db.ListEvents(ctx, "acme", "", state.EventFilter{Status: state.DeliveryDead})
		if err != nil || len(dead) != 1 || dead[0].ID != appended["con_a"][0] || dead[0].Delivery.Attempts != fast.RefusedAttempts ||
			dead[0].Delivery.LastStatus != 422 || !strings.Contains(dead[0].Delivery.LastError, "422") {
			t.Fatalf("dead letters %+v, %v", dead, err)
		}
		if got := rc.accepted(); got != 3 {
			t.Fatalf("%d events accepted around the dead letter, want 3", got)
		}
		if _, err := db.EventQueue(ctx); err != nil {
			t.Fatal(err)
		}
		if err := db.ReplayEvent(ctx, "globex", dead[0].ID); err == nil {
			t.Fatal("another tenant replayed acme's dead letter")
		}
		mu.Lock()
		refuse = map[string]bool{}
		mu.Unlock()
		if n, err := db.ReplayConnection(ctx, "acme", "con_a"); err != nil || n != 1 {
			t.Fatalf("ReplayConnection = %d, %v", n, err)
		}
		waitFor(t, "the replayed event delivered", func() bool {
			e, _ := db.GetEvent(ctx, "acme", dead[0].ID)
			return e.Delivery.Status == state.DeliveryDelivered
		})
		if err := db.ReplayEvent(ctx, "acme", dead[0].ID); err == nil {
			t.Fatal("a delivered event replayed as a dead letter")
		}
		got, _ := db.GetEvent(ctx, "acme", dead[0].ID)
		if got.Delivery.Status != state.DeliveryDelivered || got.Delivery.Attempts != fast.RefusedAttempts+1 {
			t.Fatalf("after the replay: %+v", got.Delivery)
		}
	})
}

// TestNoEndpointWaits: events of a tenant without an event URL wait (and
// are not lost) until one is set.
func TestNoEndpointWaits(t *testing.T) {
	ctx := context.Background()
	db := newSQLite(t)
	rc := newReceiver(t)
	if _, err := db.EnsureTenant(ctx, "acme", ""); err != nil {
		t.Fatal(err)
	}
	appended := map[string][]string{}
	appendEvents(t, db, []string{"con_a"}, 3, appended)
	start(t, db, nil)
	waitFor(t, "an attempt", func() bool {
		e, _ := db.GetEvent(ctx, "acme", appended["con_a"][0])
		return e.Delivery.Attempts > 0
	})
	e, _ := db.GetEvent(ctx, "acme", appended["con_a"][0])
	if e.Delivery.Status != state.DeliveryPending || !strings.Contains(e.Delivery.LastError, "no event URL") {
		t.Fatalf("without an endpoint: %+v", e.Delivery)
	}
	rc.secret = events.NewSecret()
	if _, _, err := db.SetEndpoint(ctx, "acme", rc.srv.URL, rc.secret); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every event accepted", func() bool { return rc.accepted() == 3 })
	rc.check(t, appended)
}

// A failed attempt schedules the next one by the policy's backoff, counted
// from when the attempt was made: a receiver answering 503 is not retried
// before Base/2 has passed (the attempt's time once went missing, and every
// retry was due at once: a hot loop against a failing receiver).
func TestRetryWaitsForBackoff(t *testing.T) {
	ctx := context.Background()
	db := newSQLite(t)
	rc := newReceiver(t)
	setup(t, db, rc)
	rc.setFail(func(events.Payload) int { return http.StatusServiceUnavailable })
	appended := map[string][]string{}
	appendEvents(t, db, []string{"con_a"}, 1, appended)
	before := time.Now()
	slow := events.Policy{Base: time.Hour, Cap: 2 * time.Hour, Budget: 48 * time.Hour, RefusedAttempts: 3}
	start(t, db, func(w *events.Worker) { w.Policy = slow })
	var e state.Event
	waitFor(t, "the first attempt", func() bool {
		e, _ = db.GetEvent(ctx, "acme", appended["con_a"][0])
		return e.Delivery.Attempts > 0
	})
	if e.Delivery.Status != state.DeliveryPending {
		t.Fatalf("after one 503: %+v", e.Delivery)
	}
	if earliest := before.Add(slow.Base / 2); e.Delivery.NextAttempt.Before(earliest) {
		t.Fatalf("the retry after a 503 is due at %v, before %v (Base/2 after the attempt)", e.Delivery.NextAttempt, earliest)
	}
	if e.Delivery.Attempts != 1 {
		t.Fatalf("%d attempts were made: the retry did not wait for its backoff", e.Delivery.Attempts)
	}
}
