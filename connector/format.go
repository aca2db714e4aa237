package connector

import "fmt"

// Every type here can reach a secret (the client secret and secret fields
// through its placeholder values, tokens through its source), and fmt
// prints unexported fields: each prints a redacted description for every
// verb instead, whether printed as a value, a pointer or inside a struct.

// Format keeps every verb on String: %+v of the value would print the verifier.
func (a Attempt) Format(f fmt.State, verb rune) { redactedFormat(f, verb, a.String()) }

// GoString keeps %#v redacted.
func (a Attempt) GoString() string { return a.String() }

// String describes the flow by its connection; its placeholder values (the
// client secret, secret fields) are never printed.
func (f Flow) String() string { return "flow{" + connectionName(f.conn) + "}" }

// Format keeps every verb on String.
func (f Flow) Format(s fmt.State, verb rune) { redactedFormat(s, verb, f.String()) }

// GoString keeps %#v redacted.
func (f Flow) GoString() string { return f.String() }

func connectionName(c *Connection) string {
	if c == nil {
		return "<no connection>"
	}
	return c.String()
}

// String describes the API by its connection and base URL; its placeholder
// values and tokens are never printed.
func (a API) String() string {
	base := ""
	if a.base != nil {
		base = " base=" + a.base.Redacted()
	}
	return "api{" + connectionName(a.conn) + base + "}"
}

// Format keeps every verb on String.
func (a API) Format(f fmt.State, verb rune) { redactedFormat(f, verb, a.String()) }

// GoString keeps %#v redacted.
func (a API) GoString() string { return a.String() }

// String describes the source by its connection; the cached token prints
// redacted. (A Source holds a mutex and is never copied, so these have
// pointer receivers.)
func (s *Source) String() string { return "source{" + connectionName(s.conn) + "}" }

// Format keeps every verb on String.
func (s *Source) Format(f fmt.State, verb rune) { redactedFormat(f, verb, s.String()) }

// GoString keeps %#v redacted.
func (s *Source) GoString() string { return s.String() }

// redactedFormat writes s, the redacted description of a value, for any verb
// (quoted for %q), so that no verb reaches the fields behind it.
func redactedFormat(f fmt.State, verb rune, s string) {
	if verb == 'q' {
		s = fmt.Sprintf("%q", s)
	}
	_, _ = f.Write([]byte(s))
}
