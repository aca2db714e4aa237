package templates

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/valyala/fasttemplate"
)

const (
	startTag = "${"
	endTag   = "}"
)

// Template is a compiled template. Its zero value is not usable; get one from
// Compile.
type Template struct {
	src    string
	kind   Kind
	chunks []chunk // one per placeholder, in source order
	tail   string  // the literal text after the last placeholder
	litLen int     // total length of the literal text, to size the output
	ph     []Placeholder
}

// chunk is a placeholder with the literal text before it, holding what
// Expand needs so it never consults the Vars.
type chunk struct {
	lit   string
	v     int
	pos   Position
	flags Flag
	// dotGuard is set on path placeholders whose segment has no literal text
	// but dots, so that a value of "." or ".." could make it a dot segment.
	dotGuard bool
	// segLen, on the first guarded placeholder of a segment, is how many
	// placeholders the segment has, and segDots how many literal dots.
	segLen, segDots int
}

// tag is a placeholder found by the scanner.
type tag struct {
	name string
	off  int
}

// scanner records what fasttemplate finds in a source: the literal chunks
// (as its io.Writer) and the tags (as its TagFunc), with their offsets.
type scanner struct {
	src      string
	pos      int // bytes of src consumed so far
	litStart int // where the current literal chunk began
	lits     []string
	tags     []tag
	unclosed int // offset of an unclosed "${", or -1
}

func (s *scanner) Write(p []byte) (int, error) {
	// fasttemplate cuts a literal at the first "${"; one can reach the writer
	// only when it has no closing "}" and fasttemplate gives up on it.
	if i := bytes.Index(p, []byte(startTag)); i >= 0 && s.unclosed < 0 {
		s.unclosed = s.pos + i
	}
	s.pos += len(p)
	return len(p), nil
}

func (s *scanner) tag(_ io.Writer, name string) (int, error) {
	s.lits = append(s.lits, s.src[s.litStart:s.pos])
	// Slice the name from src rather than keep fasttemplate's string, which
	// aliases its buffer.
	off := s.pos
	nameStart := off + len(startTag)
	s.tags = append(s.tags, tag{name: s.src[nameStart : nameStart+len(name)], off: off})
	s.pos = nameStart + len(name) + len(endTag)
	s.litStart = s.pos
	return 0, nil
}

// Compile parses src, a template of the given kind, whose placeholders must
// name variables in vars. Errors are *Error, with the offset of the offending
// placeholder.
func Compile(src string, kind Kind, vars *Vars) (*Template, error) {
	if kind != URL && kind != Text {
		return nil, &Error{Offset: -1, Msg: fmt.Sprintf("unknown template kind %d", kind)}
	}
	sc := scanner{src: src, unclosed: -1}
	if _, err := fasttemplate.ExecuteFunc(src, startTag, endTag, &sc, sc.tag); err != nil {
		return nil, &Error{Offset: -1, Msg: err.Error()} // the scanner never fails; kept for safety
	}
	if sc.pos != len(src) {
		return nil, &Error{Offset: -1, Msg: "internal error: template scan lost its place"}
	}
	sc.lits = append(sc.lits, src[sc.litStart:])

	c := compiler{src: src, vars: vars, tags: sc.tags, lits: sc.lits}
	c.chunks = make([]chunk, len(sc.tags))
	var first *Error
	keep := func(e *Error) {
		// Report the error nearest the start; on a tie the earlier check wins.
		if e != nil && (first == nil || e.Offset < first.Offset) {
			first = e
		}
	}
	if sc.unclosed >= 0 {
		keep(&Error{Offset: sc.unclosed, Msg: `unclosed "${": end the placeholder with "}"`})
	}
	keep(c.resolve())
	if kind == URL {
		keep(c.classify())
	} else {
		for i := range c.chunks {
			c.chunks[i].pos = PosText
		}
	}
	if first != nil {
		return nil, first
	}

	t := &Template{src: src, kind: kind, chunks: c.chunks, tail: sc.lits[len(sc.lits)-1]}
	t.ph = make([]Placeholder, len(c.chunks))
	for i := range c.chunks {
		ch := &c.chunks[i]
		ch.lit = sc.lits[i]
		t.litLen += len(ch.lit)
		t.ph[i] = Placeholder{Name: sc.tags[i].name, Var: ch.v, Offset: sc.tags[i].off, Pos: ch.pos}
	}
	t.litLen += len(t.tail)
	return t, nil
}

