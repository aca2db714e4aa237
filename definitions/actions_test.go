package definitions_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/definitions"
)

const companyID = "562949953421312" // above 2^32, as Procore's are

// procoreActions is every action the Procore definitions ship, with an
// example input, the request it renders to, and a bad input with a problem
// it must be refused for.
var procoreActions = []struct {
	name   string
	input  map[string]any
	method string
	path   string
	body   string // "" for no body
	paged  bool   // uses request.pagination
	bad    map[string]any
	reason string
}{
	{"me", nil, "GET", "/rest/v1.0/me", "", false,
		map[string]any{"id": 1}, "input id: action me takes no input"},
	{"list_companies", nil, "GET", "/rest/v1.0/companies", "", true,
		map[string]any{"company_id": 1}, "input company_id: action list_companies takes no input"},
	{"list_projects", map[string]any{"status": "All"}, "GET", "/rest/v1.0/projects?company_id=" + companyID + "&filters%5Bby_status%5D=All", "", true,
		map[string]any{"status": "Archived"}, `input status: must be one of "Active", "Inactive", "All"`},
	{"get_project", map[string]any{"id": 42}, "GET", "/rest/v1.0/projects/42?company_id=" + companyID, "", false,
		map[string]any{"id": "forty-two"}, "input id: must be integer, not string"},
	{"create_project", map[string]any{"project": map[string]any{"name": "Tower", "start_date": "2025-04-01"}}, "POST", "/rest/v1.0/projects",
		`{"company_id":` + companyID + `,"project":{"name":"Tower","start_date":"2025-04-01"}}`, false,
		map[string]any{"project": map[string]any{"start_date": "April"}}, "input project.name: missing; it is required"},
	{"list_company_users", nil, "GET", "/rest/v1.3/companies/" + companyID + "/users", "", true,
		map[string]any{"page": 2}, "input page: action list_company_users takes no input"},
	{"create_company_user", map[string]any{"user": map[string]any{"last_name": "Lovelace", "email_address": "ada@example.com"}}, "POST", "/rest/v1.3/companies/" + companyID + "/users",
		`{"user":{"email_address":"ada@example.com","last_name":"Lovelace"}}`, false,
		map[string]any{"user": map[string]any{"last_name": "Lovelace", "email_address": "ada"}}, `input user.email_address: "ada" is not an email address such as ada@example.com`},
	{"invite_company_user", map[string]any{"id": 7}, "PATCH", "/rest/v1.3/companies/" + companyID + "/users/7/invite", "", false,
		map[string]any{}, "input id: missing; it is required"},
	{"list_project_users", map[string]any{"project_id": 42}, "GET", "/rest/v1.0/projects/42/users", "", true,
		map[string]any{"project_id": 0}, "input project_id: must be >= 1 but found 0"},
	{"list_timecard_entries", map[string]any{"project_id": 42}, "GET", "/rest/v1.0/projects/42/timecard_entries", "", true,
		map[string]any{"projectid": 42}, "input project_id: missing; it is required"},
	{"create_timecard_entry", map[string]any{"project_id": 42, "timecard_entry": map[string]any{"hours": "7.5", "date": "2025-03-31"}}, "POST", "/rest/v1.0/projects/42/timecard_entries",
		`{"timecard_entry":{"date":"2025-03-31","hours":"7.5"}}`, false,
		map[string]any{"project_id": 42, "timecard_entry": map[string]any{"hours": 8, "date": "31/03/2025"}}, `input timecard_entry.date: "31/03/2025" is not a date such as 2025-03-31`},
	{"list_rfis", map[string]any{"project_id": 42}, "GET", "/rest/v1.0/projects/42/rfis", "", true,
		map[string]any{"project_id": "42/../../me"}, "input project_id: must be integer, not string"},
	{"get_rfi", map[string]any{"project_id": 42, "id": 9}, "GET", "/rest/v1.0/projects/42/rfis/9", "", false,
		map[string]any{"project_id": 42}, "input id: missing; it is required"},
	{"create_rfi", map[string]any{"project_id": 42, "rfi": map[string]any{"subject": "Door height", "question": map[string]any{"body": "Which height?"}}}, "POST", "/rest/v1.0/projects/42/rfis",
		`{"rfi":{"question":{"body":"Which height?"},"subject":"Door height"}}`, false,
		map[string]any{"project_id": 42, "rfi": map[string]any{"subject": "Door height", "question": map[string]any{}}}, "input rfi.question.body: missing; it is required"},
	{"list_submittals", map[string]any{"project_id": 42}, "GET", "/rest/v1.1/projects/42/submittals", "", true,
		map[string]any{"project_id": 4.5}, "input project_id: must be integer, not number"},
	{"list_vendors", nil, "GET", "/rest/v1.0/vendors?company_id=" + companyID, "", true,
		map[string]any{"name": "x"}, "input name: action list_vendors takes no input"},
	{"create_vendor", map[string]any{"vendor": map[string]any{"name": "Acme Steel"}}, "POST", "/rest/v1.0/vendors",
		`{"company_id":` + companyID + `,"vendor":{"name":"Acme Steel"}}`, false,
		map[string]any{"vendor": map[string]any{"name": ""}}, "input vendor.name: must not be empty"},
	{"list_folders", map[string]any{"project_id": 42}, "GET", "/rest/v1.0/folders?project_id=42", "", false,
		nil, "input project_id: missing; it is required"},
	{"get_folder", map[string]any{"project_id": 42, "id": 5}, "GET", "/rest/v1.0/folders/5?project_id=42", "", false,
		map[string]any{"project_id": 42, "id": -5}, "input id: must be >= 1 but found -5"},
	{"list_files", map[string]any{"project_id": 42, "folder_id": 5}, "GET", "/rest/v1.0/folders/5?project_id=42", "", false,
		map[string]any{"project_id": 42, "folderid": 5}, "input folderid: not an input of list_files; did you mean folder_id? (inputs: folder_id, project_id)"},
	{"list_webhook_hooks", nil, "GET", "/rest/v1.0/webhooks/hooks?company_id=" + companyID, "", false,
		map[string]any{"hook_id": 1}, "input hook_id: action list_webhook_hooks takes no input"},
	{"create_webhook_hook", map[string]any{"hook": map[string]any{"namespace": "acme-sync", "destination_url": "https://hooks.example.com/procore"}}, "POST", "/rest/v1.0/webhooks/hooks",
		`{"company_id":` + companyID + `,"hook":{"api_version":"v2","destination_url":"https://hooks.example.com/procore","namespace":"acme-sync"}}`, false,
		map[string]any{"hook": map[string]any{"namespace": "acme-sync", "destination_url": "hooks.example.com"}}, `input hook.destination_url: "hooks.example.com" is not an absolute URI such as https://example.com/hook`},
	{"delete_webhook_hook", map[string]any{"hook_id": 3}, "DELETE", "/rest/v1.0/webhooks/hooks/3?company_id=" + companyID, "", false,
		map[string]any{"hook_id": true}, "input hook_id: must be integer, not boolean"},
	{"list_webhook_triggers", map[string]any{"hook_id": 3}, "GET", "/rest/v1.0/webhooks/hooks/3/triggers?company_id=" + companyID, "", false,
		map[string]any{}, "input hook_id: missing; it is required"},
	{"create_webhook_trigger", map[string]any{"hook_id": 3, "trigger": map[string]any{"resource_name": "RFIs", "event_type": "create"}}, "POST", "/rest/v1.0/webhooks/hooks/3/triggers",
		`{"company_id":` + companyID + `,"api_version":"v2","trigger":{"event_type":"create","resource_name":"RFIs"}}`, false,
		map[string]any{"hook_id": 3, "trigger": map[string]any{"resource_name": "RFIs", "event_type": "created"}}, `input trigger.event_type: must be one of "create", "update", "delete"`},
	{"delete_webhook_trigger", map[string]any{"hook_id": 3, "id": 11}, "DELETE", "/rest/v1.0/webhooks/hooks/3/triggers/11?company_id=" + companyID, "", false,
		map[string]any{"id": 11}, "input hook_id: missing; it is required"},
	{"list_webhook_deliveries", map[string]any{"hook_id": 3}, "GET", "/rest/v1.0/webhooks/hooks/3/deliveries?company_id=" + companyID, "", true,
		map[string]any{"hook_id": "3; DROP"}, "input hook_id: must be integer, not string"},
}

