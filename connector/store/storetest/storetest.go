// Package storetest is a test helper, imported by tests only (as
// net/http/httptest is): it owns the contract every store.Store backend
// keeps, as one suite of tests that each backend's own tests run against it
// with Run. What is true of one backend only (its file, its tables, its
// migrations) is tested in that backend's package.
//
// Run starts helper processes by running the test binary again (see
// Harness.Reopen); so call Run first thing in a test of its own, and do not
// call t.Parallel in it: some subtests set environment variables.
package storetest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/token"
)

// Harness is what the suite needs to know of one backend.
type Harness struct {
	// Open returns a new store on fresh, empty storage, sealing tokens
	// with sealer. The store is closed when t ends.
	Open func(t testing.TB, sealer *store.Sealer) store.Store
	// Location names the storage of a store Open or Reopen returned (a
	// file path, a database URL) so that Reopen can reach it, from this
	// process or from another.
	Location func(s store.Store) string
	// Reopen returns another store on the storage at location, sealing
	// with sealer: what another process or host sees. The store is closed
	// when t ends. The suite's helper processes (the test binary run
	// again) call it too, with the helper's t.
	Reopen func(t testing.TB, location string, sealer *store.Sealer) store.Store
	// Where is how s's errors name its storage for a person: the file's
	// path, the database URL without its password.
	Where func(s store.Store) string
	// Dump returns everything s's storage holds, as text: a refused write
	// must leave it unchanged, a deletion must leave no trace in it.
	Dump func(t testing.TB, s store.Store) string

	// TimePrecision is what the store keeps of RefreshStarted: 0 for the
	// exact instant, time.Microsecond for PostgreSQL's timestamps. The
	// instant read back must be the one written, truncated to it.
	TimePrecision time.Duration
	// LockTimeoutSays, when set, is text every lock timeout error must
	// contain besides the connection's id.
	LockTimeoutSays string
	// Tamper lists ways to alter the stored records behind the store's
	// back, each of which the store must detect. Without any, the
	// Tampering subtest is skipped.
	Tamper []Tampering
}

// Tampering alters the records "conn-a" and "conn-b", stored by the suite
// before Do runs, as an attacker or a careless hand with access to the
// storage could.
type Tampering struct {
	Name string
	Do   func(t testing.TB, s store.Store)
	// Victim is the connection whose token must then fail to open.
	Victim string
	// Untouched, when set, is a connection that must still open.
	Untouched string
}

// NewSealer returns a Sealer with a new random key.
func NewSealer(t testing.TB) *store.Sealer {
	t.Helper()
	_, s := newKey(t)
	return s
}

