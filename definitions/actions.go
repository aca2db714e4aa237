package definitions

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v5"
	"gopkg.in/yaml.v3"

	"github.com/connector-engine/connector/templates"
)

// Action is a named API call a definition declares: a method, a path
// template relative to the environment's base URL, query parameters and a
// JSON body built from inputs, the inputs' JSON Schema, and how the answer
// pages. It is immutable and safe for concurrent use.
type Action struct {
	Name        string
	Title       string
	Description string
	Method      string      // GET, POST, PUT, PATCH or DELETE
	Pagination  *Pagination // nil: one request whose body is the answer
	Inputs      []Input     // from input.properties, required first, then by name
	Schema      []byte      // the input JSON Schema as JSON (keys in file order); nil when the action takes no input

	def       string          // the definition's name, for messages
	vars      *templates.Vars // the definition's placeholders, then one per input
	nDef      int             // how many of vars are the definition's
	fieldType map[int]string  // type of each field placeholder, to type whole-field body leaves
	inputs    []inputVar      // the inputs, at vars index nDef+i
	path      *templates.Template
	pathVars  []int // the path's placeholders, which must have values
	query     []queryParam
	body      *bodyNode
	schema    *jsonschema.Schema
	schemaDoc map[string]any // the input schema as plain values: defaults and nested types
	display   string         // path and query as written, for PathTemplate
}

// Input is one input of an action: a property of its input schema.
type Input struct {
	Name        string
	Type        string // the schema's type (string, integer, number, boolean, object, array); alternatives joined by "|"; "" when it names none
	Description string
	Required    bool
	Default     any   // the schema's default, nil when none
	Enum        []any // the allowed values, nil when any
}

// ActionRequest is a rendered action, ready for the transport.
type ActionRequest struct {
	Method string
	Path   string // an escaped relative reference: the path, plus "?" and the query when there is one (request.query of the definition is not included)
	Body   []byte // JSON; nil when the action sends no body
}

type inputVar struct {
	name     string
	required bool
	defaults bool // the schema gives a default
}

// queryParam is one of an action's query parameters.
type queryParam struct {
	value *templates.Template // compiled as the URL "?name=value", so values are escaped as query values
	whole int                 // the placeholder's var when the value is exactly one placeholder, else -1
}

type bodyKind uint8

const (
	bodyRaw    bodyKind = iota // JSON without placeholders
	bodyText                   // a string with placeholders in it
	bodyWhole                  // a string that is exactly one placeholder: the value, typed
	bodyObject                 // keys and elems
	bodyArray                  // elems
)

// bodyNode is an action's body tree, kept in file order.
type bodyNode struct {
	kind  bodyKind
	raw   []byte
	text  *templates.Template
	v     int // bodyWhole: the placeholder's var
	keys  []string
	elems []*bodyNode
}

// Action returns the action named name.
func (d *Definition) Action(name string) (*Action, error) {
	i, found := slices.BinarySearchFunc(d.Actions, name, func(a *Action, n string) int { return strings.Compare(a.Name, n) })
	if found {
		return d.Actions[i], nil
	}
	if len(d.Actions) == 0 {
		return nil, fmt.Errorf("definition %s declares no actions; call its API with a raw request instead", d.Name)
	}
	names := make([]string, len(d.Actions))
	for i, a := range d.Actions {
		names[i] = a.Name
	}
	msg := fmt.Sprintf("definition %s has no action %q", d.Name, name)
	if s := suggest(name, names); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	return nil, fmt.Errorf("%s (actions: %s)", msg, strings.Join(names, ", "))
}

// PathTemplate returns the path and query as the definition writes them,
// placeholders included, for showing the action to a person.
func (a *Action) PathTemplate() string { return a.display }

type rawAction struct {
	Title       string    `yaml:"title"`
	Description string    `yaml:"description"`
	Method      string    `yaml:"method"`
	Path        string    `yaml:"path"`
	Query       yaml.Node `yaml:"query"`
	Body        yaml.Node `yaml:"body"`
	Input       yaml.Node `yaml:"input"`
	Pagination  yaml.Node `yaml:"pagination"`
}

