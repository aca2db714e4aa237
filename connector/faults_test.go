package connector

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/token"
	"github.com/connector-engine/connector/definitions"
)

func testDef(t *testing.T, base string) *definitions.Definition {
	t.Helper()
	src := `name: t
title: T
base_url: ` + base + `
auth:
  scheme: oauth
  oauth:
    version: V2
    issuer: https://issuer.test
    initiate_uri: ${BaseUrl}/authorize
    token_request_uri: ${BaseUrl}/token
`
	set, err := definitions.Parse(nil, definitions.File{Path: "t.yaml", Data: []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := set.Get("t")
	return d
}

func testFlow(t *testing.T, base string) *Flow {
	f, err := NewFlow(&Connection{Definition: testDef(t, base), ClientID: "id", ClientSecret: "the-client-secret", RedirectURI: "http://127.0.0.1:1/cb"})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestCallbackChecks(t *testing.T) {
	f := testFlow(t, "https://auth.test")
	now := time.Now()
	f.Now = func() time.Time { return now }
	rows := []struct {
		name  string
		q     func(a *Attempt) url.Values
		reuse bool
		late  bool
		want  string
	}{
		{"ok", func(a *Attempt) url.Values {
			return url.Values{"state": {a.State}, "code": {"c"}, "iss": {"https://issuer.test"}}
		}, false, false, ""},
		{"state missing", func(a *Attempt) url.Values { return url.Values{"code": {"c"}, "iss": {"https://issuer.test"}} }, false, false, "state does not match"},
		{"state wrong", func(a *Attempt) url.Values { return url.Values{"state": {a.State + "x"}, "code": {"c"}} }, false, false, "state does not match"},
		{"state reused", func(a *Attempt) url.Values {
			return url.Values{"state": {a.State}, "code": {"c"}, "iss": {"https://issuer.test"}}
		}, true, false, "state does not match"},
		{"state expired", func(a *Attempt) url.Values {
			return url.Values{"state": {a.State}, "code": {"c"}, "iss": {"https://issuer.test"}}
		}, false, true, "state does not match"},
		{"access denied", func(a *Attempt) url.Values {
			return url.Values{"state": {a.State}, "error": {"access_denied"}, "iss": {"https://issuer.test"}}
		}, false, false, "the user denied access (access_denied); nothing was stored, run the authorization again to connect"},
		{"access denied, described in words", func(a *Attempt) url.Values {
			return url.Values{"state": {a.State}, "error": {"access_denied"}, "error_description": {"The user denied access."}, "iss": {"https://issuer.test"}}
		}, false, false, "the user denied access (access_denied); nothing was stored"},
		{"other error", func(a *Attempt) url.Values {
			return url.Values{"state": {a.State}, "error": {"temporarily_unavailable"}, "error_description": {"try again in a minute"}, "iss": {"https://issuer.test"}}
		}, false, false, "the authorization was not granted (temporarily_unavailable): try again in a minute; nothing was stored"},
		{"iss wrong", func(a *Attempt) url.Values {
			return url.Values{"state": {a.State}, "code": {"c"}, "iss": {"https://evil.test"}}
		}, false, false, "possible mix-up attack"},
		{"iss missing", func(a *Attempt) url.Values { return url.Values{"state": {a.State}, "code": {"c"}} }, false, false, "has no iss parameter"},
		{"no code", func(a *Attempt) url.Values { return url.Values{"state": {a.State}, "iss": {"https://issuer.test"}} }, false, false, "neither a code nor an error"},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			a, err := f.AuthCodeURL()
			if err != nil {
				t.Fatal(err)
			}
			if len(a.State) < 22 { // 128 bits in base64url
				t.Fatalf("state too short: %d", len(a.State))
			}
			if r.reuse {
				_, _ = f.CheckCallback(a, r.q(a))
			}
			if r.late {
				f.Now = func() time.Time { return now.Add(11 * time.Minute) }
				defer func() { f.Now = func() time.Time { return now } }()
			}
			code, err := f.CheckCallback(a, r.q(a))
			if r.want == "" {
				if err != nil || code != "c" {
					t.Fatalf("code %q err %v", code, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), r.want) {
				t.Fatalf("err %v, want %q", err, r.want)
			}
		})
	}
}

func TestParseTokenResponse(t *testing.T) {
	m := &definitions.TokenResponse{AccessToken: "access_token", RefreshToken: "refresh_token", TokenType: "token_type",
		ExpiresIn: "expires_in", Scope: "scope", CreatedAt: "created_at", DefaultExpiresIn: 90 * time.Minute}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rows := []struct {
		name, ctype, body string
		expiry            time.Duration // from at; 0: don't check
		want              string        // error substring
	}{
		{"procore", "application/json", `{"access_token":"a","token_type":"bearer","expires_in":5400,"refresh_token":"r","created_at":1767225600}`, 5400 * time.Second, ""},
		{"expires_in string", "application/json", `{"access_token":"a","expires_in":"60"}`, time.Minute, ""},
		{"expires_in null uses default", "application/json", `{"access_token":"a","expires_in":null}`, 90 * time.Minute, ""},
		{"expires_in 0 uses default", "application/json", `{"access_token":"a","expires_in":0}`, 90 * time.Minute, ""},
		{"expires_in missing uses default", "application/json", `{"access_token":"a"}`, 90 * time.Minute, ""},
		{"expires_in huge is capped", "application/json", `{"access_token":"a","expires_in":1e300}`, maxLifetime, ""},
		{"expires_in negative", "application/json", `{"access_token":"a","expires_in":-5}`, 0, "is negative"},
		{"expires_in garbage", "application/json", `{"access_token":"a","expires_in":"soon"}`, 0, `"soon" is not a number`},
		{"token_type odd case", "application/json", `{"access_token":"a","token_type":"BeArEr"}`, 0, ""},
		{"token_type mac", "application/json", `{"access_token":"a","token_type":"mac"}`, 0, "only bearer tokens"},
		{"no access_token", "application/json", `{"token_type":"bearer"}`, 0, "has no access_token string"},
		{"access_token not string", "application/json", `{"access_token":42}`, 0, "has no access_token string"},
		{"error with 200", "application/json", `{"error":"invalid_grant","error_description":"bad"}`, 0, "invalid_grant: bad"},
		{"html", "text/html", `<html>login</html>`, 0, "HTML, not JSON"},
		{"empty", "application/json", ``, 0, "is empty"},
		{"truncated json", "application/json", `{"access_token":"a"`, 0, "not valid JSON"},
		{"form encoded (GitHub)", "application/x-www-form-urlencoded", `access_token=a&scope=repo%2Cuser&token_type=bearer`, 90 * time.Minute, ""},
		{"unknown fields ignored", "application/json", `{"access_token":"a","x":{"y":[1]}}`, 0, ""},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			tok, err := parseTokenResponse(r.ctype, []byte(r.body), m, at)
			if r.want != "" {
				if err == nil || !strings.Contains(err.Error(), r.want) {
					t.Fatalf("err %v, want %q", err, r.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.expiry != 0 && !tok.Expiry.Equal(at.Add(r.expiry)) {
				t.Errorf("expiry %v, want %v", tok.Expiry, at.Add(r.expiry))
			}
		})
	}
}

func TestRetryPolicy(t *testing.T) {
	dialErr := &net.OpError{Op: "dial", Err: errors.New("connection refused")}
	readErr := &net.OpError{Op: "read", Err: errors.New("connection reset")}
	rows := []struct {
		name       string
		idempotent bool
		status     int
		err        error
		want       bool
	}{
		{"refresh: dial failed, nothing sent", false, 0, dialErr, true},
		{"refresh: reset after sending, outcome unknown", false, 0, readErr, false},
		{"refresh: 503 not processed", false, 503, nil, true},
		{"refresh: 429 not processed", false, 429, nil, true},
		{"refresh: 500 outcome unknown", false, 500, nil, false},
		{"refresh: 502", false, 502, nil, false},
		{"refresh: 400 invalid_grant", false, 400, nil, false},
		{"client credentials: reset", true, 0, readErr, true},
		{"client credentials: 500", true, 500, nil, true},
		{"client credentials: 401", true, 401, nil, false},
		{"cancelled", true, 0, context.Canceled, false},
		{"success", false, 200, nil, false},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			var resp *http.Response
			if r.err == nil {
				resp = &http.Response{StatusCode: r.status}
			}
			if got := retryable(r.idempotent, resp, r.err); got != r.want {
				t.Errorf("retryable = %v, want %v", got, r.want)
			}
		})
	}
}

// TestTokenEndpointFaults: 503s are retried with Retry-After, a Retry-After
// over the cap fails fast, and error bodies echoing secrets are redacted.
func TestTokenEndpointFaults(t *testing.T) {
	var calls atomic.Int32
	var mode atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		_ = r.ParseForm()
		switch mode.Load().(string) {
		case "503 then ok":
			if calls.Load() < 3 {
				w.Header().Set("Retry-After", "0")
				w.WriteHeader(503)
				return
			}
			fmt.Fprint(w, `{"access_token":"new","refresh_token":"r2","expires_in":60}`)
		case "retry after too long":
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(503)
		case "echo":
			w.WriteHeader(400)
			fmt.Fprintf(w, `{"error":"invalid_client","error_description":"bad secret %s for refresh %s"}`, r.PostForm.Get("client_secret"), r.PostForm.Get("refresh_token"))
		}
	}))
	defer srv.Close()
	f := testFlow(t, srv.URL)
	ctx := context.Background()

	mode.Store("503 then ok")
	tok, err := f.Refresh(ctx, "old-refresh-token")
	if err != nil || tok.AccessToken != "new" || calls.Load() != 3 {
		t.Fatalf("503 retry: %v %v calls=%d", tok, err, calls.Load())
	}
	mode.Store("retry after too long")
	calls.Store(0)
	if _, err := f.Refresh(ctx, "old-refresh-token"); err == nil || !strings.Contains(err.Error(), "longer than the 30s this client waits") || calls.Load() != 1 {
		t.Fatalf("cap: %v calls=%d", err, calls.Load())
	}
	mode.Store("echo")
	_, err = f.Refresh(ctx, "old-refresh-token")
	if err == nil || strings.Contains(err.Error(), "the-client-secret") || strings.Contains(err.Error(), "old-refresh-token") || !strings.Contains(err.Error(), "invalid_client: bad secret *** for refresh ***") {
		t.Fatalf("redaction: %v", err)
	}
}

