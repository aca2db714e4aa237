package definitions

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Severity tells whether a Diagnostic makes a definition unusable.
type Severity string

const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
)

// Diagnostic is one finding about a definition file, pointing at the YAML
// node it concerns.
type Diagnostic struct {
	Severity Severity `json:"severity"`
	File     string   `json:"file"`
	Line     int      `json:"line,omitempty"` // 1-based; 0 when the finding concerns the whole file (an empty one, say)
	// Column is 1-based and counts characters (runes), not bytes, as
	// editors do. A finding about a placeholder points at its "$" (at the
	// scalar instead when escapes or line breaks before it make the count
	// unsure); a YAML syntax error at the first non-blank character of its
	// line, or at the tab it complains of. 0 when unknown: always when Line
	// is 0.
	Column int    `json:"column,omitempty"`
	Field  string `json:"field,omitempty"` // dotted path, e.g. auth.oauth.token_request_uri
	// Code names the kind of warning (WarningCodes), stable across releases,
	// for ignore_warnings and for tools; errors have none.
	Code    string `json:"code,omitempty"`
	Message string `json:"message"`
	// Acknowledged is set on a warning whose code the definition lists in
	// ignore_warnings, with the Reason given there. Such a warning is kept
	// out of Set.Warnings and Error.Diagnostics (Set.Acknowledged and
	// Error.Acknowledged hold it), so it is not shown again on every run.
	Acknowledged bool   `json:"acknowledged,omitempty"`
	Reason       string `json:"reason,omitempty"`
}

// String formats the diagnostic as file:line:column: field: message, the
// shape editors and CI annotators understand. Warnings say so and end with
// their code in brackets, as compilers print theirs.
func (d Diagnostic) String() string {
	var b strings.Builder
	b.WriteString(d.File)
	if d.Line > 0 {
		fmt.Fprintf(&b, ":%d", d.Line)
		if d.Column > 0 {
			fmt.Fprintf(&b, ":%d", d.Column)
		}
	}
	b.WriteString(": ")
	if d.Severity == SeverityWarning {
		if d.Acknowledged {
			b.WriteString("acknowledged ")
		}
		b.WriteString("warning: ")
	}
	if d.Field != "" {
		b.WriteString(d.Field)
		b.WriteString(": ")
	}
	b.WriteString(d.Message)
	if d.Code != "" {
		fmt.Fprintf(&b, " [%s]", d.Code)
	}
	if d.Acknowledged {
		fmt.Fprintf(&b, " (ignore_warnings: %s)", d.Reason)
	}
	return b.String()
}

// Error is returned when definitions are invalid. It carries every finding,
// warnings included, so that one run shows everything to fix; the warnings
// a definition acknowledges in ignore_warnings are in Acknowledged instead.
type Error struct {
	Diagnostics  []Diagnostic
	Acknowledged []Diagnostic
}

func (e *Error) Error() string {
	var lines []string
	n := 0
	for _, d := range e.Diagnostics {
		if d.Severity == SeverityError {
			n++
			lines = append(lines, d.String())
		}
	}
	if n == 1 {
		return lines[0]
	}
	return fmt.Sprintf("%d errors in connection definitions:\n%s", n, strings.Join(lines, "\n"))
}

// diags collects findings while a file set is checked.
type diags struct {
	list []Diagnostic
	seen map[Diagnostic]bool
}

func (ds *diags) add(d Diagnostic) {
	if ds.seen == nil {
		ds.seen = map[Diagnostic]bool{}
	}
	if ds.seen[d] { // the merged tree of an extending definition repeats its parent's findings
		return
	}
	ds.seen[d] = true
	ds.list = append(ds.list, d)
}

func (ds *diags) hasErrors() bool {
	for _, d := range ds.list {
		if d.Severity == SeverityError {
			return true
		}
	}
	return false
}

// sorted returns the findings ordered by file and position, so output is
// stable whatever order the checks ran in.
func (ds *diags) sorted() []Diagnostic {
	out := slices.Clone(ds.list)
	slices.SortStableFunc(out, func(a, b Diagnostic) int {
		return cmp.Or(
			cmp.Compare(a.File, b.File),
			cmp.Compare(a.Line, b.Line),
			cmp.Compare(a.Column, b.Column),
			cmp.Compare(a.Field, b.Field),
			cmp.Compare(a.Message, b.Message),
		)
	})
	return out
}
