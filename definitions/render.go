package definitions

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v5"

	"github.com/connector-engine/connector/templates"
)

// InputError is the error of Validate, Render and ParseInputs when the input
// does not fit the action's schema. Nothing has been sent.
type InputError struct {
	// Each "input <where>: <what is wrong>", sorted. Where is a JSON pointer
	// (/project/name) from Validate and Render, the name as typed
	// (project.name) from ParseInputs.
	Problems []string
}

func (e *InputError) Error() string {
	if len(e.Problems) == 1 {
		return e.Problems[0]
	}
	return fmt.Sprintf("%d problems with the input:\n  %s", len(e.Problems), strings.Join(e.Problems, "\n  "))
}

// pathError says which input a path value that cannot be sent came from.
func (a *Action) pathError(err error) error {
	var te *templates.Error
	if errors.As(err, &te) && te.Placeholder != "" {
		if v, ok := a.vars.Lookup(te.Placeholder); ok {
			if iv := a.input(v); iv != nil {
				return &InputError{Problems: []string{fmt.Sprintf("input %s: %s (action %s, path %s)", iv.name, strings.TrimPrefix(te.Msg, "the value of "), a.Name, a.path.Source())}}
			}
		}
	}
	return fmt.Errorf("path: %w", err)
}

// Render validates input and builds the request. vals are the connection's
// values of the definition's placeholders (Definition.Values); input is by
// input name. Path and query values are escaped for where they stand; a
// query parameter or body leaf that is exactly one placeholder is left out
// when it has no value.
func (a *Action) Render(vals []string, input map[string]any) (*ActionRequest, error) {
	in, err := a.prepare(input)
	if err != nil {
		return nil, err
	}
	vs := make([]string, a.vars.Len())
	copy(vs, vals[:min(len(vals), a.nDef)])
	for i, iv := range a.inputs {
		if v, ok := in[iv.name]; ok {
			vs[a.nDef+i] = scalarString(v)
		}
	}

	// An empty path segment would address another resource (/projects//users).
	for _, v := range a.pathVars {
		if vs[v] == "" {
			if iv := a.input(v); iv != nil {
				return nil, &InputError{Problems: []string{fmt.Sprintf("input %s: must not be empty: the path needs it", iv.name)}}
			}
			return nil, fmt.Errorf("the path needs ${%s}, which has no value; set the connection's %[1]s", a.vars.Name(v))
		}
	}
	path, err := a.path.Expand(vs)
	if err != nil {
		return nil, a.pathError(err)
	}
	buf := []byte(path)
	sep := byte('?')
	if strings.IndexByte(path, '?') >= 0 {
		sep = '&'
	}
	for _, q := range a.query {
		if q.whole >= 0 && vs[q.whole] == "" {
			continue
		}
		n := len(buf)
		if buf, err = q.value.AppendExpand(buf, vs); err != nil {
			return nil, fmt.Errorf("query: %w", err)
		}
		buf[n] = sep // the template's own "?"
		sep = '&'
	}
	r := &ActionRequest{Method: a.Method, Path: string(buf)}
	if a.body != nil {
		e := bodyEncoder{a: a, vs: vs, in: in}
		if body, present := e.encode(nil, a.body); present {
			r.Body = body
		}
	}
	return r, nil
}

// Validate checks input against the action's input schema (defaults
// applied) and lists every problem in an *InputError.
func (a *Action) Validate(input map[string]any) error {
	_, err := a.prepare(input)
	return err
}

// prepare turns input into plain JSON values, applies the schema's defaults
// and validates the result.
func (a *Action) prepare(input map[string]any) (map[string]any, error) {
	in := map[string]any{}
	if len(input) > 0 {
		// A JSON round trip accepts whatever a Go caller passes that JSON
		// can carry (structs, []string, int) and yields what the validator takes.
		raw, err := json.Marshal(input)
		if err != nil {
			return nil, fmt.Errorf("the input cannot be written as JSON: %w", err)
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&in); err != nil {
			return nil, fmt.Errorf("the input cannot be read back as JSON: %w", err)
		}
		if in == nil {
			in = map[string]any{}
		}
	}
	var problems []string
	for name := range in {
		if !slices.ContainsFunc(a.inputs, func(iv inputVar) bool { return iv.name == name }) {
			problems = append(problems, fmt.Sprintf("input %s: %s", name, a.unknownInput(name)))
		}
	}
	applyDefaults(a.schemaDoc, in)
	if a.schema != nil {
		var ve *jsonschema.ValidationError
		if err := a.schema.Validate(any(in)); errors.As(err, &ve) {
			for _, leaf := range leaves(ve) {
				problems = append(problems, a.inputProblems(leaf)...)
			}
		} else if err != nil {
			problems = append(problems, "input: "+err.Error())
		}
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return nil, &InputError{Problems: slices.Compact(problems)}
	}
	return in, nil
}

