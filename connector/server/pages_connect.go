package server

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/server/state"
	"github.com/connector-engine/connector/definitions"
)

// Connect sessions: the platform asks for a link (POST /v1/connect-sessions)
// and sends its user there; the page shows the definition's fields and
// environments, checks them with the engine's rules, creates the connection
// and starts its authorization; the callback ends on a result page that
// returns the user to the platform.

// ConnectPath is where connect links point: ConnectPath + token.
const ConnectPath = "/connect/"

func (s *Server) connectRoutes() {
	s.handle("POST /v1/connect-sessions", access{state.ScopeConnectionsWrite}, s.createConnectSession)
	s.pageRoute("GET "+ConnectPath+"{token}", s.connectPage)
	s.pageRoute("POST "+ConnectPath+"{token}", s.connectSubmit)
}

type connectSessionRequest struct {
	OAuthClients []string `json:"oauth_clients"`
	Definitions  []string `json:"definitions"`
	Connection   string   `json:"connection"`
	EndUser      string   `json:"end_user"`
	ReturnTo     string   `json:"return_to"`
	Environment  string   `json:"environment"`
}

const (
	maxConnectChoices = 50
	maxEndUser        = 256
)

func (s *Server) createConnectSession(w http.ResponseWriter, r *http.Request, p state.Principal) {
	var req connectSessionRequest
	if prob := decodeJSON(w, r, maxJSONBody, &req); prob != nil {
		writeProblem(w, r, prob)
		return
	}
	cs, errs := s.checkConnectRequest(r.Context(), p.Tenant, req)
	if len(errs) > 0 {
		writeProblem(w, r, invalid(errs))
		return
	}
	cs, token, err := s.cfg.State.CreateConnectSession(r.Context(), cs)
	if err != nil {
		writeProblem(w, r, s.stateProblem(r, err, "", "connect session"))
		return
	}
	// A definition without OAuth is offered through its implicit client,
	// which the API never shows: the answer names the definition instead.
	clients, creds := []string{}, []string{}
	for _, id := range cs.Clients {
		if cl, err := s.cfg.State.OfferedClient(r.Context(), p.Tenant, id); err == nil && cl.Implicit {
			creds = append(creds, cl.Definition)
		} else {
			clients = append(clients, id)
		}
	}
	out := map[string]any{
		"id": cs.ID, "url": s.connectURL(token), "expires_at": cs.Expires.UTC(), "oauth_clients": clients,
	}
	if len(creds) > 0 {
		out["credentials_definitions"] = creds
	}
	if cs.Connection != "" {
		out["connection"] = cs.Connection
	}
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) connectURL(token string) string {
	return strings.TrimSuffix(s.cfg.PublicURL, "/") + ConnectPath + token
}

