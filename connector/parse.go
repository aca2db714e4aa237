package connector

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/connector-engine/connector/definitions"
	"github.com/connector-engine/connector/internal/readfile"
	"github.com/connector-engine/connector/templates"
)

// Bounds on the files a connection names: far above any real one, so that
// /dev/zero or a mistyped path fails with an error instead of exhausting
// memory.
const (
	maxConnectionFile = readfile.MiB      // a connection file
	maxFileReference  = 64 * readfile.KiB // a ${file:PATH} value: a secret, an id
)

// ConnectionOptions are the settings of a connection string or file that
// configure the engine around a connection rather than the connection itself.
type ConnectionOptions struct {
	// StoreLocation is where tokens are kept (CData's OAuthSettingsLocation,
	// store in a connection file), exactly as written; "" leaves the choice
	// to the caller.
	StoreLocation string
}

// ConfigError lists every problem found in a connection string or file, so
// that one run shows everything to fix. Problems never contain secret values.
type ConfigError struct {
	Source   string // "connection string", or the connection file's path
	Problems []error
}

func (e *ConfigError) Error() string {
	if len(e.Problems) == 1 {
		// File problems carry their own path:line.
		if msg := e.Problems[0].Error(); strings.HasPrefix(msg, e.Source+":") {
			return msg
		}
		return e.Source + ": " + e.Problems[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s has %d problems:", e.Source, len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  - ")
		b.WriteString(p.Error())
	}
	return b.String()
}

// Unwrap returns the problems, for errors.Is and errors.As.
func (e *ConfigError) Unwrap() []error { return e.Problems }

// finishConnection validates c and returns it, or a ConfigError with problems found
// while reading plus those Validate finds.
func finishConnection(source string, c *Connection, opts ConnectionOptions, problems []error) (*Connection, ConnectionOptions, error) {
	if c != nil {
		if err := c.Validate(); err != nil {
			// Flattened so that every problem is one line of the list.
			var ve *ValidationError
			if errors.As(err, &ve) {
				for _, p := range ve.Problems {
					if !slices.ContainsFunc(problems, func(q error) bool { return q.Error() == p.Error() }) {
						problems = append(problems, p)
					}
				}
			} else {
				problems = append(problems, err)
			}
		}
	}
	if len(problems) > 0 {
		return nil, ConnectionOptions{}, &ConfigError{Source: source, Problems: problems}
	}
	return c, opts, nil
}

// The properties a connection string may set besides the definition's fields.
const (
	propProfile       = "Profile"
	propDefinition    = "Definition"
	propAuthScheme    = "AuthScheme"
	propInitiate      = "InitiateOAuth"
	propClientID      = "OAuthClientId"
	propClientSecret  = "OAuthClientSecret"
	propCallbackURL   = "CallbackURL"
	propSettings      = "OAuthSettingsLocation"
	propEnvironment   = "Environment"
	propScope         = "Scope"
	propBaseURL       = "BaseURL"
	propLoginURL      = "LoginURL"
	propAccessToken   = "OAuthAccessToken"
	propRefreshToken  = "OAuthRefreshToken"
	propConnectionID  = "ConnectionId"
	connStringSource  = "connection string"
	connStringExample = "Definition=procore;OAuthClientId=...;OAuthClientSecret=...;CallbackURL=http://127.0.0.1:8765/callback"
)

var connStringProps = []string{
	propProfile, propDefinition, propAuthScheme, propInitiate, propClientID,
	propClientSecret, propCallbackURL, propSettings, propEnvironment, propScope,
	propBaseURL, propLoginURL, propAccessToken, propRefreshToken, propConnectionID,
}

// Names people reach for from other tools, to suggest the property meant.
var connStringAliases = map[string]string{
	"redirecturi": propCallbackURL, "redirecturl": propCallbackURL,
	"clientid": propClientID, "clientsecret": propClientSecret,
	"accesstoken": propAccessToken, "refreshtoken": propRefreshToken,
	"scopes": propScope, "id": propConnectionID, "env": propEnvironment,
	"initiate": propInitiate, "store": propSettings,
}

