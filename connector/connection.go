package connector

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/definitions"
	"github.com/connector-engine/connector/templates"
)

// InitiateMode says what the engine may do to obtain tokens, with CData's
// InitiateOAuth meanings.
type InitiateMode string

const (
	// InitiateGetAndRefresh runs the flow when there is no token and refreshes when needed.
	InitiateGetAndRefresh InitiateMode = "GETANDREFRESH"
	// InitiateRefresh only refreshes a token obtained elsewhere.
	InitiateRefresh InitiateMode = "REFRESH"
	// InitiateOff uses only the access token given, never contacting the token endpoint.
	InitiateOff InitiateMode = "OFF"
)

// Connection is a definition plus what one tenant supplies. Build it from Go,
// a connection file (LoadConnectionFile) or a connection string
// (ParseConnectionString); Validate checks it before any network call.
type Connection struct {
	ID string // the connection's key in the store; derived when empty
	// Tenant is who the connection belongs to in a multi-tenant runtime,
	// "" for the CLI. It is part of the store binding (a record issued to
	// one tenant is never used by another) and of the derived key.
	Tenant       string
	Definition   *definitions.Definition
	Environment  string // "" for the definition's default
	ClientID     string
	ClientSecret string
	RedirectURI  string
	Scopes       []string          // nil: the definition's scopes
	Fields       map[string]string // values for the definition's fields, by name
	// BaseURL and LoginURL replace the environment's hosts, for a private
	// deployment or a local emulator.
	BaseURL  string
	LoginURL string
	Initiate InitiateMode // "" means InitiateGetAndRefresh
	// AccessToken and RefreshToken seed the connection with tokens obtained
	// elsewhere (CData's OAuthAccessToken / OAuthRefreshToken).
	AccessToken  string
	RefreshToken string

	// learned are the values of learned fields read from the store (see
	// token.Token.Values); a value in Fields wins over them.
	learned map[string]string
}

// String describes the connection without its secrets. String, Format and
// GoString have value receivers so that a Connection value, or a struct
// holding one, prints redacted too.
func (c Connection) String() string {
	def := "<no definition>"
	if c.Definition != nil {
		def = c.Definition.Name
	}
	return fmt.Sprintf("connection{id=%s definition=%s env=%s client=%s}", c.Key(), def, c.env(), c.ClientID)
}

// Format keeps every fmt verb on the redacted String.
func (c Connection) Format(f fmt.State, verb rune) { redactedFormat(f, verb, c.String()) }

// GoString keeps %#v redacted.
func (c Connection) GoString() string { return c.String() }

func (c *Connection) env() string {
	if c.Environment == "" && c.Definition != nil {
		return c.Definition.DefaultEnvironment
	}
	return c.Environment
}

// Key returns the connection's store key: ID when set, else a stable name
// derived from what identifies the grant: the tenant, definition,
// environment and client, the host overrides, and the fields that choose
// the deployment (url, host_label and hostname fields given by the
// connection: a Zendesk subdomain, a Salesforce instance). Other fields
// (a Procore company id in a header, a learned realmId) are left out, so
// that adding or changing one after connecting keeps the token. Two
// connections differing only in such fields share one record: give each
// an ID to keep them apart.
func (c *Connection) Key() string {
	if c.ID != "" {
		return c.ID
	}
	return c.derivedKey(false)
}

// legacyKey is the key derived before it was stable (every non-secret
// field hashed): records stored under it are moved to Key on first use.
func (c *Connection) legacyKey() string {
	if c.ID != "" {
		return c.ID
	}
	return c.derivedKey(true)
}

