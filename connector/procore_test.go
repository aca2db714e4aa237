package connector_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/emulator"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/token"
	"github.com/connector-engine/connector/definitions"
)

// procore is the built-in procore definition connected to a running
// emulator through the authorization code flow, as a user would.
type procore struct {
	emu *emulator.Server
	api *connector.API
	st  store.Store
}

func newProcore(t *testing.T, cfg emulator.Config) *procore {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg.Clients = []emulator.Client{{ID: "procore-test", Secret: "procore-secret-&?%+"}}
	emu := emulator.New(cfg)
	base, err := emu.Start(context.Background(), "127.0.0.1:0") // serves until Close
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	def, err := definitions.Builtin().Lookup("procore")
	if err != nil {
		t.Fatal(err)
	}
	c := &connector.Connection{
		Definition: def, ClientID: "procore-test", ClientSecret: "procore-secret-&?%+",
		RedirectURI: "http://127.0.0.1:9/callback", BaseURL: base, LoginURL: base,
		Fields: map[string]string{"CompanyId": strconv.FormatInt(emulator.DemoCompanyID, 10)},
	}
	st := store.NewMemory()
	api, err := connector.NewAPI(c, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := authorizeAtEmulator(ctx, api.Source().Flow())
	if err != nil {
		t.Fatal(err)
	}
	if err := api.Source().Store(ctx, tok); err != nil {
		t.Fatal(err)
	}
	return &procore{emu: emu, api: api, st: st}
}

var consentRequestID = regexp.MustCompile(`name="request_id" value="([^"]+)"`)

// authorizeAtEmulator plays the user on the emulator's consent page and
// exchanges the code the redirect carries.
func authorizeAtEmulator(ctx context.Context, flow *connector.Flow) (*token.Token, error) {
	attempt, err := flow.AuthCodeURL()
	if err != nil {
		return nil, err
	}
	client := &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Get(attempt.URL)
	if err != nil {
		return nil, err
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := consentRequestID.FindSubmatch(page)
	if m == nil {
		return nil, fmt.Errorf("consent page (HTTP %d) has no request_id", resp.StatusCode)
	}
	u, _ := url.Parse(attempt.URL)
	u.RawQuery = ""
	resp, err = client.PostForm(u.String(), url.Values{"request_id": {string(m[1])}, "decision": {"allow"}})
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound {
		return nil, fmt.Errorf("consent answered HTTP %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return flow.Exchange(ctx, attempt, loc.Query())
}

// call runs a non-listing action and decodes its JSON answer (nil for 204).
func (p *procore) call(t *testing.T, name string, input map[string]any) map[string]any {
	t.Helper()
	resp, err := p.api.Call(context.Background(), name, input)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNoContent {
		return nil
	}
	var out any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s: decoding the answer: %v", name, err)
	}
	if obj, ok := out.(map[string]any); ok {
		return obj
	}
	return map[string]any{"items": out}
}

// all pages through a listing action to the end.
func (p *procore) all(t *testing.T, name string, input map[string]any) ([]map[string]any, connector.Progress) {
	t.Helper()
	var last connector.Progress
	var items []map[string]any
	for raw, err := range p.api.CallItems(context.Background(), name, input, func(pr connector.Progress) { last = pr }) {
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var item map[string]any
		if err := json.Unmarshal(raw, &item); err != nil {
			t.Fatalf("%s: item %s: %v", name, raw, err)
		}
		items = append(items, item)
	}
	return items, last
}

func id(t *testing.T, obj map[string]any) int64 {
	t.Helper()
	f, ok := obj["id"].(float64)
	if !ok || f <= 0 {
		t.Fatalf("no id in %v", obj)
	}
	return int64(f)
}

// TestProcoreActions calls every action the built-in procore definition
// ships against the emulator: lists page to the end, creates are read back.
func TestProcoreActions(t *testing.T) {
	p := newProcore(t, emulator.Config{Seed: emulator.Seed{RFIs: 130, TimecardEntries: 3, Submittals: 2, Files: 3}})
	called := map[string]bool{}
	all := func(name string, input map[string]any) []map[string]any {
		called[name] = true
		items, pr := p.all(t, name, input)
		if pr.Total > 0 && pr.Total != len(items) {
			t.Errorf("%s: %d items, but the API said Total %d", name, len(items), pr.Total)
		}
		return items
	}
	call := func(name string, input map[string]any) map[string]any {
		called[name] = true
		return p.call(t, name, input)
	}

	if me := call("me", nil); id(t, me) != emulator.DemoUserID {
		t.Errorf("me = %v", me)
	}
	if cs := all("list_companies", nil); len(cs) != 2 {
		t.Errorf("list_companies: %d companies, want 2", len(cs))
	}
	projects := all("list_projects", nil)
	if len(projects) != emulator.DemoProjectCount {
		t.Fatalf("list_projects: %d projects, want every one of %d (3 pages)", len(projects), emulator.DemoProjectCount)
	}
	created := call("create_project", map[string]any{"project": map[string]any{"name": "Tower & Annex", "project_number": "T-100"}})
	pid := id(t, created)
	if got := call("get_project", map[string]any{"id": pid}); got["name"] != "Tower & Annex" {
		t.Errorf("get_project = %v", got)
	}
	if n := len(all("list_projects", map[string]any{"status": "All"})); n != emulator.DemoProjectCount+1 {
		t.Errorf("list_projects after create: %d, want %d", n, emulator.DemoProjectCount+1)
	}

	users := all("list_company_users", nil)
	user := call("create_company_user", map[string]any{"user": map[string]any{"last_name": "O'Neil", "email_address": "o.neil@example.com"}})
	if n := len(all("list_company_users", nil)); n != len(users)+1 {
		t.Errorf("list_company_users after create: %d, want %d", n, len(users)+1)
	}
	call("invite_company_user", map[string]any{"id": id(t, user)})

	seeded := id(t, projects[0])
	if len(all("list_project_users", map[string]any{"project_id": seeded})) == 0 {
		t.Error("list_project_users: none")
	}
	entries := all("list_timecard_entries", map[string]any{"project_id": seeded})
	call("create_timecard_entry", map[string]any{"project_id": seeded, "timecard_entry": map[string]any{"hours": "7.5", "date": "2026-11-30"}})
	if n := len(all("list_timecard_entries", map[string]any{"project_id": seeded})); n != len(entries)+1 {
		t.Errorf("list_timecard_entries after create: %d, want %d", n, len(entries)+1)
	}
	if n := len(all("list_rfis", map[string]any{"project_id": seeded})); n != 130 {
		t.Errorf("list_rfis: %d, want all 130 (2 pages)", n)
	}
	rfi := call("create_rfi", map[string]any{"project_id": seeded, "rfi": map[string]any{"subject": "Rebar spec", "question": map[string]any{"body": "Which grade?"}}})
	if got := call("get_rfi", map[string]any{"project_id": seeded, "id": id(t, rfi)}); got["subject"] != "Rebar spec" {
		t.Errorf("get_rfi = %v", got)
	}
	if n := len(all("list_submittals", map[string]any{"project_id": seeded})); n != 2 {
		t.Errorf("list_submittals: %d, want 2", n)
	}
	vendors := all("list_vendors", nil)
	call("create_vendor", map[string]any{"vendor": map[string]any{"name": "Acme Steel"}})
	if n := len(all("list_vendors", nil)); n != len(vendors)+1 {
		t.Errorf("list_vendors after create: %d, want %d", n, len(vendors)+1)
	}

	root := call("list_folders", map[string]any{"project_id": seeded})
	folders, _ := root["folders"].([]any)
	if len(folders) == 0 {
		t.Fatalf("list_folders: no folders in %v", root)
	}
	folderID := id(t, folders[0].(map[string]any))
	if got := call("get_folder", map[string]any{"project_id": seeded, "id": folderID}); id(t, got) != folderID {
		t.Errorf("get_folder = %v", got)
	}
	if n := len(all("list_files", map[string]any{"project_id": seeded, "folder_id": folderID})); n != 3 {
		t.Errorf("list_files: %d, want 3", n)
	}

	// Webhooks: the emulator delivers to the hook's loopback destination.
	deliveries := make(chan string, 8)
	destSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		deliveries <- string(b)
	}))
	t.Cleanup(destSrv.Close)
	dest := destSrv.URL
	hook := call("create_webhook_hook", map[string]any{"hook": map[string]any{"namespace": "connector-test", "destination_url": dest + "/events"}})
	hookID := id(t, hook)
	trigger := call("create_webhook_trigger", map[string]any{"hook_id": hookID, "trigger": map[string]any{"resource_name": "Projects", "event_type": "create"}})
	if hooks := all("list_webhook_hooks", nil); !slices.ContainsFunc(hooks, func(h map[string]any) bool { return id(t, h) == hookID }) {
		t.Errorf("list_webhook_hooks has no hook %d: %v", hookID, hooks)
	}
	if n := len(all("list_webhook_triggers", map[string]any{"hook_id": hookID})); n != 1 {
		t.Errorf("list_webhook_triggers: %d, want 1", n)
	}
	call("create_project", map[string]any{"project": map[string]any{"name": "Hooked"}})
	select {
	case body := <-deliveries:
		if !strings.Contains(body, `"create"`) {
			t.Errorf("delivery %s", body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no webhook delivery after creating a project")
	}
	if n := len(all("list_webhook_deliveries", map[string]any{"hook_id": hookID})); n == 0 {
		t.Error("list_webhook_deliveries: none")
	}
	call("delete_webhook_trigger", map[string]any{"hook_id": hookID, "id": id(t, trigger)})
	if n := len(all("list_webhook_triggers", map[string]any{"hook_id": hookID})); n != 0 {
		t.Errorf("list_webhook_triggers after delete: %d", n)
	}
	call("delete_webhook_hook", map[string]any{"hook_id": hookID})
	if hooks := all("list_webhook_hooks", nil); len(hooks) != 0 {
		t.Errorf("list_webhook_hooks after delete: %v", hooks)
	}

	def := p.api.Definition()
	for _, a := range def.Actions {
		if !called[a.Name] {
			t.Errorf("action %s is not exercised by this test", a.Name)
		}
	}
	if s := p.emu.Stats(); s.GrantRevocations != 0 || s.RateLimited != 0 {
		t.Errorf("emulator stats %+v", s)
	}
}

// TestProcoreActionsRejectBadInput sends, for every action with inputs,
// input its schema forbids: each gets an InputError naming the problem and
// no request reaches the emulator.
func TestProcoreActionsRejectBadInput(t *testing.T) {
	p := newProcore(t, emulator.Config{})
	before := p.emu.Stats().APIRequests
	checked := 0
	for _, a := range p.api.Definition().Actions {
		var bad []map[string]any
		bad = append(bad, map[string]any{"no_such_input": 1})
		required := map[string]any{}
		for _, in := range a.Inputs {
			if in.Required {
				required[in.Name] = validSample(in)
			}
		}
		for _, in := range a.Inputs {
			if in.Required {
				missing := clone(required)
				delete(missing, in.Name)
				bad = append(bad, missing)
			}
			wrong := clone(required)
			switch in.Type {
			case "integer":
				wrong[in.Name] = "twelve"
				bad = append(bad, wrong, with(required, in.Name, 0))
			case "object":
				wrong[in.Name] = "not an object"
				bad = append(bad, wrong)
				if in.Required {
					bad = append(bad, with(required, in.Name, map[string]any{})) // its own required fields missing
				}
			case "string":
				if len(in.Enum) > 0 {
					bad = append(bad, with(required, in.Name, "not-one-of-them"))
				}
			}
		}
		for _, input := range bad {
			t.Run(a.Name, func(t *testing.T) {
				_, err := p.api.Call(context.Background(), a.Name, input)
				var ie *definitions.InputError
				if !errors.As(err, &ie) || len(ie.Problems) == 0 {
					t.Fatalf("input %v: err = %v, want an InputError", input, err)
				}
				if !strings.Contains(err.Error(), a.Name) {
					t.Errorf("error %q does not name the action", err)
				}
				checked++
			})
		}
	}
	if after := p.emu.Stats().APIRequests; after != before {
		t.Fatalf("%d requests reached the emulator for bad input", after-before)
	}
	t.Logf("%d bad inputs over %d actions, none sent", checked, len(p.api.Definition().Actions))
}

// validSample is a value the input's schema accepts, enough to isolate the
// one problem each bad input introduces.
func validSample(in definitions.Input) any {
	switch {
	case len(in.Enum) > 0:
		return in.Enum[0]
	case in.Type == "integer":
		return 562949954000001
	case in.Type == "object":
		return map[string]any{"name": "x", "last_name": "x", "email_address": "x@example.com", "hours": "1",
			"date": "2026-01-01", "subject": "x", "question": map[string]any{"body": "x"},
			"namespace": "x", "destination_url": "http://127.0.0.1:9/x", "resource_name": "Projects", "event_type": "create"}
	default:
		return "x"
	}
}

func clone(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func with(m map[string]any, k string, v any) map[string]any {
	out := clone(m)
	out[k] = v
	return out
}

// TestProcoreExpiredTokenRefreshesOnce: the emulator expires the access
// token before its time; the next call gets 401, refreshes once, replays the
// POST with its body, and the project is created once.
func TestProcoreExpiredTokenRefreshesOnce(t *testing.T) {
	p := newProcore(t, emulator.Config{})
	p.emu.ExpireAccessTokens(1)
	created := p.call(t, "create_project", map[string]any{"project": map[string]any{"name": "After 401"}})
	if created["name"] != "After 401" {
		t.Fatalf("created %v", created)
	}
	s := p.emu.Stats()
	if s.Refreshes != 1 || s.ExpiredAccessTokens != 1 || s.APIRequestsByRoute["POST /rest/v1.0/projects"] != 2 || s.GrantRevocations != 0 {
		t.Fatalf("stats: refreshes %d, expired %d, POSTs %d, revocations %d; want 1, 1, 2, 0",
			s.Refreshes, s.ExpiredAccessTokens, s.APIRequestsByRoute["POST /rest/v1.0/projects"], s.GrantRevocations)
	}
	n := 0
	for _, pr := range p.mustAll(t) {
		if pr["name"] == "After 401" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d projects named After 401, want 1", n)
	}
}

func (p *procore) mustAll(t *testing.T) []map[string]any {
	items, _ := p.all(t, "list_projects", map[string]any{"status": "All"})
	return items
}

// TestProcoreRetriesIdempotentCreate: a 503 on a POST is retried with the
// same Idempotency-Token, and the emulator creates the project once.
func TestProcoreRetriesIdempotentCreate(t *testing.T) {
	p := newProcore(t, emulator.Config{})
	p.emu.FailAPIRequests(2, http.StatusServiceUnavailable, http.Header{"Retry-After": {"0"}})
	p.call(t, "create_project", map[string]any{"project": map[string]any{"name": "Retried"}})
	s := p.emu.Stats()
	if s.FailedAPIRequests != 2 || s.APIRequestsByRoute["POST /rest/v1.0/projects"] != 3 {
		t.Fatalf("failed %d, POSTs %d; want 2, 3", s.FailedAPIRequests, s.APIRequestsByRoute["POST /rest/v1.0/projects"])
	}
	n := 0
	for _, pr := range p.mustAll(t) {
		if pr["name"] == "Retried" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d projects named Retried, want 1", n)
	}
}

// TestProcoreRateLimitWaitsForReset: with one request left in the window the
// client waits for the reset the emulator announces instead of taking a 429.
func TestProcoreRateLimitWaitsForReset(t *testing.T) {
	p := newProcore(t, emulator.Config{})
	p.emu.SetRateLimit(3, 2*time.Second)
	for range 5 {
		p.call(t, "me", nil)
	}
	if s := p.emu.Stats(); s.RateLimited != 0 {
		t.Fatalf("%d requests answered 429; the client should have waited for the reset", s.RateLimited)
	}
}
