package sqlitestore

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/store/storetest"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// The helper of TestMigrationsConcurrent: this test binary run again, which
// opens the store at $SQLITESTORE_OPEN when its standard input says "go".
const envOpenHelper = "SQLITESTORE_OPEN"

// Processes and goroutines that open a new database at once apply every
// migration exactly once, and all of them end up with a working store.
func TestMigrationsConcurrent(t *testing.T) {
	if path := os.Getenv(envOpenHelper); path != "" {
		openHelper(path)
	}
	const procs, goroutines = 4, 4
	path := newPath(t)
	key, sealer := newKey(t)

	cmds := make([]*exec.Cmd, procs)
	outs := make([]bytes.Buffer, procs)
	stdins := make([]*bufio.Writer, procs)
	for i := range cmds {
		cmd := exec.Command(os.Args[0], "-test.run=^TestMigrationsConcurrent$", "-test.count=1", "-test.timeout=2m")
		cmd.Env = append(os.Environ(), envOpenHelper+"="+path, store.EnvSecretKey+"="+key, "SQLITESTORE_ID=proc-"+strconv.Itoa(i))
		cmd.Stdout, cmd.Stderr = &outs[i], &outs[i]
		w, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[i], stdins[i] = cmd, bufio.NewWriter(w)
		defer w.Close()
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, goroutines)
	for i := range goroutines {
		wg.Go(func() {
			<-start
			var s *Store
			if s, errs[i] = Open(path, sealer); errs[i] == nil {
				_, errs[i] = s.Put(context.Background(), storetest.Record("goroutine-"+strconv.Itoa(i)))
				s.Close()
			}
		})
	}
	// The helpers are started (the binary loaded); now everyone goes.
	for _, w := range stdins {
		w.WriteString("go\n")
		w.Flush()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("goroutine %d: %v", i, err)
		}
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("process %d: %v\n%s", i, err, outs[i].String())
		}
	}
	if t.Failed() {
		return
	}
	applied := column(t, path, `SELECT version || ' ' || name FROM connector_schema_migrations ORDER BY version`)
	if strings.Join(applied, ",") != "1 connections,2 history,3 binding" {
		t.Errorf("schema_migrations = %v; want each migration once, in order", applied)
	}
	list, err := openStore(t, path, sealer).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != procs+goroutines {
		t.Errorf("%d records, want one from each of %d openers", len(list), procs+goroutines)
	}
}

