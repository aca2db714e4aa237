package definitions

import "strings"

// DocFile is where the definition format is documented, relative to the
// module root. Every key of the schema has an anchor there (DocAnchor).
const DocFile = "definitions/README.md"

// DocAnchor returns the anchor in DocFile of the key the finding is about:
// the field's dotted path with the names an author chooses (environments,
// fields, actions, headers) left out, so "environments.sandbox.base_url" is
// "environments.base_url" and "actions.list_rfis.pagination.cursor_path" is
// "actions.pagination.cursor_path". A field below a documented key (inside
// an action's input schema, say) gets that key's anchor. A finding about
// the whole file gets "validation-findings".
func (d Diagnostic) DocAnchor() string {
	return docAnchor(d.Field)
}

// DocLink returns DocFile#DocAnchor, a link from the finding to its section.
func (d Diagnostic) DocLink() string {
	return DocFile + "#" + d.DocAnchor()
}

func docAnchor(field string) string {
	if field == "" {
		return "validation-findings"
	}
	var path []string
	node := rawSchema()
	for _, seg := range strings.Split(field, ".") {
		next, named, ok := schemaChild(node, seg)
		if !ok {
			break
		}
		if named {
			path = append(path, seg)
		}
		node = next
	}
	if len(path) == 0 {
		return "validation-findings"
	}
	return strings.Join(path, ".")
}

// schemaChild finds what the schema node says about the member seg of an
// object: a declared property (named is true: seg is a key of the format)
// or the schema of every other member (named is false: seg is a name the
// author chose). It looks through $ref, allOf and if/then/else.
func schemaChild(node map[string]any, seg string) (child map[string]any, named, ok bool) {
	node = resolveRef(node)
	if props, _ := node["properties"].(map[string]any); props != nil {
		if c, _ := props[seg].(map[string]any); c != nil {
			return c, true, true
		}
	}
	for _, key := range []string{"allOf", "anyOf", "oneOf"} {
		list, _ := node[key].([]any)
		for _, s := range list {
			if m, _ := s.(map[string]any); m != nil {
				if c, n, ok := schemaChild(m, seg); ok {
					return c, n, true
				}
			}
		}
	}
	for _, key := range []string{"then", "else"} {
		if m, _ := node[key].(map[string]any); m != nil {
			if c, n, ok := schemaChild(m, seg); ok {
				return c, n, true
			}
		}
	}
	if m, _ := node["additionalProperties"].(map[string]any); m != nil {
		return m, false, true
	}
	return nil, false, false
}

func resolveRef(node map[string]any) map[string]any {
	for range 8 { // $refs chain at most a few deep; never loop
		ref, _ := node["$ref"].(string)
		name, ok := strings.CutPrefix(ref, "#/$defs/")
		if !ok {
			return node
		}
		defs, _ := rawSchema()["$defs"].(map[string]any)
		next, _ := defs[name].(map[string]any)
		if next == nil {
			return node
		}
		node = next
	}
	return node
}

// SchemaKeys lists every key the definition schema declares, as the dotted
// paths DocAnchor returns (names an author chooses left out), in a stable
// order. The documentation tests check each has its entry in DocFile.
func SchemaKeys() []string {
	var keys []string
	seen := map[string]bool{}
	var walk func(node map[string]any, prefix string, depth int)
	walk = func(node map[string]any, prefix string, depth int) {
		if depth > 12 {
			return
		}
		node = resolveRef(node)
		if props, _ := node["properties"].(map[string]any); props != nil {
			for _, k := range sortedKeys(props) {
				p := k
				if prefix != "" {
					p = prefix + "." + k
				}
				if !seen[p] {
					seen[p] = true
					keys = append(keys, p)
				}
				if c, _ := props[k].(map[string]any); c != nil {
					walk(c, p, depth+1)
				}
			}
		}
		for _, key := range []string{"allOf", "anyOf", "oneOf"} {
			list, _ := node[key].([]any)
			for _, s := range list {
				if m, _ := s.(map[string]any); m != nil {
					walk(m, prefix, depth+1)
				}
			}
		}
		for _, key := range []string{"then", "else", "additionalProperties"} {
			if m, _ := node[key].(map[string]any); m != nil {
				walk(m, prefix, depth+1)
			}
		}
	}
	walk(rawSchema(), "", 0)
	return keys
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ { // small maps: insertion sort keeps imports down
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}