// TestProcoreActions renders every shipped action, in each Procore
// definition, and refuses a bad input for each with a clear problem.
func TestProcoreActions(t *testing.T) {
	for _, name := range []string{"procore", "procore-v1", "procore-client-credentials"} {
		d, err := definitions.Builtin().Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		var names, want []string
		for _, a := range d.Actions {
			names = append(names, a.Name)
		}
		for _, a := range procoreActions {
			want = append(want, a.name)
		}
		slices.Sort(want)
		if !slices.Equal(names, want) {
			t.Errorf("%s: actions\n%v\nwant\n%v", name, names, want)
		}
		vals, err := d.Values("", map[string]string{"CompanyId": companyID})
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range procoreActions {
			t.Run(name+"/"+tt.name, func(t *testing.T) {
				a, err := d.Action(tt.name)
				if err != nil {
					t.Fatal(err)
				}
				if a.Title == "" {
					t.Errorf("no title")
				}
				r, err := a.Render(vals, tt.input)
				if err != nil {
					t.Fatal(err)
				}
				if r.Method != tt.method || r.Path != tt.path || string(r.Body) != tt.body {
					t.Errorf("got  %s %s %s\nwant %s %s %s", r.Method, r.Path, r.Body, tt.method, tt.path, tt.body)
				}
				if tt.body != "" && !json.Valid(r.Body) {
					t.Errorf("body is not JSON: %s", r.Body)
				}
				switch {
				case tt.paged:
					if !reflect.DeepEqual(a.Pagination, d.Pagination) {
						t.Errorf("pagination %+v, want the default %+v", a.Pagination, d.Pagination)
					}
				case tt.name == "list_files":
					if a.Pagination == nil || a.Pagination.Style != definitions.PageNone || a.Pagination.Items != "files" {
						t.Errorf("pagination %+v, want one request with items at files", a.Pagination)
					}
				case a.Pagination != nil:
					t.Errorf("pagination %+v, want none", a.Pagination)
				}
				_, err = a.Render(vals, tt.bad)
				var ie *definitions.InputError
				if !errors.As(err, &ie) {
					t.Fatalf("bad input %v: got %v, want an *InputError", tt.bad, err)
				}
				if !slices.Contains(ie.Problems, tt.reason) {
					t.Errorf("bad input %v:\ngot  %s\nwant %s", tt.bad, strings.Join(ie.Problems, "\n     "), tt.reason)
				}
				if err := a.Validate(tt.bad); err == nil || err.Error() != ie.Error() {
					t.Errorf("Validate = %v, Render said %v", err, ie)
				}
			})
		}
	}
}

