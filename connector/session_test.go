package connector_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/definitions"
)

// loginServer is a loopback provider with a two-step session login in the
// style of Tableau's REST API: POST credentials as JSON, get a token, send
// it in a header; sessions end when the server says so (revoke) or expire.
type loginServer struct {
	*httptest.Server
	logins   atomic.Int64
	mu       sync.Mutex
	valid    map[string]bool
	secret   string // the credential the login must carry
	lastBody string
	// form: the login is a form post and the token comes back in a header.
	form bool
}

func newLoginServer(t *testing.T, secret string, form bool) *loginServer {
	s := &loginServer{valid: map[string]bool{}, secret: secret, form: form}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/auth/signin", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		s.mu.Lock()
		s.lastBody = string(body)
		s.mu.Unlock()
		var got string
		if s.form {
			if r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" || r.Header.Get("X-Api-Key") != "key-123" {
				http.Error(w, "bad request shape", http.StatusBadRequest)
				return
			}
			form, _ := url.ParseQuery(string(body))
			got = form.Get("password")
		} else {
			var req struct {
				Credentials struct {
					Name   string `json:"personalAccessTokenName"`
					Secret string `json:"personalAccessTokenSecret"`
					Site   struct {
						ContentURL string `json:"contentUrl"`
					} `json:"site"`
				} `json:"credentials"`
			}
			if r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &req) != nil ||
				req.Credentials.Name != "engine" || req.Credentials.Site.ContentURL != "acme" {
				http.Error(w, "bad request shape: "+string(body), http.StatusBadRequest)
				return
			}
			got = req.Credentials.Secret
		}
		if got != s.secret {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			// Providers echo what they were sent; the engine must not repeat it.
			fmt.Fprintf(w, `{"error":{"summary":"Signin Error","detail":"Error signing in with secret %s"}}`, got)
			return
		}
		n := s.logins.Add(1)
		tok := fmt.Sprintf("sess-%d", n)
		s.mu.Lock()
		s.valid[tok] = true
		s.mu.Unlock()
		if s.form {
			w.Header().Set("X-Session-Id", tok)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"credentials":{"token":%q,"site":{"id":"9a8b","contentUrl":"acme"},"expires_in":"3600"}}`, tok)
	})
	mux.HandleFunc("GET /api/me", func(w http.ResponseWriter, r *http.Request) {
		tok := r.Header.Get("X-Tableau-Auth")
		s.mu.Lock()
		ok := s.valid[tok]
		s.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, `{"token":%q}`, tok)
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// revoke ends every session at the server, as an idle timeout or a
// sign-out elsewhere does.
func (s *loginServer) revoke() {
	s.mu.Lock()
	clear(s.valid)
	s.mu.Unlock()
}

func sessionDefinition(t *testing.T, base, auth string) *definitions.Definition {
	t.Helper()
	src := `name: session-test
title: session test server
base_url: ` + base + `/api
fields:
  TokenName: {required: true}
  TokenSecret: {required: true, secret: true}
  Site: {required: true}
auth:
  scheme: session
  session:
` + auth
	set, err := definitions.Parse(nil, definitions.File{Path: "session.yaml", Data: []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := set.Get("session-test")
	return d
}

const tableauStyle = `    login_uri: ${BaseUrl}/auth/signin
    body:
      credentials:
        personalAccessTokenName: ${TokenName}
        personalAccessTokenSecret: ${TokenSecret}
        site: {contentUrl: "${Site}"}
    token_path: credentials.token
    expires_in_path: credentials.expires_in
    send_token: {name: X-Tableau-Auth}
`

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// callAll makes n concurrent calls and fails the test unless every one
// succeeds.
func callAll(t *testing.T, apis []*connector.API, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			api := apis[i%len(apis)]
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "/me", nil)
			resp, err := api.Client().Do(req)
			if err != nil {
				errs <- err
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				errs <- fmt.Errorf("status %d", resp.StatusCode)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// Concurrent callers, in one process or several sharing a store, log in
// once per session: at first, after the server ends the session (401), and
// after the token's lifetime has passed.
func TestSessionLoginOncePerSession(t *testing.T) {
	const secret = "pat-s3cr3t-VALUE"
	srv := newLoginServer(t, secret, false)
	def := sessionDefinition(t, srv.URL, tableauStyle)
	conn := &connector.Connection{Definition: def, Fields: map[string]string{"TokenName": "engine", "TokenSecret": secret, "Site": "acme"}}
	st := store.NewMemory()
	clock := &fakeClock{now: time.Now()}
	var apis []*connector.API
	for range 2 { // two workers ("processes") sharing one store
		src, err := connector.NewSource(conn, st)
		if err != nil {
			t.Fatal(err)
		}
		src.Now, src.Session().Now = clock.Now, clock.Now
		api, err := connector.NewAPI(conn, st, &connector.APIOptions{Source: src})
		if err != nil {
			t.Fatal(err)
		}
		apis = append(apis, api)
	}

	callAll(t, apis, 16)
	if n := srv.logins.Load(); n != 1 {
		t.Fatalf("first calls: %d logins, want 1", n)
	}
	srv.mu.Lock()
	wantBody := `{"credentials":{"personalAccessTokenName":"engine","personalAccessTokenSecret":"pat-s3cr3t-VALUE","site":{"contentUrl":"acme"}}}`
	if srv.lastBody != wantBody {
		t.Errorf("login body\n got %s\nwant %s", srv.lastBody, wantBody)
	}
	srv.mu.Unlock()

	srv.revoke()
	callAll(t, apis, 16)
	if n := srv.logins.Load(); n != 2 {
		t.Fatalf("after the server ended the session: %d logins, want 2", n)
	}

	clock.Add(time.Hour) // the token's expires_in
	callAll(t, apis, 16)
	if n := srv.logins.Load(); n != 3 {
		t.Fatalf("after expiry: %d logins, want 3", n)
	}
	rec, err := st.Get(context.Background(), conn.Key())
	if err != nil || rec.Token.AccessToken != "sess-3" {
		t.Fatalf("stored token %v, %v; want sess-3", rec.Token, err)
	}
}

// A form login with the token in a response header, and an API key header.
func TestSessionLoginFormAndHeader(t *testing.T) {
	const secret = "form-secret-42"
	srv := newLoginServer(t, secret, true)
	def := sessionDefinition(t, srv.URL, `    login_uri: ${BaseUrl}/auth/signin
    encoding: form
    headers: {X-Api-Key: key-123}
    body: {username: "${TokenName}", password: "${TokenSecret}", remember: false}
    token_header: X-Session-Id
    default_expires_in: 10m
    send_token: {name: X-Tableau-Auth, prefix: ""}