func isSecretProp(name string) bool {
	return name == propClientSecret || name == propAccessToken || name == propRefreshToken
}

// authSchemes maps CData's AuthScheme values, normalized by schemeKey, to
// definition schemes.
var authSchemes = map[string]definitions.Scheme{
	"NONE":        definitions.SchemeNone,
	"BASIC":       definitions.SchemeBasic,
	"OAUTH":       definitions.SchemeOAuth,
	"OAUTHCLIENT": definitions.SchemeOAuthClient,
	"APIKEY":      definitions.SchemeAPIKey,
	"SESSION":     definitions.SchemeSession,
	"OAUTH1":      definitions.SchemeOAuth1,
	"NTLM":        definitions.SchemeNTLM,
}

// cdataScheme is the AuthScheme value that names a definition scheme.
func cdataScheme(s definitions.Scheme) string { return strings.ToUpper(string(s)) }

func schemeKey(s string) string { return strings.ToUpper(normName(s)) }

// csPair is one Name=value of a connection string.
type csPair struct {
	name, value string
	at          int // 1-based character position of the name
}

// ParseConnectionString reads a CData-style connection string such as
//
//	Definition=procore;AuthScheme=OAuth;InitiateOAuth=GETANDREFRESH;OAuthClientId=...;OAuthClientSecret=...;CallbackURL=http://127.0.0.1:8765/callback;CompanyId=123
//
// The definition comes from Definition=NAME (a definition in defs; nil means
// definitions.Builtin()) or Profile=PATH, a YAML definition file checked on
// top of defs (Definition= then picks among them). The other properties are
// AuthScheme (NONE, BASIC, OAUTH, OAUTH_CLIENT, APIKEY; it must agree with the
// definition), InitiateOAuth (OFF, GETANDREFRESH, REFRESH), OAuthClientId,
// OAuthClientSecret, CallbackURL, OAuthSettingsLocation (returned as
// ConnectionOptions.StoreLocation), Environment, Scope (separated by spaces or
// commas; an empty Scope= asks for no scope), BaseURL, LoginURL,
// OAuthAccessToken, OAuthRefreshToken and ConnectionId, plus the definition's
// fields by name; a property wins over a field of the same name.
//
// Names are case-insensitive. A value may be quoted with ' or " to contain
// ";", a doubled quote standing for one quote inside; whitespace around names
// and values is dropped and empty parts are ignored. A property given twice
// or an unknown one is an error. The connection is validated before it is
// returned; errors (a *ConfigError) name properties but never repeat a secret
// value.
func ParseConnectionString(s string, defs *definitions.Set) (*Connection, ConnectionOptions, error) {
	if defs == nil {
		defs = definitions.Builtin()
	}
	pairs, err := splitConnectionString(s)
	if err != nil {
		return nil, ConnectionOptions{}, &ConfigError{Source: connStringSource, Problems: []error{err}}
	}

	props := map[string]string{} // by canonical property name
	var rest []csPair            // definition fields, or unknown
	seen := map[string]csPair{}
	var problems []error
	for _, p := range pairs {
		key := strings.ToLower(p.name)
		if prev, dup := seen[key]; dup {
			problems = append(problems, fmt.Errorf("%s is given twice (at characters %d and %d); keep one", prev.name, prev.at, p.at))
			continue
		}
		seen[key] = p
		if i := slices.IndexFunc(connStringProps, func(n string) bool { return strings.EqualFold(n, p.name) }); i >= 0 {
			props[connStringProps[i]] = p.value
		} else {
			rest = append(rest, p)
		}
	}

	var initiate InitiateMode
	if v, ok := props[propInitiate]; ok && v != "" {
		if m, ok := parseInitiate(v); ok {
			initiate = m
		} else {
			problems = append(problems, fmt.Errorf("InitiateOAuth %q is not one of OFF, GETANDREFRESH, REFRESH", v))
		}
	}
	scheme, hasScheme := definitions.Scheme(""), false
	if v, ok := props[propAuthScheme]; ok && v != "" {
		sc, err := parseAuthScheme(v)
		if err != nil {
			problems = append(problems, err)
		} else {
			scheme, hasScheme = sc, true
		}
	}

	def, err := connStringDefinition(props, defs)
	if err != nil {
		problems = append(problems, err)
		// Without a definition, still report what can be checked alone, so
		// that one run shows every mistake.
		if v := props[propCallbackURL]; v != "" {
			if msg := redirectProblem(v); msg != "" {
				problems = append(problems, fmt.Errorf("CallbackURL %s", msg))
			}
		}
		for _, name := range []string{propBaseURL, propLoginURL} {
			if v := props[name]; v != "" {
				if msg := hostProblem(v); msg != "" {
					problems = append(problems, fmt.Errorf("%s %s", name, msg))
				}
			}
		}
		return nil, ConnectionOptions{}, &ConfigError{Source: connStringSource, Problems: problems}
	}

	if hasScheme && scheme != def.Auth.Scheme {
		problems = append(problems, schemeMismatch(scheme, def, defs))
	}

	c := &Connection{
		ID:           props[propConnectionID],
		Definition:   def,
		Environment:  props[propEnvironment],
		ClientID:     props[propClientID],
		ClientSecret: props[propClientSecret],
		RedirectURI:  props[propCallbackURL],
		BaseURL:      props[propBaseURL],
		LoginURL:     props[propLoginURL],
		Initiate:     initiate,
		AccessToken:  props[propAccessToken],
		RefreshToken: props[propRefreshToken],
	}
	if v, ok := props[propScope]; ok {
		c.Scopes = splitScopes(v)
	}
	for _, name := range []string{propBaseURL, propLoginURL} {
		if v, ok := props[name]; ok && strings.TrimSpace(v) == "" {
			problems = append(problems, fmt.Errorf("%s is empty; give the URL to use instead of the definition's, or leave %s out", name, name))
		}
	}
	for _, p := range rest {
		if f, ok := def.Field(p.name); ok {
			if c.Fields == nil {
				c.Fields = map[string]string{}
			}
			c.Fields[f.Name] = p.value
			continue
		}
		problems = append(problems, unknownProperty(p, pairs, def))
	}
	return finishConnection(connStringSource, c, ConnectionOptions{StoreLocation: props[propSettings]}, problems)
}

