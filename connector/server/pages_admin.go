package server

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/connector-engine/connector/connector/server/state"
	"github.com/connector-engine/connector/connector/store"
)

// The admin pages: an admin API key is exchanged for a session cookie
// (random, stored as SHA-256, expiring; HttpOnly, SameSite=Strict, Path
// /admin, Secure unless the public URL is loopback http). Every form
// carries the session's CSRF token (a synchronizer token, compared in
// constant time); the sign-in form, before there is a session, carries a
// double-submit token bound to a cookie of its own. Everything is read and
// done as the session's tenant, through the same engine paths as the API.

const (
	adminCookie      = "connector_admin"
	adminLoginCookie = "connector_admin_login"
	maxAdminForm     = 16 << 10
)

func (s *Server) adminRoutes() {
	s.pageRoute("GET /admin", s.adminHome)
	s.pageRoute("POST /admin/login", s.adminLogin)
	s.pageRoute("POST /admin/logout", s.adminLogout)
	s.pageRoute("GET /admin/connections/{id}", s.adminConnection)
	s.pageRoute("POST /admin/connections/{id}/{action}", s.adminAction)
	s.pageRoute("GET /admin/dead-letters", s.adminDeadLetters)
	s.pageRoute("POST /admin/dead-letters/{id}/replay", s.adminReplay)
}

func (s *Server) cookie(name, value string, expires time.Time) *http.Cookie {
	c := &http.Cookie{Name: name, Value: value, Path: "/admin", HttpOnly: true, Secure: s.secureCookies(), SameSite: http.SameSiteStrictMode}
	if expires.IsZero() {
		c.MaxAge = -1
	} else {
		c.Expires = expires.UTC()
		c.MaxAge = max(1, int(time.Until(expires).Seconds()))
	}
	return c
}

// adminSession returns the request's live admin session, if any.
func (s *Server) adminSession(r *http.Request) (state.AdminSession, bool) {
	c, err := r.Cookie(adminCookie)
	if err != nil {
		return state.AdminSession{}, false
	}
	a, err := s.cfg.State.AdminSessionByToken(r.Context(), c.Value)
	if err != nil {
		if !errors.Is(err, state.ErrUnauthorized) {
			s.log.ErrorContext(r.Context(), "admin session", "error", err)
		}
		return state.AdminSession{}, false
	}
	setTenant(r, a.Tenant)
	return a, true
}

func bar(a state.AdminSession) *adminBar {
	return &adminBar{Tenant: a.Tenant, CSRF: a.CSRF, DeadLetters: true}
}

// crossSite reports a request the browser says came from another site.
func crossSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return false
	}
	return true
}

// adminForm checks a POST of the admin pages: a live session, a form of
// bounded size, and the session's CSRF token. On failure it writes the
// page (401 or 403) and nothing is done.
func (s *Server) adminForm(w http.ResponseWriter, r *http.Request) (state.AdminSession, bool) {
	a, ok := s.adminSession(r)
	if !ok {
		s.message(w, r, http.StatusUnauthorized, messagePage{Heading: "Please sign in again", Paragraphs: []string{"Your admin session has ended, so nothing was done."}, Link: "/admin", LinkText: "Sign in"})
		return a, false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxAdminForm)
	err := r.ParseForm()
	if err != nil || crossSite(r) || subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(a.CSRF)) != 1 {
		s.csrfRefused(w, r, &a)
		return a, false
	}
	return a, true
}

func (s *Server) csrfRefused(w http.ResponseWriter, r *http.Request, a *state.AdminSession) {
	m := messagePage{Heading: "The form was refused", Paragraphs: []string{
		"The form did not carry this session's security token (it may have come from another site, or from a page open since before you signed in again), so nothing was done.",
		"Go back to the admin page, reload it and try again.",
	}, Link: "/admin", LinkText: "Back to the admin page"}
	if a != nil {
		m.Admin = bar(*a)
	}
	s.message(w, r, http.StatusForbidden, m)
}

type adminLoginPage struct {
	pageBase
	CSRF, Error, Notice, Lifetime string
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request, code int, msg, notice string) {
	token := randomString()
	http.SetCookie(w, s.cookie(adminLoginCookie, token, time.Now().Add(time.Hour)))
	p := adminLoginPage{pageBase: pageBase{Title: "Sign in: connections admin", Asset: assetPath}, CSRF: token, Error: msg, Notice: notice, Lifetime: s.cfg.AdminLifetime.String()}
	if msg != "" {
		p.Title = "Error: " + p.Title
	}
	s.render(w, r, code, "admin_login", p)
}

