package connector

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/connector-engine/connector/definitions"
)

// TestTokenErrorsHideSecrets: whatever shape a token endpoint's error takes,
// and whichever field of it echoes the request (error as well as
// error_description: {"error":"invalid_client: <secret>"} used to print the
// secret), no secret the request carried reaches the error.
func TestTokenErrorsHideSecrets(t *testing.T) {
	const (
		clientSecret = "cs-Xk7vQ2pL9w"
		refresh      = "rt-Xk7vQ2pL9w"
		code         = "code-Xk7vQ2pL9w"
		verifier     = "verifier-Xk7vQ2pL9w-0123456789012345678901234"
		revoked      = "tok-Xk7vQ2pL9w"
	)
	secrets := []string{clientSecret, refresh, code, verifier, revoked}
	shapes := map[string]func(w http.ResponseWriter, echo string){
		"error string": func(w http.ResponseWriter, echo string) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(400)
			fmt.Fprintf(w, `{"error":%q,"error_description":%q}`, "invalid_client: "+echo, echo)
		},
		"error object": func(w http.ResponseWriter, echo string) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(401)
			fmt.Fprintf(w, `{"error":{"code":%q,"message":%q}}`, echo, echo)
		},
		"form encoded": func(w http.ResponseWriter, echo string) {
			w.Header().Set("Content-Type", "application/x-www-form-urlencoded")
			w.WriteHeader(400)
			fmt.Fprint(w, url.Values{"error": {echo}, "error_description": {echo}}.Encode())
		},
		"error with 200": func(w http.ResponseWriter, echo string) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"error":%q,"error_description":%q}`, echo, echo)
		},
		"error object with 200": func(w http.ResponseWriter, echo string) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"error":{"code":%q,"message":%q}}`, echo, echo)
		},
		"form encoded with 200": func(w http.ResponseWriter, echo string) {
			w.Header().Set("Content-Type", "application/x-www-form-urlencoded")
			fmt.Fprint(w, url.Values{"error": {echo}, "error_description": {echo}}.Encode())
		},
	}
	for name, shape := range shapes {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_ = r.ParseForm()
				var echo []string
				for _, k := range []string{"client_secret", "refresh_token", "code", "code_verifier", "token"} {
					if v := r.PostForm.Get(k); v != "" {
						echo = append(echo, k+"="+v, url.QueryEscape(v))
					}
				}
				if u, p, ok := r.BasicAuth(); ok {
					echo = append(echo, u+":"+p)
				}
				shape(w, strings.Join(echo, " "))
			}))
			defer srv.Close()
			set, err := definitions.Parse(nil, definitions.File{Path: "t.yaml", Data: []byte(`name: t
title: T
base_url: ` + srv.URL + `
auth:
  scheme: oauth
  oauth:
    version: V2
    initiate_uri: ${BaseUrl}/authorize
    token_request_uri: ${BaseUrl}/token
    revoke_uri: ${BaseUrl}/revoke
    introspection_uri: ${BaseUrl}/introspect
`)})
			if err != nil {
				t.Fatal(err)
			}
			d, _ := set.Get("t")
			f, err := NewFlow(&Connection{Definition: d, ClientID: "id", ClientSecret: clientSecret, RedirectURI: "http://127.0.0.1:1/cb"})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			calls := map[string]func() error{
				"refresh":            func() error { _, err := f.Refresh(ctx, refresh); return err },
				"code exchange":      func() error { _, err := f.ExchangeCode(ctx, code, verifier); return err },
				"client credentials": func() error { _, err := f.ClientCredentials(ctx); return err },
				"revoke":             func() error { return f.Revoke(ctx, revoked, "refresh_token") },
				"introspect":         func() error { _, err := f.Introspect(ctx, revoked, "refresh_token"); return err },
			}
			for op, call := range calls {
				err := call()
				if err == nil {
					if name == "error with 200" || name == "error object with 200" || name == "form encoded with 200" {
						if op == "revoke" || op == "introspect" {
							continue // a 2xx revocation succeeded; an introspection without "active" is refused below
						}
					}
					t.Errorf("%s: no error", op)
					continue
				}
				for _, s := range secrets {
					if strings.Contains(err.Error(), s) || strings.Contains(err.Error(), url.QueryEscape(s)) {
						t.Errorf("%s: the error shows %s: %v", op, s, err)
					}
					if strings.Contains(fmt.Sprintf("%+v %#v", err, err), s) {
						t.Errorf("%s: %%+v or %%#v of the error shows %s", op, s)
					}
				}
			}
		})
	}
}

// TestSecretURLFieldHidden: a secret field of type url that fails its check
// is refused without its value, from a connection string and a file alike.
func TestSecretURLFieldHidden(t *testing.T) {
	defs, err := definitions.Parse(definitions.Builtin(), definitions.File{Path: "hook.yaml", Data: []byte("name: hook\nextends: procore\nfields:\n  HookUrl: {type: url, secret: true}\n")})
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range []string{psMarker + "/x", "http://" + psMarker + ".example.com/", psMarker + "://h/", "https://h:" + psMarker + "/", "https://u:" + psMarker + "@h/"} {
		_, _, err := ParseConnectionString(psBase[len("Definition=procore"):]+";Definition=hook;HookUrl="+v, defs)
		psAssertNoSecret(t, fmt.Sprintf("connection string #%d", i), err)
		if err != nil && !strings.Contains(err.Error(), "field HookUrl: (secret)") {
			t.Errorf("#%d: the error does not name the field: %v", i, err)
		}
		dir := t.TempDir()
		path := psWriteFile(t, dir, "conn.yaml", "definition: hook\nclient_id: cid\nclient_secret: s\nredirect_uri: "+psCallback+"\nfields: {HookUrl: '"+v+"'}\n", 0o600)
		_, _, err = LoadConnectionFile(path, defs)
		psAssertNoSecret(t, fmt.Sprintf("connection file #%d", i), err)
	}
}
