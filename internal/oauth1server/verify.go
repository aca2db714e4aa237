// Package oauth1server is an OAuth 1.0a provider for tests on loopback: it
// verifies signatures the way a server does, written from RFC 5849 apart
// from the client's signer (its own base string, encoding and sorting, the
// standard library's HMAC and RSA checks), refuses reused nonces and stale
// timestamps, and runs the three-legged flow (temporary credentials, the
// user's authorization, token credentials) as Trello does.
package oauth1server

import (
	"crypto"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"hash"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/connector-engine/connector/connector/oauth1"
)

// Verify checks r's OAuth signature the way a server does, written from
// RFC 5849 separately from the signer: it rebuilds the base string from
// the request as received (query, header parameters, form body) with its
// own encoding and sorting, and checks the signature with the standard
// library. body is the request's body (nil for none).
func Verify(r *http.Request, body []byte, consumerSecret, tokenSecret string, pub *rsa.PublicKey) error {
	hp, err := oauth1.ParseHeader(r.Header.Get("Authorization"))
	if err != nil {
		return err
	}
	var sig, method string
	var pairs [][2]string
	for _, p := range hp {
		switch p.Name {
		case "oauth_signature":
			sig = p.Value
		case "realm":
		default:
			if p.Name == "oauth_signature_method" {
				method = p.Value
			}
			pairs = append(pairs, [2]string{p.Name, p.Value})
		}
	}
	q, _ := url.ParseQuery(r.URL.RawQuery)
	for k, vs := range q {
		for _, v := range vs {
			pairs = append(pairs, [2]string{k, v})
		}
	}
	if r.Header.Get("Content-Type") == "application/x-www-form-urlencoded" {
		f, _ := url.ParseQuery(string(body))
		for k, vs := range f {
			for _, v := range vs {
				pairs = append(pairs, [2]string{k, v})
			}
		}
	}
	enc := func(s string) string {
		var b strings.Builder
		for _, c := range []byte(s) {
			if strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~", c) >= 0 {
				b.WriteByte(c)
			} else {
				b.WriteString("%" + strings.ToUpper(string("0123456789abcdef"[c>>4])+string("0123456789abcdef"[c&15])))
			}
		}
		return b.String()
	}
	for i := range pairs {
		pairs[i] = [2]string{enc(pairs[i][0]), enc(pairs[i][1])}
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i][0] == pairs[j][0] {
			return pairs[i][1] < pairs[j][1]
		}
		return pairs[i][0] < pairs[j][0]
	})
	var norm []string
	for _, p := range pairs {
		norm = append(norm, p[0]+"="+p[1])
	}
	scheme, host := r.URL.Scheme, r.URL.Host
	if host == "" { // a request as a server receives it
		scheme, host = "http", r.Host
		if r.TLS != nil {
			scheme = "https"
		}
	}
	host = strings.ToLower(host)
	host = strings.TrimSuffix(strings.TrimSuffix(host, ":443"), ":80")
	uri := strings.ToLower(scheme) + "://" + host + r.URL.EscapedPath()
	base := strings.ToUpper(r.Method) + "&" + enc(uri) + "&" + enc(strings.Join(norm, "&"))
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return errors.New("the signature is not base64")
	}
	var h func() hash.Hash
	switch method {
	case "HMAC-SHA1":
		h = sha1.New
	case "HMAC-SHA256":
		h = sha256.New
	case "RSA-SHA1":
		sum := sha1.Sum([]byte(base))
		return rsa.VerifyPKCS1v15(pub, crypto.SHA1, sum[:], raw)
	default:
		return errors.New("unknown method " + method)
	}
	mac := hmac.New(h, []byte(enc(consumerSecret)+"&"+enc(tokenSecret)))
	mac.Write([]byte(base))
	if !hmac.Equal(mac.Sum(nil), raw) {
		return errors.New("signature mismatch")
	}
	return nil
}
