package definitions

import (
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// KeepAlive is what the server's refresh scheduler does for a definition's
// connections while nobody uses them (auth.oauth.keep_alive). The zero value
// asks for nothing: tokens are refreshed only when used.
type KeepAlive struct {
	// RefreshAhead refreshes every access token shortly before it expires,
	// used or not, so that no call waits for a token request.
	RefreshAhead bool
	// IdleRefresh, when non-zero, refreshes a connection at least this often:
	// for providers whose refresh tokens die when unused for a while (Box
	// after 60 days, say). It is shorter than that idle lifetime.
	IdleRefresh time.Duration
}

// Enabled reports whether the scheduler has anything to do.
func (k KeepAlive) Enabled() bool { return k.RefreshAhead || k.IdleRefresh > 0 }

// Bounds of keep_alive.idle_refresh: more often than once a minute is a
// storm of token requests, not a keep-alive; a provider whose refresh
// tokens live idle for over a year needs none.
const (
	MinIdleRefresh = time.Minute
	MaxIdleRefresh = 8760 * time.Hour
)

type rawKeepAlive struct {
	RefreshAhead bool   `yaml:"refresh_ahead"`
	IdleRefresh  string `yaml:"idle_refresh"`
}

var daysDuration = regexp.MustCompile(`^([0-9]+)d$`)

func (b *builder) buildKeepAlive(o *OAuth, rk *rawKeepAlive) {
	if rk == nil {
		return
	}
	const p = "/auth/oauth/keep_alive"
	if o.Version == V1 {
		b.errorf(p, "V1 tokens are not refreshed, so there is nothing to keep alive; remove keep_alive or set version: V2")
		return
	}
	k := KeepAlive{RefreshAhead: rk.RefreshAhead}
	if s := rk.IdleRefresh; s != "" {
		const bounds = "a duration from 1m to 8760h (a year), such as 720h for 30 days"
		dur, err := time.ParseDuration(s)
		switch {
		case o.GrantType == GrantClientCredentials:
			b.errorf(p+"/idle_refresh", "client credentials have no refresh token to keep alive; remove idle_refresh (refresh_ahead fetches tokens before they expire)")
		case err != nil:
			if m := daysDuration.FindStringSubmatch(s); m != nil {
				n, _ := strconv.Atoi(m[1])
				b.errorf(p+"/idle_refresh", "%q: durations have no days; write hours, such as %dh for %s days", s, n*24, m[1])
			} else {
				b.errorf(p+"/idle_refresh", "%q is not %s", s, bounds)
			}
		case dur < MinIdleRefresh:
			b.errorf(p+"/idle_refresh", "%s is too often: idle_refresh must be %s; it is how often an unused connection is refreshed, so set it somewhat below the provider's idle lifetime of refresh tokens", s, bounds)
		case dur > MaxIdleRefresh:
			b.errorf(p+"/idle_refresh", "%s is more than a year: idle_refresh must be %s; a provider whose refresh tokens live longer unused needs no idle_refresh", s, bounds)
		default:
			k.IdleRefresh = dur
		}
	}
	o.KeepAlive = k
}

// String describes the policy, for listings.
func (k KeepAlive) String() string {
	switch {
	case k.RefreshAhead && k.IdleRefresh > 0:
		return fmt.Sprintf("refresh ahead of expiry, and at least every %s", k.IdleRefresh)
	case k.RefreshAhead:
		return "refresh ahead of expiry"
	case k.IdleRefresh > 0:
		return fmt.Sprintf("refresh at least every %s", k.IdleRefresh)
	}
	return "off"
}
