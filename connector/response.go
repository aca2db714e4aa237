package connector

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"mime"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/connector-engine/connector/connector/token"
	"github.com/connector-engine/connector/definitions"
)

// maxLifetime caps a provider's expires_in: a huge value must not overflow
// time arithmetic or make a token live "forever".
const maxLifetime = 10 * 365 * 24 * time.Hour

// parseTokenResponse reads a successful token response in JSON (or, for
// providers such as GitHub without an Accept header, form encoding), using
// the definition's field names. requested is when the request was sent: the
// lifetime counts from then, on the local clock, so a skewed clock on either
// side cannot make a token look fresher than it is.
func parseTokenResponse(contentType string, body []byte, m *definitions.TokenResponse, requested time.Time) (*token.Token, error) {
	fields, err := decodeBody(contentType, body)
	if err != nil {
		return nil, err
	}
	// An error object with HTTP 200 is still an error.
	if e, ok := fields["error"]; ok && e != nil {
		te := &TokenError{}
		switch v := e.(type) {
		case string:
			te.Code = v
		case map[string]any:
			te.Code = fmt.Sprint(v["code"])
			te.Description, _ = v["message"].(string)
		default:
			te.Code = fmt.Sprint(v)
		}
		if d, ok := fields["error_description"].(string); ok {
			te.Description = d
		}
		return nil, te
	}
	tok := &token.Token{}
	access, ok := lookupPath(fields, m.AccessToken).(string)
	if !ok || access == "" {
		return nil, fmt.Errorf("the token response has no %s string", m.AccessToken)
	}
	tok.AccessToken = access
	if v, ok := lookupPath(fields, m.TokenType).(string); ok {
		tok.TokenType = v
	}
	// DPoP (RFC 9449 5): the caller checks that it sent a proof.
	if tok.TokenType != "" && !strings.EqualFold(tok.TokenType, "bearer") && !strings.EqualFold(tok.TokenType, "DPoP") {
		return nil, fmt.Errorf("the token response has token_type %q; only bearer tokens are supported", tok.TokenType)
	}
	if v, ok := lookupPath(fields, m.RefreshToken).(string); ok {
		tok.RefreshToken = v
	}
	lifetime := m.DefaultExpiresIn
	if raw := lookupPath(fields, m.ExpiresIn); raw != nil {
		secs, err := number(raw)
		if err != nil {
			return nil, fmt.Errorf("the token response's %s: %v", m.ExpiresIn, err)
		}
		if secs < 0 {
			return nil, fmt.Errorf("the token response's %s is negative (%v)", m.ExpiresIn, secs)
		}
		if m.ExpiresInUnit == "milliseconds" {
			secs /= 1000
		}
		lifetime = time.Duration(math.Min(secs, maxLifetime.Seconds()) * float64(time.Second))
	} else if raw := lookupPath(fields, m.ExpiresAt); m.ExpiresAt != "" && raw != nil {
		at, err := absoluteTime(raw)
		if err != nil {
			return nil, fmt.Errorf("the token response's %s: %v", m.ExpiresAt, err)
		}
		// The provider's clock: a lifetime that has already run out (or a
		// skewed clock) leaves the default, and a 401 renews sooner.
		lifetime = min(at.Sub(requested), maxLifetime)
	}
	if lifetime <= 0 {
		// expires_in 0 names no usable lifetime (some servers truncate a
		// sub-second remainder to it): assume the definition's default, as
		// for a missing one, and let a 401 renew the token earlier.
		lifetime = cmp.Or(m.DefaultExpiresIn, definitions.DefaultTokenLifetime)
	}
	tok.Expiry, tok.Obtained = requested.Add(lifetime), requested
	if raw := lookupPath(fields, m.CreatedAt); raw != nil {
		if secs, err := number(raw); err == nil && secs > 0 && secs < 1e11 {
			tok.IssuedAt = time.Unix(int64(secs), 0).UTC()
		}
	}
	switch v := lookupPath(fields, m.Scope).(type) {
	case string:
		tok.Scopes = strings.Fields(strings.ReplaceAll(v, ",", " "))
	case []any:
		for _, s := range v {
			if str, ok := s.(string); ok {
				tok.Scopes = append(tok.Scopes, str)
			}
		}
	}
	return tok, nil
}

func decodeBody(contentType string, body []byte) (map[string]any, error) {
	mt, _, _ := mime.ParseMediaType(contentType)
	trimmed := bytes.TrimSpace(body)
	if mt == "application/x-www-form-urlencoded" || (mt == "text/plain" && !bytes.HasPrefix(trimmed, []byte("{"))) {
		vals, err := url.ParseQuery(string(trimmed))
		if err != nil {
			return nil, errors.New("the token response is neither JSON nor form-encoded")
		}
		out := make(map[string]any, len(vals))
		for k := range vals {
			out[k] = vals.Get(k)
		}
		return out, nil
	}
	if len(trimmed) == 0 {
		return nil, errors.New("the token response is empty")
	}
	if trimmed[0] != '{' {
		what := "not JSON"
		if trimmed[0] == '<' {
			what = "HTML, not JSON (is the token URI right?)"
		}
		return nil, fmt.Errorf("the token response is %s", what)
	}
	var out map[string]any
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		return nil, errors.New("the token response is not valid JSON")
	}
	return out, nil
}

// lookupPath follows a dotted path through nested objects.
func lookupPath(m map[string]any, path string) any {
	var cur any = m
	for _, p := range strings.Split(path, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = obj[p]
	}
	return cur
}

// absoluteTime reads an expiry: Unix seconds (milliseconds past 10^11, a
// date in 5138 as seconds), or an RFC 3339 time.
func absoluteTime(v any) (time.Time, error) {
	if s, ok := v.(string); ok {
		if t, err := time.Parse(time.RFC3339, strings.TrimSpace(s)); err == nil {
			return t, nil
		}
	}
	n, err := number(v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%v; want Unix seconds or an RFC 3339 time", err)
	}
	if n <= 0 || n > 1e15 {
		return time.Time{}, fmt.Errorf("%v is not a time", n)
	}
	if n > 1e11 {
		return time.UnixMilli(int64(n)), nil
	}
	return time.Unix(int64(n), 0), nil
}

// number accepts a JSON number or a numeric string (both occur in the wild).
func number(v any) (float64, error) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = strings.TrimSpace(x)
	case float64:
		return x, nil
	default:
		return 0, fmt.Errorf("is %T, not a number", v)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	return f, nil
}
