package definitions

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v5"
	"gopkg.in/yaml.v3"

	"github.com/connector-engine/connector/schemas"
	"github.com/connector-engine/connector/templates"
)

// compiledSchema is the definition schema, compiled once per process.
var compiledSchema = sync.OnceValues(func() (*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.Draft = jsonschema.Draft2020
	if err := c.AddResource(schemas.DefinitionURL, bytes.NewReader(schemas.Definition)); err != nil {
		return nil, err
	}
	return c.Compile(schemas.DefinitionURL)
})

// rawSchema is the schema as plain JSON, read to list the keys allowed where
// an unknown one was found (for "did you mean").
var rawSchema = sync.OnceValue(func() map[string]any {
	var m map[string]any
	if err := json.Unmarshal(schemas.Definition, &m); err != nil {
		panic("schemas: embedded definition schema is not JSON: " + err.Error())
	}
	return m
})

var quotedName = regexp.MustCompile(`'((?:[^'\\]|\\.)*)'`)

// validateSchema checks one tree against the JSON Schema and turns each
// failure into a Diagnostic at the node concerned.
//
// A file that extends another is incomplete on its own: partial is then set
// and missing keys are left to the check of the merged tree.
func validateSchema(root *yaml.Node, origin map[*yaml.Node]string, ds *diags, partial bool) {
	sch, err := compiledSchema()
	if err != nil {
		panic("definitions: embedded schema does not compile: " + err.Error())
	}
	budget := maxExpandedNodes
	v, err := toValue(root, &budget)
	if err != nil {
		ds.add(Diagnostic{Severity: SeverityError, File: origin[root], Line: root.Line, Column: root.Column, Message: err.Error()})
		return
	}
	err = sch.Validate(v)
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return
	}
	for _, leaf := range leaves(ve) {
		if partial && strings.HasSuffix(leaf.KeywordLocation, "/required") {
			continue
		}
		schemaDiagnostic(root, origin, leaf, ds)
	}
}

// leaves returns the innermost causes: the outer ones only say "doesn't
// validate with $ref" and add nothing a user can act on.
func leaves(ve *jsonschema.ValidationError) []*jsonschema.ValidationError {
	if len(ve.Causes) == 0 {
		return []*jsonschema.ValidationError{ve}
	}
	var out []*jsonschema.ValidationError
	for _, c := range ve.Causes {
		out = append(out, leaves(c)...)
	}
	return out
}

func schemaDiagnostic(root *yaml.Node, origin map[*yaml.Node]string, ve *jsonschema.ValidationError, ds *diags) {
	key, val := nodeAt(root, ve.InstanceLocation)
	field := pointerField(ve.InstanceLocation)
	at := func(n *yaml.Node, field, msg string) {
		if n == nil {
			n = root
		}
		file := origin[n]
		if file == "" {
			file = origin[root]
		}
		ds.add(Diagnostic{Severity: SeverityError, File: file, Line: n.Line, Column: n.Column, Field: field, Message: msg})
	}
	kw := ve.KeywordLocation[strings.LastIndex(ve.KeywordLocation, "/")+1:]
	switch {
	case kw == "additionalProperties" && strings.HasPrefix(ve.Message, "additionalProperties "):
		allowed := allowedKeys(ve.AbsoluteKeywordLocation)
		for _, m := range quotedName.FindAllStringSubmatch(ve.Message, -1) {
			name := strings.ReplaceAll(m[1], `\'`, `'`)
			k, _ := mapGet(val, name)
			msg := fmt.Sprintf("unknown key %q", name)
			if s := suggest(name, allowed); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			} else if len(allowed) > 0 {
				msg += "; allowed here: " + strings.Join(allowed, ", ")
			}
			at(k, joinField(field, name), msg)
		}
	case kw == "required":
		for _, m := range quotedName.FindAllStringSubmatch(ve.Message, -1) {
			n := key // point at "oauth:" rather than at its first child
			if n == nil {
				n = val
			}
			if val == root {
				n = &yaml.Node{Line: 1, Column: 1}
				origin[n] = origin[root]
			}
			at(n, joinField(field, m[1]), fmt.Sprintf("missing required key %q", m[1]))
		}
	case strings.Contains(ve.KeywordLocation, "/propertyNames/") && strings.HasPrefix(field, "ignore_warnings."):
		at(key, field, unknownWarningCode(lastToken(ve.InstanceLocation)))
	case strings.Contains(ve.KeywordLocation, "/propertyNames/") && strings.HasPrefix(field, "request.headers."):
		at(key, field, fmt.Sprintf("%q is not a valid HTTP header name: use letters, digits and - (no spaces or colons)", lastToken(ve.InstanceLocation)))
	case strings.Contains(ve.KeywordLocation, "/propertyNames/"):
		at(key, field, fmt.Sprintf("%q is not a valid name here: %s", lastToken(ve.InstanceLocation), friendly(kw, ve.Message)))
	case field == "auth.oauth.dpop" && kw == "type": // dpop: true is what people write first
		at(val, field, friendly(kw, ve.Message)+"; dpop: {} turns DPoP on with ES256, dpop: {algorithm: RS256} picks the algorithm")
	case strings.HasPrefix(field, "ignore_warnings.") && kw == "minLength":
		at(val, field, "the reason must not be empty: say why this warning is acceptable here")
	default:
		at(val, field, friendly(kw, ve.Message))
	}
}

