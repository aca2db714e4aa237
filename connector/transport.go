package connector

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/connector-engine/connector/connector/token"
)

// The API transport is a chain of http.RoundTrippers, outermost first:
//
//	scope    resolves relative URLs against the API's base URL, refuses any
//	         other host, adds the definition's headers and query; it copies
//	         the caller's request once, and the layers below own that copy
//	retry    the Policy: waits out rate limits, repeats what is safe to repeat
//	auth     credentials (bearer token, Basic, API key); on a 401 with a
//	         token, renews it once and replays the request
//	base     an *http.Transport
//
// With a fresh cached token the chain does no I/O and no template work, and
// allocates only the request copy and its header map.

// scopeTransport confines credentials to one scheme and host.
type scopeTransport struct {
	conn    string   // the connection's key, for messages
	base    *url.URL // scheme, host and path prefix of the API
	headers []header // the definition's headers, expanded once
	query   string   // the definition's query parameters, encoded once
	next    http.RoundTripper
}

type header struct {
	key string   // canonical
	val []string // shared by every request; never modified
}

func (t *scopeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := new(http.Request)
	*r = *req
	if req.URL.Host == "" && req.URL.Scheme == "" {
		u := *t.base
		u.Path = t.base.Path + req.URL.Path
		u.RawPath = ""
		if req.URL.RawPath != "" {
			u.RawPath = t.base.EscapedPath() + req.URL.RawPath
		}
		u.RawQuery = req.URL.RawQuery
		r.URL, r.Host = &u, ""
	} else if !sameOrigin(req.URL, t.base) {
		closeBody(req)
		return nil, &HostError{Connection: t.conn, URL: req.URL.Scheme + "://" + req.URL.Host, API: t.base.Scheme + "://" + t.base.Host}
	}
	if t.query != "" {
		if r.URL == req.URL {
			u := *req.URL
			r.URL = &u
		}
		if r.URL.RawQuery == "" {
			r.URL.RawQuery = t.query
		} else {
			r.URL.RawQuery += "&" + t.query
		}
	}
	r.Header = make(http.Header, len(req.Header)+len(t.headers)+2)
	for k, v := range req.Header {
		r.Header[k] = v
	}
	for _, h := range t.headers {
		if _, set := r.Header[h.key]; !set {
			r.Header[h.key] = h.val
		}
	}
	if err := replayable(r); err != nil {
		closeBody(req)
		return nil, err
	}
	return t.next.RoundTrip(r)
}

// sameOrigin compares scheme, host and port, with default ports filled in.
func sameOrigin(u, base *url.URL) bool {
	return strings.EqualFold(u.Scheme, base.Scheme) &&
		strings.EqualFold(u.Hostname(), base.Hostname()) &&
		effectivePort(u) == effectivePort(base)
}

func effectivePort(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if strings.EqualFold(u.Scheme, "http") {
		return "80"
	}
	return "443"
}

// HostError is returned for a request to a host other than the connection's
// API: its credentials are for that host alone.
type HostError struct {
	Connection string
	URL        string // scheme and host the request was for
	API        string // scheme and host of the connection's API
}

func (e *HostError) Error() string {
	return fmt.Sprintf("connection %s: refusing to send credentials to %s: they belong to %s; use a plain http.Client for other hosts",
		e.Connection, e.URL, e.API)
}

// NetError is a request that got no answer: the connection failed or timed
// out, or no credentials could be had for it. It reads like an *APIError,
// "GET https://host/path: what happened", and wraps the *url.Error, so
// errors.Is(err, context.DeadlineExceeded) and errors.As still see through.
type NetError struct {
	Method string
	URL    string // without user info and query, which may carry credentials
	Err    error
}

func (e *NetError) Error() string {
	cause := e.Err
	var ue *url.Error
	if errors.As(cause, &ue) {
		cause = ue.Err
	}
	return e.Method + " " + e.URL + ": " + cause.Error()
}

func (e *NetError) Unwrap() error { return e.Err }

