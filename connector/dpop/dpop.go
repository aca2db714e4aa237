// Package dpop owns the client side of OAuth 2.0 Demonstrating Proof of
// Possession (RFC 9449): the key a connection proves possession of, the
// proof JWTs sent in the DPoP header (4.2), the JWK thumbprint (RFC 7638)
// that providers bind tokens to (cnf.jkt, 6), the access-token hash (ath,
// 4.2) and the nonces servers hand out (8, 9), remembered per origin.
//
// It knows nothing of definitions or stores: package connector decides when
// a request carries a proof and keeps the key with the token. go-jose does
// the JWS; what is signed, and when, is this package's.
package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/connector-engine/connector/connector/internal/pemkey"
)

// Key is a DPoP key pair. Its String, GoString and Format show the
// algorithm and thumbprint only, never the private key.
type Key struct {
	priv   crypto.Signer
	alg    jose.SignatureAlgorithm
	signer jose.Signer
	jkt    string
}

// GenerateKey makes a fresh ES256 (P-256) key: the algorithm every DPoP
// server accepts (Okta, Auth0, Keycloak), with small proofs and fast
// signing. A connection gets its own key, kept with its token.
func GenerateKey() (*Key, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating a DPoP key: %w", err)
	}
	return NewKey(priv)
}

// GenerateKeyFor makes a fresh key for the JWS algorithm alg: ES256 (""
// too), ES384 and ES512 on their curves, RS256 and PS256 with RSA 2048.
func GenerateKeyFor(alg string) (*Key, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case "", "ES256":
		return GenerateKey()
	case "ES384":
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ES512":
		priv, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "RS256", "PS256":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		return nil, fmt.Errorf("DPoP proofs are not signed with %q here; use ES256, ES384, ES512, RS256 or PS256", alg)
	}
	if err != nil {
		return nil, fmt.Errorf("generating a DPoP key: %w", err)
	}
	return NewKeyFor(priv, alg)
}

// ParseKeyFor is ParseKey for a connection whose proofs use alg: it
// decides between RS256 and PS256 for an RSA key (the key is the same, and
// a token is bound to the key, not to the algorithm). An EC key's curve
// decides its algorithm.
func ParseKeyFor(pemData, alg string) (*Key, error) {
	k, err := ParseKey(pemData)
	if err != nil || alg != "PS256" {
		return k, err
	}
	return NewKeyFor(k.priv, alg)
}

// ParseKey reads a DPoP private key from PEM (PKCS #1, SEC 1 or PKCS #8; RSA
// or EC). Errors never quote the key.
func ParseKey(pemData string) (*Key, error) {
	priv, err := pemkey.Parse(pemData, pemkey.RSA|pemkey.EC)
	var wrong *pemkey.WrongKindError
	if errors.As(err, &wrong) {
		return nil, fmt.Errorf("the DPoP key is a %T; use an EC (P-256) or RSA key", wrong.Key)
	}
	if err != nil {
		return nil, err
	}
	return NewKey(priv)
}

// NewKey wraps a private key: ES256, ES384 or ES512 by an EC key's curve,
// RS256 for RSA (RFC 9449 asks for an asymmetric algorithm; these are the
// ones providers list in dpop_signing_alg_values_supported).
func NewKey(priv crypto.Signer) (*Key, error) { return NewKeyFor(priv, "") }

// NewKeyFor is NewKey signing RSA keys with PS256 when alg says so (RSASSA-
// PSS, which some providers prefer); any other alg is the key's default.
func NewKeyFor(priv crypto.Signer, alg string) (*Key, error) {
	pss := alg == "PS256"
	var jalg jose.SignatureAlgorithm
	switch k := priv.(type) {
	case *ecdsa.PrivateKey:
		jalg = map[elliptic.Curve]jose.SignatureAlgorithm{elliptic.P256(): jose.ES256, elliptic.P384(): jose.ES384, elliptic.P521(): jose.ES512}[k.Curve]
		if jalg == "" {
			return nil, errors.New("the DPoP key's curve is not one JWS uses; use P-256")
		}
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("the DPoP key is RSA with %d bits; use at least 2048, or an EC P-256 key", k.N.BitLen())
		}
		jalg = jose.RS256
		if pss {
			jalg = jose.PS256
		}
	default:
		return nil, fmt.Errorf("a %T key cannot sign DPoP proofs here; use an EC (P-256) or RSA key", priv)
	}
	// EmbedJWK puts the public key in the header (4.2: jwk), which is
	// how the server learns what to verify and bind to.
	opts := (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt")
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jalg, Key: priv}, opts)
	if err != nil {
		return nil, fmt.Errorf("the DPoP key cannot sign %s: %w", jalg, err)
	}
	pub := jose.JSONWebKey{Key: priv.Public()}
	jkt, err := Thumbprint(pub)
	if err != nil {
		return nil, err
	}
	return &Key{priv: priv, alg: jalg, signer: signer, jkt: jkt}, nil
}

// Algorithm is the JWS algorithm of the proofs.
func (k *Key) Algorithm() string { return string(k.alg) }

