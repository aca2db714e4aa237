package emulator_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/connector-engine/connector/connector/emulator"
)

// smallSeed keeps every list a few pages long at small per_page values.
var smallSeed = emulator.Seed{Projects: 10, Users: 12, Vendors: 9, RFIs: 11, Submittals: 7, TimecardEntries: 13, Files: 3}

const (
	firstProject = "562949954000001" // DemoCompanyID's first project
	// otherProject is SecondCompanyID's first project under smallSeed.
	otherProject = "562949954000011"
)

func withSmallSeed(c *emulator.Config) { c.Seed = smallSeed }

func TestListsPageToTheEnd(t *testing.T) {
	e := newEnv(t, withSmallSeed)
	tb := e.login()
	pp := "/rest/v1.0/projects/" + firstProject
	tests := []struct {
		name, path, company string
		want                int // items
		fields              []string
	}{
		{"companies", "/rest/v1.0/companies?per_page=1", "", 2, []string{"id", "name", "is_active"}},
		{"projects by query", "/rest/v1.0/projects?company_id=" + demoCompany + "&per_page=3", demoCompany, 10, []string{"id", "name", "company"}},
		{"projects by path", "/rest/v1.0/companies/" + demoCompany + "/projects?per_page=4", demoCompany, 10, []string{"id", "display_name"}},
		{"projects of the second company", "/rest/v1.0/projects?company_id=" + secondCompany + "&per_page=2", secondCompany, 3, []string{"id"}},
		{"company users", "/rest/v1.3/companies/" + demoCompany + "/users?per_page=5", demoCompany, 13,
			[]string{"id", "name", "first_name", "last_name", "email_address", "is_active", "is_employee", "vendor", "created_at"}},
		{"company users of the second company", "/rest/v1.3/companies/" + secondCompany + "/users?per_page=3", secondCompany, 4, []string{"id"}},
		{"project users", pp + "/users?per_page=2", demoCompany, 5, []string{"id", "name", "email_address"}},
		{"vendors", "/rest/v1.0/vendors?company_id=" + demoCompany + "&per_page=4", demoCompany, 9,
			[]string{"id", "name", "abbreviated_name", "trade_name", "is_active", "created_at"}},
		{"timecard entries", pp + "/timecard_entries?per_page=5", demoCompany, 13,
			[]string{"id", "date", "hours", "description", "billable", "party", "timecard_time_type"}},
		{"RFIs", pp + "/rfis?per_page=4", demoCompany, 11,
			[]string{"id", "number", "subject", "status", "questions", "rfi_manager", "due_date", "created_at", "updated_at"}},
		{"submittals", "/rest/v1.1/projects/" + firstProject + "/submittals?per_page=3", demoCompany, 7,
			[]string{"id", "number", "title", "status", "specification_section", "responsible_contractor"}},
		{"RFIs of the second company's project", "/rest/v1.0/projects/" + otherProject + "/rfis?per_page=5", secondCompany, 11, []string{"id"}},
		{"default per_page", pp + "/rfis", demoCompany, 11, []string{"id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			items, pages := e.walk(t, tt.path, tb.AccessToken, tt.company)
			if len(items) != tt.want {
				t.Fatalf("%d items, want %d", len(items), tt.want)
			}
			per := 100
			if i := strings.Index(tt.path, "per_page="); i >= 0 {
				per, _ = strconv.Atoi(tt.path[i+len("per_page="):])
			}
			if want := (tt.want + per - 1) / per; pages != want {
				t.Errorf("%d pages, want %d", pages, want)
			}
			seen := map[string]bool{}
			for _, it := range items {
				if seen[id(t, it)] {
					t.Errorf("id %s repeated", id(t, it))
				}
				seen[id(t, it)] = true
				for _, f := range tt.fields {
					if _, ok := it[f]; !ok {
						t.Errorf("item %s has no %q: %v", id(t, it), f, it)
					}
				}
			}
		})
	}
}

