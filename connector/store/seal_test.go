package store

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/token"
)

func newKey(t testing.TB) []byte {
	t.Helper()
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	return key
}

func newSealer(t testing.TB) *Sealer {
	t.Helper()
	s, err := NewSealer(newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNewSealerKeySize(t *testing.T) {
	for _, n := range []int{0, 1, 16, 24, 31, 33, 64} {
		if _, err := NewSealer(make([]byte, n)); err == nil {
			t.Errorf("NewSealer(%d-byte key) succeeded; want an error", n)
		} else if !strings.Contains(err.Error(), "32") {
			t.Errorf("NewSealer(%d-byte key) error %q does not say the key must be 32 bytes", n, err)
		}
	}
	if _, err := NewSealer(make([]byte, 32)); err != nil {
		t.Errorf("NewSealer(32-byte key): %v", err)
	}
}

func TestSealRoundTrip(t *testing.T) {
	s := newSealer(t)
	for _, tc := range []struct {
		name      string
		plain, ad []byte
	}{
		{"empty", nil, nil},
		{"short", []byte("x"), []byte("conn-1")},
		{"no associated data", []byte("refresh-token-value"), nil},
		{"large", bytes.Repeat([]byte("0123456789"), 10000), []byte("conn-2")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sealed, err := s.Seal(tc.plain, tc.ad)
			if err != nil {
				t.Fatal(err)
			}
			if sealed[0] != sealV1 {
				t.Errorf("version byte = %d, want %d", sealed[0], sealV1)
			}
			if want := 1 + 12 + len(tc.plain) + 16; len(sealed) != want {
				t.Errorf("sealed length = %d, want %d (version, nonce, ciphertext, tag)", len(sealed), want)
			}
			// A short plaintext turns up in random bytes by chance; only a long one proves anything.
			if len(tc.plain) >= 8 && bytes.Contains(sealed, tc.plain) {
				t.Error("sealed value contains the plaintext")
			}
			got, err := s.Open(sealed, tc.ad)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.plain) {
				t.Errorf("Open = %q, want %q", got, tc.plain)
			}
		})
	}
}

func TestSealFreshNonce(t *testing.T) {
	s := newSealer(t)
	a, _ := s.Seal([]byte("same"), []byte("ad"))
	b, _ := s.Seal([]byte("same"), []byte("ad"))
	if bytes.Equal(a[1:13], b[1:13]) {
		t.Error("two Seals used the same nonce")
	}
}

func TestOpenRejects(t *testing.T) {
	s := newSealer(t)
	const secret = "super-secret-refresh-token"
	ad := []byte("conn-1")
	sealed, err := s.Seal([]byte(secret), ad)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		c := bytes.Clone(sealed)
		c[i] ^= 0x01
		return c
	}
	for _, tc := range []struct {
		name     string
		sealer   *Sealer
		sealed   []byte
		ad       []byte
		isUnseal bool // wraps ErrUnseal; otherwise it must name the version
	}{
		{"wrong key", newSealer(t), sealed, ad, true},
		{"other associated data", s, sealed, []byte("conn-2"), true},
		{"missing associated data", s, sealed, nil, true},
		{"nonce altered", s, flip(1), ad, true},
		{"ciphertext altered", s, flip(14), ad, true},
		{"tag altered", s, flip(len(sealed) - 1), ad, true},
		{"truncated", s, sealed[:len(sealed)-1], ad, true},
		{"shorter than overhead", s, sealed[:20], ad, true},
		{"version only", s, sealed[:1], ad, true},
		{"empty", s, nil, ad, true},
		{"unknown version", s, append([]byte{2}, sealed[1:]...), ad, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.sealer.Open(tc.sealed, tc.ad)
			if err == nil {
				t.Fatalf("Open succeeded with %q", got)
			}
			if errors.Is(err, ErrUnseal) != tc.isUnseal {
				t.Errorf("errors.Is(%v, ErrUnseal) = %v, want %v", err, !tc.isUnseal, tc.isUnseal)
			}
			if !tc.isUnseal && !strings.Contains(err.Error(), "version 2") {
				t.Errorf("error %q does not name the unknown version", err)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q contains the plaintext", err)
			}
		})
	}
}

func TestSealTokenBindsConnection(t *testing.T) {
	s := newSealer(t)
	tok := token.Token{
		AccessToken:  "access-abc",
		TokenType:    "Bearer",
		RefreshToken: "refresh-xyz",
		Expiry:       time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC),
		Scopes:       []string{"read", "write"},
	}
	sealed, err := s.SealToken("conn-a", Binding{}, tok)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.OpenToken("conn-a", Binding{}, sealed)
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessToken != tok.AccessToken || got.RefreshToken != tok.RefreshToken ||
		!got.Expiry.Equal(tok.Expiry) || strings.Join(got.Scopes, " ") != "read write" {
		t.Errorf("OpenToken = %+v, want %+v", got, tok)
	}
	if _, err := s.OpenToken("conn-b", Binding{}, sealed); !errors.Is(err, ErrUnseal) {
		t.Errorf("OpenToken under another connection's id: err = %v, want ErrUnseal", err)
	}
}

