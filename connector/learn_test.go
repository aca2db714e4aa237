package connector_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/definitions"
)

// learnProvider is a small provider on loopback that does what QuickBooks,
// Salesforce, Slack and Xero do: a realmId next to the code on the
// callback, the API host (instance_url) and a nested bot token in the token
// response, and a list of tenants at /connections for the new token.
type learnProvider struct {
	login, api *httptest.Server
	mu         sync.Mutex
	instance   string // what the token response names as the API host; "" leaves it out
	refreshed  int
	apiCalls   []http.Header
	apiPaths   []string
	tenants    []map[string]any
}

const (
	learnAccess = "LEARN-ACCESS-0a1b2c3d"
	learnBot    = "xoxb-BOT-SECRET-77aa88bb"
)

func newLearnProvider(t *testing.T) *learnProvider {
	p := &learnProvider{tenants: []map[string]any{
		{"id": "c1", "tenantId": "tenant-aaa", "tenantName": "Demo Company (US)"},
		{"id": "c2", "tenantId": "tenant-bbb", "tenantName": "Acme Ltd"},
	}}
	p.api = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.apiCalls = append(p.apiCalls, r.Header.Clone())
		p.apiPaths = append(p.apiPaths, r.URL.Path)
		p.mu.Unlock()
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer LEARN-ACCESS-") {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok":true}`)
	}))
	t.Cleanup(p.api.Close)
	p.instance = p.api.URL
	p.login = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/authorize":
			q := r.URL.Query()
			cb := q.Get("redirect_uri") + "?code=CODE-1&realmId=9130355&state=" + url.QueryEscape(q.Get("state"))
			http.Redirect(w, r, cb, http.StatusFound)
		case "/token":
			_ = r.ParseForm()
			p.mu.Lock()
			resp := map[string]any{"access_token": learnAccess, "token_type": "bearer", "expires_in": 3600, "refresh_token": "LEARN-REFRESH"}
			if r.PostForm.Get("grant_type") == "refresh_token" {
				p.refreshed++
				resp["access_token"] = fmt.Sprintf("%s-%d", learnAccess, p.refreshed)
				resp["bot"] = map[string]any{"bot_access_token": fmt.Sprintf("%s-%d", learnBot, p.refreshed)}
			} else {
				resp["bot"] = map[string]any{"bot_access_token": learnBot}
				resp["team"] = map[string]any{"id": "T0123"}
				if p.instance != "" {
					resp["instance_url"] = p.instance
				}
			}
			p.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(resp)
		case "/connections":
			if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer "+learnAccess) {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			p.mu.Lock()
			defer p.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(p.tenants)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(p.login.Close)
	return p
}

func learnDefinition(t *testing.T, p *learnProvider, learnURL string) *definitions.Definition {
	t.Helper()
	if learnURL == "" {
		learnURL = "${LoginUrl}/connections"
	}
	src := fmt.Sprintf(`name: learner
title: Learned values
base_url: ${InstanceUrl}/services/data
environments:
  production:
    login_url: %s
fields:
  InstanceUrl:
    type: url
    pattern: "http://127\\.0\\.0\\.1:[0-9]+"
    learn: {from: token_response, path: [urls.instance, instance_url]}
  RealmId:
    pattern: "[0-9]+"
    required: true
    learn: {from: callback, param: realmId}
  TeamId:
    learn: {from: token_response, path: team.id}
  BotToken:
    secret: true
    learn: {from: token_response, path: /bot/bot_access_token}
  TenantId:
    learn: {from: request, url: "%s", path: tenantId, label: tenantName, choose: ask}
auth:
  scheme: oauth
  oauth:
    version: V2
    initiate_uri: ${LoginUrl}/authorize
    token_request_uri: ${LoginUrl}/token
request:
  headers:
    Xero-Tenant-Id: ${TenantId}
    X-Bot: ${BotToken}
actions:
  company_info:
    path: /v3/company/${RealmId}/companyinfo/${RealmId}
