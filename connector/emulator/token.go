package emulator

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxParamBody caps the body of OAuth requests.
const maxParamBody = 64 << 10

// oauthReply is an answer of the token, revocation or token-info endpoint.
type oauthReply struct {
	status int
	body   any
	basic  bool // add the WWW-Authenticate challenge of an invalid_client answer
}

type oauthErrorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// oauthError builds an RFC 6749 5.2 error. description must never quote a
// secret, code or token.
func oauthError(status int, code, description string) oauthReply {
	return oauthReply{status: status, body: oauthErrorBody{Error: code, Description: description}}
}

func invalidClient(description string) oauthReply {
	r := oauthError(http.StatusUnauthorized, "invalid_client", description)
	r.basic = true
	return r
}

const invalidGrantText = "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client."

func invalidGrant(detail string) oauthReply {
	d := invalidGrantText
	if detail != "" {
		d += " (" + detail + ")"
	}
	return oauthError(http.StatusBadRequest, "invalid_grant", d)
}

func (rep oauthReply) write(w http.ResponseWriter) {
	data, err := json.Marshal(rep.body)
	if err != nil {
		http.Error(w, "emulator: encoding response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	if rep.basic {
		h.Set("WWW-Authenticate", `Basic realm="Procore OAuth"`)
	}
	w.WriteHeader(rep.status)
	_, _ = w.Write(data)
}

// readParams collects OAuth parameters from the query string and from a
// form, JSON or multipart body, as Procore accepts all of them. A parameter
// given more than once, in one place or across two, is an error (RFC 6749 3.2).
func readParams(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	all := url.Values{}
	for k, vs := range r.URL.Query() {
		all[k] = append(all[k], vs...)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxParamBody))
	if err != nil {
		return nil, fmt.Errorf("the request body could not be read (at most %d bytes): %v", maxParamBody, err)
	}
	if len(bytes.TrimSpace(body)) > 0 {
		fromBody, err := parseBody(r.Header.Get("Content-Type"), body)
		if err != nil {
			return nil, err
		}
		for k, vs := range fromBody {
			all[k] = append(all[k], vs...)
		}
	}
	for k, vs := range all {
		if len(vs) > 1 {
			return nil, fmt.Errorf("the parameter %s is included more than once", k)
		}
	}
	return all, nil
}

func parseBody(contentType string, body []byte) (url.Values, error) {
	mt, mp, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, errors.New("the request has a body but no valid Content-Type; use application/x-www-form-urlencoded or application/json")
	}
	switch mt {
	case "application/x-www-form-urlencoded":
		v, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, errors.New("the form body is not valid application/x-www-form-urlencoded")
		}
		return v, nil
	case "application/json":
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			return nil, errors.New("the JSON body must be an object of string parameters")
		}
		v := url.Values{}
		for k, x := range m {
			switch x := x.(type) {
			case string:
				v.Set(k, x)
			case json.Number:
				v.Set(k, x.String())
			default:
				return nil, fmt.Errorf("the JSON parameter %s must be a string", k)
			}
		}
		return v, nil
	case "multipart/form-data":
		form, err := multipart.NewReader(bytes.NewReader(body), mp["boundary"]).ReadForm(maxParamBody)
		if err != nil {
			return nil, errors.New("the multipart body could not be parsed")
		}
		defer form.RemoveAll()
		return url.Values(form.Value), nil
	default:
		return nil, fmt.Errorf("unsupported Content-Type %s; use application/x-www-form-urlencoded or application/json", mt)
	}
}

// authenticateClientLocked identifies and authenticates the client, by
// client_id/client_secret parameters or HTTP Basic (RFC 6749 2.3.1), but
// never both at once. s.mu must be held.
func (s *Server) authenticateClientLocked(r *http.Request, params url.Values) (*Client, *oauthReply) {
	var id, secret string
	var hasSecret bool
	if h := r.Header.Get("Authorization"); len(h) >= 6 && strings.EqualFold(h[:6], "basic ") {
		rawID, rawSecret, ok := r.BasicAuth()
		if !ok {
			rep := invalidClient("the HTTP Basic credentials are malformed")
			return nil, &rep
		}
		// Basic carries form-url-encoded id and secret (RFC 6749 2.3.1).
		var err1, err2 error
		id, err1 = url.QueryUnescape(rawID)
		secret, err2 = url.QueryUnescape(rawSecret)
		if err1 != nil || err2 != nil {
			rep := invalidClient("the HTTP Basic credentials must be form-url-encoded before base64 (RFC 6749 2.3.1)")
			return nil, &rep
		}
		hasSecret = true
		if params.Has("client_secret") {
			rep := oauthError(http.StatusBadRequest, "invalid_request", "the client authenticated twice, with HTTP Basic and with client_secret; use one method")
			return nil, &rep
		}
		if params.Has("client_id") && params.Get("client_id") != id {
			rep := oauthError(http.StatusBadRequest, "invalid_request", "client_id does not match the client in the HTTP Basic credentials")
			return nil, &rep
		}
	} else {
		id, secret, hasSecret = params.Get("client_id"), params.Get("client_secret"), params.Has("client_secret")
	}
	if id == "" {
		rep := invalidClient("client authentication is required: send client_id and client_secret, or HTTP Basic")
		return nil, &rep
	}
	c := s.clients[id]
	if c == nil {
		rep := invalidClient("unknown client_id; check the application's client ID")
		return nil, &rep
	}
	if c.Secret == "" { // public client
		if secret != "" {
			rep := invalidClient("this client is public and has no client secret")
			return nil, &rep
		}
		return c, nil
	}
	if !hasSecret {
		rep := invalidClient("client_secret is required for this client")
		return nil, &rep
	}
	if subtle.ConstantTimeCompare([]byte(secret), []byte(c.Secret)) != 1 {
		rep := invalidClient("client authentication failed: wrong client_secret for this client_id")
		return nil, &rep
	}
	return c, nil
}

