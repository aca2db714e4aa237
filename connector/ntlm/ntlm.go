// Package ntlm authenticates HTTP requests with NTLM (MS-NLMP, carried in
// WWW-Authenticate and Authorization headers as RFC 4559 describes for
// Negotiate), the scheme of on-premises Microsoft APIs: Business Central and
// NAV OData, SharePoint Server, SQL Server Reporting Services.
//
// NTLM authenticates a TCP connection, not a request: the negotiate message,
// the server's challenge and the authenticate message must travel on one
// connection, and the request (with its body) is sent again at each leg.
// The messages and the NTLMv2 response are github.com/Azure/go-ntlmssp's
// (its Negotiator); this package adds what an API client needs around it:
//
//   - connection affinity: each request runs on a slot, an HTTP/1.1
//     transport holding at most one connection per host, used by one request
//     at a time (from sending it until its response body is closed), so the
//     three legs cannot be split across connections by a concurrent request,
//     and the next request on the slot finds its connection already
//     authenticated and needs no handshake;
//   - a clear error when the server refuses the credentials or offers no
//     NTLM, instead of a bare 401;
//   - credentials that never appear in String, %v or errors.
//
// It knows nothing of definitions or stores.
package ntlm

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/Azure/go-ntlmssp"
)

// Credentials are an account's: the password never travels, the client
// proves it knows it.
type Credentials struct {
	Username string // user, DOMAIN\user or user@domain
	Password string
	Domain   string // the account's domain; "" when Username names it or there is none
}

