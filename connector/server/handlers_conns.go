package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/ntlm"
	"github.com/connector-engine/connector/connector/server/state"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/definitions"
)

type connectionRequest struct {
	OAuthClient string         `json:"oauth_client"`
	Definition  string         `json:"definition"` // instead of oauth_client, for a definition without OAuth
	Environment string         `json:"environment"`
	Fields      map[string]any `json:"fields"`
}

// fieldValues takes numbers and booleans for the fields of those types as
// well as strings, and names the field whose value is of no such type.
func fieldValues(in map[string]any) (map[string]string, []FieldProblem) {
	out := make(map[string]string, len(in))
	var errs []FieldProblem
	for k, v := range in {
		switch t := v.(type) {
		case string:
			out[k] = t
		case json.Number:
			out[k] = t.String()
		case bool:
			out[k] = strconv.FormatBool(t)
		default:
			errs = append(errs, FieldProblem{Field: "fields." + k, Detail: "fields." + k + " must be a string, number or boolean"})
		}
	}
	return out, errs
}

// connectionView is a connection as the API shows it. Secret fields are
// shown as set or not, never by value.
type connectionView struct {
	ID          string            `json:"id"`
	OAuthClient string            `json:"oauth_client,omitempty"` // none for a definition without OAuth
	Definition  string            `json:"definition"`
	Auth        string            `json:"auth"` // the definition's scheme: oauth, apikey, basic, session...
	Environment string            `json:"environment"`
	Fields      map[string]string `json:"fields"`
	Status      string            `json:"status"`
	Reason      string            `json:"reason,omitempty"`
	Expires     *time.Time        `json:"token_expires,omitempty"`
	Scopes      []string          `json:"scopes,omitempty"`
	Created     time.Time         `json:"created"`
	Updated     time.Time         `json:"updated"`
}

func (s *Server) viewConnection(ctx context.Context, e *engine) connectionView {
	c := e.conn
	v := connectionView{ID: c.ID, OAuthClient: c.Client, Definition: e.def.Name, Auth: string(e.def.Auth.Scheme), Environment: c.Environment, Fields: map[string]string{}, Status: c.Status, Reason: c.Reason, Created: c.Created, Updated: c.Updated}
	if e.client.Implicit {
		v.OAuthClient = ""
	}
	if v.Environment == "" {
		v.Environment = e.def.DefaultEnvironment
	}
	for k, val := range c.Fields {
		if f, ok := e.def.Field(k); ok && f.Secret {
			val = "(set)"
		}
		v.Fields[k] = val
	}
	// The token store has the live status: mirror it for listings. Not
	// for a connection without OAuth: a session login's token is only a
	// cache of its session, and its status is the server's (a refused
	// login, new credentials).
	if e.client.Implicit {
		return v
	}
	if rec, err := s.cfg.Tokens.Get(ctx, c.ID); err == nil {
		st, reason := state.StatusConnected, ""
		if rec.Status == store.StatusNeedsReauth {
			st, reason = state.StatusNeedsReauth, rec.Reason
		}
		if st == state.StatusNeedsReauth && c.Status != st {
			s.noteReauth(ctx, c.Tenant, c.ID, reason) // once per transition: emits connection.needs_reauth
		} else if st != c.Status || reason != c.Reason {
			_ = s.cfg.State.SetConnectionStatus(ctx, c.Tenant, c.ID, st, reason)
		}
		v.Status, v.Reason = st, reason
		if !rec.Token.Expiry.IsZero() {
			exp := rec.Token.Expiry.UTC()
			v.Expires = &exp
		}
		v.Scopes = rec.Token.Scopes
	}
	return v
}