func (a *Action) unknownInput(name string) string {
	if len(a.inputs) == 0 {
		return fmt.Sprintf("action %s takes no input", a.Name)
	}
	names := make([]string, len(a.inputs))
	for i, iv := range a.inputs {
		names[i] = iv.name
	}
	slices.Sort(names)
	msg := "not an input of " + a.Name
	if s := suggest(name, names); s != "" {
		msg += fmt.Sprintf("; did you mean %s?", s)
	}
	return msg + " (inputs: " + strings.Join(names, ", ") + ")"
}

// applyDefaults fills in the defaults the schema's properties give, in
// objects the input has, at every level reached through properties.
func applyDefaults(schema map[string]any, v any) {
	obj, ok := v.(map[string]any)
	if !ok || schema == nil {
		return
	}
	props, _ := schema["properties"].(map[string]any)
	for name, ps := range props {
		ps, _ := ps.(map[string]any)
		if ps == nil {
			continue
		}
		if _, given := obj[name]; !given {
			if def, ok := ps["default"]; ok {
				obj[name] = deepCopy(def)
			}
		}
		applyDefaults(ps, obj[name])
	}
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = deepCopy(e)
		}
		return s
	}
	return v
}

var quotedNames = regexp.MustCompile(`'((?:[^'\\]|\\.)*)'`)

// inputProblems words one validation failure for the person who typed the
// input.
func (a *Action) inputProblems(ve *jsonschema.ValidationError) []string {
	loc := ve.InstanceLocation
	at := func(ptr, msg string) string {
		if ptr == "" {
			return "input: " + msg
		}
		return "input " + dotted(ptr) + ": " + msg
	}
	kw := ve.KeywordLocation[strings.LastIndex(ve.KeywordLocation, "/")+1:]
	switch kw {
	case "required":
		var out []string
		for _, m := range quotedNames.FindAllStringSubmatch(ve.Message, -1) {
			out = append(out, at(loc+"/"+escapePointer(m[1]), "missing; it is required"))
		}
		return out
	case "additionalProperties":
		allowed := a.allowedAt(ve.KeywordLocation)
		var out []string
		for _, m := range quotedNames.FindAllStringSubmatch(ve.Message, -1) {
			msg := "not allowed here"
			if s := suggest(m[1], allowed); s != "" {
				msg += fmt.Sprintf("; did you mean %s?", s)
			}
			if len(allowed) > 0 {
				msg += " (allowed: " + strings.Join(allowed, ", ") + ")"
			}
			out = append(out, at(loc+"/"+escapePointer(m[1]), msg))
		}
		return out
	case "type":
		msg := strings.Replace(ve.Message, "expected ", "must be ", 1)
		msg = strings.Replace(msg, ", but got ", ", not ", 1)
		return []string{at(loc, msg)}
	case "enum":
		return []string{at(loc, strings.Replace(ve.Message, "value must be one of ", "must be one of ", 1))}
	case "const":
		return []string{at(loc, strings.Replace(ve.Message, "value must be ", "must be ", 1))}
	case "format":
		return []string{at(loc, formatMessage(ve.Message))}
	case "minLength":
		if strings.Contains(ve.Message, ">= 1,") {
			return []string{at(loc, "must not be empty")}
		}
	case "pattern":
		return []string{at(loc, strings.Replace(ve.Message, "does not match pattern", "has the wrong form; it must match", 1))}
	}
	return []string{at(loc, ve.Message)}
}

// dotted writes a JSON pointer the way call's inputs are written on the
// command line: /rfi/question/body is rfi.question.body, /ids/0 is ids[0].
func dotted(ptr string) string {
	var b strings.Builder
	for i, seg := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		seg = strings.NewReplacer("~1", "/", "~0", "~").Replace(seg)
		if _, err := strconv.Atoi(seg); err == nil && i > 0 {
			b.WriteString("[" + seg + "]")
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(seg)
	}
	return b.String()
}

// formatHints says what each asserted format looks like.
var formatHints = map[string]string{
	"date":      "a date such as 2025-03-31",
	"date-time": "a date and time such as 2025-03-31T08:00:00Z",
	"time":      "a time such as 08:00:00Z",
	"email":     "an email address such as ada@example.com",
	"uri":       "an absolute URI such as https://example.com/hook",
	"uuid":      "a UUID such as 123e4567-e89b-12d3-a456-426614174000",
}

