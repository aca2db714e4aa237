package events_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/internal/pgtest"
	"github.com/connector-engine/connector/connector/server/events"
	"github.com/connector-engine/connector/connector/server/state"
	"github.com/connector-engine/connector/connector/store"
)

func TestMain(m *testing.M) {
	if os.Getenv(envChild) != "" {
		os.Exit(runChildWorker())
	}
	os.Exit(pgtest.Main(m))
}

// fast is a policy scaled down for tests: the same rules, milliseconds
// instead of seconds.
var fast = events.Policy{Base: 20 * time.Millisecond, Cap: 300 * time.Millisecond, Budget: time.Hour, RefusedAttempts: 3}

// testKey and testURL are the sealing key and PostgreSQL URL of the
// latest database, for a child worker.
var (
	testKey []byte
	testURL string
)

func newSealer(t testing.TB) *store.Sealer {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	testKey = key
	s, err := store.NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// databases runs f on SQLite and on PostgreSQL; open returns another handle
// on the same database, as another replica has.
func databases(t *testing.T, f func(t *testing.T, open func() *state.DB)) {
	t.Run("sqlite", func(t *testing.T) {
		path, s := filepath.Join(t.TempDir(), "state.db"), newSealer(t)
		f(t, func() *state.DB { return openSQLite(t, path, s) })
	})
	t.Run("postgres", func(t *testing.T) {
		postgres(t, f)
	})
}

func postgres(t *testing.T, f func(t *testing.T, open func() *state.DB)) {
	url, s := pgtest.Shared(t), newSealer(t)
	testURL = url
	f(t, func() *state.DB { return openPostgres(t, url, s) })
}

// newSQLite is a fresh SQLite database of the test's own.
func newSQLite(t testing.TB) *state.DB {
	return openSQLite(t, filepath.Join(t.TempDir(), "state.db"), newSealer(t))
}

// openSQLite and openPostgres open a handle on a database, closed when the
// test ends.
func openSQLite(t testing.TB, path string, s *store.Sealer) *state.DB {
	db, err := state.OpenSQLite(context.Background(), path, s)
	return opened(t, db, err)
}

func openPostgres(t testing.TB, url string, s *store.Sealer) *state.DB {
	db, err := state.OpenPostgres(context.Background(), url, s)
	return opened(t, db, err)
}

func opened(t testing.TB, db *state.DB, err error) *state.DB {
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// receiver is the platform's end: it verifies every signature, answers
// with what fail says, and records each event it accepted, de-duplicated by
// webhook-id, in the order accepted.
type receiver struct {
	t      testing.TB
	srv    *httptest.Server
	secret string

	mu       sync.Mutex
	fail     func(p events.Payload) int // 0: accept; a status; -1: drop the connection
	gate     func() bool                // true: the request was held and is done
	seen     map[string]int             // webhook-id -> deliveries accepted
	order    map[string][]string        // connection -> ids, first acceptance order
	attempts int
	bad      []string
}

func newReceiver(t testing.TB) *receiver {
	rc := &receiver{t: t, seen: map[string]int{}, order: map[string][]string{}}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	gate := rc.gate
	rc.mu.Unlock()
	if gate != nil && gate() {
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 2<<20))
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.attempts++
	if err := events.Verify(rc.secret, r.Header, body, time.Now(), events.DefaultTolerance); err != nil {
		rc.bad = append(rc.bad, err.Error())
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var p events.Payload
	if err := json.Unmarshal(body, &p); err != nil || p.ID != r.Header.Get("webhook-id") {
		rc.bad = append(rc.bad, fmt.Sprintf("payload %s does not match webhook-id %s", body, r.Header.Get("webhook-id")))
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if rc.fail != nil {
		switch code := rc.fail(p); {
		case code < 0:
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
					return
				}
			}
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		case code > 0:
			w.WriteHeader(code)
			return
		}
	}
	if rc.seen[p.ID] == 0 {
		rc.order[p.Connection] = append(rc.order[p.Connection], p.ID)
	}
	rc.seen[p.ID]++
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) setFail(f func(events.Payload) int) {
	rc.mu.Lock()
	rc.fail = f
	rc.mu.Unlock()
}

// accepted is how many distinct events were accepted.
func (rc *receiver) accepted() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.seen)
}

// check asserts every appended event was accepted, in append order per
// connection, and no signature failed; it returns the redeliveries (an
// event accepted more than once, which at least once allows).
func (rc *receiver) check(t testing.TB, appended map[string][]string) int {
	t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.bad) > 0 {
		t.Fatalf("%d requests failed verification, first: %s", len(rc.bad), rc.bad[0])
	}
	dups := 0
	for conn, ids := range appended {
		if got := rc.order[conn]; !slices.Equal(got, ids) {
			t.Fatalf("connection %s: accepted %d events %v, want %d in append order %v", conn, len(got), got, len(ids), ids)
		}
		for _, id := range ids {
			dups += rc.seen[id] - 1
		}
	}
	return dups
}

// setup makes tenant acme with its endpoint at rc.
func setup(t testing.TB, db *state.DB, rc *receiver) {
	ctx := context.Background()
	if _, err := db.EnsureTenant(ctx, "acme", ""); err != nil {
		t.Fatal(err)
	}
	rc.secret = events.NewSecret()
	if _, _, err := db.SetEndpoint(ctx, "acme", rc.srv.URL+"/hooks", rc.secret); err != nil {
		t.Fatal(err)
	}
}

// appendEvents appends n events to each of conns, interleaved, and returns
// the ids per connection in append order.
func appendEvents(t testing.TB, db *state.DB, conns []string, n int, into map[string][]string) {
	t.Helper()
	for i := range n {
		for _, c := range conns {
			e, _, err := db.AppendEvent(context.Background(), state.Event{Tenant: "acme", Connection: c, Type: state.TypeWebhookDelivery,
				Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))})
			if err != nil {
				t.Fatal(err)
			}
			into[c] = append(into[c], e.ID)
		}
	}
}

func total(m map[string][]string) int {
	n := 0
	for _, ids := range m {
		n += len(ids)
	}
	return n
}

// start runs a worker on db until the test ends (or stop is called).
func start(t testing.TB, db *state.DB, tune func(*events.Worker)) (stop func()) {
	w := &events.Worker{DB: db, Policy: fast, AllowPrivate: true, Poll: 50 * time.Millisecond, AttemptTimeout: 5 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if tune != nil {
		tune(w)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond until it holds; the test's own timeout bounds it (no
// timed assertion: a slow machine only takes longer).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s after 5 minutes", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func queueEmpty(t testing.TB, db *state.DB) func() bool {
	return func() bool {
		q, err := db.EventQueue(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return q.Pending == 0
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
