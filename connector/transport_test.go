package connector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/token"
	"github.com/connector-engine/connector/definitions"
)

// apiServer is a loopback API with a token endpoint: it accepts the access
// tokens it issued last and counts what it receives.
type apiServer struct {
	*httptest.Server
	mu       sync.Mutex
	valid    map[string]bool // access tokens accepted
	refresh  string          // the refresh token the token endpoint accepts
	issued   int
	tokenReq atomic.Int32
	apiReq   atomic.Int32
	bodies   []string
	headers  []http.Header
	handler  func(w http.ResponseWriter, r *http.Request) // the API route
	// tokenInQuery: the access token comes as ?access_token=, not a header
	tokenInQuery bool
}

func newAPIServer(t testing.TB) *apiServer {
	s := &apiServer{valid: map[string]bool{"old-access-token": true}, refresh: "r0"}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			s.tokenReq.Add(1)
			_ = r.ParseForm()
			s.mu.Lock()
			defer s.mu.Unlock()
			if r.PostForm.Get("refresh_token") != s.refresh {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(400)
				fmt.Fprint(w, `{"error":"invalid_grant"}`)
				return
			}
			s.issued++
			access := "new" + strconv.Itoa(s.issued)
			s.refresh = "r" + strconv.Itoa(s.issued)
			s.valid[access] = true
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"access_token":%q,"refresh_token":%q,"expires_in":3600,"token_type":"bearer"}`, access, s.refresh)
			return
		}
		s.apiReq.Add(1)
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.bodies = append(s.bodies, string(body))
		s.headers = append(s.headers, r.Header.Clone())
		ok := s.valid[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		if s.tokenInQuery {
			ok = s.valid[r.URL.Query().Get("access_token")]
		}
		h := s.handler
		s.mu.Unlock()
		if !ok {
			w.WriteHeader(401)
			fmt.Fprint(w, `{"errors":"Your access token has expired, please use your refresh token to obtain a fresh token."}`)
			return
		}
		if h != nil {
			h(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"path":%q,"query":%q}`, r.URL.Path, r.URL.RawQuery)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *apiServer) handle(h func(w http.ResponseWriter, r *http.Request)) {
	s.mu.Lock()
	s.handler = h
	s.mu.Unlock()
}

func (s *apiServer) hdr(i int) http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.headers[i]
}

func (s *apiServer) allHeaders() []http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]http.Header(nil), s.headers...)
}

func (s *apiServer) body(i int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bodies[i]
}

func (s *apiServer) revoke(access string) {
	s.mu.Lock()
	delete(s.valid, access)
	s.mu.Unlock()
}

const transportDef = `name: tapi
title: Test API
base_url: https://api.invalid
fields:
  CompanyId: {type: integer}
auth:
  scheme: oauth
  oauth:
    version: V2
    initiate_uri: ${BaseUrl}/authorize?client_id=${ClientId}&state=${State}
    token_request_uri: ${BaseUrl}/token
request:
  headers:
    Company-Id: ${CompanyId}
  query:
    locale: en
  retry:
    max_attempts: 3
    max_wait: 5s
    idempotency_header: Idempotency-Token
  rate_limit:
    remaining_header: X-Rate-Limit-Remaining
    reset_header: X-Rate-Limit-Reset
`

