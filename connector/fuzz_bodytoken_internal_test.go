package connector

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"
)

// FuzzPlaceBodyToken: whatever the body, placeBodyToken either refuses it
// or yields a body of the same media type whose field carries the token
// exactly once, with the body's other JSON members or form fields kept.
func FuzzPlaceBodyToken(f *testing.F) {
	f.Add("application/json", `{"jsonrpc":"2.0","method":"host.get","id":2}`, "auth")
	f.Add("application/json", `{"auth":"old","n":1e400}`, "auth")
	f.Add("application/x-www-form-urlencoded", "channel=C1&text=a+b&token=old", "token")
	f.Add("", "", "token")
	f.Add("application/json", "[1]", "auth")
	f.Add("text/plain", "x", "token")
	f.Fuzz(func(t *testing.T, ct, body, name string) {
		const tok = "TOKEN-\"&=%"
		r, err := http.NewRequest(http.MethodPost, "http://127.0.0.1/x", bytes.NewReader([]byte(body)))
		if err != nil {
			return
		}
		if ct != "" {
			r.Header.Set("Content-Type", ct)
		}
		if err := placeBodyToken(r, name, tok); err != nil {
			return
		}
		got, _ := io.ReadAll(r.Body)
		if int64(len(got)) != r.ContentLength {
			t.Fatalf("Content-Length %d for a %d-byte body", r.ContentLength, len(got))
		}
		if again, _ := r.GetBody(); again != nil {
			if b, _ := io.ReadAll(again); !bytes.Equal(b, got) {
				t.Fatal("GetBody gives another body")
			}
		}
		switch r.Header.Get("Content-Type") {
		case "application/x-www-form-urlencoded":
			form, err := url.ParseQuery(string(got))
			if err != nil || len(form[name]) != 1 || form.Get(name) != tok {
				t.Fatalf("form %q: field %q = %v, err %v", got, name, form[name], err)
			}
			orig, _ := url.ParseQuery(body)
			for k, vs := range orig {
				if k != name && len(form[k]) != len(vs) {
					t.Fatalf("form field %q lost: %q -> %q", k, body, got)
				}
			}
		default:
			var obj, orig map[string]json.RawMessage
			if err := json.Unmarshal(got, &obj); err != nil {
				t.Fatalf("JSON body %q no longer an object: %v", got, err)
			}
			var v string
			if json.Unmarshal(obj[name], &v) != nil || v != tok {
				t.Fatalf("member %q = %s", name, obj[name])
			}
			if json.Unmarshal([]byte(body), &orig) == nil {
				for k := range orig {
					if _, ok := obj[k]; !ok {
						t.Fatalf("member %q lost: %q -> %q", k, body, got)
					}
				}
			}
		}
	})
}