func TestSeedIsDeterministic(t *testing.T) {
	paths := []string{
		"/rest/v1.0/projects/" + firstProject + "/rfis?per_page=3&page=2",
		"/rest/v1.3/companies/" + demoCompany + "/users?per_page=3&page=3",
		"/rest/v1.0/folders?project_id=" + firstProject,
		"/rest/v1.1/projects/" + firstProject + "/submittals",
	}
	var first []string
	for round := range 2 {
		e := newEnv(t, withSmallSeed)
		tb := e.login()
		if round == 1 { // another project first: ids must not depend on the order of reads
			e.api(http.MethodGet, "/rest/v1.0/projects/562949954000005/rfis", tb.AccessToken, demoCompany, "")
		}
		for i, p := range paths {
			_, body := e.api(http.MethodGet, p, tb.AccessToken, demoCompany, "")
			if round == 0 {
				first = append(first, string(body))
			} else if string(body) != first[i] {
				t.Errorf("GET %s differs between two servers:\n%s\n%s", p, first[i], body)
			}
		}
	}
}

func TestDefaultSeedSizes(t *testing.T) {
	e := newEnv(t)
	tb := e.login()
	pp := "/rest/v1.0/projects/" + firstProject
	for path, want := range map[string]int{
		"/rest/v1.0/projects?company_id=" + demoCompany:  emulator.DemoProjectCount,
		"/rest/v1.3/companies/" + demoCompany + "/users": emulator.DemoUserCount + 1,
		"/rest/v1.0/vendors?company_id=" + demoCompany:   emulator.DemoVendorCount,
		pp + "/rfis": emulator.DemoRFICount,
		"/rest/v1.1/projects/" + firstProject + "/submittals":  emulator.DemoSubmittalCount,
		pp + "/timecard_entries":                               emulator.DemoTimecardEntryCount,
		"/rest/v1.3/companies/" + secondCompany + "/users?x=1": 4,
	} {
		company := demoCompany
		if strings.Contains(path, secondCompany) {
			company = secondCompany
		}
		resp, body := e.api(http.MethodGet, path, tb.AccessToken, company, "")
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Total") != strconv.Itoa(want) {
			t.Errorf("GET %s: status %d, Total %q, want %d; body %.200s", path, resp.StatusCode, resp.Header.Get("Total"), want, body)
		}
	}
	// A negative count seeds none.
	e = newEnv(t, func(c *emulator.Config) { c.Seed = emulator.Seed{RFIs: -1} })
	resp, body := e.api(http.MethodGet, pp+"/rfis", e.login().AccessToken, demoCompany, "")
	if resp.Header.Get("Total") != "0" || string(body) != "[]" {
		t.Errorf("RFIs with Seed.RFIs -1: Total %q, body %s", resp.Header.Get("Total"), body)
	}
}

