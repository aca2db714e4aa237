package fositeserver

import (
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/ory/fosite"
)

func userSession() *fosite.DefaultSession {
	return &fosite.DefaultSession{Subject: Subject, Username: Subject}
}

// handleAuthorize plays both the authorization endpoint and alice: there is
// no login page and no consent screen, only fosite's validation of the
// request followed by an immediate decision.
func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	s.mu.Lock()
	defer s.mu.Unlock()

	ar, err := s.provider.NewAuthorizeRequest(ctx, r)
	if err != nil {
		s.provider.WriteAuthorizeError(ctx, w, ar, err)
		return
	}
	if s.denyConsent || r.URL.Query().Get("deny") != "" {
		s.provider.WriteAuthorizeError(ctx, w, ar, fosite.ErrAccessDenied.WithHint("The resource owner denied the request."))
		return
	}
	// fosite has checked the requested scopes against the client's; alice
	// grants all of them.
	for _, scope := range ar.GetRequestedScopes() {
		ar.GrantScope(scope)
	}
	resp, err := s.provider.NewAuthorizeResponse(ctx, ar, userSession())
	if err != nil {
		s.provider.WriteAuthorizeError(ctx, w, ar, err)
		return
	}
	s.provider.WriteAuthorizeResponse(ctx, w, ar, resp)
}

// handlePAR is fosite's pushed authorization request endpoint (RFC 9126):
// it authenticates the client as the token endpoint does, validates the
// parameters as the authorization endpoint would, and stores them under a
// single-use request_uri that /oauth/authorize then accepts.
func (s *Server) handlePAR(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	s.mu.Lock()
	defer s.mu.Unlock()

	s.stats.PushedRequests++
	ar, err := s.provider.NewPushedAuthorizeRequest(ctx, r)
	if err != nil {
		s.provider.WritePushedAuthorizeError(ctx, w, ar, err)
		return
	}
	resp, err := s.provider.NewPushedAuthorizeResponse(ctx, ar, userSession())
	if err != nil {
		s.provider.WritePushedAuthorizeError(ctx, w, ar, err)
		return
	}
	s.stats.PushedAccepted++
	s.provider.WritePushedAuthorizeResponse(ctx, w, ar, resp)
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()

	s.stats.TokenRequests++
	s.notePeer(r)
	if s.dropsLeft > 0 {
		s.dropsLeft--
		s.token(httptest.NewRecorder(), r)
		dropConnection(w)
		return
	}
	s.token(w, r)
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if s.acceptQueryParams {
		if err := copyQueryIntoForm(r); err != nil {
			s.provider.WriteAccessError(ctx, w, nil, fosite.ErrInvalidRequest.WithHint("The request body is not a valid form.").WithWrap(err))
			return
		}
	}

	ar, err := s.provider.NewAccessRequest(ctx, r, new(fosite.DefaultSession))
	if err != nil {
		s.noteRefreshReuse(r)
		s.provider.WriteAccessError(ctx, w, ar, err)
		return
	}
	if ar.GetGrantTypes().ExactOne("client_credentials") {
		// No user consents in this grant. fosite has checked the scopes
		// against the client's; granting them is left to us.
		for _, scope := range ar.GetRequestedScopes() {
			ar.GrantScope(scope)
		}
	}
	bindToCertificate(r, ar) // RFC 8705 3, over mutual TLS only (mtls.go)
	resp, err := s.provider.NewAccessResponse(ctx, ar)
	if err != nil {
		s.provider.WriteAccessError(ctx, w, ar, err)
		return
	}

	grants := ar.GetGrantTypes()
	switch {
	case grants.ExactOne("authorization_code"):
		s.stats.CodeExchanges++
	case grants.ExactOne("refresh_token"):
		s.stats.Refreshes++
		s.rotatedOut[tokenHash(r.PostForm.Get("refresh_token"))] = true
	case grants.ExactOne("client_credentials"):
		s.stats.ClientCredentialsGrants++
	}
	s.provider.WriteAccessResponse(ctx, w, ar, resp)
}