func (c *Connection) derivedKey(legacy bool) string {
	def := ""
	if c.Definition != nil {
		def = c.Definition.Name
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%s", def, c.env(), c.ClientID, c.BaseURL, c.LoginURL)
	if c.Tenant != "" { // only then, so that the keys of connections without a tenant stay as they were
		fmt.Fprintf(h, "\x00tenant=%s", c.Tenant)
	}
	if c.Definition != nil {
		for _, f := range c.Definition.Fields {
			if f.Secret || !legacy && !identifiesGrant(&f) {
				continue
			}
			// The same order and spelling as before, so that the connections
			// of a definition whose fields all identify the grant keep their keys.
			fmt.Fprintf(h, "\x00%s=%s", f.Name, c.Fields[f.Name])
		}
	}
	return fmt.Sprintf("%s.%s.%s", def, c.env(), hex.EncodeToString(h.Sum(nil))[:12])
}

// identifiesGrant reports whether a field chooses the deployment the grant
// is with (its host), which makes it part of the derived key.
func identifiesGrant(f *definitions.Field) bool {
	if f.Learn != nil {
		return false
	}
	switch f.Type {
	case "url", "host_label", "hostname":
		return true
	}
	return false
}

// Validate reports every problem with the connection at once, each saying
// what to change. Messages never contain secret values.
func (c *Connection) Validate() error {
	if c.Definition == nil {
		return errors.New("connection: no definition; name a built-in definition (for example procore) or a definition file")
	}
	d := c.Definition
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	// An unknown environment is reported by values() below.
	switch c.Initiate {
	case "", InitiateGetAndRefresh, InitiateRefresh, InitiateOff:
	default:
		add("InitiateOAuth %q is not one of OFF, GETANDREFRESH, REFRESH", c.Initiate)
	}
	for name, what := range map[string]string{"BaseURL": c.BaseURL, "LoginURL": c.LoginURL} {
		if what != "" {
			if msg := hostProblem(what); msg != "" {
				add("%s %s", name, msg)
			}
		}
	}
	if o := d.Auth.OAuth; o != nil {
		if c.Initiate != InitiateOff {
			if c.ClientID == "" {
				add("client id is missing: set OAuthClientId (client_id in a connection file)")
			}
			switch {
			case o.Public && c.ClientSecret != "":
				add("definition %s is for a public client, which has no secret; remove OAuthClientSecret (client_secret in a connection file)", d.Name)
			case !o.Public && c.ClientSecret == "" && o.Assertion == nil && !definitions.IsTLSClientAuth(o.TokenRequest.ClientAuth): // an assertion, or the TLS certificate, authenticates instead
				add("client secret is missing: set OAuthClientSecret (client_secret in a connection file, e.g. ${env:PROCORE_CLIENT_SECRET})")
			}
		}
		if o.GrantType == definitions.GrantAuthorizationCode && c.Initiate != InitiateOff {
			if c.RedirectURI == "" && c.RefreshToken == "" && c.Initiate != InitiateRefresh {
				add("redirect URI is missing: set CallbackURL (redirect_uri in a connection file) to the one registered with the provider")
			} else if c.RedirectURI != "" {
				if msg := redirectProblem(c.RedirectURI); msg != "" {
					add("redirect URI %s", msg)
				}
			}
		}
		if c.Initiate == InitiateOff && c.AccessToken == "" {
			add("InitiateOAuth=OFF uses only the token given, but OAuthAccessToken is empty")
		}
		for _, s := range c.Scopes {
			if s == "" || strings.ContainsAny(s, " \t\r\n\"\\") {
				add("scope %q is not a valid OAuth scope (no spaces, quotes or backslashes)", s)
			}
		}
	}
	for name := range c.Fields {
		if _, ok := d.Field(name); !ok {
			var names []string
			for _, f := range d.Fields {
				names = append(names, f.Name)
			}
			add("definition %s has no field %q (fields: %s)", d.Name, name, strings.Join(names, ", "))
		}
	}
	if _, err := c.values(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil
	}
	return &ValidationError{Connection: c.Key(), Problems: errs}
}

// ValidationError lists everything wrong with a connection.
type ValidationError struct {
	Connection string
	Problems   []error
}

func (e *ValidationError) Error() string {
	if len(e.Problems) == 1 {
		return fmt.Sprintf("connection %s: %v", e.Connection, e.Problems[0])
	}
	var b strings.Builder
	fmt.Fprintf(&b, "connection %s has %d problems:", e.Connection, len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  - ")
		b.WriteString(p.Error())
	}
	return b.String()
}

func hostProblem(s string) string {
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return fmt.Sprintf("%q must be an absolute URL such as https://api.example.com", s)
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname())) {
		return fmt.Sprintf("%q must use https (http only for localhost/127.0.0.1)", s)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Sprintf("%q must not have a query, fragment or user info", s)
	}
	return ""
}

func redirectProblem(s string) string {
	if s == "urn:ietf:wg:oauth:2.0:oob" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return fmt.Sprintf("%q must be an absolute URL, exactly as registered with the provider", s)
	}
	if u.Fragment != "" {
		return fmt.Sprintf("%q must not contain a fragment (RFC 6749 3.1.2)", s)
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname())) {
		return fmt.Sprintf("%q must use https, or http on a loopback address (127.0.0.1, localhost)", s)
	}
	return ""
}

func isLoopbackHost(h string) bool {
	return h == "127.0.0.1" || h == "::1" || strings.EqualFold(h, "localhost")
}