`, p.login.URL, learnURL)
	set, err := definitions.Parse(nil, definitions.File{Path: "learner.yaml", Data: []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := set.Get("learner")
	return d
}

func learnConnection(d *definitions.Definition) *connector.Connection {
	return &connector.Connection{Definition: d, ClientID: clientID, ClientSecret: clientSecret, RedirectURI: redirectURI}
}

// connectLearning runs the code flow like a browser would.
func connectLearning(t *testing.T, src *connector.Source) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	attempt, err := src.Flow().AuthCodeURL()
	if err != nil {
		t.Fatal(err)
	}
	_, err = src.ExchangeAndStore(ctx, attempt, approve(t, attempt.URL))
	return err
}

// TestLearnedValues connects against the loopback provider and checks each
// source of learned values, that they are kept with the token and fill the
// API's host, path and headers, that a refresh renews what it carries
// again and keeps the rest, and that a value can change without the token.
func TestLearnedValues(t *testing.T) {
	ctx := context.Background()
	p := newLearnProvider(t)
	d := learnDefinition(t, p, "")
	st := store.NewMemory()
	conn := learnConnection(d)

	// Before connecting the API host is unknown, and NewAPI says why.
	if _, err := connector.NewAPI(conn, st, nil); err == nil || !strings.Contains(err.Error(), "InstanceUrl (from the token response's urls.instance or instance_url)") || !strings.Contains(err.Error(), "connector connect") {
		t.Fatalf("NewAPI before connecting: %v; want it to name the learned host and say connect", err)
	}

	src, err := connector.NewSource(conn, st)
	if err != nil {
		t.Fatal(err)
	}
	var offered connector.Choice
	src.Flow().Choose = func(_ context.Context, c connector.Choice) (int, error) {
		offered = c
		return 1, nil
	}
	if err := connectLearning(t, src); err != nil {
		t.Fatal(err)
	}
	if offered.Field != "TenantId" || len(offered.Options) != 2 || offered.Options[1].Label != "Acme Ltd" || offered.Options[1].Value != "tenant-bbb" {
		t.Errorf("the chooser was offered %+v; want both tenants with their names", offered)
	}
	rec, err := st.Get(ctx, conn.Key())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"InstanceUrl": p.api.URL, "RealmId": "9130355", "TeamId": "T0123", "BotToken": learnBot, "TenantId": "tenant-bbb"}
	for k, v := range want {
		if rec.Token.Values[k] != v {
			t.Errorf("stored value %s = %q, want %q (all: %v)", k, rec.Token.Values[k], v, len(rec.Token.Values))
		}
	}
	if s := fmt.Sprint(rec.Token, rec); strings.Contains(s, learnBot) {
		t.Errorf("a printed token shows the learned secret: %s", s)
	}
	if rec.Binding.APIOrigin != "learned:InstanceUrl" {
		t.Errorf("binding API origin = %q; want it to name the learned field", rec.Binding.APIOrigin)
	}

	// The API goes to the learned host, with the learned path and headers.
	api, err := connector.NewAPI(conn, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	if api.BaseURL() != p.api.URL+"/services/data" {
		t.Errorf("BaseURL = %s, want the learned instance", api.BaseURL())
	}
	resp, err := api.Call(ctx, "company_info", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	p.mu.Lock()
	h, path := p.apiCalls[0], p.apiPaths[0]
	p.mu.Unlock()
	if path != "/services/data/v3/company/9130355/companyinfo/9130355" || h.Get("Xero-Tenant-Id") != "tenant-bbb" || h.Get("X-Bot") != learnBot {
		t.Errorf("API request %s with tenant %q bot %q; want the learned realm in the path and tenant and bot in headers", path, h.Get("Xero-Tenant-Id"), h.Get("X-Bot"))
	}
	// The host is held to the learned origin.
	if resp, err := api.Client().Get(p.login.URL + "/connections"); err == nil {
		resp.Body.Close()
		t.Error("the API client sent a request to the login host")
	}

	// A refresh renews the bot token it carries again, and keeps the rest.
	if _, err := src.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	rec, _ = st.Get(ctx, conn.Key())
	if rec.Token.Values["BotToken"] != learnBot+"-1" || rec.Token.Values["InstanceUrl"] != p.api.URL || rec.Token.Values["TenantId"] != "tenant-bbb" || rec.Token.Values["RealmId"] != "9130355" {
		t.Errorf("after a refresh the values are %v; want the bot token renewed and the others kept", keys(rec.Token.Values))
	}

	// Changing a value keeps the token.
	before := rec.Token.AccessToken
	if err := src.SetValues(ctx, map[string]string{"TenantId": "tenant-aaa"}); err != nil {
		t.Fatal(err)
	}
	rec, _ = st.Get(ctx, conn.Key())
	if rec.Token.AccessToken != before || rec.Token.Values["TenantId"] != "tenant-aaa" {
		t.Errorf("SetValues: token kept %v, tenant %q", rec.Token.AccessToken == before, rec.Token.Values["TenantId"])
	}
	for _, bad := range []struct {
		vals map[string]string
		want string
	}{
		{map[string]string{"Nope": "x"}, `learns no value "Nope" (learned: InstanceUrl, RealmId, TeamId, BotToken, TenantId)`},
		{map[string]string{"RealmId": "abc"}, `"abc" does not match the pattern [0-9]+`},
		{map[string]string{"InstanceUrl": "https://evil.example"}, `does not match the pattern`},
	} {
		if err := src.SetValues(ctx, bad.vals); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("SetValues(%v) = %v; want %q", bad.vals, err, bad.want)
		}
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestLearnedValueRefused: what the provider sends is checked like a
// field's value before it can form a host; nothing is stored.
func TestLearnedValueRefused(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		instance string
		learnURL string
		chooser  bool
		want     string
	}{
		{"host outside the pattern", "https://evil.example", "", true, `the value learned for InstanceUrl from the token response's urls.instance or instance_url is refused: "https://evil.example" does not match the pattern`},
		{"no host at all", "", "", true, "it is not connected yet"},
		{"several tenants and nobody to ask", "", "", false, "offers 2 choices (Demo Company (US), Acme Ltd) and nobody can be asked here; set TenantId in the connection"},
		{"learn request to another origin", "", "http://127.0.0.1:1/connections", true, "is neither the API's, the login URL's nor the token endpoint's origin, so the access token is not sent there"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newLearnProvider(t)
			if tc.instance != "" || tc.name == "no host at all" {
				p.instance = tc.instance
			}
			d := learnDefinition(t, p, tc.learnURL)
			st := store.NewMemory()
			conn := learnConnection(d)
			src, err := connector.NewSource(conn, st)
			if err != nil {
				t.Fatal(err)
			}
			if tc.chooser {
				src.Flow().Choose = func(context.Context, connector.Choice) (int, error) { return 0, nil }
			}
			err = connectLearning(t, src)
			if tc.name == "no host at all" {
				if err != nil {
					t.Fatal(err) // connecting works; the API cannot be used
				}
				_, err = connector.NewAPI(conn, st, nil)
			} else if _, gerr := st.Get(ctx, conn.Key()); gerr == nil {
				t.Error("a refused connection stored a token")
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v; want %q", err, tc.want)
			}
			for _, secret := range []string{learnAccess, learnBot, clientSecret, "CODE-1"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q shows a secret", err)
				}
			}
		})
	}
}

// A realmId the definition requires but the callback lacks fails the
// connect with what to check; ExchangeCode (no callback) cannot learn it.
func TestLearnedRequiredMissing(t *testing.T) {
	p := newLearnProvider(t)
	d := learnDefinition(t, p, "")
	src, err := connector.NewSource(learnConnection(d), store.NewMemory())
	if err != nil {
		t.Fatal(err)
	}
	src.Flow().Choose = func(context.Context, connector.Choice) (int, error) { return 0, nil }
	_, err = src.Flow().ExchangeCode(context.Background(), "CODE-1", "")
	if err == nil || !strings.Contains(err.Error(), "connecting did not yield RealmId, which definition learner requires (learned from the callback's realmId parameter); nothing was stored") {
		t.Fatalf("ExchangeCode without the callback: %v", err)
	}
}
