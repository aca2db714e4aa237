package oauth1_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/oauth1"
	"github.com/connector-engine/connector/internal/oauth1server"
)

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// RFC 5849 3.4.1.1: the example request's signature base string.
func TestBaseStringRFC5849(t *testing.T) {
	u := mustURL(t, "http://example.com/request?b5=%3D%253D&a3=a&c%40=&a2=r%20b")
	params := []oauth1.Param{
		{"oauth_consumer_key", "9djdj82h48djs9d2"},
		{"oauth_token", "kkk9d7dh3k39sjv7"},
		{"oauth_signature_method", "HMAC-SHA1"},
		{"oauth_timestamp", "137131201"},
		{"oauth_nonce", "7d8f3e4a"},
		{"realm", "Example"},           // excluded
		{"oauth_signature", "ignored"}, // excluded
		{"c2", ""}, {"a3", "2 q"},      // the body "c2&a3=2+q"
	}
	want := "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q" +
		"%26a3%3Da%26b5%3D%253D%25253D%26c%2540%3D%26c2%3D%26oauth_consumer_" +
		"key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26oauth_signature_m" +
		"ethod%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk" +
		"9d7dh3k39sjv7"
	if got := oauth1.BaseString("post", u, params); got != want {
		t.Errorf("base string\n got %s\nwant %s", got, want)
	}
}

