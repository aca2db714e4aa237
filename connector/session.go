package connector

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/connector-engine/connector/connector/token"
	"github.com/connector-engine/connector/definitions"
)

// SessionLogin obtains the session tokens of a connection whose definition
// uses auth.scheme: session: it sends the credentials (the connection's
// fields) to the login endpoint and reads the token, and its lifetime, from
// the answer. It holds no token: the connection's Source keeps it, logs in
// again when it expires or the API answers 401, and serialises logins
// through the store's lock like any refresh, so that concurrent callers log
// in once.
type SessionLogin struct {
	conn *Connection
	s    *definitions.Session
	vals []string

	// HTTPClient sends the login; its Timeout bounds each attempt.
	HTTPClient *http.Client
	// Now is the clock (tests move it).
	Now func() time.Time
}

func newSessionLogin(c *Connection) (*SessionLogin, error) {
	vals, err := c.values()
	if err != nil {
		return nil, err
	}
	return &SessionLogin{conn: c, s: c.Definition.Auth.Session, vals: vals,
		HTTPClient: &http.Client{Timeout: DefaultRequestTimeout}, Now: time.Now}, nil
}

// String keeps the credentials out of logs.
func (l *SessionLogin) String() string { return "session-login{connection=" + l.conn.Key() + "}" }

// Format keeps every fmt verb on the redacted String.
func (l *SessionLogin) Format(f fmt.State, verb rune) { redactedFormat(f, verb, l.String()) }

// LoginError is a login endpoint refusing the credentials or failing.
type LoginError struct {
	Connection string
	Status     int
	Message    string // what the endpoint said, secrets removed; "" if nothing readable
}

func (e *LoginError) Error() string {
	msg := fmt.Sprintf("connection %s: the session login failed (HTTP %d)", e.Connection, e.Status)
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden {
		msg += "; check the credentials in the connection's fields"
	}
	return msg
}

