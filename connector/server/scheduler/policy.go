package scheduler

import (
	"errors"
	"hash/fnv"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/token"
	"github.com/connector-engine/connector/definitions"
)

// Window is when a token should be refreshed under the definition's
// keep-alive policy: not before start, and by end. margin caps the
// engine's refresh margin (connector.Source.Margin).
//
// With refresh_ahead the window is [expiry-2m, expiry-m], m being the
// token's refresh margin (a tenth of its lifetime, at most margin): it
// closes where traffic would refresh the token itself, so a call never
// waits. With idle_refresh the window is the last tenth of the interval
// counted from when the token was obtained. With both, the earlier window
// wins. ok is false when the policy asks nothing of this token (a
// refresh_ahead token without an expiry).
func Window(t token.Token, p definitions.KeepAlive, margin time.Duration) (start, end time.Time, ok bool) {
	if p.RefreshAhead && !t.Expiry.IsZero() {
		m := t.RefreshMargin(margin)
		start, end, ok = t.Expiry.Add(-2*m), t.Expiry.Add(-m), true
	}
	if p.IdleRefresh > 0 {
		base := t.Obtained
		if base.IsZero() {
			base = t.IssuedAt
		}
		var s, e time.Time // age unknown: at once, so that it becomes known
		if !base.IsZero() {
			s, e = base.Add(p.IdleRefresh-p.IdleRefresh/10), base.Add(p.IdleRefresh)
		}
		if !ok || e.Before(end) {
			start, end, ok = s, e, true
		}
	}
	return start, end, ok
}

// Due picks the connection's refresh time in [start, end]: a point fixed by
// the connection and the window, so that tokens expiring together are
// spread over their windows instead of refreshed at one instant, and every
// replica computes the same time. A window already open spreads over what
// is left of it; one already closed is due now.
func Due(connection string, now, start, end time.Time) time.Time {
	if !end.After(now) {
		return now
	}
	if start.Before(now) {
		start = now
	}
	h := fnv.New64a()
	h.Write([]byte(connection))
	h.Write([]byte(strconv.FormatInt(end.UnixNano(), 10)))
	frac := float64(h.Sum64()>>11) / (1 << 53)
	return start.Add(time.Duration(frac * float64(end.Sub(start))))
}

// Backoff is the retry policy of failed refreshes: Base after the first
// failure, doubling up to Max, each wait between half and all of that.
type Backoff struct {
	Base, Max time.Duration
}

// DefaultBackoff retries after 30 s, 1 min, 2 min... up to an hour.
var DefaultBackoff = Backoff{Base: 30 * time.Second, Max: time.Hour}

// Retry says what to do after the attempt-th failed refresh in a row
// (attempt >= 1): permanent when only a person authorizing again can fix it
// (the provider refused the refresh token: invalid_grant, revoked, expired
// unused; or the engine refused to present a refresh token that may have
// been used), else try again after wait: network errors, 5xx, 429, a lock
// held too long, and anything not known to be final.
func (b Backoff) Retry(err error, attempt int) (permanent bool, wait time.Duration) {
	var nr *connector.NeedsReauthError
	var be *connector.BindingError
	if errors.As(err, &nr) || errors.As(err, &be) {
		return true, 0
	}
	d := b.Base
	if d <= 0 {
		d = DefaultBackoff.Base
	}
	limit := b.Max
	if limit < d {
		limit = d
	}
	for i := 1; i < attempt && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	var te *connector.TokenError
	if errors.As(err, &te) && te.Status != http.StatusTooManyRequests && te.Status < 500 {
		// A 4xx other than invalid_grant (invalid_client: a rotated or
		// wrong client secret) is the operator's to fix: retry slowly.
		d = limit
	}
	return false, d/2 + rand.N(d/2+1)
}