// RFC 5849 3.4.1.2 base string URIs and 3.6 percent-encoding.
func TestBaseURIAndEncode(t *testing.T) {
	for in, want := range map[string]string{
		"HTTP://EXAMPLE.COM:80/r%20v/X?id=123": "http://example.com/r%20v/X",
		"https://www.example.net:8080/?q=1":    "https://www.example.net:8080/",
		"https://example.net:443":              "https://example.net/",
		"http://[::1]:8080/a":                  "http://[::1]:8080/a",
	} {
		if got := oauth1.BaseURI(mustURL(t, in)); got != want {
			t.Errorf("BaseURI(%s) = %s, want %s", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"abcABC123-._~": "abcABC123-._~",
		"a b+c/d=e&f":   "a%20b%2Bc%2Fd%3De%26f",
		"ünï":           "%C3%BCn%C3%AF",
		"*'()!":         "%2A%27%28%29%21",
		"%":             "%25",
	} {
		if got := oauth1.Encode(in); got != want {
			t.Errorf("Encode(%q) = %s, want %s", in, got, want)
		}
	}
}

func fixed(s *oauth1.Signer, ts int64, nonce string) {
	s.Now = func() time.Time { return time.Unix(ts, 0) }
	s.Nonce = func() string { return nonce }
}

func authParams(t *testing.T, r *http.Request) map[string]string {
	t.Helper()
	ps, err := oauth1.ParseHeader(r.Header.Get("Authorization"))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, p := range ps {
		m[p.Name] = p.Value
	}
	return m
}

// The OAuth Core 1.0 Appendix A.5 example (photos.example.net) and the
// Twitter "creating a signature" example (a form body with reserved
// characters), both with HMAC-SHA1, through Sign.
func TestSignKnownVectors(t *testing.T) {
	t.Run("oauth core 1.0 A.5", func(t *testing.T) {
		s := &oauth1.Signer{ConsumerKey: "dpf43f3p2l4k3l03", ConsumerSecret: "kd94hf93k423kf44"}
		fixed(s, 1191242096, "kllo9940pd9333jh")
		r, _ := http.NewRequest("GET", "http://photos.example.net/photos?file=vacation.jpg&size=original", nil)
		if err := s.Sign(r, oauth1.Token{Token: "nnch734d00sl2jdk", Secret: "pfkkdhi9sl3r4s00"}); err != nil {
			t.Fatal(err)
		}
		if got := authParams(t, r)["oauth_signature"]; got != "tR3+Ty81lMeYAr/Fid0kMTYa/WM=" {
			t.Errorf("signature %s, want tR3+Ty81lMeYAr/Fid0kMTYa/WM=", got)
		}
	})
	t.Run("twitter", func(t *testing.T) {
		s := &oauth1.Signer{ConsumerKey: "xvz1evFS4wEEPTGEFPHBog", ConsumerSecret: "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw"}
		fixed(s, 1318622958, "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg")
		body := "status=Hello%20Ladies%20%2b%20Gentlemen%2c%20a%20signed%20OAuth%20request%21"
		r, _ := http.NewRequest("POST", "https://api.twitter.com/1/statuses/update.json?include_entities=true", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if err := s.Sign(r, oauth1.Token{Token: "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb", Secret: "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE"}); err != nil {
			t.Fatal(err)
		}
		if got := authParams(t, r)["oauth_signature"]; got != "tnnArxj06cWHq44gCs1OSKk/jLY=" {
			t.Errorf("signature %s, want tnnArxj06cWHq44gCs1OSKk/jLY=", got)
		}
		if b, _ := io.ReadAll(r.Body); string(b) != body {
			t.Errorf("the body was consumed: %q", b)
		}
	})
}

// HMAC-SHA256 (NetSuite) and RSA-SHA1 verify with an independent check:
// the standard library's HMAC and RSA verification over the base string.
func TestSignatureMethods(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	parsed, err := oauth1.ParseRSAPrivateKey(pemKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{oauth1.HMACSHA256, oauth1.RSASHA1} {
		s := &oauth1.Signer{ConsumerKey: "ck", ConsumerSecret: "cs&x", Method: m, PrivateKey: parsed, Realm: "1234567_SB1"}
		r, _ := http.NewRequest("GET", "https://1234567-sb1.suitetalk.api.netsuite.com/services/rest/record/v1/customer?limit=5", nil)
		if err := s.Sign(r, oauth1.Token{Token: "tk", Secret: "ts"}); err != nil {
			t.Fatal(err)
		}
		h := r.Header.Get("Authorization")
		if !strings.HasPrefix(h, `OAuth realm="1234567_SB1", oauth_consumer_key="ck"`) {
			t.Errorf("%s header %s", m, h)
		}
		if err := oauth1server.Verify(r, nil, "cs&x", "ts", &key.PublicKey); err != nil {
			t.Errorf("%s: %v", m, err)
		}
	}
	if _, err := oauth1.ParseRSAPrivateKey("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"); err == nil || !strings.Contains(err.Error(), "not a private key") {
		t.Errorf("a certificate read as a key: %v", err)
	}
	if _, err := oauth1.ParseRSAPrivateKey("secret-garbage"); err == nil || strings.Contains(err.Error(), "secret-garbage") {
		t.Errorf("garbage: %v", err)
	}
}

// The signer's printed forms never show its secrets or a token's.
func TestSignerRedacted(t *testing.T) {
	s := &oauth1.Signer{ConsumerKey: "ck", ConsumerSecret: "consumer-SECRET"}
	tok := oauth1.Token{Token: "tk", Secret: "token-SECRET"}
	out := fmt.Sprintf("%v %+v %#v %s %v %+v %#v", s, s, s, s, tok, tok, tok)
	if strings.Contains(out, "SECRET") {
		t.Errorf("a secret printed: %s", out)
	}
}

// FuzzBaseString: any method, URL and parameters give a base string without
// a crash, with exactly two & separators outside the encoded parts, and only
// unreserved characters and %XX escapes in each part.
func FuzzBaseString(f *testing.F) {
	f.Add("POST", "http://example.com/request?b5=%3D%253D&a3=a&c%40=&a2=r%20b", "c2", "", "a3", "2 q")
	f.Add("get", "https://Ex.com:443/ü/%zz?x", "oauth_token", "k&=", "realm", "r")
	f.Fuzz(func(t *testing.T, method, rawURL, k1, v1, k2, v2 string) {
		u, err := url.Parse(rawURL)
		if err != nil {
			return
		}
		base := oauth1.BaseString(method, u, []oauth1.Param{{k1, v1}, {k2, v2}})
		parts := strings.Split(base, "&")
		if len(parts) != 3 {
			t.Fatalf("%d parts in %q", len(parts), base)
		}
		for _, p := range parts {
			for i := 0; i < len(p); i++ {
				c := p[i]
				switch {
				case c == '%':
					if i+2 >= len(p) || !isUpperHex(p[i+1]) || !isUpperHex(p[i+2]) {
						t.Fatalf("bad escape in %q", p)
					}
					i += 2
				case !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'):
					t.Fatalf("unencoded %q in %q", c, p)
				}
			}
		}
		// Signing the same request twice with the same nonce and time is
		// deterministic.
		s := &oauth1.Signer{ConsumerKey: k1, ConsumerSecret: v1}
		fixed(s, 1, "n")
		a, _ := s.Signature(base, v2)
		b, _ := s.Signature(base, v2)
		if a != b {
			t.Fatal("HMAC is not deterministic")
		}
	})
}

func isUpperHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }
