package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"
)

// Text that came from a server (error bodies, error descriptions, listed
// values) may carry terminal control sequences: ESC [ ... can move the
// cursor, rewrite earlier lines, set the window title or, on some terminals,
// answer back with input. Everything the CLI prints for a person goes
// through safeText, which keeps newline and tab and makes every other C0 and
// C1 control, DEL and invalid UTF-8 visible as an escape instead.

// safeText returns s with control characters escaped: \x1b for C0 and DEL,
// \u009b for C1, and \xNN for a byte that is not UTF-8.
func safeText(s string) string {
	clean := true
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if isControl(r) || (r == utf8.RuneError && n == 1) {
			clean = false
			break
		}
		i += n
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x80 && isControl(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case isControl(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// isControl reports the runes a terminal may act on, less newline and tab.
func isControl(r rune) bool {
	switch {
	case r == '\n' || r == '\t':
		return false
	case r < 0x20 || r == 0x7f:
		return true
	case r >= 0x80 && r <= 0x9f:
		return true
	}
	return false
}

// escapeJSONControls rewrites the C1 controls and DEL that JSON allows raw
// inside strings as \u escapes, so JSON output is safe on a terminal and
// still means the same. (JSON forbids raw C0 controls already; outside
// strings JSON is ASCII, so every such rune is inside a string.)
func escapeJSONControls(b []byte) []byte {
	needs := false
	for _, c := range b {
		if c == 0x7f || c == 0xc2 {
			needs = true
			break
		}
	}
	if !needs {
		return b
	}
	out := make([]byte, 0, len(b)+16)
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == 0x7f || (r >= 0x80 && r <= 0x9f) {
			out = fmt.Appendf(out, `\u%04x`, r)
		} else {
			out = append(out, b[i:i+n]...)
		}
		i += n
	}
	return out
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