// TestLostRefreshResponse: the provider rotates the token but the answer is
// lost. The store keeps the in-flight marker; the next attempt's
// invalid_grant is reported with the lost-response reason, never retried.
func TestLostRefreshResponse(t *testing.T) {
	var used atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		if r.PostForm.Get("refresh_token") == "rt1" && !used.Swap(true) {
			hj, _ := w.(http.Hijacker)
			c, _, _ := hj.Hijack()
			c.Close() // processed, answer lost
			return
		}
		w.WriteHeader(400)
		fmt.Fprint(w, `{"error":"invalid_grant"}`)
	}))
	defer srv.Close()
	conn := &Connection{Definition: testDef(t, srv.URL), ClientID: "id", ClientSecret: "sec", RedirectURI: "http://127.0.0.1:1/cb", RefreshToken: "rt1"}
	st := store.NewMemory()
	src, err := NewSource(conn, st)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, err = src.TokenContext(ctx)
	var re *RequestError
	if !errors.As(err, &re) {
		t.Fatalf("first attempt: %v", err)
	}
	rec, _ := st.Get(ctx, conn.Key())
	if rec.RefreshStarted.IsZero() {
		t.Fatal("in-flight marker not kept after a lost answer")
	}
	_, err = src.TokenContext(ctx)
	var nr *NeedsReauthError
	if !errors.As(err, &nr) || !strings.Contains(nr.Reason, "answer was lost") {
		t.Fatalf("second attempt: %v", err)
	}
	rec, _ = st.Get(ctx, conn.Key())
	if rec.Status != store.StatusNeedsReauth {
		t.Errorf("status %s", rec.Status)
	}
}