type compiler struct {
	src    string
	vars   *Vars
	tags   []tag
	lits   []string
	chunks []chunk
}

// resolve looks each placeholder up in vars.
func (c *compiler) resolve() *Error {
	for i, tg := range c.tags {
		c.chunks[i].v = -1
		if e := c.checkName(tg); e != nil {
			return e
		}
		v, _ := c.vars.Lookup(tg.name)
		c.chunks[i].v = v
		c.chunks[i].flags = c.vars.Flags(v)
	}
	return nil
}

func (c *compiler) checkName(tg tag) *Error {
	errf := func(format string, args ...any) *Error {
		return &Error{Offset: tg.off, Placeholder: tg.name, Msg: fmt.Sprintf(format, args...)}
	}
	switch {
	case tg.name == "":
		return errf(`empty placeholder "${}": put a variable name between the braces%s`, c.knownList(", such as "))
	case strings.Contains(tg.name, startTag):
		// "${a ${b}" reads as one tag named "a ${b"; the real mistake is the
		// first "${" missing its "}".
		return errf(`unclosed "${": end the placeholder with "}"`)
	case !isIdent(tg.name):
		msg := fmt.Sprintf("placeholder %q has an invalid name: use letters, digits and _, not starting with a digit", startTag+tg.name+endTag)
		if trimmed := strings.TrimSpace(tg.name); trimmed != tg.name && isIdent(trimmed) {
			msg += fmt.Sprintf(", and no spaces: ${%s}", trimmed)
		}
		return errf("%s", msg)
	}
	if _, ok := c.vars.Lookup(tg.name); ok {
		return nil
	}
	if s := c.vars.suggest(tg.name); len(s) > 0 {
		return errf("unknown placeholder ${%s}; did you mean %s?", tg.name, joinPlaceholders(s, " or "))
	}
	if c.vars.Len() == 0 {
		return errf("unknown placeholder ${%s}; no placeholders are defined here", tg.name)
	}
	return errf("unknown placeholder ${%s}%s", tg.name, c.knownList("; known placeholders are "))
}

// knownList returns prefix followed by the known placeholders, or "" if there
// are none.
func (c *compiler) knownList(prefix string) string {
	if c.vars.Len() == 0 {
		return ""
	}
	return prefix + joinPlaceholders(c.vars.Names(), ", ")
}

func joinPlaceholders(names []string, sep string) string {
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteString(startTag + n + endTag)
	}
	return b.String()
}