// splitConnectionString cuts s into Name=value pairs. Its errors give
// positions, never text, since the text may be part of a secret.
func splitConnectionString(s string) ([]csPair, error) {
	var pairs []csPair
	pos := func(i int) int { return utf8.RuneCountInString(s[:i]) + 1 }
	space := func(b byte) bool { return b == ' ' || b == '\t' || b == '\r' || b == '\n' }
	i := 0
	for {
		for i < len(s) && (space(s[i]) || s[i] == ';') {
			i++
		}
		if i >= len(s) {
			return pairs, nil
		}
		start := i
		n := strings.IndexAny(s[i:], "=;")
		if n < 0 || s[i+n] == ';' {
			return nil, fmt.Errorf("the part at character %d has no \"=\"; write Name=value%s", pos(start), quoteHint(pairs))
		}
		name := strings.TrimSpace(s[i : i+n])
		if name == "" {
			return nil, fmt.Errorf("the \"=\" at character %d has no property name before it; write Name=value", pos(i+n))
		}
		i += n + 1
		for i < len(s) && space(s[i]) {
			i++
		}
		var value string
		if i < len(s) && (s[i] == '\'' || s[i] == '"') {
			q, open := s[i], i
			var b strings.Builder
			closed := false
			for i++; i < len(s); i++ {
				if s[i] != q {
					b.WriteByte(s[i])
					continue
				}
				if i+1 < len(s) && s[i+1] == q { // a doubled quote is a quote
					b.WriteByte(q)
					i++
					continue
				}
				i++
				closed = true
				break
			}
			if !closed {
				return nil, fmt.Errorf("%s: the quoted value at character %d has no closing %c; close it, doubling any %c inside the value", name, pos(open), q, q)
			}
			for i < len(s) && space(s[i]) {
				i++
			}
			if i < len(s) && s[i] != ';' {
				return nil, fmt.Errorf("%s: unexpected text at character %d after the closing quote; quote the whole value and double any %c inside it", name, pos(i), q)
			}
			value = b.String()
		} else {
			n := strings.IndexByte(s[i:], ';')
			if n < 0 {
				n = len(s) - i
			}
			value = strings.TrimSpace(s[i : i+n])
			i += n
		}
		pairs = append(pairs, csPair{name: name, value: value, at: pos(start)})
	}
}

