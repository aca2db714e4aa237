package templates

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"unsafe"
)

// Source returns the template as written.
func (t *Template) Source() string { return t.src }

// Kind returns the kind the template was compiled as.
func (t *Template) Kind() Kind { return t.kind }

// Placeholders returns the template's placeholders in source order.
func (t *Template) Placeholders() []Placeholder { return slices.Clone(t.ph) }

// Uses reports whether the template names the variable with index varIndex.
func (t *Template) Uses(varIndex int) bool {
	for i := range t.chunks {
		if t.chunks[i].v == varIndex {
			return true
		}
	}
	return false
}

// Expand returns the template with each placeholder replaced by its value.
// values is indexed by variable index; a missing entry or "" is an empty
// value. Errors are *Error.
//
// In a URL template a prefix value must be an absolute http(s) URL without
// user info, query or fragment, and every other value is percent-encoded so
// that only RFC 3986 unreserved characters stay as they are. In a Text
// template values are inserted as they are, but may not contain CR, LF or NUL.
func (t *Template) Expand(values []string) (string, error) {
	n, err := t.size(values)
	if err != nil {
		return "", err
	}
	if n == 0 {
		return "", nil
	}
	buf := t.appendTo(make([]byte, 0, n), values, false)
	// buf is exactly n bytes and never touched again, so the string can
	// share it: one allocation per Expand.
	return unsafe.String(unsafe.SliceData(buf), len(buf)), nil
}

// AppendExpand is like Expand but appends the result to dst. On error it
// returns dst unchanged.
func (t *Template) AppendExpand(dst []byte, values []string) ([]byte, error) {
	n, err := t.size(values)
	if err != nil {
		return dst, err
	}
	return t.appendTo(slices.Grow(dst, n), values, false), nil
}

// Redacted is like Expand, but Secret variables appear as *** and values that
// Expand would reject are shown anyway, control characters escaped as \r, \n
// or \xNN. It never fails; it is for showing a template to a person.
func (t *Template) Redacted(values []string) string {
	return string(t.appendTo(make([]byte, 0, t.litLen+16*len(t.chunks)), values, true))
}

func value(values []string, i int) string {
	if i >= 0 && i < len(values) {
		return values[i]
	}
	return ""
}

// size checks the values and returns the exact length of the expansion.
func (t *Template) size(values []string) (int, error) {
	n := t.litLen
	for i := range t.chunks {
		ch := &t.chunks[i]
		v := value(values, ch.v)
		switch ch.pos {
		case PosPrefix:
			if problem := checkPrefix(v); problem != "" {
				return 0, t.valueError(i, v, problem)
			}
			n += len(v)
			if dropSlash(v, t.next(i)) {
				n--
			}
		case PosHost:
			if problem := checkHost(v, ch.flags); problem != "" {
				return 0, t.valueError(i, v, problem)
			}
			n += len(v)
		case PosText:
			if strings.ContainsAny(v, "\r\n\x00") {
				return 0, t.valueError(i, v, "contains a line break or NUL byte, which would corrupt the header or text it goes into")
			}
			n += len(v)
		default:
			if ch.segLen > 0 {
				if j, seg := t.dotSegment(i, values); j >= 0 {
					return 0, t.dotSegmentError(j, value(values, t.chunks[j].v), seg)
				}
			}
			if ch.dotGuard && isDots(v) {
				n += 3 * len(v)
				break
			}
			n += len(v)
			for j := 0; j < len(v); j++ {
				if !unreserved[v[j]] {
					n += 2
				}
			}
		}
	}
	return n, nil
}

// next returns the literal text after placeholder i.
func (t *Template) next(i int) string {
	if i+1 < len(t.chunks) {
		return t.chunks[i+1].lit
	}
	return t.tail
}

// dropSlash reports whether a prefix value and the literal after it would
// meet in a double slash, of which one is dropped: ${BaseUrl}/x with
// BaseUrl=https://host/ gives https://host/x.
func dropSlash(v, next string) bool {
	return strings.HasSuffix(v, "/") && strings.HasPrefix(next, "/")
}

func isDots(v string) bool { return v == "." || v == ".." }