func randomString() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *Server) adminLogin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxAdminForm)
	c, cerr := r.Cookie(adminLoginCookie)
	if err := r.ParseForm(); err != nil || cerr != nil || crossSite(r) || c.Value == "" ||
		subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(c.Value)) != 1 {
		s.csrfRefused(w, r, nil)
		return
	}
	key := strings.TrimSpace(r.PostForm.Get("api_key"))
	p, err := s.cfg.State.Authenticate(r.Context(), key)
	switch {
	case key == "":
		s.loginPage(w, r, http.StatusUnprocessableEntity, "Enter an admin API key.", "")
		return
	case errors.Is(err, state.ErrUnauthorized):
		s.loginPage(w, r, http.StatusUnauthorized, "This API key is not valid. Check that it was copied whole.", "")
		return
	case err != nil:
		s.pageUnavailable(w, r, err)
		return
	case !p.Can(state.ScopeAdmin):
		s.loginPage(w, r, http.StatusForbidden, "This API key lacks the admin scope; sign in with a key created with --scope admin.", "")
		return
	}
	setTenant(r, p.Tenant)
	a, token, err := s.cfg.State.CreateAdminSession(r.Context(), p, s.cfg.AdminLifetime)
	if err != nil {
		s.pageUnavailable(w, r, err)
		return
	}
	http.SetCookie(w, s.cookie(adminCookie, token, a.Expires))
	http.SetCookie(w, s.cookie(adminLoginCookie, "", time.Time{}))
	http.Redirect(w, r, "/admin", http.StatusSeeOther)
}

func (s *Server) adminLogout(w http.ResponseWriter, r *http.Request) {
	a, ok := s.adminForm(w, r)
	if !ok {
		return
	}
	if err := s.cfg.State.DeleteAdminSession(r.Context(), a.Tenant, a.ID); err != nil {
		s.pageUnavailable(w, r, err)
		return
	}
	http.SetCookie(w, s.cookie(adminCookie, "", time.Time{}))
	http.Redirect(w, r, "/admin?done=signed_out", http.StatusSeeOther)
}

// notices are the outcomes a redirect names (?done=...): fixed sentences,
// never text from the query.
var notices = map[string]string{
	"refreshed":  "The connection was refreshed.",
	"revoked":    "Access was revoked at the provider and the tokens were forgotten. The connection needs re-authorization.",
	"deleted":    "The connection was deleted.",
	"replayed":   "The event was queued for delivery again.",
	"signed_out": "You are signed out.",
}

type adminDefinition struct {
	Name, Title, Scheme, Environments string
	Warnings                          []string
}

type adminConnRow struct {
	ID, Definition, Environment, Status, Reason string
	Expires, Obtained                           time.Time
}

type adminHomePage struct {
	pageBase
	Notice      string
	Definitions []adminDefinition
	Clients     []clientView
	Connections []adminConnRow
	Next        string
}

func (s *Server) adminHome(w http.ResponseWriter, r *http.Request) {
	a, ok := s.adminSession(r)
	if !ok {
		s.loginPage(w, r, http.StatusOK, "", notices[r.URL.Query().Get("done")])
		return
	}
	ctx := r.Context()
	p := adminHomePage{pageBase: pageBase{Title: "Connections admin: " + a.Tenant, Wide: true, Asset: assetPath, Admin: bar(a)}, Notice: notices[r.URL.Query().Get("done")]}
	page, next, err := s.cfg.State.Connections(ctx, a.Tenant, state.Filter{After: r.URL.Query().Get("cursor"), Limit: 50})
	if errors.Is(err, state.ErrCursor) {
		page, next, err = s.cfg.State.Connections(ctx, a.Tenant, state.Filter{Limit: 50})
	}
	if err != nil {
		s.pageUnavailable(w, r, err)
		return
	}
	p.Next = next
	for _, c := range page {
		e, err := s.load(ctx, a.Tenant, c.ID)
		if err != nil {
			continue // deleted meanwhile, or its definition is gone
		}
		v := s.viewConnection(ctx, e)
		row := adminConnRow{ID: v.ID, Definition: v.Definition, Environment: v.Environment, Status: v.Status, Reason: v.Reason}
		if v.Expires != nil {
			row.Expires = *v.Expires
		}
		row.Obtained = s.obtained(ctx, c.ID)
		if since, reason, err := s.cfg.State.RefreshFailure(ctx, a.Tenant, c.ID); err == nil && reason != "" {
			row.Reason = joinReason(row.Reason, "refreshes failing since "+since.UTC().Format("2006-01-02 15:04 UTC")+": "+reason)
		}
		p.Connections = append(p.Connections, row)
	}
	clients, err := s.cfg.State.Clients(ctx, a.Tenant)
	if err != nil {
		s.pageUnavailable(w, r, err)
		return
	}
	for _, c := range clients {
		p.Clients = append(p.Clients, s.viewClient(c))
	}
	warnings := s.cfg.Definitions.Warnings()
	for _, d := range s.cfg.Definitions.All() {
		sum := summarize(d)
		ad := adminDefinition{Name: d.Name, Title: d.Title, Scheme: sum.Scheme, Environments: strings.Join(sum.Environments, ", ")}
		if sum.GrantType != "" {
			ad.Scheme += " (" + sum.GrantType + ")"
		}
		for _, wd := range warnings {
			if wd.File == d.Source {
				ad.Warnings = append(ad.Warnings, wd.String())
			}
		}
		p.Definitions = append(p.Definitions, ad)
	}
	s.render(w, r, http.StatusOK, "admin_home", p)
}

