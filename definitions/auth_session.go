package definitions

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/connector-engine/connector/templates"
)

// Session is a two-step session login (auth.scheme: session): the
// connection's credentials (fields: a user name and password, an API key)
// are posted to a login endpoint, the answer carries a session token and
// perhaps its lifetime, and API requests carry the token until it expires or
// the API answers 401, when the engine logs in again.
type Session struct {
	LoginURI *templates.Template // where the credentials are posted
	Method   string              // POST (default), PUT or GET
	Encoding string              // SessionJSON (default) or SessionForm
	Headers  []Param             // headers of the login request
	body     *bodyNode           // the login body; nil for none
	bodyTmpl []*templates.Template
	// fieldType is the type of each field placeholder, so that a leaf that
	// is exactly one integer or boolean field is sent typed in JSON.
	fieldType map[int]string

	TokenPath     string // body path of the session token; "" when TokenHeader says
	TokenHeader   string // the response header carrying the token, instead of TokenPath
	ExpiresInPath string // body path of the lifetime in seconds; "" for none
	// DefaultExpiresIn is the lifetime assumed when the answer gives none.
	DefaultExpiresIn time.Duration
	SendToken        SendToken // where API requests carry the session token
}

// Encodings of a session login body.
const (
	SessionJSON = "json"
	SessionForm = "form"
)

type rawSession struct {
	LoginURI         string    `yaml:"login_uri"`
	Method           string    `yaml:"method"`
	Encoding         string    `yaml:"encoding"`
	Body             yaml.Node `yaml:"body"`
	Headers          yaml.Node `yaml:"headers"`
	TokenPath        string    `yaml:"token_path"`
	TokenHeader      string    `yaml:"token_header"`
	ExpiresInPath    string    `yaml:"expires_in_path"`
	DefaultExpiresIn string    `yaml:"default_expires_in"`
	SendToken        struct {
		In     string  `yaml:"in"`
		Name   string  `yaml:"name"`
		Prefix *string `yaml:"prefix"`
	} `yaml:"send_token"`
}

// scopeLogin: a login request has the connection's fields and its hosts,
// nothing of OAuth.
var scopeLogin = scope{name: "the session login", allowed: bits(VarBaseURL, VarLoginURL), hints: map[int]string{
	VarClientID:     "a session login has no OAuth client; put the credentials in fields (${Username}, ${ApiKey})",
	VarClientSecret: "a session login has no OAuth client; put the credentials in secret fields",
}}

// DefaultSessionLifetime is assumed for a session token when neither the
// login answer nor the definition says how long it lives; a 401 ends it
// sooner.
const DefaultSessionLifetime = time.Hour

