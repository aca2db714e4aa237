package emulator_test

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/emulator"
)

func TestFailAPIRequests(t *testing.T) {
	reset := strconv.FormatInt(time.Date(2025, time.March, 1, 12, 0, 3, 0, time.UTC).Unix(), 10)
	tests := []struct {
		name       string
		n, status  int
		header     http.Header
		wantStatus int
		wantCode   string
	}{
		{"503 with Retry-After", 2, 503, http.Header{"Retry-After": {"1"}}, 503, "service_unavailable"},
		{"429 with X-Rate-Limit-Reset only", 1, 429, http.Header{"X-Rate-Limit-Reset": {reset}}, 429, "too_many_requests"},
		{"500 without headers", 1, 500, nil, 500, "internal_server_error"},
		{"a status that is not an error means 503", 1, 200, nil, 503, "service_unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, withSmallSeed)
			tk := e.login().AccessToken
			e.srv.FailAPIRequests(tt.n, tt.status, tt.header)
			rfis := "/rest/v1.0/projects/" + firstProject + "/rfis"
			for i := range tt.n {
				// Even a request without a token gets the fault: nothing is checked.
				token := tk
				if i == 1 {
					token = "not-a-token"
				}
				resp, body := e.api(http.MethodPost, rfis, token, demoCompany, `{"rfi":{"subject":"S","question":{"body":"Q"}}}`)
				if resp.StatusCode != tt.wantStatus || decode[apiError](t, body).Error.Code != tt.wantCode {
					t.Fatalf("request %d: status %d, body %s; want %d %s", i+1, resp.StatusCode, body, tt.wantStatus, tt.wantCode)
				}
				for k := range resp.Header {
					switch k {
					case "Content-Type", "Content-Length", "Date":
					default:
						if tt.header.Get(k) == "" {
							t.Errorf("header %s: %q was not asked for", k, resp.Header.Get(k))
						}
					}
				}
				for k := range tt.header {
					if resp.Header.Get(k) != tt.header.Get(k) {
						t.Errorf("header %s = %q, want %q", k, resp.Header.Get(k), tt.header.Get(k))
					}
				}
			}
			resp, _ := e.api(http.MethodGet, rfis, tk, demoCompany, "")
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Total") != strconv.Itoa(smallSeed.RFIs) {
				t.Errorf("after the faults: status %d, Total %q; want 200 and nothing created", resp.StatusCode, resp.Header.Get("Total"))
			}
			st := e.srv.Stats()
			if st.FailedAPIRequests != tt.n || st.APIRequestsByRoute["POST /rest/v1.0/projects/{project_id}/rfis"] != tt.n ||
				st.APIRequestsByRoute["GET /rest/v1.0/projects/{project_id}/rfis"] != 1 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestFailAPIRequestsCancel(t *testing.T) {
	e := newEnv(t)
	tk := e.login().AccessToken
	e.srv.FailAPIRequests(5, 503, nil)
	e.srv.FailAPIRequests(0, 503, nil)
	if resp, _ := e.api(http.MethodGet, "/rest/v1.0/me", tk, "", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("after cancelling: status %d", resp.StatusCode)
	}
	// The header is copied: changing the caller's map later changes nothing.
	h := http.Header{"Retry-After": {"1"}}
	e.srv.FailAPIRequests(1, 503, h)
	h.Set("Retry-After", "99")
	if resp, _ := e.api(http.MethodGet, "/rest/v1.0/me", tk, "", ""); resp.Header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After %q, want 1", resp.Header.Get("Retry-After"))
	}
}

func TestExpireAccessTokens(t *testing.T) {
	const wantBody = `{"error":"` + emulator.ExpiredTokenMessage + `"}`
	for _, n := range []int{1, 2} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			e := newEnv(t)
			tb := e.login()
			e.srv.ExpireAccessTokens(n)
			for i := range n {
				resp, body := e.api(http.MethodGet, "/rest/v1.0/me", tb.AccessToken, "", "")
				if resp.StatusCode != http.StatusUnauthorized || string(body) != wantBody ||
					resp.Header.Get("WWW-Authenticate") == "" || resp.Header.Get("X-Rate-Limit-Limit") == "" {
					t.Fatalf("request %d: status %d, headers %v, body %s", i+1, resp.StatusCode, resp.Header, body)
				}
				// The token really expired: it keeps failing.
				if resp, body := e.api(http.MethodGet, "/rest/v1.0/me", tb.AccessToken, "", ""); string(body) != wantBody {
					t.Fatalf("the expired token again: status %d, body %s", resp.StatusCode, body)
				}
				tb = e.refresh(tb.RefreshToken)
			}
			if resp, body := e.api(http.MethodGet, "/rest/v1.0/me", tb.AccessToken, "", ""); resp.StatusCode != http.StatusOK {
				t.Errorf("after %d refreshes: status %d, body %s", n, resp.StatusCode, body)
			}
			if st := e.srv.Stats(); st.ExpiredAccessTokens != n || st.Refreshes != n {
				t.Errorf("stats %+v", st)
			}
		})
	}
	// Requests without a live token do not use up the count.
	e := newEnv(t)
	e.srv.ExpireAccessTokens(1)
	if resp, body := e.api(http.MethodGet, "/rest/v1.0/me", "unknown", "", ""); resp.StatusCode != 401 || string(body) == wantBody {
		t.Errorf("unknown token: status %d, body %s", resp.StatusCode, body)
	}
	tk := e.login().AccessToken
	if resp, body := e.api(http.MethodGet, "/rest/v1.0/me", tk, "", ""); string(body) != wantBody {
		t.Errorf("the first live token: status %d, body %s", resp.StatusCode, body)
	}
	e.srv.ExpireAccessTokens(3)
	e.srv.ExpireAccessTokens(0)
	if resp, _ := e.api(http.MethodGet, "/rest/v1.0/me", e.login().AccessToken, "", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("after cancelling: status %d", resp.StatusCode)
	}
}

