package connector

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Trace observes what the transport of an API decides for each request, in
// the manner of net/http/httptrace: a struct of optional hooks. Set one on
// APIOptions.Trace for every request of an API, or carry one in a request's
// context with WithTrace; both fire, the context's first.
//
// Hooks run synchronously on the goroutine sending the request, and
// concurrently for concurrent requests: keep them short and do not block.
//
// No secret reaches a hook: URLs come without user info and with the values
// of credential query parameters, and any secret of the connection, as ***;
// errors are redacted the same way; no header value is given except the
// idempotency key, which identifies a request and grants nothing.
type Trace struct {
	// Send is called before each exchange goes out: every attempt of the
	// retry policy and the replay after a token refresh.
	Send func(ExchangeInfo)
	// Done is called when an exchange ends, with its status or its error.
	Done func(DoneInfo)
	// Retry is called when the policy decides to send the request again,
	// before the wait that precedes the next attempt.
	Retry func(RetryInfo)
	// Wait is called before every pause of the transport: waiting out a
	// used-up rate limit or pacing before a request, and the pause between
	// attempts (Retry-After, a reset header, backoff).
	Wait func(WaitInfo)
	// Refresh is called after a 401 made the transport renew the access
	// token (before the replay), with the outcome.
	Refresh func(RefreshInfo)
}

// ExchangeInfo describes one exchange with the API.
type ExchangeInfo struct {
	Method string
	URL    string // redacted
	Host   string // host[:port] of the API
	// Attempt counts the policy's attempts from 1; a replay after a
	// refresh keeps the number of the attempt it replays.
	Attempt int
	Replay  bool // the resend after a 401 and a token refresh
	// IdempotencyHeader and IdempotencyKey are the definition's
	// idempotency header and the key this request carries ("" for none);
	// every attempt carries the same key.
	IdempotencyHeader, IdempotencyKey string
}

// DoneInfo is the end of an exchange.
type DoneInfo struct {
	ExchangeInfo
	Status   int   // the answer's status; 0 with Err
	Err      error // the exchange failed (connection error, timeout); redacted
	Duration time.Duration
}

// RetryInfo is a decision to send a request again.
type RetryInfo struct {
	Method, URL, Host string
	Attempt           int   // the attempt that failed, from 1
	Status            int   // its answer's status; 0 with Err
	Err               error // redacted
	Wait              time.Duration
	Reason            WaitReason // where Wait comes from
	Header            string     // the header that gave Wait ("" for backoff)
}

// WaitInfo is a pause of the transport.
type WaitInfo struct {
	Method, URL, Host string
	Wait              time.Duration
	Reason            WaitReason
	// Header names the response header the wait comes from (Retry-After,
	// the definition's reset header); "" for a declared window, a declared
	// limit or backoff.
	Header string
	// Status is the answer the wait follows (429, 503) when it is a pause
	// between attempts; 0 for a wait before sending.
	Status int
	// Per and Limit are the definition's request.rate_limit values, for
	// WaitWindow and WaitLimit.
	Per   time.Duration
	Limit int
}

// RateLimited reports whether the wait is the API's rate limit (as opposed
// to backoff after a failure).
func (w WaitInfo) RateLimited() bool {
	switch w.Reason {
	case WaitWindow, WaitLimit, WaitReset:
		return true
	case WaitRetryAfter:
		return w.Status == 0 || w.Status == http.StatusTooManyRequests
	}
	return false
}

// RefreshInfo is a token renewal a 401 triggered.
type RefreshInfo struct {
	Method, URL, Host string
	Err               error // renewing failed; redacted
	Duration          time.Duration
}

// WaitReason says where a wait comes from.
type WaitReason string

const (
	// WaitBackoff is exponential backoff with jitter between attempts.
	WaitBackoff WaitReason = "backoff"
	// WaitRetryAfter is the answer's Retry-After header.
	WaitRetryAfter WaitReason = "Retry-After"
	// WaitReset is the definition's rate-limit reset header
	// (request.rate_limit.reset_header), after the remaining count read 0
	// or with a 429.
	WaitReset WaitReason = "reset header"
	// WaitWindow is the declared window (request.rate_limit.per), waited
	// out when the remaining count read 0 and no reset header said when
	// the limit refills.
	WaitWindow WaitReason = "window"
	// WaitLimit is the declared limit (request.rate_limit.limit per per):
	// the transport paces itself.
	WaitLimit WaitReason = "limit"
)

