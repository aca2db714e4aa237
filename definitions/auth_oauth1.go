package definitions

import (
	"fmt"

	"github.com/connector-engine/connector/templates"
)

// SchemeOAuth1 signs every request with OAuth 1.0a (RFC 5849).
const SchemeOAuth1 Scheme = "oauth1"

// OAuth 1.0a signature methods.
const (
	OAuth1HMACSHA1   = "HMAC-SHA1"
	OAuth1HMACSHA256 = "HMAC-SHA256"
	OAuth1RSASHA1    = "RSA-SHA1"
)

// OAuth1 is OAuth 1.0a request signing (auth.scheme: oauth1). Every value is
// a text template of the connection's fields. With Token set it is
// two-legged (NetSuite token-based authentication: the token credentials are
// given); with the three URIs it is three-legged (Trello: a request token,
// the user's authorization, an access token with the verifier), and the
// token credentials are kept in the store; with neither, requests are
// signed with the client credentials alone.
type OAuth1 struct {
	SignatureMethod string              // OAuth1HMACSHA1 (default), OAuth1HMACSHA256 or OAuth1RSASHA1
	ConsumerKey     *templates.Template // required
	ConsumerSecret  *templates.Template // HMAC methods
	PrivateKey      *templates.Template // RSA-SHA1: a PEM RSA private key (a ${file:} field)
	Token           *templates.Template // two-legged: the token
	TokenSecret     *templates.Template // two-legged: the token secret (HMAC methods)
	Realm           *templates.Template // the Authorization header's realm (NetSuite: the account id); nil for none

	RequestTokenURI *templates.Template // three-legged: temporary credentials (RFC 5849 2.1)
	AuthorizeURI    *templates.Template // three-legged: where the user authorizes (2.2)
	AccessTokenURI  *templates.Template // three-legged: token credentials (2.3)
}

// ThreeLegged reports whether the token credentials come from the
// authorization flow (and the store) rather than the connection's fields.
func (o *OAuth1) ThreeLegged() bool { return o.AccessTokenURI != nil }

type rawOAuth1 struct {
	SignatureMethod string `yaml:"signature_method"`
	ConsumerKey     string `yaml:"consumer_key"`
	ConsumerSecret  string `yaml:"consumer_secret"`
	PrivateKey      string `yaml:"private_key"`
	Token           string `yaml:"token"`
	TokenSecret     string `yaml:"token_secret"`
	Realm           string `yaml:"realm"`
	RequestTokenURI string `yaml:"request_token_uri"`
	AuthorizeURI    string `yaml:"authorize_uri"`
	AccessTokenURI  string `yaml:"access_token_uri"`
}

var (
	scopeOAuth1       = scope{name: "OAuth 1.0a credentials", allowed: bits(VarBaseURL, VarLoginURL), hints: oauth1Hints}
	scopeOAuth1Server = scope{name: "the OAuth 1.0a token requests", allowed: bits(VarBaseURL, VarLoginURL), hints: oauth1Hints}
	scopeOAuth1Authz  = scope{name: "the OAuth 1.0a authorization page", browser: true, allowed: bits(VarBaseURL, VarLoginURL), hints: oauth1Hints}
	oauth1Hints       = map[int]string{
		VarClientID:     "OAuth 1.0a's client credentials are fields here: write consumer_key: ${ConsumerKey} with a field of that name",
		VarClientSecret: "OAuth 1.0a's client credentials are fields here: write consumer_secret: ${ConsumerSecret} with a secret field",
	}
)

