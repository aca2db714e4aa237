package templates

import "strings"

// Closest returns the candidate that s most likely misspells: the same name
// but for case and the separators _, - and space, or the nearest one at most
// two edits away; "" when none is that close. The engine's "did you mean"
// hints (definition keys, action inputs, connection properties) all use it,
// so that they agree.
func Closest(s string, candidates []string) string {
	best, bestDist := "", 3
	want := normName(s)
	for _, c := range candidates {
		n := normName(c)
		if n == want {
			return c
		}
		// Two edits turn any short name into any other; do not suggest those.
		if d := levenshtein(want, n); d < bestDist && d < len(n) {
			best, bestDist = c, d
		}
	}
	return best
}

var nameSeparators = strings.NewReplacer("_", "", "-", "", " ", "")

func normName(s string) string { return strings.ToLower(nameSeparators.Replace(s)) }

// levenshtein returns the edit distance between a and b, in bytes.
func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
