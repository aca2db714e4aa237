package sqlitestore

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/store/filestore"
	"github.com/connector-engine/connector/connector/store/storetest"
)

// Every benchmark runs on this store and, as its baseline in the same run,
// on the file store (store=file), on the same disk.
var benchBackends = []struct {
	name string
	open func(b *testing.B) store.Store
}{
	{"sqlite", func(b *testing.B) store.Store { return newTestStore(b) }},
	{"file", func(b *testing.B) store.Store {
		s, err := filestore.Open(filepath.Join(b.TempDir(), "store.json"), storetest.NewSealer(b))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	}},
}

// benchStores runs bench on each backend holding n connections, as a small
// integration platform would.
func benchStores(b *testing.B, n int, bench func(*testing.B, store.Store)) {
	for _, be := range benchBackends {
		b.Run(fmt.Sprintf("store=%s/connections=%d", be.name, n), func(b *testing.B) {
			s := be.open(b)
			for i := range n {
				if _, err := s.Put(context.Background(), storetest.Record(fmt.Sprintf("conn-%03d", i))); err != nil {
					b.Fatal(err)
				}
			}
			bench(b, s)
		})
	}
}

// BenchmarkGet is one read and unsealing: the file store parses its file
// only when it changed, so its Get is a map lookup; this store's is a query.
func BenchmarkGet(b *testing.B) {
	for _, n := range []int{10, 100} {
		benchStores(b, n, func(b *testing.B, s store.Store) {
			ctx := context.Background()
			for b.Loop() {
				if _, err := s.Get(ctx, "conn-005"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPut includes what makes each write durable (fsyncs), so it
// measures the disk as much as the code: the file store rewrites the whole
// file, this store appends a page or two to its write-ahead log.
func BenchmarkPut(b *testing.B) {
	for _, n := range []int{10, 100} {
		benchStores(b, n, func(b *testing.B, s store.Store) {
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
		})
	}
}

// BenchmarkLock is an uncontended Lock and unlock: both stores flock a
// file of the connection's own.
func BenchmarkLock(b *testing.B) {
	benchStores(b, 1, func(b *testing.B, s store.Store) {
		ctx := context.Background()
		for b.Loop() {
			unlock, err := s.Lock(ctx, "conn-000")
			if err != nil {
				b.Fatal(err)
			}
			if err := unlock(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