func parseDef(t testing.TB, src, name string) *definitions.Definition {
	t.Helper()
	set, err := definitions.Parse(definitions.Builtin(), definitions.File{Path: name + ".yaml", Data: []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	d, ok := set.Get(name)
	if !ok {
		t.Fatalf("no definition %s", name)
	}
	return d
}

// newTestAPI connects to s with a stored token "old-access-token" (valid for an hour).
func newTestAPI(t testing.TB, s *apiServer, def string) (*API, store.Store) {
	t.Helper()
	c := &Connection{
		Definition: parseDef(t, def, "tapi"), ClientID: "id", ClientSecret: "the-client-secret",
		RedirectURI: "http://127.0.0.1:1/cb", BaseURL: s.URL, Fields: map[string]string{"CompanyId": "42"},
	}
	st := store.NewMemory()
	api, err := NewAPI(c, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok := &token.Token{AccessToken: "old-access-token", RefreshToken: "r0", Expiry: time.Now().Add(time.Hour)}
	if err := api.Source().Store(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	return api, st
}

func TestTransportAddsCredentialsHeadersAndQuery(t *testing.T) {
	s := newAPIServer(t)
	api, _ := newTestAPI(t, s, transportDef)
	resp, err := api.Do(context.Background(), Request{Path: "/v1/things?id=7"})
	if err != nil {
		t.Fatal(err)
	}
	var got struct{ Path, Query string }
	_ = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if got.Path != "/v1/things" || got.Query != "id=7&locale=en" {
		t.Fatalf("server saw %+v", got)
	}
	h := s.hdr(0)
	if h.Get("Authorization") != "Bearer old-access-token" || h.Get("Company-Id") != "42" || h.Get("Accept") != "application/json" {
		t.Fatalf("headers %v", h)
	}

	// The client works for requests built by hand, and does not modify them.
	req, _ := http.NewRequest("GET", s.URL+"/v1/raw", nil)
	req.Header.Set("Company-Id", "7") // the caller's value wins over the default
	resp, err = api.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(req.Header) != 1 || req.Header.Get("Authorization") != "" {
		t.Fatalf("the caller's request was modified: %v", req.Header)
	}
	if got := s.hdr(1).Get("Company-Id"); got != "7" {
		t.Fatalf("Company-Id = %q", got)
	}
}

func TestTransportRefreshesOnceOn401AndReplays(t *testing.T) {
	for _, method := range []string{"GET", "POST"} {
		t.Run(method, func(t *testing.T) {
			s := newAPIServer(t)
			api, st := newTestAPI(t, s, transportDef)
			s.revoke("old-access-token") // the provider revoked it before its time
			var body []byte
			if method == "POST" {
				body = []byte(`{"rfi":{"subject":"Door"}}`)
			}
			resp, err := api.Do(context.Background(), Request{Method: method, Path: "/v1/rfis", Body: body})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if n := s.tokenReq.Load(); n != 1 {
				t.Fatalf("%d token requests, want 1 refresh", n)
			}
			if n := s.apiReq.Load(); n != 2 {
				t.Fatalf("%d API requests, want 2 (refused, replayed)", n)
			}
			if s.body(1) != string(body) {
				t.Fatalf("replayed body %q, want %q", s.body(1), body)
			}
			if method == "POST" && s.hdr(0).Get("Idempotency-Token") != s.hdr(1).Get("Idempotency-Token") {
				t.Fatal("the replay must reuse the idempotency key")
			}
			rec, _ := st.Get(context.Background(), api.conn.Key())
			if rec.Token.AccessToken != "new1" || rec.Token.RefreshToken != "r1" {
				t.Fatalf("stored %v", rec.Token)
			}
		})
	}
}

func TestTransportSecond401IsReturned(t *testing.T) {
	s := newAPIServer(t)
	api, _ := newTestAPI(t, s, transportDef)
	s.handle(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(401) }) // refuses even fresh tokens
	s.revoke("old-access-token")
	_, err := api.Do(context.Background(), Request{Path: "/v1/me"})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 401 {
		t.Fatalf("err = %v, want the API's 401", err)
	}
	if s.tokenReq.Load() != 1 || s.apiReq.Load() != 2 {
		t.Fatalf("token requests %d, API requests %d; want 1 and 2 (no loop)", s.tokenReq.Load(), s.apiReq.Load())
	}
}

func TestTransportNeverSendsCredentialsElsewhere(t *testing.T) {
	s := newAPIServer(t)
	api, _ := newTestAPI(t, s, transportDef)
	var leaked atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { leaked.Add(1) }))
	defer other.Close()

	_, err := api.Do(context.Background(), Request{Path: other.URL + "/steal"})
	var he *HostError
	if !errors.As(err, &he) {
		t.Fatalf("err = %v, want *HostError", err)
	}
	if !strings.Contains(err.Error(), "refusing to send credentials to "+other.URL) {
		t.Fatalf("message: %v", err)
	}

	// Same host, other port or scheme: also another origin.
	for _, u := range []string{strings.Replace(s.URL, "http://", "https://", 1) + "/x", "http://localhost" + s.URL[strings.LastIndex(s.URL, ":"):] + "/x"} {
		if _, err := api.Do(context.Background(), Request{Path: u}); !errors.As(err, &he) {
			t.Fatalf("%s: err = %v, want *HostError", u, err)
		}
	}

	// A redirect to another host is not followed with credentials.
	s.handle(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/landing", http.StatusFound)
	})
	if _, err := api.Do(context.Background(), Request{Path: "/v1/redirect"}); !errors.As(err, &he) {
		t.Fatalf("redirect: err = %v, want *HostError", err)
	}
	if leaked.Load() != 0 {
		t.Fatalf("the other host received %d requests", leaked.Load())
	}
}