// classify decides the Position of every placeholder of a URL template, and
// rejects placeholders that would supply the scheme or host other than a
// URL-valued one at the very start.
//
// It walks the source as a sequence of bytes in which each placeholder is a
// single opaque symbol: shape holds the literal bytes, at[i] the placeholder
// standing at shape[i] or -1.
func (c *compiler) classify() *Error {
	var shape []byte
	var at []int
	for i, lit := range c.lits {
		shape = append(shape, lit...)
		for range len(lit) {
			at = append(at, -1)
		}
		if i < len(c.tags) {
			shape = append(shape, 0)
			at = append(at, i)
		}
	}
	isLit := func(i int, set string) bool {
		return i < len(shape) && at[i] < 0 && strings.IndexByte(set, shape[i]) >= 0
	}

	i := 0 // where the path begins
	switch {
	case len(at) > 0 && at[0] == 0:
		if e := c.notHost(0, true); e != nil {
			return e
		}
		c.chunks[0].pos = PosPrefix
		// The value ends with its host or path; anything glued to it but a
		// new path segment, query or fragment would extend the host.
		if len(shape) > 1 && !isLit(1, "/?#") {
			name := c.tags[0].name
			return &Error{Offset: c.tags[0].off, Placeholder: name, Msg: fmt.Sprintf(
				`${%s} supplies the scheme and host, so what follows it must start with "/", "?" or "#", as in ${%[1]s}/path`, name)}
		}
		i = 1
	default:
		// Without a scheme this is a relative reference, which may still
		// name a host ("//host/path").
		if colon := schemeEnd(shape, at); colon >= 0 {
			for j := range colon {
				if at[j] >= 0 {
					return c.notHost(at[j], false)
				}
			}
			i = colon + 1
		}
		if isLit(i, "/") && isLit(i+1, "/") {
			// The authority: a host-valued placeholder may form (part of)
			// the host, never the user info or the port.
			start := i + 2
			end := start
			hostStart := start
			for end < len(shape) && !isLit(end, "/?#") {
				if isLit(end, "@") {
					hostStart = end + 1 // what came before is user info
				}
				end++
			}
			inHost := true
			for i = start; i < end; i++ {
				if k := at[i]; k >= 0 {
					if i < hostStart || !inHost || c.chunks[k].flags&hostValued == 0 || c.chunks[k].v < 0 {
						return c.notHost(k, false)
					}
					c.chunks[k].pos = PosHost
					continue
				}
				if i >= hostStart && shape[i] == ':' {
					inHost = false // the port
				}
			}
		}
	}

	// The path's segments, query parameters and fragment. A path segment
	// whose literal text is all dots can be turned into "." or ".." by its
	// values, so its placeholders are guarded against that.
	state := PosPath
	var seg []int
	segDots, dots := true, 0
	endSeg := func() {
		if segDots && len(seg) > 0 {
			for _, k := range seg {
				c.chunks[k].dotGuard = true
			}
			c.chunks[seg[0]].segLen, c.chunks[seg[0]].segDots = len(seg), dots
		}
		seg, segDots, dots = seg[:0], true, 0
	}
	for ; i < len(shape); i++ {
		if k := at[i]; k >= 0 {
			c.chunks[k].pos = state
			if state == PosPath {
				seg = append(seg, k)
			}
			continue
		}
		switch b := shape[i]; state {
		case PosPath:
			switch b {
			case '/':
				endSeg()
			case '?':
				endSeg()
				state = PosQueryKey
			case '#':
				endSeg()
				state = PosFragment
			case '.':
				dots++
			default:
				segDots = false
			}
		case PosQueryKey, PosQueryValue:
			switch b {
			case '=':
				if state == PosQueryKey {
					state = PosQueryValue
				}
			case '&':
				state = PosQueryKey
			case '#':
				state = PosFragment
			}
		}
	}
	if state == PosPath {
		endSeg()
	}
	return nil
}

// schemeEnd returns the index of the ":" ending a URL scheme at the start of
// shape, counting placeholders as scheme characters (they could expand to
// some), or -1 if shape does not start with a scheme.
func schemeEnd(shape []byte, at []int) int {
	for i, b := range shape {
		if at[i] >= 0 {
			continue
		}
		switch {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z':
		case i > 0 && ('0' <= b && b <= '9' || b == '+' || b == '-' || b == '.'):
		case i > 0 && b == ':':
			return i
		default:
			return -1
		}
	}
	return -1
}

// notHost checks placeholder k, which stands where it would supply (part of)
// the scheme or host. Only a URL-valued variable at offset 0 may.
func (c *compiler) notHost(k int, atStart bool) *Error {
	ch, tg := &c.chunks[k], c.tags[k]
	switch {
	case ch.v < 0:
		return nil // unknown: resolve has reported it
	case ch.flags&URLValued != 0 && atStart:
		return nil
	case ch.flags&URLValued != 0:
		return &Error{Offset: tg.off, Placeholder: tg.name, Msg: fmt.Sprintf(
			"${%s} supplies a scheme and host, so it must start the template, as in ${%[1]s}/path", tg.name)}
	}
	var urlVars []string
	for i := range c.vars.Len() {
		if c.vars.Flags(i)&URLValued != 0 {
			urlVars = append(urlVars, c.vars.Name(i))
		}
	}
	hint := "only a URL-valued placeholder can, at the very start of the template"
	if len(urlVars) > 0 {
		hint = "only a URL-valued placeholder such as " + joinPlaceholders(urlVars, " or ") + " can, at the very start of the template"
	}
	if ch.flags&hostValued != 0 {
		hint = "a host-valued placeholder may form only the host, not the scheme, user info or port"
	} else {
		hint += ", or, in the host, a field of type host_label (one DNS label, as in https://${" + tg.name + "}.example.com) or hostname"
	}
	return &Error{Offset: tg.off, Placeholder: tg.name, Msg: fmt.Sprintf(
		"${%s} cannot form part of the URL's scheme or host: %s", tg.name, hint)}
}
