package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/definitions"
)

// --verbose prints every HTTP exchange on stderr as it ends: the method, the
// URL with every secret as ***, the status, how long it took; and what the
// engine decided: retries, waits (what for, how long), token refreshes after
// a 401. API requests are seen through the engine's connector.Trace (see
// trace.go); token requests (exchange, refresh, revocation) and a session's
// login through this RoundTripper under the flow's or the login's HTTP client.

// verboseTransport logs exchanges through next.
type verboseTransport struct {
	next http.RoundTripper
	log  io.Writer
	mu   sync.Mutex
	// secrets are redacted wherever they appear: the connection's, and
	// every credential a request carried (learnt from its headers).
	secrets []string
	// secretParams are query parameters whose value is a secret whatever
	// it is (an API key or access token in the query).
	secretParams map[string]bool
	// tokenHeaders are the headers the definition's send_token names
	// (X-Tableau-Auth): a credential whatever the name says.
	tokenHeaders map[string]bool
	// idempotency is the definition's idempotency header: its value
	// identifies a request and grants nothing, so it shows.
	idempotency string
	n           int
}

func newVerbose(next http.RoundTripper, log io.Writer, c *connector.Connection) *verboseTransport {
	v := &verboseTransport{next: next, log: log, secretParams: map[string]bool{
		"access_token": true, "refresh_token": true, "client_secret": true, "code": true, "code_verifier": true,
		"token": true, "id_token": true, "password": true, "api_key": true, "apikey": true, "key": true,
	}, tokenHeaders: map[string]bool{}}
	v.addSecret(c.ClientSecret, c.AccessToken, c.RefreshToken)
	if d := c.Definition; d != nil {
		v.idempotency = http.CanonicalHeaderKey(d.Retry.IdempotencyHeader)
		for _, f := range d.Fields {
			if f.Secret {
				v.addSecret(c.Fields[f.Name])
			}
		}
		if k := d.Auth.APIKey; k != nil && k.In == "query" {
			v.secretParams[strings.ToLower(k.Name)] = true
		}
		// Where the OAuth or session token travels: a session token (a login's
		// answer) is known to no one here before the first request carries it.
		var sts []definitions.SendToken
		if o := d.Auth.OAuth; o != nil {
			sts = append(sts, o.SendToken)
		}
		if s := d.Auth.Session; s != nil {
			sts = append(sts, s.SendToken)
		}
		for _, st := range sts {
			switch st.In {
			case definitions.TokenInQuery:
				v.secretParams[strings.ToLower(st.Name)] = true
			case definitions.TokenInHeader, "":
				if st.Name != "" {
					v.tokenHeaders[http.CanonicalHeaderKey(st.Name)] = true
				}
			}
		}
	}
	return v
}

func (v *verboseTransport) addSecret(ss ...string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, s := range ss {
		if len(s) >= 4 {
			v.secrets = append(v.secrets, s)
		}
	}
}

// isCredential reports whether a header carries a secret; such values are
// learnt and never shown. The definition's idempotency header is not one,
// whatever its name (Idempotency-Token).
func (v *verboseTransport) isCredential(name string) bool {
	if v.idempotency != "" && http.CanonicalHeaderKey(name) == v.idempotency {
		return false
	}
	if v.tokenHeaders[http.CanonicalHeaderKey(name)] {
		return true
	}
	switch http.CanonicalHeaderKey(name) {
	case "Authorization", "Proxy-Authorization", "Cookie", "X-Api-Key":
		return true
	}
	n := strings.ToLower(name)
	return strings.Contains(n, "token") || strings.Contains(n, "secret") || strings.Contains(n, "key")
}

func (v *verboseTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return v.exchange(req, "")
}

// labelled sends a kind of request the verbose line names, such as the
// session login, through the same log (one numbering, one set of secrets).
type labelled struct {
	v     *verboseTransport
	label string
}

func (l labelled) RoundTrip(req *http.Request) (*http.Response, error) {
	return l.v.exchange(req, " ("+l.label+")")
}