// buildActions compiles the actions mapping.
func (b *builder) buildActions() {
	n := resolve(b.given("/actions"))
	if n == nil || n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		if v == nil || v.Kind != yaml.MappingNode {
			continue // the schema reported it
		}
		if a := b.buildAction(k.Value, v); a != nil {
			b.def.Actions = append(b.def.Actions, a)
		}
	}
	slices.SortFunc(b.def.Actions, func(x, y *Action) int { return strings.Compare(x.Name, y.Name) })
}

func (b *builder) buildAction(name string, n *yaml.Node) *Action {
	d := b.def
	ptr := "/actions/" + escapePointer(name)
	var ra rawAction
	_ = n.Decode(&ra) // type errors come from the schema
	a := &Action{Name: name, Title: ra.Title, Description: ra.Description, Method: ra.Method, def: d.Name, nDef: d.vars.Len()}
	if a.Method == "" {
		a.Method = "GET"
	}
	a.vars = templates.NewVars()
	for i := range d.vars.Len() {
		_, _ = a.vars.Add(d.vars.Name(i), d.vars.Flags(i)) // the same names again: cannot fail
	}
	a.fieldType = map[int]string{}
	for _, f := range d.Fields {
		a.fieldType[f.Var] = f.Type
	}
	ok := b.buildInputs(a, ptr+"/input", &ra.Input)

	var used []*templates.Template
	if ra.Path != "" {
		a.path = b.compileWith(ptr+"/path", ra.Path, templates.URL, scopeActionPath, a.vars)
		if a.path == nil {
			ok = false
		} else {
			used = append(used, a.path)
			report := b.offsetReporter(ptr + "/path")
			for _, p := range a.path.Placeholders() {
				a.pathVars = append(a.pathVars, p.Var)
				if iv := a.input(p.Var); iv != nil && !iv.required && !iv.defaults {
					report(SeverityError, p.Offset, fmt.Sprintf("${%s} is in the path, but input %s is optional and a path cannot leave it out; list it under input.required, give it a default, or move it to query", p.Name, iv.name))
					ok = false
				}
			}
		}
	} else {
		ok = false // the schema reported the missing path
	}
	a.display = ra.Path

	if qn := resolve(&ra.Query); qn != nil && qn.Kind == yaml.MappingNode {
		var shown []string
		for i := 0; i+1 < len(qn.Content); i += 2 {
			k, v := qn.Content[i], resolve(qn.Content[i+1])
			if v == nil || v.Kind != yaml.ScalarNode || k.Value == "" {
				continue // the schema reported it
			}
			qp, t := b.buildQueryParam(ptr+"/query/"+escapePointer(k.Value), k.Value, v.Value, a.vars)
			if qp == nil {
				ok = false
				continue
			}
			used = append(used, t)
			a.query = append(a.query, *qp)
			shown = append(shown, k.Value+"="+v.Value)
		}
		if len(shown) > 0 {
			sep := "?"
			if strings.Contains(a.display, "?") {
				sep = "&"
			}
			a.display += sep + strings.Join(shown, "&")
		}
	}

	if bn := resolve(&ra.Body); bn != nil && bn.Kind != 0 && !isNull(bn) {
		budget := maxExpandedNodes
		body, ts, bodyOK := b.buildBody(ptr+"/body", bn, a.vars, &budget, 0)
		ok = ok && bodyOK
		a.body = body
		used = append(used, ts...)
		if a.Method == "GET" {
			b.errorf(ptr+"/body", "a GET request carries no body; send GET parameters in query, or use another method")
			ok = false
		}
	}

	if pn := resolve(&ra.Pagination); pn != nil && pn.Kind != 0 && !isNull(pn) {
		switch {
		case pn.Kind == yaml.MappingNode:
			a.Pagination = b.buildPagination(ptr+"/pagination", pn, d.Pagination, true)
			ok = ok && a.Pagination != nil
		case pn.Value == "default" && d.Pagination != nil:
			p := *d.Pagination
			a.Pagination = &p
		case pn.Value == "default" && b.given("/request/pagination") == nil:
			b.errorf(ptr+"/pagination", "pagination: default means request.pagination, which this definition does not declare; declare it, or give the style here")
			ok = false
		case pn.Value == "default":
			ok = false // request.pagination is invalid, and reported
		}
	}

	// An input no template names is dropped silently at every call.
	isUsed := make([]bool, len(a.inputs))
	for _, t := range used {
		for _, p := range t.Placeholders() {
			if p.Var >= a.nDef {
				isUsed[p.Var-a.nDef] = true
			}
		}
	}
	for i, iv := range a.inputs {
		if !isUsed[i] {
			b.warnf(warnUnusedInput, ptr+"/input/properties/"+escapePointer(iv.name), "input %s is used neither in the path, the query nor the body; use it as ${%s} or remove it", iv.name, iv.name)
		}
	}
	// A URL ends up in proxy and server logs.
	urls := []*templates.Template{a.path}
	for _, q := range a.query {
		urls = append(urls, q.value)
	}
	for _, t := range urls {
		if t == nil {
			continue
		}
		for _, p := range t.Placeholders() {
			if p.Var >= NumBuiltinVars && p.Var < a.nDef && a.vars.Flags(p.Var)&templates.Secret != 0 {
				where := "/path"
				if t != a.path {
					where = "/query"
				}
				b.warnf(warnSecretInURL, ptr+where, "${%s} is a secret field and travels in the URL, which ends up in logs; send it in a header (request.headers) or the body", p.Name)
			}
		}
	}
	if !ok {
		return nil
	}
	return a
}