func (b *builder) buildSession(rs *rawSession) {
	const p = "/auth/session"
	s := &Session{Method: rs.Method, Encoding: rs.Encoding, TokenPath: rs.TokenPath, TokenHeader: rs.TokenHeader,
		ExpiresInPath: rs.ExpiresInPath, DefaultExpiresIn: DefaultSessionLifetime, fieldType: map[int]string{}}
	b.def.Auth.Session = s
	defaults(&s.Method, "POST")
	defaults(&s.Encoding, SessionJSON)
	for _, f := range b.def.Fields {
		s.fieldType[f.Var] = f.Type
	}
	if rs.LoginURI == "" {
		b.errorf(p, "missing login_uri: the session scheme posts the credentials there to obtain a session token")
	} else {
		s.LoginURI = b.compile(p+"/login_uri", rs.LoginURI, templates.URL, scopeLogin)
		if s.LoginURI != nil {
			for _, ph := range s.LoginURI.Placeholders() {
				if b.def.vars.Flags(ph.Var)&templates.Secret != 0 {
					b.warnAt(warnSecretInURL, p+"/login_uri", ph.Offset,
						fmt.Sprintf("${%s} is a secret field and travels in the URL, which ends up in logs; send it in session.body or session.headers", ph.Name))
				}
			}
		}
	}
	s.Headers = b.buildParamsScoped(&rs.Headers, p+"/headers", scopeLogin)

	switch {
	case rs.TokenPath == "" && rs.TokenHeader == "":
		b.errorf(p, "missing token_path: say where the login answer carries the session token, as a body path (credentials.token, or a JSON Pointer such as /data/sessionId), or give token_header")
	case rs.TokenPath != "" && rs.TokenHeader != "":
		b.errorf(p+"/token_header", "token_path and token_header both say where the session token is; keep one")
	}
	if rs.TokenPath != "" {
		if msg := BodyPathProblem(rs.TokenPath); msg != "" {
			b.errorf(p+"/token_path", "%s", msg)
		}
	}
	if rs.ExpiresInPath != "" {
		if msg := BodyPathProblem(rs.ExpiresInPath); msg != "" {
			b.errorf(p+"/expires_in_path", "%s", msg)
		}
	}
	if v := rs.DefaultExpiresIn; v != "" {
		if dur, err := time.ParseDuration(v); err != nil || dur <= 0 {
			b.errorf(p+"/default_expires_in", "%q is not a positive duration such as 240m or 1h", v)
		} else {
			s.DefaultExpiresIn = dur
		}
	}
	s.SendToken = b.sendToken(p+"/send_token", rs.SendToken.In, rs.SendToken.Name, rs.SendToken.Prefix)

	bn := resolve(&rs.Body)
	if bn == nil || bn.Kind == 0 || isNull(bn) {
		return
	}
	if s.Method == "GET" {
		b.errorf(p+"/body", "a GET login carries no body; use method: POST, or put the values in login_uri's query")
		return
	}
	if bn.Kind != yaml.MappingNode {
		b.errorf(p+"/body", "the login body must be a mapping of names to values")
		return
	}
	if s.Encoding == SessionForm {
		for i := 0; i+1 < len(bn.Content); i += 2 {
			if v := resolve(bn.Content[i+1]); v.Kind != yaml.ScalarNode {
				b.errorf(p+"/body/"+escapePointer(bn.Content[i].Value), "a form body is flat: %s must be a single value, not %s; use encoding: json for nested bodies", bn.Content[i].Value, kindName(v))
			}
		}
	}
	budget := 10000
	s.body, s.bodyTmpl = b.buildLoginBody(p+"/body", bn, &budget, 0)
}

// buildParamsScoped is buildParams for another scope than API requests.
func (b *builder) buildParamsScoped(n *yaml.Node, pointer string, sc scope) []Param {
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
		if t := b.compile(pointer+"/"+escapePointer(k.Value), v.Value, templates.Text, sc); t != nil {
			out = append(out, Param{Name: k.Value, Value: t})
		}
	}
	return out
}

// buildLoginBody compiles the login body: string leaves are text templates
// of the session login's placeholders, other scalars are sent as written.
func (b *builder) buildLoginBody(ptr string, n *yaml.Node, budget *int, depth int) (*bodyNode, []*templates.Template) {
	*budget--
	if *budget < 0 || depth > maxBodyDepth {
		if *budget >= -1 {
			*budget = -2
			b.errorf(ptr[:min(len(ptr), 200)], "the login body nests more than %d levels deep or expands to too many nodes (aliases); simplify it", maxBodyDepth)
		}
		return nil, nil
	}
	n = resolve(n)
	switch n.Kind {
	case yaml.MappingNode, yaml.SequenceNode:
		bn := &bodyNode{kind: bodyArray}
		step := 1
		if n.Kind == yaml.MappingNode {
			bn.kind, step = bodyObject, 2
		}
		var ts []*templates.Template
		for i := 0; i+step-1 < len(n.Content); i += step {
			elemPtr, v := ptr+"/"+strconv.Itoa(i), n.Content[i]
			if step == 2 {
				elemPtr = ptr + "/" + escapePointer(n.Content[i].Value)
				bn.keys = append(bn.keys, n.Content[i].Value)
				v = n.Content[i+1]
			}
			e, ets := b.buildLoginBody(elemPtr, v, budget, depth+1)
			if e == nil {
				return nil, nil
			}
			ts = append(ts, ets...)
			bn.elems = append(bn.elems, e)
		}
		return bn, ts
	case yaml.ScalarNode:
		if n.ShortTag() == "!!str" {
			t := b.compile(ptr, n.Value, templates.Text, scopeLogin)
			if t == nil {
				return nil, nil
			}
			if v := wholePlaceholder(n.Value, t.Placeholders()); v >= 0 {
				return &bodyNode{kind: bodyWhole, v: v, text: t}, []*templates.Template{t}
			}
			return &bodyNode{kind: bodyText, text: t}, []*templates.Template{t}
		}
		one := 1
		v, _ := toValue(n, &one)
		raw, err := marshalJSON(v)
		if err != nil {
			b.errorf(ptr, "cannot be written as JSON: %v", err)
			return nil, nil
		}
		return &bodyNode{kind: bodyRaw, raw: raw}, nil
	}
	return nil, nil
}