// quoteHint explains the usual cause of a stray part after a secret: an
// unquoted ";" inside the secret.
func quoteHint(pairs []csPair) string {
	if len(pairs) == 0 {
		return ""
	}
	last := pairs[len(pairs)-1].name
	for _, p := range connStringProps {
		if strings.EqualFold(p, last) && isSecretProp(p) {
			return fmt.Sprintf(`; if the value of %s contains ";", quote it: %s='...'`, p, p)
		}
	}
	return ""
}

func unknownProperty(p csPair, pairs []csPair, def *definitions.Definition) error {
	// A part right after a secret is most likely the secret's tail cut at an
	// unquoted ";": do not repeat it.
	i := slices.IndexFunc(pairs, func(q csPair) bool { return q.at == p.at })
	prev := pairs[:i]
	if hint := quoteHint(prev); hint != "" {
		return fmt.Errorf("the property at character %d is unknown%s", p.at, hint)
	}
	if i > 0 {
		if f, ok := def.Field(prev[i-1].name); ok && f.Secret {
			return fmt.Errorf(`the property at character %d is unknown; if the value of %s contains ";", quote it: %s='...'`, p.at, f.Name, f.Name)
		}
	}
	known := slices.Clone(connStringProps)
	for _, f := range def.Fields {
		known = append(known, f.Name)
	}
	msg := fmt.Sprintf("unknown property %q", p.name)
	if s, ok := connStringAliases[normName(p.name)]; ok {
		msg += fmt.Sprintf("; did you mean %s?", s)
	} else if s := templates.Closest(p.name, known); s != "" {
		msg += fmt.Sprintf("; did you mean %s?", s)
	}
	return fmt.Errorf("%s (known: %s)", msg, strings.Join(known, ", "))
}

// parseInitiate reads an InitiateOAuth value, ignoring case.
func parseInitiate(v string) (InitiateMode, bool) {
	switch m := InitiateMode(strings.ToUpper(strings.TrimSpace(v))); m {
	case InitiateOff, InitiateGetAndRefresh, InitiateRefresh:
		return m, true
	}
	return "", false
}

func parseAuthScheme(v string) (definitions.Scheme, error) {
	if sc, ok := authSchemes[schemeKey(v)]; ok {
		return sc, nil
	}
	return "", fmt.Errorf("AuthScheme %q is not one of NONE, BASIC, OAUTH, OAUTH_CLIENT, APIKEY, SESSION, OAUTH1, NTLM", v)
}

// schemeMismatch explains an AuthScheme that contradicts the definition and
// names the definitions that would fit it.
func schemeMismatch(want definitions.Scheme, def *definitions.Definition, defs *definitions.Set) error {
	var fit []string
	for _, d := range defs.All() {
		if d.Auth.Scheme == want {
			fit = append(fit, d.Name)
		}
	}
	msg := fmt.Sprintf("AuthScheme=%s does not match definition %s, which uses %s; set AuthScheme=%s or leave it out",
		cdataScheme(want), def.Name, cdataScheme(def.Auth.Scheme), cdataScheme(def.Auth.Scheme))
	if len(fit) > 0 {
		msg += fmt.Sprintf(", or choose a definition for %s (%s)", cdataScheme(want), strings.Join(fit, ", "))
	}
	return errors.New(msg)
}