func TestGetOne(t *testing.T) {
	e := newEnv(t, withSmallSeed)
	tb := e.login()
	pp := "/rest/v1.0/projects/" + firstProject
	rfis, _ := e.walk(t, pp+"/rfis", tb.AccessToken, demoCompany)
	users, _ := e.walk(t, "/rest/v1.3/companies/"+demoCompany+"/users", tb.AccessToken, demoCompany)
	tests := []struct {
		name, path, company string
		wantStatus          int
		wantCode            string
		wantBody            string
	}{
		{"me", "/rest/v1.0/me", "", 200, "", `"login":"jim.builder@example.com"`},
		{"project", pp + "?company_id=" + demoCompany, demoCompany, 200, "", `"id":` + firstProject},
		{"unknown project", "/rest/v1.0/projects/1", demoCompany, 404, "not_found", ""},
		{"project id not a number", "/rest/v1.0/projects/abc", demoCompany, 404, "not_found", ""},
		{"RFI", pp + "/rfis/" + id(t, rfis[3]), demoCompany, 200, "", `"subject":`},
		{"unknown RFI", pp + "/rfis/42", demoCompany, 404, "not_found", ""},
		{"RFI of another project", "/rest/v1.0/projects/562949954000002/rfis/" + id(t, rfis[3]), demoCompany, 404, "not_found", ""},
		{"RFI, project of the other company", pp + "/rfis/" + id(t, rfis[3]), secondCompany, 403, "company_mismatch", ""},
		{"company user", "/rest/v1.3/companies/" + demoCompany + "/users/" + id(t, users[2]), demoCompany, 200, "", `"email_address":`},
		{"unknown company user", "/rest/v1.3/companies/" + demoCompany + "/users/7", demoCompany, 404, "not_found", ""},
		{"company user, path and header differ", "/rest/v1.3/companies/" + demoCompany + "/users/" + id(t, users[2]), secondCompany, 403, "company_mismatch", ""},
		{"company user of the other company", "/rest/v1.3/companies/" + secondCompany + "/users/" + id(t, users[2]), secondCompany, 404, "not_found", ""},
		{"users of an unknown project", "/rest/v1.0/projects/99/users", demoCompany, 404, "not_found", ""},
		{"users of the other company's project", "/rest/v1.0/projects/" + otherProject + "/users", demoCompany, 403, "company_mismatch", ""},
		{"timecards of an unknown project", "/rest/v1.0/projects/99/timecard_entries", demoCompany, 404, "not_found", ""},
		{"submittals of an unknown project", "/rest/v1.1/projects/99/submittals", demoCompany, 404, "not_found", ""},
		{"submittals of the other company's project", "/rest/v1.1/projects/" + firstProject + "/submittals", secondCompany, 403, "company_mismatch", ""},
		{"vendors, query and header differ", "/rest/v1.0/vendors?company_id=" + secondCompany, demoCompany, 403, "company_mismatch", ""},
		{"vendors without company_id", "/rest/v1.0/vendors", demoCompany, 400, "missing_company_id", ""},
		{"RFIs, query company differs", pp + "/rfis?company_id=" + secondCompany, demoCompany, 403, "company_mismatch", ""},
		{"RFIs, bad page", pp + "/rfis?page=0", demoCompany, 400, "invalid_page", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := e.api(http.MethodGet, tt.path, tb.AccessToken, tt.company, "")
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tt.wantStatus, body)
			}
			if resp.Header.Get("X-Rate-Limit-Limit") == "" {
				t.Error("no rate-limit headers")
			}
			if tt.wantCode != "" {
				if got := decode[apiError](t, body); got.Error.Code != tt.wantCode || got.Error.Message == "" {
					t.Errorf("body %s: want code %s and a message", body, tt.wantCode)
				}
			}
			if !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("body %s lacks %s", body, tt.wantBody)
			}
		})
	}
}

type folderBody struct {
	ID           int64  `json:"id"`
	Name         string `json:"name"`
	ParentID     *int64 `json:"parent_id"`
	NameWithPath string `json:"name_with_path"`
	Folders      []struct {
		ID          int64  `json:"id"`
		Name        string `json:"name"`
		ParentID    *int64 `json:"parent_id"`
		HasChildren bool   `json:"has_children"`
	} `json:"folders"`
	Files []struct {
		ID           int64  `json:"id"`
		Name         string `json:"name"`
		ParentID     int64  `json:"parent_id"`
		Size         int64  `json:"size"`
		NameWithPath string `json:"name_with_path"`
	} `json:"files"`
}