func TestAPIRequestsByRoute(t *testing.T) {
	e := newEnv(t, withSmallSeed)
	tk := e.login().AccessToken
	if st := e.srv.Stats(); st.APIRequests != 0 || len(st.APIRequestsByRoute) != 0 {
		t.Fatalf("stats before any API request: %+v", st)
	}
	e.api(http.MethodGet, "/rest/v1.0/projects/"+firstProject+"/rfis", tk, demoCompany, "")
	e.api(http.MethodGet, "/rest/v1.0/projects/562949954000002/rfis?page=2", tk, demoCompany, "")
	e.api(http.MethodGet, "/rest/v1.0/projects/"+firstProject, tk, demoCompany, "")
	e.api(http.MethodDelete, "/rest/v1.0/projects/"+firstProject, tk, demoCompany, "")
	e.api(http.MethodGet, "/rest/v1.0/nowhere", "", "", "")
	st := e.srv.Stats()
	want := map[string]int{
		"GET /rest/v1.0/projects/{project_id}/rfis":  2,
		"GET /rest/v1.0/projects/{id}":               1,
		"DELETE /rest/v1.0/projects/1":               0,
		"DELETE /rest/v1.0/projects/" + firstProject: 1,
		"GET /rest/v1.0/nowhere":                     1,
	}
	for k, n := range want {
		if st.APIRequestsByRoute[k] != n {
			t.Errorf("APIRequestsByRoute[%q] = %d, want %d (all: %v)", k, st.APIRequestsByRoute[k], n, st.APIRequestsByRoute)
		}
	}
	if st.APIRequests != 5 || len(st.APIRequestsByRoute) != 4 {
		t.Errorf("stats %+v", st)
	}
	st.APIRequestsByRoute["GET /rest/v1.0/me"] = 9 // a copy
	if e.srv.Stats().APIRequestsByRoute["GET /rest/v1.0/me"] != 0 {
		t.Error("Stats shares its map with the server")
	}
}

