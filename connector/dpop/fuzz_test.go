package dpop_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/connector-engine/connector/connector/dpop"
)

// FuzzNonces feeds servers' WWW-Authenticate and DPoP-Nonce values, which
// are outside input, to the parsers: no panic; a challenge is recognised
// only when a DPoP scheme names use_dpop_nonce; a nonce is kept only when
// it is NQCHAR (8.1) within MaxNonce, so it can never inject a header or
// break the proof's JSON.
func FuzzNonces(f *testing.F) {
	for _, s := range []string{`DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof"`, `Bearer realm="x", DPoP algs="ES256"`, `dpop error=use_dpop_nonce`, `DPoP error="invalid_token"`, "", "eyJ7S_zG.eyJH0-Z.HX4w-7v", "a\r\nb"} {
		f.Add(s)
	}
	u, _ := url.Parse("https://as.example/token")
	f.Fuzz(func(t *testing.T, s string) {
		if dpop.UseNonceChallenge([]string{s}) {
			if !strings.Contains(s, "use_dpop_nonce") || !strings.HasPrefix(strings.ToLower(strings.TrimSpace(s)), "dpop") {
				t.Errorf("%q taken for a nonce challenge", s)
			}
		}
		var n dpop.Nonces
		if n.Remember(u, s) {
			if len(s) == 0 || len(s) > dpop.MaxNonce || strings.ContainsAny(s, " \t\r\n\"\\") || n.Get(u) != s {
				t.Errorf("nonce %q kept", s)
			}
			for _, c := range []byte(s) {
				if c < 0x21 || c > 0x7e {
					t.Fatalf("nonce %q with byte %#x kept", s, c)
				}
			}
		}
	})
}
