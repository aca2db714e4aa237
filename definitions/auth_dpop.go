package definitions

import "strings"

// DPoP (RFC 9449): the connection proves possession of a key of its own on
// every token request and API call, and the provider binds the tokens to
// that key, so a stolen access or refresh token is of no use without it.

// DPoPAlgorithms are the JWS algorithms a connection's DPoP key can sign
// with (the provider's dpop_signing_alg_values_supported lists the ones it
// accepts); the first is the default: the one every DPoP provider accepts.
var DPoPAlgorithms = []string{"ES256", "ES384", "ES512", "RS256", "PS256"}

// DPoP says that a connection's tokens are sender-constrained with DPoP.
// The engine makes the key itself, one per connection, and keeps it with
// the token; nothing about it is configured but its algorithm.
type DPoP struct {
	Algorithm string // one of DPoPAlgorithms; default ES256
}

type rawDPoP struct {
	Algorithm string `yaml:"algorithm"`
}

// buildDPoP reads auth.oauth.dpop and checks it against where the token
// goes: a DPoP-bound token travels in Authorization with the DPoP scheme,
// next to the proof (RFC 9449 7.1), never in a query, a body or another
// header, where the resource server would take it for a bearer token.
func (b *builder) buildDPoP(o *OAuth, rd *rawDPoP) {
	if rd == nil {
		return
	}
	o.DPoP = &DPoP{Algorithm: rd.Algorithm}
	defaults(&o.DPoP.Algorithm, DPoPAlgorithms[0]) // the schema has checked any given one
	const st = "/auth/oauth/send_token"
	why := "a DPoP-bound access token is sent as Authorization: DPoP <token> next to the DPoP proof (RFC 9449 7.1)"
	switch {
	case o.SendToken.In != TokenInHeader:
		b.errorf(st+"/in", "%s, not in the %s; remove send_token, or remove dpop if the provider does not bind its tokens", why, o.SendToken.In)
	case !strings.EqualFold(o.SendToken.Name, "Authorization"):
		b.errorf(st+"/name", "%s, not in %s; remove send_token, or remove dpop if the provider does not bind its tokens", why, o.SendToken.Name)
	case !o.SendToken.TypePrefix:
		b.errorf(st+"/prefix", "%s: the scheme written before the token is the token type the provider answered (DPoP, or Bearer when it declined), so remove prefix", why)
	}
}