func TestSetRateLimit(t *testing.T) {
	e := newEnv(t)
	tk := e.login().AccessToken
	e.srv.SetRateLimit(2, 10*time.Second)
	for i := range 2 {
		resp, _ := e.api(http.MethodGet, "/rest/v1.0/me", tk, "", "")
		if resp.StatusCode != 200 || resp.Header.Get("X-Rate-Limit-Limit") != "2" || resp.Header.Get("X-Rate-Limit-Remaining") != strconv.Itoa(1-i) {
			t.Fatalf("request %d: status %d, limit %q remaining %q", i+1, resp.StatusCode,
				resp.Header.Get("X-Rate-Limit-Limit"), resp.Header.Get("X-Rate-Limit-Remaining"))
		}
	}
	resp, _ := e.api(http.MethodGet, "/rest/v1.0/me", tk, "", "")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "10" {
		t.Fatalf("over the limit: status %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	e.clock.Advance(10 * time.Second)
	if resp, _ := e.api(http.MethodGet, "/rest/v1.0/me", tk, "", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("next window: status %d", resp.StatusCode)
	}
	e.srv.SetRateLimit(0, 0) // the defaults
	if resp, _ := e.api(http.MethodGet, "/rest/v1.0/me", tk, "", ""); resp.Header.Get("X-Rate-Limit-Limit") != "3600" {
		t.Errorf("default limit: %q", resp.Header.Get("X-Rate-Limit-Limit"))
	}
}

func TestIdempotentPOST(t *testing.T) {
	e := newEnv(t, withSmallSeed)
	tb := e.login()
	rfis := "/rest/v1.0/projects/" + firstProject + "/rfis"
	body := `{"rfi":{"subject":"Retry me","question":{"body":"Once?"}}}`
	key := func(k string) http.Header { return http.Header{emulator.IdempotencyHeader: {k}} }
	total := func() string {
		resp, _ := e.api(http.MethodGet, rfis, tb.AccessToken, demoCompany, "")
		return resp.Header.Get("Total")
	}

	// A fault does not use the token up: the retry creates.
	e.srv.FailAPIRequests(1, 503, http.Header{"Retry-After": {"1"}})
	if resp, _ := e.apiWith(http.MethodPost, rfis, tb.AccessToken, demoCompany, body, key("k1")); resp.StatusCode != 503 {
		t.Fatalf("injected fault: status %d", resp.StatusCode)
	}
	resp, first := e.apiWith(http.MethodPost, rfis, tb.AccessToken, demoCompany, body, key("k1"))
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first create: status %d, body %s", resp.StatusCode, first)
	}
	e.clock.Advance(time.Hour)
	resp, again := e.apiWith(http.MethodPost, rfis, tb.AccessToken, demoCompany, body, key("k1"))
	if resp.StatusCode != http.StatusCreated || string(again) != string(first) || resp.Header.Get("Idempotent-Replayed") != "true" ||
		resp.Header.Get("X-Rate-Limit-Remaining") == "" {
		t.Fatalf("replay: status %d, headers %v, body %s; want the first answer %s", resp.StatusCode, resp.Header, again, first)
	}
	if got := total(); got != strconv.Itoa(smallSeed.RFIs+1) {
		t.Errorf("Total %s after a create and its replay, want %d", got, smallSeed.RFIs+1)
	}
	// A refreshed token of the same grant replays too.
	tb = e.refresh(tb.RefreshToken)
	if resp, again := e.apiWith(http.MethodPost, rfis, tb.AccessToken, demoCompany, body, key("k1")); string(again) != string(first) {
		t.Errorf("replay with a refreshed token: status %d, body %s", resp.StatusCode, again)
	}

	tests := []struct {
		name, method, path, body, key string
		wantStatus                    int
		wantCode                      string
	}{
		{"same token, other body", http.MethodPost, rfis, `{"rfi":{"subject":"Other","question":{"body":"Q"}}}`, "k1", 409, "idempotency_token_reused"},
		{"same token, other path", http.MethodPost, "/rest/v1.0/projects/562949954000002/rfis", body, "k1", 409, "idempotency_token_reused"},
		{"a failed answer is not kept", http.MethodPost, rfis, `{"rfi":{}}`, "k2", 422, ""},
		{"so the token still works", http.MethodPost, rfis, body, "k2", 201, ""},
		{"without a token, POST creates again", http.MethodPost, rfis, body, "", 201, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h http.Header
			if tt.key != "" {
				h = key(tt.key)
			}
			resp, b := e.apiWith(tt.method, tt.path, tb.AccessToken, demoCompany, tt.body, h)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tt.wantStatus, b)
			}
			if tt.wantCode != "" && decode[apiError](t, b).Error.Code != tt.wantCode {
				t.Errorf("body %s, want code %s", b, tt.wantCode)
			}
		})
	}
	if got := total(); got != strconv.Itoa(smallSeed.RFIs+3) {
		t.Errorf("Total %s, want %d", got, smallSeed.RFIs+3)
	}
	// Another user's grant has its own tokens; so does the same user in another application.
	svc := e.serviceToken()
	if resp, b := e.apiWith(http.MethodPost, rfis, svc, demoCompany, body, key("k1")); resp.StatusCode != 201 || string(b) == string(first) {
		t.Errorf("another grant with the same token: status %d, body %s", resp.StatusCode, b)
	}
	// After a day the answer is forgotten.
	e.clock.Advance(24 * time.Hour)
	tb = e.refresh(tb.RefreshToken)
	if resp, b := e.apiWith(http.MethodPost, rfis, tb.AccessToken, demoCompany, body, key("k1")); resp.StatusCode != 201 || string(b) == string(first) {
		t.Errorf("a day later: status %d, body %s", resp.StatusCode, b)
	}
	if st := e.srv.Stats(); st.IdempotentReplays != 2 {
		t.Errorf("IdempotentReplays %d, want 2", st.IdempotentReplays)
	}
}

