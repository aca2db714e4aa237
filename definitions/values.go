package definitions

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/connector-engine/connector/templates"
)

// Values assigns placeholder values for one environment: assign maps
// placeholder names (matched case-insensitively: fields and builtins such as
// ClientId) to values; field defaults fill the rest; BaseUrl and LoginUrl come
// from the environment. The result is indexed like Vars(). Field values are
// checked against their declarations; messages never repeat a secret value.
func (d *Definition) Values(env string, assign map[string]string) ([]string, error) {
	e, err := d.Environment(env)
	if err != nil {
		return nil, err
	}
	vals := make([]string, d.vars.Len())
	for name, v := range assign {
		i, ok := d.vars.Lookup(name)
		if !ok {
			msg := fmt.Sprintf("definition %s has no field or placeholder named %q", d.Name, name)
			if s := suggest(name, d.vars.Names()); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			}
			return nil, fmt.Errorf("%s", msg)
		}
		if i == VarBaseURL || i == VarLoginURL {
			return nil, fmt.Errorf("%s comes from the environment (%s); choose the environment instead of setting it", d.vars.Name(i), e.Name)
		}
		vals[i] = v
	}
	var missing []string
	for _, f := range d.Fields {
		v := vals[f.Var]
		if dv, ok := e.Defaults[f.Name]; v == "" && ok {
			v = dv
			vals[f.Var] = v
		} else if v == "" && f.HasDefault {
			v = f.Default
			vals[f.Var] = v
		}
		if v == "" {
			if f.Required && f.Learn == nil { // a learned one is checked when connecting
				missing = append(missing, f.Name)
			}
			continue
		}
		if msg := f.Check(v); msg != "" {
			return nil, fmt.Errorf("field %s: %s", f.Name, msg)
		}
		if f.Type == "host_label" || f.Type == "hostname" {
			vals[f.Var] = HostASCII(v) // one spelling in every host it feeds
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("definition %s needs a value for %s", d.Name, strings.Join(missing, ", "))
	}
	// A base URL made of values learned when connecting (Salesforce's
	// instance_url) is empty until they are known.
	if len(d.unlearned(e.BaseURL, vals)) == 0 {
		if vals[VarBaseURL], err = e.BaseURL.Expand(vals); err != nil {
			return nil, fmt.Errorf("environment %s base_url: %w", e.Name, err)
		}
	}
	if e.LoginURL != nil {
		if vals[VarLoginURL], err = e.LoginURL.Expand(vals); err != nil {
			return nil, fmt.Errorf("environment %s login_url: %w", e.Name, err)
		}
	}
	return vals, nil
}

// URI returns the template a definition keeps under a YAML key such as
// token_request_uri, or nil if it has none there.
func (d *Definition) URI(key string) (*templates.Template, bool) {
	o := d.Auth.OAuth
	switch key {
	case "initiate_uri", "authorize_uri", "token_request_uri", "refresh_uri", "revoke_uri", "introspection_uri", "device_authorization_uri", "par_uri":
		if o == nil {
			return d.authURI(key) // OAuth 1.0a's authorize_uri
		}
	}
	switch key {
	case "initiate_uri":
		return o.InitiateURI, o.InitiateURI != nil
	case "authorize_uri":
		return o.AuthorizeURI, o.AuthorizeURI != nil
	case "token_request_uri":
		return o.TokenRequestURI, o.TokenRequestURI != nil
	case "refresh_uri":
		return o.RefreshURI, o.RefreshURI != nil
	case "revoke_uri":
		return o.RevokeURI, o.RevokeURI != nil
	case "introspection_uri":
		return o.IntrospectionURI, o.IntrospectionURI != nil
	case "device_authorization_uri":
		return o.DeviceAuthorizationURI, o.DeviceAuthorizationURI != nil
	case "par_uri":
		return o.PARURI, o.PARURI != nil
	}
	return d.authURI(key) // preview_auth.go: login_uri, OAuth 1.0a
}

// URIKeys are the keys URI accepts.
var URIKeys = []string{"initiate_uri", "authorize_uri", "par_uri", "token_request_uri", "refresh_uri", "revoke_uri", "introspection_uri", "device_authorization_uri"}

// Compile compiles a template of the caller's against this definition's
// placeholders, for ad-hoc rendering. It has no per-URI restrictions.
func (d *Definition) Compile(src string) (*templates.Template, error) {
	kind := templates.URL
	if !strings.Contains(src, "/") {
		kind = templates.Text
	}
	t, err := templates.Compile(src, kind, d.vars)
	if err != nil {
		// Report every unknown placeholder, not only the first.
		var unknown []string
		for _, m := range placeholderName.FindAllStringSubmatch(src, -1) {
			if _, ok := d.vars.Lookup(m[1]); !ok && !slices.Contains(unknown, "${"+m[1]+"}") {
				unknown = append(unknown, "${"+m[1]+"}")
			}
		}
		if len(unknown) > 1 {
			known := make([]string, 0, d.vars.Len())
			for _, n := range d.vars.Names() {
				known = append(known, "${"+n+"}") // written as the template writes them, as the one-name message does
			}
			return nil, fmt.Errorf("%d unknown placeholders: %s; known placeholders are %s", len(unknown), strings.Join(unknown, ", "), strings.Join(known, ", "))
		}
	}
	return t, err
}

var placeholderName = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// unlearned lists the learned fields t uses that have no value in vals.
func (d *Definition) unlearned(t *templates.Template, vals []string) []*Field {
	var out []*Field
	for _, f := range d.Learned() {
		if t.Uses(f.Var) && vals[f.Var] == "" {
			out = append(out, f)
		}
	}
	return out
}

// BaseURLLearned returns the learned fields the environment's base URL is
// made of (nil when it uses none): its origin is then the provider's word,
// known once connected.
func (d *Definition) BaseURLLearned(env string) []*Field {
	e, err := d.Environment(env)
	if err != nil {
		return nil
	}
	var out []*Field
	for _, f := range d.Learned() {
		if e.BaseURL.Uses(f.Var) {
			out = append(out, f)
		}
	}
	return out
}
