package emulator

import (
	"net/http"
	"net/url"
	"time"
)

// Pushed authorization requests (RFC 9126), written from the RFC, which
// Procore does not have: the emulator offers them so that a definition
// with par_uri can be tried offline, and so that a client can be tested
// for what happens when the short-lived link expires. A client POSTs the
// authorization parameters to /oauth/par, authenticated as at the token
// endpoint (2.1), and gets a single-use request_uri with its expires_in
// (2.2); GET /oauth/authorize?client_id=...&request_uri=... then stands for
// the pushed request (4). An expired, used or unknown request_uri is
// refused on this host's own page, since the redirect URI it would name is
// what was pushed.

const (
	defaultPARLifetime = time.Minute
	// requestURIPrefix is the URN form the RFC's examples use (2.2).
	requestURIPrefix = "urn:ietf:params:oauth:request_uri:"
	// maxPushed bounds the pushed requests kept, so that a client pushing
	// in a loop cannot exhaust memory.
	maxPushed = 10000
)

// pushedRequest is one pushed authorization request.
type pushedRequest struct {
	clientID  string
	params    url.Values // the authorization parameters, client_id included
	expiresAt time.Time
}

// parAnswer is the body of RFC 9126 2.2.
type parAnswer struct {
	RequestURI string `json:"request_uri"`
	ExpiresIn  int64  `json:"expires_in"`
}

// pushAuthorization handles POST /oauth/par.
func (s *Server) pushAuthorization(w http.ResponseWriter, r *http.Request) {
	params, perr := readParams(w, r)
	if perr != nil {
		oauthError(http.StatusBadRequest, "invalid_request", perr.Error()).write(w)
		return
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.PushedRequests++
	client, fail := s.authenticateClientLocked(r, params)
	if fail != nil {
		fail.write(w)
		return
	}
	// The authorization parameters only: the client's credentials stay here.
	auth := url.Values{}
	for k, v := range params {
		switch k {
		case "client_secret", "client_assertion", "client_assertion_type":
		default:
			auth[k] = v
		}
	}
	auth.Set("client_id", client.ID)
	if auth.Has("request_uri") {
		oauthError(http.StatusBadRequest, "invalid_request", "a pushed request must not carry request_uri (RFC 9126 2.1)").write(w)
		return
	}
	// 2.1: validated as the authorization endpoint would, but the error
	// goes back to the client here, not to a redirect.
	if !client.allowsRedirect(auth.Get("redirect_uri")) {
		oauthError(http.StatusBadRequest, "invalid_request", "the redirect_uri is missing or not registered for this client").write(w)
		return
	}
	if code, msg := checkAuthorizationParams(client, auth); code != "" {
		oauthError(http.StatusBadRequest, code, msg).write(w)
		return
	}
	for uri, p := range s.pushed {
		if !now.Before(p.expiresAt) {
			delete(s.pushed, uri)
		}
	}
	if len(s.pushed) >= maxPushed {
		oauthError(http.StatusServiceUnavailable, "temporarily_unavailable", "too many pushed authorization requests").write(w)
		return
	}
	uri := requestURIPrefix + randomString(24)
	s.pushed[uri] = &pushedRequest{clientID: client.ID, params: auth, expiresAt: now.Add(s.cfg.PARLifetime)}
	oauthReply{status: http.StatusCreated, body: parAnswer{RequestURI: uri, ExpiresIn: int64(s.cfg.PARLifetime / time.Second)}}.write(w)
}

// takePushedLocked returns the pushed parameters q's request_uri stands
// for, and forgets them (single use, RFC 9126 4); or a message for the
// user when there are none. s.mu must be held.
func (s *Server) takePushedLocked(q url.Values, now time.Time) (url.Values, string) {
	uri := q.Get("request_uri")
	p := s.pushed[uri]
	delete(s.pushed, uri)
	switch {
	case p == nil:
		return nil, "This authorization link is unknown or was already used (request_uri). Start again from the application."
	case !now.Before(p.expiresAt):
		s.stats.PushedExpired++
		return nil, "This authorization link expired at " + p.expiresAt.UTC().Format(time.TimeOnly) + " UTC: it was good for " +
			s.cfg.PARLifetime.String() + " after the application made it (request_uri). Start again from the application."
	case q.Get("client_id") != p.clientID:
		return nil, "This authorization link belongs to another application (client_id). Start again from the application."
	}
	return p.params, ""
}