// netError wraps a failed exchange's error as a *NetError (once).
func netError(method string, u *url.URL, err error) error {
	var ne *NetError
	if err == nil || errors.As(err, &ne) {
		return err
	}
	c := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	return &NetError{Method: method, URL: c.String(), Err: err}
}

// maxReplayBody caps how much of a body without GetBody is kept in memory so
// that the request can be sent again (a retry, or a replay after a 401).
const maxReplayBody = 8 << 20

// replayable makes sure a request's body can be sent again, by keeping it in
// memory when the caller gave no GetBody. Bodies over maxReplayBody are sent
// once: such a request is neither retried nor replayed.
func replayable(r *http.Request) error {
	if r.Body == nil || r.Body == http.NoBody || r.GetBody != nil {
		return nil
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, maxReplayBody+1))
	if err != nil {
		r.Body.Close()
		return fmt.Errorf("reading the request body: %w", err)
	}
	if len(data) > maxReplayBody {
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(data), r.Body), r.Body}
		return nil
	}
	r.Body.Close()
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
	r.Body, _ = r.GetBody()
	return nil
}

// rewind gives r a fresh body for another attempt; false if it cannot.
func rewind(r *http.Request) bool {
	if r.Body == nil || r.Body == http.NoBody {
		return true
	}
	if r.GetBody == nil {
		return false
	}
	b, err := r.GetBody()
	if err != nil {
		return false
	}
	r.Body = b
	return true
}

func closeBody(r *http.Request) {
	if r.Body != nil {
		r.Body.Close()
	}
}

// discard drains a little of a response being thrown away, so that its
// connection can be reused, and closes it.
func discard(resp *http.Response) {
	if resp == nil {
		return
	}
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	resp.Body.Close()
}

// retryTransport carries out the Policy's decisions.
type retryTransport struct {
	api    *API
	trace  *Trace // the API's (APIOptions.Trace); a request's context may add one
	policy *Policy
	gate   atomic.Pointer[gate] // until when the rate limit is used up; nil for none
	pacer  *Pacer               // the declared limit per window; nil for none
	next   http.RoundTripper
}

// gate is a used-up rate limit: no request goes out before until.
type gate struct {
	until  time.Time
	reason WaitReason
	header string
}

func (t *retryTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	ctx := r.Context()
	p := t.policy
	if p.IdempotencyHeader != "" && (r.Method == http.MethodPost || r.Method == http.MethodPatch) {
		if len(r.Header[p.IdempotencyHeader]) == 0 {
			r.Header[p.IdempotencyHeader] = []string{idempotencyKey()}
		}
	}
	var x *exchange
	if tr := ContextTrace(ctx).then(t.trace); tr != nil {
		// The layers below read the hooks and the attempt from the context.
		x = &exchange{trace: tr, api: t.api}
		r = r.WithContext(context.WithValue(ctx, exchangeKey{}, x))
	}
	orig := r.URL // the layers below may add credentials to the query: each attempt starts from this
	for attempt := 1; ; attempt++ {
		r.URL = orig
		if g := t.gate.Load(); g != nil {
			if wait := time.Until(g.until); wait > 0 {
				if wait > p.MaxWait {
					closeBody(r)
					return nil, &WaitError{Wait: wait, Source: g.header, Max: p.MaxWait}
				}
				x.wait(r, WaitInfo{Wait: wait, Reason: g.reason, Header: g.header, Per: p.Per, Limit: p.Limit})
				if err := sleep(ctx, wait); err != nil {
					closeBody(r)
					return nil, err
				}
			}
		}
		if t.pacer != nil {
			if wait := t.pacer.Reserve(time.Now()); wait > 0 {
				if wait > p.MaxWait {
					closeBody(r)
					return nil, &WaitError{Wait: wait, Source: "request.rate_limit.limit", Max: p.MaxWait}
				}
				x.wait(r, WaitInfo{Wait: wait, Reason: WaitLimit, Per: p.Per, Limit: p.Limit})
				if err := sleep(ctx, wait); err != nil {
					closeBody(r)
					return nil, err
				}
			}
		}
		if attempt > 1 && !rewind(r) {
			return nil, errors.New("the request body cannot be sent again")
		}
		if x != nil {
			x.attempt, x.replay = attempt, false
		}
		resp, err := t.next.RoundTrip(r)
		if err == nil && resp.StatusCode < 300 && !p.used(resp) {
			return resp, nil // the common case: no clock, no policy
		}
		now := time.Now()
		if err == nil && p.RemainingHeader != "" {
			if until, reason, header, ok := p.exhausted(resp, now); ok {
				t.gate.Store(&gate{until: until, reason: reason, header: header})
			}
		}
		d := p.Decide(r, attempt, resp, err, now)
		if d.Err != nil {
			discard(resp)
			return nil, d.Err
		}
		if !d.Retry || r.Body != nil && r.Body != http.NoBody && r.GetBody == nil {
			return resp, err
		}
		status := 0
		if resp != nil {
			status = resp.StatusCode
			discard(resp)
		}
		if x != nil {
			x.retry(r, RetryInfo{Attempt: attempt, Status: status, Err: err, Wait: d.Wait, Reason: d.Reason, Header: d.Header})
			if d.Wait > 0 {
				x.wait(r, WaitInfo{Wait: d.Wait, Reason: d.Reason, Header: d.Header, Status: status})
			}
		}
		if err := sleep(ctx, d.Wait); err != nil {
			return nil, err
		}
	}
}

