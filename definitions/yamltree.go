package definitions

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// A file's YAML is kept as a node tree rather than decoded straight into Go
// structs: every finding must point at a line and column, and the tree is what
// carries them (through extends merges and schema validation alike).

// maxExpandedNodes bounds alias expansion, so a "billion laughs" file fails
// with an error instead of exhausting memory.
const maxExpandedNodes = 100_000

var yamlLineErr = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseYAML reads exactly one YAML document whose root is a mapping.
func parseYAML(path string, data []byte) (*yaml.Node, *Diagnostic) {
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Diagnostic{Severity: SeverityError, File: path, Message: "the file is empty; a definition needs at least name, title and auth"}
		}
		return nil, syntaxDiagnostic(path, data, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &Diagnostic{Severity: SeverityError, File: path, Line: extra.Line, Column: extra.Column,
			Message: "a second YAML document starts here; put one definition per file"}
	} else if !errors.Is(err, io.EOF) {
		return nil, syntaxDiagnostic(path, data, err)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return nil, &Diagnostic{Severity: SeverityError, File: path, Line: root.Line, Column: root.Column,
			Message: fmt.Sprintf("a definition is a YAML mapping of keys to values, but this file holds %s", kindName(root))}
	}
	return root, nil
}

func syntaxDiagnostic(path string, data []byte, err error) *Diagnostic {
	msg := err.Error()
	d := &Diagnostic{Severity: SeverityError, File: path}
	if m := yamlLineErr.FindStringSubmatch(msg); m != nil {
		d.Line, _ = strconv.Atoi(m[1])
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	lines := strings.Split(string(data), "\n")
	if msg == "did not find expected key" && d.Line > 0 {
		// yaml.v3 names the line where the mapping began (the parent
		// key), not the line that broke it: find the first line whose
		// prefix of the file no longer parses.
		if bad := firstFailingLine(lines, d.Line, msg); bad > 0 {
			d.Line = bad
			msg = "did not find expected key: this line is indented differently from the keys above it; the keys of one mapping start in the same column"
		}
	}
	if msg == "mapping values are not allowed in this context" {
		msg += ": a key: value where a plain value was expected; check this line's indentation, or quote a value that holds \": \""
	}
	if d.Line > 0 && d.Line <= len(lines) {
		line := lines[d.Line-1]
		d.Column = len(line) - len(strings.TrimLeft(line, " \t")) + 1 // where the line's content starts (blanks are one byte each)
		if i := strings.IndexByte(line, '\t'); i >= 0 && strings.Contains(msg, "tab character") {
			d.Column = utf8.RuneCountInString(line[:i]) + 1
		}
	}
	d.Message = "YAML syntax: " + msg
	return d
}

// maxBisectLines bounds the search of firstFailingLine (it parses a prefix
// per line).
const maxBisectLines = 2000

// firstFailingLine returns the first line n after from such that lines[:n]
// fails to parse with the error want, or 0.
func firstFailingLine(lines []string, from int, want string) int {
	if len(lines) > maxBisectLines {
		return 0
	}
	for n := from + 1; n <= len(lines); n++ {
		var doc yaml.Node
		err := yaml.Unmarshal([]byte(strings.Join(lines[:n], "\n")), &doc)
		if err == nil {
			continue
		}
		if strings.HasSuffix(err.Error(), want) {
			return n
		}
		return 0 // failing for another reason (a construct cut in the middle): keep yaml's line
	}
	return 0
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing (null)"
		}
		return "a single value"
	case yaml.AliasNode:
		return "an alias"
	}
	return "an empty document"
}

// resolve follows aliases to the node they stand for.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// mapGet returns the key and value nodes of key in mapping m, or nils.
func mapGet(m *yaml.Node, key string) (k, v *yaml.Node) {
	m = resolve(m)
	if m == nil || m.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i], m.Content[i+1]
		}
	}
	return nil, nil
}

// duplicateKeys reports keys given twice in one mapping: yaml.v3 accepts them
// when decoding into a Node, and the later one would silently win.
func duplicateKeys(path string, n *yaml.Node, ds *diags) {
	var field []string // the steps to n, joined only for a finding: joining at every level is quadratic in depth
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		switch n.Kind {
		case yaml.MappingNode:
			first := map[string]*yaml.Node{}
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				step := k.Value
				if len(field) > 0 {
					step = "." + step
				}
				field = append(field, step)
				if prev, ok := first[k.Value]; ok {
					ds.add(Diagnostic{Severity: SeverityError, File: path, Line: k.Line, Column: k.Column, Field: strings.Join(field, ""),
						Message: fmt.Sprintf("duplicate key %q (first given at line %d); remove one of them", k.Value, prev.Line)})
				} else {
					first[k.Value] = k
				}
				walk(v)
				field = field[:len(field)-1]
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				field = append(field, fmt.Sprintf("[%d]", i))
				walk(c)
				field = field[:len(field)-1]
			}
		}
	}
	walk(n)
}

