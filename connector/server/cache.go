package server

import (
	"container/list"
	"context"
	"crypto/sha256"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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

// DefaultEngineCache is how many connections' engines a server keeps
// (Config.EngineCache). An engine is about 5 KiB and costs a database read
// and a few allocations to build again, so the bound is there for servers
// with far more connections than are busy at once: the least recently
// used engines beyond it are dropped and rebuilt from the store when next
// used.
const DefaultEngineCache = 10000

// NoEngineCache as Config.EngineCache keeps no engine: each use builds the
// connection's engine from the store again (connector serve --engine-cache
// 0). That is always correct (see engineCache) and costs a database read
// and a token read per request; it is for memory-starved replicas and for
// measuring what the cache saves.
const NoEngineCache = -1

// engineCache keeps the engines of the most recently used connections, at
// most max of them. Dropping an engine is always safe, which is what
// makes an LRU bound possible at all:
//   - nothing is lost: an engine holds no state of its own that the store
//     lacks. Its Source's token is a copy of the stored record; a refresh
//     is written to the store before its token is used (the engine's
//     refresh protocol), so a rebuilt engine reads the latest token.
//   - nothing is done twice: refreshes are serialised by the store's
//     per-connection lock and re-read under it, not by the engine, so an
//     evicted engine still finishing a refresh and its rebuilt successor
//     are two workers of the same protocol, as two replicas are.
//   - nothing in flight breaks: a request holds its *engine; eviction only
//     forgets it, and it is collected once the request is done.
type engineCache struct {
	mu      sync.Mutex
	max     int
	order   *list.List               // of *cachedEngine; front: most recently used
	byID    map[string]*list.Element // by connection id
	evicted int64
	// What load found, for /metrics: an engine used as kept (hit), one
	// kept but read again because the generation moved and found current
	// (revalidated), and one built (none kept, or out of date).
	// Atomics, not under mu: load counts after it is done with the cache.
	hits, revalidated, built atomic.Int64
}

type cachedEngine struct {
	id string
	e  *engine
}

func newEngineCache(max int) *engineCache {
	switch {
	case max == 0:
		max = DefaultEngineCache
	case max < 0: // NoEngineCache: put drops every engine at once
		max = 0
	}
	return &engineCache{max: max, order: list.New(), byID: map[string]*list.Element{}}
}

// get returns the connection's engine, nil when none is kept, and marks it
// used.
func (c *engineCache) get(id string) *engine {
	c.mu.Lock()
	defer c.mu.Unlock()
	el := c.byID[id]
	if el == nil {
		return nil
	}
	c.order.MoveToFront(el)
	return el.Value.(*cachedEngine).e
}

// put keeps e as the connection's engine, dropping the least recently
// used engines beyond the bound.
func (c *engineCache) put(id string, e *engine) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el := c.byID[id]; el != nil {
		el.Value.(*cachedEngine).e = e
		c.order.MoveToFront(el)
		return
	}
	c.byID[id] = c.order.PushFront(&cachedEngine{id: id, e: e})
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.byID, last.Value.(*cachedEngine).id)
		c.evicted++
	}
}

// remove forgets the connection's engine.
func (c *engineCache) remove(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el := c.byID[id]; el != nil {
		c.order.Remove(el)
		delete(c.byID, id)
	}
}

// stats is how many engines are kept, and how many were dropped for the
// bound since the server started.
func (c *engineCache) stats() (kept int, evicted int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len(), c.evicted
}

type loadResult int

const (
	loadHit loadResult = iota
	loadRevalidated
	loadBuilt
)

// count records what load found.
func (c *engineCache) count(r loadResult) {
	switch r {
	case loadHit:
		c.hits.Add(1)
	case loadRevalidated:
		c.revalidated.Add(1)
	case loadBuilt:
		c.built.Add(1)
	}
}

// engineCacheCollector reports the engine cache of this replica at scrape
// time, from the cache's own counters (no second bookkeeping to agree).
type engineCacheCollector struct {
	c                                  *engineCache
	lookups, evictions, size, capacity *prometheus.Desc
}

func newEngineCacheCollector(c *engineCache) *engineCacheCollector {
	return &engineCacheCollector{c: c,
		lookups: prometheus.NewDesc("connector_engine_cache_lookups_total",
			"Engines asked of this replica's cache, by result: hit (used as kept), revalidated (kept, read again after a change somewhere, still current), built (none kept or out of date: read and built from the store).",
			[]string{"result"}, nil),
		evictions: prometheus.NewDesc("connector_engine_cache_evictions_total", "Engines dropped from this replica's cache for its bound (--engine-cache), least recently used first.", nil, nil),
		size:      prometheus.NewDesc("connector_engine_cache_engines", "Engines kept in this replica's cache.", nil, nil),
		capacity:  prometheus.NewDesc("connector_engine_cache_capacity", "The bound of this replica's engine cache (--engine-cache; 0 keeps none).", nil, nil),
	}
}

func (ec *engineCacheCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- ec.lookups
	ch <- ec.evictions
	ch <- ec.size
	ch <- ec.capacity
}

func (ec *engineCacheCollector) Collect(ch chan<- prometheus.Metric) {
	c := ec.c
	kept, evicted := c.stats()
	hits, revalidated, built := c.hits.Load(), c.revalidated.Load(), c.built.Load()
	ch <- prometheus.MustNewConstMetric(ec.lookups, prometheus.CounterValue, float64(hits), "hit")
	ch <- prometheus.MustNewConstMetric(ec.lookups, prometheus.CounterValue, float64(revalidated), "revalidated")
	ch <- prometheus.MustNewConstMetric(ec.lookups, prometheus.CounterValue, float64(built), "built")
	ch <- prometheus.MustNewConstMetric(ec.evictions, prometheus.CounterValue, float64(evicted))
	ch <- prometheus.MustNewConstMetric(ec.size, prometheus.GaugeValue, float64(kept))
	ch <- prometheus.MustNewConstMetric(ec.capacity, prometheus.GaugeValue, float64(c.max))
}
