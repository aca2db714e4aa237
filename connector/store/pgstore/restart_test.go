package pgstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/internal/pgtest"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/store/storetest"
)

// While the server is down every call fails at once with an error saying
// what failed, nothing is half-written, and after it is back the same store
// (its pool) works again; a lock held across the restart is reported lost.
func TestServerRestart(t *testing.T) {
	c := pgtest.New(t)
	url := c.CreateDatabase(t, "restart")
	s := openStore(t, url, storetest.NewSealer(t))
	ctx := context.Background()
	before, err := s.Put(ctx, storetest.Record("conn-1"))
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := s.Lock(ctx, "conn-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}

	// A generous deadline: the calls must fail long before it, by
	// themselves, rather than wait for it.
	down, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	next := before
	next.Token.RefreshToken = "REFRESH-written-while-down"
	_, getErr := s.Get(down, "conn-1")
	_, putErr := s.Put(down, next)
	_, listErr := s.List(down)
	_, lockErr := s.Lock(down, "conn-2")
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"Get", getErr, `reading connection "conn-1" from ` + s.desc},
		{"Put", putErr, `writing connection "conn-1" to ` + s.desc + " (nothing was written)"},
		{"List", listErr, "listing connections in " + s.desc},
		{"Lock", lockErr, `locking connection "conn-2" in ` + s.desc},
	} {
		if tc.err == nil {
			t.Errorf("%s while the server is down succeeded", tc.name)
			continue
		}
		if errors.Is(tc.err, context.DeadlineExceeded) || errors.Is(tc.err, store.ErrLockTimeout) {
			t.Errorf("%s waited for its deadline instead of failing: %v", tc.name, tc.err)
		}
		if msg := tc.err.Error(); !strings.Contains(msg, tc.want) {
			t.Errorf("%s: error %q does not say %q", tc.name, msg, tc.want)
		}
	}
	if down.Err() != nil {
		t.Fatal("the calls took until the deadline")
	}

	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "conn-1")
	if err != nil {
		t.Fatalf("Get after the restart: %v", err)
	}
	if got.Version != before.Version || got.Token.RefreshToken != before.Token.RefreshToken {
		t.Errorf("the record changed while the server was down: version %d", got.Version)
	}
	if h, err := s.History(ctx, "conn-1"); err != nil || len(h) != 1 {
		t.Errorf("History = %d events, %v; want the 1 before the restart", len(h), err)
	}
	if err := unlock(); err == nil || !strings.Contains(err.Error(), "lost") {
		t.Errorf("unlock of a lock held across the restart: %v; want it reported lost", err)
	}
	if _, err := s.Put(ctx, got); err != nil {
		t.Errorf("Put after the restart: %v", err)
	}
	lctx, cancel2 := context.WithTimeout(ctx, 30*time.Second)
	defer cancel2()
	again, err := s.Lock(lctx, "conn-1")
	if err != nil {
		t.Fatalf("Lock after the restart: %v", err)
	}
	if err := again(); err != nil {
		t.Fatal(err)
	}
}
