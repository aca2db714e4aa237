package definitions

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

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

// Where each builtin placeholder has a value. Fields have values everywhere,
// but secret fields never go into URLs shown to a browser.
type scope struct {
	name     string
	allowed  uint32 // bit i: builtin var i
	browser  bool   // the expanded URL is shown to the user's browser
	relative bool   // a path relative to the base URL, not an absolute URL
	action   bool   // an action's template: inputs are placeholders too
	hints    map[int]string
	// noLearned: values learned when connecting have no value here (the
	// OAuth requests come before them, or make them).
	noLearned bool
}

func bits(vs ...int) uint32 {
	var m uint32
	for _, v := range vs {
		m |= 1 << v
	}
	return m
}

var (
	scopeHosts    = scope{name: "base and login URLs"}
	scopeLoginURL = scope{name: "login_url", noLearned: true}
	scopeAuthz    = scope{name: "the authorization request", browser: true, noLearned: true, allowed: bits(VarClientID, VarRedirectURI, VarState, VarScope, VarCodeChallenge, VarBaseURL, VarLoginURL, VarRandom)}
	scopeCode     = scope{name: "the code exchange", noLearned: true, allowed: bits(VarClientID, VarClientSecret, VarRedirectURI, VarScope, VarCodeVerifier, VarCode, VarBaseURL, VarLoginURL, VarRandom)}
	scopeClient   = scope{name: "the client-credentials token request", noLearned: true, allowed: bits(VarClientID, VarClientSecret, VarScope, VarBaseURL, VarLoginURL, VarRandom)}
	// Refresh, revocation and introspection come after connecting, so
	// learned values have theirs (Salesforce: the org's own host).
	scopeRefresh    = scope{name: "the refresh request", allowed: bits(VarClientID, VarClientSecret, VarRedirectURI, VarScope, VarRefreshToken, VarBaseURL, VarLoginURL, VarRandom)}
	scopeRevoke     = scope{name: "the revocation request", allowed: bits(VarClientID, VarClientSecret, VarBaseURL, VarLoginURL)}
	scopeIntrospect = scope{name: "the introspection request", allowed: scopeRevoke.allowed}
	scopeLearnURL   = scope{name: "a learn request", allowed: bits(VarClientID, VarBaseURL, VarLoginURL)}
	scopeRequests   = scope{name: "API requests", allowed: bits(VarClientID, VarBaseURL)}
	scopeActions    = scope{name: "actions", action: true, allowed: bits(VarClientID), hints: map[int]string{
		VarBaseURL:  "an action's path is already relative to the base URL (and can reach no other host); start it with /",
		VarLoginURL: "actions call the API under the base URL, never the login host",
	}}
	scopeActionPath = scope{name: scopeActions.name, action: true, allowed: scopeActions.allowed, hints: scopeActions.hints, relative: true}
)

// whereAvailable explains, for a placeholder that has no value here, where it does.
var whereAvailable = [NumBuiltinVars]string{
	VarClientSecret:  "the client secret is never sent to the browser or API calls; use it in token_request_uri, refresh_uri, revoke_uri or introspection_uri",
	VarState:         "state exists only in the authorization request (initiate_uri or authorize_uri)",
	VarCodeChallenge: "the PKCE challenge exists only in the authorization request (initiate_uri or authorize_uri)",
	VarCodeVerifier:  "the PKCE verifier exists only in the code exchange (token_request_uri of a code flow)",
	VarCode:          "the authorization code exists only once the user has approved, in the code exchange (token_request_uri of a code flow)",
	VarRefreshToken:  "a refresh token exists only in the refresh request (refresh_uri)",
	VarRedirectURI:   "the redirect URI belongs to the authorization request, the code exchange and the refresh request",
	VarBaseURL:       "base and login URLs are made from fields only",
	VarLoginURL:      "base and login URLs are made from fields only",
	VarScope:         "scopes belong to OAuth requests",
	VarClientID:      "the client id belongs to OAuth requests and API request defaults",
	VarRandom:        "a random value (a nonce) belongs to the authorization request and the token requests",
}

