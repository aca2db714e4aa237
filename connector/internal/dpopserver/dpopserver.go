// Package dpopserver is a loopback authorization server and resource
// server that check DPoP proofs as RFC 9449 4.3 says, for the tests of
// connector/dpop and of the engine's DPoP connections. It is written from
// the RFC: ory/fosite, the Go OAuth server the other flows are tested
// against, has no DPoP, and the Go servers that do (Casdoor) are whole
// applications with a database, so the check below is the reference the
// client is tested against.
//
// The two servers listen on different ports, hence different origins, so
// that nonces are tested per origin as a real deployment has them:
//
//	AS  GET  /authorize  auto-approves: redirects to redirect_uri with a code
//	                     (S256 PKCE checked at the exchange; with dpop_jkt the
//	                     code is exchanged with that key's proof only, 10)
//	    POST /device     RFC 8628 device authorization; the first poll is
//	                     answered authorization_pending, the next approved
//	    POST /token      grant_type authorization_code, refresh_token,
//	                     client_credentials, device_code; a proof binds the
//	                     tokens to its key (cnf.jkt), token_type DPoP
//	RS  *    /api        Authorization: DPoP <token> with a proof (ath), or
//	                     Bearer for a token issued without one
//
// What it checks of a proof: exactly one DPoP header; a JWS with typ
// dpop+jwt, an asymmetric alg (never none or HMAC) and a public jwk that
// verifies it; htm and htu of this request; iat within a window; a jti not
// seen before; the current nonce when nonces are on; ath of the presented
// token; and the token's (or refresh token's) binding to the proof's key.
package dpopserver

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/connector-engine/connector/connector/dpop"
)

// Options shape the servers.
type Options struct {
	// TokenNonce and ResourceNonce turn nonces on at the token endpoint
	// (8) and the resource (9): proofs must carry the current one.
	TokenNonce, ResourceNonce string
	// ClientSecret, when set, is required at the token endpoint (in the
	// body or HTTP Basic) for the client id ClientID.
	ClientID, ClientSecret string
	// Decline issues Bearer tokens whatever the request carries: a
	// provider that does not do DPoP for this client (RFC 9449 5).
	Decline bool
	// RequireDPoP refuses token requests without a proof.
	RequireDPoP bool
}

// Window is how far a proof's iat may be from the server's clock (4.3
// step 11: "a reasonable window").
const Window = 60 * time.Second

// Server is the pair of servers and what they saw.
type Server struct {
	AS, RS string // base URLs: http://127.0.0.1:port

	mu      sync.Mutex
	opts    Options
	seen    map[string]bool   // jti values already used
	access  map[string]string // access token → jkt it is bound to; "" for a bearer token
	refresh map[string]string // refresh token → jkt; "" for an unbound one
	codes   map[string]grant  // authorization code → what it was issued for
	devices map[string]int    // device code → polls still to answer authorization_pending
	polls   []string          // the proof key's thumbprint of every device poll
	refused []string          // why each refused request was refused
	stats   Stats
}

// grant is a code's authorization: where it goes back, its PKCE challenge,
// and the thumbprint of the key it is bound to (dpop_jkt, RFC 9449 10).
type grant struct{ redirectURI, challenge, jkt string }

// Stats count what the servers did.
type Stats struct {
	TokensIssued       int // DPoP-bound and bearer
	BearerIssued       int // of which bearer
	TokenChallenges    int // 400 use_dpop_nonce answers
	ResourceChallenges int // 401 use_dpop_nonce answers
	APIOK              int // API calls accepted with a proof
	BearerAPIOK        int // API calls accepted as bearer (no proof)
	ProofsAtToken      int // token requests that carried a valid proof
	BoundCodes         int // authorization requests with dpop_jkt
}

// Start starts both servers; they stop when the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	s := &Server{opts: o, seen: map[string]bool{}, access: map[string]string{}, refresh: map[string]string{}, codes: map[string]grant{}, devices: map[string]int{}}
	as := http.NewServeMux()
	as.HandleFunc("GET /authorize", s.authorize)
	as.HandleFunc("POST /token", s.token)
	as.HandleFunc("POST /device", s.device)
	rs := http.NewServeMux()
	rs.HandleFunc("/api", s.api)
	s.AS = serve(t, as)
	s.RS = serve(t, rs)
	return s
}

func serve(t testing.TB, h http.Handler) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &httptest.Server{Listener: ln, Config: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}}
	hs.Start()
	t.Cleanup(hs.Close)
	return hs.URL
}

// RotateNonces makes both servers hand out new nonces (where nonces are
// on) and refuse the old ones.
func (s *Server) RotateNonces() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opts.TokenNonce != "" {
		s.opts.TokenNonce = Random()
	}
	if s.opts.ResourceNonce != "" {
		s.opts.ResourceNonce = Random()
	}
}

