package connector

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/token"
)

// traceLog records every hook call as one line, and every value the hooks
// saw in full (%+v), to look for secrets in.
type traceLog struct {
	mu    sync.Mutex
	lines []string
	all   strings.Builder
}

func (l *traceLog) add(line string, v any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
	fmt.Fprintf(&l.all, "%+v\n", v)
}

func (l *traceLog) trace() *Trace {
	return &Trace{
		Send: func(e ExchangeInfo) {
			line := fmt.Sprintf("send %d %s", e.Attempt, e.Method)
			if e.Replay {
				line += " replay"
			}
			if e.IdempotencyKey != "" {
				line += " " + e.IdempotencyHeader
			}
			l.add(line, e)
		},
		Done: func(d DoneInfo) {
			what := strconv.Itoa(d.Status)
			if d.Err != nil {
				what = "error"
			}
			l.add(fmt.Sprintf("done %d %s", d.Attempt, what), d)
		},
		Retry: func(r RetryInfo) { l.add(fmt.Sprintf("retry %d %d %s", r.Attempt, r.Status, r.Reason), r) },
		Wait: func(w WaitInfo) {
			l.add(fmt.Sprintf("wait %s %d rate=%v", w.Reason, w.Status, w.RateLimited()), w)
		},
		Refresh: func(r RefreshInfo) {
			what := "ok"
			if r.Err != nil {
				what = "failed"
			}
			l.add("refresh "+what, r)
		},
	}
}

func (l *traceLog) got() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// TestTraceEvents: every hook fires, in order, for each scenario the engine
// decides something in; and no hook ever sees a secret of the connection.
func TestTraceEvents(t *testing.T) {
	paced := strings.Replace(transportDef, "    reset_header: X-Rate-Limit-Reset\n", "    per: 200ms\n    limit: 1\n", 1)
	windowed := strings.Replace(transportDef, "    reset_header: X-Rate-Limit-Reset\n", "    per: 100ms\n", 1)
	tokenInQuery := strings.Replace(transportDef, "    token_request_uri: ${BaseUrl}/token\n",
		"    token_request_uri: ${BaseUrl}/token\n    send_token: {in: query, name: access_token}\n", 1)
	tests := []struct {
		name    string
		def     string
		revoke  bool   // the provider revoked the stored token
		badRefr bool   // and the refresh token too
		method  string // default GET
		calls   int    // requests made; default 1
		handler func(n int, w http.ResponseWriter, r *http.Request)
		want    []string
	}{
		{name: "success", want: []string{"send 1 GET", "done 1 200"}},
		{name: "5xx then success", handler: func(n int, w http.ResponseWriter, r *http.Request) {
			if n == 1 {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		}, want: []string{"send 1 GET", "done 1 503", "retry 1 503 backoff", "wait backoff 503 rate=false", "send 2 GET", "done 2 200"}},
		{name: "429 Retry-After", handler: func(n int, w http.ResponseWriter, r *http.Request) {
			if n == 1 {
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusTooManyRequests)
			}
		}, want: []string{"send 1 GET", "done 1 429", "retry 1 429 Retry-After", "wait Retry-After 429 rate=true", "send 2 GET", "done 2 200"}},
		{name: "429 reset header", handler: func(n int, w http.ResponseWriter, r *http.Request) {
			if n == 1 {
				w.Header().Set("X-Rate-Limit-Reset", strconv.FormatInt(time.Now().Add(time.Second).Unix(), 10))
				w.WriteHeader(http.StatusTooManyRequests)
			}
		}, want: []string{"send 1 GET", "done 1 429", "retry 1 429 reset header", "wait reset header 429 rate=true", "send 2 GET", "done 2 200"}},
		{name: "remaining 0 waits for the reset", calls: 2, handler: func(n int, w http.ResponseWriter, r *http.Request) {
			if n == 1 {
				w.Header().Set("X-Rate-Limit-Remaining", "0")
				w.Header().Set("X-Rate-Limit-Reset", strconv.FormatInt(time.Now().Add(time.Second).Unix(), 10))
			}
		}, want: []string{"send 1 GET", "done 1 200", "wait reset header 0 rate=true", "send 1 GET", "done 1 200"}},
		{name: "remaining 0 waits the declared window", def: windowed, calls: 2, handler: func(n int, w http.ResponseWriter, r *http.Request) {
			if n == 1 {
				w.Header().Set("X-Rate-Limit-Remaining", "0")
			}
		}, want: []string{"send 1 GET", "done 1 200", "wait window 0 rate=true", "send 1 GET", "done 1 200"}},
		{name: "declared limit paces", def: paced, calls: 2,
			want: []string{"send 1 GET", "done 1 200", "wait limit 0 rate=true", "send 1 GET", "done 1 200"}},
		{name: "401 refreshes and replays", revoke: true,
			want: []string{"send 1 GET", "done 1 401", "refresh ok", "send 1 GET replay", "done 1 200"}},
		{name: "401 with the token in the query", def: tokenInQuery, revoke: true,
			want: []string{"send 1 GET", "done 1 401", "refresh ok", "send 1 GET replay", "done 1 200"}},
		{name: "401 and the refresh fails", revoke: true, badRefr: true,
			want: []string{"send 1 GET", "done 1 401", "refresh failed"}},
		{name: "connection error", handler: func(n int, w http.ResponseWriter, r *http.Request) {
			if n == 1 {
				c, _, _ := w.(http.Hijacker).Hijack()
				c.Close()
			}
		}, want: []string{"send 1 GET", "done 1 error", "retry 1 0 backoff", "wait backoff 0 rate=false", "send 2 GET", "done 2 200"}},
		{name: "POST carries its idempotency key", method: "POST", handler: func(n int, w http.ResponseWriter, r *http.Request) {
			if n == 1 {
				w.WriteHeader(http.StatusBadGateway)
			}
		}, want: []string{"send 1 POST Idempotency-Token", "done 1 502", "retry 1 502 backoff", "wait backoff 502 rate=false", "send 2 POST Idempotency-Token", "done 2 200"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newAPIServer(t)
			def := tt.def
			if def == "" {
				def = transportDef
			}
			if tt.def == tokenInQuery {
				s.tokenInQuery = true
			}
			api, _ := newTestAPI(t, s, def)
			var mu sync.Mutex
			n := 0
			s.handle(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				n++
				i := n
				mu.Unlock()
				if tt.handler != nil {
					tt.handler(i, w, r)
				}
			})
			if tt.revoke {
				s.revoke("old-access-token")
			}
			if tt.badRefr {
				s.mu.Lock()
				s.refresh = "something else"
				s.mu.Unlock()
			}
			var l traceLog
			ctx := WithTrace(context.Background(), l.trace())
			calls := max(tt.calls, 1)
			for range calls {
				var body []byte
				if tt.method == "POST" {
					body = []byte(`{"a":1}`)
				}
				resp, err := api.Do(ctx, Request{Method: tt.method, Path: "/v1/x?q=1", Body: body})
				if err == nil {
					resp.Body.Close()
				} else if !tt.badRefr {
					t.Fatal(err)
				}
			}
			if got := l.got(); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			all := l.all.String()
			for _, secret := range []string{"old-access-token", "new1", "r0", "r1", "the-client-secret", "something else"} {
				if strings.Contains(all, secret) {
					t.Errorf("a hook saw the secret %q:\n%s", secret, all)
				}
			}
			if !strings.Contains(all, "/v1/x?") {
				t.Errorf("the hooks never saw the URL:\n%s", all)
			}
		})
	}
}

