package pgstore

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/connector-engine/connector/connector/internal/pgtest"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/token"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func newSealer(t testing.TB) *store.Sealer {
	t.Helper()
	key := make([]byte, store.KeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	s, err := store.NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func openStore(t testing.TB, url string, sealer *store.Sealer) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Open(ctx, url, sealer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// newStore opens a store on a new, empty database of the shared server.
func newStore(t testing.TB) (*Store, string) {
	t.Helper()
	url := pgtest.Shared(t)
	return openStore(t, url, newSealer(t)), url
}

// sql runs one statement on url outside the store, as a DBA would.
func sql(t testing.TB, url, query string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// column reads one text column of every row of a query.
func column(t testing.TB, url, query string, args ...any) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, query, args...)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// record makes a connection record whose secrets are distinctive enough to
// search the database for.
func record(id string) store.Record {
	return store.Record{
		ID:         id,
		Definition: "procore",
		Token: token.Token{
			AccessToken:  "ACCESS-" + id + "-a1b2c3d4e5f6",
			TokenType:    "Bearer",
			RefreshToken: "REFRESH-" + id + "-f6e5d4c3b2a1",
			Expiry:       time.Date(2031, 5, 6, 7, 8, 9, 10, time.FixedZone("X", 3600)),
			Scopes:       []string{"read"},
			IssuedAt:     time.Date(2031, 5, 6, 5, 8, 9, 0, time.UTC),
		},
		Status: store.StatusConnected,
	}
}

func secretsOf(r store.Record) []string {
	return []string{r.Token.AccessToken, r.Token.RefreshToken}
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, url := newStore(t)

	in := record("conn-1")
	in.RefreshStarted = time.Now() // a monotonic reading, a local zone, nanoseconds
	put, err := s.Put(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if put.Version != 1 || put.UpdatedAt.IsZero() {
		t.Errorf("first Put: Version = %d, UpdatedAt %v; want 1 and set", put.Version, put.UpdatedAt)
	}
	if d := in.RefreshStarted.Sub(put.RefreshStarted); d < 0 || d >= time.Microsecond {
		t.Errorf("RefreshStarted moved by %v; want truncation to the microsecond", d)
	}
	got, err := s.Get(ctx, "conn-1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, put) {
		t.Errorf("Get after Put:\n got %+v\nwant %+v", got, put)
	}
	if !got.Token.Expiry.Equal(in.Token.Expiry) {
		t.Error("the token's expiry changed instant in the round trip")
	}

	got.Status = store.StatusNeedsReauth
	got.Reason = "the refresh token was revoked"
	got.RefreshStarted = time.Time{}
	got.Token.AccessToken = "ACCESS-rotated"
	put2, err := s.Put(ctx, got)
	if err != nil {
		t.Fatal(err)
	}
	if put2.Version != 2 || !put2.RefreshStarted.IsZero() {
		t.Errorf("second Put: Version = %d, RefreshStarted %v; want 2, zero", put2.Version, put2.RefreshStarted)
	}

	// Another Store on the same database (another host) sees the same record.
	other := openStore(t, url, s.sealer)
	got2, err := other.Get(ctx, "conn-1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got2, put2) {
		t.Errorf("Get from a second Store:\n got %+v\nwant %+v", got2, put2)
	}
	list, err := other.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || !reflect.DeepEqual(list[0], put2) {
		t.Errorf("List = %+v, want [%+v]", list, put2)
	}
}

func TestGetMissing(t *testing.T) {
	s, _ := newStore(t)
	_, err := s.Get(context.Background(), "nope")
	if !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("Get of a missing record: %v; want ErrNotFound naming it", err)
	}
	if list, err := s.List(context.Background()); err != nil || len(list) != 0 {
		t.Errorf("List of a new store = %v, %v; want empty", list, err)
	}
}

func TestRowsHoldNoSecrets(t *testing.T) {
	ctx := context.Background()
	s, url := newStore(t)
	var secrets []string
	// "B" sorts before "a" in byte order but after it in most collations.
	for _, id := range []string{"conn-b", "conn-a", "conn-B"} {
		r := record(id)
		r.Reason = "reason-" + id
		if _, err := s.Put(ctx, r); err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, secretsOf(r)...)
	}
	rows := column(t, url, `SELECT t::text FROM connector_connections t`)
	rows = append(rows, column(t, url, `SELECT t::text FROM connector_history t`)...)
	dump := strings.Join(rows, "\n")
	for _, secret := range secrets {
		for _, form := range []string{secret, base64.StdEncoding.EncodeToString([]byte(secret)), fmt.Sprintf("%x", secret)} {
			if strings.Contains(dump, form) {
				t.Errorf("a row contains a secret (%q)", form)
			}
		}
	}
	for _, readable := range []string{"conn-a", "procore", "connected", "reason-conn-b"} {
		if !strings.Contains(dump, readable) {
			t.Errorf("the rows do not show %s in clear:\n%s", readable, dump)
		}
	}
	if v := column(t, url, `SELECT version::text FROM connector_connections WHERE id = 'conn-a'`); len(v) != 1 || v[0] != "1" {
		t.Errorf("version column = %v, want [1]", v)
	}
	list, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range list {
		ids = append(ids, r.ID)
	}
	if strings.Join(ids, ",") != "conn-B,conn-a,conn-b" {
		t.Errorf("List ids = %v, want byte order [conn-B conn-a conn-b]", ids)
	}
}

func TestTamperingDetected(t *testing.T) {
	for _, tc := range []struct {
		name, sql string
	}{
		{"sealed token altered", `UPDATE connector_connections SET token_sealed = overlay(token_sealed placing '\x00'::bytea from 20 for 1) WHERE id = 'conn-a'`},
		{"sealed tokens swapped between connections", `UPDATE connector_connections a SET token_sealed = b.token_sealed
			FROM connector_connections b WHERE a.id = 'conn-a' AND b.id = 'conn-b'`},
		{"sealed token truncated", `UPDATE connector_connections SET token_sealed = substring(token_sealed from 1 for 10) WHERE id = 'conn-a'`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s, url := newStore(t)
			var secrets []string
			for _, id := range []string{"conn-a", "conn-b"} {
				r := record(id)
				if _, err := s.Put(ctx, r); err != nil {
					t.Fatal(err)
				}
				secrets = append(secrets, secretsOf(r)...)
			}
			sql(t, url, tc.sql)
			_, getErr := s.Get(ctx, "conn-a")
			_, listErr := s.List(ctx)
			for _, err := range []error{getErr, listErr} {
				if !errors.Is(err, store.ErrUnseal) {
					t.Fatalf("err = %v; want one wrapping store.ErrUnseal", err)
				}
				msg := err.Error()
				for _, want := range []string{`"conn-a"`, s.desc, "altered"} {
					if !strings.Contains(msg, want) {
						t.Errorf("error %q does not mention %s", msg, want)
					}
				}
				for _, secret := range secrets {
					if strings.Contains(msg, secret) {
						t.Errorf("error %q contains a secret", msg)
					}
				}
			}
			if _, err := s.Get(ctx, "conn-b"); err != nil {
				t.Errorf("the untouched record: %v", err)
			}
		})
	}
}

func TestWrongKey(t *testing.T) {
	ctx := context.Background()
	s, url := newStore(t)
	r := record("conn-1")
	if _, err := s.Put(ctx, r); err != nil {
		t.Fatal(err)
	}
	key := make([]byte, store.KeySize)
	rand.Read(key)
	t.Setenv(store.EnvSecretKey, base64.StdEncoding.EncodeToString(key))
	wrong, err := store.LoadSealer("")
	if err != nil {
		t.Fatal(err)
	}
	w := openStore(t, url, wrong)
	_, err = w.Get(ctx, "conn-1")
	if !errors.Is(err, store.ErrUnseal) {
		t.Fatalf("Get with the wrong key: %v; want ErrUnseal", err)
	}
	msg := err.Error()
	for _, want := range []string{`"conn-1"`, w.desc, "the key in " + store.EnvSecretKey, "differs from the key it was written with", "authorize it again"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	for _, secret := range secretsOf(r) {
		if strings.Contains(msg, secret) {
			t.Errorf("error %q contains a secret", msg)
		}
	}
	if _, err := w.List(ctx); !errors.Is(err, store.ErrUnseal) {
		t.Errorf("List with the wrong key: %v; want ErrUnseal", err)
	}
}

func TestVersionConflict(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		stored  int   // how many Puts precede the one tested (0: no record)
		version int64 // Version of the tested Put
		ok      bool
	}{
		{"new record at version 0", 0, 0, true},
		{"new record claiming version 1", 0, 1, false},
		{"current version", 3, 3, true},
		{"stale version", 3, 2, false},
		{"stale zero version (create over existing)", 3, 0, false},
		{"future version", 3, 4, false},
		{"negative version", 1, -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, url := newStore(t)
			r := record("conn")
			for range tc.stored {
				var err error
				if r, err = s.Put(ctx, r); err != nil {
					t.Fatal(err)
				}
			}
			dump := func() string {
				return strings.Join(append(column(t, url, `SELECT t::text FROM connector_connections t`),
					column(t, url, `SELECT t::text FROM connector_history t ORDER BY version`)...), "\n")
			}
			before := dump()
			r.Version = tc.version
			r.Token.RefreshToken = "REFRESH-from-stale-writer"
			got, err := s.Put(ctx, r)
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				if got.Version != tc.version+1 {
					t.Errorf("Version = %d, want %d", got.Version, tc.version+1)
				}
				return
			}
			if !errors.Is(err, store.ErrConflict) {
				t.Fatalf("Put: %v; want ErrConflict", err)
			}
			if !strings.Contains(err.Error(), `"conn"`) || !strings.Contains(err.Error(), fmt.Sprintf("based on version %d", tc.version)) {
				t.Errorf("error %q does not name the connection and the stale version", err)
			}
			if after := dump(); after != before {
				t.Errorf("a conflicting Put changed the tables:\n%s\nto\n%s", before, after)
			}
		})
	}
}

