package emulator

import (
	"bytes"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// OutOfBandURI is the redirect URI that makes the authorization server show
// the code on a page instead of redirecting.
const OutOfBandURI = "urn:ietf:wg:oauth:2.0:oob"

// allowsRedirect reports whether uri may receive this client's codes.
func (c *Client) allowsRedirect(uri string) bool {
	if uri == "" {
		return false
	}
	if len(c.RedirectURIs) > 0 {
		return slices.Contains(c.RedirectURIs, uri)
	}
	return uri == OutOfBandURI || isLoopbackHTTP(uri)
}

// isLoopbackHTTP reports whether uri is a plain http URI on a loopback
// host (RFC 8252 7.3), with no credentials and no fragment.
func isLoopbackHTTP(uri string) bool {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "http" || u.User != nil || u.Fragment != "" || u.Opaque != "" {
		return false
	}
	host := u.Hostname()
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// authorizeForm handles GET /oauth/authorize: it validates the request and
// shows the consent page of the signed-in demo user.
func (s *Server) authorizeForm(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for name, vs := range q {
		if len(vs) > 1 {
			renderError(w, "The authorization request is malformed: the parameter "+name+" appears more than once.")
			return
		}
	}
	s.mu.Lock()
	if q.Has("request_uri") { // a pushed request (par.go)
		pushed, msg := s.takePushedLocked(q, s.now())
		if msg != "" {
			s.mu.Unlock()
			renderError(w, msg)
			return
		}
		q = pushed
	}
	client := s.clients[q.Get("client_id")]
	s.mu.Unlock()
	// Until client and redirect URI are known good, errors stay on this
	// host: redirecting to an unchecked URI would make this an open redirector.
	if client == nil {
		renderError(w, "Unknown application: the client_id is missing or not registered. Check the application's client ID.")
		return
	}
	redirectURI := q.Get("redirect_uri")
	if !client.allowsRedirect(redirectURI) {
		renderError(w, "The redirect_uri is missing or not registered for "+client.Name+". It must match a registered redirect URI exactly.")
		return
	}
	state := q.Get("state")
	fail := func(code, description string) {
		s.finishAuthorization(w, redirectURI, authorizationResult{errCode: code, errDescription: description, state: state})
	}
	if code, msg := checkAuthorizationParams(client, q); code != "" {
		fail(code, msg)
		return
	}
	challenge, method := q.Get("code_challenge"), q.Get("code_challenge_method")
	if challenge != "" && method == "" {
		method = pkcePlain // RFC 7636 4.3
	}

	now := s.now()
	id := randomString(24)
	s.mu.Lock()
	s.sweepLocked(now)
	if s.cfg.AutoApprove {
		code := randomString(24)
		s.codes[code] = &authCode{
			clientID: client.ID, redirectURI: redirectURI,
			challenge: challenge, method: method,
			userID: DemoUserID, expiresAt: now.Add(authorizationLifetime),
		}
		s.mu.Unlock()
		s.finishAuthorization(w, redirectURI, authorizationResult{code: code, state: state})
		return
	}
	s.consents[id] = &consent{
		client: client, redirectURI: redirectURI, state: state,
		challenge: challenge, method: method,
		userID: DemoUserID, expiresAt: now.Add(authorizationLifetime),
	}
	s.mu.Unlock()

	renderPage(w, http.StatusOK, "consent", consentPage{
		Title: "Authorize " + client.Name, App: client.Name, User: demoUserName,
		Destination: redirectURI, RequestID: id,
	})
}

// checkAuthorizationParams checks an authorization request's
// response_type and PKCE parameters for client, at the authorization
// endpoint or when pushed (par.go); it returns the OAuth error code and
// description, or "" when they are fine.
func checkAuthorizationParams(client *Client, q url.Values) (code, description string) {
	if rt := q.Get("response_type"); rt != "code" {
		return "unsupported_response_type", "response_type must be code"
	}
	challenge, method := q.Get("code_challenge"), q.Get("code_challenge_method")
	switch {
	case challenge == "" && method != "":
		return "invalid_request", "code_challenge_method was sent without code_challenge"
	case challenge == "" && client.Secret == "":
		return "invalid_request", "a public client must send a PKCE code_challenge"
	case challenge != "":
		if method != "" && method != pkceS256 && method != pkcePlain {
			return "invalid_request", "code_challenge_method must be S256 or plain"
		}
		if !validPKCEString(challenge) {
			return "invalid_request", "code_challenge must be 43 to 128 characters from A-Z a-z 0-9 - . _ ~"
		}
	}
	return "", ""
}

// authorizeDecision handles POST /oauth/authorize, the consent form.
func (s *Server) authorizeDecision(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxParamBody)
	if err := r.ParseForm(); err != nil {
		renderError(w, "The consent form could not be read. Start again from the application.")
		return
	}
	decision := r.PostForm.Get("decision")
	if decision != "allow" && decision != "deny" {
		renderError(w, "The consent form must answer allow or deny. Start again from the application.")
		return
	}
	id := r.PostForm.Get("request_id")
	now := s.now()
	s.mu.Lock()
	c := s.consents[id]
	delete(s.consents, id) // single use, whatever the outcome
	if c != nil && !now.Before(c.expiresAt) {
		c = nil
	}
	var code string
	if c != nil && decision == "allow" {
		code = randomString(24)
		s.codes[code] = &authCode{
			clientID: c.client.ID, redirectURI: c.redirectURI,
			challenge: c.challenge, method: c.method,
			userID: c.userID, expiresAt: now.Add(authorizationLifetime),
		}
	}
	s.mu.Unlock()
	if c == nil {
		renderError(w, "This authorization request is unknown, expired or already answered. Start again from the application.")
		return
	}
	res := authorizationResult{code: code, state: c.state}
	if decision == "deny" {
		res = authorizationResult{errCode: "access_denied", errDescription: "the user denied access", state: c.state}
	}
	s.finishAuthorization(w, c.redirectURI, res)
}

// authorizationResult is what the authorization endpoint sends back to the
// client: a code or an error, with the client's state.
type authorizationResult struct {
	code, state             string
	errCode, errDescription string
}

// finishAuthorization delivers res to a validated redirect URI: a 302 with
// the result in the query, or a page for the out-of-band URI.
func (s *Server) finishAuthorization(w http.ResponseWriter, redirectURI string, res authorizationResult) {
	if redirectURI == OutOfBandURI {
		if res.errCode != "" {
			renderError(w, "Authorization failed ("+res.errCode+"): "+res.errDescription+".")
			return
		}
		renderPage(w, http.StatusOK, "code", codePage{Title: "Authorization code", User: demoUserName, Code: res.code})
		return
	}
	u, err := url.Parse(redirectURI)
	if err != nil { // validated before; kept for safety
		renderError(w, "The redirect_uri is not a valid URI.")
		return
	}
	q := u.Query()
	if res.errCode != "" {
		q.Set("error", res.errCode)
		q.Set("error_description", res.errDescription)
	} else {
		q.Set("code", res.code)
	}
	if res.state != "" {
		q.Set("state", res.state)
	}
	s.mu.Lock()
	issuer := s.cfg.Issuer
	s.mu.Unlock()
	if issuer != "" {
		q.Set("iss", issuer)
	}
	u.RawQuery = q.Encode()
	h := w.Header()
	setPageSecurityHeaders(h)
	h.Set("Location", u.String())
	w.WriteHeader(http.StatusFound)
}

type consentPage struct {
	Title, App, User, Destination, RequestID string
}

type codePage struct {
	Title, User, Code string
}

type errorPage struct {
	Title, User, Message string
}

var pages = template.Must(template.New("").Parse(`
{{define "top"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} · Procore (emulator)</title>
<style>
body{font-family:system-ui,sans-serif;background:#f4f5f6;color:#222;margin:0}
main{max-width:28rem;margin:4rem auto;background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 4px #0002}
h1{font-size:1.3rem}.who{color:#555;font-size:.9rem}code{display:block;padding:1rem;background:#eee;word-break:break-all}
button{font-size:1rem;padding:.5rem 1.5rem;margin-right:.5rem;border-radius:4px;border:1px solid #888;cursor:pointer}
button[value=allow]{background:#f47e42;border-color:#f47e42;color:#fff}
</style></head><body><main>
<p class="who">Procore emulator · signed in as <strong>{{.User}}</strong></p>
{{end}}
{{define "bottom"}}</main></body></html>
{{end}}
{{define "consent"}}{{template "top" .}}
<h1>{{.App}} wants to access your Procore account</h1>
<p>Allowing gives {{.App}} access to the companies and projects you can see. You will be sent back to <strong>{{.Destination}}</strong>.</p>
<form method="post" action="/oauth/authorize">
<input type="hidden" name="request_id" value="{{.RequestID}}">
<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form>
{{template "bottom"}}{{end}}
{{define "code"}}{{template "top" .}}
<h1>Authorization code</h1>
<p>Copy this code into the application. It can be used once, within 10 minutes.</p>
<code id="code">{{.Code}}</code>
{{template "bottom"}}{{end}}
{{define "error"}}{{template "top" .}}
<h1>Authorization error</h1>
<p>{{.Message}}</p>
{{template "bottom"}}{{end}}
`))

// setPageSecurityHeaders keeps codes out of Referer headers, caches and frames.
func setPageSecurityHeaders(h http.Header) {
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	// No form-action directive: browsers apply it to the redirect that
	// follows the form post, which leads to the client's own host.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
}

func renderPage(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, data); err != nil {
		http.Error(w, "emulator: rendering "+name+" page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	setPageSecurityHeaders(h)
	h.Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func renderError(w http.ResponseWriter, message string) {
	renderPage(w, http.StatusBadRequest, "error", errorPage{Title: "Authorization error", User: demoUserName, Message: strings.TrimSpace(message)})
}
