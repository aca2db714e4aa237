package definitions_test

import (
	"fmt"
	"strings"
	"testing"
)

// TestDPoPRules: auth.oauth.dpop, one row per rule (minimal's oauth
// section ends at line 9, so an added line is line 10).
func TestDPoPRules(t *testing.T) {
	clientCreds := strings.Replace(strings.Replace(minimal, "scheme: oauth", "scheme: oauth_client", 1), "    initiate_uri: https://auth.acme.test/authorize\n", "", 1)
	rows := []struct {
		name, src, severity, pos, field, contains string
		algorithm                                 string // when valid: the algorithm read
	}{
		{"empty mapping is ES256", minimal + "    dpop: {}\n", "", "", "", "", "ES256"},
		{"algorithm", minimal + "    dpop: {algorithm: PS256}\n", "", "", "", "", "PS256"},
		{"client credentials", clientCreds + "    dpop: {algorithm: ES384}\n", "", "", "", "", "ES384"},
		{"device grant", strings.Replace(minimal, "    initiate_uri: https://auth.acme.test/authorize\n", "    grant_type: device_code\n    device_authorization_uri: https://auth.acme.test/device\n", 1) + "    dpop: {}\n", "", "", "", "", "ES256"},
		{"public client", strings.Replace(minimal, "    version: V2\n", "    version: V2\n    client: public\n", 1) + "    dpop: {}\n", "", "", "", "", "ES256"},
		{"send_token naming Authorization is fine", minimal + "    dpop: {}\n    send_token: {in: header, name: authorization}\n", "", "", "", "", "ES256"},
		{"true is not the shape", minimal + "    dpop: true\n", "error", "10:11", "auth.oauth.dpop", "dpop: {} turns DPoP on", ""},
		{"empty is not on", minimal + "    dpop:\n", "error", "10:10", "auth.oauth.dpop", "must be a mapping, not empty", ""},
		{"symmetric algorithm", minimal + "    dpop: {algorithm: HS256}\n", "error", "10:23", "auth.oauth.dpop.algorithm", `must be one of "ES256"`, ""},
		{"none", minimal + "    dpop: {algorithm: none}\n", "error", "10:23", "auth.oauth.dpop.algorithm", `must be one of "ES256"`, ""},
		{"unknown key", minimal + "    dpop: {algoritm: ES256}\n", "error", "10:12", "auth.oauth.dpop.algoritm", `did you mean "algorithm"?`, ""},
		{"token in the query", minimal + "    dpop: {}\n    send_token: {in: query, name: access_token}\n", "error", "11:22", "auth.oauth.send_token.in", "not in the query", ""},
		{"token in the body", minimal + "    dpop: {}\n    send_token: {in: body, name: auth}\n", "error", "11:22", "auth.oauth.send_token.in", "not in the body", ""},
		{"token in another header", minimal + "    dpop: {}\n    send_token: {name: X-Token}\n", "error", "11:24", "auth.oauth.send_token.name", "not in X-Token", ""},
		{"fixed prefix", minimal + "    dpop: {}\n    send_token: {prefix: 'DPoP '}\n", "error", "11:26", "auth.oauth.send_token.prefix", "so remove prefix", ""},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			set, diags := parse(t, file("x.yaml", r.src))
			if r.severity == "" {
				for _, d := range diags {
					t.Errorf("unexpected: %s", d)
				}
				if set == nil {
					return
				}
				d, _ := set.Get("acme")
				if o := d.Auth.OAuth; o.DPoP == nil || o.DPoP.Algorithm != r.algorithm {
					t.Errorf("DPoP %+v, want algorithm %s", o.DPoP, r.algorithm)
				}
				return
			}
			for _, d := range diags {
				if d.Severity == "error" && d.Field == r.field && strings.Contains(d.Message, r.contains) {
					if got := fmt.Sprintf("%d:%d", d.Line, d.Column); got != r.pos {
						t.Errorf("position %s, want %s: %s", got, r.pos, d)
					}
					return
				}
			}
			t.Errorf("no %s at %s containing %q; got:\n%s", r.severity, r.field, r.contains, joinDiags(diags))
		})
	}
	// Without the key there is no DPoP.
	set, _ := parse(t, file("x.yaml", minimal))
	if d, _ := set.Get("acme"); d.Auth.OAuth.DPoP != nil {
		t.Errorf("DPoP %+v without the key", d.Auth.OAuth.DPoP)
	}
}