// input returns the input at var index v, or nil when v is not an input.
func (a *Action) input(v int) *inputVar {
	if v < a.nDef || v-a.nDef >= len(a.inputs) {
		return nil
	}
	return &a.inputs[v-a.nDef]
}

// buildInputs reads the input schema: compiles it, and declares a
// placeholder per property.
func (b *builder) buildInputs(a *Action, ptr string, node *yaml.Node) bool {
	in := resolve(node)
	if in == nil || in.Kind == 0 || isNull(in) {
		return true
	}
	if in.Kind != yaml.MappingNode {
		return false // the schema reported it
	}
	ok := b.compileInputs(a, ptr, in)

	required := map[string]bool{}
	_, props := mapGet(in, "properties")
	props = resolve(props)
	if _, rn := mapGet(in, "required"); resolve(rn) != nil && resolve(rn).Kind == yaml.SequenceNode {
		for i, r := range resolve(rn).Content {
			if r.Kind != yaml.ScalarNode || r.ShortTag() != "!!str" {
				continue // the schema reported it
			}
			required[r.Value] = true
			if k, _ := mapGet(props, r.Value); k == nil {
				b.errorf(fmt.Sprintf("%s/required/%d", ptr, i), "%q is required but is not among input.properties; declare it there or remove it from required", r.Value)
				ok = false
			}
		}
	}
	if props == nil || props.Kind != yaml.MappingNode {
		return ok
	}
	propDocs, _ := a.schemaDoc["properties"].(map[string]any)
	for i := 0; i+1 < len(props.Content); i += 2 {
		k := props.Content[i]
		name := k.Value
		if _, err := a.vars.Add(name, 0); err != nil {
			j, found := a.vars.Lookup(name)
			msg := ""
			switch {
			case !found:
				continue // not an identifier: the schema's pattern reported it
			case j < NumBuiltinVars:
				msg = fmt.Sprintf("the input name %q is taken by the builtin placeholder ${%s} (%s); choose another name", name, a.vars.Name(j), builtinVars[j].what)
			case j < a.nDef:
				msg = fmt.Sprintf("the input name %q is taken by the field %s; placeholders match case-insensitively, so rename the input", name, a.vars.Name(j))
			default:
				msg = fmt.Sprintf("input %q differs from input %q only in letter case; placeholders match case-insensitively, so rename one", name, a.vars.Name(j))
			}
			b.reportAt(SeverityError, k, pointerField(ptr+"/properties/"+escapePointer(name)), msg)
			ok = false
			continue
		}
		ps, _ := propDocs[name].(map[string]any)
		_, hasDefault := ps["default"]
		a.inputs = append(a.inputs, inputVar{name: name, required: required[name], defaults: hasDefault})
		desc, _ := ps["description"].(string)
		enum, _ := ps["enum"].([]any)
		a.Inputs = append(a.Inputs, Input{Name: name, Type: schemaType(ps), Description: desc, Required: required[name], Default: ps["default"], Enum: enum})
	}
	slices.SortStableFunc(a.Inputs, func(x, y Input) int {
		if x.Required != y.Required {
			if x.Required {
				return -1
			}
			return 1
		}
		return strings.Compare(x.Name, y.Name)
	})
	return ok
}

