package connector

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// Retrying a token request is safe only when the request cannot have been
// acted on, or when acting on it twice does no harm:
//
//   - A refresh with a rotating provider (Procore) burns the old refresh token
//     the moment it is processed; presenting it again revokes the whole grant.
//     If the connection broke after the request was sent, or the server
//     answered 500/502/504, the outcome is unknown and a blind repeat can
//     destroy the connection. The caller records the uncertainty instead.
//   - A code exchange consumes a single-use code in the same way.
//   - A client-credentials request only mints another token: always safe.
//
// Connection failures before anything was sent (dial, DNS) and the answers
// that say "not processed" (429 Too Many Requests, 503 Service Unavailable)
// are safe for every request.

// retryable reports whether a token request may be sent again after resp/err.
// idempotent is true for requests that consume nothing (client credentials).
func retryable(idempotent bool, resp *http.Response, err error) bool {
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return false
		}
		return idempotent || notSent(err)
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		return true
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusGatewayTimeout:
		return idempotent
	}
	return false
}

// notSent reports whether err happened before the request left this host.
func notSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// MaxRetryWait caps how long a Retry-After may make a token request wait;
// a server asking for longer gets a clear error instead of a hung caller.
const MaxRetryWait = 30 * time.Second

// retryAfter reads Retry-After (seconds or an HTTP date).
func retryAfter(resp *http.Response, now time.Time) (time.Duration, bool) {
	if resp == nil {
		return 0, false
	}
	v := resp.Header.Get("Retry-After")
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// errWaitTooLong is returned when a server asks to wait longer than MaxRetryWait.
type errWaitTooLong struct{ wait time.Duration }

func (e *errWaitTooLong) Error() string {
	return fmt.Sprintf("the token endpoint asked to retry after %s, longer than the %s this client waits; try again later", e.wait.Round(time.Second), MaxRetryWait)
}

// newTokenClient builds the HTTP client for token requests: go-retryablehttp
// with the one policy above, no logging (URLs may carry secrets), and a
// per-attempt timeout on top of the caller's context.
func newTokenClient(base *http.Client, idempotent bool) *retryablehttp.Client {
	c := retryablehttp.NewClient()
	c.HTTPClient = base
	c.Logger = nil
	c.RetryMax = 3
	c.RetryWaitMin = 200 * time.Millisecond
	c.RetryWaitMax = 5 * time.Second
	c.CheckRetry = func(ctx context.Context, resp *http.Response, err error) (bool, error) {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		if !retryable(idempotent, resp, err) {
			return false, nil
		}
		if d, ok := retryAfter(resp, time.Now()); ok && d > MaxRetryWait {
			return false, &errWaitTooLong{d}
		}
		return true, nil
	}
	c.Backoff = func(min, max time.Duration, attempt int, resp *http.Response) time.Duration {
		if d, ok := retryAfter(resp, time.Now()); ok {
			return d
		}
		return retryablehttp.DefaultBackoff(min, max, attempt, resp)
	}
	// Hand the last response back instead of retryablehttp's generic
	// "giving up" error, so the caller can read the provider's error body.
	c.ErrorHandler = func(resp *http.Response, err error, _ int) (*http.Response, error) {
		if err != nil && resp != nil {
			resp.Body.Close()
			return nil, err
		}
		return resp, err
	}
	return c
}