// TestTraceComposes: the API's trace and the context's both fire, and two
// traces in a context both fire.
func TestTraceComposes(t *testing.T) {
	s := newAPIServer(t)
	var fromAPI, outer, inner traceLog
	c := &Connection{
		Definition: parseDef(t, transportDef, "tapi"), ClientID: "id", ClientSecret: "the-client-secret",
		RedirectURI: "http://127.0.0.1:1/cb", BaseURL: s.URL, Fields: map[string]string{"CompanyId": "42"},
	}
	api, err := NewAPI(c, store.NewMemory(), &APIOptions{Trace: fromAPI.trace()})
	if err != nil {
		t.Fatal(err)
	}
	storeToken(t, api)
	ctx := WithTrace(WithTrace(context.Background(), outer.trace()), inner.trace())
	resp, err := api.Do(ctx, Request{Path: "/v1/x"})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for name, l := range map[string]*traceLog{"APIOptions.Trace": &fromAPI, "outer": &outer, "inner": &inner} {
		if got := strings.Join(l.got(), ","); got != "send 1 GET,done 1 200" {
			t.Errorf("%s saw %q", name, got)
		}
	}
	// Without a trace, nothing is recorded and nothing breaks.
	resp, err = api.Do(context.Background(), Request{Path: "/v1/x"})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(outer.got()) != 2 || len(fromAPI.got()) != 4 {
		t.Errorf("outer %d events, API %d; want 2 and 4", len(outer.got()), len(fromAPI.got()))
	}
}

// TestTraceRedactsQueryCredentials: an API key in the query, from a secret
// field, reaches no hook, raw or escaped; and a retry sends it once, not
// once more per attempt.
func TestTraceRedactsQueryCredentials(t *testing.T) {
	var mu sync.Mutex
	var queries []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		queries = append(queries, r.URL.RawQuery)
		mu.Unlock()
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	def := "name: tapi\ntitle: T\nbase_url: https://x.invalid\nfields:\n  Pass: {secret: true}\n" +
		"auth:\n  scheme: apikey\n  apikey:\n    in: query\n    name: key\n    value: ${Pass}\nrequest:\n  retry: {max_attempts: 2}\n"
	c := &Connection{Definition: parseDef(t, def, "tapi"), BaseURL: srv.URL, Fields: map[string]string{"Pass": "p:ass&word"}}
	var l traceLog
	api, err := NewAPI(c, store.NewMemory(), &APIOptions{Trace: l.trace()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.Do(context.Background(), Request{Path: "/x?echo=p:ass%26word"}); err == nil {
		t.Fatal("want the 503")
	}
	all := l.all.String()
	for _, s := range []string{"p:ass&word", "p%3Aass%26word", "p:ass%26word"} {
		if strings.Contains(all, s) {
			t.Errorf("a hook saw the key as %q:\n%s", s, all)
		}
	}
	if !strings.Contains(all, "key=***") || len(l.got()) != 6 {
		t.Errorf("want 6 events with key=***:\n%s", all)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, q := range queries {
		if strings.Count(q, "key=") != 1 {
			t.Errorf("attempt %d sent the query %q; want the key once", i+1, q)
		}
	}
}

func storeToken(t *testing.T, api *API) {
	t.Helper()
	tok := &token.Token{AccessToken: "old-access-token", RefreshToken: "r0", Expiry: time.Now().Add(time.Hour)}
	if err := api.Source().Store(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
}
