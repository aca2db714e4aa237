package emulator_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/emulator"
)

const (
	appID     = "demo:app+1"    // needs form-encoding inside HTTP Basic too
	appSecret = "s3cr:t+/%&?=x" // needs form-encoding inside HTTP Basic
	appName   = "Demo <Integration> & Co"
	loopID    = "loopback-app" // no registered redirect URIs: any loopback URI
	loopSec   = "loopback-secret"
	svcID     = "service-app"
	svcSecret = "service-secret"
	pubID     = "public-app" // no secret: PKCE required
	redirect  = "http://127.0.0.1:8765/callback"
	issuer    = "https://login.procore.example"
	verifier  = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-verifier"
)

// clock is a settable Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is an emulator behind an httptest server on 127.0.0.1.
type env struct {
	t     testing.TB
	srv   *emulator.Server
	base  string
	clock *clock
	hc    *http.Client // does not follow redirects
}

func newEnv(t testing.TB, mutate ...func(*emulator.Config)) *env {
	t.Helper()
	clk := &clock{t: time.Date(2025, time.March, 1, 12, 0, 0, 0, time.UTC)}
	cfg := emulator.Config{
		Clients: []emulator.Client{
			{ID: appID, Secret: appSecret, Name: appName, RedirectURIs: []string{redirect, emulator.OutOfBandURI}},
			{ID: loopID, Secret: loopSec},
			{ID: svcID, Secret: svcSecret, ServiceAccount: true},
			{ID: pubID, RedirectURIs: []string{redirect}},
		},
		Now:    clk.Now,
		Issuer: issuer,
	}
	for _, m := range mutate {
		m(&cfg)
	}
	srv := emulator.New(cfg)
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return &env{
		t: t, srv: srv, base: ts.URL, clock: clk,
		hc: &http.Client{
			Transport:     ts.Client().Transport,
			Timeout:       10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// do sends req and returns the response with its body read.
func (e *env) do(req *http.Request) (*http.Response, []byte) {
	e.t.Helper()
	resp, err := e.hc.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: reading body: %v", req.Method, req.URL.Path, err)
	}
	return resp, body
}

func (e *env) get(path string) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.base+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.do(req)
}

func s256(v string) string {
	sum := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

var (
	requestIDRE = regexp.MustCompile(`name="request_id" value="([^"]+)"`)
	regexpCode  = regexp.MustCompile(`<code id="code">([^<]+)</code>`)
)

// consent opens the consent page for q and returns its request id.
func (e *env) consent(q url.Values) string {
	e.t.Helper()
	resp, body := e.get("/oauth/authorize?" + q.Encode())
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("GET /oauth/authorize: status %d, body %s", resp.StatusCode, body)
	}
	m := requestIDRE.FindSubmatch(body)
	if m == nil {
		e.t.Fatalf("consent page has no request_id: %s", body)
	}
	return string(m[1])
}

// decide posts the consent form.
func (e *env) decide(requestID, decision string) (*http.Response, []byte) {
	e.t.Helper()
	form := url.Values{"request_id": {requestID}, "decision": {decision}}
	req, err := http.NewRequest(http.MethodPost, e.base+"/oauth/authorize", strings.NewReader(form.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return e.do(req)
}

func authQuery(clientID, redirectURI, state, challenge, method string) url.Values {
	q := url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirectURI}, "state": {state}}
	if challenge != "" {
		q.Set("code_challenge", challenge)
	}
	if method != "" {
		q.Set("code_challenge_method", method)
	}
	return q
}

// code runs the consent flow with Allow and returns the code from the redirect.
func (e *env) code(q url.Values) string {
	e.t.Helper()
	resp, body := e.decide(e.consent(q), "allow")
	if resp.StatusCode != http.StatusFound {
		e.t.Fatalf("POST /oauth/authorize: status %d, body %s", resp.StatusCode, body)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		e.t.Fatal(err)
	}
	c := loc.Query().Get("code")
	if c == "" {
		e.t.Fatalf("redirect %s has no code", loc)
	}
	return c
}

// tokenBody is a token response or an OAuth error.
type tokenBody struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	CreatedAt    int64  `json:"created_at"`
	Error        string `json:"error"`
	Description  string `json:"error_description"`
}

// postToken sends form-encoded parameters to /oauth/token.
func (e *env) postToken(form url.Values) (int, tokenBody, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.base+"/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return e.tokenRequest(req)
}

func (e *env) tokenRequest(req *http.Request) (int, tokenBody, []byte) {
	e.t.Helper()
	resp, raw := e.do(req)
	var tb tokenBody
	if err := json.Unmarshal(raw, &tb); err != nil {
		e.t.Fatalf("token response is not JSON (status %d): %s", resp.StatusCode, raw)
	}
	return resp.StatusCode, tb, raw
}

func exchangeForm(code, redirectURI, codeVerifier string) url.Values {
	f := url.Values{"grant_type": {"authorization_code"}, "client_id": {appID}, "client_secret": {appSecret},
		"code": {code}, "redirect_uri": {redirectURI}}
	if codeVerifier != "" {
		f.Set("code_verifier", codeVerifier)
	}
	return f
}

