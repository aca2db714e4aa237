package connector

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/connector-engine/connector/connector/ntlm"
)

// ntlmAPI is the auth layer of an ntlm connection: connector/ntlm with the
// connection's credentials, each of its slots a single-connection copy of
// the base transport under the trace layer. With a Base that is not an
// *http.Transport (APIOptions.Base), the slots share it, and keeping each
// handshake on one connection is up to it.
func ntlmAPI(c *Connection, vals []string, base http.RoundTripper) (http.RoundTripper, error) {
	n := c.Definition.Auth.NTLM
	var creds ntlm.Credentials
	var errs []error
	for _, f := range []struct {
		dst *string
		t   interface {
			Expand([]string) (string, error)
		}
		ok bool
	}{{&creds.Username, n.Username, n.Username != nil}, {&creds.Password, n.Password, n.Password != nil}, {&creds.Domain, n.Domain, n.Domain != nil}} {
		if f.ok {
			v, err := f.t.Expand(vals)
			*f.dst = v
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("connection %s: NTLM credentials: %w", c.Key(), err)
	}
	if creds.Username == "" || creds.Password == "" {
		return nil, fmt.Errorf("connection %s: NTLM needs a user name and a password, and one of them is empty: set the fields auth.ntlm names", c.Key())
	}
	newSlot := func() http.RoundTripper { return &traceTransport{next: base} }
	if t, ok := base.(*http.Transport); ok {
		newSlot = func() http.RoundTripper { return &traceTransport{next: ntlm.SlotTransport(t)} }
	}
	return &ntlmTransport{next: ntlm.New(creds, newSlot, 0)}, nil
}

// ntlmTransport makes a refusal final: the credentials are wrong, and
// repeating the request would only repeat the handshake.
type ntlmTransport struct{ next *ntlm.Transport }

func (t *ntlmTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	var refused *ntlm.RefusedError
	if errors.As(err, &refused) {
		return nil, &credentialError{err}
	}
	return resp, err
}
