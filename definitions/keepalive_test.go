package definitions_test

import (
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/definitions"
)

// The parsed policy is what the scheduler reads; an extending definition
// can drop its parent's with keep_alive: null.
func TestKeepAliveParsed(t *testing.T) {
	src := strings.Replace(minimal, "    version: V2", "    version: V2\n    keep_alive: {refresh_ahead: true, idle_refresh: 720h}", 1)
	child := "name: acme-plain\nextends: acme\nauth:\n  oauth:\n    keep_alive: null\n"
	set, diags := parse(t, file("acme.yaml", src), file("plain.yaml", child))
	if set == nil {
		t.Fatalf("not accepted: %v", diags)
	}
	d, err := set.Lookup("acme")
	if err != nil {
		t.Fatal(err)
	}
	want := definitions.KeepAlive{RefreshAhead: true, IdleRefresh: 720 * time.Hour}
	if got := d.Auth.OAuth.KeepAlive; got != want || !got.Enabled() {
		t.Fatalf("KeepAlive = %+v, want %+v", got, want)
	}
	if s := d.Auth.OAuth.KeepAlive.String(); s != "refresh ahead of expiry, and at least every 720h0m0s" {
		t.Errorf("String = %q", s)
	}
	p, err := set.Lookup("acme-plain")
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Auth.OAuth.KeepAlive; got.Enabled() {
		t.Errorf("keep_alive: null kept the parent's policy: %+v", got)
	}
	// Procore's refresh tokens do not expire until used: it asks for nothing.
	pc, _ := definitions.Builtin().Lookup("procore")
	if pc.Auth.OAuth.KeepAlive.Enabled() {
		t.Errorf("procore has a keep-alive policy: %v", pc.Auth.OAuth.KeepAlive)
	}
}