// connStringDefinition finds the definition from Definition= and Profile=.
func connStringDefinition(props map[string]string, defs *definitions.Set) (*definitions.Definition, error) {
	name, profile := props[propDefinition], props[propProfile]
	if profile == "" {
		if name == "" {
			return nil, fmt.Errorf("no definition: set Definition=NAME (one of %s) or Profile=path/to/definition.yaml; for example %s",
				strings.Join(defs.Names(), ", "), connStringExample)
		}
		if isDefinitionPath(name) {
			return nil, fmt.Errorf("Definition %q looks like a file; name a definition (one of %s), or give the file as Profile=%s", name, strings.Join(defs.Names(), ", "), name)
		}
		d, err := defs.Lookup(name)
		if err != nil {
			return nil, fmt.Errorf("Definition: %w", err)
		}
		return d, nil
	}
	if ext := strings.ToLower(filepath.Ext(profile)); ext != ".yaml" && ext != ".yml" {
		return nil, fmt.Errorf("Profile %q is not a definition file: this engine reads YAML definitions (.yaml or .yml), not CData profiles (.apip); set Profile to a definition file, or use Definition=NAME (one of %s)",
			profile, strings.Join(defs.Names(), ", "))
	}
	return loadDefinitionFile(profile, name, defs, "Profile")
}

