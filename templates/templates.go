// Package templates owns the ${Name} placeholder templates of connection
// definitions: OAuth and API URIs such as
//
//	${LoginUrl}/oauth/token?grant_type=authorization_code&code=${code}
//
// and header values such as ${CompanyId}. A template is compiled once, when
// its definition loads, against the set of variables the definition knows
// (Vars); compiling reports unknown or misplaced placeholders with their byte
// offset so the caller can point at the YAML column. Expanding is then cheap
// and safe: in a URL every value is percent-encoded for the place it stands
// in, so no value can add a query parameter, change the host or climb out of
// a path; in text no value can smuggle a line break into a header.
//
// Compiled templates are immutable and safe for concurrent use.
package templates

import (
	"strconv"
	"strings"
)

// Kind says what a template produces, and so how its values are inserted.
type Kind uint8

const (
	URL  Kind = iota // the output is a URL: values are escaped by their position in it
	Text             // the output is a header value or other text: values may not contain CR, LF or NUL
)

func (k Kind) String() string {
	switch k {
	case URL:
		return "URL"
	case Text:
		return "Text"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Position says where in a URL a placeholder stands, which decides how its
// value is checked and escaped.
type Position uint8

const (
	PosPrefix     Position = iota // at offset 0, supplying scheme and host; URL-valued variables only
	PosPath                       // in the path: the value stays within its segment
	PosQueryKey                   // a query parameter name (before "=")
	PosQueryValue                 // a query parameter value (after "=")
	PosFragment                   // after "#"
	PosText                       // anywhere in a Text template
	PosHost                       // in the literal host of a URL (https://${Subdomain}.zendesk.com); host-valued variables only
)

var positionNames = [...]string{
	PosPrefix:     "prefix",
	PosPath:       "path",
	PosQueryKey:   "query key",
	PosQueryValue: "query value",
	PosFragment:   "fragment",
	PosText:       "text",
	PosHost:       "host",
}

func (p Position) String() string {
	if int(p) < len(positionNames) {
		return positionNames[p]
	}
	return "Position(" + strconv.Itoa(int(p)) + ")"
}

// Placeholder is one ${Name} occurrence in a compiled template.
type Placeholder struct {
	Name   string   // the name as written in the source (its case may differ from the Vars spelling)
	Var    int      // the variable's index in the Vars the template was compiled with
	Offset int      // byte offset of "${" in the source
	Pos    Position // where it stands
}

// Error is a problem with a template, returned by Compile (a bad source) and
// by Expand (a value that cannot be used). Msg names the placeholder and says
// what to do; it never contains the value of a Secret variable.
type Error struct {
	Offset      int    // byte offset of the offending "${" in the source, -1 if none
	Placeholder string // the placeholder's name as written, "" if none
	Msg         string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("template: ")
	if e.Offset >= 0 {
		b.WriteString("byte ")
		b.WriteString(strconv.Itoa(e.Offset))
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}