// checkConnectionInput applies the engine's rules to a new connection's
// environment and field values (the definition's Field.Check, required
// fields, then the whole connection's Validate), each problem naming its
// field: the API and the connect page give the same messages.
func (s *Server) checkConnectionInput(def *definitions.Definition, cl state.Client, env string, fields map[string]string) []FieldProblem {
	var errs []FieldProblem
	if _, err := def.Environment(env); err != nil {
		errs = append(errs, FieldProblem{Field: "environment", Detail: err.Error()})
	}
	for name, val := range fields {
		f, ok := def.Field(name)
		if !ok {
			errs = append(errs, FieldProblem{Field: "fields." + name, Detail: "definition " + def.Name + " has no field " + quote(name)})
		} else if msg := f.Check(val); msg != "" {
			errs = append(errs, FieldProblem{Field: "fields." + name, Detail: msg})
		} else if err := s.fieldHost(f, val); err != nil {
			errs = append(errs, FieldProblem{Field: "fields." + name, Detail: "fields." + name + ": " + err.Error()})
		}
	}
	for _, f := range def.Fields {
		if _, given := fields[f.Name]; f.Required && !f.HasDefault && !given {
			errs = append(errs, FieldProblem{Field: "fields." + f.Name, Detail: "field " + f.Name + " is required"})
		}
	}
	if len(errs) == 0 {
		// Whatever the engine would refuse later is refused now.
		cc := s.engineConnection(def, cl, state.Connection{ID: "new", Environment: env, Fields: fields})
		if err := cc.Validate(); err != nil {
			errs = append(errs, FieldProblem{Field: "fields", Detail: err.Error()})
		}
	}
	return errs
}

func (s *Server) createConnection(w http.ResponseWriter, r *http.Request, p state.Principal) {
	var req connectionRequest
	if !readJSON(w, r, &req) {
		return
	}
	def, cl, prob := s.connectionTarget(r, p, req)
	if prob != nil {
		writeProblem(w, r, prob)
		return
	}
	fields, errs := fieldValues(req.Fields)
	errs = append(errs, s.checkConnectionInput(def, cl, req.Environment, fields)...)
	if len(errs) == 0 && cl.Implicit {
		errs = s.checkCredentials(def, cl, req.Environment, fields)
	}
	if len(errs) > 0 {
		writeProblem(w, r, invalid(errs))
		return
	}
	nc := state.Connection{Tenant: p.Tenant, Client: cl.ID, Environment: req.Environment, Fields: fields}
	var c state.Connection
	var err error
	if cl.Implicit {
		c, err = s.cfg.State.CreateCredentialsConnection(r.Context(), nc, def.Name)
	} else {
		c, err = s.cfg.State.CreateConnection(r.Context(), nc)
	}
	if err != nil {
		writeProblem(w, r, s.stateProblem(r, err, "", "connection"))
		return
	}
	setConnection(r, c.ID)
	e, err := s.load(r.Context(), p.Tenant, c.ID)
	if err != nil {
		writeProblem(w, r, s.engineProblem(r, err))
		return
	}
	if cl.Implicit {
		s.nudge() // its connection.connected event
	}
	w.Header().Set("Location", "/v1/connections/"+c.ID)
	writeJSON(w, http.StatusCreated, s.viewConnection(r.Context(), e))
}

// connection loads the connection named by the path for p, writing the
// problem when it cannot.
func (s *Server) connection(w http.ResponseWriter, r *http.Request, p state.Principal) *engine {
	id := r.PathValue("id")
	setConnection(r, id)
	e, err := s.load(r.Context(), p.Tenant, id)
	if err != nil {
		writeProblem(w, r, s.engineProblem(r, err))
		return nil
	}
	return e
}

func (s *Server) engineProblem(r *http.Request, err error) *Problem {
	if errors.Is(err, state.ErrNotFound) {
		return problem(http.StatusNotFound, "not-found", "id", "no connection %q", r.PathValue("id"))
	}
	var nr *connector.NeedsReauthError
	if errors.As(err, &nr) {
		s.noteReauthOf(r, nr.Reason)
		return problem(http.StatusConflict, "needs-reauthorization", "", "%s; POST /v1/connections/%s/authorize", nr.Reason, r.PathValue("id"))
	}
	var le *connector.LoginError
	if errors.As(err, &le) {
		return s.loginProblem(r, le) // handlers_credentials.go
	}
	var refused *ntlm.RefusedError
	if errors.As(err, &refused) {
		return s.ntlmProblem(r, refused) // handlers_credentials.go
	}
	var te *connector.TokenError
	if errors.As(err, &te) {
		s.metrics.tokenErrors.WithLabelValues(te.Code).Inc()
		return problem(http.StatusBadGateway, "provider-token-error", "", "%v", err)
	}
	var ve *connector.ValidationError
	if errors.As(err, &ve) {
		return problem(http.StatusConflict, "invalid-connection", "", "%v", err)
	}
	if errors.Is(err, errNoOAuth) {
		return problem(http.StatusConflict, "no-oauth", "", "%v", err)
	}
	var re *connector.RequestError
	if errors.As(err, &re) || errors.Is(err, context.DeadlineExceeded) {
		return problem(http.StatusBadGateway, "provider-unreachable", "", "%v", err)
	}
	s.log.ErrorContext(r.Context(), "engine", "error", err)
	return problem(http.StatusBadGateway, "engine-error", "", "%v", err)
}