// newKey returns a new random key, base64-encoded as CONNECTOR_SECRET_KEY
// takes it, and its Sealer.
func newKey(t testing.TB) (string, *store.Sealer) {
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

// Record makes a connected connection's record whose secrets are
// distinctive enough to search the storage, errors and output for.
func Record(id string) store.Record {
	return store.Record{
		ID:         id,
		Definition: "procore",
		Binding: store.Binding{
			Tenant:      "tenant-of-" + id,
			Definition:  "procore",
			Environment: "sandbox",
			ClientID:    "client-of-" + id,
			TokenOrigin: "https://login.example https://revoke.example",
			APIOrigin:   "https://api.example:8443",
		},
		Token: token.Token{
			AccessToken:  "ACCESS-" + id + "-a1b2c3d4e5f6",
			TokenType:    "Bearer",
			RefreshToken: "REFRESH-" + id + "-f6e5d4c3b2a1",
			Secret:       "SECRET-" + id + "-0a9b8c7d6e5f",
			Expiry:       time.Date(2031, 5, 6, 7, 8, 9, 10, time.FixedZone("X", 3600)),
			Scopes:       []string{"read"},
			IssuedAt:     time.Date(2031, 5, 6, 5, 8, 9, 0, time.UTC),
			Obtained:     time.Date(2031, 5, 6, 6, 8, 9, 500, time.FixedZone("Y", -7200)),
			// Values learned when connecting, one of them a secret (a
			// nested bot token): kept, and sealed, with the token.
			Values: map[string]string{"RealmId": "9130-" + id, "BotToken": "BOT-" + id + "-9a8b7c6d"},
			// A DPoP key (RFC 9449) kept with the token it is bound to:
			// as secret as the tokens.
			DPoPKey: "-----BEGIN PRIVATE KEY-----\nDPOPKEY" + id + "5e4d3c2b1a\n-----END PRIVATE KEY-----\n",
		},
		Status: store.StatusConnected,
	}
}

// Secrets returns the secrets of r, which must never be seen in clear.
func Secrets(r store.Record) []string {
	return []string{r.Token.AccessToken, r.Token.RefreshToken, r.Token.Secret, r.Token.Values["BotToken"], r.Token.DPoPKey, "DPOPKEY" + r.ID}
}

// The helper processes are the test binary run again, up to the test that
// called Run; these variables tell Run to be a helper instead.
const (
	envHelper   = "STORETEST_HELPER" // "hold" or "increment"
	envLocation = "STORETEST_LOCATION"
	envCount    = "STORETEST_N"
)

// Run runs the contract tests against the backend h describes, each as a
// subtest of t.
func Run(t *testing.T, h Harness) {
	if mode := os.Getenv(envHelper); mode != "" {
		helperProcess(t, h, mode) // does not return
	}
	if h.Open == nil || h.Location == nil || h.Reopen == nil || h.Where == nil || h.Dump == nil {
		t.Fatal("storetest: the Harness must set Open, Location, Reopen, Where and Dump")
	}
	root := t.Name()
	for _, c := range []struct {
		name string
		test func(*testing.T, Harness)
	}{
		{"RoundTrip", testRoundTrip},
		{"UnboundRecordAdoptsBinding", testUnbound},
		{"GetMissing", testGetMissing},
		{"PutWithoutID", testPutWithoutID},
		{"VersionConflict", testVersionConflict},
		{"Delete", testDelete},
		{"ListOrder", testListOrder},
		{"ReadsSeeOtherWriters", testReadsSeeOtherWriters},
		{"FormatHidesSecrets", testFormatHidesSecrets},
		{"WrongKey", testWrongKey},
		{"Tampering", testTampering},
		{"ConcurrentPutsRetryOnConflict", testConcurrentPuts},
		{"LockExcludes", testLockExcludes},
		{"LockTimeout", testLockTimeout},
		{"LockCanceledContext", testLockCanceledContext},
		{"LockReleasedWhenHolderKilled", func(t *testing.T, h Harness) { testHolderKilled(t, h, root) }},
		{"MultiProcessIncrements", func(t *testing.T, h Harness) { testMultiProcess(t, h, root) }},
		{"Closed", testClosed},
	} {
		t.Run(c.name, func(t *testing.T) { c.test(t, h) })
	}
}

// twoHandles opens a store and a second one on the same storage, as two
// processes or hosts would.
func twoHandles(t *testing.T, h Harness) (a, b store.Store) {
	t.Helper()
	sealer := NewSealer(t)
	a = h.Open(t, sealer)
	return a, h.Reopen(t, h.Location(a), sealer)
}

// zeroFields names the fields of the struct v (and of the structs in it,
// other than times) that hold their zero value.
func zeroFields(prefix string, v reflect.Value) []string {
	var out []string
	for i := range v.NumField() {
		f, name := v.Field(i), prefix+v.Type().Field(i).Name
		if f.Kind() == reflect.Struct && f.Type() != reflect.TypeFor[time.Time]() {
			out = append(out, zeroFields(name+".", f)...)
		} else if f.IsZero() {
			out = append(out, name)
		}
	}
	return out
}

func testRoundTrip(t *testing.T, h Harness) {
	ctx := context.Background()
	sealer := NewSealer(t)
	s := h.Open(t, sealer)

	in := Record("conn-1")
	in.Reason = "reason of conn-1"
	in.RefreshStarted = time.Now() // a monotonic reading, a local zone, nanoseconds
	// Every field but those the store sets is written, so a field added
	// to Record (or token.Token) fails here until this test covers it.
	if zero := zeroFields("", reflect.ValueOf(in)); !slices.Equal(zero, []string{"Version", "UpdatedAt"}) {
		t.Fatalf("the record written leaves %v unset; set every field", zero)
	}
	put, err := s.Put(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if put.Version != 1 || put.UpdatedAt.IsZero() {
		t.Errorf("first Put: Version = %d, UpdatedAt %v; want 1 and set", put.Version, put.UpdatedAt)
	}
	if want := in.RefreshStarted.Truncate(h.TimePrecision); !put.RefreshStarted.Equal(want) {
		t.Errorf("RefreshStarted = %v, want %v (%v truncated to %v)", put.RefreshStarted, want, in.RefreshStarted, h.TimePrecision)
	}
	got, err := s.Get(ctx, "conn-1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, put) {
		t.Errorf("Get after Put:\n got %+v\nwant %+v", got, put)
	}
	if !got.Token.Expiry.Equal(in.Token.Expiry) || !got.Token.IssuedAt.Equal(in.Token.IssuedAt) || !got.Token.Obtained.Equal(in.Token.Obtained) {
		t.Error("the token's times changed instant in the round trip")
	}
	if got.ID != in.ID || got.Definition != in.Definition || got.Binding != in.Binding || got.Status != in.Status || got.Reason != in.Reason ||
		got.Token.AccessToken != in.Token.AccessToken || got.Token.RefreshToken != in.Token.RefreshToken || got.Token.Secret != in.Token.Secret ||
		got.Token.TokenType != in.Token.TokenType || !slices.Equal(got.Token.Scopes, in.Token.Scopes) || !maps.Equal(got.Token.Values, in.Token.Values) {
		t.Errorf("Get after Put:\n got %+v\nwant the fields of %+v", got, in)
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

	// Another store on the same storage (another process or host, or the
	// next run) sees the same record.
	other := h.Reopen(t, h.Location(s), sealer)
	got2, err := other.Get(ctx, "conn-1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got2, put2) {
		t.Errorf("Get from a second store:\n got %+v\nwant %+v", got2, put2)
	}
	list, err := other.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || !reflect.DeepEqual(list[0], put2) {
		t.Errorf("List = %+v, want [%+v]", list, put2)
	}
}

// testUnbound: a record written without a binding (as before bindings
// existed) reads back unbound, and binding it later (what the connector
// does on first use) is an ordinary Put that sticks.
func testUnbound(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.Open(t, NewSealer(t))
	in := Record("conn-old")
	in.Binding = store.Binding{}
	put, err := s.Put(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "conn-old")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Binding.IsZero() || got.Token.AccessToken != in.Token.AccessToken {
		t.Fatalf("unbound record read back with binding %v, token %v", got.Binding, got.Token)
	}
	got.Binding = Record("conn-old").Binding
	if _, err := s.Put(ctx, got); err != nil {
		t.Fatal(err)
	}
	again, err := s.Get(ctx, "conn-old")
	if err != nil {
		t.Fatal(err)
	}
	if again.Binding != got.Binding || again.Version != put.Version+1 || again.Token.RefreshToken != in.Token.RefreshToken {
		t.Errorf("after binding: %+v; want binding %v at version %d", again, got.Binding, put.Version+1)
	}
}

func testGetMissing(t *testing.T, h Harness) {
	s := h.Open(t, NewSealer(t))
	_, err := s.Get(context.Background(), "nope")
	if !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("Get of a missing record: %v; want ErrNotFound naming it", err)
	}
	if list, err := s.List(context.Background()); err != nil || len(list) != 0 {
		t.Errorf("List of a new store = %v, %v; want empty", list, err)
	}
}

func testPutWithoutID(t *testing.T, h Harness) {
	s := h.Open(t, NewSealer(t))
	_, err := s.Put(context.Background(), store.Record{})
	if err == nil || !strings.Contains(err.Error(), "without an id") {
		t.Errorf("Put of a record without an id: %v; want an error saying so", err)
	}
	if list, err := s.List(context.Background()); err != nil || len(list) != 0 {
		t.Errorf("List after it = %v, %v; want empty", list, err)
	}
}

func testVersionConflict(t *testing.T, h Harness) {
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
			s := h.Open(t, NewSealer(t))
			r := Record("conn")
			for range tc.stored {
				var err error
				if r, err = s.Put(ctx, r); err != nil {
					t.Fatal(err)
				}
			}
			before := h.Dump(t, s)
			stale := r
			stale.Version = tc.version
			stale.Token.RefreshToken = "REFRESH-from-stale-writer"
			got, err := s.Put(ctx, stale)
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
			if after := h.Dump(t, s); after != before {
				t.Errorf("a conflicting Put changed the storage:\n%s\nto\n%s", before, after)
			}
			cur, err := s.Get(ctx, "conn")
			switch {
			case tc.stored == 0 && !errors.Is(err, store.ErrNotFound):
				t.Errorf("Get after a refused create: %+v, %v; want ErrNotFound", cur, err)
			case tc.stored > 0 && (err != nil || !reflect.DeepEqual(cur, r)):
				t.Errorf("Get after a refused Put:\n got %+v, %v\nwant %+v", cur, err, r)
			}
		})
	}
}