// compile compiles a template and checks that every placeholder it uses has
// a value where the template is used. It returns nil on error.
func (b *builder) compile(pointer, src string, kind templates.Kind, sc scope) *templates.Template {
	return b.compileWith(pointer, src, kind, sc, b.def.vars)
}

// offsetReporter returns a function that reports a finding at a byte offset
// of the scalar at pointer (or at the scalar itself for offset -1), so that it
// points at the placeholder concerned.
func (b *builder) offsetReporter(pointer string) func(sev Severity, off int, msg string) {
	return func(sev Severity, off int, msg string) {
		d := b.diagnosticAt(pointer, off)
		d.Severity, d.Message = sev, msg
		b.add(d)
	}
}

// diagnosticAt returns a Diagnostic positioned at byte offset off of the
// scalar at pointer, or at the node for off -1 (its key for a block, as
// report does), with its file and field.
func (b *builder) diagnosticAt(pointer string, off int) Diagnostic {
	k, n := nodeAt(b.root, pointer)
	if n == nil {
		n = b.root
	} else if off < 0 && k != nil && (n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode) {
		n = k
	}
	line, col := scalarColumn(n, off)
	return Diagnostic{File: b.fileOf(n), Line: line, Column: col, Field: pointerField(pointer)}
}

// compileWith is compile against other placeholders than the definition's
// own: an action's, which adds its inputs.
func (b *builder) compileWith(pointer, src string, kind templates.Kind, sc scope, vars *templates.Vars) *templates.Template {
	report := b.offsetReporter(pointer)
	at := func(off int, msg string) { report(SeverityError, off, msg) }
	if sc.relative {
		if msg := relativePathProblem(src); msg != "" {
			at(-1, msg)
			return nil
		}
	}
	t, err := templates.Compile(src, kind, vars)
	if err != nil {
		var te *templates.Error
		if errors.As(err, &te) {
			msg := te.Msg
			if sc.action && strings.HasPrefix(msg, "unknown placeholder ") {
				msg = unknownActionPlaceholder(te.Placeholder, vars, sc)
			}
			at(te.Offset, msg)
		} else {
			at(-1, err.Error())
		}
		return nil
	}
	ok := true
	for _, p := range t.Placeholders() {
		switch {
		case p.Var < NumBuiltinVars && sc.allowed&(1<<p.Var) == 0:
			why := whereAvailable[p.Var]
			if sc.hints[p.Var] != "" {
				why = sc.hints[p.Var]
			}
			at(p.Offset, fmt.Sprintf("${%s} has no value in %s: %s", p.Name, sc.name, why))
			ok = false
		case p.Var >= NumBuiltinVars && sc.browser && vars.Flags(p.Var)&templates.Secret != 0:
			at(p.Offset, fmt.Sprintf("${%s} is a secret field and this URL is shown to the user's browser; send it in the token request instead", p.Name))
			ok = false
		case p.Var >= NumBuiltinVars && sc.noLearned && b.learnedFrom[p.Var] != "":
			at(p.Offset, fmt.Sprintf("${%s} is learned when connecting (learn.from %s), so it has no value in %s, which comes first; learned values fill base_url, request headers and query, actions, and refresh_uri, revoke_uri and introspection_uri", p.Name, b.learnedFrom[p.Var], sc.name))
			ok = false
		case p.Var == VarCodeChallenge && !b.pkce():
			at(p.Offset, "${CodeChallenge} has no value because pkce is off; set auth.oauth.pkce: true or remove the placeholder")
			ok = false
		}
	}
	if kind == templates.URL && !sc.relative {
		if msg := urlShapeProblem(t); msg != "" {
			at(-1, msg)
			ok = false
		}
	}
	if !ok {
		return nil
	}
	return t
}

// unknownActionPlaceholder words an unknown placeholder of an action,
// suggesting only names that have a value there.
func unknownActionPlaceholder(name string, vars *templates.Vars, sc scope) string {
	var usable []string
	for i := range vars.Len() {
		if i >= NumBuiltinVars || sc.allowed&(1<<i) != 0 {
			usable = append(usable, vars.Name(i))
		}
	}
	if s := suggest(name, usable); s != "" {
		return fmt.Sprintf("unknown placeholder ${%s}; did you mean ${%s}?", name, s)
	}
	return fmt.Sprintf("unknown placeholder ${%s}: an action's placeholders are its inputs (declare %s under input.properties), the definition's fields and ${ClientId}", name, name)
}