// wait reports a pause; x may be nil (no trace).
func (x *exchange) wait(r *http.Request, w WaitInfo) {
	if x == nil || x.trace.Wait == nil {
		return
	}
	w.Method, w.URL, w.Host = r.Method, x.api.redactURL(r.URL), r.URL.Host
	x.trace.Wait(w)
}

func (x *exchange) retry(r *http.Request, ri RetryInfo) {
	if x.trace.Retry == nil {
		return
	}
	ri.Method, ri.URL, ri.Host = r.Method, x.api.redactURL(r.URL), r.URL.Host
	if ri.Err != nil {
		ri.Err = x.api.redact(ri.Err)
	}
	x.trace.Retry(ri)
}

func idempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// tokenSource is what the auth layer needs of a Source.
type tokenSource interface {
	TokenContext(ctx context.Context) (token.Token, error)
	Reject(ctx context.Context, access string) (token.Token, error)
}

// bearerTransport sends a connection's OAuth access token where the
// definition says (auth.oauth.send_token): by default Authorization with the
// token's type, or another header and prefix, or a query parameter.
type bearerTransport struct {
	src        tokenSource
	header     string                 // canonical header name; "" when the token goes in the query
	prefix     string                 // written before the token in the header
	typePrefix bool                   // the header starts with the token's type and a space (Bearer)
	query      string                 // the query parameter carrying the token, escaped; "" for a header
	body       string                 // the body field carrying the token (send_token.in: body); see bodytoken.go
	last       atomic.Pointer[bearer] // the header value of the last token, so a hit costs nothing
	dpop       *dpopAPI               // auth.oauth.dpop: DPoP-bound tokens go through it (flow_dpop.go); nil without
	next       http.RoundTripper
}

type bearer struct {
	access string
	value  []string
}

func (t *bearerTransport) value(tok token.Token) []string {
	if b := t.last.Load(); b != nil && b.access == tok.AccessToken {
		return b.value
	}
	prefix := t.prefix
	if t.typePrefix {
		prefix = tok.Type() + " "
	}
	b := &bearer{access: tok.AccessToken, value: []string{prefix + tok.AccessToken}}
	t.last.Store(b)
	return b.value
}

