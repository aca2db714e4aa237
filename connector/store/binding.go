package store

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Binding is what a record's token was issued for. A token is only ever
// spent by a connection with the same binding: another connection naming
// the same id (by mistake, or another tenant on purpose) would otherwise
// send the bearer token to its own API host and the refresh token to its
// own token endpoint. Stores keep it readable and seal the token with it as
// associated data (see Sealer.SealToken), so a binding altered at rest makes
// the token fail to open.
//
// The zero Binding marks a record written before bindings existed; the
// connector adopts the binding of the first connection that uses it.
type Binding struct {
	// Tenant is who the connection belongs to in a multi-tenant runtime;
	// "" for the CLI.
	Tenant      string `json:"tenant,omitempty"`
	Definition  string `json:"definition"`  // the definition's name
	Environment string `json:"environment"` // the environment's name
	ClientID    string `json:"client_id"`
	// TokenOrigin is the origin (scheme://host[:port]) of the token
	// endpoint; when the refresh, revocation or introspection endpoints,
	// which also receive tokens, are on other origins, those follow,
	// space-separated and sorted.
	TokenOrigin string `json:"token_origin"`
	APIOrigin   string `json:"api_origin"` // the origin of the API base URL
}

// IsZero reports whether b is the zero Binding of a record written before
// bindings existed.
func (b Binding) IsZero() bool { return b == Binding{} }

// Equal reports whether b and o bind to the same thing.
func (b Binding) Equal(o Binding) bool { return b == o }

// Diff names the parts in which b and o differ ("tenant", "definition",
// "environment", "client id", "token endpoint origin", "API origin"), in
// that order; none when they are equal. It names parts, never values, so
// that it can be shown to a tenant who does not own the other record.
func (b Binding) Diff(o Binding) []string {
	var out []string
	for _, p := range [...]struct {
		name string
		a, b string
	}{
		{"tenant", b.Tenant, o.Tenant},
		{"definition", b.Definition, o.Definition},
		{"environment", b.Environment, o.Environment},
		{"client id", b.ClientID, o.ClientID},
		{"token endpoint origin", b.TokenOrigin, o.TokenOrigin},
		{"API origin", b.APIOrigin, o.APIOrigin},
	} {
		if p.a != p.b {
			out = append(out, p.name)
		}
	}
	return out
}

// bindingAD is the prefix of the associated data of a bound record; the NUL
// keeps it apart from any connection id, which is the whole associated
// data of an unbound one.
const bindingAD = "connector/binding/v1\x00"

// associatedData is what a record's token is sealed with: the id alone for
// an unbound record (as before bindings), else the id and every part of
// the binding, unambiguously encoded.
func associatedData(id string, b Binding) []byte {
	if b.IsZero() {
		return []byte(id)
	}
	parts, _ := json.Marshal([]string{id, b.Tenant, b.Definition, b.Environment, b.ClientID, b.TokenOrigin, b.APIOrigin})
	return append([]byte(bindingAD), parts...)
}

// String describes the binding (it holds no secret).
func (b Binding) String() string {
	if b.IsZero() {
		return "binding{}"
	}
	var s strings.Builder
	s.WriteString("binding{")
	if b.Tenant != "" {
		s.WriteString("tenant=" + b.Tenant + " ")
	}
	s.WriteString("definition=" + b.Definition + " env=" + b.Environment + " client=" + b.ClientID +
		" token=" + b.TokenOrigin + " api=" + b.APIOrigin + "}")
	return s.String()
}

// BindingColumn is b as the SQL stores keep it: JSON text, or nil (NULL) for
// an unbound record.
func BindingColumn(b Binding) (any, error) {
	if b.IsZero() {
		return nil, nil
	}
	data, err := json.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("store: encoding a binding: %w", err)
	}
	return string(data), nil
}

// ParseBindingColumn reads what BindingColumn wrote (nil or empty: unbound).
// Text that does not decode cannot be the binding the token was sealed
// with, so it yields a binding no token opens with: the read then fails as
// the tampering it is, instead of passing as an unbound record.
func ParseBindingColumn(data []byte) Binding {
	var b Binding
	if len(data) == 0 {
		return b
	}
	if err := json.Unmarshal(data, &b); err != nil {
		return Binding{Tenant: "\x00unreadable"}
	}
	return b
}