// compileInputs checks the size of an action's input schema, then keeps it
// as plain values and as JSON, and compiles it. The inputs it names are
// declared whatever it finds, so that one error does not bring others about
// every placeholder that uses them.
func (b *builder) compileInputs(a *Action, ptr string, in *yaml.Node) bool {
	if at, msg := inputSchemaTooBig(in); at != nil {
		b.reportAt(SeverityError, at, pointerField(ptr), msg)
		return false
	}
	budget := maxExpandedNodes
	doc, err := toValue(in, &budget)
	if err != nil {
		b.errorf(ptr, "%v", err)
		return false
	}
	a.schemaDoc, _ = doc.(map[string]any)
	budget = maxExpandedNodes
	js, err := appendJSON(nil, in, &budget)
	if err != nil {
		b.errorf(ptr, "%v", err)
		return false
	}
	a.Schema = js
	if sch, cached := b.inputSchemas[string(js)]; cached {
		a.schema = sch
		return true
	}
	if a.schema, err = compileInputSchema(a.def, a.Name, js); err != nil {
		b.inputSchemaError(ptr, err)
		return false
	}
	if b.inputSchemas != nil {
		b.inputSchemas[string(js)] = a.schema
	}
	return true
}

// schemaType returns a schema's type keyword as one string.
func schemaType(s map[string]any) string {
	switch t := s["type"].(type) {
	case string:
		return t
	case []any:
		var parts []string
		for _, x := range t {
			if s, ok := x.(string); ok {
				parts = append(parts, s)
			}
		}
		return strings.Join(parts, "|")
	}
	return ""
}

// Bounds on an action's input schema, checked before it is compiled: the
// validator's compile time grows steeply with nesting (2,000 levels of items,
// 18 KB of YAML, took seconds; 10,000 took minutes and most of a GiB). The
// built-in schemas nest under 10 levels and hold a few hundred nodes.
const (
	maxInputSchemaDepth = 64
	maxInputSchemaNodes = 20_000
)

// inputSchemaTooBig returns the first node past the depth or node bound of
// an input schema (aliases count as what they expand to), and why; nil when
// the schema is within both.
func inputSchemaTooBig(in *yaml.Node) (*yaml.Node, string) {
	nodes := 0
	var walk func(n *yaml.Node, depth int) (*yaml.Node, string)
	walk = func(n *yaml.Node, depth int) (*yaml.Node, string) {
		at := n
		n = resolve(n)
		if nodes++; nodes > maxInputSchemaNodes {
			return at, fmt.Sprintf("the input schema has more than %d nodes (aliases counted as they expand), the limit for an input schema; split the action, or share repeated parts under $defs with $ref", maxInputSchemaNodes)
		}
		if depth > maxInputSchemaDepth {
			return at, fmt.Sprintf("the input schema nests more than %d levels deep here, the limit for an input schema; flatten it, or name the repeated part under $defs and $ref it", maxInputSchemaDepth)
		}
		for _, c := range n.Content {
			if bad, msg := walk(c, depth+1); bad != nil {
				return bad, msg
			}
		}
		return nil, ""
	}
	return walk(in, 0)
}

