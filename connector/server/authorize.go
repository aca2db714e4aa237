package server

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/server/state"
)

type authorizeRequest struct {
	ReturnTo string `json:"return_to"`
}

// authorize starts an authorization: the provider URL for the user's
// browser, and a session in the database, so that the callback completes
// on whichever replica receives it.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, p state.Principal) {
	var req authorizeRequest
	if !readJSON(w, r, &req) {
		return
	}
	if req.ReturnTo != "" && !s.returnAllowed(req.ReturnTo) {
		writeProblem(w, r, invalid([]FieldProblem{{Field: "return_to", Detail: "return_to " + quote(req.ReturnTo) + " is not in the server's allow-list (connector serve --return-to)"}}))
		return
	}
	e := s.connection(w, r, p)
	if e == nil {
		return
	}
	if e.client.Implicit {
		writeProblem(w, r, credentialsProblem(e, "authorization to run"))
		return
	}
	f, err := e.flow()
	if err != nil {
		writeProblem(w, r, s.engineProblem(r, err))
		return
	}
	a, err := f.AuthCodeURLContext(r.Context()) // a pushed authorization request (par_uri) is sent here
	if err != nil {
		if f.Pushes() {
			writeProblem(w, r, s.engineProblem(r, err)) // the provider refused the push, or was unreachable
			return
		}
		writeProblem(w, r, problem(http.StatusConflict, "no-authorization-step", "", "%v", err))
		return
	}
	sess, err := s.cfg.State.CreateSession(r.Context(), state.Session{Tenant: p.Tenant, Connection: e.conn.ID, Verifier: a.Verifier(), ReturnTo: req.ReturnTo, Expires: earliest(a.Expires, time.Now().Add(s.cfg.SessionLifetime)), LinkExpires: a.URLExpires, DPoPKey: a.DPoPKey()}, a.State)
	if err != nil {
		writeProblem(w, r, s.stateProblem(r, err, "id", "connection"))
		return
	}
	out := map[string]any{"authorization_url": a.URL, "session_id": sess.ID, "expires": sess.Expires.UTC()}
	if !a.URLExpires.IsZero() {
		// A pushed request's link dies on its own, often long before the
		// session: send the user to it now, not in an email.
		out["link_expires"] = a.URLExpires.UTC()
	}
	writeJSON(w, http.StatusCreated, out)
}

// returnAllowed reports whether u starts with an allow-listed prefix on a
// path boundary (https://app.example.com/x does not allow
// https://app.example.com.evil.net nor https://app.example.com/xy).
func (s *Server) returnAllowed(u string) bool {
	pu, err := url.Parse(u)
	if err != nil || !pu.IsAbs() || pu.Host == "" || pu.User != nil || len(u) > 2048 {
		return false
	}
	for _, a := range s.cfg.ReturnTo {
		au, err := url.Parse(a)
		if err != nil || !strings.EqualFold(au.Scheme, pu.Scheme) || !strings.EqualFold(au.Host, pu.Host) {
			continue
		}
		prefix := strings.TrimSuffix(au.Path, "/")
		if pu.Path == prefix || strings.HasPrefix(pu.Path, prefix+"/") || prefix == "" {
			return true
		}
	}
	return false
}

// callbackHandler completes an authorization on any replica: the session is
// found by its state's hash and consumed by one conditional update, then
// the engine's Flow checks the callback (issuer, error, code) and exchanges
// the code with the stored verifier.
func (s *Server) callbackHandler(w http.ResponseWriter, r *http.Request, _ state.Principal) {
	q := r.URL.Query()
	sess, err := s.cfg.State.UseSession(r.Context(), q.Get("state"))
	switch {
	case errors.Is(err, state.ErrSessionUnknown):
		s.page(w, r, http.StatusBadRequest, "Not connected", "This link does not belong to an authorization this service started. Start connecting again from the application.")
		return
	case errors.Is(err, state.ErrSessionUsed):
		s.page(w, r, http.StatusBadRequest, "Not connected", "This authorization was already completed or abandoned; each link works once. Start connecting again from the application.")
		return
	case errors.Is(err, state.ErrSessionExpired):
		if s.connectResult(w, r, sess, sess.Connection, err) {
			return
		}
		s.page(w, r, http.StatusBadRequest, "Not connected", "This authorization took too long and expired. Start connecting again from the application.")
		return
	case err != nil:
		s.log.ErrorContext(r.Context(), "callback", "error", err)
		s.page(w, r, http.StatusServiceUnavailable, "Not connected", "The service could not read the authorization; try again in a moment.")
		return
	}
	setTenant(r, sess.Tenant)
	setConnection(r, sess.Connection)
	e, err := s.load(r.Context(), sess.Tenant, sess.Connection)
	if err != nil {
		s.page(w, r, http.StatusNotFound, "Not connected", "The connection being authorized no longer exists.")
		return
	}
	f, err := e.flow()
	if err != nil {
		s.page(w, r, http.StatusConflict, "Not connected", err.Error())
		return
	}
	if f, err = f.WithDPoPKey(sess.DPoPKey); err != nil { // dpop: the code is bound to the key made at authorize
		s.page(w, r, http.StatusConflict, "Not connected", err.Error())
		return
	}
	att := f.ResumeAttempt(q.Get("state"), sess.Verifier, sess.Expires)
	att.URLExpires = sess.LinkExpires // an error after it is put down to the expired link
	tok, err := f.Exchange(r.Context(), att, q)
	if err == nil {
		err = e.api.Source().Store(authorizing(r.Context()), tok) // no refresh: emits connection.connected below
	}
	if err != nil {
		var te *connector.TokenError
		if errors.As(err, &te) {
			s.metrics.tokenErrors.WithLabelValues(te.Code).Inc()
		}
		s.finish(w, r, sess, e.conn.ID, err)
		return
	}
	_, err = s.cfg.State.RecordConnected(r.Context(), sess.Tenant, e.conn.ID) // and emits connection.connected
	s.recorded(r.Context(), "connected", err == nil, err)
	s.finish(w, r, sess, e.conn.ID, nil)
}

// finish ends the callback of sess with its outcome err (nil: connected):
// the connect page's result page when a connect link started it; else a
// redirect to the platform when the session named a return_to, else a page.
func (s *Server) finish(w http.ResponseWriter, r *http.Request, sess state.Session, conn string, err error) {
	if s.connectResult(w, r, sess, conn, err) {
		return
	}
	status, code, title, msg := "connected", http.StatusOK, "Connected", "The connection is authorized. You can close this window."
	if err != nil {
		status, code, title, msg = "error", http.StatusBadGateway, "Not connected", err.Error()
	}
	if sess.ReturnTo != "" && s.returnAllowed(sess.ReturnTo) {
		u, _ := url.Parse(sess.ReturnTo)
		q := u.Query()
		q.Set("connection", conn)
		q.Set("status", status)
		u.RawQuery = q.Encode()
		pageHeaders(w.Header())
		http.Redirect(w, r, u.String(), http.StatusSeeOther)
		return
	}
	s.page(w, r, code, title, msg)
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
