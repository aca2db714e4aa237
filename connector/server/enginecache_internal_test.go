package server

import (
	"fmt"
	"sync"
	"testing"
)

// The engine cache stays within its bound however many connections are
// put, concurrently; it drops the least recently used first, a get marks
// an engine used, and remove forgets one.
func TestEngineCacheBounded(t *testing.T) {
	c := newEngineCache(100)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 5000 {
				id := fmt.Sprintf("con_%d_%d", w, i)
				c.put(id, &engine{})
				c.get(fmt.Sprintf("con_%d_%d", w, i/2)) // some hits, some misses
				if kept, _ := c.stats(); kept > 100 {
					t.Errorf("%d engines kept, over the bound of 100", kept)
				}
			}
		})
	}
	wg.Wait()
	if kept, evicted := c.stats(); kept != 100 || evicted != 8*5000-100 || len(c.byID) != 100 {
		t.Fatalf("kept %d (map %d), evicted %d", kept, len(c.byID), evicted)
	}

	c = newEngineCache(3)
	a, b := &engine{}, &engine{}
	c.put("a", a)
	c.put("b", b)
	c.put("c", &engine{})
	if c.get("a") != a { // a is now the most recently used
		t.Fatal("a lost")
	}
	c.put("d", &engine{}) // drops b, the least recently used
	if c.get("b") != nil || c.get("a") != a || c.get("c") == nil || c.get("d") == nil {
		t.Fatal("the least recently used engine was not the one dropped")
	}
	a2 := &engine{}
	c.put("a", a2) // replaced, not added
	if kept, _ := c.stats(); kept != 3 || c.get("a") != a2 {
		t.Fatalf("replacing an engine: %d kept", kept)
	}
	c.remove("a")
	if kept, _ := c.stats(); kept != 2 || c.get("a") != nil {
		t.Fatal("remove did not forget the engine")
	}
	if d := newEngineCache(0); d.max != DefaultEngineCache {
		t.Fatalf("default bound %d", d.max)
	}
	none := newEngineCache(NoEngineCache)
	none.put("a", a)
	if kept, evicted := none.stats(); kept != 0 || evicted != 1 || none.get("a") != nil {
		t.Fatalf("NoEngineCache kept %d engines (evicted %d)", kept, evicted)
	}
}