// checkConnectRequest resolves a connect-session request to the tenant's
// OAuth clients, naming the member that is wrong. Another tenant's client
// or connection is unknown, like one that does not exist.
func (s *Server) checkConnectRequest(ctx context.Context, tenant string, req connectSessionRequest) (state.ConnectSession, []FieldProblem) {
	var errs []FieldProblem
	add := func(field, detail string) { errs = append(errs, FieldProblem{Field: field, Detail: detail}) }
	cs := state.ConnectSession{Tenant: tenant, EndUser: req.EndUser, ReturnTo: req.ReturnTo, Environment: req.Environment, Expires: s.cfg.State.Now().Add(s.cfg.ConnectLifetime)}
	if len(req.EndUser) > maxEndUser || strings.ContainsAny(req.EndUser, "\x00\r\n") {
		add("end_user", "end_user must be at most 256 characters on one line: the platform's tag for its user")
	}
	if req.ReturnTo != "" && !s.returnAllowed(req.ReturnTo) {
		add("return_to", "return_to "+quote(req.ReturnTo)+" is not in the server's allow-list (connector serve --return-to)")
	}
	if len(req.OAuthClients)+len(req.Definitions) > maxConnectChoices {
		add("oauth_clients", "a connect session offers at most 50 OAuth clients and definitions")
		return cs, errs
	}
	var defs []*definitions.Definition
	addClient := func(field string, cl state.Client) {
		def, err := s.cfg.Definitions.Lookup(cl.Definition)
		switch {
		case err != nil:
			add(field, "OAuth client "+cl.ID+": "+err.Error())
		case def.GrantType() != definitions.GrantAuthorizationCode && !cl.Implicit:
			add(field, "OAuth client "+cl.ID+" uses definition "+def.Name+", whose "+string(def.GrantType())+" grant has no user to send to a connect page")
		case !slices.Contains(cs.Clients, cl.ID):
			cs.Clients = append(cs.Clients, cl.ID)
			defs = append(defs, def)
		}
	}
	switch {
	case req.Connection != "":
		if len(req.OAuthClients)+len(req.Definitions) > 0 {
			add("connection", "a re-authorization link (connection) takes its OAuth client from the connection; leave out oauth_clients and definitions")
			break
		}
		c, cl, err := s.cfg.State.ConnectionAndClient(ctx, tenant, req.Connection)
		if err != nil {
			add("connection", "no connection "+quote(req.Connection))
			break
		}
		if cl.Implicit {
			add("connection", "connection "+c.ID+" authenticates with its own credentials: there is nothing to authorize again; replace them with PATCH /v1/connections/"+c.ID+"/fields")
			break
		}
		cs.Connection = c.ID
		addClient("connection", cl)
		if req.Environment != "" && !strings.EqualFold(req.Environment, c.Environment) {
			add("environment", "a re-authorization keeps the connection's environment "+quote(c.Environment))
		}
		cs.Environment = c.Environment
		if def, err := s.cfg.Definitions.Lookup(cl.Definition); err == nil {
			if e, err := def.Environment(c.Environment); err == nil {
				cs.Environment = e.Name // "" is the definition's default: fixed now
			}
		}
	case len(req.OAuthClients)+len(req.Definitions) == 0:
		add("oauth_clients", "name the OAuth clients (oauth_clients) or definitions (definitions) the user may connect, or the connection to authorize again (connection)")
	}
	for i, id := range req.OAuthClients {
		cl, err := s.cfg.State.Client(ctx, tenant, id)
		if err != nil {
			add("oauth_clients", "oauth_clients["+strconv.Itoa(i)+"]: no OAuth client "+quote(id))
			continue
		}
		addClient("oauth_clients", cl)
	}
	if len(req.Definitions) > 0 {
		all, err := s.cfg.State.Clients(ctx, tenant)
		if err != nil {
			add("definitions", "the OAuth clients could not be read; try again")
		}
		for i, name := range req.Definitions {
			if done, msg := s.offerCredentials(ctx, tenant, name, addClient); done { // pages_connect_credentials.go
				if msg != "" {
					add("definitions", "definitions["+strconv.Itoa(i)+"]: "+msg)
				}
				continue
			}
			found := false
			for _, cl := range all {
				if cl.Definition == name {
					found = true
					addClient("definitions", cl)
				}
			}
			if !found {
				add("definitions", "definitions["+strconv.Itoa(i)+"]: no OAuth client of yours uses definition "+quote(name)+" (POST /v1/oauth-clients first)")
			}
		}
	}
	if req.Environment != "" && req.Connection == "" {
		for _, d := range defs {
			if _, err := d.Environment(req.Environment); err != nil {
				add("environment", err.Error())
				break
			}
		}
	}
	return cs, errs
}

// connectSession reads the link's session, or writes the page saying why
// it cannot be used.
func (s *Server) connectSession(w http.ResponseWriter, r *http.Request) (state.ConnectSession, bool) {
	setLogPath(r, ConnectPath+"{token}") // the token is a secret: never logged
	cs, err := s.cfg.State.ConnectSessionByToken(r.Context(), r.PathValue("token"))
	if cs.Tenant != "" {
		setTenant(r, cs.Tenant)
	}
	switch {
	case err == nil:
		return cs, true
	case errors.Is(err, state.ErrConnectUnknown):
		s.message(w, r, http.StatusNotFound, messagePage{Heading: "This link is not valid", Paragraphs: []string{
			"This connect link is not one this service issued. Check that the whole link was copied, or go back to the application and start connecting again.",
		}})
	case errors.Is(err, state.ErrConnectExpired):
		s.message(w, r, http.StatusGone, messagePage{Heading: "This link has expired", Paragraphs: []string{
			"Connect links work for a short time only, and this one has run out. Nothing was connected.",
			"Go back to the application and start connecting again to get a new link.",
		}, Link: s.returnLink(cs.ReturnTo, cs.Connection, "expired"), LinkText: "Return to the application"})
	case errors.Is(err, state.ErrConnectUsed):
		s.message(w, r, http.StatusGone, messagePage{Heading: "This link was already used", Paragraphs: []string{
			"Each connect link works once, and this one has been used. To connect again, go back to the application and start over.",
		}, Link: s.returnLink(cs.ReturnTo, cs.Connection, "used"), LinkText: "Return to the application"})
	default:
		s.log.ErrorContext(r.Context(), "connect session", "error", err)
		s.message(w, r, http.StatusServiceUnavailable, messagePage{Heading: "Please try again", Paragraphs: []string{
			"The service could not read this link just now. Wait a moment and reload the page.",
		}})
	}
	return cs, false
}

