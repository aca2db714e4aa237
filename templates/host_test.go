package templates

import (
	"strings"
	"testing"
)

func hostVars(t *testing.T) *Vars {
	t.Helper()
	v := NewVars()
	for _, x := range []struct {
		name  string
		flags Flag
	}{{"Sub", HostLabel}, {"Host", HostName}, {"IPHost", HostName | HostIP}, {"Plain", 0}, {"Base", URLValued}} {
		if _, err := v.Add(x.name, x.flags); err != nil {
			t.Fatal(err)
		}
	}
	return v
}

func TestHostPlaceholdersCompile(t *testing.T) {
	vars := hostVars(t)
	tests := []struct {
		src, err string
	}{
		{"https://${Sub}.zendesk.com/api/v2", ""},
		{"https://${Host}/admin", ""},
		{"https://${Host}:8443/x", ""},
		{"https://${Sub}.${Host}/x", ""},
		{"https://${Sub}-eu.example.com/x?sub=${Sub}", ""},
		{"https://${Plain}.zendesk.com/", "${Plain} cannot form part of the URL's scheme or host"},
		{"https://${Plain}.zendesk.com/", "a field of type host_label"},
		{"https://example.com:${Sub}/", "may form only the host, not the scheme, user info or port"},
		{"https://${Sub}@example.com/", "may form only the host, not the scheme, user info or port"},
		{"${Sub}://example.com/", "may form only the host"},
		{"https://${Base}/x", "${Base} supplies a scheme and host, so it must start the template"},
	}
	for _, tt := range tests {
		_, err := Compile(tt.src, URL, vars)
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("Compile(%q): %v", tt.src, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("Compile(%q) = %v, want %q", tt.src, err, tt.err)
		}
	}
	// User info before the host is never formed by a placeholder, even a host one.
	if _, err := Compile("https://user@${Sub}.example.com/", URL, vars); err != nil {
		t.Errorf("a literal user info with a host placeholder after it: %v", err)
	}
}

func TestHostPlaceholdersExpand(t *testing.T) {
	vars := hostVars(t)
	label, _ := Compile("https://${Sub}.zendesk.com/api/v2", URL, vars)
	name, _ := Compile("https://${Host}/admin", URL, vars)
	ip, _ := Compile("https://${IPHost}/admin", URL, vars)
	vals := func(i int, v string) []string {
		vs := make([]string, vars.Len())
		vs[i] = v
		return vs
	}
	tests := []struct {
		t    *Template
		v    int
		val  string
		want string // "" for an error
		err  string
	}{
		{label, 0, "acme", "https://acme.zendesk.com/api/v2", ""},
		{label, 0, "Acme-2", "https://Acme-2.zendesk.com/api/v2", ""},
		{label, 0, "xn--bcher-kva", "https://xn--bcher-kva.zendesk.com/api/v2", ""},
		{label, 0, "123", "https://123.zendesk.com/api/v2", ""},
		{label, 0, "evil.example/x?", "", "one DNS label"},
		{label, 0, "evil.com#", "", "one DNS label"},
		{label, 0, "a@b", "", "only letters, digits, hyphens and dots"},
		{label, 0, "a:1", "", "only letters, digits, hyphens and dots"},
		{label, 0, "a%2F", "", "only letters, digits, hyphens and dots"},
		{label, 0, "a/b", "", "only letters, digits, hyphens and dots"},
		{label, 0, "-acme", "", "starting or ending with a hyphen"},
		{label, 0, "", "", "is empty"},
		{label, 0, strings.Repeat("a", 64), "", "longer than 63"},
		{name, 1, "acme.myshopify.com", "https://acme.myshopify.com/admin", ""},
		{name, 1, "acme..com", "", "empty label"},
		{name, 1, ".acme.com", "", "empty label"},
		{name, 1, "10.0.0.1", "", "IP address"},
		{name, 1, "[::1]", "", "only letters"},
		{name, 1, "acme.com:8443", "", "only letters"},
		{ip, 2, "10.0.0.1", "https://10.0.0.1/admin", ""},
		{ip, 2, "acme.example.com", "https://acme.example.com/admin", ""},
	}
	for _, tt := range tests {
		got, err := tt.t.Expand(vals(tt.v, tt.val))
		switch {
		case tt.want != "" && (err != nil || got != tt.want):
			t.Errorf("%q: got %q, %v; want %q", tt.val, got, err, tt.want)
		case tt.want == "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%q: got %q, %v; want an error with %q", tt.val, got, err, tt.err)
		}
	}
	// Redacted never lets a bad value change the host.
	if r := label.Redacted(vals(0, "evil.example/x?")); !strings.HasPrefix(r, "https://evil.example%2Fx%3F.zendesk.com/") {
		t.Errorf("Redacted = %s", r)
	}
}
