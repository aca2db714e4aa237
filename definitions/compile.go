package definitions

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/connector-engine/connector/templates"
)

// Compiling templates: which placeholders each template may use, and the
// URL checks that run on every compiled URL template.

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
	// The pushed authorization request (RFC 9126) carries what the
	// authorization request would, plus the client's credentials; it is
	// sent from the engine, never through the browser.
	scopePAR    = scope{name: "the pushed authorization request", noLearned: true, allowed: bits(VarClientID, VarClientSecret, VarRedirectURI, VarState, VarScope, VarCodeChallenge, VarBaseURL, VarLoginURL, VarRandom)}
	scopeClient = scope{name: "the client-credentials token request", noLearned: true, allowed: bits(VarClientID, VarClientSecret, VarScope, VarBaseURL, VarLoginURL, VarRandom)}
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
			if strings.HasPrefix(msg, "unknown placeholder ") {
				msg = b.unknownPlaceholder(te.Placeholder, vars, sc)
			}
			at(te.Offset, msg)
			if strings.HasPrefix(te.Msg, "unknown placeholder ") {
				b.otherUnknowns(at, src, te.Offset, vars, sc)
			}
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

// otherUnknowns reports each unknown placeholder of src after the one at
// offset first, each at its own column: the template stops at its first
// error, and a definition with two misspelt names should not take two runs
// of validate to fix.
func (b *builder) otherUnknowns(at func(int, string), src string, first int, vars *templates.Vars, sc scope) {
	for _, m := range placeholderName.FindAllStringSubmatchIndex(src, -1) {
		name := src[m[2]:m[3]]
		if m[0] <= first {
			continue
		}
		if _, known := vars.Lookup(name); known {
			continue
		}
		at(m[0], b.unknownPlaceholder(name, vars, sc))
	}
}

// unknownPlaceholder words an unknown placeholder of a template used in
// scope sc, suggesting only names that have a value there, and otherwise
// naming what does: the builtins the scope allows, the definition's
// fields (less those learned when connecting where they have no value
// yet) and, in an action, its inputs. The templates package's own message
// suggests and lists every name, such as ${code} for a typo in base_url,
// where no builtin has a value; and for an action, "fields" sent authors
// looking for a field when they meant an input they had not declared.
func (b *builder) unknownPlaceholder(name string, vars *templates.Vars, sc scope) string {
	var usable, inputs, fields, learned, builtins []string
	nDef := b.def.vars.Len() // an action's vars are the definition's, then its inputs
	for i := range vars.Len() {
		ph := "${" + vars.Name(i) + "}"
		switch {
		case i < NumBuiltinVars:
			if sc.allowed&(1<<i) == 0 {
				continue
			}
			builtins = append(builtins, ph)
		case i >= nDef:
			inputs = append(inputs, ph)
		case b.learnedFrom[i] != "":
			if sc.noLearned {
				continue
			}
			learned = append(learned, ph)
		default:
			fields = append(fields, ph)
		}
		usable = append(usable, vars.Name(i))
	}
	if s := suggest(name, usable); s != "" {
		return fmt.Sprintf("unknown placeholder ${%s}; did you mean ${%s}?", name, s)
	}
	var parts []string
	if sc.action {
		in := fmt.Sprintf("its inputs (declare %s under input.properties; it has none yet)", name)
		if len(inputs) > 0 {
			in = fmt.Sprintf("its inputs (%s; declare %s under input.properties to add it)", listNames(inputs), name)
		}
		parts = append(parts, in)
	}
	if len(fields) > 0 {
		parts = append(parts, "the connection's fields ("+listNames(fields)+")")
	}
	if len(learned) > 0 {
		parts = append(parts, "the values learned when connecting ("+listNames(learned)+")")
	}
	if sc.action {
		return fmt.Sprintf("unknown placeholder ${%s}: an action may use %s", name, joinAnd(append(parts, builtins...)))
	}
	if len(parts)+len(builtins) == 0 {
		return fmt.Sprintf("unknown placeholder ${%s}: %s may use only the connection's fields, and the definition declares none; declare %s under fields", name, sc.name, name)
	}
	return fmt.Sprintf("unknown placeholder ${%s}: %s may use %s; to take it from the connection, declare %s under fields", name, sc.name, joinAnd(append(builtins, parts...)), name)
}

// listNames joins placeholder names with commas, at most eight of them.
func listNames(names []string) string {
	const max = 8
	if len(names) > max {
		return strings.Join(names[:max], ", ") + fmt.Sprintf(" and %d more", len(names)-max)
	}
	return strings.Join(names, ", ")
}

// joinAnd joins parts as an English list: "a", "a and b", "a, b and c".
func joinAnd(parts []string) string {
	if len(parts) <= 1 {
		return strings.Join(parts, "")
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
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

// buildParams compiles a mapping of header or query parameters for API
// requests.
func (b *builder) buildParams(n *yaml.Node, pointer string) []Param {
	return b.buildParamsScoped(n, pointer, scopeRequests)
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
		add(o.InitiateURI, o.AuthorizeURI, o.TokenRequestURI, o.RefreshURI, o.RevokeURI, o.IntrospectionURI, o.PARURI)
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
