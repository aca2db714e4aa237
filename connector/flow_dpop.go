package connector

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/connector-engine/connector/connector/dpop"
	"github.com/connector-engine/connector/connector/token"
)

// DPoP (RFC 9449, auth.oauth.dpop): the token requests of a connection
// carry proofs signed with a key made for its grant, and the key is kept
// with the token (token.Token.DPoPKey, sealed with it) so that refreshes
// and API calls sign with the same key. Package dpop signs; this file
// decides which key a request uses.

// dpopConn is what the copies of one connection's flow, and its API,
// share: the nonces its servers gave (8, 9) and the algorithm.
type dpopConn struct {
	alg    string
	nonces dpop.Nonces
}

func newDPoPConn(f *Flow) *dpopConn {
	if f.o.DPoP == nil {
		return nil
	}
	return &dpopConn{alg: f.o.DPoP.Algorithm}
}

// withProofKey returns the flow a token request of kind what is sent by,
// and the key its proof is signed with (nil for none). A flow given a key
// (a refresh, a device grant's polls) uses it; a grant that starts a
// connection (code exchange, client credentials, JWT bearer) gets a fresh
// one. A refresh without a key is a token stored before the definition had
// dpop: it stays a bearer token, as its refresh token was never bound.
func (f *Flow) withProofKey(what string) (*Flow, *dpop.Key, error) {
	if f.dpop == nil || f.dpopKey != nil || what == "refresh" {
		return f, f.dpopKey, nil
	}
	g, err := f.withNewDPoPKey()
	if err != nil {
		return nil, nil, err
	}
	return g, g.dpopKey, nil
}

// withNewDPoPKey is a copy of f with a fresh key; f itself without DPoP.
func (f *Flow) withNewDPoPKey() (*Flow, error) {
	if f.dpop == nil {
		return f, nil
	}
	k, err := dpop.GenerateKeyFor(f.dpop.alg)
	if err != nil {
		return nil, fmt.Errorf("connection %s: %w", f.conn.Key(), err)
	}
	g := *f
	g.dpopKey = k
	return &g, nil
}

// bindCode makes the key a's code will be bound to and asks the provider
// to bind it: dpop_jkt, the key's thumbprint, in the authorization request
// (RFC 9449 10), so that a code stolen on its way back (a redirect read by
// another app, a log) cannot be exchanged without the key. The exchange
// then signs with that key (Exchange; a resumed attempt through
// WithDPoPKey), and the token is bound to it as before. A flow already
// holding a key binds the code to that one.
func (f *Flow) bindCode(a *Attempt, q url.Values) error {
	if f.dpop == nil {
		return nil
	}
	name, on := f.o.Param("dpop_jkt")
	if !on {
		return nil // parameters: {dpop_jkt: false}; the exchange makes its own key
	}
	k := f.dpopKey
	if k == nil {
		var err error
		if k, err = dpop.GenerateKeyFor(f.dpop.alg); err != nil {
			return fmt.Errorf("connection %s: %w", f.conn.Key(), err)
		}
	}
	pemKey, err := k.PEM()
	if err != nil {
		return err
	}
	a.dpopKey = pemKey
	setDefault(q, name, k.Thumbprint())
	return nil
}

// DPoPKey returns the private key, PKCS #8 PEM, that the attempt's code is
// bound to (dpop_jkt), "" without dpop. Like Verifier it is a secret: a
// server that resumes the attempt elsewhere keeps it sealed with the
// verifier and exchanges through Flow.WithDPoPKey(key).
func (a *Attempt) DPoPKey() string { return a.dpopKey }

// WithDPoPKey returns a copy of f whose token requests are signed with the
// DPoP key kept with a token (token.Token.DPoPKey), for a refresh of that
// token outside a Source: Flow.Refresh alone sends no proof, and a
// provider refuses a bound refresh token without one. It is f itself when
// the key or the definition's dpop is missing. Source.Refresh does this.
func (f *Flow) WithDPoPKey(pemKey string) (*Flow, error) {
	if f.dpop == nil || pemKey == "" {
		return f, nil
	}
	k, err := dpop.ParseKeyFor(pemKey, f.dpop.alg)
	if err != nil {
		// A stored key that does not parse: the token is bound to it,
		// so nothing but a new authorization helps.
		return nil, &NeedsReauthError{Reason: "the DPoP key stored with the token cannot be read (" + err.Error() + "); authorize the connection again (connector connect)"}
	}
	g := *f
	g.dpopKey = k
	return &g, nil
}

