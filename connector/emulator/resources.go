package emulator

import (
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
	DemoCompanyID        int64 = 562949953421312 // "Builder Bros Construction", Seed.Projects projects
	SecondCompanyID      int64 = 562949953425831 // "Jim Builder Sandbox Co.", a few projects
	DemoUserID           int64 = 562949953460001 // Jim Builder, who signs in and sees both companies
	ServiceAccountUserID int64 = 562949953460002 // client_credentials tokens act as this user, in DemoCompanyID only
	firstProjectID       int64 = 562949954000001
	demoUserName               = "Jim Builder"
	demoUserLogin              = "jim.builder@example.com"
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

// userRef is how Procore embeds a person in another object.
type userRef struct {
	ID    int64  `json:"id"`
	Name  string `json:"name"`
	Login string `json:"login"`
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

	ordinal int           // position among the seeded projects, which fixes the ids of their items
	items   *projectItems // nil until first needed for a seeded project
}

// dataset is the emulator's API data, guarded by Server.mu.
type dataset struct {
	seed          Seed
	users         map[int64]*user
	companies     []*company // by id
	projects      []*project // by id
	projectByID   map[int64]*project
	nextProjectID int64
	directory     map[int64]*companyData // by company id
	hooks         []*hook                // every company's, by id
	next          map[idKind]int64       // next id of a created object, by kind
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

// addProject appends p to the data set.
func (d *dataset) addProject(p *project) {
	d.projects = append(d.projects, p)
	d.projectByID[p.ID] = p
}

// seedData builds the same data set every time, so tests and demos can
// rely on names and ids.
func seedData(seed Seed) *dataset {
	d := &dataset{
		seed: seed,
		users: map[int64]*user{
			DemoUserID: {ID: DemoUserID, Login: demoUserLogin, Name: demoUserName,
				companies: []int64{DemoCompanyID, SecondCompanyID}},
			ServiceAccountUserID: {ID: ServiceAccountUserID, Login: "service-account@example.com", Name: "Demo Service Account",
				companies: []int64{DemoCompanyID}},
		},
		companies: []*company{
			{ID: DemoCompanyID, Name: "Builder Bros Construction", IsActive: true},
			{ID: SecondCompanyID, Name: "Jim Builder Sandbox Co.", IsActive: true},
		},
		projectByID:   make(map[int64]*project),
		nextProjectID: firstProjectID,
		directory:     make(map[int64]*companyData),
		next:          make(map[idKind]int64),
	}
	d.seedDirectories()
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
	add := func(c *company, name string, i int) {
		city := cities[i%len(cities)]
		created := seedEpoch.Add(time.Duration(i) * 36 * time.Hour)
		number := fmt.Sprintf("P-%04d", i+1)
		d.addProject(&project{
			ID: d.nextProjectID, Name: name, DisplayName: number + " - " + name, ProjectNumber: number,
			Address: fmt.Sprintf("%d Main Street", 100+i*10), City: city.city, StateCode: city.state,
			CountryCode: "US", Zip: city.zip, Active: i%7 != 6,
			CreatedAt: created, UpdatedAt: created.Add(48 * time.Hour),
			Company: companyRef{ID: c.ID, Name: c.Name},
			ordinal: len(d.projects),
		})
		d.nextProjectID++
	}
	for i := range seed.Projects {
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
	if rep, ok := req.queryCompany(); !ok {
		return rep
	}
	return paginate(req, s.data.projectsOf(req.companyID))
}

// GET /rest/v1.0/companies/{company_id}/projects
func (s *Server) listCompanyProjects(req *apiRequest) apiReply {
	return paginate(req, s.data.projectsOf(req.companyID))
}

// GET /rest/v1.0/projects/{id}
func (s *Server) getProject(req *apiRequest) apiReply {
	p, rep, ok := s.projectOf(req, req.vars["id"], "the path")
	if !ok {
		return rep
	}
	return apiReply{status: http.StatusOK, body: p}
}

// projectOf finds the project whose id raw (from where) names: a 404 when
// there is none the user can see, a 403 when it belongs to another of the
// user's companies than the Procore-Company-Id header names.
func (s *Server) projectOf(req *apiRequest, raw, where string) (*project, apiReply, bool) {
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		return nil, notFound("Project ids are integers; %q in %s is not one.", raw, where), false
	}
	p := s.data.projectByID[id]
	switch {
	case p == nil || !req.user.canAccess(p.Company.ID):
		return nil, notFound("Project %d was not found in company %d.", id, req.companyID), false
	case p.Company.ID != req.companyID:
		return nil, apiError(http.StatusForbidden, "company_mismatch",
			fmt.Sprintf("Project %d belongs to company %d, not to company %d named in Procore-Company-Id; send its company's id in the header.",
				id, p.Company.ID, req.companyID)), false
	}
	return p, apiReply{}, true
}

// projectParam is projectOf for the {project_id} path variable.
func (s *Server) projectParam(req *apiRequest) (*project, apiReply, bool) {
	return s.projectOf(req, req.vars["project_id"], "the path")
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

const projectExample = `{"company_id":N,"project":{"name":"..."}}`

// POST /rest/v1.0/projects with {"company_id":N,"project":{...}}
func (s *Server) createProject(req *apiRequest) apiReply {
	var in struct {
		CompanyID json.Number   `json:"company_id"`
		Project   *projectInput `json:"project"`
	}
	if rep, ok := decodeBody(req, &in, projectExample); !ok {
		return rep
	}
	if rep, ok := req.bodyCompany(in.CompanyID); !ok {
		return rep
	}
	if in.Project == nil {
		return missingParam("project", projectExample)
	}
	p := in.Project
	if strings.TrimSpace(p.Name) == "" {
		return blank("name")
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
		ordinal: -1,
	}
	s.data.nextProjectID++
	np.items = s.data.newProjectItems(np, req.user.ID, now)
	s.data.addProject(np)
	req.event("Projects", np.ID, np.ID)
	return apiReply{status: http.StatusCreated, body: np}
}