// token handles POST /oauth/token.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	params, perr := readParams(w, r)
	grantType := params.Get("grant_type") // nil-safe
	now := s.now()

	s.mu.Lock()
	s.stats.TokenRequests[grantType]++
	if s.failN > 0 {
		s.failN--
		s.stats.FailedTokenRequests++
		status := s.failCode
		s.mu.Unlock()
		writeInjectedFailure(w, status)
		return
	}
	drop := s.dropN > 0
	if drop {
		s.dropN--
		s.stats.DroppedTokenResponses++
	}
	var rep oauthReply
	if perr != nil {
		rep = oauthError(http.StatusBadRequest, "invalid_request", perr.Error())
	} else {
		rep = s.grantLocked(r, params, now)
	}
	s.mu.Unlock()

	if drop {
		dropConnection(w)
		return
	}
	rep.write(w)
}

// grantLocked processes a parsed token request. s.mu must be held.
func (s *Server) grantLocked(r *http.Request, params url.Values, now time.Time) oauthReply {
	s.sweepLocked(now)
	client, fail := s.authenticateClientLocked(r, params)
	if fail != nil {
		return *fail
	}
	switch gt := params.Get("grant_type"); gt {
	case "authorization_code":
		return s.exchangeCodeLocked(client, params, now)
	case "refresh_token":
		return s.refreshLocked(client, params, now)
	case deviceGrantType:
		return s.deviceTokenLocked(client, params, now) // device.go
	case "client_credentials":
		if client.Secret == "" {
			// RFC 6749 4.4: only a client that can authenticate may use
			// this grant; a public client's id alone proves nothing.
			return oauthError(http.StatusBadRequest, "unauthorized_client", "client_credentials needs a confidential client (one with a client secret); this client is public")
		}
		if !client.ServiceAccount {
			return oauthError(http.StatusBadRequest, "unauthorized_client", "client_credentials is allowed only for service-account clients")
		}
		g := &grant{clientID: client.ID, userID: ServiceAccountUserID, serviceAccount: true}
		s.stats.ClientCredentials++
		return oauthReply{status: http.StatusOK, body: s.issueLocked(g, false, now)}
	case "":
		return oauthError(http.StatusBadRequest, "invalid_request", "grant_type is required")
	default:
		return oauthError(http.StatusBadRequest, "unsupported_grant_type", "grant_type must be authorization_code, refresh_token, client_credentials or "+deviceGrantType)
	}
}

func (s *Server) exchangeCodeLocked(client *Client, params url.Values, now time.Time) oauthReply {
	code := params.Get("code")
	if code == "" {
		return oauthError(http.StatusBadRequest, "invalid_request", "code is required")
	}
	redirectURI := params.Get("redirect_uri")
	if redirectURI == "" {
		return oauthError(http.StatusBadRequest, "invalid_request", "redirect_uri is required: send the one used in the authorization request")
	}
	c := s.codes[code]
	if c == nil || c.clientID != client.ID {
		return invalidGrant("")
	}
	if c.used {
		// A replayed code may have been stolen: revoke what it gave (RFC 6749 4.1.2).
		if c.grant != nil && !c.grant.revoked {
			c.grant.revoked = true
			s.stats.GrantRevocations++
		}
		return invalidGrant("the authorization code was already used; tokens issued for it are revoked")
	}
	c.used = true // one attempt per code, whatever its outcome
	if !now.Before(c.expiresAt) {
		return invalidGrant("the authorization code expired")
	}
	if redirectURI != c.redirectURI {
		return invalidGrant("redirect_uri differs from the authorization request")
	}
	if err := checkPKCE(c.challenge, c.method, params.Get("code_verifier")); err != nil {
		return invalidGrant(err.Error())
	}
	c.grant = &grant{clientID: client.ID, userID: c.userID}
	s.stats.CodeExchanges++
	return oauthReply{status: http.StatusOK, body: s.issueLocked(c.grant, true, now)}
}