// relativePathProblem checks an action's path: it is resolved against the
// environment's base URL, so it must be an absolute path and nothing that
// could name another host.
func relativePathProblem(src string) string {
	switch {
	case !strings.HasPrefix(src, "/"):
		return fmt.Sprintf("an action's path is relative to the environment's base URL and starts with /, as in /rest/v1.0/projects; not %q", src)
	case strings.HasPrefix(src, "//"):
		return "a path starting with // names another host; an action's path starts with a single /"
	case strings.Contains(src, "#"):
		return "a fragment (#...) is never sent to the server; remove it"
	}
	return ""
}

func (b *builder) fileOf(n *yaml.Node) string {
	if f := b.origin[n]; f != "" {
		return f
	}
	return b.origin[b.root]
}

func (b *builder) pkce() bool {
	if n := b.given("/auth/oauth/pkce"); n != nil {
		var v bool
		_ = n.Decode(&v)
		return v
	}
	return b.def.Auth.Scheme == SchemeOAuth // on by default for code flows
}

// urlShapeProblem checks that a URL template yields an absolute URL: either it
// starts with a URL-valued placeholder, or its literal start is an https URL
// (http only on loopback, where a local emulator or redirect listener lives).
func urlShapeProblem(t *templates.Template) string {
	src := t.Source()
	ps := t.Placeholders()
	if len(ps) > 0 && ps[0].Offset == 0 && ps[0].Pos == templates.PosPrefix {
		return ""
	}
	// Replace placeholders by a neutral token so the literal can be parsed.
	var lit strings.Builder
	last := 0
	for _, p := range ps {
		lit.WriteString(src[last:p.Offset])
		lit.WriteString("x")
		last = p.Offset + len("${") + len(p.Name) + len("}")
	}
	lit.WriteString(src[last:])
	return absoluteURLProblem(lit.String())
}

// absoluteURLProblem says what keeps s from being an absolute https URL
// (http is accepted for loopback hosts), or "" when nothing does.
func absoluteURLProblem(s string) string { return urlProblem(s, false) }

// urlProblem is absoluteURLProblem; with secret set, the message quotes no
// part of s (the URL parser's errors quote the offending piece).
func urlProblem(s string, secret bool) string {
	u, err := url.Parse(s)
	if err != nil {
		if secret {
			return "is not a valid URL"
		}
		return "is not a valid URL: " + strings.TrimPrefix(err.Error(), "parse \""+s+"\": ")
	}
	if !u.IsAbs() || u.Host == "" {
		not := fmt.Sprintf(", not %q", s)
		if secret {
			not = ""
		}
		return fmt.Sprintf("must be an absolute URL such as https://api.example.com/path%s; start it with https:// or a URL placeholder such as ${BaseUrl} or ${LoginUrl}", not)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			host := u.Hostname()
			if secret {
				host = "a host other than localhost"
			}
			return fmt.Sprintf("uses http:// with %s; credentials would travel in clear, so use https:// (http is accepted only for localhost and 127.0.0.1)", host)
		}
	default:
		if secret {
			return "has a scheme other than https; use https://"
		}
		return fmt.Sprintf("has the scheme %q; use https://", u.Scheme)
	}
	if u.User != nil {
		return "must not carry a user name or password; use auth.basic or fields instead"
	}
	return ""
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkPlainURL checks a URL that takes no placeholders (docs_url, issuer).
func (b *builder) checkPlainURL(pointer, s string) {
	if msg := absoluteURLProblem(s); msg != "" {
		b.errorf(pointer, "%s", msg)
	}
}

func (b *builder) buildParams(n *yaml.Node, pointer string) []Param {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	var out []Param
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if v.Kind != yaml.ScalarNode {
			continue // the schema reported it
		}
		if t := b.compile(pointer+"/"+escapePointer(k.Value), v.Value, templates.Text, scopeRequests); t != nil {
			out = append(out, Param{Name: k.Value, Value: t})
		}
	}
	return out
}

