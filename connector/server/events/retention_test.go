package events_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/server/events"
	"github.com/connector-engine/connector/connector/server/state"
)

// TestPurgeOneReplicaAtATime: of two replicas' workers the one holding the
// purge lease purges, in as many batches as it takes (more than one
// here), every delivered event past the retention; the other is turned
// away while the lease lasts. A pending event, however old, is kept.
func TestPurgeOneReplicaAtATime(t *testing.T) {
	databases(t, func(t *testing.T, open func() *state.DB) {
		ctx := context.Background()
		db := open()
		if _, err := db.EnsureTenant(ctx, "acme", ""); err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-40 * 24 * time.Hour)
		db.Now = func() time.Time { return old }
		n := state.PurgeBatch + 7
		for i := range n + 1 {
			if _, _, err := db.AppendEvent(ctx, state.Event{Tenant: "acme", Connection: fmt.Sprintf("conn_%d", i%5), Type: state.TypeWebhookDelivery, Key: fmt.Sprint("d", i)}); err != nil {
				t.Fatal(err)
			}
		}
		db.Now = time.Now
		// All but the last delivered, as a worker records it: the job gone,
		// the event marked.
		sql := db.SQL()
		rebind := func(q string) string {
			if db.Kind() == state.Postgres {
				return strings.Replace(q, "?", "$1", 1)
			}
			return q
		}
		if _, err := sql.ExecContext(ctx, rebind(`DELETE FROM server_event_jobs WHERE event_id IN (SELECT id FROM server_events WHERE dkey <> ?)`), fmt.Sprint("d", n)); err != nil {
			t.Fatal(err)
		}
		if _, err := sql.ExecContext(ctx, rebind(`UPDATE server_events SET status = 'delivered' WHERE dkey <> ?`), fmt.Sprint("d", n)); err != nil {
			t.Fatal(err)
		}
		a := &events.Worker{DB: db, ID: "wrk_a", Retention: 30 * 24 * time.Hour}
		b := &events.Worker{DB: open(), ID: "wrk_b", Retention: 30 * 24 * time.Hour}
		deleted, ran, err := a.Purge(ctx)
		if err != nil || !ran || deleted != n {
			t.Fatalf("a's purge: %d ran=%v %v, want %d", deleted, ran, err, n)
		}
		if deleted, ran, err := b.Purge(ctx); err != nil || ran || deleted != 0 {
			t.Fatalf("b's purge while a holds the lease: %d ran=%v %v", deleted, ran, err)
		}
		if deleted, ran, err := a.Purge(ctx); err != nil || !ran || deleted != 0 {
			t.Fatalf("a's second purge: %d ran=%v %v", deleted, ran, err)
		}
		q, err := db.EventQueue(ctx)
		if err != nil || q.Pending != 1 {
			t.Fatalf("queue %+v %v, want the one pending event kept", q, err)
		}
		page, _, err := db.ListEvents(ctx, "acme", "", state.EventFilter{})
		if err != nil || len(page) != 1 || page[0].Key != fmt.Sprint("d", n) {
			t.Fatalf("events left: %v %v", page, err)
		}
	})
}
