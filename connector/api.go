package connector

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/definitions"
)

// API is a connection's authenticated access to the system it connects to:
// an *http.Client for any request, and the definition's declared actions and
// pagination on top of it.
type API struct {
	conn   *Connection
	def    *definitions.Definition
	vals   []string
	base   *url.URL
	source *Source // nil for schemes without OAuth
	policy *Policy
	client *http.Client
	added  []queryPair // query parameters the transport adds to every request
	// secretQuery names the query parameters carrying credentials (an API
	// key, a token sent in the query): their values are never shown.
	secretQuery []string
}

// APIOptions tunes NewAPI; the zero value is fine.
type APIOptions struct {
	// Base sends the requests; nil means a transport with bounded dial, TLS
	// and ResponseHeaderTimeout.
	Base http.RoundTripper
	// ResponseHeaderTimeout bounds the wait for an answer to start
	// (DefaultResponseHeaderTimeout when zero); ignored when Base is set.
	ResponseHeaderTimeout time.Duration
	// Source supplies tokens; nil means NewSource(c, st).
	Source *Source
	// Trace observes every request of the API (attempts, retries, waits,
	// refreshes); a request's context may carry another (WithTrace).
	Trace *Trace
	// Context bounds reading the values the connection learned when it
	// was connected (definitions with learned fields) from the store; nil
	// means 30 seconds.
	Context context.Context
}

// NewAPI returns the API access of a connection whose tokens live in st.
// It keeps a copy of c: a change to c afterwards (a field value, a host, the
// client) does not reach the API; build a new one. Pass opts.Source to share
// one token source between the APIs of a connection.
func NewAPI(c *Connection, st store.Store, opts *APIOptions) (*API, error) {
	if opts == nil {
		opts = &APIOptions{}
	}
	c = c.clone()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var src *Source
	if c.Definition.Auth.OAuth != nil {
		if src = opts.Source; src == nil {
			var err error
			if src, err = NewSource(c, st); err != nil {
				return nil, err
			}
		}
		if len(c.Definition.Learned()) > 0 {
			// Learned values fill hosts, paths and headers: read them once,
			// here; an API built before connecting again keeps the old ones.
			ctx := opts.Context
			if ctx == nil {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
			}
			learned, err := src.Values(ctx)
			if err != nil {
				return nil, fmt.Errorf("connection %s: reading the values it learned when connecting: %w", c.Key(), err)
			}
			c.learned = learned
		}
	}
	vals, err := c.values()
	if err != nil {
		return nil, err
	}
	if vals[definitions.VarBaseURL] == "" {
		var names []string
		for _, f := range c.Definition.BaseURLLearned(c.Environment) {
			names = append(names, f.Name+" (from "+f.Learn.Source()+")")
		}
		return nil, fmt.Errorf("connection %s: its API base URL is made of %s, learned when connecting, and it is not connected yet: run connector connect", c.Key(), strings.Join(names, ", "))
	}
	base, err := url.Parse(vals[definitions.VarBaseURL])
	if err != nil || base.Host == "" {
		return nil, fmt.Errorf("connection %s: the base URL %q is not an absolute URL", c.Key(), vals[definitions.VarBaseURL])
	}
	base.Path = strings.TrimSuffix(base.Path, "/")
	base.RawPath, base.RawQuery, base.Fragment = "", "", ""
	a := &API{conn: c, def: c.Definition, vals: vals, base: base, policy: NewPolicy(c.Definition)}

	rt := opts.Base
	if rt == nil {
		timeout := opts.ResponseHeaderTimeout
		if timeout <= 0 {
			timeout = DefaultResponseHeaderTimeout
		}
		rt = newBaseTransport(timeout)
	}
	if src != nil && src.flow != nil {
		// RFC 8705 3: the API sees the certificate the token is bound to,
		// through a transport of this connection's own (flow_mtls.go).
		if rt, err = src.flow.apiTransport(rt); err != nil {
			return nil, err
		}
	}
	baseRT := rt
	rt = &traceTransport{next: rt}
	switch auth := c.Definition.Auth; {
	case auth.NTLM != nil:
		if rt, err = ntlmAPI(c, vals, baseRT); err != nil {
			return nil, err
		}
	case auth.OAuth1 != nil:
		if rt, a.source, err = oauth1API(c, st, opts.Source, rt); err != nil {
			return nil, err
		}
	case auth.Session != nil:
		if a.source = opts.Source; a.source == nil {
			if a.source, err = NewSource(c, st); err != nil {
				return nil, err
			}
		}
		var bt *bearerTransport
		bt, a.added = sessionTransport(a.source, auth.Session.SendToken, rt, a.added)
		rt = bt
	case auth.OAuth != nil:
		a.source = src
		bt := &bearerTransport{src: a.source, next: rt}
		if src.flow != nil {
			bt.dpop = src.flow.dpopAPI() // nil without auth.oauth.dpop
		}
		switch st := auth.OAuth.SendToken; st.In {
		case definitions.TokenInQuery:
			bt.query = url.QueryEscape(st.Name)
			a.added = append(a.added, queryPair{st.Name, ""}) // any value: the token changes
			a.secretQuery = append(a.secretQuery, st.Name)
		case definitions.TokenInBody:
			bt.body = st.Name
		default:
			bt.header, bt.prefix, bt.typePrefix = canonical(st.Name), st.Prefix, st.TypePrefix
			if bt.header == "" { // a Definition built by hand
				bt.header, bt.typePrefix = "Authorization", true
			}
		}
		rt = bt
	case auth.Basic != nil:
		user, err1 := auth.Basic.Username.Expand(vals)
		pass, err2 := auth.Basic.Password.Expand(vals)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("connection %s: basic credentials: %w", c.Key(), err)
		}
		v := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
		rt = &staticTransport{header: "Authorization", value: []string{v}, next: rt}
	case auth.APIKey != nil:
		key, err := auth.APIKey.Value.Expand(vals)
		if err != nil {
			return nil, fmt.Errorf("connection %s: API key: %w", c.Key(), err)
		}
		if auth.APIKey.In == "query" {
			a.added = append(a.added, queryPair{auth.APIKey.Name, key})
			a.secretQuery = append(a.secretQuery, auth.APIKey.Name)
			rt = &staticTransport{query: url.QueryEscape(auth.APIKey.Name) + "=" + url.QueryEscape(key), next: rt}
		} else {
			rt = &staticTransport{header: canonical(auth.APIKey.Name), value: []string{key}, next: rt}
		}
	}
	rt = &retryTransport{api: a, trace: opts.Trace, policy: a.policy, pacer: NewPacer(a.policy.Limit, a.policy.Per), next: rt}

	scope := &scopeTransport{conn: c.Key(), base: base, next: rt}
	for _, h := range c.Definition.Headers {
		v, err := h.Value.Expand(vals)
		if err != nil {
			return nil, fmt.Errorf("connection %s: header %s: %w", c.Key(), h.Name, err)
		}
		if v != "" { // a header from an optional field that is not set is left out
			scope.headers = append(scope.headers, header{key: canonical(h.Name), val: []string{v}})
		}
	}
	var q []string
	for _, p := range c.Definition.Query {
		v, err := p.Value.Expand(vals)
		if err != nil {
			return nil, fmt.Errorf("connection %s: query parameter %s: %w", c.Key(), p.Name, err)
		}
		if v != "" {
			a.added = append(a.added, queryPair{p.Name, v})
			q = append(q, url.QueryEscape(p.Name)+"="+url.QueryEscape(v))
		}
	}
	scope.query = strings.Join(q, "&")
	a.client = &http.Client{Transport: scope}
	return a, nil
}