// IssueBearer makes an unbound access and refresh token pair, as a
// provider issued before the client used DPoP.
func (s *Server) IssueBearer() (access, refresh string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	access, refresh = Random(), Random()
	s.access[access], s.refresh[refresh] = "", ""
	return access, refresh
}

// Random is 128 random bits, base64url.
func Random() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

var asymmetric = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.ES512, jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512, jose.EdDSA}

// errNonce is the refusal that only the nonce is wrong.
const errNonce = "use_dpop_nonce"

// check verifies the request's proof; accessToken is "" at the token
// endpoint, nonce the one the server wants ("" for none). It returns the
// proof key's thumbprint, or why it is refused (errNonce when only the
// nonce is wrong). Called with s.mu held.
func (s *Server) check(r *http.Request, accessToken, nonce string) (jkt, refusal string) {
	hs := r.Header.Values("DPoP")
	if len(hs) != 1 {
		return "", "not exactly one DPoP header"
	}
	jws, err := jose.ParseSignedCompact(hs[0], asymmetric) // alg none and HMAC fail here
	if err != nil || len(jws.Signatures) != 1 {
		return "", "not a JWS with an asymmetric alg"
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders["typ"].(string); typ != "dpop+jwt" {
		return "", "typ is not dpop+jwt"
	}
	if h.JSONWebKey == nil || !h.JSONWebKey.IsPublic() || !h.JSONWebKey.Valid() {
		return "", "no public jwk in the header"
	}
	payload, err := jws.Verify(h.JSONWebKey)
	if err != nil {
		return "", "the signature does not verify with the jwk"
	}
	var c struct {
		JTI   string `json:"jti"`
		HTM   string `json:"htm"`
		HTU   string `json:"htu"`
		IAT   *int64 `json:"iat"`
		ATH   string `json:"ath"`
		Nonce string `json:"nonce"`
	}
	if err := json.Unmarshal(payload, &c); err != nil || c.JTI == "" || c.HTM == "" || c.HTU == "" || c.IAT == nil {
		return "", "a required claim is missing"
	}
	if c.HTM != r.Method {
		return "", "htm is not the request's method"
	}
	if c.HTU != "http://"+r.Host+r.URL.Path {
		return "", "htu is not the request's URI"
	}
	if d := time.Since(time.Unix(*c.IAT, 0)); d > Window || d < -Window {
		return "", "iat is outside the window"
	}
	if nonce != "" && c.Nonce != nonce {
		return "", errNonce
	}
	if s.seen[c.JTI] {
		return "", "the jti was used before (a replayed proof)"
	}
	s.seen[c.JTI] = true
	jkt, err = dpop.Thumbprint(*h.JSONWebKey)
	if err != nil {
		return "", "no thumbprint"
	}
	if accessToken != "" {
		if c.ATH != dpop.AccessTokenHash(accessToken) {
			return "", "ath does not match the access token"
		}
		if bound, ok := s.access[accessToken]; !ok || bound != jkt {
			return "", "the token is not bound to the proof's key"
		}
	} else if c.ATH != "" {
		return "", "ath at the token endpoint"
	}
	return jkt, ""
}

func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ru, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || q.Get("response_type") != "code" || ru.Hostname() != "127.0.0.1" {
		http.Error(w, "bad authorization request", http.StatusBadRequest)
		return
	}
	code := Random()
	s.mu.Lock()
	s.codes[code] = grant{redirectURI: q.Get("redirect_uri"), challenge: q.Get("code_challenge"), jkt: q.Get("dpop_jkt")}
	if q.Has("dpop_jkt") {
		s.stats.BoundCodes++
	}
	s.mu.Unlock()
	back := ru.Query()
	back.Set("code", code)
	back.Set("state", q.Get("state"))
	ru.RawQuery = back.Encode()
	http.Redirect(w, r, ru.String(), http.StatusFound)
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.Body = http.MaxBytesReader(w, r.Body, 1<<16)
	if err := r.ParseForm(); err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	f := r.PostForm
	jkt := ""
	if len(r.Header.Values("DPoP")) > 0 || s.opts.RequireDPoP {
		var why string
		jkt, why = s.check(r, "", s.opts.TokenNonce)
		switch {
		case why == errNonce: // 8: 400 with the nonce to use
			s.stats.TokenChallenges++
			w.Header().Set("DPoP-Nonce", s.opts.TokenNonce)
			tokenError(w, http.StatusBadRequest, errNonce)
			return
		case why != "":
			s.refused = append(s.refused, "token: "+why)
			tokenError(w, http.StatusBadRequest, "invalid_dpop_proof")
			return
		}
		s.stats.ProofsAtToken++
	}
	if s.opts.ClientSecret != "" {
		id, secret, ok := r.BasicAuth()
		if !ok {
			id, secret = f.Get("client_id"), f.Get("client_secret")
		}
		if id != s.opts.ClientID || subtle.ConstantTimeCompare([]byte(secret), []byte(s.opts.ClientSecret)) != 1 {
			s.refused = append(s.refused, "token: client authentication")
			tokenError(w, http.StatusUnauthorized, "invalid_client")
			return
		}
	}
	switch f.Get("grant_type") {
	case "client_credentials":
	case "authorization_code":
		g, ok := s.codes[f.Get("code")]
		delete(s.codes, f.Get("code")) // single use, even when refused
		sum := sha256.Sum256([]byte(f.Get("code_verifier")))
		if !ok || g.redirectURI != f.Get("redirect_uri") || (g.challenge != "" && base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge) {
			s.refused = append(s.refused, "token: the code, its redirect_uri or its verifier")
			tokenError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		if g.jkt != "" && g.jkt != jkt { // 10: a bound code is exchanged with its key only
			s.refused = append(s.refused, "token: the code is bound to another key (dpop_jkt)")
			tokenError(w, http.StatusBadRequest, "invalid_dpop_proof")
			return
		}
	case "urn:ietf:params:oauth:grant-type:device_code":
		pending, ok := s.devices[f.Get("device_code")]
		s.polls = append(s.polls, jkt)
		switch {
		case !ok:
			tokenError(w, http.StatusBadRequest, "expired_token")
			return
		case pending > 0:
			s.devices[f.Get("device_code")]--
			tokenError(w, http.StatusBadRequest, "authorization_pending")
			return
		}
		delete(s.devices, f.Get("device_code"))
	case "refresh_token":
		rt := f.Get("refresh_token")
		bound, ok := s.refresh[rt]
		if !ok || bound != jkt && bound != "" {
			// 5: a bound refresh token is presented with its key only.
			s.refused = append(s.refused, "token: refresh token unknown or presented with another key")
			tokenError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		if bound != "" {
			jkt = bound
		}
		delete(s.refresh, rt) // rotated
	default:
		tokenError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	if s.opts.Decline {
		jkt = ""
	}
	at, rt := Random(), Random()
	s.access[at], s.refresh[rt] = jkt, jkt
	s.stats.TokensIssued++
	typ := "DPoP"
	if jkt == "" {
		typ = "Bearer"
		s.stats.BearerIssued++
	}
	if s.opts.TokenNonce != "" {
		w.Header().Set("DPoP-Nonce", s.opts.TokenNonce)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": at, "refresh_token": rt, "token_type": typ, "expires_in": 3600})
}

// device starts a device grant (RFC 8628 3.1): no proof here, as RFC 9449
// defines none for this endpoint.
func (s *Server) device(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	code := Random()
	s.devices[code] = 1
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"device_code": code, "user_code": "WDJB-MJHT", "verification_uri": s.AS + "/activate", "expires_in": 600, "interval": 5})
}

// DevicePolls are the thumbprints of the keys that signed each device poll
// ("" for a poll without a proof).
func (s *Server) DevicePolls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.polls...)
}

