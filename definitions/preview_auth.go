package definitions

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/connector-engine/connector/templates"
)

// Stand-ins for what an OAuth 1.0a request carries that only exists when
// it is sent: the nonce and timestamp are made per request, the temporary
// token and verifier come from the provider.
const (
	PreviewNonce          = "GENERATED-NONCE"
	PreviewTimestamp      = "GENERATED-TIMESTAMP"
	PreviewTemporaryToken = "TEMPORARY-TOKEN"
	PreviewOAuthVerifier  = "CALLBACK-VERIFIER"
)

// AuthURIKeys are the keys of the other schemes' requests that URI and
// Preview accept: the session login, and OAuth 1.0a's temporary credentials,
// authorization page (authorize_uri, as in OAuth 2.0) and token credentials.
var AuthURIKeys = []string{"login_uri", "request_token_uri", "access_token_uri"}

// authURI is URI for the session and OAuth 1.0a keys.
func (d *Definition) authURI(key string) (*templates.Template, bool) {
	s, o1 := d.Auth.Session, d.Auth.OAuth1
	switch {
	case key == "login_uri" && s != nil:
		return s.LoginURI, s.LoginURI != nil
	case key == "request_token_uri" && o1 != nil:
		return o1.RequestTokenURI, o1.RequestTokenURI != nil
	case key == "authorize_uri" && o1 != nil:
		return o1.AuthorizeURI, o1.AuthorizeURI != nil
	case key == "access_token_uri" && o1 != nil:
		return o1.AccessTokenURI, o1.AccessTokenURI != nil
	}
	return nil, false
}

// redactedValues is vals with every secret placeholder's value as ***, so
// that whatever is built from them shows no secret.
func (d *Definition) redactedValues(vals []string) []string {
	vs := slices.Clone(vals)
	for i := range vs {
		if i < d.vars.Len() && d.vars.Flags(i)&templates.Secret != 0 && vs[i] != "" {
			vs[i] = "***"
		}
	}
	return vs
}

// previewSession renders the session login request as connector's
// SessionLogin.Login sends it: method, login_uri, Accept, the body's
// Content-Type, the definition's headers, the body.
func (d *Definition) previewSession(vals []string, showSecrets bool) (*Preview, error) {
	s := d.Auth.Session
	vs := vals
	if !showSecrets {
		vs = d.redactedValues(vals)
	}
	raw, err := s.LoginURI.Expand(vs)
	if err != nil {
		return nil, fmt.Errorf("login_uri: %w", err)
	}
	body, contentType, err := s.LoginBody(vs)
	if err != nil {
		return nil, fmt.Errorf("the login body: %w", err)
	}
	p := &Preview{Method: s.Method, URL: unstar(raw), Headers: [][2]string{{"Accept", "application/json"}}}
	if contentType != "" {
		p.Headers = append(p.Headers, [2]string{"Content-Type", contentType})
	}
	for _, h := range s.Headers {
		v, err := h.Value.Expand(vs)
		if err != nil {
			return nil, fmt.Errorf("login header %s: %w", h.Name, err)
		}
		if v != "" {
			p.Headers = append(p.Headers, [2]string{h.Name, v})
		}
	}
	p.Body = unstar(string(body))
	return p, nil
}

