package server

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"

	"github.com/connector-engine/connector/connector/server/state"
)

// What a replica caches, and why that keeps the replica rules: API keys
// (by their SHA-256) and each connection's engine are kept with the
// state's change generation they were read at (state.DB.Generation), and
// used only while the generation has not moved. Every deletion of a key,
// client or connection, and every new version of a client (a rotated
// secret) or a connection (a new status), moves it, on whichever replica
// or process it happens. A replica learns of it at its next request on
// SQLite, and within a notification's round trip on PostgreSQL (at worst
// state.MaxStaleness, if a notification is lost on a live connection).
//
// So a deleted API key may go on authenticating requests on another
// PostgreSQL replica for that window, with the scopes it had: the same
// thing it could do a moment before its deletion. On top of that, a key
// is re-read from the database at least every keyTTL, which also keeps its
// last use current. Failed lookups are never cached.

// keyTTL bounds how long a cached API key is trusted without reading it again.
const keyTTL = 30 * time.Second

// maxCachedKeys bounds the key cache; when full it starts over.
const maxCachedKeys = 10000

type cachedKey struct {
	p    state.Principal
	gen  int64
	read time.Time
}

type keyCache struct {
	mu   sync.Mutex
	keys map[[sha256.Size]byte]cachedKey
}

// generation is the state's change generation, read once per request.
func (s *Server) generation(ctx context.Context) (int64, error) {
	ri, _ := ctx.Value(ctxKey{}).(*reqInfo)
	if ri != nil && ri.genRead {
		return ri.gen, nil
	}
	g, err := s.cfg.State.Generation(ctx)
	if err == nil && ri != nil {
		ri.gen, ri.genRead = g, true
	}
	return g, err
}

// principal authenticates key, from the cache when it may.
func (s *Server) principal(ctx context.Context, key string) (state.Principal, error) {
	gen, gerr := s.generation(ctx)
	h := sha256.Sum256([]byte(key))
	now := time.Now()
	if gerr == nil {
		s.keys.mu.Lock()
		c, ok := s.keys.keys[h]
		s.keys.mu.Unlock()
		if ok && c.gen == gen && now.Sub(c.read) < keyTTL {
			return c.p, nil
		}
	}
	p, err := s.cfg.State.Authenticate(ctx, key)
	if err != nil || gerr != nil {
		return p, err
	}
	// gen was read before the key: a change meanwhile leaves this entry
	// with an older generation, which the next request does not trust.
	s.keys.mu.Lock()
	if s.keys.keys == nil || len(s.keys.keys) >= maxCachedKeys {
		s.keys.keys = map[[sha256.Size]byte]cachedKey{}
	}
	s.keys.keys[h] = cachedKey{p: p, gen: gen, read: now}
	s.keys.mu.Unlock()
	return p, nil
}
