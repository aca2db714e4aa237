package store

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/connector-engine/connector/connector/token"
)

// KeySize is the length of a sealing key: AES-256.
const KeySize = 32

// sealV1 is the first byte of every value sealed with AES-256-GCM and a random
// 96-bit nonce. A later key or algorithm gets a new byte, so values written
// before a rotation stay readable while new ones move on.
const sealV1 byte = 1

// ErrUnseal: a sealed value did not authenticate. The key differs from the one
// it was sealed with, or the value or its associated data was altered.
var ErrUnseal = errors.New("store: sealed value failed authentication: wrong key, or the value or its associated data was altered")

// Sealer encrypts and authenticates values with AES-256-GCM. It is safe for
// concurrent use. Its String and Format methods never print the key.
type Sealer struct {
	aead   cipher.AEAD
	source string // where the key came from, for error messages; "" if unknown
}

// NewSealer returns a Sealer for a 32-byte key.
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("store: the secret key is %d bytes; it must be %d (AES-256)", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	// The random-nonce GCM draws a fresh 96-bit nonce for every Seal and
	// prepends it, so no caller can ever reuse one.
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts plaintext and binds it to associatedData, which must be given
// again to Open. The result is a version byte, the nonce, the ciphertext and
// the tag.
func (s *Sealer) Seal(plaintext, associatedData []byte) ([]byte, error) {
	out := make([]byte, 1, 1+len(plaintext)+s.aead.Overhead())
	out[0] = sealV1
	return s.aead.Seal(out, nil, plaintext, associatedData), nil
}

// Open authenticates and decrypts a value made by Seal with the same key and
// associatedData. A wrong key or any alteration gives an error wrapping
// ErrUnseal; errors never contain the data.
func (s *Sealer) Open(sealed, associatedData []byte) ([]byte, error) {
	if len(sealed) == 0 {
		return nil, fmt.Errorf("store: sealed value is empty: %w", ErrUnseal)
	}
	if sealed[0] != sealV1 {
		return nil, fmt.Errorf("store: sealed value has format version %d, which this build cannot open (was it written by a newer connector?)", sealed[0])
	}
	if len(sealed)-1 < s.aead.Overhead() {
		return nil, fmt.Errorf("store: sealed value is truncated: %w", ErrUnseal)
	}
	plain, err := s.aead.Open(nil, nil, sealed[1:], associatedData)
	if err != nil {
		return nil, ErrUnseal
	}
	return plain, nil
}

// SealToken seals t for the connection id and its binding b, which are the
// associated data: a sealed token moved to another connection's record, or
// a record whose binding was altered, fails to open. A zero b seals with
// the id alone, as records written before bindings were. Every backend seals
// tokens this way.
func (s *Sealer) SealToken(id string, b Binding, t token.Token) ([]byte, error) {
	plain, err := json.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("store: encoding token of connection %q: %w", id, err)
	}
	return s.Seal(plain, associatedData(id, b))
}

// OpenToken opens a token sealed by SealToken for the same connection id and
// binding.
func (s *Sealer) OpenToken(id string, b Binding, sealed []byte) (token.Token, error) {
	plain, err := s.Open(sealed, associatedData(id, b))
	if err != nil {
		return token.Token{}, err
	}
	var t token.Token
	if err := json.Unmarshal(plain, &t); err != nil {
		// It authenticated, so this build wrote something it cannot read
		// back; the JSON error could quote the secret, so it is dropped.
		return token.Token{}, fmt.Errorf("store: token of connection %q decrypted but is not a valid token encoding", id)
	}
	return t, nil
}

// KeySource says where the key came from ("CONNECTOR_SECRET_KEY", or the key
// file's path) when the Sealer was made by LoadSealer, and "" otherwise. Stores
// use it to tell a user which key to check.
func (s *Sealer) KeySource() string { return s.source }

// keyName names the key for a person: where it came from, when known.
func (s *Sealer) keyName() string {
	switch s.source {
	case "":
		return "the secret key (" + EnvSecretKey + ", or the key file)"
	case EnvSecretKey:
		return "the key in " + EnvSecretKey
	default:
		return "the key in " + s.source
	}
}

// OpenStoredToken opens the token a store kept for connection id and binding
// b. When it
// cannot be decrypted, the error names the connection, where (the store and
// its file or database) and which key to check, and still matches ErrUnseal.
func (s *Sealer) OpenStoredToken(id string, b Binding, sealed []byte, where string) (token.Token, error) {
	tok, err := s.OpenToken(id, b, sealed)
	if errors.Is(err, ErrUnseal) {
		return token.Token{}, &unsealError{
			msg: fmt.Sprintf("%s: the token of connection %q cannot be decrypted: %s differs from the key it was written with, or the stored data was altered; use the original key, or delete the connection and authorize it again",
				where, id, s.keyName()),
			err: err,
		}
	}
	if err != nil {
		return token.Token{}, fmt.Errorf("%s: connection %q: %w", where, id, err)
	}
	return tok, nil
}

type unsealError struct {
	msg string
	err error
}

func (e *unsealError) Error() string { return e.msg }
func (e *unsealError) Unwrap() error { return e.err }

// String describes the Sealer without its key.
func (s Sealer) String() string {
	if s.source == "" {
		return "store.Sealer(AES-256-GCM)"
	}
	return "store.Sealer(AES-256-GCM, key from " + s.source + ")"
}

// Format makes every verb print the String form: the default %+v of the
// struct would otherwise print the expanded AES key. Value receivers, so a
// copied Sealer is redacted too.
func (s Sealer) Format(f fmt.State, verb rune) {
	str := s.String()
	if verb == 'q' {
		str = fmt.Sprintf("%q", str)
	}
	_, _ = f.Write([]byte(str))
}

// GoString keeps %#v redacted as well.
func (s Sealer) GoString() string { return s.String() }