// returnLink is where the result page sends the user back: the session's
// allow-listed return_to with the connection and status in the query.
func (s *Server) returnLink(returnTo, conn, status string) string {
	if returnTo == "" || !s.returnAllowed(returnTo) {
		return ""
	}
	u, err := url.Parse(returnTo)
	if err != nil {
		return ""
	}
	q := u.Query()
	if conn != "" {
		q.Set("connection", conn)
	}
	q.Set("status", status)
	u.RawQuery = q.Encode()
	return u.String()
}

type connectChoice struct{ ID, Title, Description string }

type connectChoosePage struct {
	pageBase
	Action  string
	Choices []connectChoice
}

type connectField struct {
	ID, Name, Label, Help, TypeHint string
	Kind, InputMode, Pattern        string
	Value, Error                    string
	Required                        bool
}

type connectEnv struct {
	Name, Title string
	Checked     bool
}

type connectProblem struct{ Target, Label, Message string }

type connectFormPage struct {
	pageBase
	Action, Client, Service, Description, SignInHost string
	Reconnect                                        bool
	Credentials                                      bool // a definition without OAuth: the form takes its credentials
	Fields                                           []connectField
	Environments                                     []connectEnv
	FixedEnvironment, EnvError                       string
	Errors                                           []connectProblem
}

// connectOffer is one OAuth client a link offers, with its definition.
type connectOffer struct {
	client state.Client
	def    *definitions.Definition
}

// offers loads the link's OAuth clients that still exist, in its order.
func (s *Server) offers(ctx context.Context, cs state.ConnectSession) []connectOffer {
	var out []connectOffer
	for _, id := range cs.Clients {
		cl, err := s.cfg.State.OfferedClient(ctx, cs.Tenant, id) // an OAuth client, or a definition without OAuth's implicit one
		if err != nil {
			continue
		}
		def, err := s.cfg.Definitions.Lookup(cl.Definition)
		if err != nil {
			continue
		}
		out = append(out, connectOffer{cl, def})
	}
	return out
}

func (s *Server) connectPage(w http.ResponseWriter, r *http.Request) {
	cs, ok := s.connectSession(w, r)
	if !ok {
		return
	}
	offers := s.offers(r.Context(), cs)
	if len(offers) == 0 {
		s.gone(w, r, cs)
		return
	}
	pick := r.URL.Query().Get("client")
	if pick == "" && len(offers) > 1 {
		p := connectChoosePage{pageBase: pageBase{Title: "Connect an account", Asset: assetPath}, Action: ConnectPath + r.PathValue("token")}
		for _, o := range offers {
			p.Choices = append(p.Choices, connectChoice{ID: o.client.ID, Title: o.def.Title, Description: o.def.Description})
		}
		s.render(w, r, http.StatusOK, "connect_choose", p)
		return
	}
	o, found := offers[0], pick == ""
	for _, c := range offers {
		if c.client.ID == pick {
			o, found = c, true
		}
	}
	if !found {
		s.message(w, r, http.StatusNotFound, messagePage{Heading: "This service is not offered", Paragraphs: []string{"This link does not offer the service chosen. Go back and choose one of those listed."}})
		return
	}
	values := map[string]string{}
	for _, f := range o.def.Fields {
		if f.HasDefault && !f.Secret {
			values[f.Name] = f.Default
		}
	}
	s.connectForm(w, r, http.StatusOK, cs, o, values, cs.Environment, nil)
}