// checkURLVars makes sure ${BaseUrl} and ${LoginUrl} have a value in every
// environment where a template uses them.
func (b *builder) checkURLVars() {
	uses := func(v int) bool {
		for _, t := range b.def.templates() {
			if t.Uses(v) {
				return true
			}
		}
		return false
	}
	if !uses(VarLoginURL) {
		return
	}
	for _, env := range b.def.Environments {
		if env.LoginURL == nil {
			ptr := "/environments/" + escapePointer(env.Name)
			if env.Name == "default" && len(b.def.Environments) == 1 {
				ptr = "/base_url"
			}
			b.errorf(ptr, "the OAuth URIs use ${LoginUrl} but environment %q has no login_url; add one", env.Name)
		}
	}
}

// templates lists every compiled template of the definition.
func (d *Definition) templates() []*templates.Template {
	var ts []*templates.Template
	add := func(t ...*templates.Template) {
		for _, x := range t {
			if x != nil {
				ts = append(ts, x)
			}
		}
	}
	if o := d.Auth.OAuth; o != nil {
		add(o.InitiateURI, o.AuthorizeURI, o.TokenRequestURI, o.RefreshURI, o.RevokeURI, o.IntrospectionURI)
		if o.Assertion != nil {
			add(o.Assertion.templates()...)
		}
		if o.ClientCertificate != nil {
			add(o.ClientCertificate.templates()...)
		}
	}
	if a := d.Auth.Basic; a != nil {
		add(a.Username, a.Password)
	}
	if a := d.Auth.APIKey; a != nil {
		add(a.Value)
	}
	if s := d.Auth.Session; s != nil {
		add(s.templates()...)
	}
	if o := d.Auth.OAuth1; o != nil {
		add(o.templates()...)
	}
	if n := d.Auth.NTLM; n != nil {
		add(n.templates()...)
	}
	for _, p := range append(slices.Clone(d.Headers), d.Query...) {
		add(p.Value)
	}
	return ts
}

func (b *builder) buildAuth(r *raw) {
	d := b.def
	a := &r.Auth
	sections := map[string]bool{"oauth": a.OAuth != nil, "basic": a.Basic != nil, "apikey": a.APIKey != nil, "session": a.Session != nil, "oauth1": a.OAuth1 != nil, "ntlm": a.NTLM != nil}
	want := map[Scheme]string{SchemeOAuth: "oauth", SchemeOAuthClient: "oauth", SchemeBasic: "basic", SchemeAPIKey: "apikey", SchemeSession: "session", SchemeOAuth1: "oauth1", SchemeNTLM: "ntlm"}[d.Auth.Scheme]
	if want == "" && d.Auth.Scheme != SchemeNone {
		return // an unknown scheme: the schema said so, and nothing here can be checked against it
	}
	for _, s := range []string{"oauth", "basic", "apikey", "session", "oauth1", "ntlm"} {
		if sections[s] && s != want {
			b.errorf("/auth/"+s, "auth.%s is given but the scheme is %q; remove it or change auth.scheme", s, d.Auth.Scheme)
		}
	}
	if want != "" && !sections[want] {
		b.errorf("/auth", "scheme %q needs an auth.%s section", d.Auth.Scheme, want)
		return
	}
	switch d.Auth.Scheme {
	case SchemeBasic:
		d.Auth.Basic = &Basic{
			Username: b.compile("/auth/basic/username", a.Basic.Username, templates.Text, scopeRequests),
			Password: b.compile("/auth/basic/password", a.Basic.Password, templates.Text, scopeRequests),
		}
	case SchemeAPIKey:
		d.Auth.APIKey = &APIKey{In: a.APIKey.In, Name: a.APIKey.Name,
			Value: b.compile("/auth/apikey/value", a.APIKey.Value, templates.Text, scopeRequests)}
	case SchemeOAuth, SchemeOAuthClient:
		b.buildOAuth(r)
	case SchemeSession:
		b.buildSession(a.Session)
	case SchemeOAuth1:
		b.buildOAuth1(a.OAuth1)
	case SchemeNTLM:
		b.buildNTLM(a.NTLM)
	}
}