// Login logs in once and returns the session token. A login consumes
// nothing, so it is retried like a client-credentials request.
func (l *SessionLogin) Login(ctx context.Context) (*token.Token, error) {
	s := l.s
	start := l.Now()
	raw, err := s.LoginURI.Expand(l.vals)
	if err != nil {
		return nil, fmt.Errorf("connection %s: expanding login_uri %s: %w", l.conn.Key(), s.LoginURI.Redacted(l.vals), err)
	}
	body, contentType, err := s.LoginBody(l.vals)
	if err != nil {
		return nil, fmt.Errorf("connection %s: the session login body: %w", l.conn.Key(), l.redact(err))
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, s.Method, raw, bodyOrNil(body))
	if err != nil {
		return nil, fmt.Errorf("connection %s: the login request: %w", l.conn.Key(), l.redact(err))
	}
	req.Header.Set("Accept", "application/json")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for _, h := range s.Headers {
		v, err := h.Value.Expand(l.vals)
		if err != nil {
			return nil, fmt.Errorf("connection %s: login header %s: %w", l.conn.Key(), h.Name, l.redact(err))
		}
		if v != "" {
			req.Header.Set(h.Name, v)
		}
	}
	resp, err := newTokenClient(noRedirects(l.HTTPClient), true).Do(req)
	if err != nil {
		return nil, &RequestError{Op: "session login", Err: l.redact(err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 3 {
		return nil, fmt.Errorf("connection %s: the login endpoint answered HTTP %d, a redirect; the credentials were not sent on: set login_uri to the endpoint itself", l.conn.Key(), resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, &RequestError{Op: "session login", Err: l.redact(err)}
	}
	if len(data) > maxBody {
		return nil, fmt.Errorf("connection %s: the login answer is larger than %d bytes; refusing it", l.conn.Key(), maxBody)
	}
	if resp.StatusCode/100 != 2 {
		return nil, &LoginError{Connection: l.conn.Key(), Status: resp.StatusCode, Message: l.redactString(loginMessage(data))}
	}
	tok := &token.Token{}
	if s.TokenHeader != "" {
		tok.AccessToken = resp.Header.Get(s.TokenHeader)
		if tok.AccessToken == "" {
			return nil, fmt.Errorf("connection %s: the login answer (HTTP %d) has no %s header, where session.token_header says the token is", l.conn.Key(), resp.StatusCode, s.TokenHeader)
		}
	} else {
		v, ok := lookupJSON(data, s.TokenPath)
		var str string
		if !ok || json.Unmarshal(v, &str) != nil || str == "" {
			return nil, fmt.Errorf("connection %s: the login answer (HTTP %d) has no string at %s, where session.token_path says the token is", l.conn.Key(), resp.StatusCode, s.TokenPath)
		}
		tok.AccessToken = str
	}
	if strings.ContainsAny(tok.AccessToken, "\r\n\x00") {
		return nil, fmt.Errorf("connection %s: the session token holds a line break or NUL, which cannot travel in a header; refusing it", l.conn.Key())
	}
	lifetime := s.DefaultExpiresIn
	if s.ExpiresInPath != "" {
		if v, ok := lookupJSON(data, s.ExpiresInPath); ok {
			var n any
			dec := json.NewDecoder(bytes.NewReader(v))
			dec.UseNumber()
			if dec.Decode(&n) != nil {
				return nil, fmt.Errorf("connection %s: the login answer's %s is not JSON", l.conn.Key(), s.ExpiresInPath)
			}
			secs, err := number(n)
			if err != nil || secs <= 0 {
				return nil, fmt.Errorf("connection %s: the login answer's %s is not a positive number of seconds", l.conn.Key(), s.ExpiresInPath)
			}
			lifetime = time.Duration(math.Min(secs, maxLifetime.Seconds()) * float64(time.Second))
		}
	}
	tok.Expiry, tok.Obtained = start.Add(lifetime), start
	return tok, nil
}

// loginMessage picks a short message out of a refusal: a JSON error or
// message string, else the start of a text body.
func loginMessage(data []byte) string {
	var m map[string]any
	if json.Unmarshal(data, &m) == nil {
		for _, k := range []string{"error_description", "message", "error", "detail"} {
			switch v := m[k].(type) {
			case string:
				return clip(v)
			case map[string]any:
				for _, kk := range []string{"message", "detail", "summary", "code"} {
					if s, ok := v[kk].(string); ok {
						return clip(s)
					}
				}
			}
		}
		return ""
	}
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("<")) {
		return "" // an HTML or XML page says nothing a person could act on in a line
	}
	return clip(string(data))
}

func clip(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// secrets are the values a login must never show: the connection's secret
// fields (the password, the API key).
func (l *SessionLogin) secrets() []string {
	var out []string
	for _, f := range l.conn.Definition.Fields {
		if f.Secret {
			out = append(out, l.vals[f.Var])
		}
	}
	return out
}

func (l *SessionLogin) redactString(s string) string {
	return redactValues(s, l.secrets()...)
}

func (l *SessionLogin) redact(err error) error {
	return errors.New(l.redactString(err.Error()))
}

// authOrigin is the binding's token origin for the schemes beyond OAuth
// 2.0, ok false for the others: a session's login endpoint (the
// credentials go there, the token comes from there), a three-legged OAuth
// 1.0a access token endpoint; "" for two-legged OAuth 1.0a, which stores
// no token.
func authOrigin(c *Connection, vals []string) (string, bool, error) {
	var key string
	var t interface {
		Expand([]string) (string, error)
	}
	switch a := c.Definition.Auth; {
	case a.Session != nil:
		key, t = "login_uri", a.Session.LoginURI
	case a.OAuth1 != nil && a.OAuth1.ThreeLegged():
		key, t = "access_token_uri", a.OAuth1.AccessTokenURI
	case a.OAuth1 != nil:
		return "", true, nil
	default:
		return "", false, nil
	}
	raw, err := t.Expand(vals)
	if err != nil {
		return "", true, fmt.Errorf("connection %s: expanding %s: %w", c.Key(), key, err)
	}
	org, err := origin(raw)
	if err != nil {
		return "", true, fmt.Errorf("connection %s: %s: %w", c.Key(), key, err)
	}
	return org, true, nil
}

// redactValues replaces every secret of four bytes or more in s, as written
// and query-escaped, with ***.
func redactValues(s string, secrets ...string) string {
	for _, sec := range secrets {
		if len(sec) >= 4 {
			s = strings.ReplaceAll(s, sec, "***")
			s = strings.ReplaceAll(s, url.QueryEscape(sec), "***")
		}
	}
	return s
}

// sessionTransport sends the session token where send_token says, as the
// OAuth bearer transport does (a 401 logs in again, once, and replays).
func sessionTransport(src *Source, st definitions.SendToken, next http.RoundTripper, added []queryPair) (*bearerTransport, []queryPair) {
	bt := &bearerTransport{src: src, next: next}
	switch st.In {
	case definitions.TokenInQuery:
		bt.query = url.QueryEscape(st.Name)
		return bt, append(added, queryPair{st.Name, ""})
	case definitions.TokenInBody:
		bt.body = st.Name
		return bt, added
	}
	bt.header, bt.prefix, bt.typePrefix = canonical(st.Name), st.Prefix, st.TypePrefix
	if bt.header == "" {
		bt.header, bt.typePrefix = "Authorization", true
	}
	return bt, added
}
