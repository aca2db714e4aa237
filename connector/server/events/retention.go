package events

import (
	"context"
	"time"

	"github.com/connector-engine/connector/connector/server/state"
)

// DefaultPurgeEvery is how often a worker looks for events past their
// retention. Hourly keeps each purge small (an hour's worth of events);
// the retention is days, so the lag does not matter.
const DefaultPurgeEvery = time.Hour

// purgeLease names the lease that lets one replica purge at a time.
const purgeLease = "events.purge"

func (w *Worker) purgeLoop(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, _, err := w.Purge(ctx); err != nil && ctx.Err() == nil {
			w.Logger.Error("events: purging old events", "error", err)
		}
		t.Reset(w.PurgeEvery)
	}
}

// Purge deletes the delivered events and dead letters older than the
// retention, in batches of state.PurgeBatch (each its own short
// transaction, so deliveries and appends are never held up for long), when
// this worker holds the purge lease; ran is false when another replica
// holds it. Run calls it every PurgeEvery.
func (w *Worker) Purge(ctx context.Context) (deleted int, ran bool, err error) {
	if w.client == nil {
		w.defaults()
	}
	// The lease lasts until this worker's next purge: the replica that
	// purges keeps doing so, and another takes over when it is gone.
	ok, err := w.DB.ClaimLease(ctx, purgeLease, w.ID, w.PurgeEvery)
	if err != nil || !ok {
		return 0, false, err
	}
	cut := w.DB.Now().Add(-w.Retention)
	for ctx.Err() == nil {
		n, err := w.DB.PurgeEvents(ctx, cut, state.PurgeBatch)
		deleted += n
		if err != nil {
			return deleted, true, err
		}
		if n < state.PurgeBatch {
			break
		}
	}
	if deleted > 0 {
		w.Logger.Info("events: purged events past their retention", "deleted", deleted, "retention", w.Retention.String())
	}
	return deleted, true, ctx.Err()
}
