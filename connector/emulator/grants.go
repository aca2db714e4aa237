package emulator

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"time"
)

// authorizationLifetime bounds both a pending consent page and an
// authorization code: Procore's codes live 10 minutes.
const authorizationLifetime = 10 * time.Minute

// grant is one authorization: everything issued from one code exchange (and
// its refreshes) or one client_credentials request. Revoking it invalidates
// all its tokens at once.
type grant struct {
	clientID       string
	userID         int64
	serviceAccount bool
	revoked        bool

	// The rate-limit window is shared by every access token of the grant.
	windowStart time.Time
	windowCount int
}

type accessToken struct {
	grant     *grant
	createdAt time.Time
	expiresAt time.Time
	revoked   bool // replaced by a refresh
}

// usable reports whether the token is neither replaced nor revoked. Expiry
// is checked apart, so callers can tell an expired token from a revoked one.
func (t *accessToken) usable() bool { return !t.revoked && !t.grant.revoked }

type refreshToken struct {
	grant  *grant
	access *accessToken // issued together; revoked when this is used
	used   bool
}

// consent is an authorization request waiting for the user's decision on
// the consent page. Its id is the hidden request_id of the page's form.
type consent struct {
	client      *Client
	redirectURI string
	state       string
	challenge   string
	method      string
	userID      int64
	expiresAt   time.Time
}

// authCode is an issued authorization code and what it is bound to.
type authCode struct {
	clientID    string
	redirectURI string
	challenge   string
	method      string
	userID      int64
	expiresAt   time.Time
	used        bool
	grant       *grant // the grant the code was exchanged for, revoked on replay
}

// tokenResponse is the body of a successful token request.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	CreatedAt    int64  `json:"created_at"`
}

// issueLocked mints an access token, and a refresh token if withRefresh,
// for g. s.mu must be held.
func (s *Server) issueLocked(g *grant, withRefresh bool, now time.Time) tokenResponse {
	at := &accessToken{grant: g, createdAt: now, expiresAt: now.Add(s.cfg.TokenLifetime)}
	resp := tokenResponse{
		AccessToken: randomString(32),
		TokenType:   "bearer",
		ExpiresIn:   int64(s.cfg.TokenLifetime / time.Second),
		CreatedAt:   now.Unix(),
	}
	s.access[resp.AccessToken] = at
	if withRefresh {
		resp.RefreshToken = randomString(32)
		s.refresh[resp.RefreshToken] = &refreshToken{grant: g, access: at}
	}
	return resp
}

// sweepLocked forgets expired consents, codes and idempotent answers, at
// most once a minute. Tokens are kept: an expired access token must still
// be told apart from an unknown one, and a used refresh token must still be
// recognised on reuse.
func (s *Server) sweepLocked(now time.Time) {
	if now.Sub(s.swept) < time.Minute {
		return
	}
	s.swept = now
	for id, c := range s.consents {
		if !now.Before(c.expiresAt) {
			delete(s.consents, id)
		}
	}
	for id, c := range s.codes {
		if !now.Before(c.expiresAt) {
			delete(s.codes, id)
		}
	}
	s.sweepIdempotencyLocked(now)
}

// PKCE (RFC 7636) methods.
const (
	pkceS256  = "S256"
	pkcePlain = "plain"
)

// validPKCEString reports whether v has the syntax RFC 7636 gives both
// verifiers and (for the methods supported here) challenges: 43 to 128
// unreserved characters.
func validPKCEString(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_', c == '~':
		default:
			return false
		}
	}
	return true
}

// checkPKCE verifies a code_verifier against the challenge stored with a
// code. The messages go into error_description, so they never quote either.
func checkPKCE(challenge, method, verifier string) error {
	if challenge == "" {
		if verifier != "" {
			return errors.New("code_verifier was sent but the authorization request carried no code_challenge")
		}
		return nil
	}
	if verifier == "" {
		return errors.New("code_verifier is required: the authorization request carried a code_challenge")
	}
	if !validPKCEString(verifier) {
		return errors.New("code_verifier must be 43 to 128 characters from A-Z a-z 0-9 - . _ ~")
	}
	want := verifier
	if method == pkceS256 {
		sum := sha256.Sum256([]byte(verifier))
		want = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	if subtle.ConstantTimeCompare([]byte(want), []byte(challenge)) != 1 {
		return errors.New("code_verifier does not match the code_challenge")
	}
	return nil
}