func (b *builder) buildOAuth(r *raw) {
	d := b.def
	ro := r.Auth.OAuth
	o := &OAuth{
		Version: ro.Version, Scopes: ro.Scopes, ScopeSeparator: ro.ScopeSeparator, Issuer: ro.Issuer,
		TokenRequest: TokenRequest{Method: ro.TokenRequest.Method, Params: ro.TokenRequest.Params, ClientAuth: ro.TokenRequest.ClientAuth, RefreshClientAuth: ro.TokenRequest.RefreshClientAuth},
		CallbackCode: ro.CallbackCode, AuthorizeQuery: ro.AuthorizeQuery,
		TokenResponse: TokenResponse{
			AccessToken: ro.TokenResponse.AccessToken, RefreshToken: ro.TokenResponse.RefreshToken,
			TokenType: ro.TokenResponse.TokenType, ExpiresIn: ro.TokenResponse.ExpiresIn,
			Scope: ro.TokenResponse.Scope, CreatedAt: ro.TokenResponse.CreatedAt,
			ExpiresInUnit: ro.TokenResponse.ExpiresInUnit, ExpiresAt: ro.TokenResponse.ExpiresAt,
			DefaultExpiresIn: DefaultTokenLifetime,
		},
	}
	d.Auth.OAuth = o
	const p = "/auth/oauth"

	// The grant follows from the scheme; when given it must agree.
	o.GrantType = GrantAuthorizationCode
	if d.Auth.Scheme == SchemeOAuthClient {
		o.GrantType = GrantClientCredentials
	}
	if d.Auth.Scheme == SchemeOAuthClient && ro.GrantType == "jwt_bearer" {
		o.GrantType = GrantJWTBearer // RFC 7523 2.1: the client's signed JWT instead of its credentials
	} else if ro.GrantType != "" && GrantType(ro.GrantType) != o.GrantType {
		b.errorf(p+"/grant_type", "grant_type %s contradicts auth.scheme %s (which means %s); change one of them", ro.GrantType, d.Auth.Scheme, o.GrantType)
	}
	code := o.GrantType == GrantAuthorizationCode
	o.PKCE = code
	if ro.PKCE != nil {
		o.PKCE = *ro.PKCE
	}

	// Defaults keep secrets out of URLs: parameters travel in a form body.
	defaults(&o.TokenRequest.Method, "POST")
	defaults(&o.TokenRequest.Params, ParamsForm)
	defaults(&o.TokenRequest.ClientAuth, ClientAuthBody)
	defaults(&o.TokenRequest.RefreshClientAuth, o.TokenRequest.ClientAuth)
	defaults(&o.CallbackCode, "code")
	defaults(&o.AuthorizeQuery, QueryInURL)
	defaults(&o.TokenResponse.ExpiresInUnit, "seconds")
	b.buildParameters(o)
	b.checkRequestShape(o)
	defaults(&o.ScopeSeparator, " ")
	tr := &o.TokenResponse
	defaults(&tr.AccessToken, "access_token")
	defaults(&tr.RefreshToken, "refresh_token")
	defaults(&tr.TokenType, "token_type")
	defaults(&tr.ExpiresIn, "expires_in")
	defaults(&tr.Scope, "scope")
	defaults(&tr.CreatedAt, "created_at")
	if s := ro.TokenResponse.DefaultExpiresIn; s != "" {
		if dur, err := time.ParseDuration(s); err != nil || dur <= 0 {
			b.errorf(p+"/token_response/default_expires_in", "%q is not a positive duration such as 3600s or 2h", s)
		} else {
			tr.DefaultExpiresIn = dur
		}
	}
	if s := ro.TokenResponse.RefreshMargin; s != "" {
		if dur, err := time.ParseDuration(s); err != nil || dur <= 0 {
			b.errorf(p+"/token_response/refresh_margin", "%q is not a positive duration such as 30s or 2m", s)
		} else {
			tr.RefreshMargin = dur
		}
	}
	b.buildSendToken(o, &ro.SendToken.In, &ro.SendToken.Name, ro.SendToken.Prefix)
	o.Public = ro.Client == "public" // before the assertion and certificate, whose rules depend on it
	b.buildAssertion(o, ro.Assertion)
	b.buildClientCertificate(o, ro.ClientCertificate)
	b.buildKeepAlive(o, ro.KeepAlive)
	if o.TokenRequest.Method == "GET" && o.TokenRequest.Params != ParamsQuery {
		b.errorf(p+"/token_request/method", "a GET token request has no body to carry %s parameters; use params: query or method: POST", o.TokenRequest.Params)
	}
	if ro.Issuer != "" {
		b.checkPlainURL(p+"/issuer", ro.Issuer)
	}

	// Which URIs each version and grant needs, as in the App Xchange connector.
	need := func(field, uri, why string) {
		if uri == "" {
			b.errorf(p, "missing %s: %s", field, why)
		}
	}
	forbid := func(field, uri, why string) {
		if uri != "" {
			b.errorf(p+"/"+field, "%s", why)
		}
	}
	switch {
	case !code:
		forbid("initiate_uri", ro.InitiateURI, "client credentials involve no user, so there is no initiate_uri; remove it (or use scheme: oauth for a code flow)")
		forbid("authorize_uri", ro.AuthorizeURI, "client credentials involve no user, so there is no authorize_uri; remove it")
		need("token_request_uri", ro.TokenRequestURI, "client credentials get their token there")
		if ro.Version == V1 {
			b.errorf(p+"/version", "client credentials are an OAuth V2 grant; set version: V2")
		}
		if ro.PKCE != nil && *ro.PKCE {
			b.errorf(p+"/pkce", "PKCE protects a code flow; client credentials have no code, so remove pkce")
		}
	case ro.Version == V1:
		need("authorize_uri", ro.AuthorizeURI, "V1 sends the user to the Authorize URI")
		need("token_request_uri", ro.TokenRequestURI, "V1 exchanges the code there")
		forbid("refresh_uri", ro.RefreshURI, "V1 tokens are not refreshed (refresh_uri is V2 only); remove it or set version: V2")
		forbid("initiate_uri", ro.InitiateURI, "V1 starts at authorize_uri; initiate_uri is V2 only. Remove it or set version: V2")
	default:
		need("initiate_uri", ro.InitiateURI, "a V2 code flow sends the user there to approve")
		need("token_request_uri", ro.TokenRequestURI, "a V2 code flow exchanges the code there")
		forbid("authorize_uri", ro.AuthorizeURI, "authorize_uri is V1 only; a V2 code flow starts at initiate_uri. Remove it or set version: V1")
	}
	switch {
	case o.Public && !code:
		b.errorf(p+"/client", "client credentials authenticate the client with its secret, which a public client does not have; use scheme: oauth or remove client: public")
	case o.Public && !o.PKCE:
		b.errorf(p+"/pkce", "a public client has no secret, so only PKCE binds the code to it (RFC 9700 2.1.1); turn pkce on")
	case o.Public && o.TokenRequest.ClientAuth != ClientAuthBody:
		b.errorf(p+"/token_request/client_auth", "%s", publicClientAuth("client_auth", o.TokenRequest.ClientAuth))
	case o.Public && o.TokenRequest.RefreshClientAuth != ClientAuthBody:
		b.errorf(p+"/token_request/refresh_client_auth", "%s", publicClientAuth("refresh_client_auth", o.TokenRequest.RefreshClientAuth))
	case code && !o.PKCE:
		b.warnf(warnPKCEOff, p+"/pkce", "PKCE is off for a code flow; an intercepted code could be redeemed by someone else. Turn it on unless the provider rejects it")
	}

	tokenScope := scopeCode
	if !code {
		tokenScope = scopeClient
	}
	if ro.InitiateURI != "" {
		o.InitiateURI = b.compile(p+"/initiate_uri", ro.InitiateURI, templates.URL, scopeAuthz)
	}
	if ro.AuthorizeURI != "" {
		o.AuthorizeURI = b.compile(p+"/authorize_uri", ro.AuthorizeURI, templates.URL, scopeAuthz)
	}
	if ro.TokenRequestURI != "" {
		o.TokenRequestURI = b.compile(p+"/token_request_uri", ro.TokenRequestURI, templates.URL, tokenScope)
	}
	if ro.RefreshURI != "" {
		o.RefreshURI = b.compile(p+"/refresh_uri", ro.RefreshURI, templates.URL, scopeRefresh)
	}
	if ro.RevokeURI != "" {
		o.RevokeURI = b.compile(p+"/revoke_uri", ro.RevokeURI, templates.URL, scopeRevoke)
	}
	if ro.IntrospectURI != "" {
		o.IntrospectionURI = b.compile(p+"/introspection_uri", ro.IntrospectURI, templates.URL, scopeIntrospect)
	}

	if o.Public {
		for _, u := range []struct {
			field string
			t     *templates.Template
		}{{"token_request_uri", o.TokenRequestURI}, {"refresh_uri", o.RefreshURI}, {"revoke_uri", o.RevokeURI}, {"introspection_uri", o.IntrospectionURI}} {
			if u.t == nil {
				continue
			}
			for _, ph := range u.t.Placeholders() {
				if ph.Var == VarClientSecret {
					b.offsetReporter(p+"/"+u.field)(SeverityError, ph.Offset, fmt.Sprintf("${%s} has no value: this is a public client (client: public), which has no secret; remove the parameter", ph.Name))
				}
			}
		}
	}
	// A secret in a URL that is sent as written ends up in proxy and server logs.
	if o.TokenRequest.Params == ParamsQuery {
		for _, u := range []struct {
			field string
			t     *templates.Template
		}{{"token_request_uri", o.TokenRequestURI}, {"refresh_uri", o.RefreshURI}, {"revoke_uri", o.RevokeURI}, {"introspection_uri", o.IntrospectionURI}} {
			if u.t == nil {
				continue
			}
			for _, ph := range u.t.Placeholders() {
				if d.vars.Flags(ph.Var)&templates.Secret != 0 {
					if ph.Var == VarClientSecret && o.TokenRequest.ClientAuth == ClientAuthBasic && o.TokenRequest.RefreshClientAuth == ClientAuthBasic {
						continue // moved into the Authorization header
					}
					b.warnf(warnSecretInTokenQuery, p+"/"+u.field, "${%s} travels in the URL because token_request.params is query; URLs end up in logs. Use params: form (the query is then sent as the body)", ph.Name)
				}
			}
		}
	}
}

