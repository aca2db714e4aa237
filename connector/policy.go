package connector

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/textproto"
	"strconv"
	"sync"
	"time"

	"github.com/connector-engine/connector/definitions"
)

// Policy decides, after each attempt of an API request, whether to send it
// again and after how long. It is the only place where API retries and rate
// limits are decided; the transport just carries its decisions out.
//
// What is safe to repeat:
//   - A request that never left this host (dial or DNS failure): any method.
//   - GET, HEAD, OPTIONS, PUT, DELETE (idempotent by RFC 9110): after a
//     connection error, a 5xx that may be transient (500, 502, 503, 504) or 429.
//   - POST and PATCH only when the definition names an idempotency header;
//     the transport then sends one key, the same on every attempt, so the
//     server can recognise the repeat. Without one, a POST whose answer was
//     lost may have created something, and a blind repeat creates it twice.
//
// Waits come from Retry-After (seconds or an HTTP date), else from the
// rate-limit reset header on a 429, else from exponential backoff with
// jitter. A wait longer than MaxWait fails at once with a *WaitError rather
// than hanging the caller.
type Policy struct {
	MaxAttempts       int           // total attempts, the first included; 1 disables retries
	MaxWait           time.Duration // the longest single wait accepted
	IdempotencyHeader string        // canonical header name; "" never repeats POST/PATCH

	// Rate limits: when RemainingHeader reads 0, requests wait for the time
	// ResetHeader gives (unix seconds, or seconds from now if ResetDelta).
	RemainingHeader string
	ResetHeader     string
	ResetDelta      bool
	// Per is the API's window (request.rate_limit.per): without a reset
	// header, a remaining count of 0 waits this long. Limit requests per
	// Per are the most the transport sends (Pacer).
	Per   time.Duration
	Limit int

	BackoffMin, BackoffMax time.Duration
}

// NewPolicy returns the policy a definition declares.
func NewPolicy(d *definitions.Definition) *Policy {
	p := &Policy{
		MaxAttempts:       d.Retry.MaxAttempts,
		MaxWait:           d.Retry.MaxWait,
		IdempotencyHeader: canonical(d.Retry.IdempotencyHeader),
		RemainingHeader:   canonical(d.RateLimit.RemainingHeader),
		ResetHeader:       canonical(d.RateLimit.ResetHeader),
		ResetDelta:        d.RateLimit.Reset == definitions.ResetSeconds,
		Per:               d.RateLimit.Per,
		Limit:             d.RateLimit.Limit,
		BackoffMin:        250 * time.Millisecond,
		BackoffMax:        10 * time.Second,
	}
	if p.MaxAttempts < 1 {
		p.MaxAttempts = definitions.DefaultMaxAttempts
	}
	if p.MaxWait <= 0 {
		p.MaxWait = definitions.DefaultMaxWait
	}
	return p
}

func canonical(h string) string {
	if h == "" {
		return ""
	}
	return textproto.CanonicalMIMEHeaderKey(h)
}

// Decision is what the policy says after one attempt.
type Decision struct {
	Retry  bool
	Wait   time.Duration
	Reason WaitReason // where Wait comes from
	Header string     // the header that gave Wait; "" for backoff
	Err    error      // set when the request must fail now (a wait over MaxWait)
}

// Decide looks at the outcome of attempt (counted from 1) of req.
func (p *Policy) Decide(req *http.Request, attempt int, resp *http.Response, err error, now time.Time) Decision {
	d := p.decide(req, attempt, resp, err, now)
	if ctxErr := req.Context().Err(); ctxErr != nil && d.Retry {
		// The caller gave up: an answer that was only worth retrying is
		// not the result it waits for.
		return Decision{Err: ctxErr}
	}
	return d
}

func (p *Policy) decide(req *http.Request, attempt int, resp *http.Response, err error, now time.Time) Decision {
	if attempt >= p.MaxAttempts {
		return Decision{}
	}
	if err != nil {
		var ce *credentialError
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ce) {
			return Decision{}
		}
		if !notSent(err) && !p.Repeatable(req) {
			return Decision{}
		}
		return Decision{Retry: true, Wait: p.backoff(attempt), Reason: WaitBackoff}
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
	default:
		return Decision{}
	}
	if !p.Repeatable(req) {
		return Decision{}
	}
	wait, reason, source := p.backoff(attempt), WaitBackoff, ""
	if d, ok := retryAfter(resp, now); ok {
		wait, reason, source = d, WaitRetryAfter, "Retry-After"
	} else if resp.StatusCode == http.StatusTooManyRequests {
		if until, ok := p.reset(resp, now); ok {
			wait, reason, source = until.Sub(now), WaitReset, p.ResetHeader
		}
	}
	if wait > p.MaxWait {
		return Decision{Err: &WaitError{Status: resp.StatusCode, Wait: wait, Source: source, Max: p.MaxWait}}
	}
	return Decision{Retry: true, Wait: max(wait, 0), Reason: reason, Header: source}
}