// Client returns an *http.Client that authenticates every request to the
// connection's API. Requests may use paths relative to the base URL
// ("/rest/v1.0/me"); a request to any other host fails with *HostError.
// Bound each call with the request's context.
func (a *API) Client() *http.Client { return a.client }

// Source returns the connection's token source, nil for schemes without OAuth.
func (a *API) Source() *Source { return a.source }

// BaseURL returns the API's base URL.
func (a *API) BaseURL() string { return a.base.String() }

// Definition returns the definition the connection follows.
func (a *API) Definition() *definitions.Definition { return a.def }

// Request is an API request independent of the host.
type Request struct {
	Method string
	Path   string // relative to the base URL, with any query ("/rest/v1.0/projects?company_id=1"), or an absolute URL on the API's host
	Header http.Header
	Body   []byte // sent as JSON unless Header sets a Content-Type
}

func (a *API) newRequest(ctx context.Context, r Request) (*http.Request, error) {
	method := r.Method
	if method == "" {
		method = http.MethodGet
	}
	var body io.Reader
	if r.Body != nil {
		body = bytes.NewReader(r.Body)
	}
	target := r.Path
	if strings.HasPrefix(target, "/") && !strings.HasPrefix(target, "//") {
		// Resolved here rather than by the transport so that errors name the real URL.
		target = a.base.String() + target
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, fmt.Errorf("request %s %s: %w", method, r.Path, err)
	}
	for k, vs := range r.Header {
		req.Header[http.CanonicalHeaderKey(k)] = vs
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	if r.Body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// Do sends r. A non-2xx answer is returned as an *APIError (its body read,
// capped and redacted); on success the caller reads and closes resp.Body.
func (a *API) Do(ctx context.Context, r Request) (*http.Response, error) {
	req, err := a.newRequest(ctx, r)
	if err != nil {
		return nil, err
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, a.redact(netError(req.Method, req.URL, err))
	}
	if resp.StatusCode/100 != 2 {
		return nil, a.apiError(req, resp)
	}
	return resp, nil
}

// Call runs the definition's action name with input: the input is checked
// against the action's schema before anything is sent.
func (a *API) Call(ctx context.Context, name string, input map[string]any) (*http.Response, error) {
	r, _, err := a.action(name, input)
	if err != nil {
		return nil, err
	}
	return a.Do(ctx, r)
}

// CallItems runs a listing action and yields its items across every page
// (one page when the action does not paginate).
func (a *API) CallItems(ctx context.Context, name string, input map[string]any, progress func(Progress)) iter.Seq2[json.RawMessage, error] {
	r, act, err := a.action(name, input)
	if err != nil {
		return func(yield func(json.RawMessage, error) bool) { yield(nil, err) }
	}
	p := act.Pagination
	if p == nil {
		p = &definitions.Pagination{} // one request; items from the body
	}
	return a.Items(ctx, r, p, progress)
}

func (a *API) action(name string, input map[string]any) (Request, *definitions.Action, error) {
	act, err := a.def.Action(name)
	if err != nil {
		return Request{}, nil, err
	}
	ar, err := act.Render(a.vals, input)
	if err != nil {
		return Request{}, nil, fmt.Errorf("action %s: %w", name, err)
	}
	return Request{Method: ar.Method, Path: ar.Path, Body: ar.Body}, act, nil
}

// APIError is a non-2xx answer from the API.
type APIError struct {
	Method  string
	URL     string // without the query, which may carry an API key
	Status  int
	Message string // what the body says, when it says it in a known shape
	Body    string // the start of the body, secrets redacted
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("%s %s: %d %s", e.Method, e.URL, e.Status, http.StatusText(e.Status))
	if e.Message != "" {
		msg += ": " + e.Message
	} else if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

const maxErrorBody = 4 << 10

func (a *API) apiError(req *http.Request, resp *http.Response) error {
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	u := *resp.Request.URL
	u.RawQuery, u.User = "", nil
	e := &APIError{Method: req.Method, URL: u.String(), Status: resp.StatusCode, Body: a.redactString(strings.TrimSpace(string(data)))}
	e.Message = a.redactString(errorMessage(data))
	return e
}

// errorMessage reads the common error shapes: {"error":{"message"}},
// {"error":"..","error_description":".."}, {"message":".."}, {"errors":..}.
func errorMessage(data []byte) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil {
		return ""
	}
	str := func(raw json.RawMessage) string {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
		return ""
	}
	if raw, ok := m["error"]; ok {
		var obj struct{ Code, Message string }
		if json.Unmarshal(raw, &obj) == nil && obj.Message != "" {
			return obj.Message
		}
		if s := str(raw); s != "" {
			if d := str(m["error_description"]); d != "" {
				return s + ": " + d
			}
			return s
		}
	}
	if s := str(m["message"]); s != "" {
		return s
	}
	if raw, ok := m["errors"]; ok {
		if s := str(raw); s != "" {
			return s
		}
		var fields map[string][]string
		if json.Unmarshal(raw, &fields) == nil && len(fields) > 0 {
			var parts []string
			for k, vs := range fields {
				parts = append(parts, k+" "+strings.Join(vs, ", "))
			}
			slices.Sort(parts)
			return strings.Join(parts, "; ")
		}
	}
	return ""
}

// redactString removes the connection's secrets (client secret, the current
// tokens) from text that came back from the API.
func (a *API) redactString(s string) string {
	for _, sec := range a.secrets() {
		s = strings.ReplaceAll(s, sec, "***")
	}
	return s
}

// secrets lists the connection's secrets long enough to look for.
func (a *API) secrets() []string {
	all := []string{a.conn.ClientSecret, a.conn.AccessToken, a.conn.RefreshToken}
	if a.source != nil {
		a.source.mu.Lock()
		all = append(all, a.source.cached.AccessToken, a.source.cached.RefreshToken)
		a.source.mu.Unlock()
	}
	for _, f := range a.def.Fields {
		if f.Secret {
			all = append(all, a.vals[f.Var])
		}
	}
	if k := a.def.Auth.APIKey; k != nil {
		if key, err := k.Value.Expand(a.vals); err == nil {
			all = append(all, key)
		}
	}
	if b := a.def.Auth.Basic; b != nil {
		if pass, err := b.Password.Expand(a.vals); err == nil {
			all = append(all, pass)
		}
	}
	if n := a.def.Auth.NTLM; n != nil && n.Password != nil {
		if pass, err := n.Password.Expand(a.vals); err == nil {
			all = append(all, pass)
		}
	}
	return slices.DeleteFunc(all, func(s string) bool { return len(s) < 4 })
}

// redact keeps secrets an error message may quote (a URL with an API key,
// say) out of it, keeping the error's identity for errors.Is/As.
func (a *API) redact(err error) error {
	msg := err.Error()
	if red := a.redactString(msg); red != msg {
		return &redactedError{msg: red, err: err}
	}
	return err
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