func TestProcoreRequestPolicy(t *testing.T) {
	for _, name := range []string{"procore", "procore-v1", "procore-client-credentials"} {
		d, _ := definitions.Builtin().Get(name)
		if want := (definitions.Retry{MaxAttempts: 4, MaxWait: time.Minute, IdempotencyHeader: "Idempotency-Token"}); d.Retry != want {
			t.Errorf("%s: retry %+v, want %+v", name, d.Retry, want)
		}
		if want := (definitions.RateLimit{RemainingHeader: "X-Rate-Limit-Remaining", ResetHeader: "X-Rate-Limit-Reset", Reset: definitions.ResetUnix}); d.RateLimit != want {
			t.Errorf("%s: rate limit %+v, want %+v", name, d.RateLimit, want)
		}
		want := definitions.Pagination{Style: definitions.PagePage, PageParam: "page", SizeParam: "per_page", Size: 100, FirstPage: 1, TotalHeader: "Total"}
		if d.Pagination == nil || *d.Pagination != want {
			t.Errorf("%s: pagination %+v, want %+v", name, d.Pagination, want)
		}
	}
}

func TestProcoreInputs(t *testing.T) {
	d, _ := definitions.Builtin().Get("procore")
	a, _ := d.Action("create_timecard_entry")
	want := []definitions.Input{
		{Name: "project_id", Type: "integer", Description: "The project's id.", Required: true},
		{Name: "timecard_entry", Type: "object", Description: "The entry's fields.", Required: true},
	}
	if !reflect.DeepEqual(a.Inputs, want) {
		t.Errorf("inputs %+v\nwant %+v", a.Inputs, want)
	}
	if a.PathTemplate() != "/rest/v1.0/projects/${project_id}/timecard_entries" {
		t.Errorf("PathTemplate %q", a.PathTemplate())
	}
	var schema map[string]any
	if err := json.Unmarshal(a.Schema, &schema); err != nil || schema["type"] != "object" {
		t.Errorf("Schema %s: %v", a.Schema, err)
	}
	if !strings.HasPrefix(string(a.Schema), `{"type":"object","required":["project_id","timecard_entry"],"properties":{"project_id":`) {
		t.Errorf("Schema does not keep the file's order: %s", a.Schema)
	}
	l, _ := d.Action("list_projects")
	if l.PathTemplate() != "/rest/v1.0/projects?company_id=${CompanyId}&filters[by_status]=${status}" {
		t.Errorf("PathTemplate %q", l.PathTemplate())
	}
	if in := l.Inputs[0]; in.Name != "status" || in.Required || !reflect.DeepEqual(in.Enum, []any{"Active", "Inactive", "All"}) {
		t.Errorf("list_projects input %+v", in)
	}
	if me, _ := d.Action("me"); len(me.Inputs) != 0 || me.Schema != nil {
		t.Errorf("me: inputs %v schema %s", me.Inputs, me.Schema)
	}
}

