package pgstore

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/connector-engine/connector/connector/internal/pgtest"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

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
	return openStore(t, url, storetest.NewSealer(t)), url
}

// urlOf is the URL s was opened with, which reaches the same database.
func urlOf(s store.Store) string { return s.(*Store).pool.Config().ConnString() }

// TestContract runs the tests every store.Store passes (storetest), each on
// a new database of the shared server; a second store on the same database
// stands for another host. LockReleasedWhenHolderKilled and
// MultiProcessIncrements run this test binary again as other processes.
func TestContract(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		Open: func(t testing.TB, sealer *store.Sealer) store.Store {
			return openStore(t, pgtest.Shared(t), sealer)
		},
		Location: urlOf,
		Reopen: func(t testing.TB, url string, sealer *store.Sealer) store.Store {
			return openStore(t, url, sealer)
		},
		Where: func(s store.Store) string { return s.(*Store).desc },
		Dump: func(t testing.TB, s store.Store) string {
			return strings.Join(append(column(t, urlOf(s), `SELECT t::text FROM connector_connections t ORDER BY id`),
				column(t, urlOf(s), `SELECT t::text FROM connector_history t ORDER BY id, version`)...), "\n")
		},
		TimePrecision:   time.Microsecond,
		LockTimeoutSays: "another worker",
		Tamper: []storetest.Tampering{
			{Name: "sealed token altered", Victim: "conn-a", Untouched: "conn-b", Do: sqlTampering(
				`UPDATE connector_connections SET token_sealed = set_byte(token_sealed, 19, get_byte(token_sealed, 19) # 64) WHERE id = 'conn-a'`)},
			{Name: "sealed tokens swapped between connections", Victim: "conn-a", Untouched: "conn-b", Do: sqlTampering(
				`UPDATE connector_connections a SET token_sealed = b.token_sealed
				FROM connector_connections b WHERE a.id = 'conn-a' AND b.id = 'conn-b'`)},
			{Name: "binding altered", Victim: "conn-a", Untouched: "conn-b", Do: sqlTampering(
				`UPDATE connector_connections SET binding = jsonb_set(binding, '{api_origin}', '"https://evil.example"') WHERE id = 'conn-a'`)},
			{Name: "binding stripped", Victim: "conn-a", Untouched: "conn-b", Do: sqlTampering(
				`UPDATE connector_connections SET binding = NULL WHERE id = 'conn-a'`)},
			{Name: "binding not a binding", Victim: "conn-a", Untouched: "conn-b", Do: sqlTampering(
				`UPDATE connector_connections SET binding = '[1]' WHERE id = 'conn-a'`)},
			{Name: "sealed token truncated", Victim: "conn-a", Untouched: "conn-b", Do: sqlTampering(
				`UPDATE connector_connections SET token_sealed = substring(token_sealed from 1 for 10) WHERE id = 'conn-a'`)},
		},
	})
}

// sqlTampering makes a storetest tampering of a statement run outside the store.
func sqlTampering(query string) func(testing.TB, store.Store) {
	return func(t testing.TB, s store.Store) { sql(t, urlOf(s), query) }
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

func TestRowsHoldNoSecrets(t *testing.T) {
	ctx := context.Background()
	s, url := newStore(t)
	var secrets []string
	for _, id := range []string{"conn-b", "conn-a", "conn-B"} {
		r := storetest.Record(id)
		r.Reason = "reason-" + id
		if _, err := s.Put(ctx, r); err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, storetest.Secrets(r)...)
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
}

func TestHistory(t *testing.T) {
	defer func(n int) { historyKept = n }(historyKept)
	historyKept = 3
	ctx := context.Background()
	s, url := newStore(t)
	r := storetest.Record("conn-1")
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
	// Delete takes the connection's history with it.
	if err := s.Delete(ctx, "conn-1"); err != nil {
		t.Fatal(err)
	}
	if h, err := s.History(ctx, "conn-1"); err != nil || len(h) != 0 {
		t.Errorf("History after Delete = %v, %v; want none", h, err)
	}
}

// A Put whose history row cannot be written writes nothing: both rows go in
// one statement.
func TestPutAllOrNothing(t *testing.T) {
	ctx := context.Background()
	s, url := newStore(t)
	r, err := s.Put(ctx, storetest.Record("conn-1"))
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

// twoHosts opens two stores with separate pools on one database.
func twoHosts(t *testing.T) (a, b *Store) {
	t.Helper()
	a, url := newStore(t)
	return a, openStore(t, url, a.sealer)
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
	sealer := storetest.NewSealer(t)
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
	if strings.Join(applied, ",") != "1 connections,2 history,3 binding" {
		t.Errorf("schema_migrations = %v; want each migration once, in order", applied)
	}
	if _, err := stores[0].Put(ctx, storetest.Record("x")); err != nil {
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
	sealer := storetest.NewSealer(t)
	old, err := open(ctx, url, sealer, migrations[:1])
	if err != nil {
		t.Fatal(err)
	}
	old.Close()
	if got := column(t, url, `SELECT version::text FROM connector_schema_migrations`); strings.Join(got, ",") != "1" {
		t.Fatalf("after the old build: %v", got)
	}
	// A row as a build before bindings wrote it: no binding column, the
	// token sealed with the id alone.
	legacy := storetest.Record("legacy")
	sealed, err := sealer.SealToken(legacy.ID, store.Binding{}, legacy.Token)
	if err != nil {
		t.Fatal(err)
	}
	sql(t, url, `INSERT INTO connector_connections (id, definition, status, reason, version, updated_at, token_sealed) VALUES ($1, 'procore', 'connected', '', 1, now(), $2)`, legacy.ID, sealed)
	s := openStore(t, url, sealer)
	if got := column(t, url, `SELECT version::text FROM connector_schema_migrations ORDER BY 1`); strings.Join(got, ",") != "1,2,3" {
		t.Fatalf("after this build: %v", got)
	}
	got, err := s.Get(ctx, legacy.ID)
	if err != nil || !got.Binding.IsZero() || got.Token.RefreshToken != legacy.Token.RefreshToken {
		t.Fatalf("the row written before bindings: %+v, %v; want it unbound with its token", got, err)
	}
	if _, err := s.Put(ctx, storetest.Record("x")); err != nil {
		t.Fatal(err)
	}
	sql(t, url, `INSERT INTO connector_schema_migrations (version, name) VALUES (4, 'from the future')`)
	_, err = Open(ctx, url, sealer)
	if err == nil || !strings.Contains(err.Error(), "schema version 4, newer than this build knows (3); upgrade the connector") {
		t.Errorf("Open of a newer schema: %v", err)
	}
}

func TestOpenErrorsHidePassword(t *testing.T) {
	const pw = "Pa55-w0rd-never-shown"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sealer := storetest.NewSealer(t)
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
	s := openStore(t, withPW, storetest.NewSealer(t))
	r, err := s.Put(context.Background(), storetest.Record("conn-1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{s.String(), fmt.Sprint(s), fmt.Sprintf("%+v", r), fmt.Sprintf("%#v", r)} {
		for _, secret := range append(storetest.Secrets(r), pw) {
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

// Close ends the store's Lock waits and releases the locks it holds (their
// sessions end), and History is refused like every other call (storetest's
// Closed covers those).
func TestCloseEndsLocks(t *testing.T) {
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
	if _, err := a.History(ctx, "x"); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("History after Close: %v; want an error saying the store is closed", err)
	}
	// Close ended the session holding a's lock, which released it.
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	unlock, err := b.Lock(lctx, "held")
	if err != nil {
		t.Fatalf("Lock after the holder's store closed: %v", err)
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
}