func (b *builder) buildOAuth1(ro *rawOAuth1) {
	const p = "/auth/oauth1"
	o := &OAuth1{SignatureMethod: ro.SignatureMethod}
	b.def.Auth.OAuth1 = o
	defaults(&o.SignatureMethod, OAuth1HMACSHA1)
	text := func(key, src string, secret bool) *templates.Template {
		if src == "" {
			return nil
		}
		t := b.compile(p+"/"+key, src, templates.Text, scopeOAuth1)
		if t != nil && secret {
			for _, ph := range t.Placeholders() {
				if ph.Var >= NumBuiltinVars && b.def.vars.Flags(ph.Var)&templates.Secret == 0 {
					b.warnAt(warnSecretNotSecretField, p+"/"+key, ph.Offset,
						fmt.Sprintf("${%s} holds a secret but is not a secret field, so it would be shown in logs and output; mark the field secret: true", ph.Name))
				}
			}
		}
		return t
	}
	if ro.ConsumerKey == "" {
		b.errorf(p, "missing consumer_key: every OAuth 1.0a request names its client; write consumer_key: ${ConsumerKey} with a field of that name")
	}
	o.ConsumerKey = text("consumer_key", ro.ConsumerKey, false)
	o.ConsumerSecret = text("consumer_secret", ro.ConsumerSecret, true)
	o.PrivateKey = text("private_key", ro.PrivateKey, true)
	o.Token = text("token", ro.Token, false)
	o.TokenSecret = text("token_secret", ro.TokenSecret, true)
	o.Realm = text("realm", ro.Realm, false)

	switch o.SignatureMethod {
	case OAuth1RSASHA1:
		if ro.PrivateKey == "" {
			b.errorf(p, "missing private_key: RSA-SHA1 signs with an RSA private key; write private_key: ${PrivateKey} with a secret field whose value is the PEM (${file:key.pem} in a connection file)")
		}
		if ro.ConsumerSecret != "" {
			b.errorf(p+"/consumer_secret", "RSA-SHA1 signs with the private key and uses no consumer secret; remove consumer_secret or use HMAC-SHA1")
		}
		if ro.TokenSecret != "" {
			b.errorf(p+"/token_secret", "RSA-SHA1 signs with the private key and uses no token secret; remove token_secret or use HMAC-SHA1")
		}
	default:
		if ro.ConsumerSecret == "" {
			b.errorf(p, "missing consumer_secret: %s signs with the consumer secret; write consumer_secret: ${ConsumerSecret} with a secret field", o.SignatureMethod)
		}
		if ro.PrivateKey != "" {
			b.errorf(p+"/private_key", "private_key is for RSA-SHA1; %s signs with the consumer secret, so remove it or set signature_method: RSA-SHA1", o.SignatureMethod)
		}
		if ro.Token != "" && ro.TokenSecret == "" {
			b.errorf(p+"/token", "a token needs its token_secret, which %s signs with; write token_secret: ${TokenSecret} with a secret field", o.SignatureMethod)
		}
	}
	if ro.Token == "" && ro.TokenSecret != "" {
		b.errorf(p+"/token_secret", "token_secret without token; write token: ${TokenId} too, or remove token_secret")
	}

	flow := map[string]string{"request_token_uri": ro.RequestTokenURI, "authorize_uri": ro.AuthorizeURI, "access_token_uri": ro.AccessTokenURI}
	given := 0
	for _, v := range flow {
		if v != "" {
			given++
		}
	}
	if given > 0 && ro.Token != "" {
		b.errorf(p+"/token", "token is for two-legged signing (the token credentials are given), and the definition also declares the three-legged flow, which obtains them; keep one")
	}
	if given > 0 && given < 3 {
		for _, k := range []string{"request_token_uri", "authorize_uri", "access_token_uri"} {
			if flow[k] == "" {
				b.errorf(p, "missing %s: the three-legged flow needs request_token_uri, authorize_uri and access_token_uri", k)
			}
		}
	}
	if ro.RequestTokenURI != "" {
		o.RequestTokenURI = b.compile(p+"/request_token_uri", ro.RequestTokenURI, templates.URL, scopeOAuth1Server)
	}
	if ro.AuthorizeURI != "" {
		o.AuthorizeURI = b.compile(p+"/authorize_uri", ro.AuthorizeURI, templates.URL, scopeOAuth1Authz)
	}
	if ro.AccessTokenURI != "" {
		o.AccessTokenURI = b.compile(p+"/access_token_uri", ro.AccessTokenURI, templates.URL, scopeOAuth1Server)
	}
}

func (o *OAuth1) templates() []*templates.Template {
	var out []*templates.Template
	for _, t := range []*templates.Template{o.ConsumerKey, o.ConsumerSecret, o.PrivateKey, o.Token, o.TokenSecret, o.Realm, o.RequestTokenURI, o.AuthorizeURI, o.AccessTokenURI} {
		if t != nil {
			out = append(out, t)
		}
	}
	return out
}