func defaults(s *string, v string) {
	if *s == "" {
		*s = v
	}
}

// buildSendToken reads auth.oauth.send_token.
func (b *builder) buildSendToken(o *OAuth, in, name *string, prefix *string) {
	o.SendToken = b.sendToken("/auth/oauth/send_token", *in, *name, prefix)
}

// sendToken reads a send_token mapping at p (OAuth's, a session's).
func (b *builder) sendToken(p, in, name string, prefix *string) SendToken {
	st := SendToken{In: in, Name: name}
	what := "the access token"
	if strings.HasPrefix(p, "/auth/session/") {
		what = "the session token"
	}
	defaults(&st.In, TokenInHeader)
	switch st.In {
	case TokenInHeader:
		defaults(&st.Name, "Authorization")
		if prefix != nil {
			st.Prefix = *prefix
		} else {
			st.TypePrefix = strings.EqualFold(st.Name, "Authorization")
		}
	case TokenInQuery:
		if name == "" {
			b.errorf(p, "a token sent in the query needs name, the query parameter that carries it (such as access_token)")
		}
		if prefix != nil {
			b.errorf(p+"/prefix", "prefix is written before the token in a header; a token in the query is sent as it is, so remove prefix")
		}
		b.warnf(warnTokenInQuery, p+"/in", "%s travels in the URL, which ends up in proxy and server logs; send it in a header unless the provider accepts nothing else", what)
	case TokenInBody:
		if name == "" {
			b.errorf(p, "a token sent in the body needs name, the form or JSON field that carries it (Zabbix 6.0: auth, Slack: token)")
		}
		if prefix != nil {
			b.errorf(p+"/prefix", "prefix is written before the token in a header; a token in a body field is sent as it is, so remove prefix")
		}
	}
	return st
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
