package store

import (
	"fmt"
	"time"
)

// Memory's records hold tokens, and fmt prints the unexported map without
// asking Token to redact itself: Memory prints as a count instead. (It holds
// a mutex and is never copied, so these have pointer receivers.)

// String describes the store without its records.
func (m *Memory) String() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return fmt.Sprintf("store.Memory{records=%d}", len(m.records))
}

// Format keeps every verb on String.
func (m *Memory) Format(f fmt.State, verb rune) {
	s := m.String()
	if verb == 'q' {
		s = fmt.Sprintf("%q", s)
	}
	_, _ = f.Write([]byte(s))
}

// GoString keeps %#v redacted.
func (m *Memory) GoString() string { return m.String() }

// String describes the record with its token redacted. Record needs its own
// methods although Token redacts itself: fmt reports a verb a type has no
// method for (%s, %q of a struct) by printing the value without calling any
// method of its fields, tokens included.
func (r Record) String() string {
	s := fmt.Sprintf("store.Record{id=%s definition=%s status=%s version=%d token=%s", r.ID, r.Definition, r.Status, r.Version, r.Token.String())
	if !r.RefreshStarted.IsZero() {
		s += " refresh_started=" + r.RefreshStarted.UTC().Format(time.RFC3339)
	}
	return s + "}"
}

// Format keeps every verb on String.
func (r Record) Format(f fmt.State, verb rune) {
	s := r.String()
	if verb == 'q' {
		s = fmt.Sprintf("%q", s)
	}
	_, _ = f.Write([]byte(s))
}

// GoString keeps %#v redacted.
func (r Record) GoString() string { return r.String() }