// gone is the page of a link whose services (or connection) were deleted.
func (s *Server) gone(w http.ResponseWriter, r *http.Request, cs state.ConnectSession) {
	s.message(w, r, http.StatusGone, messagePage{Heading: "This link is no longer available", Paragraphs: []string{
		"What this link was for has been removed by the application's administrator. Go back to the application and start connecting again.",
	}, Link: s.returnLink(cs.ReturnTo, "", "unavailable"), LinkText: "Return to the application"})
}

// connectForm renders the form of offer o with the values typed and the
// problems found (FieldProblems of checkConnectionInput).
func (s *Server) connectForm(w http.ResponseWriter, r *http.Request, code int, cs state.ConnectSession, o connectOffer, values map[string]string, env string, probs []FieldProblem) {
	def := o.def
	p := connectFormPage{
		pageBase: pageBase{Title: "Connect your account: " + def.Title, Asset: assetPath},
		Action:   ConnectPath + r.PathValue("token"), Client: o.client.ID, Service: def.Title, Description: def.Description,
		Reconnect: cs.Connection != "", Credentials: o.client.Implicit,
	}
	if len(probs) > 0 {
		p.Title = "Error: " + p.Title
	}
	byField := map[string][]string{}
	for _, pr := range probs {
		byField[pr.Field] = append(byField[pr.Field], pr.Detail)
	}
	if !p.Reconnect {
		for _, f := range def.Fields {
			cf := connectField{
				ID: "field-" + f.Name, Name: "field." + f.Name, Label: f.Title, Help: f.Help, Required: f.Required && !f.HasDefault,
				Kind: "text", Value: values[f.Name], Error: strings.Join(byField["fields."+f.Name], "; "),
			}
			if cf.Label == "" {
				cf.Label = f.Name
			}
			if f.Pattern != nil {
				cf.Pattern = strings.TrimSuffix(strings.TrimPrefix(f.Pattern.String(), "^(?:"), ")$")
			}
			switch {
			case f.Secret:
				cf.Kind, cf.Value, cf.TypeHint = "password", "", "Kept secret."
			case f.Type == "integer":
				cf.InputMode, cf.TypeHint = "numeric", "A whole number."
			case f.Type == "boolean":
				cf.Kind = "checkbox"
			case f.Type == "url":
				cf.Kind, cf.TypeHint = "url", "A web address such as https://example.com."
			case f.Type == "hostname" || f.Type == "host_label":
				cf.TypeHint = "A host name, without https://."
			}
			p.Fields = append(p.Fields, cf)
			for _, msg := range byField["fields."+f.Name] {
				p.Errors = append(p.Errors, connectProblem{Target: cf.ID, Label: cf.Label, Message: msg})
			}
		}
	}
	var envNames []string
	if cs.Environment != "" {
		e, err := def.Environment(cs.Environment)
		if err == nil {
			p.FixedEnvironment = envTitle(e)
			envNames = []string{e.Name}
		}
	} else {
		chosen, _ := def.Environment(env)
		if chosen == nil {
			chosen, _ = def.Environment("")
		}
		if len(def.Environments) > 1 {
			for i := range def.Environments {
				e := &def.Environments[i]
				p.Environments = append(p.Environments, connectEnv{Name: e.Name, Title: envTitle(e), Checked: chosen != nil && chosen.Name == e.Name})
			}
		}
		for _, e := range def.Environments {
			envNames = append(envNames, e.Name)
		}
	}
	if msgs := byField["environment"]; len(msgs) > 0 {
		p.EnvError = strings.Join(msgs, "; ")
		p.Errors = append(p.Errors, connectProblem{Target: "env-" + firstEnv(p.Environments), Label: "Environment", Message: p.EnvError})
	}
	for _, msg := range byField["fields"] {
		p.Errors = append(p.Errors, connectProblem{Message: msg})
	}
	var origins []string // a credentials form posts here and goes nowhere else
	if !o.client.Implicit {
		origins = s.authOrigins(def, o.client, envNames)
	}
	if len(origins) == 1 {
		p.SignInHost = strings.TrimPrefix(strings.TrimPrefix(origins[0], "https://"), "http://")
	}
	w.Header().Set("Content-Security-Policy", pageCSP(origins...))
	s.render(w, r, code, "connect_form", p)
}

func firstEnv(envs []connectEnv) string {
	for _, e := range envs {
		if e.Checked {
			return e.Name
		}
	}
	if len(envs) > 0 {
		return envs[0].Name
	}
	return ""
}