func joinField(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// toValue converts a node tree into the plain values (map[string]any, []any,
// string, int64, float64, bool, nil) that the JSON Schema validator takes.
func toValue(n *yaml.Node, budget *int) (any, error) {
	*budget--
	if *budget < 0 {
		return nil, errors.New("the file expands to too many nodes (aliases nested too deeply); simplify it")
	}
	n = resolve(n)
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			v, err := toValue(n.Content[i+1], budget)
			if err != nil {
				return nil, err
			}
			m[n.Content[i].Value] = v
		}
		return m, nil
	case yaml.SequenceNode:
		s := make([]any, len(n.Content))
		for i, c := range n.Content {
			v, err := toValue(c, budget)
			if err != nil {
				return nil, err
			}
			s[i] = v
		}
		return s, nil
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return nil, nil
		case "!!bool":
			var b bool
			if n.Decode(&b) == nil {
				return b, nil
			}
		case "!!int":
			var i int64
			if n.Decode(&i) == nil {
				return i, nil
			}
		case "!!float":
			var f float64
			if n.Decode(&f) == nil {
				return f, nil
			}
		}
		return n.Value, nil
	}
	return nil, nil
}

// nodeAt walks a JSON pointer (as the schema validator reports instance
// locations) down the tree. It returns the value node and, when the last step
// was a mapping key, that key's node.
func nodeAt(root *yaml.Node, pointer string) (key, val *yaml.Node) {
	val = root
	if pointer == "" || pointer == "/" {
		return nil, root
	}
	for _, tok := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
		tok = unescapeToken(tok)
		val = resolve(val)
		switch {
		case val == nil:
			return key, nil
		case val.Kind == yaml.MappingNode:
			k, v := mapGet(val, tok)
			if v == nil {
				return key, val
			}
			key, val = k, v
		case val.Kind == yaml.SequenceNode:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(val.Content) {
				return key, val
			}
			key, val = nil, val.Content[i]
		default:
			return key, val
		}
	}
	return key, val
}

// unescapeToken decodes one JSON pointer token. The validator also
// percent-encodes tokens (a key "Bad Header" arrives as Bad%20Header).
func unescapeToken(tok string) string {
	if u, err := url.PathUnescape(tok); err == nil {
		tok = u
	}
	return strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
}

// pointerField turns a JSON pointer into the dotted field path used in
// messages: /auth/oauth/scopes/0 -> auth.oauth.scopes[0].
func pointerField(pointer string) string {
	if pointer == "" || pointer == "/" {
		return ""
	}
	var b strings.Builder
	for _, tok := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
		tok = unescapeToken(tok)
		if _, err := strconv.Atoi(tok); err == nil {
			fmt.Fprintf(&b, "[%s]", tok)
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(tok)
	}
	return b.String()
}

// merge overlays child on parent: mappings merge key by key (child wins),
// anything else is replaced. Nodes are shared, not copied, so positions (and
// the file each node came from) survive; only merged mappings are new.
func merge(parent, child *yaml.Node, origin map[*yaml.Node]string) *yaml.Node {
	parent, child = resolve(parent), resolve(child)
	if parent == nil || parent.Kind != yaml.MappingNode || child.Kind != yaml.MappingNode {
		return child
	}
	out := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: child.Line, Column: child.Column}
	origin[out] = origin[child]
	for i := 0; i+1 < len(parent.Content); i += 2 {
		k, v := parent.Content[i], parent.Content[i+1]
		if _, cv := mapGet(child, k.Value); cv != nil {
			continue // placed below, in the child's order
		}
		out.Content = append(out.Content, k, v)
	}
	for i := 0; i+1 < len(child.Content); i += 2 {
		k, v := child.Content[i], child.Content[i+1]
		if isNull(v) {
			continue // null removes what the parent gave (as in RFC 7396)
		}
		if _, pv := mapGet(parent, k.Value); pv != nil {
			v = merge(pv, v, origin)
		}
		out.Content = append(out.Content, k, v)
	}
	return out
}

func isNull(n *yaml.Node) bool {
	n = resolve(n)
	return n != nil && n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// withoutNulls returns a copy of the tree without null-valued keys: in a file
// that extends another they mean "remove", and are not values to validate.
func withoutNulls(n *yaml.Node, origin map[*yaml.Node]string) *yaml.Node {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		return n
	}
	out := *n
	out.Content = nil
	for i := 0; i+1 < len(n.Content); i += 2 {
		if !isNull(n.Content[i+1]) {
			out.Content = append(out.Content, n.Content[i], withoutNulls(n.Content[i+1], origin))
		}
	}
	origin[&out] = origin[n]
	return &out
}

// recordOrigin remembers which file every node of a tree came from.
func recordOrigin(n *yaml.Node, path string, origin map[*yaml.Node]string) {
	if n == nil || origin[n] != "" {
		return
	}
	origin[n] = path
	for _, c := range n.Content {
		recordOrigin(c, path, origin)
	}
}

// scalarColumn gives the column of byte offset off inside a scalar's value,
// so that a finding inside a URI template points at the placeholder itself.
// Only single-line plain and quoted scalars can be mapped exactly; for block
// scalars and escaped strings the scalar's own column is the honest answer.
func scalarColumn(n *yaml.Node, off int) (line, col int) {
	if off < 0 || strings.ContainsAny(n.Value, "\n") {
		return n.Line, n.Column
	}
	switch n.Style {
	case 0, yaml.TaggedStyle:
		return n.Line, n.Column + utf8.RuneCountInString(n.Value[:off])
	case yaml.SingleQuotedStyle:
		if !strings.Contains(n.Value[:off], "'") {
			return n.Line, n.Column + 1 + utf8.RuneCountInString(n.Value[:off])
		}
	case yaml.DoubleQuotedStyle:
		if !strings.ContainsAny(n.Value[:off], "\\\"") && isPrintableASCII(n.Value[:off]) {
			return n.Line, n.Column + 1 + off
		}
	}
	return n.Line, n.Column
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