// TestStoreWriteFailureFailsClosed: a new token that cannot be stored is not used.
func TestStoreWriteFailureFailsClosed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"access_token":"fresh","refresh_token":"rt2","expires_in":60}`)
	}))
	defer srv.Close()
	conn := &Connection{Definition: testDef(t, srv.URL), ClientID: "id", ClientSecret: "sec", RedirectURI: "http://127.0.0.1:1/cb", RefreshToken: "rt1"}
	st := store.NewMemory()
	st.FailPut = func(r store.Record) error {
		if r.Token.AccessToken == "fresh" {
			return errors.New("disk full")
		}
		return nil
	}
	src, _ := NewSource(conn, st)
	tok, err := src.TokenContext(context.Background())
	if err == nil || !strings.Contains(err.Error(), "could not be stored, so it is not used") || tok.AccessToken != "" {
		t.Fatalf("token %v err %v", tok, err)
	}
}

// TestInvalidGrantRereadsTheStore: while this worker's refresh is at the
// provider, another worker (whose lock was lost, in a database restart say)
// rotates the token and stores it; this worker's invalid_grant then takes
// the stored token instead of declaring the connection broken.
func TestInvalidGrantRereadsTheStore(t *testing.T) {
	st := store.NewMemory()
	var key string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec, err := st.Get(r.Context(), key)
		if err != nil {
			t.Error(err)
		}
		rec.Token = token.Token{AccessToken: "theirs", RefreshToken: "rt2", Expiry: time.Now().Add(time.Hour)}
		rec.RefreshStarted = time.Time{}
		if _, err := st.Put(r.Context(), rec); err != nil {
			t.Error(err)
		}
		w.WriteHeader(400)
		fmt.Fprint(w, `{"error":"invalid_grant","error_description":"refresh token already used"}`)
	}))
	defer srv.Close()
	conn := &Connection{Definition: testDef(t, srv.URL), ClientID: "id", ClientSecret: "sec", RedirectURI: "http://127.0.0.1:1/cb", RefreshToken: "rt1"}
	key = conn.Key()
	src, _ := NewSource(conn, st)
	tok, err := src.TokenContext(context.Background())
	if err != nil || tok.AccessToken != "theirs" {
		t.Fatalf("token %q, err %v; want the other worker's token", tok.AccessToken, err)
	}
	if rec, _ := st.Get(context.Background(), key); rec.Status != store.StatusConnected || rec.Token.RefreshToken != "rt2" {
		t.Fatalf("stored %s with refresh token %q; want connected with rt2", rec.Status, rec.Token.RefreshToken)
	}
}

// TestRefreshOutlivesALostLock: while this worker's refresh is at the
// provider, its lock is lost and another worker, finding the refresh in
// flight, marks the connection as needing re-authorization. The rotated
// token this worker then receives is the grant's only continuation: it is
// stored over that verdict instead of being thrown away.
func TestRefreshOutlivesALostLock(t *testing.T) {
	st := store.NewMemory()
	var key string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec, err := st.Get(r.Context(), key)
		if err != nil {
			t.Error(err)
		}
		rec.Status, rec.Reason, rec.RefreshStarted = store.StatusNeedsReauth, ReasonLostRefresh, time.Time{}
		if _, err := st.Put(r.Context(), rec); err != nil {
			t.Error(err)
		}
		fmt.Fprint(w, `{"access_token":"fresh","refresh_token":"rt2","expires_in":3600}`)
	}))
	defer srv.Close()
	conn := &Connection{Definition: testDef(t, srv.URL), ClientID: "id", ClientSecret: "sec", RedirectURI: "http://127.0.0.1:1/cb", RefreshToken: "rt1"}
	key = conn.Key()
	src, _ := NewSource(conn, st)
	tok, err := src.TokenContext(context.Background())
	if err != nil || tok.AccessToken != "fresh" {
		t.Fatalf("token %q, err %v; want the fresh token", tok.AccessToken, err)
	}
	if rec, _ := st.Get(context.Background(), key); rec.Status != store.StatusConnected || rec.Token.RefreshToken != "rt2" || !rec.RefreshStarted.IsZero() {
		t.Fatalf("stored %s with refresh token %q; want connected with rt2 and no marker", rec.Status, rec.Token.RefreshToken)
	}
}