func TestTransportRetries(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		answers  []int // statuses of successive answers; then 200
		header   http.Header
		wantReqs int32
		wantErr  string
	}{
		{"GET 503 then 200", "GET", []int{503}, http.Header{"Retry-After": {"0"}}, 2, ""},
		{"GET 502, 500 then 200", "GET", []int{502, 500}, nil, 3, ""},
		{"GET 503 three times: the last answer is returned", "GET", []int{503, 503, 503}, http.Header{"Retry-After": {"0"}}, 3, "503"},
		{"POST with idempotency key 503 then 201", "POST", []int{503}, http.Header{"Retry-After": {"0"}}, 2, ""},
		{"GET 429 asking for too long", "GET", []int{429}, http.Header{"Retry-After": {"3600"}}, 1, "longer than the 5s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newAPIServer(t)
			api, _ := newTestAPI(t, s, transportDef)
			var n atomic.Int32
			s.handle(func(w http.ResponseWriter, r *http.Request) {
				i := int(n.Add(1)) - 1
				if i < len(tt.answers) {
					for k, v := range tt.header {
						w.Header()[k] = v
					}
					w.WriteHeader(tt.answers[i])
					return
				}
				w.WriteHeader(200)
			})
			var body []byte
			if tt.method == "POST" {
				body = []byte(`{"a":1}`)
			}
			resp, err := api.Do(context.Background(), Request{Method: tt.method, Path: "/v1/x", Body: body})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			} else {
				resp.Body.Close()
			}
			if got := s.apiReq.Load(); got != tt.wantReqs {
				t.Fatalf("%d requests, want %d", got, tt.wantReqs)
			}
			if tt.method == "POST" {
				key := s.hdr(0).Get("Idempotency-Token")
				for _, h := range s.allHeaders() {
					if key == "" || h.Get("Idempotency-Token") != key {
						t.Fatalf("idempotency keys differ or are missing: %q vs %q", key, h.Get("Idempotency-Token"))
					}
				}
			}
		})
	}
}

func TestTransportPostWithoutIdempotencyKeyIsNotRetried(t *testing.T) {
	s := newAPIServer(t)
	def := strings.Replace(transportDef, "    idempotency_header: Idempotency-Token\n", "", 1)
	api, _ := newTestAPI(t, s, def)
	s.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(503)
	})
	_, err := api.Do(context.Background(), Request{Method: "POST", Path: "/v1/x", Body: []byte(`{}`)})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 503 {
		t.Fatalf("err = %v", err)
	}
	if s.apiReq.Load() != 1 {
		t.Fatalf("%d requests, want 1", s.apiReq.Load())
	}
	if s.hdr(0).Get("Idempotency-Token") != "" {
		t.Fatal("no idempotency header is declared, so none is sent")
	}
}

func TestTransportWaitsForRateLimitReset(t *testing.T) {
	s := newAPIServer(t)
	api, _ := newTestAPI(t, s, transportDef)
	reset := time.Now().Add(time.Hour).Unix()
	s.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Rate-Limit-Remaining", "0")
		w.Header().Set("X-Rate-Limit-Reset", strconv.FormatInt(reset, 10))
	})
	resp, err := api.Do(context.Background(), Request{Path: "/v1/x"})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// The limit is used up for an hour, more than max_wait: the next call
	// fails at once, without burning a 429.
	_, err = api.Do(context.Background(), Request{Path: "/v1/x"})
	var we *WaitError
	if !errors.As(err, &we) || !strings.Contains(err.Error(), "rate limit is used up") {
		t.Fatalf("err = %v, want a WaitError", err)
	}
	if s.apiReq.Load() != 1 {
		t.Fatalf("%d requests, want 1", s.apiReq.Load())
	}
}