// obtained is when the connection's token was last obtained (its last
// refresh or authorization); zero without a token.
func (s *Server) obtained(ctx context.Context, id string) time.Time {
	rec, err := s.cfg.Tokens.Get(ctx, id)
	if err != nil {
		return time.Time{}
	}
	return rec.Token.Obtained
}

type adminConnPage struct {
	pageBase
	Notice, Error     string
	EndUser           string
	LastError         string
	FailingSince      time.Time
	Conn              connectionView
	Expires, Obtained time.Time
	Link              string
	LinkExpires       time.Time
	ForceDelete       bool
	// Credentials: the connection authenticates with its own credentials
	// (a definition without OAuth): nothing to refresh, revoke or authorize.
	Credentials bool
	// LogIn: a credentials connection whose definition logs in for a
	// session (auth.scheme: session), which can be made again now.
	LogIn bool
	// Receiver is the connection's own webhook receiver URL, when it has a
	// webhook secret (PUT /v1/connections/{id}/webhook-secret).
	Receiver string
	Events   []adminEvent
}

// adminEngine loads the session tenant's connection named by the path, or
// writes the 404 page: another tenant's connection is not found, exactly
// like one that does not exist.
func (s *Server) adminEngine(w http.ResponseWriter, r *http.Request, a state.AdminSession) *engine {
	id := r.PathValue("id")
	setConnection(r, id)
	e, err := s.load(r.Context(), a.Tenant, id)
	if err != nil {
		code, msg := http.StatusNotFound, "There is no connection "+id+"."
		if !errors.Is(err, state.ErrNotFound) {
			code, msg = http.StatusBadGateway, "The connection "+id+" cannot be loaded: "+err.Error()
		}
		s.message(w, r, code, messagePage{pageBase: pageBase{Admin: bar(a)}, Heading: "No such connection", Paragraphs: []string{msg}, Link: "/admin", LinkText: "All connections"})
		return nil
	}
	return e
}

func (s *Server) adminConnection(w http.ResponseWriter, r *http.Request) {
	a, ok := s.adminSession(r)
	if !ok {
		http.Redirect(w, r, "/admin", http.StatusSeeOther)
		return
	}
	e := s.adminEngine(w, r, a)
	if e == nil {
		return
	}
	s.connectionPage(w, r, a, e, http.StatusOK, adminConnPage{Notice: notices[r.URL.Query().Get("done")]})
}