// dotSegment reports whether the values make the path segment whose first
// placeholder is chunk i "." or "..", which RFC 3986 (6.2.2.2) resolves as
// this or the parent directory even when percent-encoded, so that a client,
// proxy or server may send the request to another path. It returns the
// first placeholder that contributes dots and the segment, or -1.
func (t *Template) dotSegment(i int, values []string) (int, string) {
	ch := &t.chunks[i]
	n, culprit := ch.segDots, -1
	for j := i; j < i+ch.segLen; j++ {
		v := value(values, t.chunks[j].v)
		if strings.Trim(v, ".") != "" {
			return -1, ""
		}
		if v != "" && culprit < 0 {
			culprit = j
		}
		n += len(v)
	}
	if culprit < 0 || n > 2 {
		return -1, ""
	}
	return culprit, strings.Repeat(".", n)
}

func (t *Template) dotSegmentError(i int, v, seg string) *Error {
	p := &t.ph[i]
	shown := fmt.Sprintf("%q", v)
	if t.chunks[i].flags&Secret != 0 {
		shown = "dots"
	}
	return &Error{Offset: p.Offset, Placeholder: p.Name, Msg: fmt.Sprintf(
		"the value of ${%s} is %s, which would make its path segment %q: that means this or the parent directory (RFC 3986 6.2.2.2, even percent-encoded), so the request could reach another resource; a path value cannot be \".\" or \"..\"",
		p.Name, shown, seg)}
}

func (t *Template) valueError(i int, v, problem string) *Error {
	ch, p := &t.chunks[i], &t.ph[i]
	msg := fmt.Sprintf("the value of ${%s} %s", p.Name, problem)
	if ch.flags&Secret == 0 && (ch.pos == PosPrefix || ch.pos == PosHost) {
		// Showing a base URL helps find the typo; other values may be
		// personal, and a secret's never appears.
		msg += fmt.Sprintf(" (it is %q)", v)
	}
	return &Error{Offset: p.Offset, Placeholder: p.Name, Msg: msg}
}

// appendTo appends the expansion to dst, which Expand has sized. Values are
// assumed checked unless redact is set.
func (t *Template) appendTo(dst []byte, values []string, redact bool) []byte {
	for i := range t.chunks {
		ch := &t.chunks[i]
		dst = append(dst, ch.lit...)
		v := value(values, ch.v)
		if redact && ch.flags&Secret != 0 {
			dst = append(dst, "***"...)
			continue
		}
		switch ch.pos {
		case PosPrefix:
			if redact && checkPrefix(v) != "" {
				dst = appendVisible(dst, v)
				break
			}
			if dropSlash(v, t.next(i)) {
				v = v[:len(v)-1]
			}
			dst = append(dst, v...)
		case PosText:
			if redact {
				dst = appendVisible(dst, v)
				break
			}
			dst = append(dst, v...)
		case PosHost:
			if redact && checkHost(v, ch.flags) != "" {
				dst = appendEscaped(dst, v)
				break
			}
			dst = append(dst, v...)
		default:
			if ch.dotGuard && isDots(v) {
				for range len(v) {
					dst = append(dst, "%2E"...)
				}
				break
			}
			dst = appendEscaped(dst, v)
		}
	}
	return append(dst, t.tail...)
}

const upperHex = "0123456789ABCDEF"

// unreserved marks the bytes RFC 3986 section 2.3 lets stand for themselves
// anywhere in a URL: ALPHA DIGIT - . _ ~
var unreserved = func() (u [256]bool) {
	for c := range 256 {
		u[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~'
	}
	return u
}()

// appendEscaped appends v with every byte but the unreserved ones
// percent-encoded, so it cannot end a path segment, a query parameter or
// the query ("/", "&", "=", "#", "?") nor be read as a space ("+").
func appendEscaped(dst []byte, v string) []byte {
	start := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		if unreserved[c] {
			continue
		}
		dst = append(dst, v[start:i]...)
		dst = append(dst, '%', upperHex[c>>4], upperHex[c&15])
		start = i + 1
	}
	return append(dst, v[start:]...)
}

