package definitions

import (
	"time"

	"gopkg.in/yaml.v3"

	"github.com/connector-engine/connector/templates"
)

// GrantJWTBearer is the JWT bearer grant (RFC 7523 2.1): the client posts
// a JWT it signed (a service account's) and gets a token, no user involved.
const GrantJWTBearer GrantType = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// ClientAuthPrivateKeyJWT authenticates the client with a JWT signed by its
// private key (RFC 7523 2.2, OpenID Connect's private_key_jwt).
const ClientAuthPrivateKeyJWT = "private_key_jwt"

// Assertion describes the JWT the engine signs for the JWT bearer grant or
// private_key_jwt client authentication. Templates have the placeholders of
// the token request.
type Assertion struct {
	PrivateKey *templates.Template // a PEM RSA or EC private key: a secret field, ${file:key.pem}
	Algorithm  string              // "" for the key's default (RS256, or ES256/384/512 by curve)
	KeyID      *templates.Template // the JWS kid; nil for none
	Issuer     *templates.Template // iss; nil means the client id
	Subject    *templates.Template // sub; nil means the issuer
	Audience   *templates.Template // aud; nil means the token endpoint's URL
	Lifetime   time.Duration       // exp - iat
	Claims     []Param             // further claims (Google's scope), string values
}

type rawAssertion struct {
	PrivateKey string    `yaml:"private_key"`
	Algorithm  string    `yaml:"algorithm"`
	KeyID      string    `yaml:"key_id"`
	Issuer     string    `yaml:"issuer"`
	Subject    string    `yaml:"subject"`
	Audience   string    `yaml:"audience"`
	Lifetime   string    `yaml:"lifetime"`
	Claims     yaml.Node `yaml:"claims"`
}

var scopeAssertion = scope{name: "the assertion", allowed: bits(VarClientID, VarScope, VarBaseURL, VarLoginURL), hints: map[int]string{
	VarClientSecret: "an assertion replaces the client secret; sign with private_key instead",
}}

// DefaultAssertionLifetime is an assertion's lifetime unless the definition
// says otherwise.
const DefaultAssertionLifetime = 5 * time.Minute

// buildAssertion reads auth.oauth.assertion and checks it against the grant
// and client authentication that use it.
func (b *builder) buildAssertion(o *OAuth, ra *rawAssertion) {
	const p = "/auth/oauth/assertion"
	keyJWT := o.TokenRequest.ClientAuth == ClientAuthPrivateKeyJWT || o.TokenRequest.RefreshClientAuth == ClientAuthPrivateKeyJWT
	uses := o.GrantType == GrantJWTBearer || keyJWT
	switch {
	case ra == nil && o.GrantType == GrantJWTBearer:
		b.errorf("/auth/oauth", "grant_type jwt_bearer posts a JWT the engine signs; add an assertion section with private_key (a secret field holding the PEM)")
		return
	case ra == nil && keyJWT && o.Public:
		return // buildOAuth says a public client does not authenticate
	case ra == nil && keyJWT:
		at := "/auth/oauth/token_request/client_auth"
		if o.TokenRequest.ClientAuth != ClientAuthPrivateKeyJWT {
			at = "/auth/oauth/token_request/refresh_client_auth"
		}
		b.errorf(at, "private_key_jwt signs a JWT with the client's key; add an auth.oauth.assertion section with private_key (a secret field holding the PEM)")
		return
	case ra == nil:
		return
	case !uses:
		b.errorf(p, "an assertion is signed for grant_type: jwt_bearer or token_request.client_auth: private_key_jwt, and this definition uses neither; remove it or set one of them")
		return
	}
	a := &Assertion{Algorithm: ra.Algorithm, Lifetime: DefaultAssertionLifetime}
	o.Assertion = a
	text := func(key, src string) *templates.Template {
		if src == "" {
			return nil
		}
		return b.compile(p+"/"+key, src, templates.Text, scopeAssertion)
	}
	if ra.PrivateKey == "" {
		b.errorf(p, "missing private_key: the assertion is signed with it; write private_key: ${PrivateKey} with a secret field whose value is the PEM (${file:key.pem} in a connection file)")
	} else if a.PrivateKey = text("private_key", ra.PrivateKey); a.PrivateKey != nil {
		ph := a.PrivateKey.Placeholders()
		if len(ph) != 1 || ra.PrivateKey != "${"+ph[0].Name+"}" {
			b.errorf(p+"/private_key", "private_key must be exactly one placeholder, a secret field holding the PEM (${PrivateKey}), so that the key's line breaks are kept and it is never written into the definition")
		} else if ph[0].Var >= NumBuiltinVars && b.def.vars.Flags(ph[0].Var)&templates.Secret == 0 {
			b.errorf(p+"/private_key", "${%s} holds a private key but is not a secret field; mark the field secret: true", ph[0].Name)
		}
	}
	a.KeyID = text("key_id", ra.KeyID)
	a.Issuer = text("issuer", ra.Issuer)
	a.Subject = text("subject", ra.Subject)
	a.Audience = text("audience", ra.Audience)
	if keyJWT && o.GrantType != GrantJWTBearer && (ra.Issuer != "" || ra.Subject != "") {
		b.errorf(p, "a private_key_jwt client assertion has the client id as both iss and sub (RFC 7523 3, 2.2); remove issuer and subject")
	}
	// claims are the grant's (Google's scope); a client assertion carries
	// only the claims RFC 7523 3 names, so claims would be ignored.
	if keyJWT && o.GrantType != GrantJWTBearer && b.given(p+"/claims") != nil {
		b.errorf(p+"/claims", "claims are added to a jwt_bearer grant's assertion; a private_key_jwt client assertion carries only iss, sub, aud, exp, iat and jti (RFC 7523 3), so these would never be sent. Remove claims")
	}
	if s := ra.Lifetime; s != "" {
		if dur, err := time.ParseDuration(s); err != nil || dur <= 0 || dur > time.Hour {
			b.errorf(p+"/lifetime", "%q is not a duration from 1s to 1h such as 5m; providers refuse assertions that live long (Google: at most 1h)", s)
		} else {
			a.Lifetime = dur
		}
	}
	if n := resolve(&ra.Claims); n != nil && n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			switch k.Value {
			case "iss", "sub", "aud", "exp", "iat", "jti":
				b.errorf(p+"/claims/"+escapePointer(k.Value), "%s is set by the engine (issuer, subject and audience say what goes in iss, sub and aud); remove it from claims", k.Value)
				continue
			}
			if v.Kind != yaml.ScalarNode {
				continue // the schema reported it
			}
			if t := text("claims/"+escapePointer(k.Value), v.Value); t != nil {
				a.Claims = append(a.Claims, Param{Name: k.Value, Value: t})
			}
		}
	}
}

func (a *Assertion) templates() []*templates.Template {
	var out []*templates.Template
	for _, t := range []*templates.Template{a.PrivateKey, a.KeyID, a.Issuer, a.Subject, a.Audience} {
		if t != nil {
			out = append(out, t)
		}
	}
	for _, c := range a.Claims {
		out = append(out, c.Value)
	}
	return out
}