// exchange sends req, learning the credentials it carries first, and logs
// one line; what names the request ("" lets a token request name itself
// by its grant_type).
func (v *verboseTransport) exchange(req *http.Request, what string) (*http.Response, error) {
	for name, vals := range req.Header {
		for _, val := range vals {
			if v.isCredential(name) {
				v.addSecret(val)
				if _, cred, ok := strings.Cut(val, " "); ok {
					v.addSecret(cred)
				}
			}
		}
	}
	ct := req.Header.Get("Content-Type")
	switch b := v.body(req); {
	case b == nil:
	case strings.HasPrefix(ct, "application/x-www-form-urlencoded"):
		if form, err := url.ParseQuery(string(b)); err == nil {
			for k, vals := range form {
				if v.secretParams[strings.ToLower(k)] || secretName(k) {
					v.addSecret(vals...)
				}
			}
			if g := form.Get("grant_type"); g != "" && what == "" {
				what = " (token request: " + g + ")"
			} else if form.Has("token") && what == "" {
				what = " (token revocation or introspection)"
			}
		}
	case strings.HasPrefix(ct, "application/json"):
		// A session login's JSON body: a password held in a field the
		// definition forgot to mark secret is still one.
		var doc any
		if json.Unmarshal(b, &doc) == nil {
			v.learnJSON(doc, false)
		}
	}
	v.mu.Lock()
	v.n++
	n := v.n
	v.mu.Unlock()
	start := time.Now()
	resp, err := v.next.RoundTrip(req)
	took := time.Since(start).Round(time.Millisecond)
	line := fmt.Sprintf("http %d: %s %s%s", n, req.Method, v.redactURL(req.URL), what)
	if err != nil {
		line += fmt.Sprintf(" -> error after %s: %v", took, err)
	} else {
		line += fmt.Sprintf(" -> %d %s in %s", resp.StatusCode, http.StatusText(resp.StatusCode), took)
		if ra := resp.Header.Get("Retry-After"); ra != "" {
			line += "; the server asks to retry after " + ra
		}
		for _, h := range []string{"X-Rate-Limit-Remaining", "X-RateLimit-Remaining", "RateLimit-Remaining"} {
			if rem := resp.Header.Get(h); rem != "" {
				line += "; rate limit remaining " + rem
				if reset := cutFirst(resp.Header, "X-Rate-Limit-Reset", "X-RateLimit-Reset", "RateLimit-Reset"); reset != "" {
					line += ", reset " + reset
				}
				break
			}
		}
		if resp.StatusCode == http.StatusTooManyRequests {
			line += "; rate limited: the engine waits and retries as the definition's policy says"
		}
	}
	fmt.Fprintln(v.log, safeText(v.redact(line)))
	return resp, err
}

// body returns a copy of req's body (at most 64 KiB) when it can be read
// again, nil otherwise; the request still sends the original.
func (v *verboseTransport) body(req *http.Request) []byte {
	if req.GetBody == nil || req.Method == http.MethodGet {
		return nil
	}
	body, err := req.GetBody()
	if err != nil {
		return nil
	}
	defer body.Close()
	b, _ := io.ReadAll(io.LimitReader(body, 64<<10))
	return b
}

// learnJSON records the string values of secret-named members of a JSON
// body (password, client_secret, api_key, token...), at any depth;
// secret is whether the enclosing member's name was one.
func (v *verboseTransport) learnJSON(doc any, secret bool) {
	switch x := doc.(type) {
	case map[string]any:
		for k, e := range x {
			v.learnJSON(e, secret || v.secretParams[strings.ToLower(k)] || secretName(k))
		}
	case []any:
		for _, e := range x {
			v.learnJSON(e, secret)
		}
	case string:
		if secret {
			v.addSecret(x)
		}
	}
}

// secretName reports whether a body member or form parameter's name says
// it holds a credential.
func secretName(name string) bool {
	n := strings.ToLower(name)
	// token_type_hint=refresh_token, subject_token_type, ...: names of
	// kinds, whose values ("refresh_token") must not become secrets.
	for _, kind := range []string{"_type", "_hint", "_method"} {
		if strings.HasSuffix(n, kind) {
			return false
		}
	}
	for _, w := range []string{"password", "passwd", "secret", "token", "apikey", "api_key", "credential"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

func cutFirst(h http.Header, names ...string) string {
	for _, n := range names {
		if v := h.Get(n); v != "" {
			return v
		}
	}
	return ""
}

// redactURL shows u without its user info and with secret query values as ***.
func (v *verboseTransport) redactURL(u *url.URL) string {
	c := *u
	c.User = nil
	if c.RawQuery != "" {
		q := c.Query()
		for k := range q {
			if v.secretParams[strings.ToLower(k)] {
				for i := range q[k] {
					v.addSecret(q[k][i])
					q[k][i] = "***"
				}
			}
		}
		c.RawQuery = strings.ReplaceAll(q.Encode(), "%2A%2A%2A", "***")
	}
	return c.String()
}

// redact replaces every known secret, raw or URL-encoded, by ***.
func (v *verboseTransport) redact(s string) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, sec := range v.secrets {
		s = strings.ReplaceAll(s, sec, "***")
		if esc := url.QueryEscape(sec); esc != sec {
			s = strings.ReplaceAll(s, esc, "***")
		}
	}
	return s
}

// baseTransport is what the API sends through when the CLI wraps it: the
// engine's bounds on waiting for an answer, on a clone of the default
// transport.
func baseTransport() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = connector.DefaultResponseHeaderTimeout
	return t
}

// verbose returns the logging transport of a connection when --verbose is
// given (nil otherwise), and makes the source's token requests go through it.
func (a *app) verboseFor(c *connector.Connection, src *connector.Source) *verboseTransport {
	if !a.verbose {
		return nil
	}
	v := newVerbose(baseTransport(), a.stderr, c)
	if src != nil && src.Flow() != nil { // OAuth 1.0a has no OAuth 2.0 flow
		f := src.Flow()
		client := *f.HTTPClient // keeps its timeout and redirect policy
		client.Transport = v
		f.HTTPClient = &client
	}
	if src != nil && src.Session() != nil { // auth.scheme: session: its login is an exchange too
		l := src.Session()
		client := *l.HTTPClient
		client.Transport = labelled{v: v, label: "session login"}
		l.HTTPClient = &client
	}
	return v
}