// appendVisible appends v with control characters escaped, for display.
func appendVisible(dst []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\r':
			dst = append(dst, `\r`...)
		case c == '\n':
			dst = append(dst, `\n`...)
		case c < 0x20 || c == 0x7f:
			dst = append(dst, '\\', 'x', upperHex[c>>4], upperHex[c&15])
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// checkPrefix says what keeps v from being used as a URL's scheme and host,
// or "" if nothing does: it must be an absolute http or https URL with a host
// (and optional port and path) and no user info, query or fragment. The
// check is strict (only characters RFC 3986 allows, valid escapes), so what
// it accepts parses the same way everywhere; it does not allocate, as it runs
// on every Expand.
func checkPrefix(v string) string {
	if v == "" {
		return "is empty; set it to an absolute URL such as https://api.example.com"
	}
	var rest string
	switch {
	case hasPrefixFold(v, "https://"):
		rest = v[len("https://"):]
	case hasPrefixFold(v, "http://"):
		rest = v[len("http://"):]
	default:
		return "is not an absolute http:// or https:// URL"
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, path := rest[:end], rest[end:]
	if strings.IndexByte(authority, '@') >= 0 {
		return "contains user info (user@host); put credentials elsewhere"
	}
	if !validHostPort(authority) {
		return "has no valid host (and optional :port) after the scheme"
	}
	if strings.ContainsAny(path, "?#") {
		return "has a query or fragment; it may only have a scheme, host, port and path"
	}
	for i := 0; i < len(path); i++ {
		c := path[i]
		switch {
		case unreserved[c] || strings.IndexByte("/!$&'()*+,;=:@", c) >= 0:
		case c == '%' && i+2 < len(path) && isHex(path[i+1]) && isHex(path[i+2]):
			i += 2
		default:
			return "has a character in its path that must be percent-encoded"
		}
	}
	return ""
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// validHostPort accepts a DNS name or IPv4 address, or an IPv6 address in
// brackets, optionally followed by a port of 1 to 5 digits.
func validHostPort(hp string) bool {
	host, port := hp, ""
	if strings.HasPrefix(hp, "[") {
		end := strings.IndexByte(hp, ']')
		if end < 0 {
			return false
		}
		host, port = hp[:end+1], hp[end+1:]
		addr, err := netip.ParseAddr(host[1 : len(host)-1])
		if err != nil || !addr.Is6() || addr.Zone() != "" {
			return false
		}
	} else {
		if i := strings.IndexByte(hp, ':'); i >= 0 {
			host, port = hp[:i], hp[i:]
		}
		if host == "" {
			return false
		}
		for i := 0; i < len(host); i++ {
			c := host[i]
			if !(unreserved[c] && c != '~') {
				return false
			}
		}
	}
	if port == "" {
		return true
	}
	if port[0] != ':' || len(port) < 2 || len(port) > 6 {
		return false
	}
	for i := 1; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return false
		}
	}
	return true
}

// HostProblem says what keeps v from standing in a URL's host for a
// variable with these flags (HostName, HostLabel, HostIP), or "" if
// nothing does: the check Expand makes.
func HostProblem(v string, flags Flag) string { return checkHost(v, flags) }

// checkHost says what keeps v from standing in a URL's host, or "" if
// nothing does. A HostLabel value is one DNS label; a HostName value is
// labels joined by dots, and an IPv4 address only with HostIP. Labels are
// ASCII letters, digits and hyphens, 1 to 63 long, not starting or ending
// with a hyphen (RFC 1123); an internationalised name must arrive as
// punycode (xn--...), which the definitions package converts it to.
func checkHost(v string, flags Flag) string {
	if v == "" {
		return "is empty; it forms the URL's host"
	}
	if len(v) > 253 {
		return "is longer than the 253 characters a host name may have"
	}
	if flags&HostLabel != 0 && strings.IndexByte(v, '.') >= 0 {
		return "must be one DNS label (letters, digits and hyphens, such as acme), with no dots"
	}
	if flags&HostIP != 0 {
		if a, err := netip.ParseAddr(v); err == nil && a.Is4() {
			return ""
		}
	}
	labels := strings.Split(v, ".")
	for _, l := range labels {
		if l == "" {
			return "has an empty label (two dots, or a dot at an end); write a host name such as acme.example.com"
		}
		if len(l) > 63 {
			return "has a label longer than 63 characters"
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return "has a label starting or ending with a hyphen"
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return "may hold only letters, digits, hyphens and dots; a /, @, :, % or space would change where the URL goes"
			}
		}
	}
	// A label is followed by the template's own domain; a whole name
	// ending in a numeric label is an IP address or would be read as one.
	if last := labels[len(labels)-1]; flags&HostLabel == 0 && strings.Trim(last, "0123456789") == "" {
		return "is an IP address or ends in a numeric label; give a host name"
	}
	return ""
}
