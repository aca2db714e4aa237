package state_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/server/state"
)

// TestAppendEventDeduplicates: a Key stores once per tenant (concurrently
// too, from two handles as two replicas would), another tenant's same Key is
// its own event, and the data is sealed at rest.
func TestAppendEventDeduplicates(t *testing.T) {
	backends(t, func(t *testing.T, open func() *state.DB) {
		ctx := context.Background()
		db, db2 := open(), open()
		setup(t, db)
		body := json.RawMessage(`{"resource":"projects","secret-ish":"tenant-data-0123"}`)
		var wg sync.WaitGroup
		results := make([]state.Event, 8)
		dups := make([]bool, 8)
		errs := make([]error, 8)
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				h := db
				if i%2 == 1 {
					h = db2
				}
				results[i], dups[i], errs[i] = h.AppendEvent(ctx, state.Event{Tenant: "acme", Type: state.TypeWebhookDelivery, Key: "delivery-1", Data: body})
			}()
		}
		wg.Wait()
		stored := 0
		for i := range 8 {
			if errs[i] != nil {
				t.Fatalf("append %d: %v", i, errs[i])
			}
			if !dups[i] {
				stored++
			}
			if results[i].ID != results[0].ID || !bytes.Equal(results[i].Data, body) {
				t.Fatalf("append %d returned %v %s, want the one stored event %v", i, results[i], results[i].Data, results[0])
			}
		}
		if stored != 1 {
			t.Fatalf("%d appends of one key stored, want 1", stored)
		}
		g, dup, err := db.AppendEvent(ctx, state.Event{Tenant: "globex", Type: state.TypeWebhookDelivery, Key: "delivery-1", Data: body})
		if err != nil || dup || g.ID == results[0].ID {
			t.Fatalf("globex's event with acme's key: %v dup=%v %v", g, dup, err)
		}
		page, _, err := db.ListEvents(ctx, "acme", "", state.EventFilter{})
		if err != nil || len(page) != 1 || page[0].Delivery.Status != state.DeliveryPending {
			t.Fatalf("acme's events: %v %v", page, err)
		}
		var raw []byte
		if err := db.SQL().QueryRowContext(ctx, rebind(db, `SELECT data_sealed FROM server_events WHERE id = ?`), page[0].ID).Scan(&raw); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, []byte("tenant-data-0123")) {
			t.Fatal("the event's data is stored in the clear")
		}
		if s := fmt.Sprintf("%v %+v %s", page[0], page[0], page[0]); bytes.Contains([]byte(s), []byte("tenant-data")) {
			t.Fatalf("an event prints its data: %s", s)
		}
	})
}

func rebind(db *state.DB, q string) string {
	if db.Kind() != state.Postgres {
		return q
	}
	out, n := []byte{}, 0
	for _, c := range []byte(q) {
		if c == '?' {
			n++
			out = append(out, fmt.Sprintf("$%d", n)...)
			continue
		}
		out = append(out, c)
	}
	return string(out)
}

func TestAppendEventRefuses(t *testing.T) {
	ctx := context.Background()
	db := openSQLite(t)
	setup(t, db)
	for _, e := range []state.Event{
		{Type: state.TypeConnected},
		{Tenant: "acme", Type: "Connected"},
		{Tenant: "acme", Type: "connection.connected", Data: json.RawMessage(`{"a":`)},
		{Tenant: "acme", Type: "connection.connected", Data: make(json.RawMessage, state.MaxEventData+1)},
		{Tenant: "nobody", Type: "connection.connected"},
	} {
		if _, _, err := db.AppendEvent(ctx, e); !errors.Is(err, state.ErrInvalidEvent) {
			t.Errorf("AppendEvent(%+v) = %v, want ErrInvalidEvent", e, err)
		}
	}
	if page, _, _ := db.ListEvents(ctx, "acme", "", state.EventFilter{}); len(page) != 0 {
		t.Fatalf("refused events were stored: %v", page)
	}
}