// testDef is a definition exercising what Render does.
const testDef = `name: things
title: Things
base_url: https://api.things.test
auth:
  scheme: none
fields:
  Account: {type: integer, required: true}
  Region: {}
  Flag: {type: boolean}
actions:
  get_thing:
    path: /accounts/${Account}/things/${name}
    query:
      fields: ${fields}
      limit: ${limit}
      region: ${Region}
      sort: -created_at
      range: ${from}..${to}
    input:
      type: object
      required: [name]
      properties:
        name: {type: string}
        fields: {type: string}
        limit: {type: integer}
        from: {type: string}
        to: {type: string}
  search:
    path: /search?v=2
    query: {q: '${q}'}
    input:
      properties:
        q: {type: string}
  put_thing:
    method: PUT
    path: /things/${id}
    body:
      account: ${Account}
      flag: ${Flag}
      region: ${Region}
      label: "${name} (${Account})"
      count: ${count}
      tags: [fixed, "${tag}", "${name}"]
      thing: ${thing}
      static: {n: 1, f: 1.5, b: true, z: null, s: "text"}
    input:
      type: object
      required: [id, name]
      properties:
        id: {type: string, minLength: 1}
        name: {type: string}
        count: {type: integer, default: 1}
        tag: {type: string, pattern: '^[a-z]+$'}
        thing:
          type: object
          properties:
            kind: {type: string, default: plain}
            size: {type: number}
  replace:
    method: POST
    path: /replace
    body: ${doc}
    input:
      properties:
        doc: {type: object}
`

func thingsDef(t *testing.T) (*definitions.Definition, []string) {
	t.Helper()
	set, diags := parse(t, file("things.yaml", testDef))
	if set == nil {
		t.Fatalf("testDef does not load:\n%s", joinDiags(diags))
	}
	d, _ := set.Get("things")
	vals, err := d.Values("", map[string]string{"Account": "12", "Region": "eu/west"})
	if err != nil {
		t.Fatal(err)
	}
	return d, vals
}

