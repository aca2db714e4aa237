package definitions_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/connector-engine/connector/definitions"
)

// FuzzHostFields: a value the host_label and hostname checks accept forms
// exactly the host it names, under the literal suffix, with no user info,
// port, path or query smuggled in; anything else is refused.
func FuzzHostFields(f *testing.F) {
	for _, s := range []string{"acme", "Bücher", "xn--bcher-kva", "evil.example/x?", "a@b", "a:1", "a%2e", "..", "a..b", "10.0.0.1",
		"acme.okta.com", "-a", "a-", strings.Repeat("a", 64), "acme.", "[::1]", "a b", "a\x00"} {
		f.Add(s)
	}
	src := `name: fzh
title: fuzz hosts
base_url: https://${Sub}.zendesk.com/api/v2
environments:
  production:
    login_url: https://${Host}/oauth
fields:
  Sub: {type: host_label}
  Host: {type: hostname, allow_ip: true}
auth: {scheme: none}
`
	set, err := definitions.Parse(nil, definitions.File{Path: "fzh.yaml", Data: []byte(src)})
	if err != nil {
		f.Fatal(err)
	}
	d, _ := set.Get("fzh")
	f.Fuzz(func(t *testing.T, v string) {
		vals, err := d.Values("", map[string]string{"Sub": v, "Host": v})
		if err != nil {
			return
		}
		for _, c := range []struct{ raw, suffix string }{{vals[definitions.VarBaseURL], ".zendesk.com"}, {vals[definitions.VarLoginURL], ""}} {
			u, err := url.Parse(c.raw)
			if err != nil {
				t.Fatalf("%q gave %q, which does not parse: %v", v, c.raw, err)
			}
			host := definitions.HostASCII(v)
			if u.User != nil || u.Port() != "" || u.RawQuery != "" || u.Fragment != "" || !strings.EqualFold(u.Hostname(), host+c.suffix) {
				t.Fatalf("%q gave %q: host %q, want %q", v, c.raw, u.Hostname(), host+c.suffix)
			}
		}
	})
}
