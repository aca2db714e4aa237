package main

import (
	"fmt"
	"net/http"
	"time"

	"github.com/connector-engine/connector/connector"
)

// announceWait is the shortest wait said on stderr without --verbose: a
// command that pauses longer than this says what for, so that it does not
// look hung.
const announceWait = 3 * time.Second

// apiTrace returns the hooks the CLI sets on a connection's API. With
// --verbose (v not nil): a line per exchange, retry, wait and refresh.
// Without: a line per wait of announceWait or more. Lines go through the
// verbose redaction when there is one; the engine has already put every
// secret it knows as *** in what the hooks receive.
func (a *app) apiTrace(v *verboseTransport) *connector.Trace {
	w := a.stderr
	say := func(line string) {
		if v != nil {
			line = v.redact(line)
		}
		fmt.Fprintln(w, safeText(line))
	}
	wait := func(e connector.WaitInfo) {
		if v != nil || e.Wait >= announceWait {
			say(waitLine(e))
		}
	}
	if v == nil {
		return &connector.Trace{Wait: wait}
	}
	return &connector.Trace{
		Done: func(d connector.DoneInfo) {
			v.mu.Lock()
			v.n++
			n := v.n
			v.mu.Unlock()
			say(exchangeLine(n, d))
		},
		Retry: func(r connector.RetryInfo) {
			say(fmt.Sprintf("retry: %s %s: attempt %d %s; sending it again (attempt %d)",
				r.Method, r.URL, r.Attempt, outcome(r.Status, r.Err), r.Attempt+1))
		},
		Wait: wait,
		Refresh: func(r connector.RefreshInfo) {
			took := r.Duration.Round(time.Millisecond)
			if r.Err != nil {
				say(fmt.Sprintf("refresh: the API refused the access token (401) for %s %s; renewing it failed after %s: %v", r.Method, r.URL, took, r.Err))
				return
			}
			say(fmt.Sprintf("refresh: the API refused the access token (401) for %s %s; renewed it in %s, sending the request again", r.Method, r.URL, took))
		},
	}
}

func exchangeLine(n int, d connector.DoneInfo) string {
	line := fmt.Sprintf("http %d: %s %s", n, d.Method, d.URL)
	switch {
	case d.Replay:
		line += " (replay after a token refresh)"
	case d.Attempt > 1:
		line += fmt.Sprintf(" (attempt %d)", d.Attempt)
	}
	if d.IdempotencyKey != "" {
		line += fmt.Sprintf(" [%s: %s]", d.IdempotencyHeader, d.IdempotencyKey)
	}
	took := d.Duration.Round(time.Millisecond)
	if d.Err != nil {
		return line + fmt.Sprintf(" -> error after %s: %v", took, d.Err)
	}
	return line + fmt.Sprintf(" -> %d %s in %s", d.Status, http.StatusText(d.Status), took)
}

func outcome(status int, err error) string {
	if err != nil {
		return fmt.Sprintf("failed (%v)", err)
	}
	return fmt.Sprintf("answered %d %s", status, http.StatusText(status))
}

// waitLine says how long the engine waits and what for:
//
//	waiting 1m0s: rate limit of api.procore.com (Retry-After)
//	waiting 2s: rate limit of api.hubapi.com (the declared window of 10s, request.rate_limit.per)
//	waiting 400ms: api.procore.com answered 503 Service Unavailable (backoff)
func waitLine(e connector.WaitInfo) string {
	d := e.Wait.Round(time.Millisecond)
	if d >= 10*time.Second {
		d = e.Wait.Round(time.Second)
	}
	why := string(e.Reason)
	switch e.Reason {
	case connector.WaitReset, connector.WaitRetryAfter:
		why = e.Header
	case connector.WaitWindow:
		why = fmt.Sprintf("the declared window of %s, request.rate_limit.per", e.Per)
	case connector.WaitLimit:
		why = fmt.Sprintf("the declared limit of %d per %s, request.rate_limit.limit", e.Limit, e.Per)
	}
	if e.RateLimited() {
		return fmt.Sprintf("waiting %s: rate limit of %s (%s)", d, e.Host, why)
	}
	if e.Status != 0 {
		return fmt.Sprintf("waiting %s: %s answered %d %s (%s)", d, e.Host, e.Status, http.StatusText(e.Status), why)
	}
	return fmt.Sprintf("waiting %s: %s (%s)", d, e.Host, why)
}