// place puts tok on r; orig is r's URL before any token was added, so that
// a replay replaces the token instead of adding a second one.
func (t *bearerTransport) place(r *http.Request, orig *url.URL, tok token.Token) error {
	if t.body != "" {
		return placeBodyToken(r, t.body, tok.AccessToken)
	}
	if t.query == "" {
		r.Header[t.header] = t.value(tok)
		return nil
	}
	u := *orig
	kv := t.query + "=" + url.QueryEscape(tok.AccessToken)
	if u.RawQuery == "" {
		u.RawQuery = kv
	} else {
		u.RawQuery += "&" + kv
	}
	r.URL = &u
	return nil
}

func (t *bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	ctx := r.Context()
	tok, err := t.src.TokenContext(ctx)
	if err != nil {
		closeBody(r)
		return nil, &credentialError{err}
	}
	orig := r.URL
	if err := t.place(r, orig, tok); err != nil {
		closeBody(r)
		return nil, &credentialError{err}
	}
	resp, err := t.send(r, tok)
	if err != nil || resp.StatusCode != http.StatusUnauthorized || nonceRefusal(tok, resp) {
		return resp, err
	}
	// The token was refused before its time (revoked, or the clocks
	// disagree): renew it once and replay. A second 401 is the answer.
	if !rewind(r) {
		return resp, nil
	}
	discard(resp)
	start := time.Now()
	renewed, err := t.src.Reject(ctx, tok.AccessToken)
	if x := exchangeOf(r); x != nil {
		if x.trace.Refresh != nil {
			ri := RefreshInfo{Method: r.Method, URL: x.api.redactURL(orig), Host: r.URL.Host, Duration: time.Since(start)}
			if err != nil {
				ri.Err = x.api.redact(err)
			}
			x.trace.Refresh(ri)
		}
		x.replay = true
	}
	if err != nil {
		return nil, &credentialError{fmt.Errorf("the API refused the access token (401) and renewing it failed: %w", err)}
	}
	if err := t.place(r, orig, renewed); err != nil {
		closeBody(r)
		return nil, &credentialError{err}
	}
	return t.send(r, renewed)
}

// send sends r, placed with tok: a DPoP-bound token with a proof of its key
// (RFC 9449 7.1), any other as it is placed.
func (t *bearerTransport) send(r *http.Request, tok token.Token) (*http.Response, error) {
	if t.dpop != nil && t.typePrefix && dpopBound(&tok) {
		return t.dpop.roundTrip(r, tok, t.next)
	}
	return t.next.RoundTrip(r)
}

// credentialError is a failure to obtain credentials for a request, which
// was therefore not sent. The token source has its own retries and locks;
// repeating the request would only repeat them.
type credentialError struct{ err error }

func (e *credentialError) Error() string { return e.err.Error() }
func (e *credentialError) Unwrap() error { return e.err }

// Reject tells the source that the API refused access (401): it returns a
// renewed token, refreshing unless another worker already replaced the
// refused one.
func (s *Source) Reject(ctx context.Context, access string) (token.Token, error) {
	return s.renew(ctx, access, true)
}

// staticTransport sends credentials that never change (Basic, API key).
type staticTransport struct {
	header string   // canonical header name, or "" for a query parameter
	value  []string // the header value
	query  string   // "name=value", escaped, for an API key in the query
	next   http.RoundTripper
}

func (t *staticTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.header != "" {
		r.Header[t.header] = t.value
	}
	if t.query != "" {
		u := *r.URL
		if u.RawQuery == "" {
			u.RawQuery = t.query
		} else {
			u.RawQuery += "&" + t.query
		}
		r.URL = &u
	}
	return t.next.RoundTrip(r)
}

// DefaultResponseHeaderTimeout bounds the wait for an API's answer to start.
const DefaultResponseHeaderTimeout = 60 * time.Second

// newBaseTransport returns the HTTP transport API calls go out on: bounded
// dial, TLS handshake and time to first byte (the caller's context bounds the
// rest), with enough idle connections for parallel calls to one host.
func newBaseTransport(headerTimeout time.Duration) *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: headerTimeout,
	}
}
