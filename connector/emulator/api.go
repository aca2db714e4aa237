package emulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// apiRoute is one API endpoint. New resources are added to apiRoutes.
type apiRoute struct {
	method  string
	pattern string // path segments; "{name}" matches one non-empty segment
	// noCompany: user tokens may omit Procore-Company-Id (GET /me and
	// /companies); service-account tokens must send it everywhere.
	noCompany bool
	handle    func(*Server, *apiRequest) apiReply // called with s.mu held
	key       string                              // "METHOD pattern", for Stats.APIRequestsByRoute
}

var apiRoutes = []apiRoute{
	{method: http.MethodGet, pattern: "/rest/v1.0/me", noCompany: true, handle: (*Server).getMe},
	{method: http.MethodGet, pattern: "/rest/v1.0/companies", noCompany: true, handle: (*Server).listCompanies},
	{method: http.MethodGet, pattern: "/rest/v1.0/projects", handle: (*Server).listProjects},
	{method: http.MethodPost, pattern: "/rest/v1.0/projects", handle: (*Server).createProject},
	{method: http.MethodGet, pattern: "/rest/v1.0/projects/{id}", handle: (*Server).getProject},
	{method: http.MethodGet, pattern: "/rest/v1.0/companies/{company_id}/projects", handle: (*Server).listCompanyProjects},

	{method: http.MethodGet, pattern: "/rest/v1.3/companies/{company_id}/users", handle: (*Server).listCompanyUsers},
	{method: http.MethodPost, pattern: "/rest/v1.3/companies/{company_id}/users", handle: (*Server).createCompanyUser},
	{method: http.MethodGet, pattern: "/rest/v1.3/companies/{company_id}/users/{id}", handle: (*Server).getCompanyUser},
	{method: http.MethodPatch, pattern: "/rest/v1.3/companies/{company_id}/users/{id}/invite", handle: (*Server).inviteCompanyUser},
	{method: http.MethodGet, pattern: "/rest/v1.0/projects/{project_id}/users", handle: (*Server).listProjectUsers},
	{method: http.MethodGet, pattern: "/rest/v1.0/vendors", handle: (*Server).listVendors},
	{method: http.MethodPost, pattern: "/rest/v1.0/vendors", handle: (*Server).createVendor},

	{method: http.MethodGet, pattern: "/rest/v1.0/projects/{project_id}/timecard_entries", handle: (*Server).listTimecardEntries},
	{method: http.MethodPost, pattern: "/rest/v1.0/projects/{project_id}/timecard_entries", handle: (*Server).createTimecardEntry},
	{method: http.MethodGet, pattern: "/rest/v1.0/projects/{project_id}/rfis", handle: (*Server).listRFIs},
	{method: http.MethodPost, pattern: "/rest/v1.0/projects/{project_id}/rfis", handle: (*Server).createRFI},
	{method: http.MethodGet, pattern: "/rest/v1.0/projects/{project_id}/rfis/{id}", handle: (*Server).getRFI},
	{method: http.MethodGet, pattern: "/rest/v1.1/projects/{project_id}/submittals", handle: (*Server).listSubmittals},
	{method: http.MethodGet, pattern: "/rest/v1.0/folders", handle: (*Server).getRootFolder},
	{method: http.MethodGet, pattern: "/rest/v1.0/folders/{id}", handle: (*Server).getFolder},

	{method: http.MethodGet, pattern: "/rest/v1.0/webhooks/hooks", handle: (*Server).listHooks},
	{method: http.MethodPost, pattern: "/rest/v1.0/webhooks/hooks", handle: (*Server).createHook},
	{method: http.MethodGet, pattern: "/rest/v1.0/webhooks/hooks/{hook_id}", handle: (*Server).getHook},
	{method: http.MethodDelete, pattern: "/rest/v1.0/webhooks/hooks/{hook_id}", handle: (*Server).deleteHook},
	{method: http.MethodGet, pattern: "/rest/v1.0/webhooks/hooks/{hook_id}/triggers", handle: (*Server).listTriggers},
	{method: http.MethodPost, pattern: "/rest/v1.0/webhooks/hooks/{hook_id}/triggers", handle: (*Server).createTrigger},
	{method: http.MethodDelete, pattern: "/rest/v1.0/webhooks/hooks/{hook_id}/triggers/{id}", handle: (*Server).deleteTrigger},
	{method: http.MethodGet, pattern: "/rest/v1.0/webhooks/hooks/{hook_id}/deliveries", handle: (*Server).listDeliveries},
}

