package events

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// Policy decides, after each failed attempt, whether and when to try again.
// The zero value is not usable; start from DefaultPolicy.
type Policy struct {
	// Base is the delay after the first failure; each further failure
	// doubles it, up to Cap.
	Base, Cap time.Duration
	// Budget is how long an event is retried, from its first attempt since
	// it was appended (or replayed): after a failure at or past it, the
	// event is dead-lettered. Every event gets at least one attempt, and
	// one queued behind a failing event of its connection gets the whole
	// budget once its turn comes.
	Budget time.Duration
	// RefusedAttempts is how many attempts an event gets when the URL
	// refuses it (a 4xx other than 408 and 429, a redirect, a destination
	// the rules refuse): a receiver that is misconfigured is often fixed
	// within minutes, but one that refuses for a day must not hold its
	// connection's later events for a day. 410 Gone dead-letters at once.
	RefusedAttempts int
	// Jitter returns a number in [0, 1); nil means math/rand/v2.
	Jitter func() float64
}

// DefaultPolicy retries with delays from 10 s doubling to an hour, each
// between half and all of its nominal length, for 24 hours: 33 to 57
// attempts (about 41) for an endpoint that stays down. Refusals get 5
// attempts over 1 to 3 minutes.
var DefaultPolicy = Policy{Base: 10 * time.Second, Cap: time.Hour, Budget: 24 * time.Hour, RefusedAttempts: 5}

// Attempt is what happened at one delivery attempt.
type Attempt struct {
	N     int       // 1 for the first attempt (since appended or replayed)
	Since time.Time // when the first of those attempts was made: the budget starts there
	Now   time.Time
	// Status is the HTTP status of the answer; 0 when none came (Err).
	Status     int
	RetryAfter string // the answer's Retry-After header
	Err        error  // the request failed: network, timeout, refused destination
	Refused    bool   // Err is the destination rules refusing the URL
	NoEndpoint bool   // the tenant has no event URL
}

// Decision is the policy's answer.
type Decision struct {
	Delivered bool
	Retry     bool
	Delay     time.Duration // when Retry
	Reason    string        // why the attempt failed (for the dead letter), "" when delivered
}

// Decide is the one place retry decisions are made:
//
//   - 2xx: delivered.
//   - 5xx, 408, 429, network errors, timeouts, no event URL configured:
//     retried with exponential backoff (Base doubling to Cap, jittered to
//     between half and all of it), honouring Retry-After on 429 and 503
//     (capped at Cap), until Budget has passed since the event's first
//     attempt (since appended or replayed); then dead-lettered.
//   - 410: dead-lettered at once (the receiver says the URL is gone).
//   - other 4xx, 3xx (redirects are not followed: the signature covers
//     one URL), a destination the rules refuse: retried like the above but
//     at most RefusedAttempts times.
func (p Policy) Decide(a Attempt) Decision {
	if a.Err == nil && !a.NoEndpoint && a.Status >= 200 && a.Status < 300 {
		return Decision{Delivered: true}
	}
	reason, refused := "", false
	switch {
	case a.NoEndpoint:
		reason = "the tenant has no event URL configured"
	case a.Err != nil:
		reason, refused = a.Err.Error(), a.Refused
	case a.Status == http.StatusGone:
		return Decision{Reason: "the event URL answered 410 Gone"}
	case a.Status == http.StatusRequestTimeout || a.Status == http.StatusTooManyRequests || a.Status >= 500:
		reason = fmt.Sprintf("the event URL answered %d", a.Status)
	default:
		reason, refused = fmt.Sprintf("the event URL answered %d", a.Status), true
	}
	if refused && a.N >= p.RefusedAttempts {
		return Decision{Reason: fmt.Sprintf("%s (%d attempts)", reason, a.N)}
	}
	if a.Now.Sub(a.Since) >= p.Budget {
		return Decision{Reason: fmt.Sprintf("%s; retried for %s (%d attempts)", reason, p.Budget, a.N)}
	}
	delay := p.backoff(a.N)
	if a.Status == http.StatusTooManyRequests || a.Status == http.StatusServiceUnavailable {
		if ra, ok := retryAfter(a.RetryAfter, a.Now); ok {
			delay = min(max(ra, time.Second), p.Cap)
		}
	}
	return Decision{Retry: true, Delay: delay, Reason: reason}
}

// backoff is the jittered delay after the n-th failure: nominal Base·2^(n-1)
// capped at Cap, drawn from its upper half so that retries of many events
// spread out but never come much earlier than nominal.
func (p Policy) backoff(n int) time.Duration {
	d := p.Cap
	if n < 63 {
		if nominal := p.Base << (n - 1); nominal > 0 && nominal < p.Cap {
			d = nominal
		}
	}
	j := rand.Float64
	if p.Jitter != nil {
		j = p.Jitter
	}
	return d/2 + time.Duration(j()*float64(d/2))
}

// retryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return t.Sub(now), true
	}
	return 0, false
}