func TestIdempotentPATCH(t *testing.T) {
	e := newEnv(t, withSmallSeed)
	tk := e.login().AccessToken
	invite := "/rest/v1.3/companies/" + demoCompany + "/users/562949953470001/invite"
	h := http.Header{emulator.IdempotencyHeader: {"inv"}}
	resp, first := e.apiWith(http.MethodPatch, invite, tk, demoCompany, "", h)
	e.clock.Advance(time.Minute)
	resp2, again := e.apiWith(http.MethodPatch, invite, tk, demoCompany, "", h)
	if resp.StatusCode != 200 || resp2.StatusCode != 200 || string(first) != string(again) || resp2.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("PATCH replay: %d %s / %d %s", resp.StatusCode, first, resp2.StatusCode, again)
	}
}

// Concurrent retries with one token create one object.
func TestIdempotentConcurrentPOST(t *testing.T) {
	e := newEnv(t, withSmallSeed)
	tk := e.login().AccessToken
	vendors := "/rest/v1.0/vendors"
	body := `{"company_id":` + demoCompany + `,"vendor":{"name":"Race Condition LLC"}}`
	const n = 8
	bodies := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { // no t.Fatal off the test goroutine: failures leave bodies[i] empty
			req, err := http.NewRequest(http.MethodPost, e.base+vendors, strings.NewReader(body))
			if err != nil {
				return
			}
			req.Header.Set("Authorization", "Bearer "+tk)
			req.Header.Set("Procore-Company-Id", demoCompany)
			req.Header.Set(emulator.IdempotencyHeader, "same")
			resp, err := e.hc.Do(req)
			if err != nil {
				return
			}
			if b := readAll(resp); resp.StatusCode == http.StatusCreated {
				bodies[i] = b
			}
		})
	}
	wg.Wait()
	for i := range n {
		if bodies[i] == "" || bodies[i] != bodies[0] {
			t.Fatalf("answer %d: %s, want the same 201 as %s", i, bodies[i], bodies[0])
		}
	}
	resp, _ := e.api(http.MethodGet, vendors+"?company_id="+demoCompany, tk, demoCompany, "")
	if resp.Header.Get("Total") != strconv.Itoa(smallSeed.Vendors+1) {
		t.Errorf("Total %q, want %d", resp.Header.Get("Total"), smallSeed.Vendors+1)
	}
}
