package filestore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/token"
)

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

func openStore(t testing.TB, path string, sealer *store.Sealer) *Store {
	t.Helper()
	s, err := Open(path, sealer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newStore(t testing.TB) *Store {
	t.Helper()
	return openStore(t, filepath.Join(t.TempDir(), "state", "store.json"), newSealer(t))
}

// record makes a connection record whose secrets are distinctive enough to
// search the store file for.
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
	s := newStore(t)

	in := record("conn-1")
	in.RefreshStarted = time.Now() // has a monotonic reading and a local zone
	put, err := s.Put(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if put.Version != 1 {
		t.Errorf("first Put: Version = %d, want 1", put.Version)
	}
	if put.UpdatedAt.IsZero() {
		t.Error("Put did not set UpdatedAt")
	}
	got, err := s.Get(ctx, "conn-1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, put) {
		t.Errorf("Get after Put:\n got %+v\nwant %+v", got, put)
	}
	if !got.Token.Expiry.Equal(in.Token.Expiry) || !got.RefreshStarted.Equal(in.RefreshStarted) {
		t.Error("times changed instant in the round trip")
	}

	got.Status = store.StatusNeedsReauth
	got.Reason = "the refresh token was revoked"
	got.RefreshStarted = time.Time{}
	got.Token.AccessToken = "ACCESS-rotated"
	put2, err := s.Put(ctx, got)
	if err != nil {
		t.Fatal(err)
	}
	if put2.Version != 2 {
		t.Errorf("second Put: Version = %d, want 2", put2.Version)
	}

	// Another Store on the same path (another process, or the next run)
	// sees the same record.
	other := openStore(t, s.Path(), s.sealer)
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
	s := newStore(t)
	_, err := s.Get(context.Background(), "nope")
	if !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("Get of a missing record: %v; want ErrNotFound naming it", err)
	}
	if list, err := s.List(context.Background()); err != nil || len(list) != 0 {
		t.Errorf("List of a new store = %v, %v; want empty", list, err)
	}
}

func TestFileOnDisk(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	var secrets []string
	for _, id := range []string{"conn-b", "conn-a"} {
		r := record(id)
		r.Reason = "reason-" + id
		if _, err := s.Put(ctx, r); err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, secretsOf(r)...)
	}
	data, err := os.ReadFile(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range secrets {
		for _, form := range []string{secret, base64.StdEncoding.EncodeToString([]byte(secret))} {
			if bytes.Contains(data, []byte(form)) {
				t.Errorf("the store file contains a secret (%q)", form)
			}
		}
	}
	for _, readable := range []string{`"id": "conn-a"`, `"definition": "procore"`, `"status": "connected"`, `"reason": "reason-conn-b"`, `"version": 1`, `"updated_at"`} {
		if !bytes.Contains(data, []byte(readable)) {
			t.Errorf("the store file does not show %s in clear:\n%s", readable, data)
		}
	}
	if bytes.Index(data, []byte("conn-a")) > bytes.Index(data, []byte("conn-b")) {
		t.Error("records are not ordered by id in the file")
	}

	for _, tc := range []struct {
		path string
		mode os.FileMode
	}{
		{s.Path(), 0o600},
		{filepath.Dir(s.Path()), 0o700 | os.ModeDir},
		{s.Path() + ".lock", 0o600},
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
	if leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(s.Path()), ".*")); len(leftovers) > 0 {
		t.Errorf("temporary files left behind: %v", leftovers)
	}
}

// editFile rewrites the store file through its decoded form, as an attacker
// or a careless hand with write access could.
func editFile(t *testing.T, path string, edit func(*fileData)) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f fileData
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	edit(&f)
	out, err := encodeFile(&f)
	if err != nil {
		t.Fatal(err)
	}
	replaceFile(t, path, out)
}

