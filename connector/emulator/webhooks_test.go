package emulator_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/connector-engine/connector/connector/emulator"
)

const hooksPath = "/rest/v1.0/webhooks/hooks"

func hookBody(company, dest string) string {
	return `{"company_id":` + company + `,"hook":{"api_version":"v2","namespace":"my-app","destination_url":"` + dest + `"}}`
}

func triggerBody(company, resource, event string) string {
	return `{"company_id":` + company + `,"api_version":"v2","trigger":{"resource_name":"` + resource + `","event_type":"` + event + `"}}`
}

func TestWebhookHooksAndTriggers(t *testing.T) {
	e := newEnv(t, withSmallSeed)
	tk := e.login().AccessToken
	q := "?company_id=" + demoCompany
	if resp, body := e.api(http.MethodGet, hooksPath+q, tk, demoCompany, ""); resp.StatusCode != 200 || string(body) != "[]" {
		t.Fatalf("no hooks yet: status %d, body %s", resp.StatusCode, body)
	}
	resp, body := e.api(http.MethodPost, hooksPath, tk, demoCompany, hookBody(demoCompany, "https://hooks.example.com/procore"))
	h := decode[map[string]any](t, body)
	if resp.StatusCode != http.StatusCreated || h["api_version"] != "v2" || h["namespace"] != "my-app" ||
		h["destination_url"] != "https://hooks.example.com/procore" || h["owned_by_company_id"] != float64(emulator.DemoCompanyID) {
		t.Fatalf("create hook: status %d, body %s", resp.StatusCode, body)
	}
	hp := hooksPath + "/" + id(t, h)
	_, body = e.api(http.MethodPost, hp+"/triggers", tk, demoCompany, triggerBody(demoCompany, "RFIs", "create"))
	trig := decode[map[string]any](t, body)

	tests := []struct {
		name, method, path, company, body string
		wantStatus                        int
		wantCode                          string   // of a 4xx other than 422
		want422                           []string // fields
		wantBody                          string
	}{
		{"list hooks", "GET", hooksPath + q, demoCompany, "", 200, "", nil, `"id":` + id(t, h)},
		{"list hooks without company_id", "GET", hooksPath, demoCompany, "", 400, "missing_company_id", nil, ""},
		{"list hooks, query and header differ", "GET", hooksPath + "?company_id=" + secondCompany, demoCompany, "", 403, "company_mismatch", nil, ""},
		{"the other company has none", "GET", hooksPath + "?company_id=" + secondCompany, secondCompany, "", 200, "", nil, "[]"},
		{"get hook", "GET", hp + q, demoCompany, "", 200, "", nil, `"namespace":"my-app"`},
		{"hook of another company", "GET", hp + "?company_id=" + secondCompany, secondCompany, "", 404, "not_found", nil, ""},
		{"hook without namespace and URL", "POST", hooksPath, demoCompany, `{"company_id":` + demoCompany + `,"hook":{}}`, 422, "", []string{"destination_url", "namespace"}, ""},
		{"hook with a bad URL and version", "POST", hooksPath, demoCompany,
			`{"company_id":` + demoCompany + `,"hook":{"namespace":"n","destination_url":"ftp://x","api_version":"v9"}}`, 422, "", []string{"api_version", "destination_url"}, ""},
		{"hook without company_id", "POST", hooksPath, demoCompany, `{"hook":{"namespace":"n","destination_url":"https://x"}}`, 400, "missing_company_id", nil, ""},
		{"hook, body company differs", "POST", hooksPath, demoCompany, hookBody(secondCompany, "https://x"), 403, "company_mismatch", nil, ""},
		{"hook without hook", "POST", hooksPath, demoCompany, `{"company_id":` + demoCompany + `}`, 400, "missing_hook", nil, ""},
		{"hook, malformed JSON", "POST", hooksPath, demoCompany, `{`, 400, "invalid_json", nil, ""},
		{"hook, api_version defaults to v2", "POST", hooksPath, demoCompany,
			`{"company_id":` + demoCompany + `,"hook":{"namespace":"n","destination_url":"http://127.0.0.1:9/x"}}`, 201, "", nil, `"api_version":"v2"`},
		{"list triggers", "GET", hp + "/triggers" + q, demoCompany, "", 200, "", nil, `"resource_name":"RFIs","event_type":"create","api_version":"v2"`},
		{"list triggers of an unknown hook", "GET", hooksPath + "/5/triggers" + q, demoCompany, "", 404, "not_found", nil, ""},
		{"duplicate trigger", "POST", hp + "/triggers", demoCompany, triggerBody(demoCompany, "RFIs", "create"), 422, "", []string{"event_type"}, ""},
		{"trigger with a bad event type", "POST", hp + "/triggers", demoCompany, triggerBody(demoCompany, "RFIs", "explode"), 422, "", []string{"event_type"}, ""},
		{"trigger without fields", "POST", hp + "/triggers", demoCompany, triggerBody(demoCompany, "", ""), 422, "", []string{"event_type", "resource_name"}, ""},
		{"trigger without trigger", "POST", hp + "/triggers", demoCompany, `{"company_id":` + demoCompany + `}`, 400, "missing_trigger", nil, ""},
		{"trigger, body company differs", "POST", hp + "/triggers", demoCompany, triggerBody(secondCompany, "RFIs", "update"), 403, "company_mismatch", nil, ""},
		{"trigger on an unknown hook", "POST", hooksPath + "/5/triggers", demoCompany, triggerBody(demoCompany, "RFIs", "update"), 404, "not_found", nil, ""},
		{"another trigger", "POST", hp + "/triggers", demoCompany, triggerBody(demoCompany, "RFIs", "update"), 201, "", nil, `"event_type":"update"`},
		{"deliveries", "GET", hp + "/deliveries" + q, demoCompany, "", 200, "", nil, "[]"},
		{"delete an unknown trigger", "DELETE", hp + "/triggers/77" + q, demoCompany, "", 404, "not_found", nil, ""},
		{"delete trigger without company_id", "DELETE", hp + "/triggers/" + id(t, trig), demoCompany, "", 400, "missing_company_id", nil, ""},
		{"delete trigger", "DELETE", hp + "/triggers/" + id(t, trig) + q, demoCompany, "", 204, "", nil, ""},
		{"delete it again", "DELETE", hp + "/triggers/" + id(t, trig) + q, demoCompany, "", 404, "not_found", nil, ""},
		{"delete hook of another company", "DELETE", hp + "?company_id=" + secondCompany, secondCompany, "", 404, "not_found", nil, ""},
		{"delete hook", "DELETE", hp + q, demoCompany, "", 204, "", nil, ""},
		{"deleted hook", "GET", hp + q, demoCompany, "", 404, "not_found", nil, ""},
		{"its triggers", "GET", hp + "/triggers" + q, demoCompany, "", 404, "not_found", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := e.api(tt.method, tt.path, tk, tt.company, tt.body)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tt.wantStatus, body)
			}
			if resp.Header.Get("X-Rate-Limit-Remaining") == "" {
				t.Error("no rate-limit headers")
			}
			switch {
			case tt.wantStatus == http.StatusNoContent:
				if len(body) != 0 || resp.Header.Get("Content-Type") != "" {
					t.Errorf("204 with Content-Type %q and body %q", resp.Header.Get("Content-Type"), body)
				}
			case tt.want422 != nil:
				got := decode[validationErrors](t, body)
				if len(got.Errors) != len(tt.want422) {
					t.Errorf("422 body %s, want fields %v", body, tt.want422)
				}
				for _, f := range tt.want422 {
					if len(got.Errors[f]) == 0 {
						t.Errorf("422 body %s lacks %s", body, f)
					}
				}
			case tt.wantCode != "":
				if got := decode[apiError](t, body); got.Error.Code != tt.wantCode {
					t.Errorf("body %s, want code %s", body, tt.wantCode)
				}
			}
			if !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("body %s lacks %s", body, tt.wantBody)
			}
		})
	}
}

