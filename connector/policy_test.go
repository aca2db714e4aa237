package connector

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestPolicyDecide(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	procore := &Policy{
		MaxAttempts: 4, MaxWait: time.Minute, IdempotencyHeader: "Idempotency-Token",
		RemainingHeader: "X-Rate-Limit-Remaining", ResetHeader: "X-Rate-Limit-Reset",
		BackoffMin: 100 * time.Millisecond, BackoffMax: time.Second,
	}
	github := &Policy{MaxAttempts: 3, MaxWait: time.Minute, RemainingHeader: "X-Ratelimit-Remaining", ResetHeader: "X-Ratelimit-Reset", ResetDelta: true, BackoffMin: 100 * time.Millisecond, BackoffMax: time.Second}
	dialErr := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	resetErr := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}

	type want struct {
		retry   bool
		wait    time.Duration // exact when waitMax is 0
		waitMax time.Duration // for jittered backoff: 0 < wait <= waitMax
		err     string        // a *WaitError whose message contains this
		ctxErr  error         // the context's error instead of a retry
	}
	tests := []struct {
		name    string
		policy  *Policy
		method  string
		header  http.Header // on the request
		attempt int
		status  int
		resp    http.Header
		err     error
		cancel  bool
		want    want
	}{
		{name: "200 is final", method: "GET", status: 200, want: want{}},
		{name: "404 is final", method: "GET", status: 404, want: want{}},
		{name: "429 with Retry-After seconds", method: "GET", status: 429, resp: http.Header{"Retry-After": {"7"}}, want: want{retry: true, wait: 7 * time.Second}},
		{name: "429 with Retry-After date", method: "GET", status: 429, resp: http.Header{"Retry-After": {now.Add(20 * time.Second).Format(http.TimeFormat)}}, want: want{retry: true, wait: 20 * time.Second}},
		{name: "429 with a Retry-After date in the past", method: "GET", status: 429, resp: http.Header{"Retry-After": {now.Add(-time.Hour).Format(http.TimeFormat)}}, want: want{retry: true, wait: 0}},
		{name: "429 with X-Rate-Limit-Reset only (unix seconds)", method: "GET", status: 429, resp: http.Header{"X-Rate-Limit-Reset": {strconv.FormatInt(now.Add(12*time.Second).Unix(), 10)}}, want: want{retry: true, wait: 12 * time.Second}},
		{name: "429 with x-ratelimit-reset as delta seconds", policy: github, method: "GET", status: 429, resp: http.Header{"X-Ratelimit-Reset": {"3"}}, want: want{retry: true, wait: 3 * time.Second}},
		{name: "Retry-After wins over the reset header", method: "GET", status: 429, resp: http.Header{"Retry-After": {"2"}, "X-Rate-Limit-Reset": {strconv.FormatInt(now.Add(50*time.Second).Unix(), 10)}}, want: want{retry: true, wait: 2 * time.Second}},
		{name: "429 without any hint backs off", method: "GET", status: 429, attempt: 2, want: want{retry: true, waitMax: 200 * time.Millisecond}},
		{name: "Retry-After over the cap fails fast", method: "GET", status: 429, resp: http.Header{"Retry-After": {"7200"}}, want: want{err: "Retry-After asks to wait 2h0m0s, longer than the 1m0s"}},
		{name: "reset over the cap fails fast", method: "GET", status: 429, resp: http.Header{"X-Rate-Limit-Reset": {strconv.FormatInt(now.Add(time.Hour).Unix(), 10)}}, want: want{err: "X-Rate-Limit-Reset asks to wait 1h0m0s"}},
		{name: "503 with Retry-After", method: "GET", status: 503, resp: http.Header{"Retry-After": {"1"}}, want: want{retry: true, wait: time.Second}},
		{name: "503 backs off exponentially", method: "GET", status: 503, attempt: 3, want: want{retry: true, waitMax: 400 * time.Millisecond}},
		{name: "500 on GET", method: "GET", status: 500, want: want{retry: true, waitMax: 100 * time.Millisecond}},
		{name: "502 on DELETE", method: "DELETE", status: 502, want: want{retry: true, waitMax: 100 * time.Millisecond}},
		{name: "504 on PUT", method: "PUT", status: 504, want: want{retry: true, waitMax: 100 * time.Millisecond}},
		{name: "501 is final", method: "GET", status: 501, want: want{}},
		{name: "POST without idempotency key: 503 not retried", method: "POST", status: 503, resp: http.Header{"Retry-After": {"1"}}, want: want{}},
		{name: "POST without idempotency key: 429 not retried", method: "POST", status: 429, want: want{}},
		{name: "POST without idempotency key: connection reset not retried", method: "POST", err: resetErr, want: want{}},
		{name: "POST with idempotency key: 503 retried", method: "POST", header: http.Header{"Idempotency-Token": {"k1"}}, status: 503, resp: http.Header{"Retry-After": {"1"}}, want: want{retry: true, wait: time.Second}},
		{name: "PATCH with idempotency key: reset retried", method: "PATCH", header: http.Header{"Idempotency-Token": {"k1"}}, err: resetErr, want: want{retry: true, waitMax: 100 * time.Millisecond}},
		{name: "PATCH with a key but the definition names none", policy: github, method: "PATCH", header: http.Header{"Idempotency-Token": {"k1"}}, status: 503, want: want{}},
		{name: "POST that never left (dial error) is retried", method: "POST", err: dialErr, want: want{retry: true, waitMax: 100 * time.Millisecond}},
		{name: "GET connection reset retried", method: "GET", err: resetErr, want: want{retry: true, waitMax: 100 * time.Millisecond}},
		{name: "last attempt is final", method: "GET", attempt: 4, status: 503, want: want{}},
		{name: "context cancelled: a retryable answer gives the context's error", method: "GET", status: 503, cancel: true, want: want{ctxErr: context.Canceled}},
		{name: "context cancelled: a final answer is returned", method: "GET", status: 404, cancel: true, want: want{}},
		{name: "context error is final", method: "GET", err: context.DeadlineExceeded, want: want{}},
		{name: "no token (needs re-authorization) is final", method: "GET", err: &credentialError{&NeedsReauthError{Reason: "revoked"}}, want: want{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.policy
			if p == nil {
				p = procore
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel {
				cancel()
			}
			req, _ := http.NewRequestWithContext(ctx, tt.method, "https://api.example.com/x", nil)
			for k, v := range tt.header {
				req.Header[k] = v
			}
			var resp *http.Response
			if tt.err == nil {
				resp = &http.Response{StatusCode: tt.status, Header: tt.resp}
				if resp.Header == nil {
					resp.Header = http.Header{}
				}
			}
			attempt := tt.attempt
			if attempt == 0 {
				attempt = 1
			}
			d := p.Decide(req, attempt, resp, tt.err, now)
			if tt.want.ctxErr != nil {
				if d.Retry || !errors.Is(d.Err, tt.want.ctxErr) {
					t.Fatalf("Decide = %+v, want Err %v", d, tt.want.ctxErr)
				}
				return
			}
			if tt.want.err != "" {
				var we *WaitError
				if !errors.As(d.Err, &we) || !strings.Contains(d.Err.Error(), tt.want.err) {
					t.Fatalf("Decide = %+v, want a WaitError containing %q", d, tt.want.err)
				}
				if d.Retry {
					t.Fatal("a WaitError must not retry")
				}
				return
			}
			if d.Err != nil || d.Retry != tt.want.retry {
				t.Fatalf("Decide = %+v, want retry=%v", d, tt.want.retry)
			}
			if !d.Retry {
				return
			}
			if tt.want.waitMax > 0 {
				if d.Wait <= 0 || d.Wait > tt.want.waitMax {
					t.Fatalf("wait %v, want within (0, %v]", d.Wait, tt.want.waitMax)
				}
			} else if d.Wait != tt.want.wait {
				t.Fatalf("wait %v, want %v", d.Wait, tt.want.wait)
			}
		})
	}
}

