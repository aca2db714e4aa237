package connector

import "time"

// A server starts an authorization in one request and receives its callback
// in another, possibly in another process: it keeps an attempt's state and
// PKCE verifier in its database and rebuilds the attempt from them. These two
// functions are that round trip; CheckCallback and Exchange then apply the
// same checks (state, expiry, single use, issuer) as in one process.

// Verifier returns the attempt's PKCE code verifier ("" when the definition
// does not use PKCE). It is a secret: keep it sealed at rest.
func (a *Attempt) Verifier() string { return a.verifier }

// ResumeAttempt rebuilds an attempt that AuthCodeURL started elsewhere from
// its state, verifier and expiry. The rebuilt attempt is single use like the
// original; the caller must also make sure that the stored attempt is used
// once across processes (a conditional update of its row, say).
func (f *Flow) ResumeAttempt(state, verifier string, expires time.Time) *Attempt {
	return &Attempt{State: state, RedirectURI: f.conn.RedirectURI, Expires: expires, verifier: verifier}
}
