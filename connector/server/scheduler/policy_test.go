package scheduler_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/server/scheduler"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/token"
	"github.com/connector-engine/connector/definitions"
)

func TestWindow(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	hour := token.Token{Obtained: now, Expiry: now.Add(time.Hour)}
	ahead := definitions.KeepAlive{RefreshAhead: true}
	idle := definitions.KeepAlive{IdleRefresh: 24 * time.Hour}
	both := definitions.KeepAlive{RefreshAhead: true, IdleRefresh: 24 * time.Hour}
	for _, c := range []struct {
		name       string
		tok        token.Token
		policy     definitions.KeepAlive
		margin     time.Duration
		start, end time.Time
		ok         bool
	}{
		{"1h token, 2m cap: from 4m to 2m before expiry", hour, ahead, 2 * time.Minute, now.Add(56 * time.Minute), now.Add(58 * time.Minute), true},
		{"60s token: a tenth is the margin", token.Token{Obtained: now, Expiry: now.Add(time.Minute)}, ahead, 2 * time.Minute, now.Add(48 * time.Second), now.Add(54 * time.Second), true},
		{"definition margin below a tenth", hour, ahead, 30 * time.Second, now.Add(59 * time.Minute), now.Add(59*time.Minute + 30*time.Second), true},
		{"no expiry: nothing ahead of it", token.Token{Obtained: now}, ahead, 2 * time.Minute, time.Time{}, time.Time{}, false},
		{"idle: the last tenth of the interval", hour, idle, 2 * time.Minute, now.Add(21*time.Hour + 36*time.Minute), now.Add(24 * time.Hour), true},
		{"idle, obtained unknown: issued at", token.Token{IssuedAt: now.Add(-time.Hour), Expiry: now.Add(time.Hour)}, idle, 0, now.Add(20*time.Hour + 36*time.Minute), now.Add(23 * time.Hour), true},
		{"idle, age unknown: at once", token.Token{Expiry: now.Add(time.Hour)}, idle, 0, time.Time{}, time.Time{}, true},
		{"both: the access token's window comes first", hour, both, 2 * time.Minute, now.Add(56 * time.Minute), now.Add(58 * time.Minute), true},
		{"both: the idle window comes first", token.Token{Obtained: now, Expiry: now.Add(30 * 24 * time.Hour)}, both, 2 * time.Minute, now.Add(21*time.Hour + 36*time.Minute), now.Add(24 * time.Hour), true},
		{"off", hour, definitions.KeepAlive{}, 2 * time.Minute, time.Time{}, time.Time{}, false},
	} {
		start, end, ok := scheduler.Window(c.tok, c.policy, c.margin)
		if ok != c.ok || !start.Equal(c.start) || !end.Equal(c.end) {
			t.Errorf("%s: Window = %s, %s, %t; want %s, %s, %t", c.name, start, end, ok, c.start, c.end, c.ok)
		}
	}
}

func TestDue(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	start, end := now.Add(56*time.Minute), now.Add(58*time.Minute)
	for _, c := range []struct {
		name       string
		now        time.Time
		start, end time.Time
		lo, hi     time.Time
	}{
		{"a future window: inside it", now, start, end, start, end},
		{"an open window: in what is left", now.Add(57 * time.Minute), start, end, now.Add(57 * time.Minute), end},
		{"a closed window: now", now.Add(time.Hour), start, end, now.Add(time.Hour), now.Add(time.Hour)},
		{"an empty window at once: now", now, time.Time{}, time.Time{}, now, now},
	} {
		got := scheduler.Due("con_1", c.now, c.start, c.end)
		if got.Before(c.lo) || got.After(c.hi) {
			t.Errorf("%s: Due = %s, want within [%s, %s]", c.name, got, c.lo, c.hi)
		}
		if again := scheduler.Due("con_1", c.now, c.start, c.end); !again.Equal(got) {
			t.Errorf("%s: Due is not the same for the same connection: %s then %s", c.name, got, again)
		}
	}
	// 10,000 tokens expiring at one instant are spread over the whole
	// window: every tenth of it gets some, none gets a crowd.
	var tenths [10]int
	for i := range 10000 {
		d := scheduler.Due(fmt.Sprintf("con_%d", i), now, start, end)
		if d.Before(start) || !d.Before(end) {
			t.Fatalf("Due = %s outside [%s, %s)", d, start, end)
		}
		tenths[int(d.Sub(start)*10/end.Sub(start))]++
	}
	for i, n := range tenths {
		if n < 800 || n > 1200 {
			t.Errorf("tenth %d of the window got %d of 10000 refreshes, want about 1000: %v", i, n, tenths)
		}
	}
}

func TestBackoffRetry(t *testing.T) {
	b := scheduler.Backoff{Base: 30 * time.Second, Max: time.Hour}
	unavailable := &connector.TokenError{Op: "refresh", Status: 503, Code: "temporarily_unavailable"}
	for _, c := range []struct {
		name      string
		err       error
		attempt   int
		permanent bool
		lo, hi    time.Duration
	}{
		{"invalid_grant (the engine's NeedsReauthError)", &connector.NeedsReauthError{Reason: "the provider rejected the refresh token"}, 1, true, 0, 0},
		{"wrapped NeedsReauthError", fmt.Errorf("x: %w", &connector.NeedsReauthError{}), 3, true, 0, 0},
		{"a token bound to another connection", &connector.BindingError{ID: "c", Parts: []string{"tenant"}}, 1, true, 0, 0},
		{"503, first failure", unavailable, 1, false, 15 * time.Second, 30 * time.Second},
		{"503, third failure", unavailable, 3, false, time.Minute, 2 * time.Minute},
		{"503, 20th failure: the cap", unavailable, 20, false, 30 * time.Minute, time.Hour},
		{"429", &connector.TokenError{Status: 429, Code: "rate_limited"}, 2, false, 30 * time.Second, time.Minute},
		{"network", &connector.RequestError{Op: "refresh", Err: errors.New("connection refused")}, 1, false, 15 * time.Second, 30 * time.Second},
		{"lock held too long", store.ErrLockTimeout, 2, false, 30 * time.Second, time.Minute},
		{"invalid_client: the operator's to fix, slowly", &connector.TokenError{Status: 401, Code: "invalid_client"}, 1, false, 30 * time.Minute, time.Hour},
	} {
		for range 20 { // the jitter
			permanent, wait := b.Retry(c.err, c.attempt)
			if permanent != c.permanent || wait < c.lo || wait > c.hi {
				t.Errorf("%s: Retry(attempt %d) = %t, %s; want %t within [%s, %s]", c.name, c.attempt, permanent, wait, c.permanent, c.lo, c.hi)
				break
			}
		}
	}
}