// replaceFile puts data at path by rename, as editors do. (An in-place edit
// that keeps the size, within one tick of the file system clock of the
// store's last read, would go unseen by the read cache; see snapshot.)
func replaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".edit"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestTamperingDetected(t *testing.T) {
	for _, tc := range []struct {
		name   string
		edit   func(*fileData)
		victim string // the record that must fail to open
	}{
		{"sealed token altered", func(f *fileData) {
			f.Connections[0].SealedToken[20] ^= 0x40
		}, "conn-a"},
		{"sealed tokens swapped between connections", func(f *fileData) {
			a, b := &f.Connections[0], &f.Connections[1]
			a.SealedToken, b.SealedToken = b.SealedToken, a.SealedToken
		}, "conn-a"},
		{"connection renamed", func(f *fileData) {
			f.Connections[1].ID = "conn-c"
		}, "conn-c"},
		{"sealed token truncated", func(f *fileData) {
			f.Connections[0].SealedToken = f.Connections[0].SealedToken[:10]
		}, "conn-a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s := newStore(t)
			var secrets []string
			for _, id := range []string{"conn-a", "conn-b"} {
				r := record(id)
				if _, err := s.Put(ctx, r); err != nil {
					t.Fatal(err)
				}
				secrets = append(secrets, secretsOf(r)...)
			}
			editFile(t, s.Path(), tc.edit)

			_, getErr := s.Get(ctx, tc.victim)
			_, listErr := s.List(ctx)
			for _, err := range []error{getErr, listErr} {
				if !errors.Is(err, store.ErrUnseal) {
					t.Fatalf("err = %v; want one wrapping store.ErrUnseal", err)
				}
				msg := err.Error()
				for _, want := range []string{`"` + tc.victim + `"`, s.Path(), "altered"} {
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
		})
	}
}

func TestWrongKey(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "store.json")
	r := record("conn-1")
	if _, err := openStore(t, path, newSealer(t)).Put(ctx, r); err != nil {
		t.Fatal(err)
	}

	key := make([]byte, store.KeySize)
	rand.Read(key)
	t.Setenv(store.EnvSecretKey, base64.StdEncoding.EncodeToString(key))
	wrong, err := store.LoadSealer("")
	if err != nil {
		t.Fatal(err)
	}
	s := openStore(t, path, wrong)
	_, err = s.Get(ctx, "conn-1")
	if !errors.Is(err, store.ErrUnseal) {
		t.Fatalf("Get with the wrong key: %v; want ErrUnseal", err)
	}
	msg := err.Error()
	for _, want := range []string{`"conn-1"`, path, "the key in " + store.EnvSecretKey, "differs from the key it was written with"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	for _, secret := range secretsOf(r) {
		if strings.Contains(msg, secret) {
			t.Errorf("error %q contains a secret", msg)
		}
	}
	if _, err := s.List(ctx); !errors.Is(err, store.ErrUnseal) {
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
			s := newStore(t)
			r := record("conn")
			for range tc.stored {
				var err error
				if r, err = s.Put(ctx, r); err != nil {
					t.Fatal(err)
				}
			}
			before, _ := os.ReadFile(s.Path())
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
			if !strings.Contains(err.Error(), `"conn"`) {
				t.Errorf("error %q does not name the connection", err)
			}
			after, _ := os.ReadFile(s.Path())
			if !bytes.Equal(before, after) {
				t.Error("a conflicting Put changed the file")
			}
		})
	}
}