// Repeatable reports whether req may be sent twice: an idempotent method, or
// POST/PATCH carrying the definition's idempotency header.
func (p *Policy) Repeatable(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete, http.MethodTrace:
		return true
	case http.MethodPost, http.MethodPatch:
		return p.IdempotencyHeader != "" && len(req.Header[p.IdempotencyHeader]) > 0
	}
	return false
}

// Exhausted reports, from a response, until when the rate limit is used up:
// the remaining header reads 0, and the reset header says when it refills;
// without one (HubSpot, Xero send only the remaining count), a declared
// window (Per) is waited out, else a backoff pause.
func (p *Policy) Exhausted(resp *http.Response, now time.Time) (time.Time, bool) {
	until, _, _, ok := p.exhausted(resp, now)
	return until, ok
}

// exhausted is Exhausted, saying also where the time comes from.
func (p *Policy) exhausted(resp *http.Response, now time.Time) (until time.Time, reason WaitReason, header string, ok bool) {
	if !p.used(resp) {
		return time.Time{}, "", "", false
	}
	if until, ok := p.reset(resp, now); ok {
		return until, WaitReset, p.ResetHeader, true
	}
	if p.Per > 0 {
		return now.Add(p.Per), WaitWindow, "", true
	}
	return now.Add(p.backoff(3)), WaitBackoff, "", true
}

// used reports whether resp says no requests are left in the window.
func (p *Policy) used(resp *http.Response) bool {
	if p.RemainingHeader == "" {
		return false
	}
	v := resp.Header[p.RemainingHeader]
	return len(v) > 0 && v[0] == "0"
}

func (p *Policy) reset(resp *http.Response, now time.Time) (time.Time, bool) {
	if p.ResetHeader == "" {
		return time.Time{}, false
	}
	v := resp.Header[p.ResetHeader]
	if len(v) == 0 {
		return time.Time{}, false
	}
	n, err := strconv.ParseFloat(v[0], 64)
	if err != nil || n < 0 {
		return time.Time{}, false
	}
	if p.ResetDelta {
		return now.Add(time.Duration(n * float64(time.Second))), true
	}
	return time.Unix(0, int64(n*1e9)), true
}

// backoff is exponential with full jitter: BackoffMin·2^(attempt-1), capped.
func (p *Policy) backoff(attempt int) time.Duration {
	d := p.BackoffMin << min(attempt-1, 20)
	if d <= 0 || d > p.BackoffMax {
		d = p.BackoffMax
	}
	return d/2 + rand.N(d/2+1)
}

// WaitError says the API asked the client to wait longer than it may.
type WaitError struct {
	Status int           // the answer's status (429, 503), or 0 before sending
	Wait   time.Duration // what the API asked for
	Source string        // the header that said so ("" for backoff)
	Max    time.Duration
}

func (e *WaitError) Error() string {
	what := "the API's rate limit is used up"
	if e.Status != 0 {
		what = fmt.Sprintf("the API answered %d %s", e.Status, http.StatusText(e.Status))
	}
	if e.Source != "" {
		what += " and " + e.Source + " asks"
	} else {
		what += "; it asks"
	}
	return fmt.Sprintf("%s to wait %s, longer than the %s this connection waits (request.retry.max_wait in the definition); try again later or raise max_wait",
		what, e.Wait.Round(time.Second), e.Max)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Pacer spaces requests so that no window of length per holds more than
// limit of them (a sliding log: the limit-th last request's time plus per
// is the earliest the next may go). It is safe for concurrent use and
// counts this process's requests only.
type Pacer struct {
	mu    sync.Mutex
	per   time.Duration
	times []time.Time // ring of the last limit reservations
	next  int
}

// NewPacer returns a Pacer for limit requests per per, or nil when either
// is not positive (no pacing).
func NewPacer(limit int, per time.Duration) *Pacer {
	if limit <= 0 || per <= 0 {
		return nil
	}
	return &Pacer{per: per, times: make([]time.Time, 0, limit)}
}

// Reserve books a send and returns how long to wait before it, from now.
func (p *Pacer) Reserve(now time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.times) < cap(p.times) {
		p.times = append(p.times, now)
		return 0
	}
	at := now
	if earliest := p.times[p.next].Add(p.per); earliest.After(at) {
		at = earliest
	}
	p.times[p.next] = at
	p.next = (p.next + 1) % len(p.times)
	return at.Sub(now)
}