func init() {
	for i := range apiRoutes {
		apiRoutes[i].key = apiRoutes[i].method + " " + apiRoutes[i].pattern
	}
}

// match reports whether path fits pattern, and the values of its {names}.
func match(pattern, path string) (map[string]string, bool) {
	ps, xs := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(ps) != len(xs) {
		return nil, false
	}
	var vars map[string]string
	for i, p := range ps {
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
			if xs[i] == "" {
				return nil, false
			}
			if vars == nil {
				vars = make(map[string]string)
			}
			vars[p[1:len(p)-1]] = xs[i]
		} else if p != xs[i] {
			return nil, false
		}
	}
	return vars, true
}

// findRoute returns the route for method and path, or, when the path
// exists for other methods only, those methods for an Allow header.
func findRoute(method, path string) (*apiRoute, map[string]string, []string) {
	var allowed []string
	for i := range apiRoutes {
		rt := &apiRoutes[i]
		vars, ok := match(rt.pattern, path)
		if !ok {
			continue
		}
		if rt.method == method {
			return rt, vars, nil
		}
		allowed = append(allowed, rt.method)
	}
	return nil, nil, allowed
}

// apiRequest is what a route handler sees.
type apiRequest struct {
	r         *http.Request
	body      []byte
	vars      map[string]string
	grant     *grant
	user      *user
	companyID int64 // from Procore-Company-Id; 0 when a noCompany route went without
	now       time.Time
	events    []event // resources the handler changed, for webhook deliveries
}

// apiReply is a handler's answer; it is encoded while s.mu is still held,
// so handlers may return pointers into the data set.
type apiReply struct {
	status int
	body   any // nil for 204
	header http.Header
}

// apiResult is the complete answer to one API request.
type apiResult struct {
	status int
	header http.Header
	data   []byte     // the encoded body; nil for 204
	rate   *rateState // nil: an injected fault, which carries only its own headers
	sends  []*sending // webhook deliveries to make before answering
}

// errorBody is Procore's generic error body.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Details any    `json:"details"`
}

func apiError(status int, code, message string) apiReply {
	return apiReply{status: status, body: errorBody{Error: errorDetail{Code: code, Message: message}}}
}

// validationFailed is Procore's 422 answer: {"errors":{"field":["message"]}}.
func validationFailed(fields map[string][]string) apiReply {
	return apiReply{status: http.StatusUnprocessableEntity, body: map[string]map[string][]string{"errors": fields}}
}

// blank is the 422 for required fields that are missing or empty.
func blank(fields ...string) apiReply {
	errs := make(map[string][]string, len(fields))
	for _, f := range fields {
		errs[f] = []string{"can't be blank"}
	}
	return validationFailed(errs)
}

// notFound is the 404 for an unknown id.
func notFound(format string, args ...any) apiReply {
	return apiError(http.StatusNotFound, "not_found", fmt.Sprintf(format, args...))
}