func TestPolicyExhausted(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	p := &Policy{RemainingHeader: "X-Rate-Limit-Remaining", ResetHeader: "X-Rate-Limit-Reset", BackoffMin: 250 * time.Millisecond, BackoffMax: 10 * time.Second}
	tests := []struct {
		name      string
		h         http.Header
		exhausted bool
		until     time.Time
	}{
		{"remaining 0 with reset", http.Header{"X-Rate-Limit-Remaining": {"0"}, "X-Rate-Limit-Reset": {"1800000030"}}, true, now.Add(30 * time.Second)},
		{"remaining 5", http.Header{"X-Rate-Limit-Remaining": {"5"}, "X-Rate-Limit-Reset": {"1800000030"}}, false, time.Time{}},
		// Without a usable reset header, the pause is a backoff, 0.5-1s here.
		{"remaining 0 without reset", http.Header{"X-Rate-Limit-Remaining": {"0"}}, true, now.Add(time.Second)},
		{"garbage reset", http.Header{"X-Rate-Limit-Remaining": {"0"}, "X-Rate-Limit-Reset": {"soon"}}, true, now.Add(time.Second)},
		{"no headers", http.Header{}, false, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			until, ok := p.Exhausted(&http.Response{Header: tt.h}, now)
			if ok && tt.h.Get("X-Rate-Limit-Reset") != "1800000030" && until.After(now.Add(time.Second/2-1)) && !until.After(tt.until) {
				return // a jittered backoff within its bounds
			}
			if ok != tt.exhausted || !until.Equal(tt.until) {
				t.Fatalf("Exhausted = %v, %v; want %v, %v", until, ok, tt.until, tt.exhausted)
			}
		})
	}
}

