// Package oauth1 owns OAuth 1.0a request signing (RFC 5849): the signature
// base string and its percent-encoding (section 3.4.1, 3.6), the HMAC-SHA1,
// HMAC-SHA256 (NetSuite token-based authentication) and RSA-SHA1 signature
// methods (3.4.2, 3.4.3), and the Authorization header (3.5.1). It knows
// nothing of definitions, stores or flows: the connector builds a Signer
// from a definition and signs each API request with it.
package oauth1

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/connector-engine/connector/connector/internal/pemkey"
)

// Signature methods.
const (
	HMACSHA1   = "HMAC-SHA1"
	HMACSHA256 = "HMAC-SHA256"
	RSASHA1    = "RSA-SHA1"
)

// Signer signs requests with one set of client credentials. The token
// credentials are given per request, as they may change (three-legged) or
// not (two-legged). A Signer is safe for concurrent use.
type Signer struct {
	ConsumerKey    string
	ConsumerSecret string          // HMAC methods
	PrivateKey     *rsa.PrivateKey // RSA-SHA1
	Method         string          // HMACSHA1 (default), HMACSHA256 or RSASHA1
	Realm          string          // the realm parameter of the header, not signed; "" for none (NetSuite: the account id)

	// Now and Nonce make signatures reproducible in tests; nil means the
	// clock and 16 random bytes.
	Now   func() time.Time
	Nonce func() string
}

// String keeps the secrets out of logs.
func (s *Signer) String() string {
	return "oauth1-signer{method=" + s.method() + " consumer=" + s.ConsumerKey + "}"
}

// Format keeps every fmt verb on String.
func (s *Signer) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, s.String()) }

// GoString keeps %#v redacted.
func (s *Signer) GoString() string { return s.String() }

func (s *Signer) method() string {
	if s.Method == "" {
		return HMACSHA1
	}
	return s.Method
}

// Token is a set of token credentials: the token and its shared secret.
type Token struct {
	Token  string
	Secret string
}

// String keeps the secret out of logs.
func (t Token) String() string { return "oauth1-token{" + t.Token + "}" }

// Format keeps every fmt verb on String.
func (t Token) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, t.String()) }

// GoString keeps %#v redacted.
func (t Token) GoString() string { return t.String() }

// Param is one name and value.
type Param struct{ Name, Value string }

// Sign adds an Authorization header to r carrying the OAuth protocol
// parameters and the signature over r's method, URL, query and (for a
// form-encoded body) body parameters. extra are protocol parameters of this
// request beyond the standard ones (oauth_callback, oauth_verifier). A
// form body is read through r.GetBody, so r's Body is left unread.
func (s *Signer) Sign(r *http.Request, tok Token, extra ...Param) error {
	oauth := s.protocolParams(tok, extra)
	form, err := formBody(r)
	if err != nil {
		return err
	}
	base := BaseString(r.Method, r.URL, append(oauth, form...))
	sig, err := s.signature(base, tok.Secret)
	if err != nil {
		return err
	}
	r.Header.Set("Authorization", s.header(append(oauth, Param{"oauth_signature", sig})))
	return nil
}

// protocolParams are the oauth_* parameters of one request (RFC 5849 3.1).
func (s *Signer) protocolParams(tok Token, extra []Param) []Param {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	nonce := randomNonce
	if s.Nonce != nil {
		nonce = s.Nonce
	}
	ps := []Param{
		{"oauth_consumer_key", s.ConsumerKey},
		{"oauth_nonce", nonce()},
		{"oauth_signature_method", s.method()},
		{"oauth_timestamp", strconv.FormatInt(now().Unix(), 10)},
		{"oauth_version", "1.0"},
	}
	if tok.Token != "" {
		ps = append(ps, Param{"oauth_token", tok.Token})
	}
	return append(ps, extra...)
}

func randomNonce() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// maxFormBody caps the form body read for signing.
const maxFormBody = 8 << 20