func TestRenderPathAndQuery(t *testing.T) {
	d, vals := thingsDef(t)
	tests := []struct {
		action string
		input  map[string]any
		path   string
	}{
		{"get_thing", map[string]any{"name": "widget"}, "/accounts/12/things/widget?region=eu%2Fwest&sort=-created_at&range=.."},
		// A value cannot leave its segment, add a query or become a dot segment.
		{"get_thing", map[string]any{"name": "a/b?c=d#e"}, "/accounts/12/things/a%2Fb%3Fc%3Dd%23e?region=eu%2Fwest&sort=-created_at&range=.."},
		{"get_thing", map[string]any{"name": "..."}, "/accounts/12/things/...?region=eu%2Fwest&sort=-created_at&range=.."}, // ".." is refused: TestRenderRefusesDotSegments
		{"get_thing", map[string]any{"name": "%2F ü"}, "/accounts/12/things/%252F%20%C3%BC?region=eu%2Fwest&sort=-created_at&range=.."},
		// Optional inputs given: typed values written as JSON writes them; a
		// value cannot add a parameter.
		{"get_thing", map[string]any{"name": "w", "fields": "id,name&admin=1", "limit": 50, "from": "a", "to": "b"},
			"/accounts/12/things/w?fields=id%2Cname%26admin%3D1&limit=50&region=eu%2Fwest&sort=-created_at&range=a..b"},
		// A path that has a query already continues it.
		{"search", map[string]any{"q": "x y"}, "/search?v=2&q=x%20y"},
		{"search", nil, "/search?v=2"},
	}
	for _, tt := range tests {
		a, err := d.Action(tt.action)
		if err != nil {
			t.Fatal(err)
		}
		r, err := a.Render(vals, tt.input)
		if err != nil {
			t.Errorf("%s %v: %v", tt.action, tt.input, err)
			continue
		}
		if r.Path != tt.path || r.Method != "GET" || r.Body != nil {
			t.Errorf("%s %v:\ngot  %s %s %q\nwant GET %s", tt.action, tt.input, r.Method, r.Path, r.Body, tt.path)
		}
	}
}

func TestRenderBody(t *testing.T) {
	d, vals := thingsDef(t)
	put, _ := d.Action("put_thing")
	tests := []struct {
		input map[string]any
		vals  map[string]string // field values, over thingsDef's
		body  string
	}{
		// Optional inputs absent are left out (count takes its default); fields
		// are typed by their declared type; the empty Flag is left out.
		{map[string]any{"id": "t1", "name": "Widget"}, nil,
			`{"account":12,"region":"eu/west","label":"Widget (12)","count":1,"tags":["fixed","Widget"],"static":{"n":1,"f":1.5,"b":true,"z":null,"s":"text"}}`},
		// Typed input values; defaults inside a given object; text that JSON
		// must escape.
		{map[string]any{"id": "t1", "name": "Say \"hi\"\n<b>", "count": 3, "tag": "new", "thing": map[string]any{"size": 2.5}}, map[string]string{"Flag": "true"},
			`{"account":12,"flag":true,"region":"eu/west","label":"Say \"hi\"\n<b> (12)","count":3,"tags":["fixed","new","Say \"hi\"\n<b>"],"thing":{"kind":"plain","size":2.5},"static":{"n":1,"f":1.5,"b":true,"z":null,"s":"text"}}`},
	}
	for _, tt := range tests {
		assign := map[string]string{"Account": "12", "Region": "eu/west"}
		for k, v := range tt.vals {
			assign[k] = v
		}
		vs, err := d.Values("", assign)
		if err != nil {
			t.Fatal(err)
		}
		r, err := put.Render(vs, tt.input)
		if err != nil {
			t.Fatalf("%v: %v", tt.input, err)
		}
		if r.Method != "PUT" || r.Path != "/things/t1" || string(r.Body) != tt.body {
			t.Errorf("%v:\ngot  %s %s %s\nwant PUT /things/t1 %s", tt.input, r.Method, r.Path, r.Body, tt.body)
		}
		if !json.Valid(r.Body) {
			t.Errorf("not JSON: %s", r.Body)
		}
	}

	replace, _ := d.Action("replace")
	r, err := replace.Render(vals, map[string]any{"doc": map[string]any{"b": []int{1, 2}, "a": nil}})
	if err != nil || string(r.Body) != `{"a":null,"b":[1,2]}` {
		t.Errorf("whole body: %s, %v", r.Body, err)
	}
	// A body that is one absent input is no body at all.
	if r, err := replace.Render(vals, nil); err != nil || r.Body != nil {
		t.Errorf("absent body: %q, %v", r.Body, err)
	}
	// Render does not change the caller's input.
	in := map[string]any{"id": "t1", "name": "n", "thing": map[string]any{}}
	if _, err := put.Render(vals, in); err != nil || len(in["thing"].(map[string]any)) != 0 || len(in) != 3 {
		t.Errorf("input changed: %v (%v)", in, err)
	}
}

