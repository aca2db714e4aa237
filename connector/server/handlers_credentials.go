package server

import (
	"errors"
	"maps"
	"net/http"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/ntlm"
	"github.com/connector-engine/connector/connector/server/state"
	"github.com/connector-engine/connector/definitions"
)

// Connections of definitions without OAuth (an API key, basic or NTLM
// credentials, a session login, two-legged OAuth 1.0a) are created with
// "definition" instead of "oauth_client": their credentials are field
// values (the definition's secret fields), sealed at rest with the other
// fields, shown only as "(set)", and replaced with PATCH
// /v1/connections/{id}/fields. In the state they belong to the tenant's
// implicit client of the definition (state/credentials.go), which the API
// never shows as an OAuth client.

// connectionTarget resolves what a new connection is of: one of the
// tenant's OAuth clients, or a definition without OAuth (an implicit
// client, not yet stored). Exactly one of the two must be given.
func (s *Server) connectionTarget(r *http.Request, p state.Principal, req connectionRequest) (*definitions.Definition, state.Client, *Problem) {
	one := func(field, detail string) *Problem { return invalid([]FieldProblem{{Field: field, Detail: detail}}) }
	switch {
	case req.OAuthClient != "" && req.Definition != "":
		return nil, state.Client{}, one("definition", "give oauth_client or definition, not both: oauth_client (an OAuth client's id) for a definition that uses OAuth, definition (its name) for one that does not, such as an API key, basic credentials or a session login")
	case req.OAuthClient == "" && req.Definition == "":
		return nil, state.Client{}, one("oauth_client", "oauth_client or definition is required: the id of one of your OAuth clients (GET /v1/oauth-clients) for a definition that uses OAuth, or the name of a definition that does not (GET /v1/definitions)")
	case req.Definition != "":
		def, err := s.cfg.Definitions.Lookup(req.Definition)
		if err != nil {
			return nil, state.Client{}, one("definition", err.Error())
		}
		if def.Auth.OAuth != nil {
			return nil, state.Client{}, one("definition", "definition "+def.Name+" uses OAuth, so its connections are made with an OAuth client: create one (POST /v1/oauth-clients) and give its id as oauth_client instead of definition")
		}
		if o := def.Auth.OAuth1; o != nil && o.ThreeLegged() {
			return nil, state.Client{}, one("definition", "definition "+def.Name+" uses three-legged OAuth 1.0a, whose authorization the server does not run; use connector connect, or a definition whose token and token secret are fields (two-legged)")
		}
		return def, state.Client{Tenant: p.Tenant, Definition: def.Name, Implicit: true}, nil
	}
	cl, err := s.cfg.State.Client(r.Context(), p.Tenant, req.OAuthClient)
	if errors.Is(err, state.ErrNotFound) {
		return nil, state.Client{}, one("oauth_client", "no OAuth client "+quote(req.OAuthClient))
	} else if err != nil {
		return nil, state.Client{}, s.stateProblem(r, err, "", "")
	}
	def, err := s.cfg.Definitions.Lookup(cl.Definition)
	if err != nil {
		return nil, state.Client{}, one("oauth_client", err.Error())
	}
	if def.Auth.OAuth == nil { // the definition was replaced by one without OAuth
		return nil, state.Client{}, one("oauth_client", "OAuth client "+cl.ID+" is of definition "+def.Name+", which does not use OAuth: create the connection with \"definition\": \""+def.Name+"\" instead of oauth_client")
	}
	return def, cl, nil
}

// checkCredentials builds the engine's API for the connection once, as its
// first use would, so that what only building finds (a credential template
// that does not expand, a base URL the values make wrong) is refused now
// and nothing is stored. No request is sent.
func (s *Server) checkCredentials(def *definitions.Definition, cl state.Client, env string, fields map[string]string) []FieldProblem {
	cc := s.engineConnection(def, cl, state.Connection{ID: "new", Tenant: cl.Tenant, Environment: env, Fields: fields})
	if _, err := connector.NewAPI(cc, s.cfg.Tokens, &connector.APIOptions{Base: s.cfg.Transport}); err != nil {
		return []FieldProblem{{Field: "fields", Detail: err.Error()}}
	}
	return nil
}

type fieldsRequest struct {
	Fields map[string]any `json:"fields"`
}