// compileInputSchema compiles an action's input schema. Formats (date,
// email, uri, ...) are asserted, and nothing is loaded from outside the
// definition: a $ref must point into the schema itself.
func compileInputSchema(def, action string, doc []byte) (*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.Draft = jsonschema.Draft2020
	c.AssertFormat = true
	c.LoadURL = func(s string) (io.ReadCloser, error) {
		return nil, fmt.Errorf("%s is outside the definition; an input schema must be self-contained (put shared parts under $defs)", s)
	}
	url := "https://connector-engine.dev/definitions/" + def + "/actions/" + action + "/input.json"
	if err := c.AddResource(url, bytes.NewReader(doc)); err != nil {
		return nil, err
	}
	return c.Compile(url)
}

// inputTopLevel matches the parts of an input schema that the definition
// schema checks itself.
var inputTopLevel = regexp.MustCompile(`^/(type|properties|required(/[0-9]+)?)$`)

// inputSchemaError reports why an input schema does not compile, at the
// part of it concerned when the validator says which.
func (b *builder) inputSchemaError(ptr string, err error) {
	var se *jsonschema.SchemaError
	if errors.As(err, &se) {
		var ve *jsonschema.ValidationError
		if errors.As(se.Err, &ve) {
			ls := leaves(ve)
			// Where the meta-schema allows alternatives ("type" is a name or a
			// list of names), the failed "list" alternative only adds noise.
			at := map[string]int{}
			for _, leaf := range ls {
				at[leaf.InstanceLocation]++
			}
			for _, leaf := range ls {
				if at[leaf.InstanceLocation] > 1 && strings.HasSuffix(leaf.KeywordLocation, "/type") {
					continue
				}
				if inputTopLevel.MatchString(leaf.InstanceLocation) {
					continue // the definition schema checks these, and has said so
				}
				kw := leaf.KeywordLocation[strings.LastIndex(leaf.KeywordLocation, "/")+1:]
				b.errorf(ptr+leaf.InstanceLocation, "not a valid JSON Schema: %s", friendly(kw, leaf.Message))
			}
			return
		}
		err = se.Err
	}
	msg := strings.TrimPrefix(err.Error(), "jsonschema: ")
	if i := strings.Index(msg, "compilation failed: "); i >= 0 {
		msg = msg[i+len("compilation failed: "):]
	}
	b.errorf(ptr, "not a valid JSON Schema: %s", msg)
}

// buildQueryParam compiles one query parameter. The value is checked as
// text (so findings point into it) and then compiled as the URL
// "?name=value", whose placeholders the templates package escapes as query
// values; the literal parts are escaped here.
func (b *builder) buildQueryParam(ptr, name, src string, vars *templates.Vars) (*queryParam, *templates.Template) {
	t := b.compileWith(ptr, src, templates.Text, scopeActions, vars)
	if t == nil {
		return nil, nil
	}
	ph := t.Placeholders()
	var u strings.Builder
	u.WriteString("?")
	u.Write(appendQueryEscaped(nil, name))
	u.WriteString("=")
	last := 0
	for _, p := range ph {
		u.Write(appendQueryEscaped(nil, src[last:p.Offset]))
		last = p.Offset + len("${") + len(p.Name) + len("}")
		u.WriteString(src[p.Offset:last])
	}
	u.Write(appendQueryEscaped(nil, src[last:]))
	ut, err := templates.Compile(u.String(), templates.URL, vars)
	if err != nil {
		b.errorf(ptr, "cannot be used as a query parameter: %v", err)
		return nil, nil
	}
	qp := &queryParam{value: ut, whole: wholePlaceholder(src, ph)}
	return qp, t
}

// wholePlaceholder returns the var of a template that is exactly one
// placeholder, or -1.
func wholePlaceholder(src string, ph []templates.Placeholder) int {
	if len(ph) == 1 && ph[0].Offset == 0 && len(src) == len("${")+len(ph[0].Name)+len("}") {
		return ph[0].Var
	}
	return -1
}

