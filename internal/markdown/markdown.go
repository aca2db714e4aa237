// Package markdown reads what the repository's documentation tests check in
// its Markdown files: the anchors a page offers (the ids GitHub gives its
// headings, and explicit <a id="..."></a> tags) and the links it makes. It
// is a reader for those checks, not a Markdown renderer: fenced code blocks
// and inline code are skipped, and only inline links are seen.
package markdown

import (
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// Anchors returns the anchors of a Markdown page, each with the heading
// line of the section it is in (for messages).
func Anchors(text string) map[string]string {
	anchors := map[string]string{}
	seen := map[string]int{}
	heading := ""
	for _, line := range prose(text) {
		if h, ok := strings.CutPrefix(strings.TrimLeft(line.text, "#"), " "); ok && strings.HasPrefix(line.text, "#") {
			heading = line.text
			id := Slug(h)
			// GitHub numbers a repeated heading's id: example, example-1, ...
			if n := seen[id]; n > 0 {
				seen[id]++
				id += "-" + strconv.Itoa(n)
			} else {
				seen[id] = 1
			}
			anchors[id] = heading
		}
		for _, m := range explicitAnchor.FindAllStringSubmatch(line.text, -1) {
			anchors[m[1]] = heading
		}
	}
	return anchors
}

var explicitAnchor = regexp.MustCompile(`<a id="([^"]+)"></a>`)

// Slug is the id GitHub gives a heading: lower case, letters, digits, - and
// _ kept, spaces as -, everything else (punctuation, backticks) dropped.
func Slug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Link is one inline link or image of a page: its target as written and
// the line it is on (1-based).
type Link struct {
	Target string
	Line   int
}

// Links returns the page's inline links and images, [text](target) and
// ![alt](target), outside code. A title after the target ("...") is
// dropped.
func Links(text string) []Link {
	var out []Link
	for _, line := range prose(text) {
		for _, m := range inlineLink.FindAllStringSubmatch(stripInlineCode(line.text), -1) {
			target, _, _ := strings.Cut(strings.TrimSpace(m[1]), " ")
			out = append(out, Link{Target: strings.Trim(target, "<>"), Line: line.n})
		}
	}
	return out
}

var inlineLink = regexp.MustCompile(`\]\(([^)\s]+(?:\s+"[^"]*")?)\)`)

type numbered struct {
	n    int
	text string
}

// prose returns the lines of text outside fenced code blocks.
func prose(text string) []numbered {
	var out []numbered
	fence := ""
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimLeft(line, " ")
		if fence != "" {
			if strings.HasPrefix(trimmed, fence) {
				fence = ""
			}
			continue
		}
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			fence = trimmed[:3]
			continue
		}
		out = append(out, numbered{i + 1, line})
	}
	return out
}

// stripInlineCode blanks `code spans`, whose brackets are not links.
func stripInlineCode(line string) string {
	var b strings.Builder
	in := false
	for _, r := range line {
		if r == '`' {
			in = !in
			continue
		}
		if !in {
			b.WriteRune(r)
		}
	}
	return b.String()
}