// formBody returns the parameters of r's body when it is a single-part
// application/x-www-form-urlencoded body (RFC 5849 3.4.1.3.1); other bodies
// are not signed (OAuth 1.0a has no body hash).
func formBody(r *http.Request) ([]Param, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/x-www-form-urlencoded" {
		return nil, nil
	}
	if r.GetBody == nil {
		return nil, errors.New("oauth1: a form body must be readable twice (GetBody) to be signed")
	}
	b, err := r.GetBody()
	if err != nil {
		return nil, fmt.Errorf("oauth1: reading the form body to sign it: %w", err)
	}
	defer b.Close()
	data, err := io.ReadAll(io.LimitReader(b, maxFormBody+1))
	if err != nil {
		return nil, fmt.Errorf("oauth1: reading the form body to sign it: %w", err)
	}
	if len(data) > maxFormBody {
		return nil, fmt.Errorf("oauth1: the form body is larger than %d bytes; it cannot be signed", maxFormBody)
	}
	return parseForm(string(data))
}

// parseForm decodes application/x-www-form-urlencoded pairs, keeping
// repeated names and empty values ("c2" is c2=""), as RFC 5849 3.4.1.3.1
// signs them.
func parseForm(s string) ([]Param, error) {
	var out []Param
	for s != "" {
		var kv string
		kv, s, _ = strings.Cut(s, "&")
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		dk, err := url.QueryUnescape(k)
		if err != nil {
			return nil, fmt.Errorf("oauth1: the parameter name %q is not form-encoded: %w", k, err)
		}
		dv, err := url.QueryUnescape(v)
		if err != nil {
			return nil, fmt.Errorf("oauth1: the value of %q is not form-encoded: %w", dk, err)
		}
		out = append(out, Param{dk, dv})
	}
	return out, nil
}

// BaseString is the signature base string (RFC 5849 3.4.1) of a request
// with method, URL u (whose query parameters are included) and the other
// parameters params (the protocol parameters without oauth_signature, and
// any form body parameters).
func BaseString(method string, u *url.URL, params []Param) string {
	all := make([]Param, 0, len(params)+4)
	if q, err := parseForm(u.RawQuery); err == nil {
		all = append(all, q...)
	} else {
		// A query that is not valid form encoding is signed as the
		// server would most plausibly read it: name and value as written.
		for _, kv := range strings.Split(u.RawQuery, "&") {
			if kv != "" {
				k, v, _ := strings.Cut(kv, "=")
				all = append(all, Param{k, v})
			}
		}
	}
	all = append(all, params...)
	var b strings.Builder
	b.WriteString(Encode(strings.ToUpper(method)))
	b.WriteByte('&')
	b.WriteString(Encode(BaseURI(u)))
	b.WriteByte('&')
	b.WriteString(Encode(NormalizeParams(all)))
	return b.String()
}

// BaseURI is the base string URI (RFC 5849 3.4.1.2): scheme and host in
// lower case, the port only when it is not the scheme's default, the path
// as sent ("/" when empty), no query or fragment.
func BaseURI(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]" // an IPv6 literal
	}
	if p := u.Port(); p != "" && !(scheme == "http" && p == "80") && !(scheme == "https" && p == "443") {
		host += ":" + p
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path
}

// NormalizeParams is the normalized parameter string (RFC 5849 3.4.1.3.2):
// names and values encoded, sorted by name then value, joined by & and =.
func NormalizeParams(params []Param) string {
	enc := make([]Param, 0, len(params))
	for _, p := range params {
		if p.Name == "oauth_signature" || p.Name == "realm" {
			continue // 3.4.1.3.1: excluded
		}
		enc = append(enc, Param{Encode(p.Name), Encode(p.Value)})
	}
	sort.Slice(enc, func(i, j int) bool {
		if enc[i].Name != enc[j].Name {
			return enc[i].Name < enc[j].Name
		}
		return enc[i].Value < enc[j].Value
	})
	var b strings.Builder
	for i, p := range enc {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.Name)
		b.WriteByte('=')
		b.WriteString(p.Value)
	}
	return b.String()
}

