package events

import (
	"errors"
	"net/http"
	"testing"
	"time"
)

func TestPolicyDecide(t *testing.T) {
	p := DefaultPolicy
	p.Jitter = func() float64 { return 0.5 } // delays at 3/4 of nominal
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	netErr := errors.New("dial tcp 192.0.2.1:443: connection refused")
	cases := []struct {
		name      string
		a         Attempt
		delivered bool
		retry     bool
		delay     time.Duration
	}{
		{"200", Attempt{N: 1, Status: 200}, true, false, 0},
		{"204", Attempt{N: 9, Status: 204}, true, false, 0},
		{"500 first", Attempt{N: 1, Status: 500}, false, true, 7500 * time.Millisecond},
		{"503 third", Attempt{N: 3, Status: 503}, false, true, 30 * time.Second},
		{"502 capped", Attempt{N: 20, Status: 502}, false, true, 45 * time.Minute},
		{"huge attempt count capped", Attempt{N: 200, Status: 500}, false, true, 45 * time.Minute},
		{"network error", Attempt{N: 2, Err: netErr}, false, true, 15 * time.Second},
		{"408", Attempt{N: 1, Status: 408}, false, true, 7500 * time.Millisecond},
		{"429 Retry-After seconds", Attempt{N: 1, Status: 429, RetryAfter: "120"}, false, true, 2 * time.Minute},
		{"429 Retry-After date", Attempt{N: 1, Status: 429, RetryAfter: t0.Add(90 * time.Second).Format(http.TimeFormat)}, false, true, 90 * time.Second},
		{"429 Retry-After beyond the cap", Attempt{N: 1, Status: 429, RetryAfter: "86400"}, false, true, time.Hour},
		{"429 Retry-After 0", Attempt{N: 1, Status: 429, RetryAfter: "0"}, false, true, time.Second},
		{"429 bad Retry-After", Attempt{N: 1, Status: 429, RetryAfter: "soon"}, false, true, 7500 * time.Millisecond},
		{"500 ignores Retry-After", Attempt{N: 1, Status: 500, RetryAfter: "600"}, false, true, 7500 * time.Millisecond},
		{"no endpoint", Attempt{N: 1, NoEndpoint: true}, false, true, 7500 * time.Millisecond},
		{"400 retried a few times", Attempt{N: 4, Status: 400}, false, true, 60 * time.Second},
		{"400 given up", Attempt{N: 5, Status: 400}, false, false, 0},
		{"401 given up", Attempt{N: 5, Status: 401}, false, false, 0},
		{"redirect refused", Attempt{N: 5, Status: 302}, false, false, 0},
		{"refused destination", Attempt{N: 5, Err: ErrDestination, Refused: true}, false, false, 0},
		{"410 at once", Attempt{N: 1, Status: 410}, false, false, 0},
		{"500 past the budget", Attempt{N: 30, Status: 500, Since: t0.Add(-24 * time.Hour)}, false, false, 0},
		{"500 just inside the budget", Attempt{N: 30, Status: 500, Since: t0.Add(-24*time.Hour + time.Second)}, false, true, 45 * time.Minute},
	}
	for _, tc := range cases {
		a := tc.a
		a.Now = t0
		if a.Since.IsZero() {
			a.Since = t0.Add(-time.Minute)
		}
		d := p.Decide(a)
		if d.Delivered != tc.delivered || d.Retry != tc.retry || d.Delay != tc.delay {
			t.Errorf("%s: %+v, want delivered=%v retry=%v delay=%v", tc.name, d, tc.delivered, tc.retry, tc.delay)
		}
		if !d.Delivered && d.Reason == "" {
			t.Errorf("%s: a failure without a reason", tc.name)
		}
	}
}

// TestPolicySchedule: an endpoint that stays down is retried for at least
// the 24-hour budget whatever the jitter draws, then dead-lettered.
func TestPolicySchedule(t *testing.T) {
	for _, jitter := range []float64{0, 0.5, 0.999} {
		p := DefaultPolicy
		p.Jitter = func() float64 { return jitter }
		since := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		now, n := since, 0
		for {
			n++
			d := p.Decide(Attempt{N: n, Since: since, Now: now, Status: 503})
			if !d.Retry {
				break
			}
			if d.Delay > p.Cap || d.Delay < p.Base/2 {
				t.Fatalf("jitter %v: delay %v outside [Base/2, Cap]", jitter, d.Delay)
			}
			now = now.Add(d.Delay)
			if n > 1000 {
				t.Fatal("never gives up")
			}
		}
		if span := now.Sub(since); span < 24*time.Hour || span > 26*time.Hour {
			t.Fatalf("jitter %v: retried for %v over %d attempts; want 24h to 26h", jitter, span, n)
		}
		t.Logf("jitter %.3f: %d attempts over %v", jitter, n, now.Sub(since).Round(time.Minute))
	}
}
