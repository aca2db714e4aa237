package filestore

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/store/internal/flock"
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

func newStore(t testing.TB) *Store {
	t.Helper()
	return openStore(t, filepath.Join(t.TempDir(), "state", "store.json"), storetest.NewSealer(t))
}

// TestContract runs the tests every store.Store passes (storetest). Its
// ReadsSeeOtherWriters covers the read cache (snapshot): a store sees files
// other stores wrote since it last parsed one; LockReleasedWhenHolderKilled
// and MultiProcessIncrements run this test binary again as other processes.
func TestContract(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		Open: func(t testing.TB, sealer *store.Sealer) store.Store {
			return openStore(t, filepath.Join(t.TempDir(), "state", "store.json"), sealer)
		},
		Location: func(s store.Store) string { return s.(*Store).Path() },
		Reopen: func(t testing.TB, path string, sealer *store.Sealer) store.Store {
			return openStore(t, path, sealer)
		},
		Where: func(s store.Store) string { return s.(*Store).Path() },
		Dump: func(t testing.TB, s store.Store) string {
			data, err := os.ReadFile(s.(*Store).Path())
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			return string(data)
		},
		Tamper: []storetest.Tampering{
			{Name: "sealed token altered", Victim: "conn-a", Untouched: "conn-b", Do: editor(func(f *fileData) {
				f.Connections[0].SealedToken[20] ^= 0x40
			})},
			// Both fail: each token is bound to its own connection.
			{Name: "sealed tokens swapped between connections", Victim: "conn-a", Do: editor(func(f *fileData) {
				a, b := &f.Connections[0], &f.Connections[1]
				a.SealedToken, b.SealedToken = b.SealedToken, a.SealedToken
			})},
			{Name: "connection renamed", Victim: "conn-c", Untouched: "conn-a", Do: editor(func(f *fileData) {
				f.Connections[1].ID = "conn-c"
			})},
			{Name: "binding altered", Victim: "conn-a", Untouched: "conn-b", Do: editor(func(f *fileData) {
				f.Connections[0].Binding.APIOrigin = "https://evil.example"
			})},
			{Name: "binding stripped", Victim: "conn-a", Untouched: "conn-b", Do: editor(func(f *fileData) {
				f.Connections[0].Binding = store.Binding{}
			})},
			{Name: "bindings swapped between connections", Victim: "conn-a", Do: editor(func(f *fileData) {
				a, b := &f.Connections[0], &f.Connections[1]
				a.Binding, b.Binding = b.Binding, a.Binding
			})},
			{Name: "sealed token truncated", Victim: "conn-a", Untouched: "conn-b", Do: editor(func(f *fileData) {
				f.Connections[0].SealedToken = f.Connections[0].SealedToken[:10]
			})},
		},
	})
}

// editor makes a storetest tampering of an edit of the decoded file.
func editor(edit func(*fileData)) func(testing.TB, store.Store) {
	return func(t testing.TB, s store.Store) { editFile(t, s.(*Store).Path(), edit) }
}

func TestFileOnDisk(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	var secrets []string
	for _, id := range []string{"conn-b", "conn-a"} {
		r := storetest.Record(id)
		r.Reason = "reason-" + id
		if _, err := s.Put(ctx, r); err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, storetest.Secrets(r)...)
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
func editFile(t testing.TB, path string, edit func(*fileData)) {
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
func replaceFile(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := path + ".edit"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestDamagedFile(t *testing.T) {
	sealer := storetest.NewSealer(t)
	good := storetest.Record("conn-1")
	goodSealed, err := sealer.SealToken(good.ID, store.Binding{}, good.Token) // as written before bindings
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
			_, putErr := early.Put(ctx, storetest.Record("conn-2"))
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
	want, err := s.Put(ctx, storetest.Record("conn-1"))
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

func TestStoreLockHonoursContext(t *testing.T) {
	s := newStore(t)
	// Hold the store lock as another writer would.
	f, err := flock.Open(s.lockPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if busy, err := flock.TryLock(f); busy || err != nil {
		t.Fatalf("tryLock = %v, %v", busy, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.Put(ctx, storetest.Record("conn-1")); !errors.Is(err, context.DeadlineExceeded) {
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

func TestOpenArguments(t *testing.T) {
	if _, err := Open("", storetest.NewSealer(t)); err == nil {
		t.Error("Open with no path succeeded")
	}
	if _, err := Open(filepath.Join(t.TempDir(), "s.json"), nil); err == nil {
		t.Error("Open with no sealer succeeded")
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