// values assigns every placeholder the connection knows (not the per-request
// ones such as State or code) for the connection's environment.
func (c *Connection) values() ([]string, error) {
	d := c.Definition
	assign := make(map[string]string, len(c.Fields)+len(c.learned))
	for k, v := range c.learned {
		if f, ok := d.Field(k); ok && f.Learn != nil && v != "" {
			assign[f.Name] = v
		}
	}
	for k, v := range c.Fields {
		if f, ok := d.Field(k); ok && v != "" {
			assign[f.Name] = v // given by the connection: wins over a learned value
		}
	}
	vals, err := d.Values(c.Environment, assign)
	if err != nil {
		return nil, err
	}
	vals[definitions.VarClientID] = c.ClientID
	vals[definitions.VarClientSecret] = c.ClientSecret
	vals[definitions.VarRedirectURI] = c.RedirectURI
	if c.BaseURL != "" {
		vals[definitions.VarBaseURL] = strings.TrimSuffix(c.BaseURL, "/")
	}
	if c.LoginURL != "" {
		vals[definitions.VarLoginURL] = strings.TrimSuffix(c.LoginURL, "/")
	}
	if o := d.Auth.OAuth; o != nil {
		scopes := c.Scopes
		if scopes == nil {
			scopes = o.Scopes
			if e, err := d.Environment(c.Environment); err == nil && e.Scopes != nil {
				scopes = e.Scopes // a national cloud's or sandbox app's own
			}
		}
		vals[definitions.VarScope] = strings.Join(scopes, o.ScopeSeparator)
	}
	return vals, nil
}

// Binding returns what the connection's tokens are issued for: its tenant,
// definition, environment, client id, and the origins of the endpoints that
// receive its tokens (see store.Binding). Source stores it with every
// record and refuses a record bound to anything else.
func (c *Connection) Binding() (store.Binding, error) {
	if c.Definition == nil {
		return store.Binding{}, errors.New("connection: no definition")
	}
	vals, err := c.values()
	if err != nil {
		return store.Binding{}, err
	}
	b := store.Binding{Tenant: c.Tenant, Definition: c.Definition.Name, Environment: c.env(), ClientID: c.ClientID}
	if learned := c.Definition.BaseURLLearned(c.Environment); learned != nil && c.BaseURL == "" {
		// The API host is the provider's word when connecting (Salesforce's
		// instance_url), kept sealed with the token; API requests are held
		// to it once expanded. The binding names where it comes from, so
		// that it is the same before and after connecting.
		var names []string
		for _, f := range learned {
			names = append(names, f.Name)
		}
		b.APIOrigin = "learned:" + strings.Join(names, ",")
	} else if b.APIOrigin, err = origin(vals[definitions.VarBaseURL]); err != nil {
		return store.Binding{}, fmt.Errorf("connection %s: the API base URL: %w", c.Key(), err)
	}
	if org, ok, err := authOrigin(c, vals); ok || err != nil {
		b.TokenOrigin = org
		return b, err
	}
	o := c.Definition.Auth.OAuth
	if o == nil {
		return b, nil
	}
	var others []string
	for _, u := range []struct {
		key string
		t   *templates.Template
	}{{"token_request_uri", o.TokenRequestURI}, {"refresh_uri", o.RefreshURI}, {"revoke_uri", o.RevokeURI}, {"introspection_uri", o.IntrospectionURI}} {
		if u.t == nil {
			continue
		}
		org := learnedOrigin(c, u.t)
		if org == "" {
			raw, err := u.t.Expand(vals)
			if err != nil {
				return store.Binding{}, fmt.Errorf("connection %s: expanding %s: %w", c.Key(), u.key, err)
			}
			if org, err = origin(raw); err != nil {
				return store.Binding{}, fmt.Errorf("connection %s: %s: %w", c.Key(), u.key, err)
			}
		}
		switch {
		case b.TokenOrigin == "":
			b.TokenOrigin = org
		case org != b.TokenOrigin && !slices.Contains(others, org):
			others = append(others, org)
		}
	}
	slices.Sort(others)
	b.TokenOrigin = strings.Join(append([]string{b.TokenOrigin}, others...), " ")
	return b, nil
}

// learnedOrigin names, as "learned:Name,...", the learned fields that
// decide t's host (Salesforce's revoke_uri at ${InstanceUrl}) when the
// connection does not give them itself: the binding is then the same before
// and after connecting. "" when t's host is not learned.
func learnedOrigin(c *Connection, t *templates.Template) string {
	ph := t.Placeholders()
	if len(ph) == 0 || ph[0].Offset != 0 {
		return ""
	}
	f, ok := c.Definition.Field(ph[0].Name)
	if !ok || f.Learn == nil {
		return ""
	}
	for k, v := range c.Fields {
		if g, _ := c.Definition.Field(k); g == f && v != "" {
			return "" // the connection gives it: the host is known
		}
	}
	return "learned:" + f.Name
}

// origin is scheme://host[:port] of an absolute URL, in lower case.
func origin(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "", errors.New("not an absolute URL")
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host), nil
}