func TestDelete(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	for _, id := range []string{"c", "a", "b"} {
		if _, err := s.Put(ctx, record(id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "never-existed"); err != nil {
		t.Errorf("Delete of a missing record: %v", err)
	}
	if _, err := s.Get(ctx, "b"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get after Delete: %v; want ErrNotFound", err)
	}
	if h, err := s.History(ctx, "b"); err != nil || len(h) != 0 {
		t.Errorf("History after Delete = %v, %v; want none", h, err)
	}
	list, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range list {
		ids = append(ids, r.ID)
	}
	if strings.Join(ids, ",") != "a,c" {
		t.Errorf("List ids = %v, want [a c] in order", ids)
	}
	// A deleted record can be made again from version 0.
	if r, err := s.Put(ctx, record("b")); err != nil || r.Version != 1 {
		t.Errorf("Put after Delete = version %d, %v; want 1", r.Version, err)
	}
}

func TestHistory(t *testing.T) {
	defer func(n int) { historyKept = n }(historyKept)
	historyKept = 3
	ctx := context.Background()
	s, url := newStore(t)
	r := record("conn-1")
	var err error
	steps := []struct {
		refreshing bool
		status     store.Status
		reason     string
	}{
		{false, store.StatusConnected, ""},
		{true, store.StatusConnected, ""},
		{false, store.StatusConnected, ""},
		{true, store.StatusConnected, ""},
		{false, store.StatusNeedsReauth, "the provider rejected the refresh token"},
	}
	for _, st := range steps {
		r.RefreshStarted = time.Time{}
		if st.refreshing {
			r.RefreshStarted = time.Now()
		}
		r.Status, r.Reason = st.status, st.reason
		if r, err = s.Put(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	h, err := s.History(ctx, "conn-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 3 {
		t.Fatalf("History kept %d events, want the last 3: %+v", len(h), h)
	}
	for i, e := range h {
		st := steps[2+i]
		if e.Version != int64(3+i) || e.Refreshing != st.refreshing || e.Status != st.status || e.Reason != st.reason || e.At.IsZero() {
			t.Errorf("event %d = %+v, want version %d %+v", i, e, 3+i, st)
		}
	}
	if last := h[len(h)-1]; !last.At.Equal(r.UpdatedAt) {
		t.Errorf("last event at %v, record updated at %v", last.At, r.UpdatedAt)
	}
	if cols := column(t, url, `SELECT column_name::text FROM information_schema.columns WHERE table_name = 'connector_history' ORDER BY ordinal_position`); strings.Join(cols, ",") != "id,version,status,reason,refreshing,at" {
		t.Errorf("history columns = %v", cols)
	}
}

// A Put whose history row cannot be written writes nothing: both rows go in
// one statement.
func TestPutAllOrNothing(t *testing.T) {
	ctx := context.Background()
	s, url := newStore(t)
	r, err := s.Put(ctx, record("conn-1"))
	if err != nil {
		t.Fatal(err)
	}
	if r, err = s.Put(ctx, r); err != nil {
		t.Fatal(err)
	}
	sql(t, url, `ALTER TABLE connector_history ADD CONSTRAINT test_refuse_v3 CHECK (version < 3)`)
	r.Token.RefreshToken = "REFRESH-never-stored"
	_, err = s.Put(ctx, r)
	if err == nil {
		t.Fatal("Put succeeded though its history row was refused")
	}
	if msg := err.Error(); !strings.Contains(msg, `writing connection "conn-1"`) || !strings.Contains(msg, "nothing was written") || !strings.Contains(msg, "test_refuse_v3") {
		t.Errorf("error %q does not say what failed", msg)
	}
	got, err := s.Get(ctx, "conn-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 2 || got.Token.RefreshToken == "REFRESH-never-stored" {
		t.Errorf("the record changed: version %d", got.Version)
	}
}

// increment adds one to the counter kept in connection id's access token,
// the read-modify-write a refresh does.
func increment(ctx context.Context, s store.Store, id string) error {
	r, err := s.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		r = store.Record{ID: id, Definition: "counter", Status: store.StatusConnected}
	} else if err != nil {
		return err
	}
	n, _ := strconv.Atoi(r.Token.AccessToken)
	r.Token.AccessToken = strconv.Itoa(n + 1)
	r.Token.RefreshToken = "refresh-" + r.Token.AccessToken
	_, err = s.Put(ctx, r)
	return err
}

func counter(t *testing.T, s store.Store, id string) (count int, version int64) {
	t.Helper()
	r, err := s.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(r.Token.AccessToken)
	if err != nil {
		t.Fatalf("counter holds %q", r.Token.AccessToken)
	}
	return n, r.Version
}

// twoHosts opens two stores with separate pools on one database.
func twoHosts(t *testing.T) (a, b *Store) {
	t.Helper()
	a, url := newStore(t)
	return a, openStore(t, url, a.sealer)
}

func TestConcurrentPutsRetryOnConflict(t *testing.T) {
	const workers, each = 8, 25
	ctx := context.Background()
	a, b := twoHosts(t)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	var conflicts sync.Map
	for w := range workers {
		s := a
		if w%2 == 1 {
			s = b
		}
		wg.Go(func() {
			for range each {
				for {
					err := increment(ctx, s, "counter")
					if errors.Is(err, store.ErrConflict) {
						conflicts.Store(w, true)
						continue
					}
					if err != nil {
						errs <- err
						return
					}
					break
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n, v := counter(t, a, "counter"); n != workers*each || v != workers*each {
		t.Errorf("count = %d at version %d; want %d (an update was lost)", n, v, workers*each)
	}
}

// Lock excludes goroutines of one store and of another store with its own
// pool (another host): under it, a read-modify-write never conflicts.
func TestLockExcludesAcrossHosts(t *testing.T) {
	const workers, each = 8, 20
	ctx := context.Background()
	a, b := twoHosts(t)
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		s := a
		if w%2 == 1 {
			s = b
		}
		wg.Go(func() {
			for range each {
				unlock, err := s.Lock(ctx, "counter")
				if err != nil {
					errs <- err
					return
				}
				if err := increment(ctx, s, "counter"); err != nil {
					errs <- err
				}
				if err := unlock(); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n, _ := counter(t, a, "counter"); n != workers*each {
		t.Errorf("count = %d, want %d", n, workers*each)
	}
}

// A holder that never lets go (a hung refresh on another host) makes the
// waiter fail with ErrLockTimeout when its context ends, not hang.
func TestLockTimeout(t *testing.T) {
	a, b := twoHosts(t)
	unlock, err := a.Lock(context.Background(), "conn-1")
	if err != nil {
		t.Fatal(err)
	}
	unlockOther, err := b.Lock(context.Background(), "conn-2")
	if err != nil {
		t.Fatalf("Lock of another connection: %v", err)
	}
	unlockOther()

	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name  string
		ctx   func() (context.Context, context.CancelFunc)
		cause error
	}{
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 200*time.Millisecond)
		}, context.DeadlineExceeded},
		{"canceled before", func() (context.Context, context.CancelFunc) { return canceled, func() {} }, context.Canceled},
		{"canceled while waiting", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(200*time.Millisecond, cancel)
			return ctx, cancel
		}, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, s := range []*Store{b, a} { // another host, and the holder's own
				ctx, cancel := tc.ctx()
				_, err := s.Lock(ctx, "conn-1")
				cancel()
				if !errors.Is(err, store.ErrLockTimeout) || !errors.Is(err, tc.cause) {
					t.Fatalf("Lock of a held connection: %v; want ErrLockTimeout and %v", err, tc.cause)
				}
				if msg := err.Error(); !strings.Contains(msg, `"conn-1"`) || !strings.Contains(msg, "another worker") {
					t.Errorf("error %q does not say which connection and why", msg)
				}
			}
		})
	}
	// The failed waits left no session of b's pool holding anything.
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	if err := unlock(); err != nil {
		t.Errorf("second unlock: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	again, err := b.Lock(ctx, "conn-1")
	if err != nil {
		t.Fatalf("Lock after unlock: %v", err)
	}
	if err := again(); err != nil {
		t.Fatal(err)
	}
}

// When the holder's session dies (its process crashed, or an administrator
// ended it), the server releases the lock; the holder's unlock says it was lost.
func TestLockReleasedWhenSessionKilled(t *testing.T) {
	a, b := twoHosts(t)
	unlock, err := a.Lock(context.Background(), "conn-1")
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := b.Lock(short, "conn-1"); !errors.Is(err, store.ErrLockTimeout) {
		t.Fatalf("Lock while held: %v", err)
	}
	sql(t, a.pool.Config().ConnString(), `SELECT pg_terminate_backend(pid) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`)
	ctx, cancel2 := context.WithTimeout(context.Background(), time.Minute)
	defer cancel2()
	unlockB, err := b.Lock(ctx, "conn-1")
	if err != nil {
		t.Fatalf("Lock after the holder's session was killed: %v", err)
	}
	err = unlock()
	if err == nil || !strings.Contains(err.Error(), "lost") || !strings.Contains(err.Error(), `"conn-1"`) {
		t.Errorf("unlock of a lost lock: %v; want an error saying it was lost", err)
	}
	if err := unlockB(); err != nil {
		t.Fatal(err)
	}
	// a's pool recovers: the dead session was discarded.
	if unlockA, err := a.Lock(ctx, "conn-1"); err != nil {
		t.Errorf("Lock through the holder's store afterwards: %v", err)
	} else {
		unlockA()
	}
}

func TestMigrationsConcurrent(t *testing.T) {
	const hosts = 8
	url := pgtest.Shared(t)
	sealer := newSealer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stores := make([]*Store, hosts)
	errs := make([]error, hosts)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range hosts {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = Open(ctx, url, sealer)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("host %d: Open: %v", i, err)
			continue
		}
		defer stores[i].Close()
	}
	if t.Failed() {
		return
	}
	applied := column(t, url, `SELECT version || ' ' || name FROM connector_schema_migrations ORDER BY version`)
	if strings.Join(applied, ",") != "1 connections,2 history" {
		t.Errorf("schema_migrations = %v; want each migration once, in order", applied)
	}
	if _, err := stores[0].Put(ctx, record("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := stores[hosts-1].Get(ctx, "x"); err != nil {
		t.Fatal(err)
	}
}

// A database left by an older build gets the missing steps; one migrated by
// a newer build is refused.
func TestMigrationsStepwiseAndNewer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url := pgtest.Shared(t)
	sealer := newSealer(t)
	old, err := open(ctx, url, sealer, migrations[:1])
	if err != nil {
		t.Fatal(err)
	}
	old.Close()
	if got := column(t, url, `SELECT version::text FROM connector_schema_migrations`); strings.Join(got, ",") != "1" {
		t.Fatalf("after the old build: %v", got)
	}
	s := openStore(t, url, sealer)
	if got := column(t, url, `SELECT version::text FROM connector_schema_migrations ORDER BY 1`); strings.Join(got, ",") != "1,2" {
		t.Fatalf("after this build: %v", got)
	}
	if _, err := s.Put(ctx, record("x")); err != nil {
		t.Fatal(err)
	}
	sql(t, url, `INSERT INTO connector_schema_migrations (version, name) VALUES (3, 'from the future')`)
	_, err = Open(ctx, url, sealer)
	if err == nil || !strings.Contains(err.Error(), "schema version 3, newer than this build knows (2); upgrade the connector") {
		t.Errorf("Open of a newer schema: %v", err)
	}
}

func TestOpenErrorsHidePassword(t *testing.T) {
	const pw = "Pa55-w0rd-never-shown"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sealer := newSealer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	for _, tc := range []struct {
		name, url, want string
	}{
		{"unreachable", fmt.Sprintf("postgres://someone:%s@127.0.0.1:%d/db?sslmode=disable", pw, closedPort),
			fmt.Sprintf("postgres://someone@127.0.0.1:%d/db", closedPort)},
		{"password in the query", fmt.Sprintf("postgres://someone@127.0.0.1:%d/db?sslmode=disable&password=%s", closedPort, pw), "running and reachable"},
		{"bad port", "postgres://someone:" + pw + "@127.0.0.1:99999999/db", "not a PostgreSQL URL"},
		{"keyword form", "host=127.0.0.1 port=" + strconv.Itoa(closedPort) + " password=" + pw + " sslmode=disable", "running and reachable"},
		{"bad keyword form", "host=127.0.0.1 password='" + pw + "' port=x", "not a PostgreSQL URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(ctx, tc.url, sealer)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if msg := err.Error(); strings.Contains(msg, pw) || !strings.Contains(msg, tc.want) {
				t.Errorf("error %q: want it to say %q and not show the password", msg, tc.want)
			}
		})
	}
	if _, err := Open(ctx, "", sealer); err == nil {
		t.Error("Open with no URL succeeded")
	}
	if _, err := Open(ctx, "postgres://x@127.0.0.1/db", nil); err == nil {
		t.Error("Open with no sealer succeeded")
	}
}

func TestStringHidesPassword(t *testing.T) {
	const pw = "Pa55-w0rd-never-shown"
	url := pgtest.Shared(t)
	// The test server trusts every local connection, so any password works.
	withPW := strings.Replace(url, "postgres@", "postgres:"+pw+"@", 1)
	s := openStore(t, withPW, newSealer(t))
	r, err := s.Put(context.Background(), record("conn-1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{s.String(), fmt.Sprint(s), fmt.Sprintf("%+v", r), fmt.Sprintf("%#v", r)} {
		for _, secret := range append(secretsOf(r), pw) {
			if strings.Contains(out, secret) {
				t.Errorf("%q contains a secret", out)
			}
		}
	}
	if !strings.HasPrefix(s.String(), "pgstore(postgres://postgres@127.0.0.1:") {
		t.Errorf("String = %q", s.String())
	}
	if !IsURL("PostgreSQL://h/db") || !IsURL("postgres://h") || IsURL("/var/lib/store.json") {
		t.Error("IsURL")
	}
}

func TestClosed(t *testing.T) {
	ctx := context.Background()
	a, b := twoHosts(t)
	if _, err := a.Lock(ctx, "held"); err != nil {
		t.Fatal(err)
	}
	// A waiter of a's is ended by Close, not left waiting.
	waited := make(chan error, 1)
	go func() { _, err := a.Lock(ctx, "held"); waited <- err }()
	time.Sleep(50 * time.Millisecond)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Lock waiting during Close: %v; want an error saying the store is closed", err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	_, getErr := a.Get(ctx, "x")
	_, putErr := a.Put(ctx, record("x"))
	_, listErr := a.List(ctx)
	_, lockErr := a.Lock(ctx, "x")
	_, histErr := a.History(ctx, "x")
	for _, err := range []error{getErr, putErr, listErr, lockErr, histErr, a.Delete(ctx, "x")} {
		if err == nil || !strings.Contains(err.Error(), "closed") {
			t.Errorf("use after Close: %v; want an error saying the store is closed", err)
		}
	}
	// Close ended the session holding a's lock, which released it.
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	unlock, err := b.Lock(lctx, "held")
	if err != nil {
		t.Fatalf("Lock after the holder's store closed: %v", err)
	}
	unlock()
	if _, err := b.Put(ctx, store.Record{}); err == nil {
		t.Error("Put of a record without an id succeeded")
	}
}
