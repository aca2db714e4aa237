package connector_test

import (
	"context"
	"crypto/rand"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/emulator"
	"github.com/connector-engine/connector/connector/internal/pgtest"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/store/filestore"
	"github.com/connector-engine/connector/connector/store/pgstore"
	"github.com/connector-engine/connector/connector/token"
	"github.com/connector-engine/connector/definitions"
)

// BenchmarkRefresh measures one refresh with a rotating refresh token at
// the emulator on loopback: the bare token request (provider), then the
// whole protocol of Source.Refresh (lock, re-read, in-flight marker, token
// request, durable write, unlock) on each store. The difference is what
// never losing a refresh token costs.
func BenchmarkRefresh(b *testing.B) {
	ctx := context.Background()
	emu := emulator.New(emulator.Config{Clients: []emulator.Client{{ID: "bench", Secret: "bench-secret"}}})
	base, err := emu.Start(ctx, "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer emu.Close()
	def, err := definitions.Builtin().Lookup("procore")
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	conn := func() *connector.Connection {
		n++
		return &connector.Connection{ID: "bench-" + strconv.Itoa(n), Definition: def, ClientID: "bench", ClientSecret: "bench-secret",
			RedirectURI: "http://127.0.0.1:9/callback", BaseURL: base, LoginURL: base}
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	sealer, err := store.NewSealer(key)
	if err != nil {
		b.Fatal(err)
	}
	// connected authorizes a fresh grant and returns its source on st.
	connected := func(b *testing.B, st store.Store) *connector.Source {
		src, err := connector.NewSource(conn(), st)
		if err != nil {
			b.Fatal(err)
		}
		tok, err := authorizeAtEmulator(ctx, src.Flow())
		if err != nil {
			b.Fatal(err)
		}
		if err := src.Store(ctx, tok); err != nil {
			b.Fatal(err)
		}
		return src
	}

	b.Run("provider", func(b *testing.B) {
		src := connected(b, store.NewMemory())
		tok, err := src.TokenContext(ctx)
		if err != nil {
			b.Fatal(err)
		}
		rt := tok.RefreshToken
		for b.Loop() {
			nt, err := src.Flow().Refresh(ctx, rt)
			if err != nil {
				b.Fatal(err)
			}
			rt = nt.RefreshToken
		}
	})
	stores := []struct {
		name string
		open func(b *testing.B) store.Store
	}{
		{"memory", func(*testing.B) store.Store { return store.NewMemory() }},
		{"file", func(b *testing.B) store.Store {
			st, err := filestore.Open(filepath.Join(b.TempDir(), "store.json"), sealer)
			if err != nil {
				b.Fatal(err)
			}
			return st
		}},
		{"postgres", func(b *testing.B) store.Store {
			st, err := pgstore.Open(ctx, pgtest.New(b).CreateDatabase(b, "bench"), sealer)
			if err != nil {
				b.Fatal(err)
			}
			return st
		}},
	}
	for _, s := range stores {
		b.Run("source/"+s.name, func(b *testing.B) {
			st := s.open(b)
			defer st.Close()
			src := connected(b, st)
			for b.Loop() {
				if _, err := src.Refresh(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	if s := emu.Stats(); s.GrantRevocations != 0 {
		b.Fatalf("%d grants revoked", s.GrantRevocations)
	}
}

// BenchmarkTokenLookup: the token of a connection whose access token is
// fresh, from the source's in-process cache, against reading the record
// from each store (what every call would cost without the cache).
func BenchmarkTokenLookup(b *testing.B) {
	ctx := context.Background()
	def, err := definitions.Builtin().Lookup("procore")
	if err != nil {
		b.Fatal(err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	sealer, _ := store.NewSealer(key)
	c := &connector.Connection{ID: "lookup", Definition: def, ClientID: "bench", ClientSecret: "bench-secret",
		RedirectURI: "http://127.0.0.1:9/callback", BaseURL: "http://127.0.0.1:9", LoginURL: "http://127.0.0.1:9"}
	fresh := func(b *testing.B, st store.Store) *connector.Source {
		src, err := connector.NewSource(c, st)
		if err != nil {
			b.Fatal(err)
		}
		if err := src.Store(ctx, &tokenFresh); err != nil {
			b.Fatal(err)
		}
		return src
	}
	b.Run("cached", func(b *testing.B) {
		src := fresh(b, store.NewMemory())
		b.ReportAllocs()
		for b.Loop() {
			if _, err := src.TokenContext(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("file", func(b *testing.B) {
		st, err := filestore.Open(filepath.Join(b.TempDir(), "store.json"), sealer)
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		fresh(b, st)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := st.Get(ctx, "lookup"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("postgres", func(b *testing.B) {
		st, err := pgstore.Open(ctx, pgtest.New(b).CreateDatabase(b, "lookup"), sealer)
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		fresh(b, st)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := st.Get(ctx, "lookup"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

var tokenFresh = func() token.Token {
	return token.Token{AccessToken: "fresh-access-token", RefreshToken: "fresh-refresh-token", Expiry: time.Now().Add(24 * time.Hour)}
}()