func (s *Server) connectionPage(w http.ResponseWriter, r *http.Request, a state.AdminSession, e *engine, code int, p adminConnPage) {
	ctx := r.Context()
	p.pageBase = pageBase{Title: "Connection " + e.conn.ID, Wide: true, Asset: assetPath, Admin: bar(a)}
	if p.Error != "" {
		p.Title = "Error: " + p.Title
	}
	if fresh, err := s.load(ctx, a.Tenant, e.conn.ID); err == nil {
		e = fresh // after an action, show what it left
	}
	p.Conn = s.viewConnection(ctx, e)
	p.Credentials = e.client.Implicit
	p.LogIn = p.Credentials && e.api.Source() != nil
	if ws, err := s.cfg.State.ConnectionWebhookSecretOf(ctx, a.Tenant, e.conn.ID); err == nil {
		p.Receiver = s.viewConnectionWebhookSecret(e, ws).ReceiverURL
	}
	if p.Conn.Expires != nil {
		p.Expires = *p.Conn.Expires
	}
	p.Obtained = s.obtained(ctx, e.conn.ID)
	p.EndUser, _ = s.cfg.State.ConnectEndUser(ctx, a.Tenant, e.conn.ID)
	p.FailingSince, p.LastError, _ = s.cfg.State.RefreshFailure(ctx, a.Tenant, e.conn.ID)
	p.Events = s.adminEvents(ctx, a.Tenant, e.conn.ID)
	s.render(w, r, code, "admin_connection", p)
}

func (s *Server) adminAction(w http.ResponseWriter, r *http.Request) {
	a, ok := s.adminForm(w, r)
	if !ok {
		return
	}
	e := s.adminEngine(w, r, a)
	if e == nil {
		return
	}
	ctx := r.Context()
	back := "/admin/connections/" + e.conn.ID
	fail := func(code int, msg string, force bool) {
		s.connectionPage(w, r, a, e, code, adminConnPage{Error: msg, ForceDelete: force})
	}
	action := r.PathValue("action")
	if e.client.Implicit && action != "delete" && !(action == "refresh" && e.api.Source() != nil) { // a session login can be made again
		fail(http.StatusConflict, credentialsProblem(e, "token to "+action).Detail, false)
		return
	}
	switch action {
	case "refresh":
		if err := s.refreshNow(ctx, e); err != nil {
			p := s.engineProblem(r, err)
			fail(p.Status, "The refresh failed: "+p.Detail, false)
			return
		}
		http.Redirect(w, r, back+"?done=refreshed", http.StatusSeeOther)
	case "revoke":
		if err := s.revoke(ctx, e); err != nil {
			fail(http.StatusBadGateway, "Access could not be revoked: "+err.Error()+". Nothing was changed.", false)
			return
		}
		http.Redirect(w, r, back+"?done=revoked", http.StatusSeeOther)
	case "reauthorize":
		cs, token, err := s.cfg.State.CreateConnectSession(ctx, state.ConnectSession{
			Tenant: a.Tenant, Clients: []string{e.client.ID}, Connection: e.conn.ID, EndUser: "admin:" + a.KeyID,
			Environment: environmentName(e), Expires: s.cfg.State.Now().Add(s.cfg.ConnectLifetime),
		})
		if err != nil {
			fail(http.StatusServiceUnavailable, "The link could not be made: "+err.Error(), false)
			return
		}
		s.connectionPage(w, r, a, e, http.StatusOK, adminConnPage{Link: s.connectURL(token), LinkExpires: cs.Expires})
	case "delete":
		err := s.removeConnection(ctx, e, r.PostForm.Get("force") == "true")
		var re *revocationError
		switch {
		case errors.As(err, &re):
			fail(http.StatusBadGateway, "The provider refused to revoke access ("+re.Error()+"), so nothing was deleted. Delete without revoking if the grant is already gone.", true)
		case err != nil:
			fail(http.StatusBadGateway, "The connection could not be deleted: "+err.Error(), false)
		default:
			http.Redirect(w, r, "/admin?done=deleted", http.StatusSeeOther)
		}
	default:
		s.message(w, r, http.StatusNotFound, messagePage{pageBase: pageBase{Admin: bar(a)}, Heading: "No such action", Paragraphs: []string{"Connections can be refreshed, revoked, re-authorized or deleted."}, Link: back, LinkText: "Back to the connection"})
	}
}

func joinReason(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

func environmentName(e *engine) string {
	if env, err := e.def.Environment(e.conn.Environment); err == nil {
		return env.Name
	}
	return e.conn.Environment
}

// revoke ends the connection's grant at the provider and forgets its
// tokens; the connection stays, needing re-authorization.
func (s *Server) revoke(ctx context.Context, e *engine) error {
	if err := s.revokeGrant(ctx, e, "revoked from the admin page"); err != nil {
		return err
	}
	if err := s.cfg.Tokens.Delete(ctx, e.conn.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return s.cfg.State.SetConnectionStatus(ctx, e.conn.Tenant, e.conn.ID, state.StatusNeedsReauth, "access was revoked from the admin page")
}
