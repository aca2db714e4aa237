package dpop_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/connector-engine/connector/connector/dpop"
)

// authServer is a loopback authorization and resource server that checks
// DPoP proofs as RFC 9449 4.3 says, written from the RFC (no Go server
// implementation is maintained): one DPoP header; a JWS with typ
// dpop+jwt, an asymmetric alg (never none) and a public jwk it verifies
// with; htm and htu of this request; iat within the window; a jti not seen
// before; the current nonce when nonces are on; ath of the presented token;
// and the token's binding (cnf.jkt, 6) to the proof's key.
//
//	POST /token  grant_type=client_credentials or refresh_token: issues
//	             token_type DPoP tokens bound to the proof's key
//	GET  /api    Authorization: DPoP <token> with a proof
type authServer struct {
	URL string

	mu      sync.Mutex
	nonce   string // "" when nonces are off
	now     func() time.Time
	seen    map[string]bool   // jti values already used
	access  map[string]string // access token → jkt it is bound to
	refresh map[string]string // refresh token → jkt (public clients' refresh tokens are bound too, 5)
	refused []string          // why each refused proof was refused
	tokens  int
	apiOK   int
}

const window = 60 * time.Second // 4.3 step 11: "a reasonable window"

func startAuthServer(t testing.TB, nonce string) *authServer {
	t.Helper()
	s := &authServer{nonce: nonce, now: time.Now, seen: map[string]bool{}, access: map[string]string{}, refresh: map[string]string{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", s.token)
	mux.HandleFunc("/api", s.api)
	hs := &httptest.Server{Listener: ln, Config: &http.Server{Handler: mux}}
	hs.Start()
	t.Cleanup(hs.Close)
	s.URL = hs.URL
	return s
}

// rotateNonce makes the server hand out a new nonce and refuse the old one.
func (s *authServer) rotateNonce() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nonce = random()
}

func random() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

var asymmetric = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.ES512, jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512, jose.EdDSA}

// check verifies the request's proof; accessToken is "" at the token
// endpoint. It returns the proof key's thumbprint, or why it is refused
// ("use_dpop_nonce" when only the nonce is wrong). Called with s.mu held.
func (s *authServer) check(r *http.Request, accessToken string) (jkt, refusal string) {
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
	if d := s.now().Sub(time.Unix(*c.IAT, 0)); d > window || d < -window {
		return "", "iat is outside the window"
	}
	if s.nonce != "" && c.Nonce != s.nonce {
		return "", "use_dpop_nonce"
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

func (s *authServer) token(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.Body = http.MaxBytesReader(w, r.Body, 1<<16)
	if err := r.ParseForm(); err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	jkt, why := s.check(r, "")
	switch {
	case why == "use_dpop_nonce": // 8: 400 with the nonce to use
		w.Header().Set("DPoP-Nonce", s.nonce)
		tokenError(w, http.StatusBadRequest, "use_dpop_nonce")
		return
	case why != "":
		s.refused = append(s.refused, why)
		tokenError(w, http.StatusBadRequest, "invalid_dpop_proof")
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "client_credentials":
	case "refresh_token":
		bound, ok := s.refresh[r.PostForm.Get("refresh_token")]
		if !ok || bound != jkt {
			s.refused = append(s.refused, "refresh with another key")
			tokenError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		delete(s.refresh, r.PostForm.Get("refresh_token"))
	default:
		tokenError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	at, rt := random(), random()
	s.access[at], s.refresh[rt] = jkt, jkt
	s.tokens++
	if s.nonce != "" {
		w.Header().Set("DPoP-Nonce", s.nonce)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": at, "refresh_token": rt, "token_type": "DPoP", "expires_in": 3600})
}

func tokenError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code})
}

func (s *authServer) api(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "DPoP") || tok == "" {
		w.Header().Set("WWW-Authenticate", `DPoP algs="ES256 RS256"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	_, why := s.check(r, tok)
	switch {
	case why == "use_dpop_nonce": // 9: 401 with a DPoP challenge and the nonce
		w.Header().Set("DPoP-Nonce", s.nonce)
		w.Header().Set("WWW-Authenticate", `DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	case why != "":
		s.refused = append(s.refused, why)
		w.Header().Set("WWW-Authenticate", `DPoP error="invalid_dpop_proof"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	s.apiOK++
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"ok":true}`))
}

func (s *authServer) boundTo(accessToken string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.access[accessToken]
}

func (s *authServer) refusals() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.refused...)
}
