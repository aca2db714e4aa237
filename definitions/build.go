package definitions

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v5"
	"golang.org/x/net/idna"
	"gopkg.in/yaml.v3"

	"github.com/connector-engine/connector/templates"
)

// raw mirrors the YAML for decoding. Mappings whose order matters
// (environments, fields, headers) are kept as nodes and walked in order.
type raw struct {
	Name               string    `yaml:"name"`
	Title              string    `yaml:"title"`
	Description        string    `yaml:"description"`
	DocsURL            string    `yaml:"docs_url"`
	Extends            string    `yaml:"extends"`
	BaseURL            string    `yaml:"base_url"`
	DefaultEnvironment string    `yaml:"default_environment"`
	Environments       yaml.Node `yaml:"environments"`
	Fields             yaml.Node `yaml:"fields"`
	Auth               struct {
		Scheme string `yaml:"scheme"`
		OAuth  *struct {
			Version         string   `yaml:"version"`
			GrantType       string   `yaml:"grant_type"`
			InitiateURI     string   `yaml:"initiate_uri"`
			AuthorizeURI    string   `yaml:"authorize_uri"`
			TokenRequestURI string   `yaml:"token_request_uri"`
			RefreshURI      string   `yaml:"refresh_uri"`
			RevokeURI       string   `yaml:"revoke_uri"`
			IntrospectURI   string   `yaml:"introspection_uri"`
			DeviceAuthURI   string   `yaml:"device_authorization_uri"`
			PARURI          string   `yaml:"par_uri"`
			Scopes          []string `yaml:"scopes"`
			ScopeSeparator  string   `yaml:"scope_separator"`
			PKCE            *bool    `yaml:"pkce"`
			Issuer          string   `yaml:"issuer"`
			TokenRequest    struct {
				Method            string `yaml:"method"`
				Params            string `yaml:"params"`
				ClientAuth        string `yaml:"client_auth"`
				RefreshClientAuth string `yaml:"refresh_client_auth"`
			} `yaml:"token_request"`
			CallbackCode   string `yaml:"callback_code"`
			AuthorizeQuery string `yaml:"authorize_query"`
			TokenResponse  struct {
				AccessToken      string `yaml:"access_token"`
				RefreshToken     string `yaml:"refresh_token"`
				TokenType        string `yaml:"token_type"`
				ExpiresIn        string `yaml:"expires_in"`
				Scope            string `yaml:"scope"`
				CreatedAt        string `yaml:"created_at"`
				DefaultExpiresIn string `yaml:"default_expires_in"`
				RefreshMargin    string `yaml:"refresh_margin"`
				ExpiresInUnit    string `yaml:"expires_in_unit"`
				ExpiresAt        string `yaml:"expires_at"`
			} `yaml:"token_response"`
			Client            string                `yaml:"client"`
			Assertion         *rawAssertion         `yaml:"assertion"`          // auth_assertion.go
			ClientCertificate *rawClientCertificate `yaml:"client_certificate"` // auth_mtls.go
			DPoP              *rawDPoP              `yaml:"dpop"`               // auth_dpop.go
			KeepAlive         *rawKeepAlive         `yaml:"keep_alive"`
			SendToken         struct {
				In     string  `yaml:"in"`
				Name   string  `yaml:"name"`
				Prefix *string `yaml:"prefix"`
			} `yaml:"send_token"`
		} `yaml:"oauth"`
		Basic *struct {
			Username string `yaml:"username"`
			Password string `yaml:"password"`
		} `yaml:"basic"`
		APIKey *struct {
			In    string `yaml:"in"`
			Name  string `yaml:"name"`
			Value string `yaml:"value"`
		} `yaml:"apikey"`
		Session *rawSession `yaml:"session"` // auth_session.go
		OAuth1  *rawOAuth1  `yaml:"oauth1"`  // auth_oauth1.go
		NTLM    *rawNTLM    `yaml:"ntlm"`    // auth_ntlm.go
	} `yaml:"auth"`
	Request struct {
		Headers yaml.Node `yaml:"headers"`
		Query   yaml.Node `yaml:"query"`
	} `yaml:"request"`
}

