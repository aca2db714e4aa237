package connector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
)

// Pushed authorization requests (RFC 9126): the authorization parameters
// go to the provider over a back channel, authenticated as the client, and
// the browser gets only a short-lived, single-use reference to them.

// opPAR names the request in errors.
const opPAR = "pushed authorization request"

// maxRequestURI caps the request_uri taken from the provider: it is put
// into the URL the user's browser opens, and real ones are under 100 bytes.
const maxRequestURI = 2048

// push POSTs the authorization parameters q to par_uri with the client's
// authentication (RFC 9126 2.1) and returns the query that replaces them in
// the authorization URL: client_id and request_uri (4).
func (f *Flow) push(ctx context.Context, vals []string, q url.Values) (url.Values, error) {
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
	resp, body, err := f.send(ctx, f.o.PARURI, vals, std, true, true, f.o.TokenRequest.ClientAuth)
	var redirect *RedirectError
	if errors.As(err, &redirect) {
		redirect.Op = opPAR
		return nil, redirect
	}
	if err != nil {
		return nil, &RequestError{Op: opPAR, Err: f.redact(err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 { // 2.3: 400 invalid_request, 401 invalid_client, 413, 429, ...
		return nil, f.tokenError(opPAR, resp, body)
	}
	var answer struct {
		RequestURI string          `json:"request_uri"`
		ExpiresIn  json.RawMessage `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &answer); err != nil {
		return nil, fmt.Errorf("%s for connection %s: the answer (HTTP %d) is not a JSON object", opPAR, f.conn.Key(), resp.StatusCode)
	}
	switch {
	case answer.RequestURI == "":
		return nil, fmt.Errorf("%s for connection %s: the answer (HTTP %d) has no request_uri (RFC 9126 2.2)", opPAR, f.conn.Key(), resp.StatusCode)
	case len(answer.RequestURI) > maxRequestURI:
		return nil, fmt.Errorf("%s for connection %s: the request_uri is longer than %d bytes; refusing it", opPAR, f.conn.Key(), maxRequestURI)
	}
	var expires float64
	if err := json.Unmarshal(answer.ExpiresIn, &expires); err != nil || expires <= 0 {
		// 2.2 requires a positive lifetime; a provider without one would
		// still work, but a wrong one says the endpoint is not a PAR one.
		if len(answer.ExpiresIn) != 0 {
			return nil, fmt.Errorf("%s for connection %s: expires_in %s is not a positive number of seconds (RFC 9126 2.2)", opPAR, f.conn.Key(), answer.ExpiresIn)
		}
	}
	out := url.Values{}
	f.setStd(out, "client_id", f.conn.ClientID)
	out.Set("request_uri", answer.RequestURI)
	return out, nil
}

// Pushes reports whether the definition pushes its authorization requests
// (par_uri, RFC 9126).
func (f *Flow) Pushes() bool { return f.o.PARURI != nil }