// updateFields replaces some of a connection's field values: a member sets
// the field, null unsets it (an optional one), fields not named keep their
// values. Secret fields are write-only: the answer shows them as "(set)".
// The merged values pass the same checks as a new connection's. The
// connection gets a new version, so every replica's cached engine is
// rebuilt with the new credentials at its next use; a session login's
// cached session is dropped, so the next request logs in with them.
func (s *Server) updateFields(w http.ResponseWriter, r *http.Request, p state.Principal) {
	var req fieldsRequest
	if !readJSON(w, r, &req) {
		return
	}
	if len(req.Fields) == 0 {
		writeProblem(w, r, invalid([]FieldProblem{{Field: "fields", Detail: "fields is required: the field values to set (null unsets an optional field); fields not named keep their values"}}))
		return
	}
	e := s.connection(w, r, p)
	if e == nil {
		return
	}
	merged := maps.Clone(e.conn.Fields)
	if merged == nil {
		merged = map[string]string{}
	}
	set := map[string]any{}
	for k, v := range req.Fields {
		if v == nil {
			delete(merged, k)
			continue
		}
		set[k] = v
	}
	vals, errs := fieldValues(set)
	maps.Copy(merged, vals)
	errs = append(errs, s.checkConnectionInput(e.def, e.client, e.conn.Environment, merged)...)
	if len(errs) == 0 && e.client.Implicit {
		errs = s.checkCredentials(e.def, e.client, e.conn.Environment, merged)
	}
	if len(errs) > 0 {
		writeProblem(w, r, invalid(errs))
		return
	}
	if e.client.Implicit {
		if e.api.Source() != nil {
			// A session made with the old credentials must not outlive them.
			if err := s.cfg.Tokens.Delete(r.Context(), e.conn.ID); err != nil {
				writeProblem(w, r, s.engineProblem(r, err))
				return
			}
		}
	}
	if _, err := s.cfg.State.SetConnectionFields(r.Context(), p.Tenant, e.conn.ID, merged, ""); err != nil {
		writeProblem(w, r, s.stateProblem(r, err, "id", "connection"))
		return
	}
	if e.client.Implicit && e.conn.Status != state.StatusConnected {
		// New credentials: a refused login's reason no longer holds, and
		// the platform hears the connection is usable again.
		if _, err := s.cfg.State.RecordConnected(r.Context(), p.Tenant, e.conn.ID); err != nil {
			writeProblem(w, r, s.stateProblem(r, err, "id", "connection"))
			return
		}
		s.nudge()
	}
	s.forget(e.conn.ID)
	if e = s.connection(w, r, p); e != nil {
		writeJSON(w, http.StatusOK, s.viewConnection(r.Context(), e))
	}
}

// credentialsProblem is the 409 for asking a connection that
// authenticates with its own credentials for what only OAuth has.
func credentialsProblem(e *engine, what string) *Problem {
	return problem(http.StatusConflict, "credentials-connection", "",
		"connection %s (definition %s) authenticates with its credentials (%s), so it has no %s; send requests through POST /v1/connections/%s/proxy/… or actions, and change its credentials with PATCH /v1/connections/%s/fields",
		e.conn.ID, e.def.Name, e.def.Auth.Scheme, what, e.conn.ID, e.conn.ID)
}

// loginProblem answers a session login the provider refused or failed.
// Refused credentials (401, 403) mark the connection as needing new ones,
// with the provider's words as the reason (connection.needs_reauth, once
// per transition); PATCH /v1/connections/{id}/fields brings it back.
func (s *Server) loginProblem(r *http.Request, le *connector.LoginError) *Problem {
	if le.Status == http.StatusUnauthorized || le.Status == http.StatusForbidden {
		s.noteReauthOf(r, le.Error())
		return problem(http.StatusConflict, "credentials-refused", "", "%v; replace them with PATCH /v1/connections/%s/fields", le, r.PathValue("id"))
	}
	return problem(http.StatusBadGateway, "provider-login-error", "", "%v", le)
}

// ntlmProblem answers an NTLM server answering 401 to the handshake. A
// refusal after a complete handshake is the account's credentials, as a
// refused session login: the connection needs new ones. A server offering
// no usable NTLM is its configuration, not the credentials: a 502 with its
// words, and the status is left alone.
func (s *Server) ntlmProblem(r *http.Request, re *ntlm.RefusedError) *Problem {
	if re.Handshake {
		s.noteReauthOf(r, re.Error())
		return problem(http.StatusConflict, "credentials-refused", "", "%v; replace them with PATCH /v1/connections/%s/fields", re, r.PathValue("id"))
	}
	return problem(http.StatusBadGateway, "provider-login-error", "", "%v", re)
}
