package emulator_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/emulator"
)

func TestAPIRequiresAValidToken(t *testing.T) {
	e := newEnv(t)
	live := e.login()
	expired := e.login()
	e.clock.Advance(time.Minute)
	live = e.refresh(live.RefreshToken) // issued a minute later than expired
	e.clock.Advance(5400*time.Second - time.Minute)

	tests := []struct {
		name, auth, path string
		wantStatus       int
		wantBody         string
	}{
		{"no token", "", "/rest/v1.0/me", 401, `"error":"An access token is required`},
		{"no token, unknown path", "", "/rest/v1.0/secret-things", 401, `"error"`},
		{"wrong scheme", "Basic " + live.AccessToken, "/rest/v1.0/me", 401, `"error"`},
		{"unknown token", "Bearer not-a-token", "/rest/v1.0/me", 401, "invalid or was revoked"},
		{"expired token", "Bearer " + expired.AccessToken, "/rest/v1.0/me", 401,
			`{"error":"Your access token has expired, please use your refresh token to obtain a fresh token."}`},
		{"live token", "Bearer " + live.AccessToken, "/rest/v1.0/me", 200, `"id":` + strconv.FormatInt(emulator.DemoUserID, 10)},
		{"lower-case scheme", "bearer " + live.AccessToken, "/rest/v1.0/me", 200, `"login"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, e.base+tt.path, nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, body := e.do(req)
			if resp.StatusCode != tt.wantStatus || !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("status %d, body %s: want %d containing %s", resp.StatusCode, body, tt.wantStatus, tt.wantBody)
			}
			if tt.wantStatus == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate = %q, want a Bearer challenge", resp.Header.Get("WWW-Authenticate"))
			}
			if resp.Header.Get("X-Rate-Limit-Limit") == "" {
				t.Error("no X-Rate-Limit-Limit header")
			}
		})
	}
	// The refresh token of an expired access token still works.
	e.refresh(expired.RefreshToken)
}

func TestCompanyIDRule(t *testing.T) {
	tests := []struct {
		name, method, path, company, body string
		wantStatus                        int
		wantCode                          string
	}{
		{"me without header", "GET", "/rest/v1.0/me", "", "", 200, ""},
		{"companies without header", "GET", "/rest/v1.0/companies", "", "", 200, ""},
		{"companies with header", "GET", "/rest/v1.0/companies", demoCompany, "", 200, ""},
		{"projects without header", "GET", "/rest/v1.0/projects?company_id=" + demoCompany, "", "", 400, "missing_company_id"},
		{"projects", "GET", "/rest/v1.0/projects?company_id=" + demoCompany, demoCompany, "", 200, ""},
		{"projects of the second company", "GET", "/rest/v1.0/projects?company_id=" + secondCompany, secondCompany, "", 200, ""},
		{"projects, header not a number", "GET", "/rest/v1.0/projects?company_id=" + demoCompany, "acme", "", 400, "invalid_company_id"},
		{"projects, header truncated to 32 bits", "GET", "/rest/v1.0/projects?company_id=" + demoCompany,
			strconv.FormatInt(emulator.SecondCompanyID&0xffffffff, 10), "", 403, "forbidden"},
		{"projects, unknown company", "GET", "/rest/v1.0/projects?company_id=42", "42", "", 403, "forbidden"},
		{"projects, header and query differ", "GET", "/rest/v1.0/projects?company_id=" + secondCompany, demoCompany, "", 403, "company_mismatch"},
		{"projects without company_id", "GET", "/rest/v1.0/projects", demoCompany, "", 400, "missing_company_id"},
		{"company projects", "GET", "/rest/v1.0/companies/" + demoCompany + "/projects", demoCompany, "", 200, ""},
		{"company projects without header", "GET", "/rest/v1.0/companies/" + demoCompany + "/projects", "", "", 400, "missing_company_id"},
		{"company projects, path and header differ", "GET", "/rest/v1.0/companies/" + demoCompany + "/projects", secondCompany, "", 403, "company_mismatch"},
		{"project", "GET", "/rest/v1.0/projects/562949954000001", demoCompany, "", 200, ""},
		{"project without header", "GET", "/rest/v1.0/projects/562949954000001", "", "", 400, "missing_company_id"},
		{"project of another of the user's companies", "GET", "/rest/v1.0/projects/562949954000001", secondCompany, "", 403, "company_mismatch"},
		{"unknown project", "GET", "/rest/v1.0/projects/562949954999999", demoCompany, "", 404, "not_found"},
		{"create project without header", "POST", "/rest/v1.0/projects", "", `{"company_id":` + demoCompany + `,"project":{"name":"X"}}`, 400, "missing_company_id"},
	}
	e := newEnv(t)
	tb := e.login()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := e.api(tt.method, tt.path, tb.AccessToken, tt.company, tt.body)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantCode != "" {
				if got := decode[apiError](t, body); got.Error.Code != tt.wantCode || got.Error.Message == "" {
					t.Errorf("error body %s: want code %s and a message", body, tt.wantCode)
				}
			}
		})
	}
}

var linkRE = regexp.MustCompile(`<([^>]+)>; rel="(\w+)"`)

func links(t *testing.T, h http.Header) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, m := range linkRE.FindAllStringSubmatch(h.Get("Link"), -1) {
		out[m[2]] = m[1]
	}
	return out
}

func TestPaginationWalk(t *testing.T) {
	e := newEnv(t)
	tb := e.login()
	next := e.base + "/rest/v1.0/projects?company_id=" + demoCompany + "&per_page=40"
	seen := map[int64]bool{}
	pages := 0
	for next != "" {
		if !strings.HasPrefix(next, e.base+"/") {
			t.Fatalf("Link URL %s is not absolute on %s", next, e.base)
		}
		resp, body := e.api(http.MethodGet, strings.TrimPrefix(next, e.base), tb.AccessToken, demoCompany, "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: status %d", next, resp.StatusCode)
		}
		pages++
		if resp.Header.Get("Total") != "250" || resp.Header.Get("Per-Page") != "40" {
			t.Errorf("page %d: Total %q, Per-Page %q", pages, resp.Header.Get("Total"), resp.Header.Get("Per-Page"))
		}
		for _, p := range decode[[]struct {
			ID      int64 `json:"id"`
			Company struct {
				ID int64 `json:"id"`
			} `json:"company"`
		}](t, body) {
			if seen[p.ID] || p.Company.ID != emulator.DemoCompanyID {
				t.Errorf("project %d repeated or in company %d", p.ID, p.Company.ID)
			}
			seen[p.ID] = true
		}
		l := links(t, resp.Header)
		if l["first"] == "" || l["last"] == "" || (pages > 1) != (l["prev"] != "") {
			t.Errorf("page %d links %v", pages, l)
		}
		next = l["next"]
	}
	if pages != 7 || len(seen) != emulator.DemoProjectCount {
		t.Errorf("walked %d pages and %d projects, want 7 and %d", pages, len(seen), emulator.DemoProjectCount)
	}
}

func TestPaginationParameters(t *testing.T) {
	base := "/rest/v1.0/companies/" + demoCompany + "/projects"
	tests := []struct {
		name       string
		query      string
		wantStatus int
		wantLen    int
		wantPer    string
		wantRels   string // sorted-insensitive list of rels present
	}{
		{"default", "", 200, 100, "100", "first next last"},
		{"second page", "?page=2", 200, 100, "100", "first prev next last"},
		{"last page", "?page=3", 200, 50, "100", "first prev last"},
		{"past the end", "?page=9", 200, 0, "100", "first prev last"},
		{"far past the end", "?page=9223372036854775807", 200, 0, "100", "first prev last"},
		{"per_page above the maximum", "?per_page=1000", 200, 100, "100", "first next last"},
		{"per_page 1", "?per_page=1&page=250", 200, 1, "1", "first prev last"},
		{"page 0", "?page=0", 400, 0, "", ""},
		{"page not a number", "?page=two", 400, 0, "", ""},
		{"per_page 0", "?per_page=0", 400, 0, "", ""},
	}
	e := newEnv(t)
	tb := e.login()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := e.api(http.MethodGet, base+tt.query, tb.AccessToken, demoCompany, "")
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantStatus != 200 {
				return
			}
			if items := decode[[]map[string]any](t, body); len(items) != tt.wantLen || items == nil {
				t.Errorf("%d items (nil=%v), want %d", len(items), items == nil, tt.wantLen)
			}
			if got := resp.Header.Get("Per-Page"); got != tt.wantPer {
				t.Errorf("Per-Page %q, want %q", got, tt.wantPer)
			}
			l := links(t, resp.Header)
			for _, rel := range strings.Fields(tt.wantRels) {
				if l[rel] == "" {
					t.Errorf("no rel=%s in %q", rel, resp.Header.Get("Link"))
				}
			}
			if len(l) != len(strings.Fields(tt.wantRels)) {
				t.Errorf("Link %q, want rels %s", resp.Header.Get("Link"), tt.wantRels)
			}
		})
	}
}

func TestPaginationLinksKeepTheQuery(t *testing.T) {
	e := newEnv(t)
	tb := e.login()
	resp, _ := e.api(http.MethodGet, "/rest/v1.0/projects?company_id="+demoCompany+"&page=2", tb.AccessToken, demoCompany, "")
	next, err := url.Parse(links(t, resp.Header)["next"])
	if err != nil {
		t.Fatal(err)
	}
	q := next.Query()
	if next.Path != "/rest/v1.0/projects" || q.Get("company_id") != demoCompany || q.Get("page") != "3" || q.Get("per_page") != "100" {
		t.Errorf("next link %s", next)
	}
}

func TestCreateProject(t *testing.T) {
	tests := []struct {
		name, body string
		wantStatus int
		wantCode   string
	}{
		{"created", `{"company_id":` + demoCompany + `,"project":{"name":"Eastside Garage","project_number":"E-1"}}`, 201, ""},
		{"company id as string", `{"company_id":"` + demoCompany + `","project":{"name":"String Id Tower"}}`, 201, ""},
		{"blank name", `{"company_id":` + demoCompany + `,"project":{"name":"  "}}`, 422, ""},
		{"no project", `{"company_id":` + demoCompany + `}`, 400, "missing_project"},
		{"no company_id", `{"project":{"name":"X"}}`, 400, "missing_company_id"},
		{"other company than the header", `{"company_id":` + secondCompany + `,"project":{"name":"X"}}`, 403, "company_mismatch"},
		{"not JSON", `name=X`, 400, "invalid_json"},
	}
	e := newEnv(t)
	tb := e.login()
	created := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := e.api(http.MethodPost, "/rest/v1.0/projects", tb.AccessToken, demoCompany, tt.body)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantStatus == http.StatusUnprocessableEntity {
				if got := decode[validationErrors](t, body); len(got.Errors["name"]) != 1 || got.Errors["name"][0] != "can't be blank" {
					t.Errorf("422 body %s: want errors.name [\"can't be blank\"]", body)
				}
				return
			}
			if tt.wantCode != "" {
				if got := decode[apiError](t, body); got.Error.Code != tt.wantCode {
					t.Errorf("error code %q, want %q", got.Error.Code, tt.wantCode)
				}
				return
			}
			created++
			p := decode[struct {
				ID   int64  `json:"id"`
				Name string `json:"name"`
			}](t, body)
			resp, body = e.api(http.MethodGet, fmt.Sprintf("/rest/v1.0/projects/%d", p.ID), tb.AccessToken, demoCompany, "")
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), p.Name) {
				t.Errorf("GET the new project: status %d, body %s", resp.StatusCode, body)
			}
		})
	}
	resp, _ := e.api(http.MethodGet, "/rest/v1.0/projects?company_id="+demoCompany, tb.AccessToken, demoCompany, "")
	if want := strconv.Itoa(emulator.DemoProjectCount + created); resp.Header.Get("Total") != want {
		t.Errorf("Total %q after creating %d projects, want %s", resp.Header.Get("Total"), created, want)
	}
}

func TestUnknownRoutes(t *testing.T) {
	e := newEnv(t)
	tb := e.login()
	resp, body := e.api(http.MethodGet, "/rest/v1.0/nothing-here", tb.AccessToken, demoCompany, "")
	if resp.StatusCode != http.StatusNotFound || decode[apiError](t, body).Error.Code != "not_found" {
		t.Errorf("unknown path: status %d, body %s", resp.StatusCode, body)
	}
	resp, body = e.api(http.MethodDelete, "/rest/v1.0/projects", tb.AccessToken, demoCompany, "")
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, POST" {
		t.Errorf("wrong method: status %d, Allow %q, body %s", resp.StatusCode, resp.Header.Get("Allow"), body)
	}
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t, func(c *emulator.Config) { c.RateLimit, c.RateWindow = 3, time.Minute })
	tb := e.login()
	reset := strconv.FormatInt(e.clock.Now().Add(time.Minute).Unix(), 10)
	for want := 2; want >= 0; want-- {
		resp, _ := e.api(http.MethodGet, "/rest/v1.0/me", tb.AccessToken, "", "")
		h := resp.Header
		if resp.StatusCode != http.StatusOK || h.Get("X-Rate-Limit-Limit") != "3" ||
			h.Get("X-Rate-Limit-Remaining") != strconv.Itoa(want) || h.Get("X-Rate-Limit-Reset") != reset {
			t.Fatalf("status %d, limit headers %q %q %q; want remaining %d, reset %s", resp.StatusCode,
				h.Get("X-Rate-Limit-Limit"), h.Get("X-Rate-Limit-Remaining"), h.Get("X-Rate-Limit-Reset"), want, reset)
		}
	}
	e.clock.Advance(20 * time.Second)
	resp, body := e.api(http.MethodGet, "/rest/v1.0/me", tb.AccessToken, "", "")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "40" ||
		resp.Header.Get("X-Rate-Limit-Remaining") != "0" || decode[apiError](t, body).Error.Code != "rate_limited" {
		t.Fatalf("over the limit: status %d, Retry-After %q, body %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	// A refreshed token keeps the budget of the token it replaced.
	tb = e.refresh(tb.RefreshToken)
	if resp, _ := e.api(http.MethodGet, "/rest/v1.0/me", tb.AccessToken, "", ""); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("refreshed token: status %d, want 429", resp.StatusCode)
	}
	// Another grant has its own budget.
	if resp, _ := e.api(http.MethodGet, "/rest/v1.0/me", e.login().AccessToken, "", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("another grant: status %d, want 200", resp.StatusCode)
	}
	e.clock.Advance(40 * time.Second)
	if resp, _ := e.api(http.MethodGet, "/rest/v1.0/me", tb.AccessToken, "", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("next window: status %d, want 200", resp.StatusCode)
	}
	if st := e.srv.Stats(); st.RateLimited != 2 || st.APIRequests != 7 {
		t.Errorf("stats %+v: want 2 rate limited of 7 API requests", st)
	}
}

// Many clients at once, for the race detector and for lost updates.
func TestConcurrentUse(t *testing.T) {
	e := newEnv(t)
	const workers, rounds = 8, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				if err := oneSession(e, fmt.Sprintf("w%d-r%d", w, r)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range workers * rounds {
			_ = e.srv.Stats()
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := e.srv.Stats()
	if st.CodeExchanges != workers*rounds || st.Refreshes != workers*rounds || st.GrantRevocations != 0 {
		t.Errorf("stats %+v: want %d exchanges and refreshes, no revocation", st, workers*rounds)
	}
	resp, _ := e.api(http.MethodGet, "/rest/v1.0/projects?company_id="+demoCompany, e.login().AccessToken, demoCompany, "")
	if want := strconv.Itoa(emulator.DemoProjectCount + workers*rounds); resp.Header.Get("Total") != want {
		t.Errorf("Total %q, want %s: a concurrent create was lost", resp.Header.Get("Total"), want)
	}
}

// oneSession logs in, refreshes, creates a project and lists, reporting
// failures as errors since it runs off the test goroutine.
func oneSession(e *env, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := e.hc.Get(e.base + "/oauth/authorize?" + authQuery(appID, redirect, name, s256(verifier), "S256").Encode())
	if err != nil {
		return err
	}
	page := readAll(resp)
	m := requestIDRE.FindStringSubmatch(page)
	if m == nil {
		return fmt.Errorf("%s: no consent form", name)
	}
	resp, err = e.hc.PostForm(e.base+"/oauth/authorize", url.Values{"request_id": {m[1]}, "decision": {"allow"}})
	if err != nil {
		return err
	}
	readAll(resp)
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("state") != name {
		return fmt.Errorf("%s: redirect %q", name, resp.Header.Get("Location"))
	}
	var tb tokenBody
	for _, form := range []url.Values{exchangeForm(loc.Query().Get("code"), redirect, verifier), nil} {
		if form == nil {
			form = refreshForm(tb.RefreshToken)
		}
		resp, err = e.hc.PostForm(e.base+"/oauth/token", form)
		if err != nil {
			return err
		}
		if err := decodeInto(resp, &tb); err != nil || tb.AccessToken == "" {
			return fmt.Errorf("%s: token request: %v %s", name, err, tb.Error)
		}
	}
	body := `{"company_id":` + demoCompany + `,"project":{"name":"` + name + `"}}`
	for _, c := range []struct{ method, path, body string }{
		{http.MethodPost, "/rest/v1.0/projects", body},
		{http.MethodGet, "/rest/v1.0/projects?company_id=" + demoCompany + "&page=2", ""},
	} {
		req, _ := http.NewRequestWithContext(ctx, c.method, e.base+c.path, strings.NewReader(c.body))
		req.Header.Set("Authorization", "Bearer "+tb.AccessToken)
		req.Header.Set("Procore-Company-Id", demoCompany)
		req.Header.Set("Content-Type", "application/json")
		resp, err := e.hc.Do(req)
		if err != nil {
			return err
		}
		readAll(resp)
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("%s: %s %s: status %d", name, c.method, c.path, resp.StatusCode)
		}
	}
	return nil
}

func TestStartAndClose(t *testing.T) {
	srv := emulator.New(emulator.Config{Clients: []emulator.Client{{ID: svcID, Secret: svcSecret, ServiceAccount: true}}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	base, err := srv.Start(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Fatalf("base URL %q", base)
	}
	if _, err := srv.Start(ctx, "127.0.0.1:0"); err == nil {
		t.Error("second Start succeeded")
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.PostForm(base+"/oauth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {svcID}, "client_secret": {svcSecret}})
	if err != nil {
		t.Fatal(err)
	}
	readAll(resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("token on the started server: status %d", resp.StatusCode)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	hc.CloseIdleConnections()
	if _, err := hc.Get(base + "/rest/v1.0/me"); err == nil {
		t.Error("the server still answers after Close")
	}
	if _, err := srv.Start(ctx, "127.0.0.1:0"); err == nil {
		t.Error("Start after Close succeeded")
	}
}

func TestStartStopsWithContext(t *testing.T) {
	srv := emulator.New(emulator.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	base, err := srv.Start(ctx, "localhost:0")
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Get(base + "/rest/v1.0/me")
	if err != nil {
		t.Fatal(err)
	}
	readAll(resp)
	cancel()
	// Close runs on a goroutine: poll until connections are refused. The
	// bound only stops a broken build from hanging; it times nothing.
	for i := 0; ; i++ {
		hc.CloseIdleConnections()
		resp, err := hc.Get(base + "/rest/v1.0/me")
		if err != nil {
			break
		}
		readAll(resp)
		if i == 5000 {
			t.Fatal("the server still answers after its context ended")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestStartRefusesNonLoopback(t *testing.T) {
	srv := emulator.New(emulator.Config{})
	if base, err := srv.Start(context.Background(), "0.0.0.0:0"); err == nil {
		srv.Close()
		t.Fatalf("Start on 0.0.0.0 succeeded with %s", base)
	}
}
