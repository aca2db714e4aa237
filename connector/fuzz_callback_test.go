package connector

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/definitions"
)

// FuzzCheckCallback feeds arbitrary callback queries to the flow's callback
// validation, as the loopback listener and the server hand them over
// ("{state}" stands for the attempt's real state, so the fuzzer gets past
// it): nothing panics, a code comes back only for the attempt's state, the
// expected issuer, no error and a code, a wrong state is always
// ErrStateMismatch, and an attempt is never accepted twice.
func FuzzCheckCallback(f *testing.F) {
	for _, q := range []string{
		"state={state}&code=abc&iss=https%3A%2F%2Fissuer.test",
		"state={state}&error=access_denied&error_description=no&iss=https%3A%2F%2Fissuer.test",
		"state={state}&code=abc",
		"state={state}x&code=abc&iss=https%3A%2F%2Fissuer.test",
		"state=&code=abc",
		"code=abc&state={state}&state=other&iss=https%3A%2F%2Fissuer.test",
		"state={state}&code=&iss=https%3A%2F%2Fissuer.test",
		"state=%zz&code=abc",
		"state={state};code=abc",
		"",
	} {
		f.Add(q, false)
		f.Add(q, true)
	}
	set, err := definitions.Parse(nil, definitions.File{Path: "t.yaml", Data: []byte("name: t\ntitle: T\nbase_url: https://auth.test\nauth:\n  scheme: oauth\n  oauth:\n    version: V2\n    issuer: https://issuer.test\n    initiate_uri: ${BaseUrl}/authorize\n    token_request_uri: ${BaseUrl}/token\n")})
	if err != nil {
		f.Fatal(err)
	}
	d, _ := set.Get("t")
	fl, err := NewFlow(&Connection{Definition: d, ClientID: "id", ClientSecret: "the-client-secret", RedirectURI: "http://127.0.0.1:1/cb"})
	if err != nil {
		f.Fatal(err)
	}
	now := time.Now()
	fl.Now = func() time.Time { return now }
	f.Fuzz(func(t *testing.T, raw string, late bool) {
		a, err := fl.AuthCodeURL()
		if err != nil {
			t.Fatal(err)
		}
		q, _ := url.ParseQuery(strings.ReplaceAll(raw, "{state}", a.State)) // the listener ignores a malformed pair as well
		check := fl
		if late {
			c := *fl
			c.Now = func() time.Time { return now.Add(fl.AttemptLifetime + time.Second) }
			check = &c
		}
		code, err := check.CheckCallback(a, q)
		stateOK := q.Get("state") == a.State
		if !stateOK || late {
			if !errors.Is(err, ErrStateMismatch) {
				t.Fatalf("state %q (want %q, late %v): got %q, %v; want ErrStateMismatch", q.Get("state"), a.State, late, code, err)
			}
		}
		if err == nil {
			if !stateOK || q.Get("iss") != "https://issuer.test" || q.Get("error") != "" || code == "" || code != q.Get("code") {
				t.Fatalf("accepted %q: code %q", q.Encode(), code)
			}
		} else {
			if code != "" {
				t.Fatalf("a code with an error: %q, %v", code, err)
			}
			c := q.Get("code")
			if len(c) >= 4 && strings.Contains(err.Error(), c) && !strings.Contains(q.Get("iss")+q.Get("error")+q.Get("error_description"), c) {
				t.Fatalf("the error shows the code %q: %v", c, err)
			}
		}
		if _, err := check.CheckCallback(a, q); !errors.Is(err, ErrStateMismatch) {
			t.Fatalf("the attempt was accepted twice: %v", err)
		}
	})
}