type traceKey struct{}

// WithTrace returns a context carrying t for the API requests made with it.
// A trace already in ctx keeps firing: hooks compose, t's first.
func WithTrace(ctx context.Context, t *Trace) context.Context {
	if t == nil {
		return ctx
	}
	if old, _ := ctx.Value(traceKey{}).(*Trace); old != nil {
		t = t.then(old)
	}
	return context.WithValue(ctx, traceKey{}, t)
}

// ContextTrace returns the Trace ctx carries, or nil.
func ContextTrace(ctx context.Context) *Trace {
	t, _ := ctx.Value(traceKey{}).(*Trace)
	return t
}

// then returns a Trace calling t's hooks, then u's.
func (t *Trace) then(u *Trace) *Trace {
	if t == nil {
		return u
	}
	if u == nil {
		return t
	}
	return &Trace{
		Send:    both(t.Send, u.Send),
		Done:    both(t.Done, u.Done),
		Retry:   both(t.Retry, u.Retry),
		Wait:    both(t.Wait, u.Wait),
		Refresh: both(t.Refresh, u.Refresh),
	}
}

func both[T any](f, g func(T)) func(T) {
	switch {
	case f == nil:
		return g
	case g == nil:
		return f
	}
	return func(v T) { f(v); g(v) }
}

// exchange is the state of one traced request, shared by the layers of the
// transport through the request's context.
type exchange struct {
	trace   *Trace
	api     *API
	attempt int
	replay  bool
}

type exchangeKey struct{}

func exchangeOf(r *http.Request) *exchange {
	x, _ := r.Context().Value(exchangeKey{}).(*exchange)
	return x
}

// traceTransport sits just above the base transport, where each exchange
// goes on the wire, and reports it.
type traceTransport struct{ next http.RoundTripper }

func (t *traceTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	x := exchangeOf(r)
	if x == nil || x.trace.Send == nil && x.trace.Done == nil {
		return t.next.RoundTrip(r)
	}
	info := ExchangeInfo{Method: r.Method, URL: x.api.redactURL(r.URL), Host: r.URL.Host, Attempt: x.attempt, Replay: x.replay}
	if h := x.api.policy.IdempotencyHeader; h != "" {
		if v := r.Header[h]; len(v) > 0 {
			info.IdempotencyHeader, info.IdempotencyKey = h, v[0]
		}
	}
	if x.trace.Send != nil {
		x.trace.Send(info)
	}
	start := time.Now()
	resp, err := t.next.RoundTrip(r)
	if x.trace.Done != nil {
		d := DoneInfo{ExchangeInfo: info, Duration: time.Since(start)}
		if err != nil {
			d.Err = x.api.redact(err)
		} else {
			d.Status = resp.StatusCode
		}
		x.trace.Done(d)
	}
	return resp, err
}

// redactURL returns u without user info, with the values of the query
// parameters that carry credentials and any secret of the connection as ***.
func (a *API) redactURL(u *url.URL) string {
	secrets := a.secrets()
	c := *u
	c.User = nil
	if c.RawQuery != "" {
		parts := strings.Split(c.RawQuery, "&")
		for i, kv := range parts {
			k, v, _ := strings.Cut(kv, "=")
			name, err1 := url.QueryUnescape(k)
			val, err2 := url.QueryUnescape(v)
			if err1 != nil || err2 != nil || a.isSecretParam(name) || containsAny(val, secrets) {
				parts[i] = k + "=***"
			}
		}
		c.RawQuery = strings.Join(parts, "&")
	}
	s := c.String()
	for _, sec := range secrets {
		s = strings.ReplaceAll(s, sec, "***")
		if esc := url.PathEscape(sec); esc != sec {
			s = strings.ReplaceAll(s, esc, "***")
		}
	}
	return s
}

func (a *API) isSecretParam(name string) bool {
	for _, s := range a.secretQuery {
		if strings.EqualFold(name, s) {
			return true
		}
	}
	return false
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