// keepDPoPKey puts the key a token was obtained with into it, so that it is
// stored (and sealed) with the token. A DPoP token obtained without a
// proof is refused: nothing could ever use it.
func keepDPoPKey(tok *token.Token, k *dpop.Key, definition string) error {
	if k == nil {
		if strings.EqualFold(tok.TokenType, "DPoP") {
			return fmt.Errorf("the token response has token_type DPoP (RFC 9449), a token bound to a key, but the request carried no DPoP proof; add dpop: {} to auth.oauth of definition %s", definition)
		}
		return nil
	}
	pemKey, err := k.PEM()
	if err != nil {
		return err
	}
	tok.DPoPKey = pemKey
	return nil
}

// proofClient is hc sending each token request with a proof of f's key
// (dpop.TokenTransport: a fresh proof per attempt, the use_dpop_nonce
// retry); hc itself when the request carries none. Revocation,
// introspection, PAR and the device authorization request (formPost)
// carry none: RFC 9449 defines proofs for token requests and resources.
func (f *Flow) proofClient(hc *http.Client, formPost bool) *http.Client {
	if f.dpopKey == nil || f.dpop == nil || formPost {
		return hc
	}
	if hc == nil {
		hc = &http.Client{Timeout: DefaultRequestTimeout}
	}
	cp := *hc
	cp.Transport = &dpop.TokenTransport{Base: hc.Transport, Key: f.dpopKey, Nonces: &f.dpop.nonces, Now: f.Now}
	return &cp
}

// resourceClient is hc sending requests made with tok (learn requests)
// as DPoP ones when tok is bound to a key; hc itself otherwise.
func (f *Flow) resourceClient(hc *http.Client, tok *token.Token) (*http.Client, error) {
	if f.dpop == nil || !dpopBound(tok) {
		return hc, nil
	}
	k, err := dpop.ParseKeyFor(tok.DPoPKey, f.dpop.alg)
	if err != nil {
		return nil, err
	}
	if hc == nil {
		hc = &http.Client{Timeout: DefaultRequestTimeout}
	}
	cp := *hc
	access := tok.AccessToken
	cp.Transport = &dpop.Transport{Base: hc.Transport, Key: k, Nonces: &f.dpop.nonces, Now: f.Now,
		Token: func(*http.Request) (string, error) { return access, nil }}
	return &cp, nil
}

// dpopBound reports whether tok is sent as a DPoP token: the provider said
// token_type DPoP and the key is at hand. A Bearer answer is the provider
// declining to bind (RFC 9449 5): that token is sent as a bearer one.
func dpopBound(tok *token.Token) bool {
	return tok.DPoPKey != "" && strings.EqualFold(tok.TokenType, "DPoP")
}

// nonceRefusal reports whether a 401 to a DPoP-bound token still asks for
// a nonce after dpop.Transport's one retry (a server that changes its
// nonce at every request, or a request body that cannot be sent twice):
// renewing the token would spend a refresh on what no token fixes.
func nonceRefusal(tok token.Token, resp *http.Response) bool {
	return dpopBound(&tok) && dpop.UseNonceChallenge(resp.Header.Values("WWW-Authenticate"))
}

// dpopAPI sends a connection's API calls with DPoP tokens through
// dpop.Transport (Authorization: DPoP, a proof with ath, the 401
// use_dpop_nonce retry); the bearer transport hands it the requests whose
// token is DPoP-bound.
type dpopAPI struct {
	conn *dpopConn
	now  func() time.Time
	last atomic.Pointer[dpopTransport] // the transport of the last token: parsing a key per call would cost more than signing
}

type dpopTransport struct {
	access, pemKey string
	tr             *dpop.Transport
}

func (f *Flow) dpopAPI() *dpopAPI {
	if f.dpop == nil {
		return nil
	}
	return &dpopAPI{conn: f.dpop, now: f.Now}
}

func (d *dpopAPI) roundTrip(r *http.Request, tok token.Token, next http.RoundTripper) (*http.Response, error) {
	t := d.last.Load()
	if t == nil || t.access != tok.AccessToken || t.pemKey != tok.DPoPKey {
		k, err := dpop.ParseKeyFor(tok.DPoPKey, d.conn.alg)
		if err != nil {
			closeBody(r)
			return nil, &credentialError{fmt.Errorf("the DPoP key stored with the token cannot be read: %w", err)}
		}
		access := tok.AccessToken
		t = &dpopTransport{access: access, pemKey: tok.DPoPKey, tr: &dpop.Transport{Base: next, Key: k, Nonces: &d.conn.nonces, Now: d.now,
			Token: func(*http.Request) (string, error) { return access, nil }}}
		d.last.Store(t)
	}
	return t.tr.RoundTrip(r)
}