// previewOAuth1 renders an OAuth 1.0a request of the three-legged flow as
// connector's OAuth1Flow sends it (RFC 5849 2): the temporary credentials
// and token credentials requests are POSTs signed in an Authorization
// header, whose signature is always *** (it signs a nonce and a time that
// exist only when the request is sent); the authorization page is the URL
// the user opens, with the temporary token.
func (d *Definition) previewOAuth1(key string, vals []string, showSecrets bool) (*Preview, error) {
	o := d.Auth.OAuth1
	vs := vals
	if !showSecrets {
		vs = d.redactedValues(vals)
	}
	t, _ := d.authURI(key)
	raw, err := t.Expand(vs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	hidden := func(standIn string) string {
		if showSecrets {
			return standIn
		}
		return "***"
	}
	if key == "authorize_uri" {
		u, err := url.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("authorize_uri does not expand to a URL: %w", err)
		}
		q := u.Query()
		q.Set("oauth_token", hidden(PreviewTemporaryToken))
		u.RawQuery = q.Encode()
		return &Preview{Method: "GET", URL: unstar(u.String())}, nil
	}
	expand := func(t *templates.Template) (string, error) {
		if t == nil {
			return "", nil
		}
		return t.Expand(vs)
	}
	key1, err := expand(o.ConsumerKey)
	if err != nil {
		return nil, fmt.Errorf("consumer_key: %w", err)
	}
	realm, err := expand(o.Realm)
	if err != nil {
		return nil, fmt.Errorf("realm: %w", err)
	}
	method := o.SignatureMethod
	if method == "" {
		method = OAuth1HMACSHA1
	}
	// The order connector/oauth1's Signer writes them in.
	ps := [][2]string{{"oauth_consumer_key", key1}, {"oauth_nonce", PreviewNonce}, {"oauth_signature_method", method},
		{"oauth_timestamp", PreviewTimestamp}, {"oauth_version", "1.0"}}
	if key == "request_token_uri" {
		callback := vals[VarRedirectURI]
		if callback == "" {
			callback = "oob"
		}
		ps = append(ps, [2]string{"oauth_callback", callback})
	} else {
		ps = append(ps, [2]string{"oauth_token", hidden(PreviewTemporaryToken)}, [2]string{"oauth_verifier", hidden(PreviewOAuthVerifier)})
	}
	ps = append(ps, [2]string{"oauth_signature", "***"})
	var h strings.Builder
	h.WriteString("OAuth ")
	if realm != "" {
		h.WriteString(`realm="` + oauth1Encode(realm) + `", `)
	}
	for i, p := range ps {
		if i > 0 {
			h.WriteString(", ")
		}
		h.WriteString(p[0] + `="` + oauth1Encode(p[1]) + `"`)
	}
	return &Preview{Method: "POST", URL: unstar(raw), Headers: [][2]string{{"Authorization", unstar(h.String())}}}, nil
}

// oauth1Encode is RFC 5849 3.6 percent-encoding: every byte but the
// unreserved characters.
func oauth1Encode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// unstar shows an escaped *** as ***, which reads better.
func unstar(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "%2A%2A%2A", "***"), "%2a%2a%2a", "***")
}

// previewCertificate describes the client certificate a token request
// presents in the TLS handshake (RFC 8705): where it comes from and, when
// its PEM is given, its subject, issuer, expiry and fingerprint. The key is
// named, never shown.
func (d *Definition) previewCertificate(vals []string) []string {
	o := d.Auth.OAuth
	if o == nil || o.ClientCertificate == nil {
		return nil
	}
	cc := o.ClientCertificate
	where := "the token endpoint"
	if cc.APICalls {
		where = "the token endpoint and the API"
	}
	line := fmt.Sprintf("TLS client certificate %s, presented to %s", cc.Certificate.Source(), where)
	var raw string // the field's value as it is: the engine reads the placeholder's, PEM line breaks and all
	if ph := cc.Certificate.Placeholders(); len(ph) == 1 {
		raw = vals[ph[0].Var]
	}
	if blk, _ := pem.Decode([]byte(raw)); blk != nil && blk.Type == "CERTIFICATE" {
		if cert, err := x509.ParseCertificate(blk.Bytes); err == nil {
			sum := sha256.Sum256(cert.Raw)
			line += fmt.Sprintf(": subject %s, issuer %s, valid until %s, SHA-256 %s", cert.Subject, cert.Issuer, cert.NotAfter.UTC().Format(time.RFC3339), hex.EncodeToString(sum[:]))
		} else {
			line += ": the PEM does not hold a readable certificate"
		}
	} else if raw != "" {
		line += ": the value is not a PEM certificate"
	}
	return []string{line, fmt.Sprintf("TLS private key %s: not shown, never sent", cc.PrivateKey.Source())}
}
