package emulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

type rfi struct {
	ID          int64         `json:"id"`
	Number      string        `json:"number"`
	FullNumber  string        `json:"full_number"`
	Subject     string        `json:"subject"`
	Status      string        `json:"status"` // draft, open, closed
	Private     bool          `json:"private"`
	DueDate     *string       `json:"due_date"` // YYYY-MM-DD
	RFIManager  *userRef      `json:"rfi_manager"`
	CreatedBy   userRef       `json:"created_by"`
	ProjectID   int64         `json:"project_id"`
	Questions   []rfiQuestion `json:"questions"`
	InitiatedAt time.Time     `json:"initiated_at"`
	CreatedAt   time.Time     `json:"created_at"`
	UpdatedAt   time.Time     `json:"updated_at"`
}

type rfiQuestion struct {
	ID            int64     `json:"id"`
	Body          string    `json:"body"`
	PlainTextBody string    `json:"plain_text_body"`
	CreatedBy     userRef   `json:"created_by"`
	CreatedAt     time.Time `json:"created_at"`
}

type submittal struct {
	ID                    int64           `json:"id"`
	Number                string          `json:"number"`
	FormattedNumber       string          `json:"formatted_number"`
	Title                 string          `json:"title"`
	Revision              string          `json:"revision"`
	Status                submittalStatus `json:"status"`
	SpecificationSection  *specSection    `json:"specification_section"`
	ResponsibleContractor *companyRef     `json:"responsible_contractor"`
	SubmittalManager      *userRef        `json:"submittal_manager"`
	DueDate               *string         `json:"due_date"`
	Private               bool            `json:"private"`
	CreatedAt             time.Time       `json:"created_at"`
	UpdatedAt             time.Time       `json:"updated_at"`
}

type submittalStatus struct {
	ID     int64  `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"`
}

type specSection struct {
	ID          int64  `json:"id"`
	Number      string `json:"number"`
	Description string `json:"description"`
}

type timecardEntry struct {
	ID               int64      `json:"id"`
	Date             string     `json:"date"`  // YYYY-MM-DD
	Hours            string     `json:"hours"` // a decimal, as Procore sends it
	Description      string     `json:"description"`
	Billable         bool       `json:"billable"`
	TimeIn           *time.Time `json:"time_in"`
	TimeOut          *time.Time `json:"time_out"`
	Party            *userRef   `json:"party"`
	TimecardTimeType timeType   `json:"timecard_time_type"`
	CreatedAt        time.Time  `json:"created_at"`
	UpdatedAt        time.Time  `json:"updated_at"`
}

type timeType struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

// folder is a documents folder; its contents are shown by folderView.
type folder struct {
	ID           int64
	Name         string
	ParentID     *int64 // nil for the root
	Private      bool
	NameWithPath string // "" for the root
	CreatedAt    time.Time
	UpdatedAt    time.Time
	folders      []*folder
	files        []*file
}

