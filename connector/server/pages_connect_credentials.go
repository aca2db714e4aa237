package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/connector-engine/connector/connector/server/state"
)

// The connect page for definitions without OAuth: a link's definitions
// may name one (an API key, basic credentials, a session login), and its
// form then takes the credentials themselves, with the same checks as
// POST /v1/connections {"definition": …}; a good form creates the
// connection, connected, and shows the result page at once: there is no
// provider to send the user to.

// offerCredentials adds the tenant's implicit client of definition name to
// a connect session being made, when name is a definition without OAuth
// (done true; msg says why it cannot be offered, if so). A definition
// that uses OAuth, or none by that name, is left to the caller (done false).
func (s *Server) offerCredentials(ctx context.Context, tenant, name string, addClient func(string, state.Client)) (done bool, msg string) {
	def, err := s.cfg.Definitions.Lookup(name)
	if err != nil || def.Auth.OAuth != nil {
		return false, ""
	}
	if o := def.Auth.OAuth1; o != nil && o.ThreeLegged() {
		return true, "definition " + def.Name + " uses three-legged OAuth 1.0a, whose authorization the server does not run"
	}
	cl, err := s.cfg.State.ImplicitClient(ctx, tenant, def.Name)
	if err != nil {
		s.log.ErrorContext(ctx, "connect session", "error", err)
		return true, "definition " + def.Name + " could not be offered just now; try again"
	}
	addClient("definitions", cl)
	return true, ""
}

// connectCredentials finishes a connect form of a definition without
// OAuth whose values passed checkConnectionInput: it builds the engine's
// API once (checkCredentials), creates the connection and marks the link
// used by it, all or nothing: a link that lost a race to another
// submission leaves no connection behind.
func (s *Server) connectCredentials(w http.ResponseWriter, r *http.Request, cs state.ConnectSession, o connectOffer, env string, typed, fields map[string]string) {
	if probs := s.checkCredentials(o.def, o.client, env, fields); len(probs) > 0 {
		s.connectForm(w, r, http.StatusUnprocessableEntity, cs, o, typed, env, probs)
		return
	}
	ctx := r.Context()
	c, err := s.cfg.State.CreateCredentialsConnection(ctx, state.Connection{Tenant: cs.Tenant, Environment: env, Fields: fields}, o.def.Name)
	if err != nil {
		s.pageUnavailable(w, r, err)
		return
	}
	setConnection(r, c.ID)
	if err := s.cfg.State.UseConnectSession(ctx, cs.Tenant, cs.ID, c.ID, ""); err != nil {
		// Its connection.connected is already stored: say it is gone too.
		s.discard(ctx, cs.Tenant, c.ID)
		s.emitConnection(ctx, cs.Tenant, c.ID, state.TypeDeleted, "")
		if errors.Is(err, state.ErrConnectUsed) || errors.Is(err, state.ErrConnectExpired) || errors.Is(err, state.ErrConnectUnknown) {
			s.connectSession(w, r) // says which
			return
		}
		s.pageUnavailable(w, r, err)
		return
	}
	s.nudge() // its connection.connected event
	envName := ""
	if e, err := o.def.Environment(env); err == nil && len(o.def.Environments) > 1 {
		envName = envTitle(e)
	}
	out := connectOutcome(nil, o.def.Title, envName)
	out.page.Link = s.returnLink(cs.ReturnTo, c.ID, out.status)
	if out.page.Link != "" {
		out.page.LinkText = "Return to the application"
	} else {
		out.page.Paragraphs = append(out.page.Paragraphs, "You can close this window.")
	}
	s.message(w, r, out.code, out.page)
}