// receiver records the webhook deliveries it gets.
type receiver struct {
	mu       sync.Mutex
	payloads []map[string]any
	headers  []http.Header
	status   int
}

func newReceiver(t *testing.T, status int) (*receiver, string) {
	rc := &receiver{status: status}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var p map[string]any
		_ = json.Unmarshal(b, &p)
		rc.mu.Lock()
		rc.payloads = append(rc.payloads, p)
		rc.headers = append(rc.headers, r.Header.Clone())
		rc.mu.Unlock()
		w.WriteHeader(rc.status)
	}))
	t.Cleanup(ts.Close)
	return rc, ts.URL
}

func (rc *receiver) got() []map[string]any {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]map[string]any(nil), rc.payloads...)
}

type deliveryBody struct {
	ID             int64          `json:"id"`
	EventID        int64          `json:"event_id"`
	Status         string         `json:"status"`
	ResponseStatus *int           `json:"response_status"`
	Error          *string        `json:"error"`
	CompletedAt    *string        `json:"completed_at"`
	Event          map[string]any `json:"event"`
}

func TestWebhookDeliveries(t *testing.T) {
	e := newEnv(t, withSmallSeed)
	tk := e.login().AccessToken
	q := "?company_id=" + demoCompany
	ok, okURL := newReceiver(t, http.StatusOK)
	bad, badURL := newReceiver(t, http.StatusInternalServerError)
	hook := func(dest string, resources ...string) string {
		t.Helper()
		resp, body := e.api(http.MethodPost, hooksPath, tk, demoCompany,
			`{"company_id":`+demoCompany+`,"hook":{"namespace":"n","destination_url":"`+dest+`","destination_headers":{"Authorization":"Bearer hook-secret"}}}`)
		if resp.StatusCode != 201 || strings.Contains(string(body), "hook-secret") {
			t.Fatalf("create hook: %d %s", resp.StatusCode, body)
		}
		hp := hooksPath + "/" + id(t, decode[map[string]any](t, body))
		for _, r := range resources {
			if resp, body := e.api(http.MethodPost, hp+"/triggers", tk, demoCompany, triggerBody(demoCompany, r, "create")); resp.StatusCode != 201 {
				t.Fatalf("create trigger: %d %s", resp.StatusCode, body)
			}
		}
		return hp
	}
	okHook := hook(okURL+"/procore?x=1", "RFIs", "Vendors")
	badHook := hook(badURL, "RFIs")
	farHook := hook("https://hooks.example.com/procore", "RFIs")
	quietHook := hook(okURL, "Submittals")
	hook(okURL, "RFIs") // a second hook to the same receiver: the same event goes to both
	// The second company's hook with an RFIs trigger must not fire for the first company's RFI.
	_, body := e.api(http.MethodPost, hooksPath, tk, secondCompany, hookBody(secondCompany, okURL))
	otherHook := hooksPath + "/" + id(t, decode[map[string]any](t, body))
	if resp, body := e.api(http.MethodPost, otherHook+"/triggers", tk, secondCompany, triggerBody(secondCompany, "RFIs", "create")); resp.StatusCode != 201 {
		t.Fatalf("trigger of the second company: %d %s", resp.StatusCode, body)
	}

	rfis := "/rest/v1.0/projects/" + firstProject + "/rfis"
	resp, body := e.apiWith(http.MethodPost, rfis, tk, demoCompany, `{"rfi":{"subject":"S","question":{"body":"Q"}}}`,
		http.Header{emulator.IdempotencyHeader: {"once"}})
	if resp.StatusCode != 201 {
		t.Fatalf("create RFI: %d %s", resp.StatusCode, body)
	}
	rfiID := decode[map[string]any](t, body)["id"]
	// The replay sends nothing more, nor does a request that fails.
	e.apiWith(http.MethodPost, rfis, tk, demoCompany, `{"rfi":{"subject":"S","question":{"body":"Q"}}}`, http.Header{emulator.IdempotencyHeader: {"once"}})
	e.api(http.MethodPost, rfis, tk, demoCompany, `{"rfi":{}}`)

	got := ok.got()
	if len(got) != 2 { // okHook and the second hook to the same receiver
		t.Fatalf("the receiver got %d deliveries, want 2: %v", len(got), got)
	}
	p := got[0]
	for k, want := range map[string]any{
		"resource_name": "RFIs", "resource_id": rfiID, "event_type": "create", "api_version": "v2",
		"company_id": float64(emulator.DemoCompanyID), "project_id": float64(562949954000001), "user_id": float64(emulator.DemoUserID),
		"timestamp": "2025-03-01T12:00:00Z",
	} {
		if p[k] != want {
			t.Errorf("payload %s = %v, want %v", k, p[k], want)
		}
	}
	if ulid, _ := p["ulid"].(string); len(ulid) != 26 || got[1]["id"] != p["id"] || p["metadata"] == nil {
		t.Errorf("payload %v: want a 26-character ulid, metadata, and one event id for both hooks", p)
	}
	if h := ok.headers[0]; h.Get("Authorization") != "Bearer hook-secret" || h.Get("Content-Type") != "application/json" {
		t.Errorf("delivery headers %v", h)
	}
	if len(bad.got()) != 1 {
		t.Errorf("the failing receiver got %d deliveries, want 1", len(bad.got()))
	}

	deliveries := func(hp string) []deliveryBody {
		t.Helper()
		items, _ := e.walk(t, hp+"/deliveries"+q, tk, demoCompany)
		raw, _ := json.Marshal(items)
		return decode[[]deliveryBody](t, raw)
	}
	tests := []struct {
		name, hook string
		want       int
		status     string
		code       int
		errText    string
	}{
		{"answered 200", okHook, 1, "successful", 200, ""},
		{"answered 500", badHook, 1, "failed", 500, "500"},
		{"not loopback", farHook, 1, "failed", 0, "loopback"},
		{"no matching trigger", quietHook, 0, "", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := deliveries(tt.hook)
			if len(ds) != tt.want {
				t.Fatalf("%d deliveries, want %d: %+v", len(ds), tt.want, ds)
			}
			if tt.want == 0 {
				return
			}
			d := ds[0]
			if d.Status != tt.status || d.CompletedAt == nil || d.Event["resource_id"] != rfiID || d.EventID != int64(p["id"].(float64)) {
				t.Errorf("delivery %+v", d)
			}
			if (d.ResponseStatus == nil) != (tt.code == 0) || (d.ResponseStatus != nil && *d.ResponseStatus != tt.code) {
				t.Errorf("response_status %v, want %d", d.ResponseStatus, tt.code)
			}
			if (d.Error == nil) != (tt.errText == "") || (d.Error != nil && !strings.Contains(*d.Error, tt.errText)) {
				t.Errorf("error %v, want one containing %q", d.Error, tt.errText)
			}
		})
	}

	// Deliveries page like every list.
	for range 4 {
		e.api(http.MethodPost, "/rest/v1.0/vendors", tk, demoCompany, `{"company_id":`+demoCompany+`,"vendor":{"name":"V"}}`)
	}
	items, pages := e.walk(t, okHook+"/deliveries"+q+"&per_page=2", tk, demoCompany)
	if len(items) != 5 || pages != 3 || items[4]["event"].(map[string]any)["resource_name"] != "Vendors" {
		t.Errorf("%d deliveries on %d pages: %v", len(items), pages, items)
	}
	if st := e.srv.Stats(); st.WebhookDeliveries != 4+4 {
		t.Errorf("WebhookDeliveries %d, want 8", st.WebhookDeliveries)
	}
	if n := len(ok.got()); n != 2+4 {
		t.Errorf("the receiver got %d deliveries, want 6", n)
	}
}
