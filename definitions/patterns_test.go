package definitions

import (
	"strings"
	"testing"
)

// TestPatternsHaveWords: every pattern of the schema has its words in
// patternWords, so no validator message shows a regular expression
// (issue 13 item 11).
func TestPatternsHaveWords(t *testing.T) {
	var walk func(v any)
	n := 0
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if p, ok := x.(string); ok && k == "pattern" {
					n++
					if patternWords[p] == "" {
						t.Errorf("pattern %s has no words in patternWords", p)
					}
					if got := patternMessage("does not match pattern " + schemaQuote(p)); strings.Contains(got, p) || got != patternWords[p] {
						t.Errorf("pattern %s reads %q", p, got)
					}
					continue
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(rawSchema())
	if n < 10 {
		t.Fatalf("found %d patterns in the schema; the walk is broken", n)
	}
}