func envTitle(e *definitions.Environment) string {
	if e.Title != "" {
		return e.Title
	}
	return e.Name
}

// authOrigins lists the origins the connect form may be redirected to (the
// authorization endpoint in each environment offered), for the page's
// form-action. An endpoint whose host depends on what the user types is
// allowed as any https origin.
func (s *Server) authOrigins(def *definitions.Definition, cl state.Client, envs []string) []string {
	o := def.Auth.OAuth
	if o == nil {
		return nil
	}
	t := o.InitiateURI
	if o.Version == definitions.V1 {
		t = o.AuthorizeURI
	}
	if t == nil {
		return nil
	}
	var out []string
	addURL := func(raw string) bool {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || strings.ContainsAny(u.Host, "${}") {
			return false
		}
		if origin := u.Scheme + "://" + u.Host; !slices.Contains(out, origin) {
			out = append(out, origin)
		}
		return true
	}
	usesField := func(t interface{ Uses(int) bool }) bool {
		for _, f := range def.Fields {
			if t.Uses(f.Var) {
				return true
			}
		}
		return false
	}
	src := t.Source()
	for _, name := range envs {
		e, err := def.Environment(name)
		if err != nil {
			continue
		}
		ok := false
		switch {
		case len(src) > 11 && strings.EqualFold(src[:11], "${LoginUrl}"):
			switch {
			case cl.LoginURL != "":
				ok = addURL(cl.LoginURL)
			case e.LoginURL != nil && !usesField(e.LoginURL):
				login, err := e.LoginURL.Expand(make([]string, def.Vars().Len()))
				ok = err == nil && addURL(login)
			}
		case len(src) > 10 && strings.EqualFold(src[:10], "${BaseUrl}"):
			switch {
			case cl.BaseURL != "":
				ok = addURL(cl.BaseURL)
			case !usesField(e.BaseURL):
				base, err := e.BaseURL.Expand(make([]string, def.Vars().Len()))
				ok = err == nil && addURL(base)
			}
		case !strings.HasPrefix(src, "${"):
			ok = addURL(src)
		}
		if !ok && !slices.Contains(out, "https:") {
			out = append(out, "https:")
		}
	}
	return out
}

// maxConnectForm caps the connect form's body.
const maxConnectForm = 64 << 10

func (s *Server) connectSubmit(w http.ResponseWriter, r *http.Request) {
	cs, ok := s.connectSession(w, r)
	if !ok {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxConnectForm)
	if err := r.ParseForm(); err != nil {
		s.message(w, r, http.StatusBadRequest, messagePage{Heading: "The form could not be read", Paragraphs: []string{"Go back, check what you typed and send the form again."}})
		return
	}
	offers := s.offers(r.Context(), cs)
	var o connectOffer
	found := false
	for _, c := range offers {
		if c.client.ID == r.PostForm.Get("client") || (len(offers) == 1 && r.PostForm.Get("client") == "") {
			o, found = c, true
		}
	}
	if !found {
		if len(offers) == 0 {
			s.gone(w, r, cs)
			return
		}
		s.message(w, r, http.StatusBadRequest, messagePage{Heading: "This service is not offered", Paragraphs: []string{"The form names a service this link does not offer. Go back and choose one of those listed."}})
		return
	}
	ctx := r.Context()
	var e *engine
	created := false
	if cs.Connection != "" {
		var err error
		if e, err = s.load(ctx, cs.Tenant, cs.Connection); err != nil {
			s.gone(w, r, cs)
			return
		}
	} else {
		env := cs.Environment
		if env == "" {
			env = r.PostForm.Get("environment")
		}
		typed, fields := map[string]string{}, map[string]string{}
		for _, f := range o.def.Fields {
			v := r.PostForm.Get("field." + f.Name)
			if !f.Secret {
				v = strings.TrimSpace(v)
			}
			typed[f.Name] = v
			if v != "" {
				fields[f.Name] = v
			}
		}
		if probs := s.checkConnectionInput(o.def, o.client, env, fields); len(probs) > 0 {
			s.connectForm(w, r, http.StatusUnprocessableEntity, cs, o, typed, env, probs)
			return
		}
		if e2, _ := o.def.Environment(env); e2 != nil {
			env = e2.Name
		}
		if o.client.Implicit {
			s.connectCredentials(w, r, cs, o, env, typed, fields) // pages_connect_credentials.go
			return
		}
		c, err := s.cfg.State.CreateConnection(ctx, state.Connection{Tenant: cs.Tenant, Client: o.client.ID, Environment: env, Fields: fields})
		if err != nil {
			s.pageUnavailable(w, r, err)
			return
		}
		created = true
		if e, err = s.load(ctx, cs.Tenant, c.ID); err != nil {
			s.discard(ctx, cs.Tenant, c.ID)
			s.pageUnavailable(w, r, err)
			return
		}
	}
	setConnection(r, e.conn.ID)
	authURL, err := s.startConnect(ctx, cs, e)
	if err != nil {
		if created {
			s.discard(ctx, cs.Tenant, e.conn.ID)
		}
		if errors.Is(err, state.ErrConnectUsed) || errors.Is(err, state.ErrConnectExpired) || errors.Is(err, state.ErrConnectUnknown) {
			s.connectSession(w, r) // says which
			return
		}
		s.pageUnavailable(w, r, err)
		return
	}
	w.Header().Set("Content-Security-Policy", pageCSP(s.authOrigins(o.def, o.client, []string{e.conn.Environment})...))
	http.Redirect(w, r, authURL, http.StatusSeeOther)
}

