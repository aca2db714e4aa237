package connector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"time"

	"github.com/connector-engine/connector/definitions"
)

// Pushed authorization requests (RFC 9126): the authorization parameters
// go to the provider over a back channel, authenticated as the client, and
// the browser gets only a short-lived, single-use reference to them.

// opPAR names the request in errors.
const opPAR = "pushed authorization request"

// maxRequestURI caps the request_uri taken from the provider: it is put
// into the URL the user's browser opens, and real ones are under 100 bytes.
const maxRequestURI = 2048

// maxPushedLifetime caps the expires_in taken from the provider (RFC 9126
// 2.2 suggests 5 to 600 seconds), so that a huge one cannot overflow the
// expiry.
const maxPushedLifetime = 24 * time.Hour

// push POSTs the authorization parameters q to par_uri with the client's
// authentication (RFC 9126 2.1) and returns the query that replaces them in
// the authorization URL, client_id and request_uri (4), and when the
// request_uri expires: expires_in (2.2) counted from before the push, so
// that the expiry is never later than the provider's. Zero when the answer
// has no expires_in.
func (f *Flow) push(ctx context.Context, vals []string, q url.Values) (url.Values, time.Time, error) {
	start := f.Now()
	// q already carries the definition's names for the standard parameters
	// (and none it turned off); send passes a name that is not a standard
	// one through as it is. Sorted so that the body is the same every time.
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	std := make([][2]string, 0, len(keys))
	for _, k := range keys {
		std = append(std, [2]string{k, q.Get(k)})
	}
	// Pushing twice is harmless (each push gets its own request_uri, and
	// only the one the browser opens is used), so it is retried like a
	// safe request.
	ctx = f.tokenEndpointAudience(ctx, vals)
	resp, body, err := f.send(ctx, f.o.PARURI, vals, std, true, true, f.o.TokenRequest.ClientAuth)
	var redirect *RedirectError
	if errors.As(err, &redirect) {
		redirect.Op = opPAR
		return nil, time.Time{}, redirect
	}
	if err != nil {
		return nil, time.Time{}, &RequestError{Op: opPAR, Err: f.redact(err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 { // 2.3: 400 invalid_request, 401 invalid_client, 413, 429, ...
		return nil, time.Time{}, f.tokenError(opPAR, resp, body)
	}
	var answer struct {
		RequestURI string          `json:"request_uri"`
		ExpiresIn  json.RawMessage `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &answer); err != nil {
		return nil, time.Time{}, fmt.Errorf("%s for connection %s: the answer (HTTP %d) is not a JSON object", opPAR, f.conn.Key(), resp.StatusCode)
	}
	switch {
	case answer.RequestURI == "":
		return nil, time.Time{}, fmt.Errorf("%s for connection %s: the answer (HTTP %d) has no request_uri (RFC 9126 2.2)", opPAR, f.conn.Key(), resp.StatusCode)
	case len(answer.RequestURI) > maxRequestURI:
		return nil, time.Time{}, fmt.Errorf("%s for connection %s: the request_uri is longer than %d bytes; refusing it", opPAR, f.conn.Key(), maxRequestURI)
	}
	var expires float64
	var until time.Time
	if err := json.Unmarshal(answer.ExpiresIn, &expires); err != nil || expires <= 0 {
		// 2.2 requires a positive lifetime; a provider without one would
		// still work, but a wrong one says the endpoint is not a PAR one.
		if len(answer.ExpiresIn) != 0 {
			return nil, time.Time{}, fmt.Errorf("%s for connection %s: expires_in %s is not a positive number of seconds (RFC 9126 2.2)", opPAR, f.conn.Key(), answer.ExpiresIn)
		}
	} else {
		until = start.Add(time.Duration(min(expires, maxPushedLifetime.Seconds()) * float64(time.Second)))
	}
	out := url.Values{}
	f.setStd(out, "client_id", f.conn.ClientID)
	out.Set("request_uri", answer.RequestURI)
	return out, until, nil
}

// audienceKey carries, in a request's context, the URL that a
// private_key_jwt client assertion names as its audience when it is not
// the URL the request goes to.
type audienceKey struct{}

// assertionAudience is the URL a client assertion for a request to u names
// in aud (unless assertion.audience says otherwise). For the pushed
// authorization request it is the token endpoint's: RFC 9126 2 recommends
// the issuer and has servers accept the issuer, the token endpoint's URL or
// the PAR endpoint's, but fosite, like other servers that check aud against
// their token endpoint only, refuses the PAR endpoint's URL, and the
// definition may name no issuer. The token endpoint's URL is the one value
// every conforming server accepts.
//
// Revocation, introspection and the device authorization request use it
// too: RFC 7523 3 names the token endpoint's URL as an audience that
// identifies the server, and fosite refuses their own URLs as well.
func (f *Flow) tokenEndpointAudience(ctx context.Context, vals []string) context.Context {
	if f.o.TokenRequest.ClientAuth != definitions.ClientAuthPrivateKeyJWT || f.o.TokenRequestURI == nil {
		return ctx
	}
	raw, err := f.o.TokenRequestURI.Expand(vals)
	if err != nil {
		return ctx // the request's own URL, as before; the token request will say what is wrong
	}
	u, err := url.Parse(raw)
	if err != nil {
		return ctx
	}
	return context.WithValue(ctx, audienceKey{}, u)
}

func assertionAudience(ctx context.Context, u *url.URL) *url.URL {
	if aud, ok := ctx.Value(audienceKey{}).(*url.URL); ok {
		return aud
	}
	return u
}

// Pushes reports whether the definition pushes its authorization requests
// (par_uri, RFC 9126).
func (f *Flow) Pushes() bool { return f.o.PARURI != nil }