// noteRefreshReuse counts a failed refresh that presented a refresh token
// an earlier refresh had already replaced. fosite has by then revoked the
// whole grant; this only makes the event visible to tests.
func (s *Server) noteRefreshReuse(r *http.Request) {
	if r.PostForm.Get("grant_type") != "refresh_token" {
		return
	}
	if s.rotatedOut[tokenHash(r.PostForm.Get("refresh_token"))] {
		s.stats.RefreshReuseDetected++
	}
}

// tokenHash keeps rotated-out refresh tokens out of memory in the clear.
func tokenHash(token string) [sha256.Size]byte { return sha256.Sum256([]byte(token)) }

// copyQueryIntoForm adds each URL query parameter the form body lacks to
// the parsed body, where fosite looks. The body wins where both have a
// parameter.
func copyQueryIntoForm(r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		return err
	}
	if r.PostForm == nil {
		r.PostForm = make(map[string][]string)
	}
	for key, values := range r.URL.Query() {
		if _, inBody := r.PostForm[key]; !inBody {
			r.PostForm[key] = values
		}
	}
	return nil
}

// dropConnection closes the client's connection without a response.
func dropConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// Not hijackable (HTTP/2): aborting the handler resets the stream,
		// which also leaves the client without an answer.
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}

func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	s.mu.Lock()
	defer s.mu.Unlock()

	err := s.provider.NewRevocationRequest(ctx, r)
	if err == nil {
		s.stats.Revocations++
	}
	s.provider.WriteRevocationResponse(ctx, w, err)
}

func (s *Server) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	s.mu.Lock()
	defer s.mu.Unlock()

	s.stats.Introspections++
	ir, err := s.provider.NewIntrospectionRequest(ctx, r, new(fosite.DefaultSession))
	if err != nil {
		// An unknown, used or expired token becomes {"active":false}; bad
		// client credentials a 401.
		s.provider.WriteIntrospectionError(ctx, w, err)
		return
	}
	s.provider.WriteIntrospectionResponse(ctx, w, ir)
}

// meResponse is the body of a successful /api/me.
type meResponse struct {
	Sub      string `json:"sub"` // alice, or the client for a client_credentials token
	ClientID string `json:"client_id"`
	Scope    string `json:"scope"`
}

func (s *Server) handleMe(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()

	s.stats.APIRequests++
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	token := fosite.AccessTokenFromRequest(r)
	if token == "" {
		// RFC 6750 section 3.1: no error code when no credentials were sent.
		s.unauthorized(w, `Bearer realm="fositeserver"`)
		return
	}
	use, ar, err := s.provider.IntrospectToken(r.Context(), token, fosite.AccessToken, new(fosite.DefaultSession))
	// fosite's validator falls back to trying the token as a refresh token;
	// a resource server must take access tokens only.
	if err != nil || use != fosite.AccessToken {
		s.unauthorized(w, `Bearer realm="fositeserver", error="invalid_token"`)
		return
	}
	if boundElsewhere(r, ar.GetSession()) { // RFC 8705 3: presented without its certificate
		s.stats.BoundTokenRefusals++
		s.unauthorized(w, `Bearer realm="fositeserver", error="invalid_token", error_description="the token is bound to another client certificate"`)
		return
	}
	me := meResponse{
		Sub:      ar.GetSession().GetSubject(),
		ClientID: ar.GetClient().GetID(),
		Scope:    strings.Join(ar.GetGrantedScopes(), " "),
	}
	if me.Sub == "" {
		me.Sub = me.ClientID
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(me) // a write error means the client went away
}

func (s *Server) unauthorized(w http.ResponseWriter, challenge string) {
	s.stats.API401s++
	w.Header().Set("WWW-Authenticate", challenge)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnauthorized)
	_, _ = w.Write([]byte(`{"error":"unauthorized"}` + "\n"))
}
