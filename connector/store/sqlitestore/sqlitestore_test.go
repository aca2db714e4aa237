package sqlitestore

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/store/storetest"
)

func openStore(t testing.TB, path string, sealer *store.Sealer) *Store {
	t.Helper()
	s, err := Open(path, sealer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newPath(t testing.TB) string {
	return filepath.Join(t.TempDir(), "state", "connector.db")
}

func newTestStore(t testing.TB) *Store {
	t.Helper()
	return openStore(t, newPath(t), storetest.NewSealer(t))
}

// rawDB opens the file outside the store, as a person with the sqlite3
// shell (or another program sharing the file) would.
func rawDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func execSQL(t testing.TB, path, query string, args ...any) {
	t.Helper()
	if _, err := rawDB(t, path).Exec(query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// column reads one text column of every row of a query.
func column(t testing.TB, path, query string, args ...any) []string {
	t.Helper()
	rows, err := rawDB(t, path).Query(query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// dumpRows is every row of the store's tables, as text.
func dumpRows(t testing.TB, path string) string {
	rows := column(t, path, `SELECT concat_ws('|', id, definition, status, reason, refresh_started, version, updated_at, hex(token_sealed), binding) FROM connector_connections ORDER BY id`)
	rows = append(rows, column(t, path, `SELECT concat_ws('|', id, version, status, reason, refreshing, at) FROM connector_history ORDER BY id, version`)...)
	return strings.Join(rows, "\n")
}

// TestContract runs the tests every store.Store passes (storetest), each on
// a new database file; a second store on the same file stands for another
// process. LockReleasedWhenHolderKilled and MultiProcessIncrements run this
// test binary again as other processes.
func TestContract(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		Open: func(t testing.TB, sealer *store.Sealer) store.Store {
			return openStore(t, newPath(t), sealer)
		},
		Location: func(s store.Store) string { return s.(*Store).Path() },
		Reopen: func(t testing.TB, path string, sealer *store.Sealer) store.Store {
			return openStore(t, path, sealer)
		},
		Where:           func(s store.Store) string { return s.(*Store).Path() },
		Dump:            func(t testing.TB, s store.Store) string { return dumpRows(t, s.(*Store).Path()) },
		LockTimeoutSays: "another worker",
		Tamper: []storetest.Tampering{
			{Name: "sealed token altered", Victim: "conn-a", Untouched: "conn-b", Do: sqlTampering(
				`UPDATE connector_connections SET token_sealed = CAST(substr(token_sealed, 1, 19) ||
				CASE WHEN substr(token_sealed, 20, 1) = x'00' THEN x'01' ELSE x'00' END || substr(token_sealed, 21) AS BLOB) WHERE id = 'conn-a'`)},
			{Name: "sealed tokens swapped between connections", Victim: "conn-a", Untouched: "conn-b", Do: sqlTampering(
				`UPDATE connector_connections SET token_sealed = (SELECT token_sealed FROM connector_connections WHERE id = 'conn-b') WHERE id = 'conn-a'`)},
			{Name: "connection renamed", Victim: "conn-c", Untouched: "conn-a", Do: sqlTampering(
				`UPDATE connector_connections SET id = 'conn-c' WHERE id = 'conn-b'`)},
			{Name: "sealed token truncated", Victim: "conn-a", Untouched: "conn-b", Do: sqlTampering(
				`UPDATE connector_connections SET token_sealed = substr(token_sealed, 1, 10) WHERE id = 'conn-a'`)},
			{Name: "binding altered", Victim: "conn-a", Untouched: "conn-b", Do: sqlTampering(
				`UPDATE connector_connections SET binding = json_set(binding, '$.api_origin', 'https://evil.example') WHERE id = 'conn-a'`)},
			{Name: "binding stripped", Victim: "conn-a", Untouched: "conn-b", Do: sqlTampering(
				`UPDATE connector_connections SET binding = NULL WHERE id = 'conn-a'`)},
			{Name: "binding not a binding", Victim: "conn-a", Untouched: "conn-b", Do: sqlTampering(
				`UPDATE connector_connections SET binding = '[1]' WHERE id = 'conn-a'`)},
		},
	})
}

func sqlTampering(query string) func(testing.TB, store.Store) {
	return func(t testing.TB, s store.Store) { execSQL(t, s.(*Store).Path(), query) }
}

// The file holds no secret in clear, neither in the rows nor in its pages
// (the database and its write-ahead log), and shows what a person needs.
func TestFileHoldsNoSecrets(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	var secrets []string
	for _, id := range []string{"conn-b", "conn-a"} {
		r := storetest.Record(id)
		r.Reason = "reason-" + id
		if _, err := s.Put(ctx, r); err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, storetest.Secrets(r)...)
	}
	var raw []byte
	for _, suffix := range []string{"", "-wal"} {
		data, err := os.ReadFile(s.Path() + suffix)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		raw = append(raw, data...)
	}
	dump := dumpRows(t, s.Path())
	for _, secret := range secrets {
		for _, form := range []string{secret, base64.StdEncoding.EncodeToString([]byte(secret)), fmt.Sprintf("%X", secret)} {
			if bytes.Contains(raw, []byte(form)) || strings.Contains(dump, form) {
				t.Errorf("the database holds a secret (%q)", form)
			}
		}
	}
	for _, readable := range []string{"conn-a|procore|connected|reason-conn-a|1|", "conn-b|1|connected|reason-conn-b|0|"} {
		if !strings.Contains(dump, readable) {
			t.Errorf("the rows do not show %s in clear:\n%s", readable, dump)
		}
	}
	for _, tc := range []struct {
		path string
		mode os.FileMode
	}{
		{s.Path(), 0o600},
		{filepath.Dir(s.Path()), 0o700 | os.ModeDir},
		{s.Path() + ".locks", 0o700 | os.ModeDir},
	} {
		st, err := os.Stat(tc.path)
		if err != nil {
			t.Error(err)
			continue
		}
		if st.Mode() != tc.mode {
			t.Errorf("%s has mode %v, want %v", tc.path, st.Mode(), tc.mode)
		}
	}
	if mode := column(t, s.Path(), `PRAGMA journal_mode`); len(mode) != 1 || mode[0] != "wal" {
		t.Errorf("journal_mode = %v, want wal", mode)
	}
}

func TestHistory(t *testing.T) {
	defer func(n int) { historyKept = n }(historyKept)
	historyKept = 3
	ctx := context.Background()
	s := newTestStore(t)
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
	if err := s.Delete(ctx, "conn-1"); err != nil {
		t.Fatal(err)
	}
	if h, err := s.History(ctx, "conn-1"); err != nil || len(h) != 0 {
		t.Errorf("History after Delete = %v, %v; want none", h, err)
	}
}

// A Put whose history row cannot be written writes nothing: both rows go in
// one transaction.
func TestPutAllOrNothing(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	r, err := s.Put(ctx, storetest.Record("conn-1"))
	if err != nil {
		t.Fatal(err)
	}
	if r, err = s.Put(ctx, r); err != nil {
		t.Fatal(err)
	}
	execSQL(t, s.Path(), `CREATE TRIGGER test_refuse_v3 BEFORE INSERT ON connector_history WHEN NEW.version >= 3
		BEGIN SELECT RAISE(ABORT, 'test_refuse_v3'); END`)
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

// A program keeps its own tables in the database and gives it to New; the
// store's Close leaves the database open.
func TestNewSharesTheDatabase(t *testing.T) {
	ctx := context.Background()
	path := newPath(t)
	db, err := OpenDB(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE tenants (id TEXT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	s, err := New(db, storetest.NewSealer(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, storetest.Record("conn-1")); err != nil {
		t.Fatal(err)
	}
	if want, _ := filepath.EvalSymlinks(path); s.Path() != want && s.Path() != path {
		t.Errorf("Path = %q, want the file %q", s.Path(), path)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO tenants VALUES ('t1')`); err != nil {
		t.Errorf("the program's database after the store's Close: %v", err)
	}
	tables := column(t, path, `SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name`)
	if got := strings.Join(tables, ","); got != "connector_connections,connector_history,connector_schema_migrations,tenants" {
		t.Errorf("tables = %s", got)
	}
}

// New refuses a database without the settings the store relies on, saying
// which and how to open it.
func TestNewRefusesUnsafeSettings(t *testing.T) {
	sealer := storetest.NewSealer(t)
	path := newPath(t)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, dsn string
		want      []string
	}{
		{"plain open", path + "?_pragma=synchronous(OFF)", []string{path, "journal_mode=WAL (it is delete)", "a busy_timeout", "synchronous=FULL", "open it with sqlitestore.OpenDB"}},
		{"in memory", ":memory:", []string{"in memory", "needs a database file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := rawDB(t, tc.dsn)
			_, err := New(db, sealer)
			if err == nil {
				t.Fatal("New accepted the database")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	if _, err := New(nil, sealer); err == nil {
		t.Error("New(nil) succeeded")
	}
	db, err := OpenDB(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := New(db, nil); err == nil || !strings.Contains(err.Error(), "no sealer") {
		t.Errorf("New without a sealer: %v", err)
	}
}

func TestOpenArguments(t *testing.T) {
	if _, err := Open("", storetest.NewSealer(t)); err == nil || !strings.Contains(err.Error(), "no database file") {
		t.Errorf("Open with no path: %v", err)
	}
	if _, err := Open(newPath(t), nil); err == nil || !strings.Contains(err.Error(), "no sealer") {
		t.Errorf("Open with no sealer: %v", err)
	}
}

// Close ends the store's Lock waits and releases the locks it holds, and
// History is refused like every other call (storetest's Closed covers those).
func TestCloseEndsLocks(t *testing.T) {
	ctx := context.Background()
	a := newTestStore(t)
	b := openStore(t, a.Path(), a.sealer)
	if _, err := a.Lock(ctx, "held"); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { _, err := a.Lock(ctx, "held"); waited <- err }()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Lock waiting during Close: %v; want an error saying the store is closed", err)
	}
	if _, err := a.History(ctx, "x"); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("History after Close: %v; want an error saying the store is closed", err)
	}
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

func TestURL(t *testing.T) {
	for _, tc := range []struct {
		in    string
		isURL bool
		path  string
		err   []string // what the error says: what is wrong, and how to write one
	}{
		{"sqlite:///var/lib/connector/state.db", true, "/var/lib/connector/state.db", nil},
		{"SQLite://state.db", true, "state.db", nil},
		{"sqlite://./dir/x.db", true, "./dir/x.db", nil},
		{"sqlite://", true, "", []string{"names no file", "e.g. sqlite:///var/lib/connector/state.db"}},
		{"sqlite:///x.db?mode=ro", true, "", []string{"has a query or fragment", "the database file's path only"}},
		{"/var/lib/state.db", false, "", []string{"not an SQLite store URL", "e.g. sqlite:///var/lib/connector/state.db"}},
		{"postgres://db/x", false, "", []string{"not an SQLite store URL"}},
		{"sqlite:/x.db", false, "", []string{"not an SQLite store URL"}},
	} {
		t.Run(tc.in, func(t *testing.T) {
			if got := IsURL(tc.in); got != tc.isURL {
				t.Errorf("IsURL = %v, want %v", got, tc.isURL)
			}
			path, err := PathFromURL(tc.in)
			if tc.err != nil {
				for _, w := range tc.err {
					if err == nil || !strings.Contains(err.Error(), w) {
						t.Errorf("PathFromURL = %q, %v; want an error saying %q", path, err, w)
					}
				}
				return
			}
			if err != nil || path != tc.path {
				t.Errorf("PathFromURL = %q, %v; want %q", path, err, tc.path)
			}
		})
	}
}

// A path with the characters that start a URI's query or fragment, or an
// escape, opens that very file.
func TestPathCharacters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "odd ?name#with%41.db")
	s := openStore(t, path, storetest.NewSealer(t))
	if _, err := s.Put(context.Background(), storetest.Record("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("the database is not at %q: %v", path, err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) > 4 { // file, -wal, -shm, .locks
		t.Errorf("files made: %v", entries)
	}
	if s.String() != "sqlitestore("+path+")" {
		t.Errorf("String = %q", s.String())
	}
}

// A Put whose context ends while it waits for another writer of this store
// gives the context's error and writes nothing; a connection's lock file
// is private to the user.
func TestPutCanceledWhileWaiting(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	r, err := s.Put(ctx, storetest.Record("conn-1"))
	if err != nil {
		t.Fatal(err)
	}
	s.writing <- struct{}{} // another goroutine's write in progress
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	r.Token.RefreshToken = "REFRESH-never-stored"
	_, err = s.Put(short, r)
	<-s.writing
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "nothing was written") {
		t.Errorf("Put while another write holds the store: %v; want DeadlineExceeded saying nothing was written", err)
	}
	if got, err := s.Get(ctx, "conn-1"); err != nil || got.Version != 1 || got.Token.RefreshToken == "REFRESH-never-stored" {
		t.Errorf("after the canceled Put: version %d, %v", got.Version, err)
	}

	unlock, err := s.Lock(ctx, "conn-1")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	files, err := filepath.Glob(filepath.Join(s.Path()+".locks", "*.lock"))
	if err != nil || len(files) != 1 {
		t.Fatalf("lock files = %v, %v; want one", files, err)
	}
	st, err := os.Stat(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode() != 0o600 {
		t.Errorf("lock file mode %v, want 0600", st.Mode())
	}
}
