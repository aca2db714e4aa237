package token

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestRefreshMargin(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name string
		tok  *Token
		max  time.Duration
		want time.Duration
	}{
		{"nil token", nil, 2 * time.Minute, 2 * time.Minute},
		{"no expiry", &Token{Obtained: now}, 2 * time.Minute, 2 * time.Minute},
		{"lifetime unknown (stored before Obtained)", &Token{Expiry: now.Add(2 * time.Second)}, 2 * time.Minute, 2 * time.Minute},
		{"2s token: a tenth", &Token{Obtained: now, Expiry: now.Add(2 * time.Second)}, 2 * time.Minute, 200 * time.Millisecond},
		{"90s token: a tenth", &Token{Obtained: now, Expiry: now.Add(90 * time.Second)}, 2 * time.Minute, 9 * time.Second},
		{"1h token: the cap", &Token{Obtained: now, Expiry: now.Add(time.Hour)}, 2 * time.Minute, 2 * time.Minute},
		{"20min token: exactly the cap", &Token{Obtained: now, Expiry: now.Add(20 * time.Minute)}, 2 * time.Minute, 2 * time.Minute},
		{"definition cap below a tenth", &Token{Obtained: now, Expiry: now.Add(time.Hour)}, 30 * time.Second, 30 * time.Second},
		{"expiry before obtained", &Token{Obtained: now, Expiry: now.Add(-time.Second)}, 2 * time.Minute, 0},
	} {
		if got := c.tok.RefreshMargin(c.max); got != c.want {
			t.Errorf("%s: RefreshMargin(%s) = %s, want %s", c.name, c.max, got, c.want)
		}
	}
}

// A token renewed on the margin is valid until a tenth of its life is left.
func TestValidWithLifetimeMargin(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	tok := &Token{AccessToken: "a", Obtained: now, Expiry: now.Add(2 * time.Second)}
	if !tok.Valid(now.Add(1700*time.Millisecond), tok.RefreshMargin(2*time.Minute)) {
		t.Error("a 2s token with 300ms left is renewed under a 2 minute cap; want it spent until 200ms are left")
	}
	if tok.Valid(now.Add(1900*time.Millisecond), tok.RefreshMargin(2*time.Minute)) {
		t.Error("a 2s token with 100ms left is still spent; want it renewed")
	}
}

// The DPoP key is as secret as the tokens: no verb prints it (a Token in
// a slice or a struct is printed through Format too).
func TestDPoPKeyNeverPrinted(t *testing.T) {
	tok := Token{AccessToken: "at-secret", RefreshToken: "rt-secret", TokenType: "DPoP",
		DPoPKey: "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n"}
	for _, s := range []string{fmt.Sprint(tok), fmt.Sprintf("%+v", tok), fmt.Sprintf("%#v", tok), fmt.Sprintf("%s", &tok), fmt.Sprintf("%q", tok), fmt.Sprintf("%v", []Token{tok}), fmt.Sprintf("%+v", struct{ T Token }{tok})} {
		if strings.Contains(s, "PRIVATE") || strings.Contains(s, "MIGHAgEA") || strings.Contains(s, "secret") {
			t.Errorf("the token prints as %q", s)
		}
		if !strings.Contains(s, "dpop-key=***") || !strings.Contains(s, "type=DPoP") {
			t.Errorf("%q does not say the token is DPoP-bound", s)
		}
	}
}
