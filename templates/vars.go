package templates

import (
	"fmt"
	"slices"
	"strings"
)

// Flag describes a variable.
type Flag uint8

const (
	// URLValued marks a variable whose value is an absolute http(s) URL that
	// may supply a URL's scheme and host (BaseUrl, LoginUrl, a url-typed field).
	URLValued Flag = 1 << iota
	// Secret marks a variable whose value Redacted shows as *** and errors
	// never repeat.
	Secret
	// HostName marks a variable that may stand in a URL's host: a DNS name
	// (acme.zendesk.com), checked when expanded: letters, digits and
	// hyphens in dot-separated labels, never an IP address (unless HostIP),
	// a port, user info or anything that would end the host.
	HostName
	// HostLabel is HostName restricted to one DNS label (acme), for
	// templates such as https://${Subdomain}.zendesk.com.
	HostLabel
	// HostIP lets a HostName variable be an IPv4 address as well.
	HostIP
)

// hostValued marks the flags that let a variable stand in a URL's host.
const hostValued = HostName | HostLabel

// Vars is the set of variables templates may name. Each has an index, used
// to pass values to Expand. Names match case-insensitively, because
// definitions in the wild write both ${ClientId} and ${clientId}.
//
// A Vars is built before templates are compiled against it and must not be
// changed while other goroutines read it.
type Vars struct {
	names []string
	flags []Flag
	index map[string]int // by lower-cased name
}

// NewVars returns an empty set.
func NewVars() *Vars {
	return &Vars{index: make(map[string]int)}
}

// Add adds a variable and returns its index. The name must be an identifier
// ([A-Za-z_][A-Za-z0-9_]*) and differ from every existing name ignoring case.
func (v *Vars) Add(name string, flags Flag) (int, error) {
	if !isIdent(name) {
		return -1, fmt.Errorf("templates: variable name %q is not an identifier: use letters, digits and _, not starting with a digit", name)
	}
	key := strings.ToLower(name)
	if i, ok := v.index[key]; ok {
		return -1, fmt.Errorf("templates: variable %q already exists as %q (names are case-insensitive)", name, v.names[i])
	}
	if v.index == nil {
		v.index = make(map[string]int)
	}
	i := len(v.names)
	v.names = append(v.names, name)
	v.flags = append(v.flags, flags)
	v.index[key] = i
	return i, nil
}

// Lookup returns the index of the variable called name, ignoring case.
func (v *Vars) Lookup(name string) (int, bool) {
	if v == nil {
		return -1, false
	}
	i, ok := v.index[strings.ToLower(name)]
	if !ok {
		return -1, false
	}
	return i, true
}

// Len returns the number of variables.
func (v *Vars) Len() int {
	if v == nil {
		return 0
	}
	return len(v.names)
}

// Name returns the spelling of variable i given to Add.
func (v *Vars) Name(i int) string { return v.names[i] }

// Flags returns the flags of variable i.
func (v *Vars) Flags(i int) Flag { return v.flags[i] }

// Names returns the variables' names in index order.
func (v *Vars) Names() []string {
	if v == nil {
		return nil
	}
	return slices.Clone(v.names)
}

// suggest returns the known names close to an unknown one: the same once
// case and underscores are ignored (client_id for ClientId), or within two
// edits. Only the closest are returned.
func (v *Vars) suggest(name string) []string {
	if v == nil {
		return nil
	}
	want := strings.ToLower(name)
	squashed := strings.ReplaceAll(want, "_", "")
	best, out := 3, []string(nil)
	for i, known := range v.names {
		k := strings.ToLower(known)
		d := levenshtein(want, k)
		if squashed == strings.ReplaceAll(k, "_", "") {
			d = 0
		}
		// Two edits turn any short name into any other; do not suggest those.
		if d >= len(k) {
			continue
		}
		switch {
		case d < best:
			best, out = d, []string{v.names[i]}
		case d == best:
			out = append(out, v.names[i])
		}
	}
	return out
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
