package emulator

import (
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
}

var apiRoutes = []apiRoute{
	{method: http.MethodGet, pattern: "/rest/v1.0/me", noCompany: true, handle: (*Server).getMe},
	{method: http.MethodGet, pattern: "/rest/v1.0/companies", noCompany: true, handle: (*Server).listCompanies},
	{method: http.MethodGet, pattern: "/rest/v1.0/projects", handle: (*Server).listProjects},
	{method: http.MethodPost, pattern: "/rest/v1.0/projects", handle: (*Server).createProject},
	{method: http.MethodGet, pattern: "/rest/v1.0/projects/{id}", handle: (*Server).getProject},
	{method: http.MethodGet, pattern: "/rest/v1.0/companies/{company_id}/projects", handle: (*Server).listCompanyProjects},
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
}

// apiReply is a handler's answer; it is encoded while s.mu is still held,
// so handlers may return pointers into the data set.
type apiReply struct {
	status int
	body   any
	header http.Header
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
	rep, rs := s.apiLocked(r, body, now)
	data, err := json.Marshal(rep.body)
	s.mu.Unlock()
	if err != nil {
		http.Error(w, "emulator: encoding response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	rs.set(w.Header())
	writeJSON(w, rep.status, rep.header, data)
}

func (s *Server) apiLocked(r *http.Request, body []byte, now time.Time) (apiReply, rateState) {
	s.stats.APIRequests++
	// Requests without a usable token report a fresh, untouched window.
	idle := rateState{limit: s.cfg.RateLimit, remaining: s.cfg.RateLimit, reset: now.Add(s.cfg.RateWindow)}
	at, fail := s.bearerLocked(r, now)
	if fail != nil {
		msg := strings.ToUpper(fail.description[:1]) + fail.description[1:] + "."
		if fail.expired {
			msg = ExpiredTokenMessage
		}
		return apiReply{
			status: http.StatusUnauthorized,
			body:   map[string]string{"error": msg},
			header: http.Header{"Www-Authenticate": {fail.challenge()}},
		}, idle
	}
	rs, ok := s.takeRateLocked(at.grant, now)
	if !ok {
		s.stats.RateLimited++
		wait := int64((rs.reset.Sub(now) + time.Second - 1) / time.Second)
		rep := apiError(http.StatusTooManyRequests, "rate_limited",
			fmt.Sprintf("Rate limit of %d requests per %s exceeded; retry after %d seconds.", rs.limit, s.cfg.RateWindow, wait))
		rep.header = http.Header{"Retry-After": {strconv.FormatInt(max(wait, 1), 10)}}
		return rep, rs
	}
	rt, vars, allowed := findRoute(r.Method, r.URL.Path)
	if rt == nil {
		if len(allowed) > 0 {
			rep := apiError(http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not supported on "+r.URL.Path)
			rep.header = http.Header{"Allow": {strings.Join(allowed, ", ")}}
			return rep, rs
		}
		return apiError(http.StatusNotFound, "not_found", "No route matches "+r.Method+" "+r.URL.Path+" in the emulator."), rs
	}
	req := &apiRequest{r: r, body: body, vars: vars, grant: at.grant, user: s.data.users[at.grant.userID], now: now}
	if rep, bad := s.companyContextLocked(req, rt); bad {
		return rep, rs
	}
	return rt.handle(s, req), rs
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
		return apiError(http.StatusBadRequest, "company_mismatch",
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