`)
	conn := &connector.Connection{Definition: def, Fields: map[string]string{"TokenName": "engine", "TokenSecret": secret, "Site": "acme"}}
	api, err := connector.NewAPI(conn, store.NewMemory(), nil)
	if err != nil {
		t.Fatal(err)
	}
	callAll(t, []*connector.API{api}, 4)
	if n := srv.logins.Load(); n != 1 {
		t.Fatalf("%d logins, want 1", n)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if want := "password=form-secret-42&remember=false&username=engine"; srv.lastBody != want {
		t.Errorf("form body %q, want %q", srv.lastBody, want)
	}
}

// Refused credentials give an error naming the status and what to check,
// and no secret appears in it, in the API's error or in any %v output.
func TestSessionLoginErrorsKeepSecrets(t *testing.T) {
	const secret = "right-secret-1"
	srv := newLoginServer(t, secret, false)
	def := sessionDefinition(t, srv.URL, tableauStyle)
	const wrong = "wrong-secret-XYZ"
	conn := &connector.Connection{Definition: def, Fields: map[string]string{"TokenName": "engine", "TokenSecret": wrong, "Site": "acme"}}
	src, err := connector.NewSource(conn, store.NewMemory())
	if err != nil {
		t.Fatal(err)
	}
	_, lerr := src.Session().Login(context.Background())
	if lerr == nil {
		t.Fatal("a wrong secret logged in")
	}
	want := "connection " + conn.Key() + ": the session login failed (HTTP 401): Error signing in with secret ***; check the credentials in the connection's fields"
	if lerr.Error() != want {
		t.Errorf("error\n got %s\nwant %s", lerr, want)
	}
	api, err := connector.NewAPI(conn, store.NewMemory(), &connector.APIOptions{Source: src})
	if err != nil {
		t.Fatal(err)
	}
	_, aerr := api.Client().Get("/me")
	if aerr == nil {
		t.Fatal("the call succeeded without a session")
	}
	for _, s := range []string{lerr.Error(), aerr.Error(), fmt.Sprintf("%v %+v %#v %s", src, src, src, src),
		fmt.Sprintf("%v %+v %#v", src.Session(), src.Session(), src.Session()), fmt.Sprint(conn), fmt.Sprintf("%#v", conn)} {
		if strings.Contains(s, wrong) || strings.Contains(s, secret) {
			t.Errorf("a secret leaked: %s", s)
		}
	}

	// A good login's token never prints either.
	conn.Fields["TokenSecret"] = secret
	src, err = connector.NewSource(conn, store.NewMemory())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := src.TokenContext(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s := fmt.Sprintf("%v %+v %#v %s", tok, tok, tok, tok); strings.Contains(s, tok.AccessToken) {
		t.Errorf("the session token printed: %s", s)
	}
}

// examples/tableau.yaml signs in as Tableau's documentation shows (the JSON
// sign-in body, X-Tableau-Auth on calls), here against the loopback server.
func TestTableauExampleSignsIn(t *testing.T) {
	const secret = "tableau-pat-secret"
	srv := newLoginServer(t, secret, false)
	set, err := definitions.Load("../examples/tableau.yaml")
	if err != nil {
		t.Fatal(err)
	}
	def, _ := set.Get("tableau")
	conn := &connector.Connection{Definition: def, BaseURL: srv.URL + "/api",
		Fields: map[string]string{"Pod": "prod-useast-a", "Site": "acme", "TokenName": "engine", "TokenSecret": secret}}
	api, err := connector.NewAPI(conn, store.NewMemory(), nil)
	if err != nil {
		t.Fatal(err)
	}
	callAll(t, []*connector.API{api}, 3)
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if want := `{"credentials":{"personalAccessTokenName":"engine","personalAccessTokenSecret":"tableau-pat-secret","site":{"contentUrl":"acme"}}}`; srv.lastBody != want {
		t.Errorf("sign-in body %s, want %s", srv.lastBody, want)
	}
	if n := srv.logins.Load(); n != 1 {
		t.Errorf("%d sign-ins, want 1", n)
	}
}