type rawField struct {
	Title    string    `yaml:"title"`
	Type     string    `yaml:"type"`
	Required bool      `yaml:"required"`
	Pattern  string    `yaml:"pattern"`
	Secret   bool      `yaml:"secret"`
	AllowIP  bool      `yaml:"allow_ip"`
	Default  yaml.Node `yaml:"default"`
	Help     string    `yaml:"help"`
	Learn    *rawLearn `yaml:"learn"`
}

type rawEnv struct {
	Title    string    `yaml:"title"`
	BaseURL  string    `yaml:"base_url"`
	LoginURL string    `yaml:"login_url"`
	Scopes   []string  `yaml:"scopes"`
	Fields   yaml.Node `yaml:"fields"`
}

// builder turns one (merged) tree into a Definition, reporting findings at
// the nodes they concern.
type builder struct {
	self       string     // the file being checked
	extendsKey *yaml.Node // its extends key, when it extends another definition
	root       *yaml.Node
	origin     map[*yaml.Node]string
	ds         *diags
	def        *Definition

	inputSchemas map[string]*jsonschema.Schema // compiled action input schemas by their JSON, shared within one Parse
	learnedFrom  map[int]string                // learned fields' variables and their learn.from, known before any template is compiled
	ignored      map[string]string             // ignore_warnings: code -> reason, read on the first warning (warnings.go)
	ignoreUsed   map[string]bool               // the ignore_warnings codes that acknowledged a warning
}

func (b *builder) report(sev Severity, pointer, msg string) {
	k, n := nodeAt(b.root, pointer)
	if k != nil && n != nil && (n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode) {
		n = k // a block's own position is its first child's; its key reads better
	}
	b.reportAt(sev, n, pointerField(pointer), msg)
}

func (b *builder) reportAt(sev Severity, n *yaml.Node, field, msg string) {
	if n == nil {
		n = b.root
	}
	line, col := n.Line, n.Column
	b.add(Diagnostic{Severity: sev, File: b.fileOf(n), Line: line, Column: col, Field: field, Message: msg})
}

// add records a finding. One about a node inherited through extends is
// reported at the extending file's extends key: that is the file being
// checked, and the inherited file may not even be the author's to edit.
func (b *builder) add(d Diagnostic) {
	b.acknowledge(&d)
	if b.extendsKey != nil && d.File != b.self {
		d.Message = fmt.Sprintf("%s (inherited from %s:%d:%d)", d.Message, d.File, d.Line, d.Column)
		d.File, d.Line, d.Column = b.self, b.extendsKey.Line, b.extendsKey.Column
	}
	b.ds.add(d)
}

func (b *builder) errorf(pointer, format string, args ...any) {
	b.report(SeverityError, pointer, fmt.Sprintf(format, args...))
}

// given returns the node at pointer if the author wrote that key, else nil.
func (b *builder) given(pointer string) *yaml.Node {
	n := b.root
	for _, tok := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
		_, n = mapGet(n, strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~"))
		if n == nil {
			return nil
		}
	}
	return n
}

// build decodes and checks the tree. It returns nil when the definition has
// errors that make it unusable.
func (b *builder) build() *Definition {
	var r raw
	// Type errors are reported by the schema with their positions; decoding
	// still fills every field it can, so the checks below see the rest.
	var te *yaml.TypeError
	if err := b.root.Decode(&r); err != nil && !errors.As(err, &te) {
		b.errorf("", "cannot read the definition: %v", err)
		return nil
	}
	d := &Definition{
		Name: r.Name, Title: r.Title, Description: r.Description, DocsURL: r.DocsURL,
		Extends: r.Extends, Source: b.origin[b.root], DefaultEnvironment: r.DefaultEnvironment,
		Auth: Auth{Scheme: Scheme(r.Auth.Scheme)},
	}
	b.def = d
	b.buildVars(&r)
	if r.DocsURL != "" {
		b.checkPlainURL("/docs_url", r.DocsURL)
	}
	b.buildEnvironments(&r)
	b.buildAuth(&r)
	b.buildLearned()
	b.checkLearnedTokenHosts()
	d.Headers = b.buildParams(&r.Request.Headers, "/request/headers")
	d.Query = b.buildParams(&r.Request.Query, "/request/query")
	b.checkURLVars()
	b.buildRequestPolicy()
	b.buildActions()
	b.checkBodyToken()
	b.buildWebhooks()
	b.checkUnusedIgnores()
	return d
}