// Account is the account as NTLM names it: DOMAIN\user, or the user name as
// given when it already says its domain.
func (c Credentials) Account() string {
	if c.Domain == "" || strings.ContainsAny(c.Username, `\@`) {
		return c.Username
	}
	return c.Domain + `\` + c.Username
}

// String keeps the password out of logs.
func (c Credentials) String() string { return "ntlm{account=" + c.Account() + ", password=***}" }

// GoString keeps the password out of %#v.
func (c Credentials) GoString() string { return c.String() }

// Format keeps every fmt verb on the redacted String.
func (c Credentials) Format(f fmt.State, verb rune) { _, _ = io.WriteString(f, c.String()) }

// DefaultSlots is how many requests a Transport runs at once by default.
const DefaultSlots = 16

// Transport authenticates every request with NTLM. It is safe for
// concurrent use.
type Transport struct {
	creds   Credentials
	newSlot func() http.RoundTripper
	idle    chan http.RoundTripper // slots not in use
	made    chan struct{}          // one token per slot made; its capacity bounds them
}

// New returns a Transport signing in with creds. newSlot makes the round
// tripper of one slot; it must keep one connection per host and reuse it
// (SlotTransport does, from the caller's *http.Transport). At most slots
// requests run at once (DefaultSlots when slots <= 0); more wait for a slot
// or their context.
func New(creds Credentials, newSlot func() http.RoundTripper, slots int) *Transport {
	if slots <= 0 {
		slots = DefaultSlots
	}
	return &Transport{creds: creds, newSlot: newSlot, idle: make(chan http.RoundTripper, slots), made: make(chan struct{}, slots)}
}

// SlotTransport returns a copy of base for one slot: at most one connection
// per host, and HTTP/1.1, since NTLM authenticates a connection and HTTP/2
// would multiplex other requests onto it (IIS answers NTLM over HTTP/1.1
// only).
func SlotTransport(base *http.Transport) *http.Transport {
	t := base.Clone()
	t.MaxConnsPerHost, t.MaxIdleConnsPerHost = 1, 1
	t.ForceAttemptHTTP2 = false
	t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	return t
}

// String keeps the password out of logs.
func (t *Transport) String() string { return "ntlm-transport{account=" + t.creds.Account() + "}" }

// Format keeps every fmt verb on the redacted String.
func (t *Transport) Format(f fmt.State, verb rune) { _, _ = io.WriteString(f, t.String()) }

func (t *Transport) acquire(ctx context.Context) (http.RoundTripper, error) {
	select {
	case s := <-t.idle:
		return s, nil
	default:
	}
	select {
	case s := <-t.idle:
		return s, nil
	case t.made <- struct{}{}:
		return t.newSlot(), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (t *Transport) release(s http.RoundTripper) { t.idle <- s } // never blocks: at most cap(made) slots exist

// RefusedError is a server answering 401 to NTLM: it refused the
// credentials, or offered no NTLM at all. It names the account, never the
// password.
type RefusedError struct {
	Account   string
	Handshake bool     // the handshake completed and the server still refused
	Offered   []string // the schemes of the server's WWW-Authenticate headers
}

func (e *RefusedError) Error() string {
	switch {
	case e.Handshake:
		return fmt.Sprintf("NTLM: the server refused the credentials of %s (HTTP 401 after the handshake); check the connection's username, password and domain", e.Account)
	case len(e.Offered) == 0:
		return "NTLM: the server answered HTTP 401 without a WWW-Authenticate header, so it offers no NTLM; check the base URL, or the scheme the API uses"
	case offersNTLM(e.Offered):
		return "NTLM: the server did not answer the negotiate message with a usable challenge (this client speaks NTLMv2 only, without key exchange); check the server's NTLM settings"
	}
	return fmt.Sprintf("NTLM: the server answered HTTP 401 and offers %s, not NTLM or Negotiate; use the definition's scheme for that", strings.Join(e.Offered, ", "))
}

func offersNTLM(schemes []string) bool {
	for _, s := range schemes {
		if strings.EqualFold(s, "NTLM") || strings.EqualFold(s, "Negotiate") {
			return true
		}
	}
	return false
}

// counter counts the exchanges of one request's handshake.
type counter struct {
	n    int
	next http.RoundTripper
}

// RoundTrip reads a 401's body (a short page) into memory and closes it at
// once: the Negotiator keeps the first 401 open until the handshake ends,
// and that would hold the slot's one connection, so the next leg could not
// go out on it.
func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n++
	resp, err := c.next.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusUnauthorized {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(data))
	}
	return resp, err
}

// RoundTrip sends r on a slot, running the NTLM handshake when the slot's
// connection is not authenticated yet. The body is sent again at each leg
// (from r.GetBody, or kept in memory). A 401 after the handshake, or a 401
// offering no NTLM, is a *RefusedError.
func (t *Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	s, err := t.acquire(r.Context())
	if err != nil {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, err
	}
	// The Negotiator reads the credentials from Basic auth on its copy and
	// removes the header before anything is sent (AllowBasicAuth is off, so
	// the password never goes out in Basic).
	r = r.Clone(r.Context())
	if r.Body == http.NoBody || r.Body != nil && r.ContentLength == 0 && r.GetBody != nil && isEmpty(r.GetBody) {
		// The Negotiator rewinds a body only after the transport closed it,
		// and the transport does not close an empty one: it would wait for
		// ever. Nothing to resend anyway.
		r.Body, r.GetBody = nil, nil
	}
	r.SetBasicAuth(t.creds.Account(), t.creds.Password)
	c := &counter{next: s}
	resp, err := ntlmssp.Negotiator{RoundTripper: c}.RoundTrip(r)
	if err != nil {
		t.release(s)
		return nil, err
	}
	if resp.StatusCode == http.StatusUnauthorized {
		e := &RefusedError{Account: t.creds.Account(), Handshake: c.n >= 3}
		for _, v := range resp.Header.Values("Www-Authenticate") {
			scheme, _, _ := strings.Cut(strings.TrimSpace(v), " ")
			e.Offered = append(e.Offered, scheme)
		}
		_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
		resp.Body.Close()
		t.release(s)
		return nil, e
	}
	resp.Body = &slotBody{ReadCloser: resp.Body, release: func() { t.release(s) }}
	return resp, nil
}

// isEmpty reports whether a body from getBody has no bytes.
func isEmpty(getBody func() (io.ReadCloser, error)) bool {
	b, err := getBody()
	if err != nil {
		return false
	}
	defer b.Close()
	n, _ := b.Read(make([]byte, 1))
	return n == 0
}

// slotBody gives the slot back when the response body is closed: until
// then its connection is the response's.
type slotBody struct {
	io.ReadCloser
	once    sync.Once
	release func()
}

func (b *slotBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}