func (s *Server) refreshLocked(client *Client, params url.Values, now time.Time) oauthReply {
	raw := params.Get("refresh_token")
	if raw == "" {
		return oauthError(http.StatusBadRequest, "invalid_request", "refresh_token is required")
	}
	rt := s.refresh[raw]
	if rt == nil || rt.grant.clientID != client.ID {
		return invalidGrant("")
	}
	if rt.grant.revoked {
		return invalidGrant("the grant was revoked; the user must authorize again")
	}
	if rt.used {
		// Reuse means two parties hold the token: end the grant for both.
		rt.grant.revoked = true
		s.stats.GrantRevocations++
		return invalidGrant("the refresh token was already used; the grant is now revoked and the user must authorize again")
	}
	if idle := s.cfg.RefreshTokenIdleLifetime; idle > 0 && now.Sub(rt.access.createdAt) > idle {
		s.stats.IdleExpiredRefreshes++
		return invalidGrant("the refresh token expired: it was not used for " + idle.String())
	}
	rt.used = true
	rt.access.revoked = true
	s.stats.Refreshes++
	return oauthReply{status: http.StatusOK, body: s.issueLocked(rt.grant, true, now)}
}

// writeInjectedFailure answers a token request failed by FailTokenRequests.
func writeInjectedFailure(w http.ResponseWriter, status int) {
	code := "server_error"
	switch status {
	case http.StatusServiceUnavailable:
		code = "temporarily_unavailable"
	case http.StatusTooManyRequests:
		code = "rate_limited"
	}
	w.Header().Set("Retry-After", "1")
	oauthError(status, code, "the emulator was told to fail this token request (FailTokenRequests); it was not processed").write(w)
}

// dropConnection closes the connection without an answer, as when a
// response is lost on the way back.
func dropConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// Not hijackable (HTTP/2 or a recorder): abort the response instead.
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}

// revoke handles POST /oauth/revoke (RFC 7009): it answers 200 for any
// token, known or not, and revokes the whole grant of a known one.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	params, err := readParams(w, r)
	if err != nil {
		oauthError(http.StatusBadRequest, "invalid_request", err.Error()).write(w)
		return
	}
	s.mu.Lock()
	rep := s.revokeLocked(r, params)
	s.mu.Unlock()
	rep.write(w)
}

func (s *Server) revokeLocked(r *http.Request, params url.Values) oauthReply {
	client, fail := s.authenticateClientLocked(r, params)
	if fail != nil {
		return *fail
	}
	tok := params.Get("token")
	if tok == "" {
		return oauthError(http.StatusBadRequest, "invalid_request", "token is required")
	}
	var g *grant
	if at := s.access[tok]; at != nil {
		g = at.grant
	} else if rt := s.refresh[tok]; rt != nil {
		g = rt.grant
	}
	// Another client's token is left alone, and answered like an unknown one.
	if g != nil && g.clientID == client.ID && !g.revoked {
		g.revoked = true
		s.stats.Revocations++
	}
	return oauthReply{status: http.StatusOK, body: struct{}{}}
}

// tokenInfo handles GET /oauth/token/info.
func (s *Server) tokenInfo(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	s.mu.Lock()
	at, fail := s.bearerLocked(r, now)
	var rep oauthReply
	if fail != nil {
		rep = oauthError(http.StatusUnauthorized, "invalid_token", fail.description)
	} else {
		rep = oauthReply{status: http.StatusOK, body: tokenInfoBody{
			ResourceOwnerID:  at.grant.userID,
			Scopes:           []string{},
			ExpiresInSeconds: int64(at.expiresAt.Sub(now) / time.Second),
			Application:      tokenInfoApp{UID: at.grant.clientID},
			CreatedAt:        at.createdAt.Unix(),
		}}
	}
	s.mu.Unlock()
	if fail != nil {
		w.Header().Set("WWW-Authenticate", fail.challenge())
	}
	rep.write(w)
}

type tokenInfoBody struct {
	ResourceOwnerID  int64        `json:"resource_owner_id"`
	Scopes           []string     `json:"scopes"`
	ExpiresInSeconds int64        `json:"expires_in_seconds"`
	Application      tokenInfoApp `json:"application"`
	CreatedAt        int64        `json:"created_at"`
}

type tokenInfoApp struct {
	UID string `json:"uid"`
}

// bearerFailure says why a request's bearer token was refused.
type bearerFailure struct {
	missing     bool
	expired     bool
	description string
}

// challenge is the RFC 6750 WWW-Authenticate value for the failure.
func (f *bearerFailure) challenge() string {
	if f.missing {
		return `Bearer realm="Procore"`
	}
	return fmt.Sprintf(`Bearer realm="Procore", error="invalid_token", error_description=%q`, f.description)
}

// bearerLocked finds the usable access token of r. s.mu must be held.
func (s *Server) bearerLocked(r *http.Request, now time.Time) (*accessToken, *bearerFailure) {
	h := r.Header.Get("Authorization")
	if len(h) < 7 || !strings.EqualFold(h[:7], "bearer ") || strings.TrimSpace(h[7:]) == "" {
		return nil, &bearerFailure{missing: true, description: "an access token is required in the Authorization header, with the Bearer scheme"}
	}
	at := s.access[strings.TrimSpace(h[7:])]
	if at == nil || !at.usable() {
		return nil, &bearerFailure{description: "the access token is invalid or was revoked"}
	}
	if !now.Before(at.expiresAt) {
		return nil, &bearerFailure{expired: true, description: "the access token expired"}
	}
	return at, nil
}