func TestTransportWaitRespectsContext(t *testing.T) {
	s := newAPIServer(t)
	api, _ := newTestAPI(t, s, transportDef)
	s.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "4") // under max_wait (5s)
		w.WriteHeader(429)
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := api.Do(ctx, Request{Path: "/v1/x"})
		done <- err
	}()
	for s.apiReq.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if s.apiReq.Load() != 1 {
		t.Fatalf("%d requests, want 1", s.apiReq.Load())
	}
}

func TestAPIErrorIsClearAndRedacted(t *testing.T) {
	s := newAPIServer(t)
	api, _ := newTestAPI(t, s, transportDef)
	s.handle(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(403)
		fmt.Fprint(w, `{"error":{"code":"forbidden","message":"token old-access-token and secret the-client-secret are not allowed"}}`)
	})
	_, err := api.Do(context.Background(), Request{Path: "/v1/x?api_key=k"})
	want := "GET " + s.URL + "/v1/x: 403 Forbidden: token *** and secret *** are not allowed"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
}

func TestStaticSchemes(t *testing.T) {
	type seen struct {
		h     http.Header
		query string
	}
	seenc := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seenc <- seen{r.Header.Clone(), r.URL.RawQuery}
	}))
	defer srv.Close()
	tests := []struct {
		name, auth, header, want, query string
	}{
		{"basic", "  scheme: basic\n  basic:\n    username: ${User}\n    password: ${Pass}\n", "Authorization", "Basic dTpwOmFzcyY=", ""},
		{"api key header", "  scheme: apikey\n  apikey:\n    in: header\n    name: x-api-key\n    value: ${Pass}\n", "X-Api-Key", "p:ass&", ""},
		{"api key query", "  scheme: apikey\n  apikey:\n    in: query\n    name: key\n    value: ${Pass}\n", "", "", "key=p%3Aass%26"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			def := "name: tapi\ntitle: T\nbase_url: https://x.invalid\nfields:\n  User: {}\n  Pass: {secret: true}\nauth:\n" + tt.auth
			c := &Connection{Definition: parseDef(t, def, "tapi"), BaseURL: srv.URL, Fields: map[string]string{"User": "u", "Pass": "p:ass&"}}
			api, err := NewAPI(c, store.NewMemory(), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := api.Do(context.Background(), Request{Path: "/x"})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			sn := <-seenc
			got, query := sn.h, sn.query
			if tt.header != "" && got.Get(tt.header) != tt.want {
				t.Fatalf("%s = %q, want %q", tt.header, got.Get(tt.header), tt.want)
			}
			if query != tt.query {
				t.Fatalf("query = %q, want %q", query, tt.query)
			}
		})
	}
}

// failingSource is a token source that cannot produce a token.
type failingSource struct{ calls atomic.Int32 }

func (f *failingSource) TokenContext(context.Context) (token.Token, error) {
	f.calls.Add(1)
	return token.Token{}, &NeedsReauthError{Reason: "the grant was revoked"}
}

func (f *failingSource) Reject(ctx context.Context, _ string) (token.Token, error) {
	return f.TokenContext(ctx)
}

// TestNoTokenIsNotRetried: when no token can be had, the request fails at
// once with the source's error; retrying would only ask the source again.
func TestNoTokenIsNotRetried(t *testing.T) {
	src := &failingSource{}
	rt := &retryTransport{policy: &Policy{MaxAttempts: 4, MaxWait: time.Minute, BackoffMin: time.Millisecond, BackoffMax: time.Millisecond},
		next: &bearerTransport{src: src, next: http.DefaultTransport}}
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:9/x", nil)
	_, err := rt.RoundTrip(req)
	var nr *NeedsReauthError
	if !errors.As(err, &nr) || src.calls.Load() != 1 {
		t.Fatalf("err = %v after %d token requests; want NeedsReauthError after 1", err, src.calls.Load())
	}
}
