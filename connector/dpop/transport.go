package dpop

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"
)

// Transport sends each request with "Authorization: DPoP <token>" and a
// fresh proof bound to that token (ath), its method and URL (7.1). A 401
// whose challenge is use_dpop_nonce (9) and that carries a new DPoP-Nonce is
// retried once with it, when the request can be sent again; the nonce every
// response gives is remembered for the next request to that origin.
type Transport struct {
	Base   http.RoundTripper // nil: http.DefaultTransport
	Key    *Key
	Nonces *Nonces // shared with the token requests of the same connection
	// Token gives the access token for a request (a Source's, kept fresh).
	Token func(*http.Request) (string, error)
	Now   func() time.Time // nil: time.Now
}

// RoundTrip implements http.RoundTripper. It does not change req.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.Key == nil || t.Nonces == nil || t.Token == nil {
		return nil, errors.New("dpop.Transport needs Key, Nonces and Token")
	}
	tok, err := t.Token(req)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	nonce := t.Nonces.Get(req.URL)
	resp, err := t.send(req, tok, nonce)
	if err != nil {
		return nil, err
	}
	fresh := resp.Header.Get("DPoP-Nonce")
	if fresh != "" {
		t.Nonces.Remember(req.URL, fresh)
	}
	if resp.StatusCode != http.StatusUnauthorized || fresh == "" || fresh == nonce || !UseNonceChallenge(resp.Header.Values("WWW-Authenticate")) {
		return resp, nil
	}
	// The server wants its nonce in the proof: once, and only if the body
	// can be sent again.
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return resp, nil
	}
	again := req.Clone(req.Context())
	if req.GetBody != nil && req.Body != nil && req.Body != http.NoBody {
		if again.Body, err = req.GetBody(); err != nil {
			return resp, nil
		}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	resp.Body.Close()
	resp, err = t.send(again, tok, t.Nonces.Get(req.URL))
	if err == nil {
		if n := resp.Header.Get("DPoP-Nonce"); n != "" {
			t.Nonces.Remember(req.URL, n)
		}
	}
	return resp, err
}

func (t *Transport) send(req *http.Request, tok, nonce string) (*http.Response, error) {
	now := time.Now
	if t.Now != nil {
		now = t.Now
	}
	proof, err := t.Key.Proof(req.Method, req.URL, tok, nonce, now())
	if err != nil {
		closeBody(req)
		return nil, err
	}
	r := req.Clone(req.Context()) // a RoundTripper must not modify the caller's request
	r.Header.Set("Authorization", "DPoP "+tok)
	r.Header.Set("DPoP", proof)
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(r)
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// TokenTransport sends token requests (RFC 9449 5) with a fresh proof
// each: htm and htu of the request, no ath, the nonce the authorization
// server gave last. A 400 whose body says use_dpop_nonce and that carries
// a new DPoP-Nonce (8) is sent once more with it when the body can be sent
// again; a code or refresh token is not spent by that refusal. Every
// attempt of a retrying client above gets a proof of its own, since a jti
// is single use.
type TokenTransport struct {
	Base   http.RoundTripper // nil: http.DefaultTransport
	Key    *Key
	Nonces *Nonces          // shared with the connection's API calls
	Now    func() time.Time // nil: time.Now
}

// maxErrorPeek caps what is read of a 400 to see whether it asks for a
// nonce: an OAuth error body is a few hundred bytes.
const maxErrorPeek = 64 << 10

// RoundTrip implements http.RoundTripper. It does not change req.
func (t *TokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.Key == nil || t.Nonces == nil {
		closeBody(req)
		return nil, errors.New("dpop.TokenTransport needs Key and Nonces")
	}
	nonce := t.Nonces.Get(req.URL)
	resp, err := t.send(req, nonce)
	if err != nil {
		return nil, err
	}
	fresh := resp.Header.Get("DPoP-Nonce")
	if fresh != "" {
		t.Nonces.Remember(req.URL, fresh)
	}
	if resp.StatusCode != http.StatusBadRequest || fresh == "" || fresh == nonce || t.Nonces.Get(req.URL) != fresh {
		return resp, nil
	}
	peek, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorPeek))
	if err != nil {
		resp.Body.Close()
		return nil, err
	}
	var answer struct {
		Error string `json:"error"`
	}
	again := req.Clone(req.Context())
	canResend := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	if json.Unmarshal(peek, &answer) != nil || answer.Error != "use_dpop_nonce" || !canResend {
		// Not a nonce challenge: the caller reads the whole answer.
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(peek), resp.Body), resp.Body}
		return resp, nil
	}
	resp.Body.Close()
	if req.GetBody != nil && req.Body != nil && req.Body != http.NoBody {
		if again.Body, err = req.GetBody(); err != nil {
			return nil, err
		}
	}
	resp, err = t.send(again, fresh)
	if err == nil {
		if n := resp.Header.Get("DPoP-Nonce"); n != "" {
			t.Nonces.Remember(req.URL, n)
		}
	}
	return resp, err
}

func (t *TokenTransport) send(req *http.Request, nonce string) (*http.Response, error) {
	now := time.Now
	if t.Now != nil {
		now = t.Now
	}
	proof, err := t.Key.Proof(req.Method, req.URL, "", nonce, now())
	if err != nil {
		closeBody(req)
		return nil, err
	}
	r := req.Clone(req.Context())
	r.Header.Set("DPoP", proof)
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(r)
}