func TestRenderErrors(t *testing.T) {
	d, vals := thingsDef(t)
	put, _ := d.Action("put_thing")
	get, _ := d.Action("get_thing")
	tests := []struct {
		a     *definitions.Action
		vals  []string
		input map[string]any
		want  string
		bad   bool // an *InputError
	}{
		{put, vals, map[string]any{"id": "", "name": "n"}, "input id: must not be empty", true},
		{get, vals, map[string]any{"name": ""}, "input name: must not be empty: the path needs it", true},
		{get, make([]string, len(vals)), map[string]any{"name": "n"}, "the path needs ${Account}, which has no value; set the connection's Account", false},
		{put, vals, map[string]any{"nme": "n", "id": 5, "count": "3", "thing": map[string]any{"size": "big"}}, `5 problems with the input:
  input count: must be integer, not string
  input id: must be string, not number
  input name: missing; it is required
  input nme: not an input of put_thing; did you mean name? (inputs: count, id, name, tag, thing)
  input thing.size: must be number, not string`, true},
		{put, vals, map[string]any{"id": "x", "name": "n", "tag": "a b"}, `input tag: has the wrong form; it must match '^[a-z]+$'`, true},
		{put, vals, map[string]any{"id": "x", "name": make(chan int)}, "the input cannot be written as JSON: json: unsupported type: chan int", false},
	}
	for _, tt := range tests {
		_, err := tt.a.Render(tt.vals, tt.input)
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s %v:\ngot  %v\nwant %s", tt.a.Name, tt.input, err, tt.want)
		}
		var ie *definitions.InputError
		if errors.As(err, &ie) != tt.bad {
			t.Errorf("%s %v: %T, want *InputError %v", tt.a.Name, tt.input, err, tt.bad)
		}
	}
}