func tokenError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code})
}

func (s *Server) api(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	bound, known := s.access[tok]
	switch {
	case strings.EqualFold(scheme, "Bearer") && known && bound == "":
		if len(r.Header.Values("DPoP")) > 0 {
			s.refused = append(s.refused, "api: a proof with a bearer token")
		}
		s.stats.BearerAPIOK++
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true,"as":"bearer"}`))
		return
	case strings.EqualFold(scheme, "Bearer") && known:
		// 7.1: a bound token presented as a bearer one is refused.
		s.refused = append(s.refused, "api: a DPoP-bound token sent as Bearer")
		w.Header().Set("WWW-Authenticate", `DPoP algs="ES256 RS256", error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	case !strings.EqualFold(scheme, "DPoP") || tok == "":
		w.Header().Set("WWW-Authenticate", `DPoP algs="ES256 RS256"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	_, why := s.check(r, tok, s.opts.ResourceNonce)
	switch {
	case why == errNonce: // 9: 401 with a DPoP challenge and the nonce
		s.stats.ResourceChallenges++
		w.Header().Set("DPoP-Nonce", s.opts.ResourceNonce)
		w.Header().Set("WWW-Authenticate", `DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	case why != "":
		s.refused = append(s.refused, "api: "+why)
		w.Header().Set("WWW-Authenticate", `DPoP error="invalid_dpop_proof"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	s.stats.APIOK++
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"ok":true,"as":"dpop"}`))
}

// BoundTo is the thumbprint an access token is bound to ("" for bearer or
// unknown).
func (s *Server) BoundTo(accessToken string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.access[accessToken]
}

// Refusals are why each refused request was refused (nonce challenges
// are not refusals).
func (s *Server) Refusals() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.refused...)
}

// Stats is a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}
