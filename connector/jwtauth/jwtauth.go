// Package jwtauth owns the JWTs the engine signs to authenticate at a token
// endpoint (RFC 7523): the assertion of the JWT bearer grant (section 2.1,
// service accounts) and the client assertion of private_key_jwt client
// authentication (section 2.2, which RFC 9700 recommends over shared
// secrets). It reads the private key from PEM (RSA or EC), picks the
// algorithm from the key, and writes the claims iss, sub, aud, exp, iat,
// jti and any extra ones; go-jose does the JWS. It knows nothing of
// definitions or HTTP.
package jwtauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/connector-engine/connector/connector/internal/pemkey"
)

// Signer signs assertions with one private key. It is safe for concurrent
// use.
type Signer struct {
	alg    jose.SignatureAlgorithm
	kid    string
	signer jose.Signer
	pub    crypto.PublicKey

	// Now is the clock (tests move it); nil means time.Now.
	Now func() time.Time
}

// String keeps the key out of logs.
func (s *Signer) String() string { return "jwt-signer{alg=" + string(s.alg) + " kid=" + s.kid + "}" }

// Format keeps every fmt verb on String.
func (s *Signer) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, s.String()) }

// GoString keeps %#v redacted.
func (s *Signer) GoString() string { return s.String() }

// Algorithms the signer accepts; "" picks RS256 for RSA and ES256, ES384 or
// ES512 for an EC key by its curve.
var Algorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}

// New returns a signer for the PEM private key (PKCS #1, SEC 1 or PKCS #8),
// with algorithm alg ("" for the key's default) and key id kid ("" for
// none: the JWS header then has no kid). Errors never quote the key.
func New(pemKey, alg, kid string) (*Signer, error) {
	key, err := ParsePrivateKey(pemKey)
	if err != nil {
		return nil, err
	}
	a, err := algorithm(key, alg)
	if err != nil {
		return nil, err
	}
	opts := (&jose.SignerOptions{}).WithType("JWT")
	jk := jose.JSONWebKey{Key: key, KeyID: kid, Algorithm: string(a)}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: a, Key: jk}, opts)
	if err != nil {
		return nil, fmt.Errorf("the private key cannot sign %s: %w", a, err)
	}
	return &Signer{alg: a, kid: kid, signer: sig, pub: key.Public()}, nil
}

// Algorithm is the JWS algorithm the signer uses.
func (s *Signer) Algorithm() string { return string(s.alg) }

// PublicKey is the public half of the signing key (for a JWKS to register).
func (s *Signer) PublicKey() crypto.PublicKey { return s.pub }

func algorithm(key crypto.Signer, alg string) (jose.SignatureAlgorithm, error) {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		switch alg {
		case "":
			return jose.RS256, nil
		case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
			return jose.SignatureAlgorithm(alg), nil
		}
		return "", fmt.Errorf("algorithm %s does not sign with an RSA key; use RS256, RS384, RS512, PS256, PS384 or PS512", alg)
	case *ecdsa.PrivateKey:
		want := map[elliptic.Curve]jose.SignatureAlgorithm{elliptic.P256(): jose.ES256, elliptic.P384(): jose.ES384, elliptic.P521(): jose.ES512}[k.Curve]
		if want == "" {
			return "", errors.New("the EC key is on a curve JWS does not use; use P-256, P-384 or P-521")
		}
		if alg != "" && jose.SignatureAlgorithm(alg) != want {
			return "", fmt.Errorf("algorithm %s does not match the EC key's curve %s, which signs %s", alg, k.Curve.Params().Name, want)
		}
		return want, nil
	}
	return "", fmt.Errorf("a %T key cannot sign JWTs here; use an RSA or EC key", key)
}

// ParsePrivateKey reads an RSA or EC private key from PEM. Errors never
// quote the key.
func ParsePrivateKey(pemKey string) (crypto.Signer, error) {
	k, err := pemkey.Parse(pemKey, pemkey.RSA|pemkey.EC)
	var wrong *pemkey.WrongKindError
	if errors.As(err, &wrong) {
		return nil, fmt.Errorf("the private key is a %T; use an RSA or EC key", wrong.Key)
	}
	return k, err
}

// Claims are an assertion's claims (RFC 7523 3). Subject defaults to
// Issuer; Lifetime to 5 minutes.
type Claims struct {
	Issuer   string
	Subject  string
	Audience string
	Lifetime time.Duration
	Extra    map[string]any // further claims (Google's scope); they never replace the ones above
}

// DefaultLifetime is an assertion's lifetime when Claims give none: long
// enough for a slow token request, short enough that a stolen one is soon
// worthless.
const DefaultLifetime = 5 * time.Minute

// Sign returns a compact JWS of c with a fresh jti and iat of now.
func (s *Signer) Sign(c Claims) (string, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	t := now()
	life := c.Lifetime
	if life <= 0 {
		life = DefaultLifetime
	}
	sub := c.Subject
	if sub == "" {
		sub = c.Issuer
	}
	claims := make(map[string]any, len(c.Extra)+6)
	for k, v := range c.Extra {
		claims[k] = v
	}
	var jti [16]byte
	_, _ = rand.Read(jti[:])
	claims["iss"], claims["sub"], claims["aud"] = c.Issuer, sub, c.Audience
	claims["iat"], claims["exp"] = t.Unix(), t.Add(life).Unix()
	claims["jti"] = base64.RawURLEncoding.EncodeToString(jti[:])
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("the assertion's claims: %w", err)
	}
	jws, err := s.signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("signing the assertion: %w", err)
	}
	return jws.CompactSerialize()
}
