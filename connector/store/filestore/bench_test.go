package filestore

import (
	"context"
	"fmt"
	"testing"

	"github.com/connector-engine/connector/connector/store/storetest"
)

// benchStore holds n connections, as a small integration platform would.
func benchStore(b *testing.B, n int) *Store {
	b.Helper()
	s := newStore(b)
	for i := range n {
		if _, err := s.Put(context.Background(), storetest.Record(fmt.Sprintf("conn-%03d", i))); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

func BenchmarkGet(b *testing.B) {
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprintf("connections=%d", n), func(b *testing.B) {
			s := benchStore(b, n)
			ctx := context.Background()
			for b.Loop() {
				if _, err := s.Get(ctx, "conn-005"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPut includes the two fsyncs that make each write durable, so it
// measures the disk as much as the code.
func BenchmarkPut(b *testing.B) {
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprintf("connections=%d", n), func(b *testing.B) {
			s := benchStore(b, n)
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

func BenchmarkLock(b *testing.B) {
	s := benchStore(b, 1)
	ctx := context.Background()
	for b.Loop() {
		unlock, err := s.Lock(ctx, "conn-000")
		if err != nil {
			b.Fatal(err)
		}
		unlock()
	}
}