// TestSealTokenBindsBinding: a token sealed for a binding opens only with
// that binding: not with any part changed, not as an unbound record (a
// binding cannot be stripped), and an unbound token not as a bound one.
func TestSealTokenBindsBinding(t *testing.T) {
	s := newSealer(t)
	tok := token.Token{AccessToken: "access-abc", RefreshToken: "refresh-xyz"}
	b := Binding{Tenant: "t1", Definition: "procore", Environment: "sandbox", ClientID: "cid",
		TokenOrigin: "https://login.example", APIOrigin: "https://api.example"}
	sealed, err := s.SealToken("conn-a", b, tok)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.OpenToken("conn-a", b, sealed); err != nil || got.AccessToken != tok.AccessToken {
		t.Fatalf("OpenToken with the same binding = %v, %v", got, err)
	}
	for _, o := range []Binding{
		{}, // stripped
		{Tenant: "t2", Definition: b.Definition, Environment: b.Environment, ClientID: b.ClientID, TokenOrigin: b.TokenOrigin, APIOrigin: b.APIOrigin},
		{Tenant: b.Tenant, Definition: "other", Environment: b.Environment, ClientID: b.ClientID, TokenOrigin: b.TokenOrigin, APIOrigin: b.APIOrigin},
		{Tenant: b.Tenant, Definition: b.Definition, Environment: "prod", ClientID: b.ClientID, TokenOrigin: b.TokenOrigin, APIOrigin: b.APIOrigin},
		{Tenant: b.Tenant, Definition: b.Definition, Environment: b.Environment, ClientID: "evil", TokenOrigin: b.TokenOrigin, APIOrigin: b.APIOrigin},
		{Tenant: b.Tenant, Definition: b.Definition, Environment: b.Environment, ClientID: b.ClientID, TokenOrigin: "https://evil.example", APIOrigin: b.APIOrigin},
		{Tenant: b.Tenant, Definition: b.Definition, Environment: b.Environment, ClientID: b.ClientID, TokenOrigin: b.TokenOrigin, APIOrigin: "https://evil.example"},
		// parts shifted between fields
		{Tenant: b.Tenant + "procore", Environment: b.Environment, ClientID: b.ClientID, TokenOrigin: b.TokenOrigin, APIOrigin: b.APIOrigin},
	} {
		if _, err := s.OpenToken("conn-a", o, sealed); !errors.Is(err, ErrUnseal) {
			t.Errorf("OpenToken with %v: err = %v, want ErrUnseal", o, err)
		}
	}
	unbound, _ := s.SealToken("conn-a", Binding{}, tok)
	if _, err := s.OpenToken("conn-a", b, unbound); !errors.Is(err, ErrUnseal) {
		t.Errorf("an unbound token opened as bound: err = %v, want ErrUnseal", err)
	}
}

func TestBindingDiff(t *testing.T) {
	a := Binding{Tenant: "t", Definition: "d", Environment: "e", ClientID: "c", TokenOrigin: "https://l", APIOrigin: "https://a"}
	for _, c := range []struct {
		change func(*Binding)
		want   string
	}{
		{func(*Binding) {}, ""},
		{func(b *Binding) { b.Tenant = "u" }, "tenant"},
		{func(b *Binding) { b.Definition = "x" }, "definition"},
		{func(b *Binding) { b.Environment = "x" }, "environment"},
		{func(b *Binding) { b.ClientID = "x" }, "client id"},
		{func(b *Binding) { b.TokenOrigin = "x" }, "token endpoint origin"},
		{func(b *Binding) { b.APIOrigin = "x" }, "API origin"},
		{func(b *Binding) { b.ClientID, b.APIOrigin = "x", "y" }, "client id,API origin"},
	} {
		b := a
		c.change(&b)
		if got := strings.Join(a.Diff(b), ","); got != c.want {
			t.Errorf("Diff = %q, want %q", got, c.want)
		}
		if a.Equal(b) != (c.want == "") {
			t.Errorf("Equal = %v for a diff of %q", a.Equal(b), c.want)
		}
	}
	if !(Binding{}).IsZero() || a.IsZero() {
		t.Error("IsZero")
	}
}

func TestSealerPrintsNoKey(t *testing.T) {
	s := newSealer(t)
	s.source = "key file /tmp/k"
	want := "store.Sealer(AES-256-GCM, key from key file /tmp/k)"
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x"} {
		for _, v := range []any{s, *s} {
			if got := fmt.Sprintf(verb, v); got != want {
				t.Errorf("Sprintf(%s, %T) = %q, want %q", verb, v, got, want)
			}
		}
	}
	if got := fmt.Sprintf("%q", s); got != fmt.Sprintf("%q", want) {
		t.Errorf("Sprintf(%%q) = %s", got)
	}
}

func BenchmarkSealToken(b *testing.B) {
	s := newSealer(b)
	tok := token.Token{AccessToken: strings.Repeat("a", 64), RefreshToken: strings.Repeat("r", 64), Expiry: time.Now()}
	for b.Loop() {
		if _, err := s.SealToken("conn", Binding{}, tok); err != nil {
			b.Fatal(err)
		}
	}
}