func (s *Server) getConnection(w http.ResponseWriter, r *http.Request, p state.Principal) {
	if e := s.connection(w, r, p); e != nil {
		writeJSON(w, http.StatusOK, s.viewConnection(r.Context(), e))
	}
}

func (s *Server) listConnections(w http.ResponseWriter, r *http.Request, p state.Principal) {
	q := r.URL.Query()
	for k := range q {
		switch k {
		case "oauth_client", "definition", "environment", "status", "cursor", "limit":
		default:
			writeProblem(w, r, problem(http.StatusBadRequest, "unknown-parameter", k, "unknown query parameter %q (oauth_client, definition, environment, status, cursor, limit)", k))
			return
		}
	}
	f := state.Filter{Client: q.Get("oauth_client"), Definition: q.Get("definition"), Environment: q.Get("environment"), Status: q.Get("status"), After: q.Get("cursor")}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > state.MaxLimit {
			writeProblem(w, r, problem(http.StatusBadRequest, "invalid-parameter", "limit", "limit must be a whole number from 1 to %d", state.MaxLimit))
			return
		}
		f.Limit = n
	}
	switch f.Status {
	case "", state.StatusPending, state.StatusConnected, state.StatusNeedsReauth:
	default:
		writeProblem(w, r, problem(http.StatusBadRequest, "invalid-parameter", "status", "status must be pending, connected or needs_reauthorization"))
		return
	}
	page, next, err := s.cfg.State.Connections(r.Context(), p.Tenant, f)
	if errors.Is(err, state.ErrCursor) {
		writeProblem(w, r, problem(http.StatusBadRequest, "invalid-parameter", "cursor", "%v", err))
		return
	}
	if err != nil {
		writeProblem(w, r, s.stateProblem(r, err, "", ""))
		return
	}
	out := make([]connectionView, 0, len(page))
	for _, c := range page {
		e, err := s.load(r.Context(), p.Tenant, c.ID)
		if err != nil {
			continue // deleted meanwhile
		}
		out = append(out, s.viewConnection(r.Context(), e))
	}
	body := map[string]any{"connections": out}
	if next != "" {
		body["next_cursor"] = next
	}
	writeJSON(w, http.StatusOK, body)
}