func testDelete(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.Open(t, NewSealer(t))
	for _, id := range []string{"conn-c", "conn-a", "conn-b"} {
		if _, err := s.Put(ctx, Record(id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, "conn-b"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "never-existed"); err != nil {
		t.Errorf("Delete of a missing record: %v", err)
	}
	if _, err := s.Get(ctx, "conn-b"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get after Delete: %v; want ErrNotFound", err)
	}
	// Nothing of the record (its history included) is kept.
	if dump := h.Dump(t, s); strings.Contains(dump, "conn-b") {
		t.Errorf("the storage still holds the deleted connection:\n%s", dump)
	}
	list, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ids := idsOf(list); strings.Join(ids, ",") != "conn-a,conn-c" {
		t.Errorf("List ids = %v, want [conn-a conn-c] in order", ids)
	}
	// A deleted record can be made again from version 0.
	if r, err := s.Put(ctx, Record("conn-b")); err != nil || r.Version != 1 {
		t.Errorf("Put after Delete = version %d, %v; want 1", r.Version, err)
	}
}

func idsOf(list []store.Record) []string {
	ids := make([]string, 0, len(list))
	for _, r := range list {
		ids = append(ids, r.ID)
	}
	return ids
}

// List is in byte order of the ids, as Go compares strings, whatever the
// storage's own collation ("B" sorts after "a" in most).
func testListOrder(t *testing.T, h Harness) {
	ctx := context.Background()
	a, b := twoHandles(t, h)
	put := map[string]store.Record{}
	for _, id := range []string{"conn-b", "conn-é", "conn-B", "conn-a", "conn-10", "conn-9", "conn-~", "conn-A"} {
		r, err := a.Put(ctx, Record(id))
		if err != nil {
			t.Fatal(err)
		}
		put[id] = r
	}
	want := slices.Sorted(maps.Keys(put))
	for name, s := range map[string]store.Store{"the writer": a, "another store": b} {
		list, err := s.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ids := idsOf(list); !slices.Equal(ids, want) {
			t.Errorf("List from %s: ids %q, want byte order %q", name, ids, want)
			continue
		}
		for _, r := range list {
			if !reflect.DeepEqual(r, put[r.ID]) {
				t.Errorf("List from %s:\n got %+v\nwant %+v", name, r, put[r.ID])
			}
		}
	}
}

// A store's reads see what other stores on the same storage (other
// processes) wrote since, whatever it keeps of its last read.
func testReadsSeeOtherWriters(t *testing.T, h Harness) {
	ctx := context.Background()
	a, b := twoHandles(t, h)
	r, err := a.Put(ctx, Record("conn-1"))
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
		t.Errorf("Get after another store deleted it: %v; want ErrNotFound", err)
	}
	if list, err := a.List(ctx); err != nil || len(list) != 0 {
		t.Errorf("List = %d records, %v; want none", len(list), err)
	}
}

func testFormatHidesSecrets(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.Open(t, NewSealer(t))
	r, err := s.Put(ctx, Record("conn-1"))
	if err != nil {
		t.Fatal(err)
	}
	list, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%+v", s), fmt.Sprint(r), fmt.Sprintf("%+v", r), fmt.Sprintf("%#v", r), fmt.Sprintf("%v", list)} {
		for _, secret := range Secrets(r) {
			if strings.Contains(out, secret) {
				t.Errorf("%q contains a secret", out)
			}
		}
	}
}