// buildVars declares the builtin placeholders and one per field.
func (b *builder) buildVars(r *raw) {
	d := b.def
	d.vars = templates.NewVars()
	for i, v := range builtinVars {
		if idx, err := d.vars.Add(v.name, v.flags); err != nil || idx != i {
			panic(fmt.Sprintf("definitions: builtin placeholder %s: %v", v.name, err))
		}
	}
	fields := resolve(&r.Fields)
	if fields == nil || fields.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(fields.Content); i += 2 {
		k, v := fields.Content[i], fields.Content[i+1]
		ptr := "/fields/" + escapePointer(k.Value)
		var rf rawField
		_ = v.Decode(&rf) // type errors come from the schema
		f := Field{Name: k.Value, Title: rf.Title, Type: rf.Type, Required: rf.Required, Secret: rf.Secret, Help: rf.Help}
		if f.Type == "" {
			f.Type = "string"
		}
		var flags templates.Flag
		if f.Secret {
			flags |= templates.Secret
		}
		switch f.Type {
		case "url":
			flags |= templates.URLValued
		case "host_label":
			flags |= templates.HostLabel
		case "hostname":
			flags |= templates.HostName
			if rf.AllowIP {
				flags |= templates.HostIP
			}
		}
		if rf.AllowIP && f.Type != "hostname" {
			b.errorf(ptr+"/allow_ip", "allow_ip lets a hostname field hold an IPv4 address; this field's type is %s, so remove it or use type: hostname", f.Type)
		}
		f.flags = flags
		idx, err := d.vars.Add(k.Value, flags)
		if err != nil {
			if j, ok := d.vars.Lookup(k.Value); ok && j < NumBuiltinVars {
				b.reportAt(SeverityError, k, "fields."+k.Value, fmt.Sprintf("the field name %q is taken by the builtin placeholder ${%s} (%s); choose another name", k.Value, d.vars.Name(j), builtinVars[j].what))
			} else {
				b.reportAt(SeverityError, k, "fields."+k.Value, fmt.Sprintf("field %q differs from another field only in letter case; placeholders match case-insensitively, so rename one", k.Value))
			}
			continue
		}
		f.Var = idx
		if rf.Learn != nil {
			if b.learnedFrom == nil {
				b.learnedFrom = map[int]string{}
			}
			b.learnedFrom[idx] = rf.Learn.From
		}
		if rf.Pattern != "" {
			if _, err := regexp.Compile(rf.Pattern); err != nil {
				b.errorf(ptr+"/pattern", "not a valid regular expression (Go RE2 syntax): %v", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
			} else {
				f.Pattern = regexp.MustCompile(`^(?:` + rf.Pattern + `)$`)
			}
		}
		if dn := resolve(&rf.Default); dn != nil && dn.Kind == yaml.ScalarNode && dn.Tag != "!!null" {
			f.Default, f.HasDefault = dn.Value, true
			if msg := f.Check(f.Default); msg != "" {
				b.errorf(ptr+"/default", "the default %s", msg)
			}
		}
		if f.Required && f.HasDefault {
			b.warnf(warnRequiredWithDefault, ptr+"/required", "a required field with a default is never missing; drop one of the two")
		}
		d.Fields = append(d.Fields, f)
	}
}

// Check validates a value for the field and returns what is wrong with it,
// or "" when it is acceptable. The message never repeats a secret value.
func (f *Field) Check(v string) string {
	show := fmt.Sprintf("%q", v)
	if f.Secret {
		show = "(secret)"
	}
	switch f.Type {
	case "integer":
		if !regexp.MustCompile(`^-?[0-9]+$`).MatchString(v) {
			return fmt.Sprintf("%s is not a whole number", show)
		}
	case "boolean":
		if v != "true" && v != "false" {
			return fmt.Sprintf("%s must be true or false", show)
		}
	case "url":
		if msg := urlProblem(v, f.Secret); msg != "" {
			return fmt.Sprintf("%s %s", show, msg)
		}
	case "host_label", "hostname":
		if msg := templates.HostProblem(HostASCII(v), f.flags); msg != "" {
			return fmt.Sprintf("%s %s", show, msg)
		}
	}
	if f.Pattern != nil && !f.Pattern.MatchString(v) {
		return fmt.Sprintf("%s does not match the pattern %s", show, strings.TrimSuffix(strings.TrimPrefix(f.Pattern.String(), "^(?:"), ")$"))
	}
	return ""
}

func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func (b *builder) buildEnvironments(r *raw) {
	d := b.def
	envs := resolve(&r.Environments)
	if envs == nil || envs.Kind != yaml.MappingNode || len(envs.Content) == 0 {
		if r.BaseURL == "" {
			b.errorf("", "missing base_url: give the API base URL, or environments each with a base_url")
			return
		}
		d.Environments = []Environment{{Name: "default", BaseURL: b.compile("/base_url", r.BaseURL, templates.URL, scopeHosts)}}
		if d.DefaultEnvironment != "" && d.DefaultEnvironment != "default" {
			b.errorf("/default_environment", "no environments are declared, so the only environment is \"default\"; declare environments or remove default_environment")
		}
		d.DefaultEnvironment = "default"
		return
	}
	var names []string
	for i := 0; i+1 < len(envs.Content); i += 2 {
		k, v := envs.Content[i], envs.Content[i+1]
		ptr := "/environments/" + escapePointer(k.Value)
		var re rawEnv
		_ = v.Decode(&re)
		env := Environment{Name: k.Value, Title: re.Title}
		switch {
		case re.BaseURL != "":
			env.BaseURL = b.compile(ptr+"/base_url", re.BaseURL, templates.URL, scopeHosts)
		case r.BaseURL != "":
			env.BaseURL = b.compile("/base_url", r.BaseURL, templates.URL, scopeHosts)
		default:
			b.errorf(ptr, "environment %q has no base_url and there is no top-level base_url to fall back on", k.Value)
		}
		if re.LoginURL != "" {
			env.LoginURL = b.compile(ptr+"/login_url", re.LoginURL, templates.URL, scopeLoginURL)
		}
		env.Scopes = re.Scopes
		if re.Scopes != nil && r.Auth.OAuth == nil {
			b.errorf(ptr+"/scopes", "scopes are OAuth scopes, and this definition's scheme is %s; remove them", r.Auth.Scheme)
		}
		if fn := resolve(&re.Fields); fn != nil && fn.Kind == yaml.MappingNode {
			env.Defaults = map[string]string{}
			for j := 0; j+1 < len(fn.Content); j += 2 {
				fk, fv := fn.Content[j], fn.Content[j+1]
				f, ok := d.Field(fk.Value)
				if !ok {
					var names []string
					for _, f := range d.Fields {
						names = append(names, f.Name)
					}
					msg := fmt.Sprintf("there is no field %q to give a default for (fields: %s)", fk.Value, strings.Join(names, ", "))
					if s := suggest(fk.Value, names); s != "" {
						msg += fmt.Sprintf("; did you mean %q?", s)
					}
					b.reportAt(SeverityError, fk, pointerField(ptr+"/fields/"+escapePointer(fk.Value)), msg)
					continue
				}
				if fv.Kind != yaml.ScalarNode {
					continue // the schema reported it
				}
				if msg := f.Check(fv.Value); msg != "" {
					b.reportAt(SeverityError, fv, pointerField(ptr+"/fields/"+escapePointer(fk.Value)), "the default "+msg)
					continue
				}
				env.Defaults[f.Name] = fv.Value
			}
		}
		d.Environments = append(d.Environments, env)
		names = append(names, k.Value)
	}
	if d.DefaultEnvironment == "" {
		d.DefaultEnvironment = names[0]
	} else if !slices.Contains(names, d.DefaultEnvironment) {
		msg := fmt.Sprintf("there is no environment %q; declared: %s", d.DefaultEnvironment, strings.Join(names, ", "))
		if s := suggest(d.DefaultEnvironment, names); s != "" {
			msg += fmt.Sprintf("; did you mean %q?", s)
		}
		b.errorf("/default_environment", "%s", msg)
	}
}

// HostASCII returns a host name or label as it travels in a URL: an
// internationalised name (bücher) as punycode (xn--bcher-kva), in lower
// case. A value IDNA refuses is returned as it is, for the host check to
// say what is wrong with it.
func HostASCII(v string) string {
	a, err := idna.Lookup.ToASCII(v)
	if err != nil || a == "" {
		return v
	}
	return a
}