func TestDelete(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
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

func TestDamagedFile(t *testing.T) {
	sealer := newSealer(t)
	good := record("conn-1")
	goodSealed, err := sealer.SealToken(good.ID, good.Token)
	if err != nil {
		t.Fatal(err)
	}
	sealedJSON, _ := json.Marshal(goodSealed)
	for _, tc := range []struct {
		name, content, want string
		corrupt             bool
	}{
		{"empty file", "", "the file is empty", true},
		{"not JSON", "hello", "invalid JSON at byte", true},
		{"torn JSON", `{"format": 1, "connections": [{"id": "conn-1", "tok`, "invalid JSON at byte", true},
		{"wrong type", `{"format": "one"}`, `field "format" has the wrong type`, true},
		{"no format", `{"connections": []}`, "no format number", true},
		{"a JSON array", `[1, 2]`, "field", true},
		{"record without id", `{"format": 1, "connections": [{"token_sealed": ` + string(sealedJSON) + `}]}`, "has no id", true},
		{"record twice", `{"format": 1, "connections": [{"id": "a", "token_sealed": ` + string(sealedJSON) + `}, {"id": "a", "token_sealed": ` + string(sealedJSON) + `}]}`, `"a" appears twice`, true},
		{"record without token", `{"format": 1, "connections": [{"id": "a"}]}`, `"a" has no sealed token`, true},
		{"newer format", `{"format": 2, "connections": []}`, "newer connector", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "store.json")

			// A store opened while the file was fine meets the damage later.
			early := openStore(t, path, sealer)
			if _, err := early.Put(ctx, good); err != nil {
				t.Fatal(err)
			}
			replaceFile(t, path, []byte(tc.content))

			_, openErr := Open(path, sealer)
			_, getErr := early.Get(ctx, "conn-1")
			_, putErr := early.Put(ctx, record("conn-2"))
			delErr := early.Delete(ctx, "conn-1")
			for _, err := range []error{openErr, getErr, putErr, delErr} {
				if err == nil {
					t.Fatal("a damaged file was accepted")
				}
				if errors.Is(err, ErrCorrupt) != tc.corrupt {
					t.Errorf("errors.Is(%v, ErrCorrupt) = %v, want %v", err, !tc.corrupt, tc.corrupt)
				}
				msg := err.Error()
				if !strings.Contains(msg, path) || !strings.Contains(msg, tc.want) {
					t.Errorf("error %q should name %s and say %q", msg, path, tc.want)
				}
				if tc.corrupt && !strings.Contains(msg, "move it aside") {
					t.Errorf("error %q does not say what to do", msg)
				}
			}
			if after, _ := os.ReadFile(path); string(after) != tc.content {
				t.Error("the damaged file was rewritten")
			}
		})
	}
}