func openHelper(path string) {
	line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
	err := func() error {
		if line != "go\n" {
			return fmt.Errorf("told %q", line)
		}
		sealer, err := store.LoadSealer("")
		if err != nil {
			return err
		}
		s, err := Open(path, sealer)
		if err != nil {
			return err
		}
		defer s.Close()
		_, err = s.Put(context.Background(), storetest.Record(os.Getenv("SQLITESTORE_ID")))
		return err
	}()
	if err != nil {
		fmt.Fprintln(os.Stderr, "open helper:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// newKey returns a random key as CONNECTOR_SECRET_KEY takes it, and its
// Sealer, for helper processes.
func newKey(t *testing.T) (string, *store.Sealer) {
	t.Helper()
	raw := make([]byte, store.KeySize)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	s, err := store.NewSealer(raw)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(raw), s
}

// A database left by an older build gets the missing steps; one migrated by
// a newer build is refused.
func TestMigrationsStepwiseAndNewer(t *testing.T) {
	path := newPath(t)
	sealer := storetest.NewSealer(t)
	// What a build that knew only the first step left (this build's
	// statements need the later columns, so it cannot play that build).
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	execSQL(t, path, `CREATE TABLE connector_schema_migrations (version INTEGER NOT NULL PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))) STRICT`)
	execSQL(t, path, migrations[0].sql)
	execSQL(t, path, `INSERT INTO connector_schema_migrations (version, name) VALUES (1, 'connections')`)
	// A row as that build wrote it: no binding column, the token sealed
	// with the id alone.
	legacy := storetest.Record("legacy")
	legacySealed, err := sealer.SealToken(legacy.ID, store.Binding{}, legacy.Token)
	if err != nil {
		t.Fatal(err)
	}
	execSQL(t, path, `INSERT INTO connector_connections (id, definition, status, reason, version, updated_at, token_sealed)
		VALUES (?, 'procore', 'connected', '', 1, '2026-01-02T03:04:05.000000000Z', ?)`, legacy.ID, legacySealed)
	if got := column(t, path, `SELECT version FROM connector_schema_migrations`); strings.Join(got, ",") != "1" {
		t.Fatalf("after the old build: %v", got)
	}
	s := openStore(t, path, sealer)
	if got := column(t, path, `SELECT version FROM connector_schema_migrations ORDER BY 1`); strings.Join(got, ",") != "1,2,3" {
		t.Fatalf("after this build: %v", got)
	}
	got, err := s.Get(context.Background(), legacy.ID)
	if err != nil || !got.Binding.IsZero() || got.Token.RefreshToken != legacy.Token.RefreshToken {
		t.Fatalf("the row written before bindings: %+v, %v; want it unbound with its token", got, err)
	}
	if _, err := s.Put(context.Background(), storetest.Record("x")); err != nil {
		t.Fatal(err)
	}
	execSQL(t, path, `INSERT INTO connector_schema_migrations (version, name) VALUES (4, 'from the future')`)
	_, err = Open(path, sealer)
	if err == nil || !strings.Contains(err.Error(), path+" are at schema version 4, newer than this build knows (3); upgrade the connector") {
		t.Errorf("Open of a newer schema: %v", err)
	}
}

// A file that is not the store's database, or a database damaged, is
// refused by Open (or, for damage Open cannot see, by the first read) with
// a message that says what is wrong, names the file and says what to do;
// the file is left as it was.
func TestDamagedOrForeignFile(t *testing.T) {
	sealer := storetest.NewSealer(t)
	var golden strings.Builder
	for _, tc := range []struct {
		name    string
		make    func(t *testing.T, path string) // the file to open
		corrupt bool                            // the error matches ErrCorrupt
		want    string
		// Open may have turned the database to WAL mode (a change of
		// its header, not of its content); then its tables are compared.
		tables bool
	}{
		{"text file", writeFile("these are notes, not a database\n"), true, "not an SQLite database", false},
		{"filestore's JSON file", writeFile(`{"format": 1, "connections": []}` + strings.Repeat(" ", 600)), true, "not an SQLite database", false},
		{"damaged pages", damagedDatabase, true, "damaged", false},
		{"another program's connector_connections", func(t *testing.T, path string) {
			execSQL(t, path, `CREATE TABLE connector_connections (name TEXT, value TEXT)`)
		}, false, "another program's", false}, // refused before WAL mode touches its header
		{"a directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}, false, "is a directory, not a database file; name a file in it", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			tc.make(t, path)
			snapshot := snapshotFile
			if tc.tables {
				snapshot = func(t *testing.T, path string) string {
					return strings.Join(column(t, path, `SELECT sql FROM sqlite_schema ORDER BY name`), "\n")
				}
			}
			before := snapshot(t, path)
			s, err := Open(path, sealer)
			if err == nil {
				// Damage Open cannot see comes out at the first read.
				_, err = s.List(context.Background())
				s.Close()
			}
			if err == nil {
				t.Fatal("the file was accepted")
			}
			if errors.Is(err, ErrCorrupt) != tc.corrupt {
				t.Errorf("errors.Is(%v, ErrCorrupt) = %v, want %v", err, !tc.corrupt, tc.corrupt)
			}
			msg := err.Error()
			if !strings.Contains(msg, path) || !strings.Contains(msg, tc.want) {
				t.Errorf("error %q should name %s and say %q", msg, path, tc.want)
			}
			if after := snapshot(t, path); after != before {
				t.Error("Open changed the file")
			}
			fmt.Fprintf(&golden, "%s:\n\t%s\n", tc.name, strings.ReplaceAll(msg, path, "$DB"))
		})
	}
	checkGolden(t, filepath.Join("testdata", "damaged.golden"), golden.String())
}

func writeFile(content string) func(*testing.T, string) {
	return func(t *testing.T, path string) {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// damagedDatabase makes a store's database whose table pages were
// overwritten, as a disk fault or a careless copy would.
func damagedDatabase(t *testing.T, path string) {
	s, err := Open(path, storetest.NewSealer(t))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if _, err := s.Put(context.Background(), storetest.Record(fmt.Sprintf("conn-%02d", i))); err != nil {
			t.Fatal(err)
		}
	}
	s.Close() // the last connection's close moves the log into the file
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < 3*4096 {
		t.Fatalf("the database is only %d bytes", len(data))
	}
	for page := 4096; page < len(data); page += 4096 {
		data[page] = 0x42 // not a page type SQLite knows
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// snapshotFile is what the file at path holds, or says it is a directory.
func snapshotFile(t *testing.T, path string) string {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.IsDir() {
		return "directory"
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func checkGolden(t *testing.T, file, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if string(want) != got {
		t.Errorf("messages differ from %s (go test -update rewrites it):\n got:\n%s\nwant:\n%s", file, got, want)
	}
}