// HubSpot and Xero send a remaining count and no reset: a declared window
// is waited out when nothing remains.
func TestPolicyExhaustedWindow(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	p := &Policy{RemainingHeader: "X-Hubspot-Ratelimit-Remaining", Per: 10 * time.Second}
	if until, ok := p.Exhausted(&http.Response{Header: http.Header{"X-Hubspot-Ratelimit-Remaining": {"0"}}}, now); !ok || !until.Equal(now.Add(10*time.Second)) {
		t.Fatalf("Exhausted = %v, %v; want the window", until, ok)
	}
	if _, ok := p.Exhausted(&http.Response{Header: http.Header{"X-Hubspot-Ratelimit-Remaining": {"3"}}}, now); ok {
		t.Fatal("3 remaining is not exhausted")
	}
}

// TestPacer: whatever the order and timing of reservations, no window of
// length per holds more than limit of the times they are given.
func TestPacer(t *testing.T) {
	if NewPacer(0, time.Second) != nil || NewPacer(5, 0) != nil {
		t.Fatal("a pacer without a limit or window")
	}
	const limit, per = 3, 10 * time.Second
	p := NewPacer(limit, per)
	start := time.Unix(1_800_000_000, 0)
	var sends []time.Time
	// Bursts and gaps: reservations at these offsets from start.
	for _, off := range []time.Duration{0, 0, 0, 0, 0, time.Second, 25 * time.Second, 25 * time.Second, 26 * time.Second, 26 * time.Second, 60 * time.Second} {
		now := start.Add(off)
		sends = append(sends, now.Add(p.Reserve(now)))
	}
	for i := range sends {
		if i >= limit && sends[i].Sub(sends[i-limit]) < per {
			t.Fatalf("sends %d and %d are %s apart, inside one %s window: %v", i-limit, i, sends[i].Sub(sends[i-limit]), per, sends)
		}
	}
	// The first limit go at once; the 4th waits for the first's window.
	if !sends[2].Equal(start) || !sends[3].Equal(start.Add(per)) || !sends[10].Equal(start.Add(60*time.Second)) {
		t.Fatalf("sends %v", sends)
	}
}
