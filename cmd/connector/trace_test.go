package main

import (
	"errors"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector"
)

// --verbose shows the engine's decisions for a whole run: a retry after a
// 503 with the wait and its reason, a refresh after a 401 and the replay,
// the idempotency key of a POST; a long rate-limit wait is said even
// without --verbose; and nothing printed holds a secret of the run.
func TestVerboseShowsDecisions(t *testing.T) {
	r := newRig(t, "code", time.Hour)
	r.connect(t)
	before := r.record(t).Token
	var all strings.Builder
	run := func(args ...string) string {
		t.Helper()
		code, out, errOut := cli(t, args...)
		all.WriteString(out + errOut)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errOut)
		}
		return errOut
	}

	r.emu.FailAPIRequests(1, http.StatusServiceUnavailable, http.Header{"Retry-After": {"1"}})
	out := run(r.args("call", "me", "-v")...)
	for _, want := range []string{
		"http 1: GET " + r.base + "/rest/v1.0/me -> 503 Service Unavailable in ",
		"retry: GET " + r.base + "/rest/v1.0/me: attempt 1 answered 503 Service Unavailable; sending it again (attempt 2)\n",
		"waiting 1s: " + strings.TrimPrefix(r.base, "http://") + " answered 503 Service Unavailable (Retry-After)\n",
		"http 2: GET " + r.base + "/rest/v1.0/me (attempt 2) -> 200 OK in ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("call me -v after a 503 lacks %q:\n%s", want, out)
		}
	}

	r.emu.ExpireAccessTokens(1)
	out = run(r.args("request", "GET", "/rest/v1.0/me", "--verbose")...)
	for _, want := range []string{
		"http 1: GET " + r.base + "/rest/v1.0/me -> 401 Unauthorized in ",
		"(token request: refresh_token) -> 200 OK in ",
		"refresh: the API refused the access token (401) for GET " + r.base + "/rest/v1.0/me; renewed it in ",
		"/rest/v1.0/me (replay after a token refresh) -> 200 OK in ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("request -v after a 401 lacks %q:\n%s", want, out)
		}
	}

	out = run(r.args("request", "POST", "/rest/v1.0/projects", "-H", "Procore-Company-Id: 562949953421312", "-d", `{"company_id":562949953421312,"project":{"name":"Traced"}}`, "-v")...)
	if !regexp.MustCompile(`POST \S+/rest/v1.0/projects\S* \[Idempotency-Token: [A-Za-z0-9_-]{20,}\] -> 201 Created`).MatchString(out) {
		t.Errorf("--verbose does not show the idempotency key of a POST:\n%s", out)
	}
	run(r.args("request", "POST", "/rest/v1.0/projects", "-d", `{"project":{"name":"Dry"}}`, "--dry-run", "-H", "Idempotency-Token: my-key-1")...)
	if !strings.Contains(all.String(), "Idempotency-Token: my-key-1\n") {
		t.Errorf("--dry-run hides the idempotency key:\n%s", all.String())
	}

	// Without --verbose, a wait of announceWait or more is said, and
	// nothing else.
	r.emu.FailAPIRequests(1, http.StatusTooManyRequests, http.Header{"Retry-After": {"3"}})
	out = run(r.args("call", "me")...)
	if want := "waiting 3s: rate limit of " + strings.TrimPrefix(r.base, "http://") + " (Retry-After)\n"; out != want {
		t.Errorf("a 3s rate-limit wait without --verbose printed %q, want %q", out, want)
	}

	after := r.record(t).Token
	transcript.Lock()
	secrets := append([]string{r.secret, before.AccessToken, before.RefreshToken, after.AccessToken, after.RefreshToken}, transcript.secrets...)
	transcript.Unlock()
	for _, s := range secrets {
		if s != "" && strings.Contains(all.String(), s) {
			t.Errorf("the run printed a secret (%s...):\n%s", s[:4], all.String())
		}
	}
}

// The lines --verbose and the wait announcement print, one per kind of
// event and reason.
func TestTraceLinesGolden(t *testing.T) {
	const host, u = "api.procore.com", "https://api.procore.com/rest/v1.0/me"
	var b strings.Builder
	for _, e := range []connector.WaitInfo{
		{Host: host, Wait: time.Minute, Reason: connector.WaitRetryAfter, Header: "Retry-After", Status: 429},
		{Host: host, Wait: 1500 * time.Millisecond, Reason: connector.WaitRetryAfter, Header: "Retry-After", Status: 503},
		{Host: host, Wait: 42 * time.Second, Reason: connector.WaitReset, Header: "X-Rate-Limit-Reset"},
		{Host: host, Wait: 12*time.Second + 300*time.Millisecond, Reason: connector.WaitWindow, Per: 10 * time.Second},
		{Host: host, Wait: 600 * time.Millisecond, Reason: connector.WaitLimit, Limit: 100, Per: time.Minute},
		{Host: host, Wait: 380 * time.Millisecond, Reason: connector.WaitBackoff, Status: 502},
		{Host: host, Wait: 250 * time.Millisecond, Reason: connector.WaitBackoff},
	} {
		b.WriteString(waitLine(e) + "\n")
	}
	x := connector.ExchangeInfo{Method: "GET", URL: u + "?key=***", Host: host, Attempt: 1}
	b.WriteString(exchangeLine(1, connector.DoneInfo{ExchangeInfo: x, Status: 200, Duration: 31 * time.Millisecond}) + "\n")
	x.Attempt = 2
	b.WriteString(exchangeLine(2, connector.DoneInfo{ExchangeInfo: x, Err: errors.New("net/http: timeout awaiting response headers"), Duration: time.Minute}) + "\n")
	x.Replay = true
	b.WriteString(exchangeLine(3, connector.DoneInfo{ExchangeInfo: x, Status: 401, Duration: 5 * time.Millisecond}) + "\n")
	p := connector.ExchangeInfo{Method: "POST", URL: u, Host: host, Attempt: 1, IdempotencyHeader: "Idempotency-Token", IdempotencyKey: "3q2-7w"}
	b.WriteString(exchangeLine(4, connector.DoneInfo{ExchangeInfo: p, Status: 201, Duration: 40 * time.Millisecond}) + "\n")
	checkGolden(t, filepath.Join("testdata", "trace-lines.golden"), b.String())
}