// TestListEventsNewestFirst: pages in newest-first order through the
// cursor, per connection, by type and status, never another tenant's.
func TestListEventsNewestFirst(t *testing.T) {
	backends(t, func(t *testing.T, open func() *state.DB) {
		ctx := context.Background()
		db := open()
		setup(t, db)
		clock := time.Unix(1_800_000_000, 0)
		db.Now = func() time.Time { clock = clock.Add(time.Millisecond); return clock }
		var ids []string
		for i := range 7 {
			conn := "con_a"
			if i%2 == 1 {
				conn = "con_b"
			}
			e, _, err := db.AppendEvent(ctx, state.Event{Tenant: "acme", Connection: conn, Type: state.TypeConnected})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, e.ID)
		}
		if _, _, err := db.AppendEvent(ctx, state.Event{Tenant: "globex", Connection: "con_a", Type: state.TypeConnected}); err != nil {
			t.Fatal(err)
		}
		var got []string
		cursor := ""
		for {
			page, next, err := db.ListEvents(ctx, "acme", "", state.EventFilter{Limit: 3, After: cursor})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range page {
				got = append(got, e.ID)
			}
			if next == "" {
				break
			}
			cursor = next
		}
		if len(got) != 7 {
			t.Fatalf("listed %d events, want 7", len(got))
		}
		for i := range got {
			if got[i] != ids[6-i] {
				t.Fatalf("event %d is %s, want %s (newest first)", i, got[i], ids[6-i])
			}
		}
		page, _, err := db.ListEvents(ctx, "acme", "con_b", state.EventFilter{})
		if err != nil || len(page) != 3 || page[0].ID != ids[5] {
			t.Fatalf("con_b's events: %v %v", page, err)
		}
		if _, _, err := db.ListEvents(ctx, "acme", "", state.EventFilter{After: "bogus"}); !errors.Is(err, state.ErrCursor) {
			t.Fatalf("a bad cursor: %v", err)
		}
		if page, _, _ := db.ListEvents(ctx, "acme", "", state.EventFilter{Type: state.TypeRevoked}); len(page) != 0 {
			t.Fatalf("type filter: %v", page)
		}
	})
}

// TestTransitionsEmitOnce: however many requests (on two handles) see the
// same change, one event; a refresh after failing emits refreshed.
func TestTransitionsEmitOnce(t *testing.T) {
	backends(t, func(t *testing.T, open func() *state.DB) {
		ctx := context.Background()
		db, db2 := open(), open()
		c := setup(t, db)
		conn, err := db.CreateConnection(ctx, state.Connection{Tenant: "acme", Client: c.ID})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.RecordConnected(ctx, "acme", conn.ID); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		emitted := 0
		for i := range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				h := db
				if i%2 == 1 {
					h = db2
				}
				_, ok, err := h.RecordRefresh(ctx, "acme", conn.ID, state.RefreshNeedsReauth, "invalid_grant: the refresh token was revoked")
				if err != nil {
					t.Error(err)
				}
				if ok {
					mu.Lock()
					emitted++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if emitted != 1 {
			t.Fatalf("%d needs_reauth events for one transition, want 1", emitted)
		}
		got, _ := db.Connection(ctx, "acme", conn.ID)
		if got.Status != state.StatusNeedsReauth || got.Reason == "" {
			t.Fatalf("status after needs_reauth: %s %q", got.Status, got.Reason)
		}
		if _, ok, _ := db.RecordRefresh(ctx, "acme", conn.ID, state.RefreshOK, ""); !ok {
			t.Fatal("a refresh succeeding after needs_reauthorization emitted nothing")
		}
		if _, ok, _ := db.RecordRefresh(ctx, "acme", conn.ID, state.RefreshOK, ""); ok {
			t.Fatal("a second successful refresh emitted again")
		}
		if _, ok, _ := db.RecordRefresh(ctx, "acme", conn.ID, state.RefreshFailed, "provider answered 503"); ok {
			t.Fatal("a transient failure emitted an event")
		}
		ev, ok, _ := db.RecordRefresh(ctx, "acme", conn.ID, state.RefreshOK, "")
		if !ok || ev.Type != state.TypeRefreshed || !bytes.Contains(ev.Data, []byte(`"previous_status":"failing"`)) {
			t.Fatalf("refresh after a transient failure: %v %s", ok, ev.Data)
		}
		if _, _, err := db.RecordRefresh(ctx, "globex", conn.ID, state.RefreshNeedsReauth, "x"); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("globex records on acme's connection: %v", err)
		}
		page, _, _ := db.ListEvents(ctx, "acme", conn.ID, state.EventFilter{})
		var types []string
		for i := len(page) - 1; i >= 0; i-- {
			types = append(types, page[i].Type)
		}
		want := []string{state.TypeConnected, state.TypeNeedsReauth, state.TypeRefreshed, state.TypeRefreshed}
		if fmt.Sprint(types) != fmt.Sprint(want) {
			t.Fatalf("events %v, want %v", types, want)
		}
	})
}

func openSQLite(t *testing.T) *state.DB {
	db, err := state.OpenSQLite(context.Background(), t.TempDir()+"/state.db", sealer(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