// formatMessage rewrites "'x' is not valid 'date'".
func formatMessage(msg string) string {
	m := quotedNames.FindAllStringSubmatch(msg, -1)
	if len(m) != 2 {
		return msg
	}
	v, f := m[0][1], m[1][1]
	if h := formatHints[f]; h != "" {
		return fmt.Sprintf("%q is not %s", v, h)
	}
	return fmt.Sprintf("%q is not a valid %s", v, f)
}

// allowedAt lists the properties declared next to a failing
// additionalProperties keyword, when the schema location can be walked.
func (a *Action) allowedAt(keywordLoc string) []string {
	var cur any = a.schemaDoc
	toks := strings.Split(strings.TrimPrefix(keywordLoc, "/"), "/")
	for _, t := range toks[:len(toks)-1] {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[unescapeToken(t)]
	}
	m, _ := cur.(map[string]any)
	props, _ := m["properties"].(map[string]any)
	var keys []string
	for k := range props {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// scalarString is an input value as it goes into a path, query or text:
// strings as they are, numbers and booleans as JSON writes them, objects
// and arrays as compact JSON, null as nothing.
func scalarString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	}
	raw, _ := marshalJSON(v)
	return string(raw)
}

// marshalJSON is json.Marshal without HTML escaping, which only hurts
// readability in an API body.
func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// bodyEncoder writes an action's body for one call.
type bodyEncoder struct {
	a  *Action
	vs []string
	in map[string]any
}

// encode appends n's JSON to dst and reports whether n is present: a
// whole-placeholder leaf without a value is left out of its object or array.
func (e *bodyEncoder) encode(dst []byte, n *bodyNode) ([]byte, bool) {
	switch n.kind {
	case bodyRaw:
		return append(dst, n.raw...), true
	case bodyText:
		raw, _ := marshalJSON(e.substitute(n.text))
		return append(dst, raw...), true
	case bodyWhole:
		return e.whole(dst, n.v)
	}
	open, closing := byte('['), byte(']')
	if n.kind == bodyObject {
		open, closing = '{', '}'
	}
	dst = append(dst, open)
	first := true
	for i, c := range n.elems {
		start := len(dst)
		if !first {
			dst = append(dst, ',')
		}
		if n.kind == bodyObject {
			k, _ := marshalJSON(n.keys[i])
			dst = append(append(dst, k...), ':')
		}
		var present bool
		if dst, present = e.encode(dst, c); !present {
			dst = dst[:start]
			continue
		}
		first = false
	}
	return append(dst, closing), true
}

// whole writes the value of placeholder v, typed: an input's JSON value, a
// field's value as its type says.
func (e *bodyEncoder) whole(dst []byte, v int) ([]byte, bool) {
	if iv := e.a.input(v); iv != nil {
		val, ok := e.in[iv.name]
		if !ok || val == nil {
			return dst, false
		}
		raw, err := marshalJSON(val)
		if err != nil {
			return dst, false // prepare has made it JSON already
		}
		return append(dst, raw...), true
	}
	s := e.vs[v]
	if s == "" {
		return dst, false
	}
	switch e.a.fieldType[v] {
	case "integer":
		if integerText.MatchString(s) {
			return append(dst, s...), true
		}
	case "boolean":
		if s == "true" || s == "false" {
			return append(dst, s...), true
		}
	}
	raw, _ := marshalJSON(s)
	return append(dst, raw...), true
}

var integerText = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)

// substitute expands a text template without escaping: the result is a JSON
// string, which the encoder escapes.
func (e *bodyEncoder) substitute(t *templates.Template) string {
	src := t.Source()
	var b strings.Builder
	last := 0
	for _, p := range t.Placeholders() {
		b.WriteString(src[last:p.Offset])
		b.WriteString(e.vs[p.Var])
		last = p.Offset + len("${") + len(p.Name) + len("}")
	}
	b.WriteString(src[last:])
	return b.String()
}

var numberText = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

// ParseInputs turns command-line name=value pairs into typed inputs, by
// each input's schema type: integer, number and boolean are parsed, object
// and array are read as JSON, string is kept as written (for a type that
// allows several, the first that reads wins, string last). A key may reach
// into an object input by its properties: project.name=Tower. Unknown names
// and unreadable values are listed in an *InputError; values are not checked
// against the schema here (Render does that).
func (a *Action) ParseInputs(kv map[string]string) (map[string]any, error) {
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	// Sorted, a whole object ("project") comes before its parts ("project.name").
	slices.Sort(keys)
	out := map[string]any{}
	givenWhole := map[string]bool{}
	var problems []string
	for _, key := range keys {
		if msg := a.parseInput(out, givenWhole, key, kv[key]); msg != "" {
			problems = append(problems, "input "+key+": "+msg)
		}
	}
	if len(problems) > 0 {
		return nil, &InputError{Problems: problems}
	}
	return out, nil
}