// decodeBody reads req's JSON body into v. A body that is not JSON, or
// whose values have the wrong types, is a 400 showing example, the
// shape the endpoint expects.
func decodeBody(req *apiRequest, v any, example string) (apiReply, bool) {
	if len(bytes.TrimSpace(req.body)) == 0 {
		return apiError(http.StatusBadRequest, "invalid_json", "The request body is empty; send JSON like "+example+"."), false
	}
	dec := json.NewDecoder(bytes.NewReader(req.body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return apiError(http.StatusBadRequest, "invalid_json", "The body must be JSON like "+example+": "+err.Error()), false
	}
	return apiReply{}, true
}

// missingParam is Procore's 400 for an absent wrapper object such as "rfi".
func missingParam(name, example string) apiReply {
	return apiError(http.StatusBadRequest, "missing_"+name, fmt.Sprintf("The body needs a %q object, like %s.", name, example))
}

// bodyCompany checks the company_id of a request body: required, and the
// company of the Procore-Company-Id header.
func (req *apiRequest) bodyCompany(raw json.Number) (apiReply, bool) {
	if raw == "" {
		return apiError(http.StatusBadRequest, "missing_company_id", "company_id is required in the body."), false
	}
	return req.sameCompany(raw.String(), "company_id in the body")
}

// queryCompany requires the company_id query parameter, which
// companyContextLocked has already compared with the header.
func (req *apiRequest) queryCompany() (apiReply, bool) {
	if req.r.URL.Query().Get("company_id") == "" {
		return apiError(http.StatusBadRequest, "missing_company_id", "The company_id query parameter is required."), false
	}
	return apiReply{}, true
}

// ExpiredTokenMessage is the error Procore's API gives for an expired access token.
const ExpiredTokenMessage = "Your access token has expired, please use your refresh token to obtain a fresh token."

// maxAPIBody caps request bodies on the API host.
const maxAPIBody = 1 << 20

// rateState is what the X-Rate-Limit-* headers report.
type rateState struct {
	limit, remaining int
	reset            time.Time
}

func (rs rateState) set(h http.Header) {
	reset := rs.reset.Unix()
	if rs.reset.Nanosecond() > 0 {
		reset++ // never announce a reset before it happens
	}
	h.Set("X-Rate-Limit-Limit", strconv.Itoa(rs.limit))
	h.Set("X-Rate-Limit-Remaining", strconv.Itoa(rs.remaining))
	h.Set("X-Rate-Limit-Reset", strconv.FormatInt(reset, 10))
}

// takeRateLocked charges one request to g's window and reports whether it
// is within the limit. s.mu must be held.
func (s *Server) takeRateLocked(g *grant, now time.Time) (rateState, bool) {
	if g.windowStart.IsZero() || !now.Before(g.windowStart.Add(s.cfg.RateWindow)) {
		g.windowStart, g.windowCount = now, 0
	}
	rs := rateState{limit: s.cfg.RateLimit, reset: g.windowStart.Add(s.cfg.RateWindow)}
	if g.windowCount >= s.cfg.RateLimit {
		return rs, false
	}
	g.windowCount++
	rs.remaining = s.cfg.RateLimit - g.windowCount
	return rs, true
}

// serveAPI handles every request under /rest/.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	var body []byte
	if r.Body != nil {
		var err error
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, maxAPIBody))
		if err != nil {
			writeJSON(w, http.StatusRequestEntityTooLarge, nil,
				mustJSON(apiError(http.StatusRequestEntityTooLarge, "request_too_large",
					fmt.Sprintf("the request body could not be read (at most %d bytes)", maxAPIBody)).body))
			return
		}
	}
	now := s.now()
	s.mu.Lock()
	res := s.apiLocked(r, body, now)
	s.mu.Unlock()
	// Deliveries run before the answer, outside the lock (a receiver may
	// call back), so a test sees them recorded once its create returns.
	s.deliver(r.Context(), res.sends)
	if res.rate != nil {
		res.rate.set(w.Header())
	}
	if res.status == http.StatusNoContent {
		for k, vs := range res.header {
			w.Header()[k] = vs
		}
		w.WriteHeader(res.status)
		return
	}
	writeJSON(w, res.status, res.header, res.data)
}