// startConnect starts the authorization of e for the link cs and marks the
// link used by it, all or nothing: a link that lost a race to another
// submission starts nothing.
func (s *Server) startConnect(ctx context.Context, cs state.ConnectSession, e *engine) (string, error) {
	f, err := e.flow()
	if err != nil {
		return "", err
	}
	a, err := f.AuthCodeURLContext(ctx) // a pushed authorization request (par_uri) is sent here
	if err != nil {
		return "", err
	}
	sess, err := s.cfg.State.CreateSession(ctx, state.Session{Tenant: cs.Tenant, Connection: e.conn.ID, Verifier: a.Verifier(), Expires: earliest(a.Expires, s.cfg.State.Now().Add(s.cfg.SessionLifetime)), LinkExpires: a.URLExpires, DPoPKey: a.DPoPKey()}, a.State)
	if err != nil {
		return "", err
	}
	if err := s.cfg.State.UseConnectSession(ctx, cs.Tenant, cs.ID, e.conn.ID, sess.ID); err != nil {
		return "", err
	}
	return a.URL, nil
}

// discard deletes a connection the connect page created but could not
// authorize, so that a failed submission leaves nothing behind.
func (s *Server) discard(ctx context.Context, tenant, id string) {
	_ = s.cfg.State.DeleteConnection(context.WithoutCancel(ctx), tenant, id)
	s.forget(id)
}

func (s *Server) pageUnavailable(w http.ResponseWriter, r *http.Request, err error) {
	s.log.ErrorContext(r.Context(), "connect page", "error", err)
	s.message(w, r, http.StatusServiceUnavailable, messagePage{Heading: "Please try again", Paragraphs: []string{
		"The service could not start connecting just now. Nothing was connected. Wait a moment and send the form again.",
	}})
}

// connectResult shows the result page of an authorization a connect link
// started, and reports whether it did (false: the API started it).
func (s *Server) connectResult(w http.ResponseWriter, r *http.Request, sess state.Session, conn string, err error) bool {
	cs, cerr := s.cfg.State.ConnectSessionForAuth(r.Context(), sess.Tenant, sess.ID)
	if cerr != nil {
		return false
	}
	env, service := "", "the provider"
	if c, cl, cerr := s.cfg.State.ConnectionAndClient(r.Context(), sess.Tenant, sess.Connection); cerr == nil {
		env = c.Environment
		if def, ok := s.cfg.Definitions.Get(cl.Definition); ok {
			service = def.Title
			if e, err := def.Environment(c.Environment); err == nil {
				env = envTitle(e)
			}
		}
		// A connection this link created and that was never authorized is
		// removed when its authorization fails: nothing is left behind.
		if err != nil && c.Status == state.StatusPending && cs.Connection == c.ID && !c.Created.Before(cs.Created) {
			s.discard(r.Context(), sess.Tenant, c.ID)
			conn = ""
		}
	}
	out := connectOutcome(err, service, env)
	out.page.Link = s.returnLink(cs.ReturnTo, conn, out.status)
	if out.page.Link != "" {
		out.page.LinkText = "Return to the application"
	} else {
		out.page.Paragraphs = append(out.page.Paragraphs, "You can close this window.")
	}
	s.message(w, r, out.code, out.page)
	return true
}

