// Package pemkey reads a private key from PEM for the packages that sign
// with one (connector/jwtauth: RSA or EC JWS keys; connector/oauth1: RSA-SHA1
// keys), so that the blocks they accept and the errors they give stay the
// same in both. Errors never quote the key: a PEM key is a secret.
package pemkey

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// Kinds says which keys a caller signs with.
type Kinds int

const (
	RSA Kinds = 1 << iota // PKCS #1 "RSA PRIVATE KEY", or RSA in PKCS #8
	EC                    // SEC 1 "EC PRIVATE KEY", or ECDSA in PKCS #8
)

// WrongKindError is a PKCS #8 key of a kind the caller does not accept; the
// caller words the message, since it knows what it signs.
type WrongKindError struct{ Key any }

func (e *WrongKindError) Error() string { return fmt.Sprintf("the private key is a %T", e.Key) }

// Parse reads the first PEM block of pemData as a private key of one of the
// accepted kinds: PKCS #1, SEC 1 (when EC is accepted) or PKCS #8. A PKCS #8
// key of another kind is a *WrongKindError.
func Parse(pemData string, accept Kinds) (crypto.Signer, error) {
	block, _ := pem.Decode([]byte(pemData))
	if block == nil {
		if accept&EC != 0 {
			return nil, errors.New("the private key is not PEM (it should start with -----BEGIN PRIVATE KEY-----, -----BEGIN RSA PRIVATE KEY----- or -----BEGIN EC PRIVATE KEY-----)")
		}
		return nil, errors.New("the private key is not PEM (it should start with -----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)")
	}
	switch {
	case block.Type == "RSA PRIVATE KEY" && accept&RSA != 0:
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("the RSA PRIVATE KEY block is not a valid PKCS #1 key")
		}
		return k, nil
	case block.Type == "EC PRIVATE KEY" && accept&EC != 0:
		k, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("the EC PRIVATE KEY block is not a valid SEC 1 key")
		}
		return k, nil
	case block.Type == "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("the PRIVATE KEY block is not a valid PKCS #8 key")
		}
		switch k := k.(type) {
		case *rsa.PrivateKey:
			if accept&RSA != 0 {
				return k, nil
			}
		case *ecdsa.PrivateKey:
			if accept&EC != 0 {
				return k, nil
			}
		}
		return nil, &WrongKindError{Key: k}
	}
	return nil, fmt.Errorf("the PEM block is a %q, not a private key", block.Type)
}