func TestParseInputs(t *testing.T) {
	d, _ := definitions.Builtin().Get("procore")
	action := func(n string) *definitions.Action {
		a, err := d.Action(n)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	tests := []struct {
		action string
		kv     map[string]string
		want   string // the result as JSON, or the error
	}{
		{"get_project", map[string]string{"id": "42"}, `{"id":42}`},
		{"get_project", map[string]string{"id": "562949953421312000"}, `{"id":562949953421312000}`},
		{"create_project", map[string]string{"project": `{"name":"Tower","active":true}`}, `{"project":{"active":true,"name":"Tower"}}`},
		{"create_project", map[string]string{"project.name": "Tower", "project.active": "false", "project.zip": "02134"}, `{"project":{"active":false,"name":"Tower","zip":"02134"}}`},
		{"create_timecard_entry", map[string]string{"project_id": "1", "timecard_entry.hours": "7.5", "timecard_entry.date": "2025-03-31"}, `{"project_id":1,"timecard_entry":{"date":"2025-03-31","hours":"7.5"}}`},
		{"create_rfi", map[string]string{"project_id": "1", "rfi.subject": "S", "rfi.question.body": "Q?"}, `{"project_id":1,"rfi":{"question":{"body":"Q?"},"subject":"S"}}`},
		{"list_projects", map[string]string{"status": "All"}, `{"status":"All"}`},
		{"list_projects", map[string]string{}, `{}`},
		// Errors say which input and what to write.
		{"get_project", map[string]string{"id": "forty-two"}, `input id: "forty-two" is not a whole number; write it in digits, as in id=42`},
		{"get_project", map[string]string{"id": "4.2"}, `input id: "4.2" is not a whole number; write it in digits, as in id=42`},
		{"get_project", map[string]string{"ID": "4"}, "input ID: not an input of get_project; did you mean id? (inputs: id)"},
		{"create_project", map[string]string{"project": "Tower"}, `input project: "Tower" is not a JSON object; write it as in project='{"name":"..."}', or give its properties one by one as project.NAME=VALUE`},
		{"create_project", map[string]string{"project": "[1]"}, `input project: "[1]" is not a JSON object; write it as in project='{"name":"..."}', or give its properties one by one as project.NAME=VALUE`},
		{"create_project", map[string]string{"project.active": "yes"}, `input project.active: "yes" is not true or false; write project.active=true or project.active=false`},
		{"create_project", map[string]string{"project.nam": "T"}, `input project.nam: project has no property "nam"; did you mean project.name? (properties: active, address, city, completion_date, country_code, description, name, project_number, start_date, state_code, zip)`},
		{"create_project", map[string]string{"project": `{"name":"T"}`, "project.city": "Boston"}, "input project.city: project is also given whole; give it either whole or by its parts"},
		{"get_project", map[string]string{"id.x": "1"}, "input id.x: id is a integer, which has no parts; write id=..."},
		{"me", map[string]string{"x": "1"}, "input x: action me takes no input"},
		{"get_rfi", map[string]string{"project_id": "x", "id": "y"}, "2 problems with the input:\n  input id: \"y\" is not a whole number; write it in digits, as in id=42\n  input project_id: \"x\" is not a whole number; write it in digits, as in project_id=42"},
	}
	for _, tt := range tests {
		got, err := action(tt.action).ParseInputs(tt.kv)
		var out string
		if err != nil {
			out = err.Error()
			var ie *definitions.InputError
			if !errors.As(err, &ie) {
				t.Errorf("%s %v: %T, want *InputError", tt.action, tt.kv, err)
			}
		} else {
			raw, _ := json.Marshal(got)
			out = string(raw)
		}
		if out != tt.want {
			t.Errorf("%s %v:\ngot  %s\nwant %s", tt.action, tt.kv, out, tt.want)
		}
	}
}

func TestParseInputsTypes(t *testing.T) {
	src := minimal + `actions:
  a:
    method: POST
    path: /a
    body: {n: '${n}', b: '${b}', o: '${o}', l: '${l}', u: '${u}', z: '${z}', s: '${s}', x: '${x}'}
    input:
      properties:
        n: {type: number}
        b: {type: boolean}
        o: {type: object}
        l: {type: array}
        u: {type: [integer, string]}
        z: {type: ['null', string]}
        s: {type: string}
        x: {}
`
	set, diags := parse(t, file("a.yaml", src))
	if set == nil {
		t.Fatal(joinDiags(diags))
	}
	d, _ := set.Get("acme")
	a, _ := d.Action("a")
	got, err := a.ParseInputs(map[string]string{"n": "-1.5e3", "b": "true", "o": `{"k":[1]}`, "l": `["a",2]`, "u": "7", "z": "null", "s": "007", "x": "{}"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"n": json.Number("-1.5e3"), "b": true, "o": map[string]any{"k": []any{json.Number("1")}}, "l": []any{"a", json.Number("2")}, "u": json.Number("7"), "z": nil, "s": "007", "x": "{}"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %#v\nwant %#v", got, want)
	}
	if got, err := a.ParseInputs(map[string]string{"u": "seven", "z": "nothing"}); err != nil || got["u"] != "seven" || got["z"] != "nothing" {
		t.Errorf("alternatives fall back to string: %v %v", got, err)
	}
	for k, v := range map[string]string{"n": "0x10", "l": `{"a":1}`, "o": `{"a":1} {}`} {
		if _, err := a.ParseInputs(map[string]string{k: v}); err == nil {
			t.Errorf("%s=%s accepted", k, v)
		}
	}
	r, err := a.Render(vals0(t, d), got)
	if err != nil || string(r.Body) != `{"n":-1.5e3,"b":true,"o":{"k":[1]},"l":["a",2],"u":7,"s":"007","x":"{}"}` {
		t.Errorf("rendered %s, %v", r.Body, err)
	}
}

func vals0(t *testing.T, d *definitions.Definition) []string {
	t.Helper()
	vals, err := d.Values("", nil)
	if err != nil {
		t.Fatal(err)
	}
	return vals
}

func TestActionLookup(t *testing.T) {
	d, _ := definitions.Builtin().Get("procore")
	if a, err := d.Action("list_projects"); err != nil || a.Name != "list_projects" {
		t.Fatalf("%v %v", a, err)
	}
	_, err := d.Action("list_project")
	if err == nil || !strings.HasPrefix(err.Error(), `definition procore has no action "list_project"; did you mean "list_projects"? (actions: create_company_user, create_project,`) {
		t.Errorf("%v", err)
	}
	set, _ := parse(t, file("a.yaml", minimal))
	bare, _ := set.Get("acme")
	if _, err := bare.Action("me"); err == nil || err.Error() != "definition acme declares no actions; call its API with a raw request instead" {
		t.Errorf("%v", err)
	}
}

// TestActionInheritance checks that actions and the request policy come
// through extends key by key: overridden, removed with null, added, and
// "pagination: default" following the child's own request.pagination.
func TestActionInheritance(t *testing.T) {
	child := file("child.yaml", `name: procore-custom
extends: procore
title: Procore, customised
request:
  pagination: {size: 20}
  retry: {max_attempts: 2}
actions:
  me: null
  get_project:
    path: /rest/v1.1/projects/${id}
  list_rfis:
    pagination: none
  list_observations:
    title: List observations
    path: /rest/v1.0/observations/items
    query: {project_id: '${project_id}'}
    input:
      required: [project_id]
      properties:
        project_id: {type: integer}
    pagination: default
`)
	set, diags := parse(t, child)
	if set == nil {
		t.Fatal(joinDiags(diags))
	}
	d, _ := set.Get("procore-custom")
	if _, err := d.Action("me"); err == nil {
		t.Errorf("me was not removed")
	}
	if len(d.Actions) != len(procoreActions) {
		t.Errorf("%d actions, want %d", len(d.Actions), len(procoreActions))
	}
	if d.Retry.MaxAttempts != 2 || d.Retry.IdempotencyHeader != "Idempotency-Token" || d.Pagination.Size != 20 || d.Pagination.SizeParam != "per_page" {
		t.Errorf("request policy %+v %+v", d.Retry, d.Pagination)
	}
	vals, _ := d.Values("", map[string]string{"CompanyId": companyID})
	get, _ := d.Action("get_project")
	if r, err := get.Render(vals, map[string]any{"id": 1}); err != nil || r.Path != "/rest/v1.1/projects/1?company_id="+companyID {
		t.Errorf("overridden path: %v %v", r, err)
	}
	if rfis, _ := d.Action("list_rfis"); rfis.Pagination != nil {
		t.Errorf("list_rfis pagination %+v, want none", rfis.Pagination)
	}
	for _, n := range []string{"list_projects", "list_observations"} {
		if a, _ := d.Action(n); a.Pagination == nil || a.Pagination.Size != 20 {
			t.Errorf("%s pagination %+v, want the child's default", n, a.Pagination)
		}
	}
	// The parent is untouched.
	p, _ := definitions.Builtin().Get("procore")
	if a, _ := p.Action("list_projects"); a.Pagination.Size != 100 {
		t.Errorf("parent changed: %+v", a.Pagination)
	}
}

func TestRequestPolicyDefaults(t *testing.T) {
	set, _ := parse(t, file("a.yaml", minimal+`request:
  rate_limit: {remaining_header: x-ratelimit-remaining, reset_header: x-ratelimit-reset}
  pagination: {style: cursor, cursor_path: meta.next, cursor_param: after, items: data, size_param: limit, size: 50}
actions:
  plain: {path: /a}
  merged:
    path: /b
    pagination: {items: results, size: 10}
  other_style:
    path: /c
    pagination: {style: page}
  single:
    path: /d
    pagination: {style: none, items: data.list}
`))
	d, _ := set.Get("acme")
	if d.Retry != (definitions.Retry{MaxAttempts: definitions.DefaultMaxAttempts, MaxWait: definitions.DefaultMaxWait}) {
		t.Errorf("retry %+v", d.Retry)
	}
	if d.RateLimit.Reset != definitions.ResetUnix {
		t.Errorf("rate limit %+v", d.RateLimit)
	}
	want := map[string]*definitions.Pagination{
		"plain":       nil,
		"merged":      {Style: definitions.PageCursor, CursorPath: "meta.next", CursorParam: "after", Items: "results", SizeParam: "limit", Size: 10},
		"other_style": {Style: definitions.PagePage, PageParam: "page", FirstPage: 1},
		"single":      {Style: definitions.PageNone, Items: "data.list"},
	}
	for name, p := range want {
		a, _ := d.Action(name)
		if !reflect.DeepEqual(a.Pagination, p) {
			t.Errorf("%s: pagination %+v, want %+v", name, a.Pagination, p)
		}
		if a.Method != "GET" {
			t.Errorf("%s: method %s", name, a.Method)
		}
	}
}