// loadDefinitionFile checks the definition file path on top of defs and
// returns the definition named name, or the file's own when name is "".
func loadDefinitionFile(path, name string, defs *definitions.Set, what string) (*definitions.Definition, error) {
	files, err := definitions.ReadFiles(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	set, err := definitions.Parse(defs, files...)
	if err != nil {
		return nil, fmt.Errorf("%s %s is not a valid definition file:\n%w", what, path, err)
	}
	if name != "" {
		d, err := set.Lookup(name)
		if err != nil {
			return nil, fmt.Errorf("Definition: %w", err)
		}
		return d, nil
	}
	for _, d := range set.All() {
		if d.Source == files[0].Path {
			return d, nil
		}
	}
	return nil, fmt.Errorf("%s %s defines no connection definition", what, path)
}

func isDefinitionPath(s string) bool {
	ext := strings.ToLower(filepath.Ext(s))
	return ext == ".yaml" || ext == ".yml" || strings.ContainsAny(s, `/\`)
}

// splitScopes splits on spaces and commas. It never returns nil: an empty
// Scope asks for no scope, where an absent one means the definition's.
func splitScopes(v string) []string {
	return append([]string{}, strings.FieldsFunc(v, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })...)
}

// LoadConnectionFile reads a YAML connection file:
//
//	definition: procore          # a definition in defs, or a definition file (relative to this file)
//	id: acme-prod                # optional store key
//	environment: sandbox
//	client_id: abc
//	client_secret: ${env:PROCORE_CLIENT_SECRET}
//	redirect_uri: http://127.0.0.1:8765/callback
//	scopes: [read, write]        # optional; [] asks for no scope
//	fields: {CompanyId: 562949953421312}
//	base_url: ...                # optional host overrides
//	login_url: ...
//	initiate: GETANDREFRESH      # OFF, GETANDREFRESH or REFRESH
//	access_token: ...            # optional tokens obtained elsewhere
//	refresh_token: ...
//	store: ...                   # optional: ConnectionOptions.StoreLocation, as written
//
// defs nil means definitions.Builtin(). Unknown keys are errors. Any string
// value may be a whole ${env:NAME} (an environment variable, which must be
// set) or ${file:PATH} (a file's content less one trailing newline, PATH
// relative to the connection file). A literal client_secret is allowed, for
// tests and local use; keep such a file private.
//
// A ${file:} reference that supplies a secret (client_secret, access_token,
// refresh_token or a secret field) must name a file no other user can read:
// a group- or world-readable secret file is an error with a chmod 600 hint,
// not a warning, because a warning in a scheduled job is never read and the
// secret stays exposed. Non-secret values may come from any file.
//
// The connection is validated before it is returned; errors (a
// *ConfigError) point at path:line and never contain secret values.
func LoadConnectionFile(path string, defs *definitions.Set) (*Connection, ConnectionOptions, error) {
	if defs == nil {
		defs = definitions.Builtin()
	}
	data, err := readfile.Read(path, maxConnectionFile, "a connection file")
	if err != nil {
		return nil, ConnectionOptions{}, fmt.Errorf("cannot read connection file %s: %w", path, unwrapPathError(err))
	}
	l := &fileLoader{path: path, dir: filepath.Dir(path)}
	raw, root := l.decode(data)
	l.root = root
	if raw == nil {
		return nil, ConnectionOptions{}, &ConfigError{Source: path, Problems: l.problems}
	}

	var def *definitions.Definition
	if name := l.resolve(raw.Definition, false, "definition"); name == "" {
		if len(l.problems) == 0 {
			l.problemf(yamlKeyLine(root, "definition"), "definition", "missing: name a definition (one of %s) or a definition file",
				strings.Join(defs.Names(), ", "))
		}
	} else if isDefinitionPath(name) {
		p := name
		if !filepath.IsAbs(p) {
			p = filepath.Join(l.dir, p)
		}
		if def, err = loadDefinitionFile(p, "", defs, "definition file"); err != nil {
			l.problemf(yamlKeyLine(root, "definition"), "definition", "%v", err)
		}
	} else if def, err = defs.Lookup(name); err != nil {
		l.problemf(yamlKeyLine(root, "definition"), "definition", "%v", err)
	}

	c := &Connection{
		Definition:   def,
		ID:           l.resolve(raw.ID, false, "id"),
		Environment:  l.resolve(raw.Environment, false, "environment"),
		ClientID:     l.resolve(raw.ClientID, false, "client_id"),
		ClientSecret: l.resolve(raw.ClientSecret, true, "client_secret"),
		RedirectURI:  l.resolve(raw.RedirectURI, false, "redirect_uri"),
		BaseURL:      l.resolve(raw.BaseURL, false, "base_url"),
		LoginURL:     l.resolve(raw.LoginURL, false, "login_url"),
		AccessToken:  l.resolve(raw.AccessToken, true, "access_token"),
		RefreshToken: l.resolve(raw.RefreshToken, true, "refresh_token"),
	}
	// A key given empty would silently mean the definition's host: the
	// file most likely meant to override it and lost the value.
	for _, h := range []struct{ key, val string }{{"base_url", c.BaseURL}, {"login_url", c.LoginURL}} {
		if n := yamlValueNode(root, h.key); n != nil && strings.TrimSpace(h.val) == "" {
			l.problemAt(n, h.key, "empty; give the URL to use instead of the definition's (https://...), or leave the key out")
		}
	}
	opts := ConnectionOptions{StoreLocation: l.resolve(raw.Store, false, "store")}
	if v := l.resolve(raw.Initiate, false, "initiate"); v != "" {
		if m, ok := parseInitiate(v); ok {
			c.Initiate = m
		} else {
			l.problemf(yamlKeyLine(root, "initiate"), "initiate", "%q is not one of OFF, GETANDREFRESH, REFRESH", v)
		}
	}
	if raw.Scopes != nil {
		c.Scopes = make([]string, len(raw.Scopes))
		for i, s := range raw.Scopes {
			c.Scopes[i] = l.resolve(s, false, "scopes", fmt.Sprint(i))
		}
	}
	if def == nil {
		// Which fields are secret is unknown, so they are left unread; the
		// definition problem comes first.
		return nil, ConnectionOptions{}, &ConfigError{Source: path, Problems: l.problems}
	}
	for _, k := range slices.Sorted(maps.Keys(raw.Fields)) {
		name, secret := k, false
		if f, ok := def.Field(k); ok {
			name, secret = f.Name, f.Secret
		}
		if _, dup := c.Fields[name]; dup {
			l.problemf(yamlKeyLine(root, "fields", k), "fields."+k, "%s is given twice (field names ignore case); keep one", name)
			continue
		}
		if c.Fields == nil {
			c.Fields = map[string]string{}
		}
		c.Fields[name] = l.resolve(raw.Fields[k], secret, "fields", k)
	}
	if len(l.problems) > 0 {
		// Validate would mostly restate them (a secret that could not be
		// read is "missing"): what was read wrongly comes first.
		return nil, ConnectionOptions{}, &ConfigError{Source: path, Problems: l.problems}
	}
	return finishConnection(path, c, opts, nil)
}

// connectionFile is the YAML shape of a connection file.
type connectionFile struct {
	Definition   string            `yaml:"definition"`
	ID           string            `yaml:"id"`
	Environment  string            `yaml:"environment"`
	ClientID     string            `yaml:"client_id"`
	ClientSecret string            `yaml:"client_secret"`
	RedirectURI  string            `yaml:"redirect_uri"`
	Scopes       []string          `yaml:"scopes"`
	Fields       map[string]string `yaml:"fields"`
	BaseURL      string            `yaml:"base_url"`
	LoginURL     string            `yaml:"login_url"`
	Initiate     string            `yaml:"initiate"`
	AccessToken  string            `yaml:"access_token"`
	RefreshToken string            `yaml:"refresh_token"`
	Store        string            `yaml:"store"`
}

func connectionFileKeys() []string {
	t := reflect.TypeFor[connectionFile]()
	keys := make([]string, t.NumField())
	for i := range keys {
		keys[i] = t.Field(i).Tag.Get("yaml")
	}
	return keys
}

// fileLoader collects the problems of one connection file.
type fileLoader struct {
	path, dir string
	root      *yaml.Node
	problems  []error
}

func (l *fileLoader) problemf(line int, key, format string, args ...any) {
	loc := l.path
	if line > 0 {
		loc = fmt.Sprintf("%s:%d", l.path, line)
	}
	if key != "" {
		loc += ": " + key
	}
	l.problems = append(l.problems, fmt.Errorf("%s: %s", loc, fmt.Sprintf(format, args...)))
}

var (
	yamlLine      = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	yamlUnknown   = regexp.MustCompile(`^field (\S+) not found in type \S+$`)
	yamlWrongType = regexp.MustCompile("^cannot unmarshal (!!\\w+)(?: `[^`]*`)? into (\\S+)$")
	backquoted    = regexp.MustCompile("`[^`]*`")
)

// decode parses data strictly (unknown keys are errors) and returns the
// settings with the document's tree, for line numbers; nil when the file
// cannot be read as a connection file.
func (l *fileLoader) decode(data []byte) (*connectionFile, *yaml.Node) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		l.yamlProblems(err)
		return nil, nil
	}
	if len(root.Content) == 0 {
		l.problemf(0, "", "the file is empty; it needs at least definition: NAME")
		return nil, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var raw connectionFile
	if err := dec.Decode(&raw); err != nil {
		l.yamlProblems(err)
		return nil, nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		l.problemf(extra.Line, "", "a connection file holds one YAML document; remove everything after the first \"---\"")
		return nil, nil
	}
	doc := root.Content[0]
	return &raw, doc
}

// yamlProblems restates yaml.v3's errors as path:line problems in the
// file's terms, dropping any value yaml.v3 quotes (it may be a secret).
func (l *fileLoader) yamlProblems(err error) {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	for _, m := range msgs {
		line := 0
		if sub := yamlLine.FindStringSubmatch(m); sub != nil {
			fmt.Sscan(sub[1], &line)
			m = sub[2]
		}
		if sub := yamlUnknown.FindStringSubmatch(m); sub != nil {
			msg := fmt.Sprintf("unknown key %q", sub[1])
			if s := templates.Closest(sub[1], connectionFileKeys()); s != "" {
				msg += fmt.Sprintf("; did you mean %s?", s)
			}
			l.problemf(line, "", "%s (known keys: %s)", msg, strings.Join(connectionFileKeys(), ", "))
			continue
		}
		if sub := yamlWrongType.FindStringSubmatch(m); sub != nil {
			l.problemf(line, "", "expected %s, found %s", yamlGoType(sub[2]), yamlTag(sub[1]))
			continue
		}
		l.problemf(line, "", "%s", backquoted.ReplaceAllString(m, "(value hidden)"))
	}
}

func yamlTag(tag string) string {
	switch tag {
	case "!!map":
		return "a mapping"
	case "!!seq":
		return "a list"
	case "!!str":
		return "a string"
	case "!!int", "!!float":
		return "a number"
	case "!!bool":
		return "true/false"
	case "!!null":
		return "nothing"
	}
	return tag
}

func yamlGoType(t string) string {
	switch {
	case t == "string":
		return "a single value"
	case t == "[]string":
		return "a list of values"
	case strings.HasPrefix(t, "map["):
		return "a mapping of names to values"
	}
	return "a mapping of connection settings (definition, client_id, ...)"
}

var reference = regexp.MustCompile(`^\$\{(env|file):([^}]*)\}$`)

// resolve returns v with a ${env:NAME} or ${file:PATH} reference replaced.
// keys locate the value in the file: a top-level key, then a map key or a
// list index.
func (l *fileLoader) resolve(v string, secret bool, keys ...string) string {
	name := strings.Join(keys, ".")
	if len(keys) == 2 && keys[0] == "scopes" {
		name = fmt.Sprintf("scopes[%s]", keys[1])
	}
	line := func() int { return yamlKeyLine(l.root, keys...) }
	m := reference.FindStringSubmatch(v)
	if m == nil {
		if strings.Contains(v, "${env:") || strings.Contains(v, "${file:") {
			l.problemf(line(), name, "a ${env:NAME} or ${file:PATH} reference must be the whole value")
		}
		return v
	}
	kind, ref := m[1], strings.TrimSpace(m[2])
	if ref == "" {
		l.problemf(line(), name, "${%s:} names no %s", kind, map[string]string{"env": "variable", "file": "file"}[kind])
		return ""
	}
	if kind == "env" {
		val, ok := os.LookupEnv(ref)
		if !ok {
			l.problemf(line(), name, "environment variable %s is not set; set it, or write the value in the file", ref)
		}
		return val
	}
	p := ref
	if !filepath.IsAbs(p) {
		p = filepath.Join(l.dir, p)
	}
	st, err := os.Stat(p)
	if err != nil {
		l.problemf(line(), name, "cannot read ${file:%s} (%s): %v", ref, p, unwrapPathError(err))
		return ""
	}
	if secret && runtime.GOOS != "windows" && st.Mode().IsRegular() && st.Mode().Perm()&0o077 != 0 {
		l.problemf(line(), name, "%s holds a secret but other users may read it (mode %04o); run chmod 600 %s", p, st.Mode().Perm(), p)
		return ""
	}
	data, err := readfile.Read(p, maxFileReference, "a ${file:} reference")
	if err != nil {
		l.problemf(line(), name, "cannot read ${file:%s} (%s): %v", ref, p, unwrapPathError(err))
		return ""
	}
	s := string(data)
	if t, ok := strings.CutSuffix(s, "\r\n"); ok {
		return t
	}
	return strings.TrimSuffix(s, "\n")
}

// yamlKeyLine returns the line of the value under keys in a mapping document (a
// list index for sequences), or 0.
// yamlValueNode returns the value of a top-level key of a mapping, nil
// when the key is absent.
func yamlValueNode(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// problemAt is problemf at a node's line and column.
func (l *fileLoader) problemAt(n *yaml.Node, key, format string, args ...any) {
	l.problems = append(l.problems, fmt.Errorf("%s:%d:%d: %s: %s", l.path, n.Line, n.Column, key, fmt.Sprintf(format, args...)))
}

func yamlKeyLine(n *yaml.Node, keys ...string) int {
	line := 0
	for _, k := range keys {
		if n == nil {
			return line
		}
		var next *yaml.Node
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == k {
					next = n.Content[i+1]
					line = n.Content[i].Line
				}
			}
		case yaml.SequenceNode:
			var idx int
			if _, err := fmt.Sscan(k, &idx); err == nil && idx >= 0 && idx < len(n.Content) {
				next = n.Content[idx]
				line = next.Line
			}
		}
		n = next
	}
	return line
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func normName(s string) string {
	return strings.ToLower(strings.NewReplacer("_", "", "-", "", " ", "").Replace(s))
}
