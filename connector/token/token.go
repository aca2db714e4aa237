// Package token owns the OAuth token value: what a flow produces, a store keeps
// and a transport spends. It knows nothing of definitions or HTTP.
package token

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Token is an OAuth access token with the refresh token and metadata that came
// with it. Its String and Format methods never print the secrets.
type Token struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
	// Secret is the token's shared secret, for OAuth 1.0a token
	// credentials (RFC 5849 2.3), which sign requests with it.
	Secret   string    `json:"secret,omitempty"`
	Expiry   time.Time `json:"expiry,omitzero"` // zero: the provider gave no lifetime and none was assumed
	Scopes   []string  `json:"scopes,omitempty"`
	IssuedAt time.Time `json:"issued_at,omitzero"`
	// Obtained is the local time the request that produced the token was
	// sent; with Expiry it gives the lifetime the refresh margin scales with.
	Obtained time.Time `json:"obtained,omitzero"`
	// Values are what the grant taught about itself when connecting, by
	// field name: QuickBooks' realmId from the callback, Salesforce's
	// instance_url from the token response, Xero's tenant id from a
	// request (the definition's learned fields). They belong to the grant,
	// so they are kept, and sealed, with its token; a refresh carrying one
	// again renews it.
	Values map[string]string `json:"values,omitempty"`
	// DPoPKey is the private key, PKCS #8 PEM, that the token is bound to
	// (RFC 9449: its proofs sign every refresh and API call). It is made
	// for the grant and kept, and sealed, with its token: a secret like
	// the tokens, never printed. "" for a token without DPoP.
	DPoPKey string `json:"dpop_key,omitempty"`
}

// UTC returns t with its times in UTC and without monotonic readings, as a
// store writes them, so that what is read back equals what was written.
func (t Token) UTC() Token {
	t.Expiry, t.IssuedAt, t.Obtained = t.Expiry.UTC(), t.IssuedAt.UTC(), t.Obtained.UTC()
	return t
}

// MarginFraction is the share of a token's lifetime kept in hand before its
// expiry: a token is renewed when a tenth of its life is left (or the cap).
const MarginFraction = 10

// RefreshMargin is how long before expiry t should be renewed: a tenth of
// its lifetime, at most max. A fixed margin would renew a token that lives
// no longer than the margin on every call, and against a provider that
// revokes the previous access token on refresh, concurrent workers would
// then revoke each other's tokens. With no known lifetime it is max.
func (t *Token) RefreshMargin(max time.Duration) time.Duration {
	if t == nil || t.Expiry.IsZero() || t.Obtained.IsZero() {
		return max
	}
	if m := t.Expiry.Sub(t.Obtained) / MarginFraction; m < max {
		if m < 0 {
			return 0
		}
		return m
	}
	return max
}

// Valid reports whether the token can be spent at now, keeping margin in hand
// so that a request started now does not arrive with an expired token.
func (t *Token) Valid(now time.Time, margin time.Duration) bool {
	if t == nil || t.AccessToken == "" {
		return false
	}
	return t.Expiry.IsZero() || now.Add(margin).Before(t.Expiry)
}

// Type is the token type to put in an Authorization header: "Bearer" unless
// the provider said otherwise (providers write "bearer" in any case).
func (t *Token) Type() string {
	if t.TokenType == "" || strings.EqualFold(t.TokenType, "bearer") {
		return "Bearer"
	}
	return t.TokenType
}

// String describes the token without its secrets.
func (t Token) String() string {
	var b strings.Builder
	b.WriteString("token{")
	b.WriteString("type=")
	b.WriteString(t.Type())
	if t.AccessToken != "" {
		b.WriteString(" access=***")
	}
	if t.RefreshToken != "" {
		b.WriteString(" refresh=***")
	}
	if t.DPoPKey != "" {
		b.WriteString(" dpop-key=***")
	}
	if !t.Expiry.IsZero() {
		b.WriteString(" expiry=")
		b.WriteString(t.Expiry.UTC().Format(time.RFC3339))
	}
	if len(t.Scopes) > 0 {
		b.WriteString(" scopes=")
		b.WriteString(strings.Join(t.Scopes, ","))
	}
	if len(t.Values) > 0 { // names only: a learned value may be a secret (Slack's bot token)
		names := make([]string, 0, len(t.Values))
		for k := range t.Values {
			names = append(names, k)
		}
		slices.Sort(names)
		b.WriteString(" values=")
		b.WriteString(strings.Join(names, ","))
	}
	b.WriteString("}")
	return b.String()
}

// Format makes every verb (%v, %+v, %#v, %s, %q) print the redacted form, so a
// token passed to a logger by mistake leaks nothing.
func (t Token) Format(f fmt.State, verb rune) {
	s := t.String()
	if verb == 'q' {
		s = fmt.Sprintf("%q", s)
	}
	_, _ = f.Write([]byte(s))
}

// GoString keeps %#v redacted as well.
func (t Token) GoString() string { return t.String() }