func (a *Action) parseInput(out map[string]any, givenWhole map[string]bool, key, value string) string {
	parts := strings.Split(key, ".")
	if !slices.ContainsFunc(a.inputs, func(iv inputVar) bool { return iv.name == parts[0] }) {
		return a.unknownInput(parts[0])
	}
	sch := propertySchema(a.schemaDoc, parts[0])
	target := out
	for i := 1; i < len(parts); i++ {
		parent := strings.Join(parts[:i], ".")
		if givenWhole[parent] {
			return fmt.Sprintf("%s is also given whole; give it either whole or by its parts", parent)
		}
		if t := schemaType(sch); t != "" && !strings.Contains(t, "object") {
			return fmt.Sprintf("%s is a %s, which has no parts; write %s=...", parent, t, parent)
		}
		next, _ := target[parts[i-1]].(map[string]any)
		if next == nil {
			next = map[string]any{}
			target[parts[i-1]] = next
		}
		target = next
		if props, ok := sch["properties"].(map[string]any); ok && props[parts[i]] == nil && sch["additionalProperties"] != true {
			names := make([]string, 0, len(props))
			for n := range props {
				names = append(names, n)
			}
			slices.Sort(names)
			msg := fmt.Sprintf("%s has no property %q", parent, parts[i])
			if s := suggest(parts[i], names); s != "" {
				msg += fmt.Sprintf("; did you mean %s.%s?", parent, s)
			}
			return msg + " (properties: " + strings.Join(names, ", ") + ")"
		}
		sch = propertySchema(sch, parts[i])
	}
	v, msg := parseValue(key, value, sch)
	if msg != "" {
		return msg
	}
	target[parts[len(parts)-1]] = v
	givenWhole[key] = true
	return ""
}

func propertySchema(s map[string]any, name string) map[string]any {
	props, _ := s["properties"].(map[string]any)
	ps, _ := props[name].(map[string]any)
	return ps
}

// parseValue reads one command-line value by its schema's type, or says
// what to write instead.
func parseValue(key, s string, sch map[string]any) (any, string) {
	types := strings.Split(schemaType(sch), "|")
	for _, t := range types {
		switch t {
		case "null":
			if s == "null" {
				return nil, ""
			}
		case "boolean":
			if s == "true" || s == "false" {
				return s == "true", ""
			}
		case "integer":
			if integerText.MatchString(s) {
				return json.Number(s), ""
			}
		case "number":
			if numberText.MatchString(s) {
				return json.Number(s), ""
			}
		case "object", "array":
			dec := json.NewDecoder(strings.NewReader(s))
			dec.UseNumber()
			var v any
			if dec.Decode(&v) == nil && !dec.More() {
				if _, isObj := v.(map[string]any); isObj == (t == "object") {
					if _, isArr := v.([]any); isArr == (t == "array") {
						return v, ""
					}
				}
			}
		case "string", "":
			return s, ""
		}
	}
	switch types[0] {
	case "boolean":
		return nil, fmt.Sprintf("%q is not true or false; write %s=true or %s=false", s, key, key)
	case "integer":
		return nil, fmt.Sprintf("%q is not a whole number; write it in digits, as in %s=42", s, key)
	case "number":
		return nil, fmt.Sprintf("%q is not a number; write it as in %s=7.5", s, key)
	case "object":
		return nil, fmt.Sprintf("%q is not a JSON object; write it as in %s='%s', or give its properties one by one as %s.NAME=VALUE", s, key, exampleObject(sch), key)
	case "array":
		return nil, fmt.Sprintf("%q is not a JSON array; write it as in %s='[\"a\",\"b\"]'", s, key)
	case "null":
		return nil, fmt.Sprintf("%q is not null; write %s=null", s, key)
	}
	return nil, fmt.Sprintf("%q cannot be read as %s", s, strings.Join(types, " or "))
}

// exampleObject shows an object input's required properties as JSON.
func exampleObject(sch map[string]any) string {
	var names []string
	if req, ok := sch["required"].([]any); ok {
		for _, r := range req {
			if n, ok := r.(string); ok {
				names = append(names, n)
			}
		}
	}
	if len(names) == 0 {
		return `{"name":"value"}`
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:", n)
		switch schemaType(propertySchema(sch, n)) {
		case "integer", "number":
			b.WriteString("1")
		case "boolean":
			b.WriteString("true")
		default:
			b.WriteString(`"..."`)
		}
	}
	b.WriteByte('}')
	return b.String()
}