func TestFolders(t *testing.T) {
	e := newEnv(t, withSmallSeed)
	tk := e.login().AccessToken
	resp, body := e.api(http.MethodGet, "/rest/v1.0/folders?project_id="+firstProject, tk, demoCompany, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("root: status %d, body %s", resp.StatusCode, body)
	}
	root := decode[folderBody](t, body)
	var names []string
	for _, f := range root.Folders {
		names = append(names, f.Name)
		if f.ParentID == nil || *f.ParentID != root.ID || !f.HasChildren {
			t.Errorf("subfolder %+v of root %d", f, root.ID)
		}
	}
	if root.ParentID != nil || len(root.Files) != 2 || !slices.Equal(names, []string{"Drawings", "Specifications", "Photos", "Contracts"}) {
		t.Fatalf("root folder %s", body)
	}
	photos := root.Folders[2].ID
	resp, body = e.api(http.MethodGet, fmt.Sprintf("/rest/v1.0/folders/%d?project_id=%s", photos, firstProject), tk, demoCompany, "")
	f := decode[folderBody](t, body)
	if resp.StatusCode != http.StatusOK || f.ID != photos || len(f.Files) != smallSeed.Files ||
		len(f.Folders) != 1 || f.Folders[0].Name != "Site Visits" || f.NameWithPath != "Photos" {
		t.Fatalf("Photos folder: status %d, body %s", resp.StatusCode, body)
	}
	for _, file := range f.Files {
		if file.ParentID != photos || file.Size <= 0 || !strings.HasPrefix(file.NameWithPath, "Photos/") {
			t.Errorf("file %+v", file)
		}
	}
	// A created project has an empty root folder.
	_, body = e.api(http.MethodPost, "/rest/v1.0/projects", tk, demoCompany, `{"company_id":`+demoCompany+`,"project":{"name":"Empty"}}`)
	resp, body = e.api(http.MethodGet, "/rest/v1.0/folders?project_id="+id(t, decode[map[string]any](t, body)), tk, demoCompany, "")
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"folders":[],"files":[]`) {
		t.Errorf("root of a new project: status %d, body %s", resp.StatusCode, body)
	}

	for _, tt := range []struct {
		name, path, company string
		wantStatus          int
		wantCode            string
	}{
		{"no project_id", "/rest/v1.0/folders", demoCompany, 400, "missing_project_id"},
		{"unknown project", "/rest/v1.0/folders?project_id=5", demoCompany, 404, "not_found"},
		{"other company's project", "/rest/v1.0/folders?project_id=" + otherProject, demoCompany, 403, "company_mismatch"},
		{"unknown folder", "/rest/v1.0/folders/3?project_id=" + firstProject, demoCompany, 404, "not_found"},
		{"folder of another project", fmt.Sprintf("/rest/v1.0/folders/%d?project_id=562949954000002", photos), demoCompany, 404, "not_found"},
		{"folder, no project_id", fmt.Sprintf("/rest/v1.0/folders/%d", photos), demoCompany, 400, "missing_project_id"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := e.api(http.MethodGet, tt.path, tk, tt.company, "")
			if resp.StatusCode != tt.wantStatus || decode[apiError](t, body).Error.Code != tt.wantCode {
				t.Errorf("status %d, body %s; want %d %s", resp.StatusCode, body, tt.wantStatus, tt.wantCode)
			}
		})
	}
}

func TestCreate(t *testing.T) {
	pp := "/rest/v1.0/projects/" + firstProject
	usersPath := "/rest/v1.3/companies/" + demoCompany + "/users"
	tests := []struct {
		name, path, body string
		wantStatus       int
		wantCode         string   // error code of a 400/403/404
		wantBlank        []string // fields of a 422
		wantBody         string   // in a 201
		list             string   // a list whose Total grows by one on 201
	}{
		{"company user", usersPath, `{"user":{"first_name":"Ann","last_name":"Lee","email_address":"Ann.Lee@Example.com","job_title":"PM"}}`,
			201, "", nil, `"name":"Ann Lee","first_name":"Ann","last_name":"Lee","email_address":"ann.lee@example.com"`, usersPath},
		{"company user of a vendor", usersPath, `{"user":{"last_name":"Sub","email_address":"sub@example.com","is_employee":false,"vendor_id":562949953490001}}`,
			201, "", nil, `"vendor":{"id":562949953490001`, usersPath},
		{"company user without last_name and email", usersPath, `{"user":{"first_name":"X"}}`, 422, "", []string{"email_address", "last_name"}, "", ""},
		{"company user, email taken", usersPath, `{"user":{"last_name":"B","email_address":"jim.builder@example.com"}}`, 422, "", []string{"email_address"}, "", ""},
		{"company user, bad email", usersPath, `{"user":{"last_name":"B","email_address":"nobody"}}`, 422, "", []string{"email_address"}, "", ""},
		{"company user, unknown vendor", usersPath, `{"user":{"last_name":"B","email_address":"b@example.com","vendor_id":1}}`, 422, "", []string{"vendor_id"}, "", ""},
		{"company user without user", usersPath, `{"last_name":"B"}`, 400, "missing_user", nil, "", ""},
		{"company user, malformed JSON", usersPath, `{"user":`, 400, "invalid_json", nil, "", ""},
		{"company user, path company differs", "/rest/v1.3/companies/" + secondCompany + "/users", `{"user":{"last_name":"B","email_address":"b@example.com"}}`,
			403, "company_mismatch", nil, "", ""},

		{"vendor", "/rest/v1.0/vendors", `{"company_id":` + demoCompany + `,"vendor":{"name":"New Glass Co.","trade_name":"Glazing"}}`,
			201, "", nil, `"name":"New Glass Co.","abbreviated_name":"","trade_name":"Glazing"`, "/rest/v1.0/vendors?company_id=" + demoCompany},
		{"vendor without name", "/rest/v1.0/vendors", `{"company_id":` + demoCompany + `,"vendor":{"name":""}}`, 422, "", []string{"name"}, "", ""},
		{"vendor without company_id", "/rest/v1.0/vendors", `{"vendor":{"name":"X"}}`, 400, "missing_company_id", nil, "", ""},
		{"vendor, body company differs", "/rest/v1.0/vendors", `{"company_id":` + secondCompany + `,"vendor":{"name":"X"}}`, 403, "company_mismatch", nil, "", ""},
		{"vendor, body not an object", "/rest/v1.0/vendors", `[1]`, 400, "invalid_json", nil, "", ""},
		{"vendor, empty body", "/rest/v1.0/vendors", ``, 400, "invalid_json", nil, "", ""},

		{"RFI", pp + "/rfis", `{"rfi":{"subject":"Stair nosing","question":{"body":"Which finish?"},"due_date":"2025-04-01"}}`,
			201, "", nil, `"number":"12","full_number":"P-0001-12","subject":"Stair nosing","status":"open","private":false,"due_date":"2025-04-01"`, pp + "/rfis"},
		{"RFI with a manager", pp + "/rfis", `{"rfi":{"subject":"S","question":{"body":"Q"},"rfi_manager_id":562949953470001}}`,
			201, "", nil, `"rfi_manager":{"id":562949953470001`, pp + "/rfis"},
		{"RFI without subject and question", pp + "/rfis", `{"rfi":{}}`, 422, "", []string{"question.body", "subject"}, "", ""},
		{"RFI with a blank question", pp + "/rfis", `{"rfi":{"subject":"S","question":{"body":" "}}}`, 422, "", []string{"question.body"}, "", ""},
		{"RFI, bad due date and manager", pp + "/rfis", `{"rfi":{"subject":"S","question":{"body":"Q"},"due_date":"4/1/2025","rfi_manager_id":3}}`,
			422, "", []string{"due_date", "rfi_manager_id"}, "", ""},
		{"RFI without rfi", pp + "/rfis", `{"subject":"S"}`, 400, "missing_rfi", nil, "", ""},
		{"RFI, subject not a string", pp + "/rfis", `{"rfi":{"subject":5}}`, 400, "invalid_json", nil, "", ""},
		{"RFI in an unknown project", "/rest/v1.0/projects/77/rfis", `{"rfi":{"subject":"S","question":{"body":"Q"}}}`, 404, "not_found", nil, "", ""},
		{"RFI in the other company's project", "/rest/v1.0/projects/" + otherProject + "/rfis", `{"rfi":{"subject":"S","question":{"body":"Q"}}}`,
			403, "company_mismatch", nil, "", ""},

		{"timecard entry, hours as a string", pp + "/timecard_entries", `{"timecard_entry":{"hours":"7.5","date":"2025-03-03","description":"Pour"}}`,
			201, "", nil, `"date":"2025-03-03","hours":"7.5","description":"Pour","billable":true`, pp + "/timecard_entries"},
		{"timecard entry, hours as a number", pp + "/timecard_entries", `{"timecard_entry":{"hours":8,"date":"2025-03-04","timecard_time_type_id":2,"party_id":562949953470002}}`,
			201, "", nil, `"hours":"8.0"`, pp + "/timecard_entries"},
		{"timecard entry without hours and date", pp + "/timecard_entries", `{"timecard_entry":{"description":"x"}}`, 422, "", []string{"date", "hours"}, "", ""},
		{"timecard entry, bad values", pp + "/timecard_entries", `{"timecard_entry":{"hours":"eight","date":"2025-13-01","party_id":5,"timecard_time_type_id":9}}`,
			422, "", []string{"date", "hours", "party_id", "timecard_time_type_id"}, "", ""},
		{"timecard entry, too many hours", pp + "/timecard_entries", `{"timecard_entry":{"hours":25,"date":"2025-03-01"}}`, 422, "", []string{"hours"}, "", ""},
		{"timecard entry without timecard_entry", pp + "/timecard_entries", `{}`, 400, "missing_timecard_entry", nil, "", ""},

		{"project", "/rest/v1.0/projects", `{"company_id":` + demoCompany + `,"project":{"name":"Pier 9"}}`, 201, "", nil, `"name":"Pier 9"`,
			"/rest/v1.0/projects?company_id=" + demoCompany},
		{"project without name", "/rest/v1.0/projects", `{"company_id":` + demoCompany + `,"project":{}}`, 422, "", []string{"name"}, "", ""},
	}
	e := newEnv(t, withSmallSeed)
	tk := e.login().AccessToken
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := -1
			if tt.list != "" {
				resp, _ := e.api(http.MethodGet, tt.list, tk, demoCompany, "")
				before, _ = strconv.Atoi(resp.Header.Get("Total"))
			}
			resp, body := e.api(http.MethodPost, tt.path, tk, demoCompany, tt.body)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tt.wantStatus, body)
			}
			if resp.Header.Get("X-Rate-Limit-Remaining") == "" {
				t.Error("no rate-limit headers")
			}
			switch {
			case tt.wantStatus == http.StatusUnprocessableEntity:
				got := decode[validationErrors](t, body)
				var fields []string
				for f, msgs := range got.Errors {
					fields = append(fields, f)
					if len(msgs) == 0 || msgs[0] == "" {
						t.Errorf("field %s has no message", f)
					}
				}
				slices.Sort(fields)
				if !slices.Equal(fields, tt.wantBlank) {
					t.Errorf("422 fields %v, want %v; body %s", fields, tt.wantBlank, body)
				}
			case tt.wantCode != "":
				if got := decode[apiError](t, body); got.Error.Code != tt.wantCode || got.Error.Message == "" {
					t.Errorf("body %s: want code %s and a message", body, tt.wantCode)
				}
			default:
				if !strings.Contains(string(body), tt.wantBody) {
					t.Errorf("body %s lacks %s", body, tt.wantBody)
				}
				obj := decode[map[string]any](t, body)
				for _, f := range []string{"created_at", "updated_at"} {
					if _, ok := obj[f]; !ok {
						t.Errorf("created object has no %s: %s", f, body)
					}
				}
				resp, _ := e.api(http.MethodGet, tt.list, tk, demoCompany, "")
				if after, _ := strconv.Atoi(resp.Header.Get("Total")); after != before+1 {
					t.Errorf("%s Total %d after the create, want %d", tt.list, after, before+1)
				}
				items, _ := e.walk(t, tt.list+sep(tt.list)+"per_page=1000", tk, demoCompany)
				if !slices.ContainsFunc(items, func(it map[string]any) bool { return id(t, it) == id(t, obj) }) {
					t.Errorf("the created object %s is not in %s", id(t, obj), tt.list)
				}
			}
		})
	}
}

func sep(path string) string {
	if strings.Contains(path, "?") {
		return "&"
	}
	return "?"
}

func TestCreatedRFIReadsBack(t *testing.T) {
	e := newEnv(t, withSmallSeed)
	tk := e.login().AccessToken
	pp := "/rest/v1.0/projects/" + firstProject
	resp, body := e.api(http.MethodPost, pp+"/rfis", tk, demoCompany, `{"rfi":{"subject":"Beam size","question":{"body":"W12 or W14?"}}}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	var created struct {
		ID        int64 `json:"id"`
		Questions []struct {
			Body string `json:"body"`
		} `json:"questions"`
		CreatedBy struct {
			ID int64 `json:"id"`
		} `json:"created_by"`
		RFIManager struct {
			ID int64 `json:"id"`
		} `json:"rfi_manager"`
	}
	if err := json.Unmarshal(body, &created); err != nil {
		t.Fatal(err)
	}
	if len(created.Questions) != 1 || created.Questions[0].Body != "W12 or W14?" ||
		created.CreatedBy.ID != emulator.DemoUserID || created.RFIManager.ID != emulator.DemoUserID {
		t.Errorf("created RFI %s", body)
	}
	resp, again := e.api(http.MethodGet, fmt.Sprintf("%s/rfis/%d", pp, created.ID), tk, demoCompany, "")
	if resp.StatusCode != http.StatusOK || string(again) != string(body) {
		t.Errorf("GET the new RFI: %d\n%s\nwant\n%s", resp.StatusCode, again, body)
	}
}

func TestInviteCompanyUser(t *testing.T) {
	e := newEnv(t, withSmallSeed)
	tk := e.login().AccessToken
	users := "/rest/v1.3/companies/" + demoCompany + "/users"
	_, body := e.api(http.MethodPost, users, tk, demoCompany, `{"user":{"last_name":"New","email_address":"new@example.com"}}`)
	u := decode[map[string]any](t, body)
	if u["welcome_email_sent_at"] != nil {
		t.Fatalf("a new user already has an invitation: %s", body)
	}
	all, _ := e.walk(t, users+"?per_page=100", tk, demoCompany)
	inactive := ""
	for _, x := range all {
		if x["is_active"] == false {
			inactive = id(t, x)
		}
	}
	tests := []struct {
		name, path, company string
		wantStatus          int
	}{
		{"invite", users + "/" + id(t, u) + "/invite", demoCompany, 200},
		{"inactive user", users + "/" + inactive + "/invite", demoCompany, 422},
		{"unknown user", users + "/12/invite", demoCompany, 404},
		{"path and header differ", users + "/" + id(t, u) + "/invite", secondCompany, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := e.api(http.MethodPatch, tt.path, tk, tt.company, "")
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantStatus == 200 && decode[map[string]any](t, body)["welcome_email_sent_at"] != "2025-03-01T12:00:00Z" {
				t.Errorf("invited user %s: want welcome_email_sent_at now", body)
			}
		})
	}
	resp, body := e.api(http.MethodPost, users+"/"+id(t, u)+"/invite", tk, demoCompany, "")
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "PATCH" {
		t.Errorf("POST invite: %d Allow %q %s", resp.StatusCode, resp.Header.Get("Allow"), body)
	}
}