// Thumbprint is the key's RFC 7638 SHA-256 thumbprint, base64url: the jkt a
// provider binds tokens to (cnf.jkt) and dpop_jkt in an authorization
// request (10).
func (k *Key) Thumbprint() string { return k.jkt }

// Public is the public half, as a JWK.
func (k *Key) Public() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.priv.Public(), Algorithm: string(k.alg)}
}

// PEM is the private key in PKCS #8 PEM, for keeping it with the token
// (sealed where the store seals tokens). It is a secret.
func (k *Key) PEM() (string, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.priv)
	if err != nil {
		return "", fmt.Errorf("encoding the DPoP key: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), nil
}

func (k *Key) String() string { return "dpop-key{alg=" + string(k.alg) + " jkt=" + k.jkt + "}" }

// GoString keeps %#v from printing the private key.
func (k *Key) GoString() string { return k.String() }

// Format makes every verb print String.
func (k *Key) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, k.String()) }

// Proof returns a DPoP proof JWT (4.2) for one request: typ dpop+jwt, the
// key's alg and public jwk in the header; jti (fresh, 128 bits), htm, htu
// (without query and fragment), iat, and ath when accessToken is given (a
// request to a resource server, 7.1) and nonce when the server gave one.
func (k *Key) Proof(method string, u *url.URL, accessToken, nonce string, now time.Time) (string, error) {
	var jti [16]byte
	_, _ = rand.Read(jti[:]) // crypto/rand.Read never fails on supported platforms
	c := claims{JTI: base64.RawURLEncoding.EncodeToString(jti[:]), HTM: method, HTU: HTU(u), IAT: now.Unix(), Nonce: nonce}
	if accessToken != "" {
		c.ATH = AccessTokenHash(accessToken)
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("the DPoP proof's claims: %w", err)
	}
	jws, err := k.signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("signing the DPoP proof: %w", err)
	}
	return jws.CompactSerialize()
}

// claims are a proof's claims (4.2), in the order the RFC lists them.
type claims struct {
	JTI   string `json:"jti"`
	HTM   string `json:"htm"`
	HTU   string `json:"htu"`
	IAT   int64  `json:"iat"`
	ATH   string `json:"ath,omitempty"`
	Nonce string `json:"nonce,omitempty"`
}

// HTU is the htu of a request to u: its URI without query and fragment
// (4.2), scheme and host in lower case as servers compare them (4.3 step 9
// refers to RFC 3986 6.2.2 normalisation).
func HTU(u *url.URL) string {
	v := url.URL{Scheme: strings.ToLower(u.Scheme), Host: strings.ToLower(u.Host), Path: u.Path, RawPath: u.RawPath}
	if v.Path == "" {
		v.Path = "/"
	}
	return v.String()
}

// AccessTokenHash is ath: base64url of the SHA-256 of the access token's
// ASCII (4.2).
func AccessTokenHash(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// Thumbprint is the RFC 7638 SHA-256 thumbprint of a public JWK, base64url.
func Thumbprint(jwk jose.JSONWebKey) (string, error) {
	sum, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("the JWK thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// MaxNonce caps a DPoP-Nonce taken from a server: it is echoed in every
// proof to that origin, and real ones are tens of bytes.
const MaxNonce = 1024

// Nonces remembers the latest DPoP-Nonce each origin (scheme://host:port)
// gave (8.2, 9): proofs to it carry that nonce until it gives another. The
// zero value is ready to use; it is safe for concurrent use.
type Nonces struct {
	mu sync.Mutex
	m  map[string]string
}

// Get is the nonce to put in a proof for a request to u, or "".
func (n *Nonces) Get(u *url.URL) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.m[Origin(u)]
}

// Remember keeps nonce (a DPoP-Nonce header's value) for u's origin. An
// empty, oversized or non-printable value is ignored: a nonce is NQCHAR
// (8.1), never a header injection.
func (n *Nonces) Remember(u *url.URL, nonce string) bool {
	if nonce == "" || len(nonce) > MaxNonce {
		return false
	}
	for i := 0; i < len(nonce); i++ {
		if c := nonce[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.m == nil {
		n.m = map[string]string{}
	}
	n.m[Origin(u)] = nonce
	return true
}

// Origin is scheme://host[:port] in lower case: the unit a server's nonce
// applies to.
func Origin(u *url.URL) string { return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host) }

// UseNonceChallenge reports whether a resource server's WWW-Authenticate
// header asks for a nonce (9): a DPoP challenge with error="use_dpop_nonce".
func UseNonceChallenge(wwwAuthenticate []string) bool {
	for _, h := range wwwAuthenticate {
		scheme, params, _ := strings.Cut(strings.TrimSpace(h), " ")
		if !strings.EqualFold(scheme, "DPoP") {
			continue
		}
		for _, p := range strings.Split(params, ",") {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(strings.TrimSpace(k), "error") && strings.Trim(strings.TrimSpace(v), `"`) == "use_dpop_nonce" {
				return true
			}
		}
	}
	return false
}