// deleteConnection revokes the grant at the provider first (when the
// definition can), then forgets the tokens and the connection. A failed
// revocation deletes nothing, unless ?force=true.
func (s *Server) deleteConnection(w http.ResponseWriter, r *http.Request, p state.Principal) {
	force := r.URL.Query().Get("force") == "true"
	e := s.connection(w, r, p)
	if e == nil {
		return
	}
	err := s.removeConnection(r.Context(), e, force)
	var re *revocationError
	switch {
	case errors.As(err, &re):
		writeProblem(w, r, problem(http.StatusBadGateway, "revocation-failed", "", "%v; nothing was deleted (DELETE with ?force=true deletes without revoking)", re.err))
	case errors.Is(err, state.ErrNotFound):
		writeProblem(w, r, s.stateProblem(r, err, "id", "connection"))
	case err != nil:
		writeProblem(w, r, s.engineProblem(r, err))
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// revocationError is a provider's refusal to revoke a grant.
type revocationError struct{ err error }

func (e *revocationError) Error() string { return e.err.Error() }
func (e *revocationError) Unwrap() error { return e.err }

// revokeGrant revokes e's grant at the provider (its refresh token, else
// its access token) when the definition has a revocation endpoint, and
// emits connection.revoked with why. A connection without tokens has
// nothing to revoke.
func (s *Server) revokeGrant(ctx context.Context, e *engine, why string) error {
	rec, err := s.cfg.Tokens.Get(ctx, e.conn.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	f, ferr := e.flow()
	if ferr == nil {
		f, ferr = f.WithLearned(rec.Token.Values) // revoke_uri may be on a learned host
	}
	if ferr != nil {
		return nil
	}
	tok, hint := rec.Token.RefreshToken, "refresh_token"
	if tok == "" {
		tok, hint = rec.Token.AccessToken, "access_token"
	}
	if err := f.Revoke(ctx, tok, hint); err != nil {
		return &revocationError{err}
	}
	s.emitConnection(ctx, e.conn.Tenant, e.conn.ID, state.TypeRevoked, why)
	return nil
}

// removeConnection revokes the grant (a failure stops it, unless force),
// then deletes the tokens and the connection.
func (s *Server) removeConnection(ctx context.Context, e *engine, force bool) error {
	var re *revocationError
	if err := s.revokeGrant(ctx, e, "deleted"); err != nil && (!errors.As(err, &re) || !force) {
		return err
	}
	if err := s.cfg.Tokens.Delete(ctx, e.conn.ID); err != nil {
		return err
	}
	if err := s.cfg.State.DeleteConnection(ctx, e.conn.Tenant, e.conn.ID); err != nil {
		return err
	}
	s.forget(e.conn.ID)
	s.emitConnection(ctx, e.conn.Tenant, e.conn.ID, state.TypeDeleted, "")
	return nil
}

func (s *Server) refreshConnection(w http.ResponseWriter, r *http.Request, p state.Principal) {
	e := s.connection(w, r, p)
	if e == nil {
		return
	}
	if e.api.Source() == nil {
		writeProblem(w, r, credentialsProblem(e, "token to refresh"))
		return
	}
	if err := s.refreshNow(r.Context(), e); err != nil {
		writeProblem(w, r, s.engineProblem(r, err))
		return
	}
	writeJSON(w, http.StatusOK, s.viewConnection(r.Context(), e))
}

// refreshNow refreshes e's token through the engine's refresh protocol,
// counts the outcome and records a connection that needs authorizing again.
func (s *Server) refreshNow(ctx context.Context, e *engine) error {
	src := e.api.Source()
	if src == nil {
		return errNoOAuth
	}
	_, err := src.Refresh(ctx)
	var nr *connector.NeedsReauthError
	switch {
	case err == nil:
		s.metrics.refreshes.WithLabelValues("ok").Inc()
		s.noteRefresh(ctx, e.conn.Tenant, e.conn.ID, state.RefreshOK, "")
	case errors.As(err, &nr):
		s.metrics.refreshes.WithLabelValues("needs_reauthorization").Inc()
		s.noteReauth(ctx, e.conn.Tenant, e.conn.ID, nr.Reason)
	default:
		s.metrics.refreshes.WithLabelValues("error").Inc()
		s.noteRefresh(ctx, e.conn.Tenant, e.conn.ID, state.RefreshFailed, err.Error())
	}
	return err
}

// token hands an internal service the connection's access token, valid for
// at least the server's margin. Never the refresh token.
func (s *Server) token(w http.ResponseWriter, r *http.Request, p state.Principal) {
	e := s.connection(w, r, p)
	if e == nil {
		return
	}
	src := e.api.Source()
	if src == nil || e.def.Auth.OAuth == nil {
		// A session login's token is the server's own session with the
		// provider, made from the connection's password: not handed out.
		writeProblem(w, r, credentialsProblem(e, "access token to hand out"))
		return
	}
	t, err := src.TokenContext(r.Context())
	if err != nil {
		writeProblem(w, r, s.engineProblem(r, err)) // records a needs_reauthorization transition
		return
	}
	if t.DPoPKey != "" && strings.EqualFold(t.Type(), "DPoP") {
		// The provider accepts the token only with a proof signed by the
		// key kept with it, which never leaves the server: handed out
		// alone it would be refused at every call.
		writeProblem(w, r, problem(http.StatusConflict, "dpop-bound-token", "",
			"connection %s's access token is bound to a DPoP key (definition %s, auth.oauth.dpop) that the server keeps and signs with; the token alone is refused by the provider, so it is not handed out: send requests through POST /v1/connections/%s/proxy/… or actions",
			e.conn.ID, e.def.Name, e.conn.ID))
		return
	}
	out := map[string]any{"access_token": t.AccessToken, "token_type": t.Type()}
	if !t.Expiry.IsZero() {
		out["expires_at"] = t.Expiry.UTC()
	}
	writeJSON(w, http.StatusOK, out)
}
