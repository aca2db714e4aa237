package emulator

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// companyUser is a person in a company's directory, as the v1.3 company
// users API and the project users API show them.
type companyUser struct {
	ID                 int64       `json:"id"`
	Name               string      `json:"name"`
	FirstName          string      `json:"first_name"`
	LastName           string      `json:"last_name"`
	EmailAddress       string      `json:"email_address"`
	JobTitle           string      `json:"job_title"`
	BusinessPhone      string      `json:"business_phone"`
	MobilePhone        string      `json:"mobile_phone"`
	IsActive           bool        `json:"is_active"`
	IsEmployee         bool        `json:"is_employee"`
	EmployeeID         *string     `json:"employee_id"`
	Vendor             *companyRef `json:"vendor"`
	LastLoginAt        *time.Time  `json:"last_login_at"`
	WelcomeEmailSentAt *time.Time  `json:"welcome_email_sent_at"`
	CreatedAt          time.Time   `json:"created_at"`
	UpdatedAt          time.Time   `json:"updated_at"`
}

func (u *companyUser) ref() *userRef {
	return &userRef{ID: u.ID, Name: u.Name, Login: u.EmailAddress}
}

type vendor struct {
	ID              int64     `json:"id"`
	Name            string    `json:"name"`
	AbbreviatedName string    `json:"abbreviated_name"`
	TradeName       string    `json:"trade_name"`
	Address         string    `json:"address"`
	City            string    `json:"city"`
	StateCode       string    `json:"state_code"`
	Zip             string    `json:"zip"`
	CountryCode     string    `json:"country_code"`
	BusinessPhone   string    `json:"business_phone"`
	EmailAddress    string    `json:"email_address"`
	Website         string    `json:"website"`
	IsActive        bool      `json:"is_active"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
}

// GET /rest/v1.3/companies/{company_id}/users
func (s *Server) listCompanyUsers(req *apiRequest) apiReply {
	return paginate(req, s.data.directory[req.companyID].users)
}

// companyUserParam finds the {id} user of the request's company.
func (s *Server) companyUserParam(req *apiRequest) (*companyUser, apiReply, bool) {
	id, err := strconv.ParseInt(req.vars["id"], 10, 64)
	u := s.data.directory[req.companyID].userByID[id]
	if err != nil || u == nil {
		return nil, notFound("User %s was not found in the directory of company %d.", req.vars["id"], req.companyID), false
	}
	return u, apiReply{}, true
}

// GET /rest/v1.3/companies/{company_id}/users/{id}
func (s *Server) getCompanyUser(req *apiRequest) apiReply {
	u, rep, ok := s.companyUserParam(req)
	if !ok {
		return rep
	}
	return apiReply{status: http.StatusOK, body: u}
}

const userExample = `{"user":{"last_name":"...","email_address":"..."}}`

// POST /rest/v1.3/companies/{company_id}/users with {"user":{...}}
func (s *Server) createCompanyUser(req *apiRequest) apiReply {
	var in struct {
		User *struct {
			FirstName     string      `json:"first_name"`
			LastName      string      `json:"last_name"`
			EmailAddress  string      `json:"email_address"`
			JobTitle      string      `json:"job_title"`
			BusinessPhone string      `json:"business_phone"`
			MobilePhone   string      `json:"mobile_phone"`
			IsActive      *bool       `json:"is_active"`
			IsEmployee    *bool       `json:"is_employee"`
			EmployeeID    *string     `json:"employee_id"`
			VendorID      json.Number `json:"vendor_id"`
		} `json:"user"`
	}
	if rep, ok := decodeBody(req, &in, userExample); !ok {
		return rep
	}
	if in.User == nil {
		return missingParam("user", userExample)
	}
	u, cd := in.User, s.data.directory[req.companyID]
	errs := map[string][]string{}
	if strings.TrimSpace(u.LastName) == "" {
		errs["last_name"] = []string{"can't be blank"}
	}
	email := strings.ToLower(strings.TrimSpace(u.EmailAddress))
	switch {
	case email == "":
		errs["email_address"] = []string{"can't be blank"}
	case !strings.Contains(email, "@") || strings.ContainsAny(email, " <>"):
		errs["email_address"] = []string{"is invalid"}
	default:
		for _, other := range cd.users {
			if strings.EqualFold(other.EmailAddress, email) {
				errs["email_address"] = []string{"has already been taken"}
			}
		}
	}
	var vref *companyRef
	if u.VendorID != "" {
		id, err := u.VendorID.Int64()
		if v := cd.vendorByID[id]; err == nil && v != nil {
			vref = &companyRef{ID: v.ID, Name: v.Name}
		} else {
			errs["vendor_id"] = []string{"is invalid"}
		}
	}
	if len(errs) > 0 {
		return validationFailed(errs)
	}
	now := req.now.UTC().Truncate(time.Second)
	nu := &companyUser{
		ID: s.data.newID(kindUser), FirstName: strings.TrimSpace(u.FirstName), LastName: strings.TrimSpace(u.LastName),
		EmailAddress: email, JobTitle: u.JobTitle, BusinessPhone: u.BusinessPhone, MobilePhone: u.MobilePhone,
		IsActive: u.IsActive == nil || *u.IsActive, IsEmployee: u.IsEmployee == nil || *u.IsEmployee,
		EmployeeID: u.EmployeeID, Vendor: vref, CreatedAt: now, UpdatedAt: now,
	}
	nu.Name = strings.TrimSpace(nu.FirstName + " " + nu.LastName)
	cd.addUser(nu)
	return apiReply{status: http.StatusCreated, body: nu}
}

// PATCH /rest/v1.3/companies/{company_id}/users/{id}/invite sends (here:
// records) the invitation email.
func (s *Server) inviteCompanyUser(req *apiRequest) apiReply {
	u, rep, ok := s.companyUserParam(req)
	if !ok {
		return rep
	}
	if !u.IsActive {
		return validationFailed(map[string][]string{"base": {"Inactive users cannot be invited; activate the user first."}})
	}
	now := req.now.UTC().Truncate(time.Second)
	u.WelcomeEmailSentAt, u.UpdatedAt = &now, now
	return apiReply{status: http.StatusOK, body: u}
}

// GET /rest/v1.0/projects/{project_id}/users
func (s *Server) listProjectUsers(req *apiRequest) apiReply {
	p, rep, ok := s.projectParam(req)
	if !ok {
		return rep
	}
	cd := s.data.directory[p.Company.ID]
	var users []*companyUser
	for _, id := range s.data.itemsOf(p).users {
		if u := cd.userByID[id]; u != nil {
			users = append(users, u)
		}
	}
	return paginate(req, users)
}

// GET /rest/v1.0/vendors?company_id=N
func (s *Server) listVendors(req *apiRequest) apiReply {
	if rep, ok := req.queryCompany(); !ok {
		return rep
	}
	return paginate(req, s.data.directory[req.companyID].vendors)
}

const vendorExample = `{"company_id":N,"vendor":{"name":"..."}}`

// POST /rest/v1.0/vendors with {"company_id":N,"vendor":{...}}
func (s *Server) createVendor(req *apiRequest) apiReply {
	var in struct {
		CompanyID json.Number `json:"company_id"`
		Vendor    *struct {
			Name            string `json:"name"`
			AbbreviatedName string `json:"abbreviated_name"`
			TradeName       string `json:"trade_name"`
			Address         string `json:"address"`
			City            string `json:"city"`
			StateCode       string `json:"state_code"`
			Zip             string `json:"zip"`
			CountryCode     string `json:"country_code"`
			BusinessPhone   string `json:"business_phone"`
			EmailAddress    string `json:"email_address"`
			Website         string `json:"website"`
			IsActive        *bool  `json:"is_active"`
		} `json:"vendor"`
	}
	if rep, ok := decodeBody(req, &in, vendorExample); !ok {
		return rep
	}
	if rep, ok := req.bodyCompany(in.CompanyID); !ok {
		return rep
	}
	if in.Vendor == nil {
		return missingParam("vendor", vendorExample)
	}
	v := in.Vendor
	if strings.TrimSpace(v.Name) == "" {
		return blank("name")
	}
	now := req.now.UTC().Truncate(time.Second)
	nv := &vendor{
		ID: s.data.newID(kindVendor), Name: strings.TrimSpace(v.Name), AbbreviatedName: v.AbbreviatedName,
		TradeName: v.TradeName, Address: v.Address, City: v.City, StateCode: v.StateCode, Zip: v.Zip,
		CountryCode: v.CountryCode, BusinessPhone: v.BusinessPhone, EmailAddress: v.EmailAddress, Website: v.Website,
		IsActive: v.IsActive == nil || *v.IsActive, CreatedAt: now, UpdatedAt: now,
	}
	s.data.directory[req.companyID].addVendor(nv)
	req.event("Vendors", nv.ID, 0)
	return apiReply{status: http.StatusCreated, body: nv}
}