func (s *Session) templates() []*templates.Template {
	ts := []*templates.Template{s.LoginURI}
	for _, h := range s.Headers {
		ts = append(ts, h.Value)
	}
	ts = append(ts, s.bodyTmpl...)
	out := ts[:0]
	for _, t := range ts {
		if t != nil {
			out = append(out, t)
		}
	}
	return out
}

// LoginBody returns the login request's body for the connection's
// placeholder values, and its Content-Type; nil and "" when the definition
// declares no body. Text leaves are inserted as they are (a value with CR,
// LF or NUL is refused); a leaf that is exactly one integer or boolean
// field is sent typed in JSON.
func (s *Session) LoginBody(vals []string) ([]byte, string, error) {
	if s.body == nil {
		return nil, "", nil
	}
	for _, t := range s.bodyTmpl {
		if _, err := t.Expand(vals); err != nil {
			return nil, "", err
		}
	}
	if s.Encoding == SessionForm {
		q := url.Values{}
		for i, k := range s.body.keys {
			q.Add(k, s.leafText(s.body.elems[i], vals))
		}
		return []byte(q.Encode()), "application/x-www-form-urlencoded", nil
	}
	return s.encode(nil, s.body, vals), "application/json", nil
}

// leafText is a scalar leaf's text, for a form body.
func (s *Session) leafText(n *bodyNode, vals []string) string {
	switch n.kind {
	case bodyText, bodyWhole:
		return substitute(n.text, vals)
	case bodyRaw: // a number or boolean: strings are templates
		return string(n.raw)
	}
	return ""
}

func (s *Session) encode(dst []byte, n *bodyNode, vals []string) []byte {
	switch n.kind {
	case bodyRaw:
		return append(dst, n.raw...)
	case bodyWhole:
		v := vals[n.v]
		switch s.fieldType[n.v] {
		case "integer":
			if integerText.MatchString(v) {
				return append(dst, v...)
			}
		case "boolean":
			if v == "true" || v == "false" {
				return append(dst, v...)
			}
		}
		raw, _ := marshalJSON(v)
		return append(dst, raw...)
	case bodyText:
		raw, _ := marshalJSON(substitute(n.text, vals))
		return append(dst, raw...)
	}
	open, closing := byte('['), byte(']')
	if n.kind == bodyObject {
		open, closing = '{', '}'
	}
	dst = append(dst, open)
	for i, c := range n.elems {
		if i > 0 {
			dst = append(dst, ',')
		}
		if n.kind == bodyObject {
			k, _ := marshalJSON(n.keys[i])
			dst = append(append(dst, k...), ':')
		}
		dst = s.encode(dst, c, vals)
	}
	return append(dst, closing)
}

// substitute expands a text template without escaping (the encoder escapes).
func substitute(t *templates.Template, vals []string) string {
	src := t.Source()
	var b strings.Builder
	last := 0
	for _, p := range t.Placeholders() {
		b.WriteString(src[last:p.Offset])
		b.WriteString(vals[p.Var])
		last = p.Offset + len("${") + len(p.Name) + len("}")
	}
	b.WriteString(src[last:])
	return b.String()
}
