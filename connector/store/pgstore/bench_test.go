package pgstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/store/storetest"
	"github.com/connector-engine/connector/connector/token"
)

// benchStore holds n connections, as a small integration platform would.
func benchStore(b *testing.B, n int) *Store {
	b.Helper()
	s, _ := newStore(b)
	for i := range n {
		if _, err := s.Put(context.Background(), storetest.Record(fmt.Sprintf("conn-%03d", i))); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

// BenchmarkGet is one round trip to PostgreSQL (over loopback TCP) plus
// unsealing: what a worker pays when it reads the store on every call.
func BenchmarkGet(b *testing.B) {
	s := benchStore(b, 100)
	ctx := context.Background()
	for b.Loop() {
		if _, err := s.Get(ctx, "conn-005"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSourceTokenWarm is connector.Source.TokenContext with its cache
// warm: the cost per API call once a token is held, with this store behind.
func BenchmarkSourceTokenWarm(b *testing.B) {
	s, _ := newStore(b)
	_, conn := emulatorConnection(b)
	ctx := context.Background()
	if _, err := s.Put(ctx, store.Record{ID: conn.Key(), Definition: "procore", Status: store.StatusConnected,
		Token: token.Token{AccessToken: "bench-access", RefreshToken: "bench-refresh", Expiry: time.Now().Add(24 * time.Hour)}}); err != nil {
		b.Fatal(err)
	}
	src, err := connector.NewSource(conn, s)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := src.TokenContext(ctx); err != nil { // loads the cache from the store
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := src.TokenContext(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPut is one write (record and history row in one statement). The
// test server runs with fsync off, so this measures the round trip and the
// statement, not a disk.
func BenchmarkPut(b *testing.B) {
	s := benchStore(b, 100)
	ctx := context.Background()
	r, err := s.Get(ctx, "conn-005")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if r, err = s.Put(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLock is an uncontended Lock and unlock: two round trips on a
// pooled session reserved for locks.
func BenchmarkLock(b *testing.B) {
	s := benchStore(b, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	for b.Loop() {
		unlock, err := s.Lock(ctx, "conn-000")
		if err != nil {
			b.Fatal(err)
		}
		if err := unlock(); err != nil {
			b.Fatal(err)
		}
	}
}