// apiLocked answers one API request: injected faults, the bearer token,
// the rate limit, the route, the company rule, idempotency, the handler.
func (s *Server) apiLocked(r *http.Request, body []byte, now time.Time) apiResult {
	s.stats.APIRequests++
	s.sweepLocked(now)
	rt, vars, allowed := findRoute(r.Method, r.URL.Path)
	if rt != nil {
		s.stats.APIRequestsByRoute[rt.key]++
	} else {
		s.stats.APIRequestsByRoute[r.Method+" "+r.URL.Path]++
	}
	if s.apiFail.n > 0 {
		s.apiFail.n--
		s.stats.FailedAPIRequests++
		f := s.apiFail
		code := strings.ToLower(strings.ReplaceAll(http.StatusText(f.status), " ", "_"))
		rep := apiError(f.status, code, "The emulator was told to fail this request (FailAPIRequests); it was not processed.")
		return apiResult{status: f.status, header: f.header.Clone(), data: mustJSON(rep.body)}
	}
	// Requests without a usable token report a fresh, untouched window.
	idle := rateState{limit: s.cfg.RateLimit, remaining: s.cfg.RateLimit, reset: now.Add(s.cfg.RateWindow)}
	at, fail := s.bearerLocked(r, now)
	if fail == nil && s.expireN > 0 {
		// ExpireAccessTokens: the token really expires, so every later use
		// of it fails too, while its refresh token keeps working.
		s.expireN--
		s.stats.ExpiredAccessTokens++
		at.expiresAt = now
		fail = &bearerFailure{expired: true, description: "the access token expired"}
	}
	if fail != nil {
		msg := strings.ToUpper(fail.description[:1]) + fail.description[1:] + "."
		if fail.expired {
			msg = ExpiredTokenMessage
		}
		return s.finishLocked(apiReply{
			status: http.StatusUnauthorized,
			body:   map[string]string{"error": msg},
			header: http.Header{"Www-Authenticate": {fail.challenge()}},
		}, idle)
	}
	rs, ok := s.takeRateLocked(at.grant, now)
	if !ok {
		s.stats.RateLimited++
		wait := int64((rs.reset.Sub(now) + time.Second - 1) / time.Second)
		rep := apiError(http.StatusTooManyRequests, "rate_limited",
			fmt.Sprintf("Rate limit of %d requests per %s exceeded; retry after %d seconds.", rs.limit, s.cfg.RateWindow, wait))
		rep.header = http.Header{"Retry-After": {strconv.FormatInt(max(wait, 1), 10)}}
		return s.finishLocked(rep, rs)
	}
	if rt == nil {
		if len(allowed) > 0 {
			rep := apiError(http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not supported on "+r.URL.Path)
			rep.header = http.Header{"Allow": {strings.Join(allowed, ", ")}}
			return s.finishLocked(rep, rs)
		}
		return s.finishLocked(apiError(http.StatusNotFound, "not_found", "No route matches "+r.Method+" "+r.URL.Path+" in the emulator."), rs)
	}
	req := &apiRequest{r: r, body: body, vars: vars, grant: at.grant, user: s.data.users[at.grant.userID], now: now}
	if rep, bad := s.companyContextLocked(req, rt); bad {
		return s.finishLocked(rep, rs)
	}
	key := r.Header.Get(IdempotencyHeader)
	if key == "" || (r.Method != http.MethodPost && r.Method != http.MethodPatch) {
		return s.handleLocked(rt, req, rs)
	}
	return s.idempotentLocked(rt, req, key, rs)
}

// handleLocked runs the route's handler and queues the webhook deliveries
// of what it changed.
func (s *Server) handleLocked(rt *apiRoute, req *apiRequest, rs rateState) apiResult {
	rep := rt.handle(s, req)
	res := s.finishLocked(rep, rs)
	if rep.status/100 == 2 {
		res.sends = s.queueEventsLocked(req)
	}
	return res
}

// finishLocked encodes rep while s.mu still guards what it points to.
func (s *Server) finishLocked(rep apiReply, rs rateState) apiResult {
	res := apiResult{status: rep.status, header: rep.header, rate: &rs}
	if rep.status != http.StatusNoContent {
		data, err := json.Marshal(rep.body)
		if err != nil {
			res.status, res.header = http.StatusInternalServerError, nil
			data = mustJSON(apiError(http.StatusInternalServerError, "internal_error", "emulator: encoding the response: "+err.Error()).body)
		}
		res.data = data
	}
	return res
}

// companyContextLocked applies the Procore-Company-Id rule to req.
func (s *Server) companyContextLocked(req *apiRequest, rt *apiRoute) (apiReply, bool) {
	raw := strings.TrimSpace(req.r.Header.Get("Procore-Company-Id"))
	if raw == "" {
		if rt.noCompany && !req.grant.serviceAccount {
			return apiReply{}, false
		}
		return apiError(http.StatusBadRequest, "missing_company_id",
			"The Procore-Company-Id header is required on this request: set it to a company id from GET /rest/v1.0/companies."), true
	}
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id <= 0 {
		return apiError(http.StatusBadRequest, "invalid_company_id", "The Procore-Company-Id header must be a positive integer company id."), true
	}
	if !req.user.canAccess(id) {
		return apiError(http.StatusForbidden, "forbidden",
			fmt.Sprintf("You do not have access to company %d named in Procore-Company-Id.", id)), true
	}
	req.companyID = id
	// A company named in the path or the query must be the header's.
	if raw, ok := req.vars["company_id"]; ok {
		if rep, ok := req.sameCompany(raw, "The company id in the path"); !ok {
			return rep, true
		}
	}
	if raw := req.r.URL.Query().Get("company_id"); raw != "" {
		if rep, ok := req.sameCompany(raw, "The company_id query parameter"); !ok {
			return rep, true
		}
	}
	return apiReply{}, false
}

// sameCompany checks a company id named in the path, query or body against
// the Procore-Company-Id header; raw is the value as sent, where names it.
func (req *apiRequest) sameCompany(raw, where string) (apiReply, bool) {
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id <= 0 {
		return apiError(http.StatusBadRequest, "invalid_company_id", where+" must be a positive integer company id."), false
	}
	if id != req.companyID {
		return apiError(http.StatusForbidden, "company_mismatch",
			fmt.Sprintf("%s (%d) differs from the Procore-Company-Id header (%d); send the same company in both.", where, id, req.companyID)), false
	}
	return apiReply{}, true
}

func writeJSON(w http.ResponseWriter, status int, extra http.Header, data []byte) {
	h := w.Header()
	for k, vs := range extra {
		h[k] = vs
	}
	h.Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(data)
}

func mustJSON(v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return data
}

// Pagination, as Procore's v1 lists do it.
const (
	defaultPerPage = 100
	maxPerPage     = 100
)

// paginate cuts items to the page that req asks for and sets the Total,
// Per-Page and Link headers. A bad page or per_page is a 400.
func paginate[T any](req *apiRequest, items []T) apiReply {
	q := req.r.URL.Query()
	page, per := 1, defaultPerPage
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return apiError(http.StatusBadRequest, "invalid_page", "page must be an integer from 1.")
		}
		page = n
	}
	if v := q.Get("per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return apiError(http.StatusBadRequest, "invalid_per_page", fmt.Sprintf("per_page must be an integer from 1 to %d.", maxPerPage))
		}
		per = min(n, maxPerPage)
	}
	total := len(items)
	last := max(1, (total+per-1)/per)
	start := total
	if page-1 <= total/per { // a far page would overflow the product
		start = min((page-1)*per, total)
	}
	end := min(start+per, total)
	out := make([]T, end-start) // never nil: an empty page is [] in JSON
	copy(out, items[start:end])

	scheme := "http"
	if req.r.TLS != nil {
		scheme = "https"
	}
	link := func(p int, rel string) string {
		v := url.Values{}
		for k, vs := range q {
			v[k] = vs
		}
		v.Set("page", strconv.Itoa(p))
		v.Set("per_page", strconv.Itoa(per))
		u := url.URL{Scheme: scheme, Host: req.r.Host, Path: req.r.URL.Path, RawQuery: v.Encode()}
		return "<" + u.String() + `>; rel="` + rel + `"`
	}
	links := []string{link(1, "first")}
	if page > 1 {
		links = append(links, link(min(page-1, last), "prev"))
	}
	if page < last {
		links = append(links, link(page+1, "next"))
	}
	links = append(links, link(last, "last"))
	h := http.Header{}
	h.Set("Total", strconv.Itoa(total))
	h.Set("Per-Page", strconv.Itoa(per))
	h.Set("Link", strings.Join(links, ", "))
	return apiReply{status: http.StatusOK, body: out, header: h}
}