type file struct {
	ID           int64     `json:"id"`
	Name         string    `json:"name"`
	Description  string    `json:"description"`
	ParentID     int64     `json:"parent_id"`
	Size         int64     `json:"size"`
	NameWithPath string    `json:"name_with_path"`
	Private      bool      `json:"private"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// folderSummary is a folder as listed inside its parent.
type folderSummary struct {
	ID           int64     `json:"id"`
	Name         string    `json:"name"`
	ParentID     *int64    `json:"parent_id"`
	Private      bool      `json:"private"`
	NameWithPath string    `json:"name_with_path"`
	HasChildren  bool      `json:"has_children"`
	IsRoot       bool      `json:"is_root"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// folderView is a folder with its subfolders and files, as GET
// /rest/v1.0/folders[/{id}] answers.
type folderView struct {
	folderSummary
	Folders []folderSummary `json:"folders"`
	Files   []*file         `json:"files"`
}

func (f *folder) summary() folderSummary {
	return folderSummary{ID: f.ID, Name: f.Name, ParentID: f.ParentID, Private: f.Private, NameWithPath: f.NameWithPath,
		HasChildren: len(f.folders)+len(f.files) > 0, IsRoot: f.ParentID == nil, UpdatedAt: f.UpdatedAt}
}

func (f *folder) view() folderView {
	v := folderView{folderSummary: f.summary(), Folders: []folderSummary{}, Files: []*file{}}
	for _, c := range f.folders {
		v.Folders = append(v.Folders, c.summary())
	}
	v.Files = append(v.Files, f.files...)
	return v
}

// GET /rest/v1.0/projects/{project_id}/rfis
func (s *Server) listRFIs(req *apiRequest) apiReply {
	p, rep, ok := s.projectParam(req)
	if !ok {
		return rep
	}
	return paginate(req, s.data.itemsOf(p).rfis)
}

// GET /rest/v1.0/projects/{project_id}/rfis/{id}
func (s *Server) getRFI(req *apiRequest) apiReply {
	p, rep, ok := s.projectParam(req)
	if !ok {
		return rep
	}
	id, err := strconv.ParseInt(req.vars["id"], 10, 64)
	if err == nil {
		for _, r := range s.data.itemsOf(p).rfis {
			if r.ID == id {
				return apiReply{status: http.StatusOK, body: r}
			}
		}
	}
	return notFound("RFI %s was not found in project %d.", req.vars["id"], p.ID)
}

const rfiExample = `{"rfi":{"subject":"...","question":{"body":"..."}}}`

// POST /rest/v1.0/projects/{project_id}/rfis with {"rfi":{...}}
func (s *Server) createRFI(req *apiRequest) apiReply {
	p, rep, ok := s.projectParam(req)
	if !ok {
		return rep
	}
	var in struct {
		RFI *struct {
			Subject  string `json:"subject"`
			Question *struct {
				Body string `json:"body"`
			} `json:"question"`
			RFIManagerID json.Number `json:"rfi_manager_id"`
			DueDate      string      `json:"due_date"`
			Private      bool        `json:"private"`
			Draft        bool        `json:"draft"`
		} `json:"rfi"`
	}
	if rep, ok := decodeBody(req, &in, rfiExample); !ok {
		return rep
	}
	if in.RFI == nil {
		return missingParam("rfi", rfiExample)
	}
	r, cd := in.RFI, s.data.directory[p.Company.ID]
	errs := map[string][]string{}
	if strings.TrimSpace(r.Subject) == "" {
		errs["subject"] = []string{"can't be blank"}
	}
	if r.Question == nil || strings.TrimSpace(r.Question.Body) == "" {
		errs["question.body"] = []string{"can't be blank"}
	}
	var manager *userRef
	if r.RFIManagerID != "" {
		id, err := r.RFIManagerID.Int64()
		if u := cd.userByID[id]; err == nil && u != nil {
			manager = u.ref()
		} else {
			errs["rfi_manager_id"] = []string{"is invalid"}
		}
	} else if u := cd.userByID[req.user.ID]; u != nil {
		manager = u.ref()
	}
	var due *string
	if r.DueDate != "" {
		if _, err := time.Parse(time.DateOnly, r.DueDate); err != nil {
			errs["due_date"] = []string{"is invalid (use YYYY-MM-DD)"}
		}
		due = &r.DueDate
	}
	if len(errs) > 0 {
		return validationFailed(errs)
	}
	it := s.data.itemsOf(p)
	now := req.now.UTC().Truncate(time.Second)
	author := userRef{ID: req.user.ID, Name: req.user.Name, Login: req.user.Login}
	status := "open"
	if r.Draft {
		status = "draft"
	}
	number := len(it.rfis) + 1
	body := strings.TrimSpace(r.Question.Body)
	nr := &rfi{
		ID: s.data.newID(kindRFI), Number: strconv.Itoa(number), FullNumber: fmt.Sprintf("%s-%d", p.ProjectNumber, number),
		Subject: strings.TrimSpace(r.Subject), Status: status, Private: r.Private, DueDate: due,
		RFIManager: manager, CreatedBy: author, ProjectID: p.ID,
		Questions:   []rfiQuestion{{ID: s.data.newID(kindQuestion), Body: body, PlainTextBody: body, CreatedBy: author, CreatedAt: now}},
		InitiatedAt: now, CreatedAt: now, UpdatedAt: now,
	}
	it.rfis = append(it.rfis, nr)
	req.event("RFIs", nr.ID, p.ID)
	return apiReply{status: http.StatusCreated, body: nr}
}

// GET /rest/v1.1/projects/{project_id}/submittals
func (s *Server) listSubmittals(req *apiRequest) apiReply {
	p, rep, ok := s.projectParam(req)
	if !ok {
		return rep
	}
	return paginate(req, s.data.itemsOf(p).submittals)
}

// GET /rest/v1.0/projects/{project_id}/timecard_entries
func (s *Server) listTimecardEntries(req *apiRequest) apiReply {
	p, rep, ok := s.projectParam(req)
	if !ok {
		return rep
	}
	return paginate(req, s.data.itemsOf(p).timecards)
}

const timecardExample = `{"timecard_entry":{"hours":"8","date":"YYYY-MM-DD"}}`

// POST /rest/v1.0/projects/{project_id}/timecard_entries with {"timecard_entry":{...}}
func (s *Server) createTimecardEntry(req *apiRequest) apiReply {
	p, rep, ok := s.projectParam(req)
	if !ok {
		return rep
	}
	var in struct {
		Entry *struct {
			Hours       json.RawMessage `json:"hours"` // a number or a numeric string
			Date        string          `json:"date"`
			Description string          `json:"description"`
			Billable    *bool           `json:"billable"`
			PartyID     json.Number     `json:"party_id"`
			TimeTypeID  json.Number     `json:"timecard_time_type_id"`
			TimeIn      *time.Time      `json:"time_in"`
			TimeOut     *time.Time      `json:"time_out"`
		} `json:"timecard_entry"`
	}
	if rep, ok := decodeBody(req, &in, timecardExample); !ok {
		return rep
	}
	if in.Entry == nil {
		return missingParam("timecard_entry", timecardExample)
	}
	e, cd := in.Entry, s.data.directory[p.Company.ID]
	errs := map[string][]string{}
	hours, msg := parseHours(e.Hours)
	if msg != "" {
		errs["hours"] = []string{msg}
	}
	if e.Date == "" {
		errs["date"] = []string{"can't be blank"}
	} else if _, err := time.Parse(time.DateOnly, e.Date); err != nil {
		errs["date"] = []string{"is invalid (use YYYY-MM-DD)"}
	}
	party := &userRef{ID: req.user.ID, Name: req.user.Name, Login: req.user.Login}
	if e.PartyID != "" {
		id, err := e.PartyID.Int64()
		if u := cd.userByID[id]; err == nil && u != nil {
			party = u.ref()
		} else {
			errs["party_id"] = []string{"is invalid"}
		}
	}
	tt := timeTypes[0]
	if e.TimeTypeID != "" {
		id, err := e.TimeTypeID.Int64()
		if err != nil || id < 1 || id > int64(len(timeTypes)) {
			errs["timecard_time_type_id"] = []string{"is invalid"}
		} else {
			tt = timeTypes[id-1]
		}
	}
	if len(errs) > 0 {
		return validationFailed(errs)
	}
	now := req.now.UTC().Truncate(time.Second)
	te := &timecardEntry{
		ID: s.data.newID(kindTimecardEntry), Date: e.Date, Hours: hours, Description: e.Description,
		Billable: e.Billable == nil || *e.Billable, Party: party, TimecardTimeType: tt, TimeIn: e.TimeIn, TimeOut: e.TimeOut,
		CreatedAt: now, UpdatedAt: now,
	}
	it := s.data.itemsOf(p)
	it.timecards = append(it.timecards, te)
	req.event("Timecard Entries", te.ID, p.ID)
	return apiReply{status: http.StatusCreated, body: te}
}

// parseHours reads hours given as a JSON number or a numeric string and
// formats it as Procore does ("8.0"); msg is the 422 message when wrong.
func parseHours(raw json.RawMessage) (hours, msg string) {
	v := strings.TrimSpace(string(raw))
	if v == "" || v == "null" || v == `""` {
		return "", "can't be blank"
	}
	if strings.HasPrefix(v, `"`) {
		if err := json.Unmarshal(raw, &v); err != nil {
			return "", "is not a number"
		}
	}
	h, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil {
		return "", "is not a number"
	}
	if h < 0 || h > 24 {
		return "", "must be between 0 and 24"
	}
	out := strconv.FormatFloat(h, 'f', -1, 64)
	if !strings.Contains(out, ".") {
		out += ".0"
	}
	return out, ""
}

// projectQuery resolves the project_id query parameter the documents
// endpoints require.
func (s *Server) projectQuery(req *apiRequest) (*project, apiReply, bool) {
	raw := req.r.URL.Query().Get("project_id")
	if raw == "" {
		return nil, apiError(http.StatusBadRequest, "missing_project_id", "The project_id query parameter is required."), false
	}
	return s.projectOf(req, raw, "the project_id query parameter")
}

// GET /rest/v1.0/folders?project_id=N answers the project's root folder.
func (s *Server) getRootFolder(req *apiRequest) apiReply {
	p, rep, ok := s.projectQuery(req)
	if !ok {
		return rep
	}
	return apiReply{status: http.StatusOK, body: s.data.itemsOf(p).root.view()}
}

// GET /rest/v1.0/folders/{id}?project_id=N
func (s *Server) getFolder(req *apiRequest) apiReply {
	p, rep, ok := s.projectQuery(req)
	if !ok {
		return rep
	}
	id, err := strconv.ParseInt(req.vars["id"], 10, 64)
	f := s.data.itemsOf(p).folders[id]
	if err != nil || f == nil {
		return notFound("Folder %s was not found in project %d.", req.vars["id"], p.ID)
	}
	return apiReply{status: http.StatusOK, body: f.view()}
}
