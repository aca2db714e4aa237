package emulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Seed data. Ids are as large as Procore's, beyond 32 bits.
const (
	DemoCompanyID        int64 = 562949953421312 // "Builder Bros Construction", DemoProjectCount projects
	SecondCompanyID      int64 = 562949953425831 // "Jim Builder Sandbox Co.", a few projects
	DemoUserID           int64 = 562949953460001 // Jim Builder, who signs in and sees both companies
	ServiceAccountUserID int64 = 562949953460002 // client_credentials tokens act as this user, in DemoCompanyID only
	DemoProjectCount           = 250
	firstProjectID       int64 = 562949954000001
	demoUserName               = "Jim Builder"
)

type user struct {
	ID        int64   `json:"id"`
	Login     string  `json:"login"`
	Name      string  `json:"name"`
	companies []int64 // ids of the companies the user can access
}

func (u *user) canAccess(companyID int64) bool { return slices.Contains(u.companies, companyID) }

type company struct {
	ID       int64  `json:"id"`
	Name     string `json:"name"`
	IsActive bool   `json:"is_active"`
}

type companyRef struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

type project struct {
	ID            int64      `json:"id"`
	Name          string     `json:"name"`
	DisplayName   string     `json:"display_name"`
	ProjectNumber string     `json:"project_number"`
	Address       string     `json:"address"`
	City          string     `json:"city"`
	StateCode     string     `json:"state_code"`
	CountryCode   string     `json:"country_code"`
	Zip           string     `json:"zip"`
	Active        bool       `json:"active"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
	Company       companyRef `json:"company"`
}

// dataset is the emulator's API data, guarded by Server.mu.
type dataset struct {
	users         map[int64]*user
	companies     []*company // by id
	projects      []*project // by id
	nextProjectID int64
}

func (d *dataset) company(id int64) *company {
	for _, c := range d.companies {
		if c.ID == id {
			return c
		}
	}
	return nil
}

func (d *dataset) projectsOf(companyID int64) []*project {
	var out []*project
	for _, p := range d.projects {
		if p.Company.ID == companyID {
			out = append(out, p)
		}
	}
	return out
}

// seedData builds the same data set every time, so tests and demos can
// rely on names and ids.
func seedData() *dataset {
	d := &dataset{
		users: map[int64]*user{
			DemoUserID: {ID: DemoUserID, Login: "jim.builder@example.com", Name: demoUserName,
				companies: []int64{DemoCompanyID, SecondCompanyID}},
			ServiceAccountUserID: {ID: ServiceAccountUserID, Login: "service-account@example.com", Name: "Demo Service Account",
				companies: []int64{DemoCompanyID}},
		},
		companies: []*company{
			{ID: DemoCompanyID, Name: "Builder Bros Construction", IsActive: true},
			{ID: SecondCompanyID, Name: "Jim Builder Sandbox Co.", IsActive: true},
		},
		nextProjectID: firstProjectID,
	}
	sites := []string{"Riverside", "Harbor View", "Maple Street", "Granite Peak", "Lakeshore",
		"Cedar Grove", "Union Square", "Northgate", "Willow Creek", "Summit Ridge"}
	kinds := []string{"Medical Center", "Office Tower", "Elementary School", "Parking Structure", "Apartments",
		"Distribution Center", "Library", "Fire Station", "Hotel", "Data Center",
		"High School", "Community Center", "Transit Hub", "Senior Living", "Retail Plaza",
		"Laboratory", "Police Station", "Stadium", "Water Treatment Plant", "Bridge Retrofit",
		"Museum", "Courthouse", "Warehouse", "Clinic", "Townhomes"}
	cities := []struct{ city, state, zip string }{
		{"Carpinteria", "CA", "93013"}, {"Austin", "TX", "78701"}, {"Denver", "CO", "80202"},
		{"Portland", "OR", "97204"}, {"Raleigh", "NC", "27601"}, {"Columbus", "OH", "43215"},
	}
	base := time.Date(2023, time.January, 9, 15, 30, 0, 0, time.UTC)
	add := func(c *company, name string, i int) {
		city := cities[i%len(cities)]
		created := base.Add(time.Duration(i) * 36 * time.Hour)
		number := fmt.Sprintf("P-%04d", i+1)
		d.projects = append(d.projects, &project{
			ID: d.nextProjectID, Name: name, DisplayName: number + " - " + name, ProjectNumber: number,
			Address: fmt.Sprintf("%d Main Street", 100+i*10), City: city.city, StateCode: city.state,
			CountryCode: "US", Zip: city.zip, Active: i%7 != 6,
			CreatedAt: created, UpdatedAt: created.Add(48 * time.Hour),
			Company: companyRef{ID: c.ID, Name: c.Name},
		})
		d.nextProjectID++
	}
	for i := range DemoProjectCount {
		add(d.companies[0], sites[i%len(sites)]+" "+kinds[(i/len(sites))%len(kinds)], i)
	}
	for i, name := range []string{"Sandbox Test Project", "Sandbox Warehouse", "Sandbox Office Fit-Out"} {
		add(d.companies[1], name, i)
	}
	return d
}

// GET /rest/v1.0/me
func (s *Server) getMe(req *apiRequest) apiReply {
	return apiReply{status: http.StatusOK, body: req.user}
}

// GET /rest/v1.0/companies
func (s *Server) listCompanies(req *apiRequest) apiReply {
	var mine []*company
	for _, c := range s.data.companies {
		if req.user.canAccess(c.ID) {
			mine = append(mine, c)
		}
	}
	return paginate(req, mine)
}

// GET /rest/v1.0/projects?company_id=N
func (s *Server) listProjects(req *apiRequest) apiReply {
	raw := req.r.URL.Query().Get("company_id")
	if raw == "" {
		return apiError(http.StatusBadRequest, "missing_company_id", "The company_id query parameter is required.")
	}
	if rep, ok := req.sameCompany(raw, "The company_id query parameter"); !ok {
		return rep
	}
	return paginate(req, s.data.projectsOf(req.companyID))
}

// GET /rest/v1.0/companies/{company_id}/projects
func (s *Server) listCompanyProjects(req *apiRequest) apiReply {
	if rep, ok := req.sameCompany(req.vars["company_id"], "The company id in the path"); !ok {
		return rep
	}
	return paginate(req, s.data.projectsOf(req.companyID))
}

// GET /rest/v1.0/projects/{id}
func (s *Server) getProject(req *apiRequest) apiReply {
	if raw := req.r.URL.Query().Get("company_id"); raw != "" {
		if rep, ok := req.sameCompany(raw, "The company_id query parameter"); !ok {
			return rep
		}
	}
	id, err := strconv.ParseInt(req.vars["id"], 10, 64)
	if err != nil {
		return apiError(http.StatusNotFound, "not_found", "Project ids are integers.")
	}
	for _, p := range s.data.projects {
		if p.ID == id && p.Company.ID == req.companyID {
			return apiReply{status: http.StatusOK, body: p}
		}
	}
	return apiError(http.StatusNotFound, "not_found", fmt.Sprintf("Project %d was not found in company %d.", id, req.companyID))
}

// projectInput is the "project" object of a create request.
type projectInput struct {
	Name          string `json:"name"`
	ProjectNumber string `json:"project_number"`
	Address       string `json:"address"`
	City          string `json:"city"`
	StateCode     string `json:"state_code"`
	CountryCode   string `json:"country_code"`
	Zip           string `json:"zip"`
	Active        *bool  `json:"active"`
}

// POST /rest/v1.0/projects with {"company_id":N,"project":{...}}
func (s *Server) createProject(req *apiRequest) apiReply {
	var in struct {
		CompanyID json.Number   `json:"company_id"`
		Project   *projectInput `json:"project"`
	}
	dec := json.NewDecoder(bytes.NewReader(req.body))
	if err := dec.Decode(&in); err != nil {
		return apiError(http.StatusBadRequest, "invalid_json",
			`The body must be JSON like {"company_id":N,"project":{"name":"..."}}: `+err.Error())
	}
	if in.CompanyID == "" {
		return apiError(http.StatusBadRequest, "missing_company_id", "company_id is required in the body.")
	}
	if rep, ok := req.sameCompany(in.CompanyID.String(), "company_id in the body"); !ok {
		return rep
	}
	if in.Project == nil {
		return apiError(http.StatusBadRequest, "missing_project", `The body needs a "project" object.`)
	}
	p := in.Project
	if strings.TrimSpace(p.Name) == "" {
		return apiReply{status: http.StatusUnprocessableEntity, body: errorBody{Error: errorDetail{
			Code: "validation_failed", Message: "The project could not be created: name can't be blank.",
			Details: map[string][]string{"name": {"can't be blank"}},
		}}}
	}
	c := s.data.company(req.companyID)
	now := req.now.UTC().Truncate(time.Second)
	number := p.ProjectNumber
	display := p.Name
	if number != "" {
		display = number + " - " + p.Name
	}
	np := &project{
		ID: s.data.nextProjectID, Name: p.Name, DisplayName: display, ProjectNumber: number,
		Address: p.Address, City: p.City, StateCode: p.StateCode, CountryCode: p.CountryCode, Zip: p.Zip,
		Active: p.Active == nil || *p.Active, CreatedAt: now, UpdatedAt: now,
		Company: companyRef{ID: c.ID, Name: c.Name},
	}
	s.data.nextProjectID++
	s.data.projects = append(s.data.projects, np)
	return apiReply{status: http.StatusCreated, body: np}
}