func lastToken(pointer string) string {
	return unescapeToken(pointer[strings.LastIndex(pointer, "/")+1:])
}

// friendly rewrites the validator's terse messages in the words an admin
// editing YAML would use.
func friendly(keyword, msg string) string {
	switch keyword {
	case "type":
		msg = strings.Replace(msg, "expected ", "must be ", 1)
		msg = strings.Replace(msg, ", but got ", ", not ", 1)
		msg = strings.NewReplacer("object", "a mapping", "array", "a list", "null", "empty").Replace(msg)
		return msg
	case "enum":
		return strings.Replace(msg, "value must be one of ", "must be one of ", 1)
	case "const":
		return strings.Replace(msg, "value must be ", "must be ", 1)
	case "pattern":
		return patternMessage(msg)
	case "minLength":
		if strings.Contains(msg, ">= 1") {
			return "must not be empty"
		}
	case "minProperties":
		return "must not be empty"
	}
	return msg
}

// patternWords says in words, with an example, what each pattern of the
// schema allows: an admin should not have to read a regular expression.
// TestPatternsHaveWords keeps it complete.
var patternWords = map[string]string{
	`^[A-Za-z0-9_.~-]+$`:                    "must be a parameter name: letters, digits, '_', '.', '~' and '-', such as client_key",
	"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$":         "must be an HTTP header name: letters, digits and - (no spaces or colons), such as X-Request-Id",
	"^[A-Za-z0-9_.-]+$":                     "must be the key of a key=value pair: letters, digits, _ . and - (no = or comma), such as v1",
	`^[\x21-\x7e]*$`:                        "must be printable ASCII without spaces, such as sha256=",
	`^[\x20-\x7e]*$`:                        `must be printable ASCII (a space is allowed; no tab, newline or non-ASCII letter), such as "Bearer "`,
	`^[^\s]+$`:                              "must not contain spaces: one scope per list item, such as read:projects",
	`^[a-z0-9][a-z0-9._-]{0,63}$`:           "must be lowercase letters, digits, '.', '_' and '-', starting with a letter or digit, at most 64 characters, such as my-procore",
	`^[a-z][a-z0-9_-]{0,31}$`:               "must be lowercase letters, digits, '_' and '-', starting with a letter, at most 32 characters, such as sandbox",
	`^[A-Za-z_][A-Za-z0-9_]{0,63}$`:         "must be letters, digits and '_', starting with a letter or '_', at most 64 characters, such as CompanyId",
	`^[a-z][a-z0-9_]{0,63}$`:                "must be lowercase letters, digits and '_', starting with a letter, at most 64 characters, such as list_projects",
	`^[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*$`: "must be names of letters, digits, '_', '$' and '-' joined by single dots, such as data.company_id",
}

// patternMessage turns jsonschema's "does not match pattern '...'" into
// what the pattern allows.
func patternMessage(msg string) string {
	for p, w := range patternWords {
		if strings.HasSuffix(msg, "does not match pattern "+schemaQuote(p)) {
			return w
		}
	}
	return strings.Replace(msg, "does not match pattern", "has the wrong form; it must match", 1)
}

// schemaQuote quotes a pattern as jsonschema/v5 does in its messages.
func schemaQuote(s string) string {
	s = fmt.Sprintf("%q", s)
	s = strings.ReplaceAll(s, `\"`, `"`)
	s = strings.ReplaceAll(s, `'`, `\'`)
	return "'" + s[1:len(s)-1] + "'"
}

// allowedKeys reads the "properties" next to the failing additionalProperties
// keyword in the raw schema.
func allowedKeys(absKeywordLoc string) []string {
	_, frag, ok := strings.Cut(absKeywordLoc, "#")
	if !ok {
		return nil
	}
	var cur any = rawSchema()
	toks := strings.Split(strings.TrimPrefix(frag, "/"), "/")
	for _, t := range toks[:len(toks)-1] {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[t]
	}
	m, _ := cur.(map[string]any)
	props, _ := m["properties"].(map[string]any)
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// suggest is the "did you mean" of every definition message.
func suggest(s string, candidates []string) string { return templates.Closest(s, candidates) }