func TestCrashLeftoversRemoved(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	want, err := s.Put(ctx, record("conn-1"))
	if err != nil {
		t.Fatal(err)
	}
	// What a writer that died between creating and renaming its temporary
	// file leaves: a torn file beside an intact store.
	torn := filepath.Join(filepath.Dir(s.Path()), ".store.json.tmp-12345")
	if err := os.WriteFile(torn, []byte(`{"format": 1, "conne`), 0o600); err != nil {
		t.Fatal(err)
	}
	s2 := openStore(t, s.Path(), s.sealer)
	if _, err := os.Stat(torn); !os.IsNotExist(err) {
		t.Errorf("Open left the crashed writer's temporary file (%v)", err)
	}
	if got, err := s2.Get(ctx, "conn-1"); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Get = %+v, %v; want %+v", got, err, want)
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

func TestConcurrentPutsRetryOnConflict(t *testing.T) {
	const workers, each = 8, 25
	ctx := context.Background()
	s := newStore(t)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	var conflicts sync.Map
	for w := range workers {
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
	if n, v := counter(t, s, "counter"); n != workers*each || v != workers*each {
		t.Errorf("count = %d at version %d; want %d (an update was lost)", n, v, workers*each)
	}
}

func TestLockExcludesGoroutines(t *testing.T) {
	const workers, each = 8, 25
	ctx := context.Background()
	s := newStore(t)
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for range workers {
		wg.Go(func() {
			for range each {
				unlock, err := s.Lock(ctx, "counter")
				if err != nil {
					errs <- err
					return
				}
				// Under the lock there must be no conflict to retry.
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
	if n, _ := counter(t, s, "counter"); n != workers*each {
		t.Errorf("count = %d, want %d", n, workers*each)
	}
}

func TestLockTimeout(t *testing.T) {
	s := newStore(t)
	unlock, err := s.Lock(context.Background(), "conn-1")
	if err != nil {
		t.Fatal(err)
	}

	// Another id is not blocked.
	unlockOther, err := s.Lock(context.Background(), "conn-2")
	if err != nil {
		t.Fatalf("Lock of another connection: %v", err)
	}
	unlockOther()

	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	deadline, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	for _, tc := range []struct {
		name  string
		ctx   context.Context
		cause error
	}{
		{"deadline", deadline, context.DeadlineExceeded},
		{"canceled", canceled, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Lock(tc.ctx, "conn-1")
			if !errors.Is(err, store.ErrLockTimeout) || !errors.Is(err, tc.cause) {
				t.Fatalf("Lock of a held connection: %v; want ErrLockTimeout and %v", err, tc.cause)
			}
			if !strings.Contains(err.Error(), `"conn-1"`) {
				t.Errorf("error %q does not name the connection", err)
			}
		})
	}

	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	if err := unlock(); err != nil {
		t.Errorf("second unlock: %v", err)
	}
	again, err := s.Lock(context.Background(), "conn-1")
	if err != nil {
		t.Fatalf("Lock after unlock: %v", err)
	}
	again()
}

func TestStoreLockHonoursContext(t *testing.T) {
	s := newStore(t)
	// Hold the store lock as another writer would.
	f, err := openLockFile(s.lockPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if busy, err := tryLock(f); busy || err != nil {
		t.Fatalf("tryLock = %v, %v", busy, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.Put(ctx, record("conn-1")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Put while the store lock is held: %v; want DeadlineExceeded", err)
	}
	if err := s.Delete(ctx, "conn-1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Delete while the store lock is held: %v; want DeadlineExceeded", err)
	}
	// Readers do not take the lock.
	if _, err := s.List(context.Background()); err != nil {
		t.Errorf("List while the store lock is held: %v", err)
	}
}

func TestClosed(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, getErr := s.Get(ctx, "x")
	_, putErr := s.Put(ctx, record("x"))
	_, listErr := s.List(ctx)
	_, lockErr := s.Lock(ctx, "x")
	for _, err := range []error{getErr, putErr, listErr, lockErr, s.Delete(ctx, "x")} {
		if err == nil || !strings.Contains(err.Error(), "closed") {
			t.Errorf("use after Close: %v; want an error saying the store is closed", err)
		}
	}
}

func TestOpenArguments(t *testing.T) {
	if _, err := Open("", newSealer(t)); err == nil {
		t.Error("Open with no path succeeded")
	}
	if _, err := Open(filepath.Join(t.TempDir(), "s.json"), nil); err == nil {
		t.Error("Open with no sealer succeeded")
	}
	s := newStore(t)
	if _, err := s.Put(context.Background(), store.Record{}); err == nil {
		t.Error("Put of a record without an id succeeded")
	}
}

func TestDefaultPath(t *testing.T) {
	home := t.TempDir()
	for _, tc := range []struct {
		name, store, xdg, want string
	}{
		{"explicit path", "/srv/connector/store.json", "/xdg", "/srv/connector/store.json"},
		{"postgres URL", "postgres://u:pw@db/connector", "/xdg", "/xdg/connector/store.json"},
		{"postgresql URL", "POSTGRESQL://db/connector", "", filepath.Join(home, ".local/state/connector/store.json")},
		{"XDG_STATE_HOME", "", "/xdg", "/xdg/connector/store.json"},
		{"relative XDG_STATE_HOME is ignored", "", "rel/state", filepath.Join(home, ".local/state/connector/store.json")},
		{"home", "", "", filepath.Join(home, ".local/state/connector/store.json")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("HOME", home)
			t.Setenv(EnvStore, tc.store)
			t.Setenv("XDG_STATE_HOME", tc.xdg)
			got, err := DefaultPath()
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("DefaultPath = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestStringShowsNoSecret(t *testing.T) {
	s := newStore(t)
	r, err := s.Put(context.Background(), record("conn-1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%+v", r), fmt.Sprintf("%#v", r)} {
		for _, secret := range secretsOf(r) {
			if strings.Contains(out, secret) {
				t.Errorf("%q contains a secret", out)
			}
		}
	}
}

// A Store's reads must see what other Stores (other processes) wrote since,
// though it keeps the file it last parsed.
func TestReadsSeeOtherWriters(t *testing.T) {
	ctx := context.Background()
	a := newStore(t)
	b := openStore(t, a.Path(), a.sealer)
	r, err := a.Put(ctx, record("conn-1"))
	if err != nil {
		t.Fatal(err)
	}
	for step := range 3 {
		if got, err := a.Get(ctx, "conn-1"); err != nil || got.Version != r.Version {
			t.Fatalf("step %d: Get = version %d, %v; want %d", step, got.Version, err, r.Version)
		}
		if r, err = b.Put(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := a.Get(ctx, "conn-1"); err != nil || got.Version != 4 {
		t.Fatalf("Get = version %d, %v; want 4", got.Version, err)
	}
	if err := b.Delete(ctx, "conn-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Get(ctx, "conn-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get after another Store deleted it: %v; want ErrNotFound", err)
	}
	if list, err := a.List(ctx); err != nil || len(list) != 0 {
		t.Errorf("List = %d records, %v; want none", len(list), err)
	}
}