// A store opened with another key than the records were written with says
// which connection, which storage and which key, and what to do.
func testWrongKey(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.Open(t, NewSealer(t))
	r := Record("conn-1")
	if _, err := s.Put(ctx, r); err != nil {
		t.Fatal(err)
	}
	key, _ := newKey(t)
	t.Setenv(store.EnvSecretKey, key)
	wrong, err := store.LoadSealer("")
	if err != nil {
		t.Fatal(err)
	}
	w := h.Reopen(t, h.Location(s), wrong)
	_, err = w.Get(ctx, "conn-1")
	if !errors.Is(err, store.ErrUnseal) {
		t.Fatalf("Get with the wrong key: %v; want ErrUnseal", err)
	}
	msg := err.Error()
	for _, want := range []string{`"conn-1"`, h.Where(w), "the key in " + store.EnvSecretKey, "differs from the key it was written with", "authorize it again"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	for _, secret := range Secrets(r) {
		if strings.Contains(msg, secret) {
			t.Errorf("error %q contains a secret", msg)
		}
	}
	if _, err := w.List(ctx); !errors.Is(err, store.ErrUnseal) {
		t.Errorf("List with the wrong key: %v; want ErrUnseal", err)
	}
}

func testTampering(t *testing.T, h Harness) {
	if len(h.Tamper) == 0 {
		t.Skip("the harness gives no way to tamper with the storage")
	}
	for _, tc := range h.Tamper {
		t.Run(tc.Name, func(t *testing.T) {
			ctx := context.Background()
			s := h.Open(t, NewSealer(t))
			var secrets []string
			for _, id := range []string{"conn-a", "conn-b"} {
				r := Record(id)
				if _, err := s.Put(ctx, r); err != nil {
					t.Fatal(err)
				}
				secrets = append(secrets, Secrets(r)...)
			}
			tc.Do(t, s)

			_, getErr := s.Get(ctx, tc.Victim)
			_, listErr := s.List(ctx)
			for _, err := range []error{getErr, listErr} {
				if !errors.Is(err, store.ErrUnseal) {
					t.Fatalf("err = %v; want one wrapping store.ErrUnseal", err)
				}
				msg := err.Error()
				for _, want := range []string{`"` + tc.Victim + `"`, h.Where(s), "altered"} {
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
			if tc.Untouched != "" {
				if _, err := s.Get(ctx, tc.Untouched); err != nil {
					t.Errorf("the untouched record: %v", err)
				}
			}
		})
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

// lockedIncrement is increment under the connection's lock, where it must
// never meet a conflict.
func lockedIncrement(ctx context.Context, s store.Store, id string) error {
	unlock, err := s.Lock(ctx, id)
	if err != nil {
		return err
	}
	err = increment(ctx, s, id)
	if uerr := unlock(); err == nil {
		err = uerr
	}
	return err
}

// counter returns the count increment kept, and the record's version.
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

// hammer runs op workers*each times, on workers goroutines that take
// turns between two stores on one storage, then checks that the counter op
// increments counts every call, at the version every Put makes.
func hammer(t *testing.T, h Harness, op func(context.Context, store.Store) error) {
	t.Helper()
	const workers, each = 8, 25
	a, b := twoHandles(t, h)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		s := a
		if w%2 == 1 {
			s = b
		}
		wg.Go(func() {
			for range each {
				if err := op(context.Background(), s); err != nil {
					errs <- err
					return
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

// Without the lock, writers of two stores on one storage that retry on
// ErrConflict lose no update.
func testConcurrentPuts(t *testing.T, h Harness) {
	var conflicts atomic.Int64
	hammer(t, h, func(ctx context.Context, s store.Store) error {
		for {
			err := increment(ctx, s, "counter")
			if !errors.Is(err, store.ErrConflict) {
				return err
			}
			conflicts.Add(1)
		}
	})
	t.Logf("%d conflicts retried", conflicts.Load())
}

// Lock excludes goroutines of one store and of another store on the same
// storage: under it, a read-modify-write never conflicts.
func testLockExcludes(t *testing.T, h Harness) {
	hammer(t, h, func(ctx context.Context, s store.Store) error {
		return lockedIncrement(ctx, s, "counter")
	})
}

// checkLockTimeout checks the error of a Lock whose context ended.
func checkLockTimeout(t *testing.T, h Harness, err error, id string, cause error) {
	t.Helper()
	if !errors.Is(err, store.ErrLockTimeout) || !errors.Is(err, cause) {
		t.Fatalf("Lock of %s: %v; want ErrLockTimeout and %v", id, err, cause)
	}
	if msg := err.Error(); !strings.Contains(msg, `"`+id+`"`) || !strings.Contains(msg, h.LockTimeoutSays) {
		t.Errorf("error %q does not name the connection and say %q", msg, h.LockTimeoutSays)
	}
}

// lockAndUnlock takes and releases id's lock, which must be free within 30s.
func lockAndUnlock(t *testing.T, s store.Store, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	unlock, err := s.Lock(ctx, id)
	if err != nil {
		t.Fatalf("Lock of %s: %v", id, err)
	}
	if err := unlock(); err != nil {
		t.Fatalf("unlock of %s: %v", id, err)
	}
}

// A holder that never lets go (a hung refresh elsewhere) makes a waiter
// fail with ErrLockTimeout when its context ends, not hang; the lock of
// another connection is not blocked.
func testLockTimeout(t *testing.T, h Harness) {
	a, b := twoHandles(t, h)
	unlock, err := a.Lock(context.Background(), "conn-1")
	if err != nil {
		t.Fatal(err)
	}
	lockAndUnlock(t, a, "conn-2")
	lockAndUnlock(t, b, "conn-2")

	for _, tc := range []struct {
		name  string
		ctx   func() (context.Context, context.CancelFunc)
		cause error
	}{
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 200*time.Millisecond)
		}, context.DeadlineExceeded},
		{"canceled while waiting", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(200*time.Millisecond, cancel)
			return ctx, cancel
		}, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, s := range []store.Store{b, a} { // another store, and the holder's own
				ctx, cancel := tc.ctx()
				_, err := s.Lock(ctx, "conn-1")
				cancel()
				checkLockTimeout(t, h, err, "conn-1", tc.cause)
			}
		})
	}
	// The failed waits left nothing holding the lock.
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	if err := unlock(); err != nil {
		t.Errorf("second unlock: %v", err)
	}
	lockAndUnlock(t, b, "conn-1")
	lockAndUnlock(t, a, "conn-1")
}

// A context that has already ended gives ErrLockTimeout whether the lock
// is held or free, and leaves the lock free.
func testLockCanceledContext(t *testing.T, h Harness) {
	a, b := twoHandles(t, h)
	unlock, err := a.Lock(context.Background(), "held")
	if err != nil {
		t.Fatal(err)
	}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, id := range []string{"held", "free"} {
		for _, s := range []store.Store{b, a} {
			_, err := s.Lock(canceled, id)
			checkLockTimeout(t, h, err, id, context.Canceled)
		}
	}
	lockAndUnlock(t, b, "free")
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	lockAndUnlock(t, b, "held")
}

// helperCmd prepares a helper process: this test binary run again up to
// the test that called Run, with the store's location and key.
func helperCmd(root, mode, location, key string, extraEnv ...string) *exec.Cmd {
	parts := strings.Split(root, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	cmd := exec.Command(os.Args[0], "-test.run="+strings.Join(parts, "/"), "-test.count=1", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), envHelper+"="+mode, envLocation+"="+location, store.EnvSecretKey+"="+key)
	cmd.Env = append(cmd.Env, extraEnv...)
	return cmd
}

// helperProcess is the body of a helper process; it exits the process.
func helperProcess(t *testing.T, h Harness, mode string) {
	if err := helper(t, h, mode); err != nil {
		fmt.Fprintln(os.Stderr, "storetest helper:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func helper(t *testing.T, h Harness, mode string) error {
	sealer, err := store.LoadSealer("") // the key comes in CONNECTOR_SECRET_KEY
	if err != nil {
		return err
	}
	s := h.Reopen(t, os.Getenv(envLocation), sealer)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	switch mode {
	case "increment":
		n, _ := strconv.Atoi(os.Getenv(envCount))
		for range n {
			if err := lockedIncrement(ctx, s, "counter"); err != nil {
				return err
			}
		}
		return nil
	case "hold":
		if _, err := s.Lock(ctx, "held"); err != nil {
			return err
		}
		fmt.Println("locked")
		time.Sleep(time.Hour) // until killed
		return errors.New("was not killed")
	}
	return fmt.Errorf("unknown mode %q", mode)
}

// A process that dies holding a lock (SIGKILL: no deferred unlock runs)
// releases it.
func testHolderKilled(t *testing.T, h Harness, root string) {
	key, sealer := newKey(t)
	s := h.Open(t, sealer)
	cmd := helperCmd(root, "hold", h.Location(s), key)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "locked" {
		t.Fatalf("helper said %q (%v); stderr:\n%s", line, err, stderr.String())
	}

	// While the helper lives, its lock excludes this process.
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := s.Lock(short, "held"); !errors.Is(err, store.ErrLockTimeout) {
		t.Fatalf("Lock while another process holds it: %v; want ErrLockTimeout", err)
	}

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	killed = true

	ctx, cancel2 := context.WithTimeout(context.Background(), time.Minute)
	defer cancel2()
	unlock, err := s.Lock(ctx, "held")
	if err != nil {
		t.Fatalf("Lock after the holder was killed: %v", err)
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
}

// Processes that each increment a counter under the lock lose no update
// and never meet a conflict.
func testMultiProcess(t *testing.T, h Harness, root string) {
	if testing.Short() {
		t.Skip("starts 8 processes")
	}
	const procs, each = 8, 50
	key, sealer := newKey(t)
	s := h.Open(t, sealer)
	cmds := make([]*exec.Cmd, procs)
	stderr := make([]bytes.Buffer, procs)
	for i := range cmds {
		cmds[i] = helperCmd(root, "increment", h.Location(s), key, envCount+"="+strconv.Itoa(each))
		cmds[i].Stderr = &stderr[i]
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("helper %d: %v\n%s", i, err, stderr[i].String())
		}
	}
	if t.Failed() {
		return
	}
	if n, v := counter(t, s, "counter"); n != procs*each || v != procs*each {
		t.Errorf("count = %d at version %d; want %d (an update was lost)", n, v, procs*each)
	}
}

// After Close every call is refused with an error saying so, naming the
// store; a second Close is not an error, and other stores on the same
// storage go on working.
func testClosed(t *testing.T, h Harness) {
	ctx := context.Background()
	a, b := twoHandles(t, h)
	want, err := a.Put(ctx, Record("x"))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	_, getErr := a.Get(ctx, "x")
	_, putErr := a.Put(ctx, want)
	_, listErr := a.List(ctx)
	_, lockErr := a.Lock(ctx, "x")
	delErr := a.Delete(ctx, "x")
	for _, err := range []error{getErr, putErr, listErr, lockErr, delErr} {
		if err == nil || !strings.Contains(err.Error(), "closed") || !strings.Contains(err.Error(), h.Where(a)) {
			t.Errorf("use after Close: %v; want an error saying the store %s is closed", err, h.Where(a))
		}
	}
	if got, err := b.Get(ctx, "x"); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Get through another store after Close = %+v, %v; want %+v", got, err, want)
	}
	lockAndUnlock(t, b, "x")
}
