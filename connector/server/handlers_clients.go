package server

import (
	"net/http"
	"strings"
	"time"

	"github.com/connector-engine/connector/connector/server/state"
	"github.com/connector-engine/connector/definitions"
)

type clientRequest struct {
	Definition   string   `json:"definition"`
	ClientID     string   `json:"client_id"`
	ClientSecret string   `json:"client_secret"`
	Scopes       []string `json:"scopes"`
	BaseURL      string   `json:"base_url"`
	LoginURL     string   `json:"login_url"`
}

// clientView is an OAuth client as the API shows it: never the secret.
type clientView struct {
	ID          string    `json:"id"`
	Definition  string    `json:"definition"`
	ClientID    string    `json:"client_id"`
	RedirectURI string    `json:"redirect_uri"`
	Scopes      []string  `json:"scopes"`
	BaseURL     string    `json:"base_url,omitempty"`
	LoginURL    string    `json:"login_url,omitempty"`
	Created     time.Time `json:"created"`
	Updated     time.Time `json:"updated"`
}

func (s *Server) viewClient(c state.Client) clientView {
	scopes := c.Scopes
	if scopes == nil {
		if d, ok := s.cfg.Definitions.Get(c.Definition); ok && d.Auth.OAuth != nil {
			scopes = d.Auth.OAuth.Scopes
		}
	}
	if scopes == nil {
		scopes = []string{}
	}
	return clientView{ID: c.ID, Definition: c.Definition, ClientID: c.ClientID, RedirectURI: c.RedirectURI, Scopes: scopes, BaseURL: c.BaseURL, LoginURL: c.LoginURL, Created: c.Created, Updated: c.Updated}
}

const maxSecret = 4096

func (s *Server) createClient(w http.ResponseWriter, r *http.Request, p state.Principal) {
	var req clientRequest
	if !readJSON(w, r, &req) {
		return
	}
	var errs []FieldProblem
	add := func(field, detail string) { errs = append(errs, FieldProblem{Field: field, Detail: detail}) }
	var def *definitions.Definition
	if req.Definition == "" {
		add("definition", "definition is required: the name of a loaded definition (GET /v1/definitions)")
	} else if d, err := s.cfg.Definitions.Lookup(req.Definition); err != nil {
		add("definition", err.Error())
	} else if d.Auth.OAuth == nil {
		add("definition", "definition "+d.Name+" does not use OAuth, so it needs no OAuth client")
	} else {
		def = d
	}
	if req.ClientID == "" || len(req.ClientID) > 512 {
		add("client_id", "client_id is required (at most 512 characters): the id the provider gave the application")
	}
	if req.ClientSecret == "" || len(req.ClientSecret) > maxSecret {
		add("client_secret", "client_secret is required (at most 4096 bytes)")
	}
	for _, sc := range req.Scopes {
		if sc == "" || strings.ContainsAny(sc, " \t\r\n\"\\") {
			add("scopes", "scope "+quote(sc)+" is not a valid OAuth scope")
		}
	}
	for _, u := range []struct{ field, val string }{{"base_url", req.BaseURL}, {"login_url", req.LoginURL}} {
		if u.val != "" {
			if err := s.checkHost(u.val); err != nil {
				add(u.field, err.Error())
			}
		}
	}
	if len(errs) > 0 {
		writeProblem(w, r, invalid(errs))
		return
	}
	_ = def
	c, err := s.cfg.State.CreateClient(r.Context(), state.Client{
		Tenant: p.Tenant, Definition: req.Definition, ClientID: req.ClientID, Secret: req.ClientSecret,
		RedirectURI: s.callback, Scopes: req.Scopes, BaseURL: req.BaseURL, LoginURL: req.LoginURL,
	})
	if err != nil {
		writeProblem(w, r, s.stateProblem(r, err, "", "OAuth client"))
		return
	}
	w.Header().Set("Location", "/v1/oauth-clients/"+c.ID)
	writeJSON(w, http.StatusCreated, s.viewClient(c))
}

func quote(s string) string { return `"` + s + `"` }

// invalid is the 422 problem for a request whose members are wrong.
func invalid(errs []FieldProblem) *Problem {
	p := problem(http.StatusUnprocessableEntity, "invalid-request", errs[0].Field, "%s", errs[0].Detail)
	if len(errs) > 1 {
		p.Detail = "the request has several problems; see errors"
	}
	p.Errors = errs
	return p
}

func (s *Server) listClients(w http.ResponseWriter, r *http.Request, p state.Principal) {
	cs, err := s.cfg.State.Clients(r.Context(), p.Tenant)
	if err != nil {
		writeProblem(w, r, s.stateProblem(r, err, "", "OAuth client"))
		return
	}
	out := make([]clientView, 0, len(cs))
	for _, c := range cs {
		out = append(out, s.viewClient(c))
	}
	writeJSON(w, http.StatusOK, map[string]any{"oauth_clients": out})
}

func (s *Server) getClient(w http.ResponseWriter, r *http.Request, p state.Principal) {
	c, err := s.cfg.State.Client(r.Context(), p.Tenant, r.PathValue("id"))
	if err != nil {
		writeProblem(w, r, s.stateProblem(r, err, "id", "OAuth client"))
		return
	}
	writeJSON(w, http.StatusOK, s.viewClient(c))
}

type rotateRequest struct {
	ClientSecret string `json:"client_secret"`
}

func (s *Server) rotateClient(w http.ResponseWriter, r *http.Request, p state.Principal) {
	var req rotateRequest
	if !readJSON(w, r, &req) {
		return
	}
	if req.ClientSecret == "" || len(req.ClientSecret) > maxSecret {
		writeProblem(w, r, invalid([]FieldProblem{{Field: "client_secret", Detail: "client_secret is required (at most 4096 bytes): the new secret the provider issued"}}))
		return
	}
	c, err := s.cfg.State.RotateClientSecret(r.Context(), p.Tenant, r.PathValue("id"), req.ClientSecret)
	if err != nil {
		writeProblem(w, r, s.stateProblem(r, err, "id", "OAuth client"))
		return
	}
	writeJSON(w, http.StatusOK, s.viewClient(c))
}

func (s *Server) deleteClient(w http.ResponseWriter, r *http.Request, p state.Principal) {
	if err := s.cfg.State.DeleteClient(r.Context(), p.Tenant, r.PathValue("id")); err != nil {
		writeProblem(w, r, s.stateProblem(r, err, "id", "OAuth client"))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
