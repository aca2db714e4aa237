package server_test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/server"
)

// TestRateLimitWaitMetrics: proxied calls beyond the provider's rate limit
// (2 a second) wait for it (the transport reads the emulator's
// X-Rate-Limit-Remaining and -Reset, or a 429's Retry-After) and succeed, and /metrics counts the waits and their
// seconds by reason, from the transport's Wait hook.
func TestRateLimitWaitMetrics(t *testing.T) {
	e := newEnv(t, t.TempDir()+"/connector.db", envOptions{})
	cl := e.oauthClient("acme")
	conn := e.connection("acme", cl)
	e.authorize("acme", conn, 0, 0)
	e.emu.SetRateLimit(2, time.Second)
	for range 5 {
		e.must(200, 0, "GET", "/v1/connections/"+conn+"/proxy/rest/v1.0/me", e.keys["acme:proxy"], nil)
	}
	body := string(e.call(0, "GET", "/metrics", "", nil).body)
	count := regexp.MustCompile(`connector_rate_limit_waits_total\{reason="([^"]+)"\} (\d+)`).FindAllStringSubmatch(body, -1)
	secs := regexp.MustCompile(`connector_rate_limit_wait_seconds_total\{reason="[^"]+"\} ([0-9.e+-]+)`).FindAllStringSubmatch(body, -1)
	total, waited := 0, 0.0
	for _, m := range count {
		n, _ := strconv.Atoi(m[2])
		total += n
	}
	for _, m := range secs {
		f, _ := strconv.ParseFloat(m[1], 64)
		waited += f
	}
	if total == 0 || waited <= 0 {
		t.Fatalf("no rate-limit waits counted (%d, %.3f s) for 5 calls under a limit of 2 a second:\n%s", total, waited, body)
	}
	t.Logf("%d waits, %.2f s, reasons %v", total, waited, count)
}

// engineCacheMetrics reads the engine cache's figures from /metrics.
func engineCacheMetrics(t *testing.T, e *env) map[string]float64 {
	t.Helper()
	body := string(e.call(0, "GET", "/metrics", "", nil).body)
	out := map[string]float64{}
	for _, m := range regexp.MustCompile(`(?m)^connector_engine_cache_(\w+)(?:\{result="(\w+)"\})? (\S+)$`).FindAllStringSubmatch(body, -1) {
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Fatal(err)
		}
		name := m[1]
		if m[2] != "" {
			name += ":" + m[2]
		}
		out[name] = v
	}
	for _, k := range []string{"lookups_total:hit", "lookups_total:revalidated", "lookups_total:built", "evictions_total", "engines", "capacity"} {
		if _, ok := out[k]; !ok {
			t.Fatalf("/metrics lacks connector_engine_cache_%s:\n%s", k, body)
		}
	}
	return out
}

// TestEngineCacheMetrics: /metrics counts what the engine cache did. Three
// connections used in turn through a cache of two miss every time (each is
// the least recently used when its turn comes), so each use builds an
// engine and drops one; using the last again is a hit. With NoEngineCache
// every use builds and nothing is kept.
func TestEngineCacheMetrics(t *testing.T) {
	token := func(e *env, conn string) {
		e.must(200, 0, "POST", "/v1/connections/"+conn+"/token", e.keys["acme:token"], nil)
	}
	e := newEnv(t, t.TempDir()+"/connector.db", envOptions{engineCache: 2})
	cl := e.oauthClient("acme")
	conns := []string{e.connection("acme", cl), e.connection("acme", cl), e.connection("acme", cl)}
	for _, c := range conns {
		e.authorize("acme", c, 0, 0)
	}
	for _, c := range conns { // after this the cache holds the last two
		token(e, c)
	}
	before := engineCacheMetrics(t, e)
	for _, c := range conns {
		token(e, c)
	}
	token(e, conns[2])
	after := engineCacheMetrics(t, e)
	delta := func(k string) float64 { return after[k] - before[k] }
	if delta("lookups_total:built") != 3 || delta("evictions_total") != 3 || delta("lookups_total:hit") != 1 ||
		delta("lookups_total:revalidated") != 0 || after["engines"] != 2 || after["capacity"] != 2 {
		t.Errorf("engine cache of 2 over 3 connections in turn: before %v, after %v; want 3 more built, 3 more evicted, 1 more hit, 2 kept", before, after)
	}

	e = newEnv(t, t.TempDir()+"/connector.db", envOptions{engineCache: server.NoEngineCache})
	conn := e.connection("acme", e.oauthClient("acme"))
	e.authorize("acme", conn, 0, 0)
	before = engineCacheMetrics(t, e)
	token(e, conn)
	token(e, conn)
	after = engineCacheMetrics(t, e)
	if delta("lookups_total:built") != 2 || after["lookups_total:hit"]+after["lookups_total:revalidated"] != 0 || after["engines"] != 0 || after["capacity"] != 0 {
		t.Errorf("no engine cache: before %v, after %v; want every use built, none kept", before, after)
	}
}

// TestWebhookMetricLabelsBounded: deliveries posted to definitions that are
// not loaded count under one label, "(unknown)", never under the name in
// the URL: a stranger cannot add a time series per made-up name.
func TestWebhookMetricLabelsBounded(t *testing.T) {
	e := newEnv(t, t.TempDir()+"/connector.db", envOptions{})
	for _, name := range []string{"made-up-one", "made-up-two", "made-up-three"} {
		if r := e.call(0, "POST", "/v1/webhooks/"+name+"/some-client", "", map[string]any{"id": 1}); r.status != 404 {
			t.Fatalf("a delivery for %s: %d %s; want 404", name, r.status, r.body)
		}
	}
	body := string(e.call(0, "GET", "/metrics", "", nil).body)
	if strings.Contains(body, "made-up") {
		t.Errorf("/metrics names a definition taken from a URL:\n%s", body)
	}
	if want := `connector_webhook_deliveries_total{definition="(unknown)",outcome="invalid"} 3`; !strings.Contains(body, want) {
		t.Errorf("/metrics lacks %s", want)
	}
}
