package events_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/internal/pgtest"
	"github.com/connector-engine/connector/connector/server/state"
)

// BenchmarkDelivery measures end-to-end delivery (append excluded: the
// backlog is appended first) to a loopback receiver: events/s with every
// event on one connection (strictly sequential) and spread over 16
// (concurrent), on SQLite and PostgreSQL. Compare the rows of one run.
func BenchmarkDelivery(b *testing.B) {
	for _, kind := range []string{"sqlite", "postgres"} {
		for _, conns := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/%dconn", kind, conns), func(b *testing.B) {
				var db *state.DB
				if kind == "sqlite" {
					db = newSQLite(b)
				} else {
					db = openPostgres(b, pgtest.Shared(b), newSealer(b))
				}
				rc := newReceiver(b)
				setup(b, db, rc)
				names := make([]string, conns)
				for i := range names {
					names[i] = fmt.Sprintf("con_%02d", i)
				}
				appended := map[string][]string{}
				appendEvents(b, db, names, max(1, b.N/conns), appended)
				b.ResetTimer()
				began := time.Now()
				stop := start(b, db, nil)
				waitFor(b, "every event accepted", func() bool { return rc.accepted() == total(appended) })
				b.StopTimer()
				stop()
				b.ReportMetric(float64(total(appended))/time.Since(began).Seconds(), "events/s")
			})
		}
	}
}
