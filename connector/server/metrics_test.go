package server_test

import (
	"regexp"
	"strconv"
	"testing"
	"time"
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