type outcome struct {
	status string // the return_to's status parameter
	code   int
	page   messagePage
}

// connectOutcome says what happened to an authorization in words a user
// understands: connected, denied, the wrong environment, the provider's
// error, expired.
func connectOutcome(err error, service, env string) outcome {
	var ce *connector.CallbackError
	var te *connector.TokenError
	var re *connector.RequestError
	wrongEnv := outcome{"wrong_environment", http.StatusConflict, messagePage{Heading: "Not connected: wrong environment?", Paragraphs: []string{
		service + " did not accept this application in the " + env + " environment, so nothing was connected. This usually means the wrong environment was chosen: an account of a sandbox cannot sign in to production, nor the other way round.",
		"Go back to the application and connect again, choosing the environment your account belongs to. If it keeps happening, the application's administrator should check its OAuth client for this environment.",
	}}}
	switch {
	case err == nil:
		return outcome{"connected", http.StatusOK, messagePage{Heading: "Connected", Good: true, Paragraphs: []string{
			"Your " + service + " account is connected" + inEnv(env) + ". The application can now use it on your behalf.",
		}}}
	case errors.Is(err, state.ErrSessionExpired), errors.Is(err, connector.ErrStateMismatch):
		return outcome{"expired", http.StatusGone, messagePage{Heading: "Not connected: the sign-in took too long", Paragraphs: []string{
			"The approval was not completed in time, so it was cancelled and nothing was connected.",
			"Go back to the application and start connecting again.",
		}}}
	case errors.As(err, &ce) && ce.Code == "access_denied":
		return outcome{"denied", http.StatusOK, messagePage{Heading: "Not connected: access was declined", Paragraphs: []string{
			"Access was not allowed at " + service + ", so nothing was connected and nothing was shared.",
			"If that was a mistake, go back to the application and connect again, then choose Allow.",
		}}}
	case errors.As(err, &ce) && !ce.URLExpired.IsZero():
		// A pushed request's link lives a minute or so at the provider.
		return outcome{"expired", http.StatusGone, messagePage{Heading: "Not connected: the approval link expired", Paragraphs: []string{
			service + " refused the approval because its link had expired (" + ce.Code + describe(ce.Description) + "); nothing was connected.",
			"Go back to the application and start connecting again, then approve right away.",
		}}}
	case errors.As(err, &ce) && (ce.Code == "invalid_client" || ce.Code == "unauthorized_client"),
		errors.As(err, &te) && (te.Code == "invalid_client" || te.Code == "unauthorized_client"):
		return wrongEnv
	case errors.As(err, &ce):
		return outcome{"provider_error", http.StatusBadGateway, messagePage{Heading: "Not connected: " + service + " reported a problem", Paragraphs: []string{
			service + " could not complete the approval (" + ce.Code + describe(ce.Description) + "), so nothing was connected.",
			"Try again in a few minutes from the application. If it keeps happening, tell the application's administrator what this page says.",
		}}}
	case errors.As(err, &te):
		return outcome{"provider_error", http.StatusBadGateway, messagePage{Heading: "Not connected: " + service + " reported a problem", Paragraphs: []string{
			service + " refused to complete the connection (" + te.Code + describe(te.Description) + "), so nothing was connected.",
			"Go back to the application and connect again. If it keeps happening, tell the application's administrator what this page says.",
		}}}
	case errors.As(err, &re):
		return outcome{"provider_error", http.StatusBadGateway, messagePage{Heading: "Not connected: " + service + " could not be reached", Paragraphs: []string{
			"The connection could not be completed because " + service + " did not answer. Nothing was connected.",
			"Try again in a few minutes from the application.",
		}}}
	}
	return outcome{"error", http.StatusBadGateway, messagePage{Heading: "Not connected", Paragraphs: []string{
		"The connection could not be completed: " + err.Error(),
		"Go back to the application and connect again. If it keeps happening, tell the application's administrator what this page says.",
	}}}
}

func inEnv(env string) string {
	if env == "" {
		return ""
	}
	return ", in the environment " + env
}

func describe(d string) string {
	if d = strings.TrimSpace(d); d == "" {
		return ""
	}
	if len(d) > 300 {
		d = d[:300] + "…"
	}
	return ": " + d
}