func refreshForm(refreshToken string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "client_id": {appID}, "client_secret": {appSecret}, "refresh_token": {refreshToken}}
}

// login runs the whole code flow with PKCE for appID and returns the tokens.
func (e *env) login() tokenBody {
	e.t.Helper()
	c := e.code(authQuery(appID, redirect, "st", s256(verifier), "S256"))
	status, tb, raw := e.postToken(exchangeForm(c, redirect, verifier))
	if status != http.StatusOK {
		e.t.Fatalf("code exchange: status %d, body %s", status, raw)
	}
	return tb
}

// refresh uses rt and fails the test unless it works.
func (e *env) refresh(rt string) tokenBody {
	e.t.Helper()
	status, tb, raw := e.postToken(refreshForm(rt))
	if status != http.StatusOK {
		e.t.Fatalf("refresh: status %d, body %s", status, raw)
	}
	return tb
}

// api calls the API host; companyID "" sends no Procore-Company-Id.
func (e *env) api(method, path, token, companyID, body string) (*http.Response, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.base+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if companyID != "" {
		req.Header.Set("Procore-Company-Id", companyID)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return e.do(req)
}

var (
	demoCompany   = strconv.FormatInt(emulator.DemoCompanyID, 10)
	secondCompany = strconv.FormatInt(emulator.SecondCompanyID, 10)
)

// apiError is Procore's generic error body.
type apiError struct {
	Error struct {
		Code    string          `json:"code"`
		Message string          `json:"message"`
		Details json.RawMessage `json:"details"`
	} `json:"error"`
}

// validationErrors is Procore's 422 body.
type validationErrors struct {
	Errors map[string][]string `json:"errors"`
}

func decode[T any](t testing.TB, raw []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("decoding %T from %s: %v", v, raw, err)
	}
	return v
}

func readAll(resp *http.Response) string {
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func decodeInto(resp *http.Response, v any) error {
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// apiWith is api with extra request headers.
func (e *env) apiWith(method, path, token, companyID, body string, extra http.Header) (*http.Response, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.base+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if companyID != "" {
		req.Header.Set("Procore-Company-Id", companyID)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, vs := range extra {
		req.Header[k] = vs
	}
	return e.do(req)
}

// walk follows a paged list from path through its Link rel="next" headers
// to the end, checking Total, Per-Page, the Link rels and the rate-limit
// headers of every page, and returns every item and the number of pages.
func (e *env) walk(t *testing.T, path, token, companyID string) ([]map[string]any, int) {
	t.Helper()
	var items []map[string]any
	pages, total := 0, -1
	for next := e.base + path; next != ""; {
		if !strings.HasPrefix(next, e.base+"/") {
			t.Fatalf("Link URL %s is not absolute on %s", next, e.base)
		}
		resp, body := e.api(http.MethodGet, strings.TrimPrefix(next, e.base), token, companyID, "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: status %d, body %s", next, resp.StatusCode, body)
		}
		pages++
		n, err := strconv.Atoi(resp.Header.Get("Total"))
		if err != nil || (total >= 0 && n != total) || resp.Header.Get("Per-Page") == "" {
			t.Fatalf("GET %s: Total %q (before %d), Per-Page %q", next, resp.Header.Get("Total"), total, resp.Header.Get("Per-Page"))
		}
		total = n
		if resp.Header.Get("X-Rate-Limit-Remaining") == "" {
			t.Errorf("GET %s: no X-Rate-Limit-Remaining", next)
		}
		l := links(t, resp.Header)
		if l["first"] == "" || l["last"] == "" || (pages > 1) != (l["prev"] != "") {
			t.Errorf("GET %s: page %d has links %v", next, pages, l)
		}
		page := decode[[]map[string]any](t, body)
		if page == nil {
			t.Fatalf("GET %s: body %s is not a JSON array", next, body)
		}
		items = append(items, page...)
		next = l["next"]
		if pages > 10000 {
			t.Fatal("the Link headers never end")
		}
	}
	if len(items) != total {
		t.Errorf("GET %s: walked %d items, Total says %d", path, len(items), total)
	}
	return items, pages
}

// id reads a JSON number id from a decoded object.
func id(t testing.TB, v map[string]any) string {
	t.Helper()
	n, ok := v["id"].(float64)
	if !ok {
		t.Fatalf("object %v has no numeric id", v)
	}
	return strconv.FormatInt(int64(n), 10)
}

// serviceToken gets a client_credentials access token (ServiceAccountUserID).
func (e *env) serviceToken() string {
	e.t.Helper()
	status, tb, raw := e.postToken(url.Values{"grant_type": {"client_credentials"}, "client_id": {svcID}, "client_secret": {svcSecret}})
	if status != http.StatusOK {
		e.t.Fatalf("client_credentials: status %d, body %s", status, raw)
	}
	return tb.AccessToken
}