// Encode is RFC 5849 3.6 percent-encoding: every byte of the UTF-8 string
// but ALPHA, DIGIT, "-", ".", "_" and "~" as %XX with upper-case hex.
func Encode(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !unreserved(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hex = "0123456789ABCDEF"
	out := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) {
			out = append(out, c)
		} else {
			out = append(out, '%', hex[c>>4], hex[c&15])
		}
	}
	return string(out)
}

func unreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// signature signs base with the signer's method (RFC 5849 3.4.2, 3.4.3).
func (s *Signer) signature(base, tokenSecret string) (string, error) {
	var h func() hash.Hash
	switch s.method() {
	case HMACSHA1:
		h = sha1.New
	case HMACSHA256:
		h = sha256.New
	case RSASHA1:
		if s.PrivateKey == nil {
			return "", errors.New("oauth1: RSA-SHA1 needs a private key")
		}
		sum := sha1.Sum([]byte(base))
		sig, err := rsa.SignPKCS1v15(nil, s.PrivateKey, crypto.SHA1, sum[:])
		if err != nil {
			return "", fmt.Errorf("oauth1: signing with the RSA key: %w", err)
		}
		return base64.StdEncoding.EncodeToString(sig), nil
	default:
		return "", fmt.Errorf("oauth1: unknown signature method %q; use HMAC-SHA1, HMAC-SHA256 or RSA-SHA1", s.Method)
	}
	mac := hmac.New(h, []byte(Encode(s.ConsumerSecret)+"&"+Encode(tokenSecret)))
	mac.Write([]byte(base))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}

// Signature returns the signature of a base string (for tests and tools).
func (s *Signer) Signature(base, tokenSecret string) (string, error) {
	return s.signature(base, tokenSecret)
}

// header writes the Authorization header (RFC 5849 3.5.1).
func (s *Signer) header(ps []Param) string {
	var b strings.Builder
	b.WriteString("OAuth ")
	if s.Realm != "" {
		b.WriteString(`realm="` + Encode(s.Realm) + `", `)
	}
	for i, p := range ps {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(Encode(p.Name))
		b.WriteString(`="`)
		b.WriteString(Encode(p.Value))
		b.WriteByte('"')
	}
	return b.String()
}

// ParseRSAPrivateKey reads an RSA private key from PEM: PKCS #1 ("RSA
// PRIVATE KEY") or PKCS #8 ("PRIVATE KEY"). Errors never quote the key.
func ParseRSAPrivateKey(pemData string) (*rsa.PrivateKey, error) {
	k, err := pemkey.Parse(pemData, pemkey.RSA)
	var wrong *pemkey.WrongKindError
	if errors.As(err, &wrong) {
		return nil, fmt.Errorf("the private key is a %T, not an RSA key; RSA-SHA1 needs RSA", wrong.Key)
	}
	if err != nil {
		return nil, err
	}
	return k.(*rsa.PrivateKey), nil
}

// ParseHeader reads an OAuth Authorization header's parameters (RFC 5849
// 3.5.1), for servers and tests; it returns an error for anything else.
func ParseHeader(h string) ([]Param, error) {
	rest, ok := strings.CutPrefix(h, "OAuth ")
	if !ok {
		return nil, errors.New("not an OAuth Authorization header")
	}
	var out []Param
	for _, part := range strings.Split(rest, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok || len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
			return nil, fmt.Errorf("the parameter %q is not name=\"value\"", k)
		}
		dk, err1 := url.PathUnescape(k)
		dv, err2 := url.PathUnescape(v[1 : len(v)-1])
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("the parameter %q is not percent-encoded: %w", k, err)
		}
		out = append(out, Param{dk, dv})
	}
	return out, nil
}
