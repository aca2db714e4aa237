// Package jsondepth measures how deeply a JSON text nests, before it is
// decoded: the server's API bodies and the webhook receiver both refuse a
// body nested deeper than their limit, and both count the same way.
package jsondepth

// Of returns the deepest nesting of objects and arrays in data, outside
// strings. It does not check that data is valid JSON.
func Of(data []byte) int {
	depth, deepest, inString, escaped := 0, 0, false, false
	for _, c := range data {
		switch {
		case inString:
			if escaped {
				escaped = false
			} else if c == '\\' {
				escaped = true
			} else if c == '"' {
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			deepest = max(deepest, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
}