// appendQueryEscaped percent-encodes every byte but RFC 3986's unreserved
// ones, as the templates package does for values.
func appendQueryEscaped(dst []byte, s string) []byte {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			dst = append(dst, c)
		} else {
			dst = append(dst, '%', hex[c>>4], hex[c&15])
		}
	}
	return dst
}

// maxBodyDepth bounds how deep a body nests, as a JSON body sensibly does
// (and so the length of the paths findings name).
const maxBodyDepth = 64

// buildBody compiles a body tree: string leaves are templates. It returns
// the templates it compiled, to tell which inputs are used.
func (b *builder) buildBody(ptr string, n *yaml.Node, vars *templates.Vars, budget *int, depth int) (*bodyNode, []*templates.Template, bool) {
	*budget--
	if *budget < 0 || depth > maxBodyDepth {
		if *budget >= -1 { // say it once
			*budget = -2
			b.errorf(ptr[:min(len(ptr), 200)], "the body nests more than %d levels deep or expands to too many nodes (aliases); simplify it", maxBodyDepth)
		}
		return nil, nil, false
	}
	n = resolve(n)
	var ts []*templates.Template
	ok := true
	switch n.Kind {
	case yaml.MappingNode, yaml.SequenceNode:
		bn := &bodyNode{kind: bodyArray}
		step := 1
		if n.Kind == yaml.MappingNode {
			bn.kind, step = bodyObject, 2
		}
		for i := 0; i+step-1 < len(n.Content); i += step {
			elemPtr := ptr + "/" + strconv.Itoa(i)
			v := n.Content[i]
			if step == 2 {
				elemPtr = ptr + "/" + escapePointer(n.Content[i].Value)
				bn.keys = append(bn.keys, n.Content[i].Value)
				v = n.Content[i+1]
			}
			e, ets, eok := b.buildBody(elemPtr, v, vars, budget, depth+1)
			ok = ok && eok
			ts = append(ts, ets...)
			bn.elems = append(bn.elems, e)
		}
		return bn, ts, ok
	case yaml.ScalarNode:
		if n.ShortTag() == "!!str" && strings.Contains(n.Value, "${") {
			t := b.compileWith(ptr, n.Value, templates.Text, scopeActions, vars)
			if t == nil {
				return nil, nil, false
			}
			if v := wholePlaceholder(n.Value, t.Placeholders()); v >= 0 {
				return &bodyNode{kind: bodyWhole, v: v}, []*templates.Template{t}, true
			}
			return &bodyNode{kind: bodyText, text: t}, []*templates.Template{t}, true
		}
		one := 1
		v, _ := toValue(n, &one)
		raw, err := marshalJSON(v)
		if err != nil {
			b.errorf(ptr, "cannot be written as JSON: %v", err)
			return nil, nil, false
		}
		return &bodyNode{kind: bodyRaw, raw: raw}, nil, true
	}
	return nil, nil, false
}

// appendJSON writes a YAML tree as JSON, keeping mapping keys in file order.
func appendJSON(dst []byte, n *yaml.Node, budget *int) ([]byte, error) {
	*budget--
	if *budget < 0 {
		return nil, errors.New("the input schema expands to too many nodes (aliases nested too deeply); simplify it")
	}
	n = resolve(n)
	switch n.Kind {
	case yaml.MappingNode:
		dst = append(dst, '{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			if i > 0 {
				dst = append(dst, ',')
			}
			k, _ := marshalJSON(n.Content[i].Value)
			dst = append(append(dst, k...), ':')
			var err error
			if dst, err = appendJSON(dst, n.Content[i+1], budget); err != nil {
				return nil, err
			}
		}
		return append(dst, '}'), nil
	case yaml.SequenceNode:
		dst = append(dst, '[')
		for i, c := range n.Content {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = appendJSON(dst, c, budget); err != nil {
				return nil, err
			}
		}
		return append(dst, ']'), nil
	}
	one := 1
	v, _ := toValue(n, &one)
	raw, err := marshalJSON(v)
	if err != nil {
		return nil, fmt.Errorf("line %d: %q cannot be written as JSON", n.Line, n.Value)
	}
	return append(dst, raw...), nil
}
