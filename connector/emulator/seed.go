package emulator

import (
	"fmt"
	"strings"
	"time"
)

// Default sizes of the seed data.
const (
	DemoProjectCount       = 250 // projects of DemoCompanyID
	DemoUserCount          = 40  // DemoCompanyID's directory besides Jim Builder
	DemoVendorCount        = 30  // vendors of DemoCompanyID
	DemoRFICount           = 30  // RFIs per project
	DemoSubmittalCount     = 20  // submittals per project
	DemoTimecardEntryCount = 25  // timecard entries per project
	DemoFileCount          = 4   // files per seeded folder
)

// Seed sizes the API's seed data. A zero field takes its Demo* default; a
// negative one seeds none. The data is the same for the same Seed, ids
// included. SecondCompanyID always has three projects, Jim Builder and
// three more users, and three vendors.
//
// Every project owns a root folder with subfolders (Drawings,
// Specifications, Photos with Photos/Site Visits, and a private
// Contracts), each with Files files, plus two files at the root. Items of
// seeded projects are built the first time the project's items are read,
// so large counts cost nothing until used.
type Seed struct {
	Projects int // projects of DemoCompanyID
	Users    int // users in DemoCompanyID's directory besides Jim Builder
	Vendors  int // vendors of DemoCompanyID
	// Per project, at most 9999 each.
	RFIs, Submittals, TimecardEntries int
	// Files per seeded folder, at most 1000.
	Files int
}

func (sd Seed) withDefaults() Seed {
	pick := func(v, def, most int) int {
		switch {
		case v < 0:
			return 0
		case v == 0:
			return def
		}
		return min(v, most)
	}
	const unbounded = 1 << 30
	return Seed{
		Projects:        pick(sd.Projects, DemoProjectCount, unbounded),
		Users:           pick(sd.Users, DemoUserCount, unbounded),
		Vendors:         pick(sd.Vendors, DemoVendorCount, unbounded),
		RFIs:            pick(sd.RFIs, DemoRFICount, seededPerProject-1),
		Submittals:      pick(sd.Submittals, DemoSubmittalCount, seededPerProject-1),
		TimecardEntries: pick(sd.TimecardEntries, DemoTimecardEntryCount, seededPerProject-1),
		Files:           pick(sd.Files, DemoFileCount, 1000),
	}
}

// seedEpoch dates the seed data.
var seedEpoch = time.Date(2023, time.January, 9, 15, 30, 0, 0, time.UTC)

// idKind names a kind of object whose ids come from dataset.newID.
type idKind int64

const (
	kindRFI idKind = iota + 1
	kindQuestion
	kindSubmittal
	kindTimecardEntry
	kindFolder
	kindFile
	kindHook
	kindTrigger
	kindDelivery
	kindEvent
	kindUser
	kindVendor
)

// Ids of project items: each kind has its own range; a seeded project
// reserves seededPerProject ids of each kind by its ordinal, so the ids do
// not depend on the order in which projects are first read; created
// objects count up from createdOffset within the range.
const (
	itemIDBase       int64 = 563_000_000_000_000
	kindSpan         int64 = 10_000_000_000_000
	createdOffset    int64 = 9_000_000_000_000
	seededPerProject       = 10_000
	firstUserID      int64 = 562949953470001
	firstVendorID    int64 = 562949953490001
)

func seededID(k idKind, ordinal, i int) int64 {
	return itemIDBase + int64(k)*kindSpan + int64(ordinal)*seededPerProject + int64(i) + 1
}

// newID returns a fresh id of kind k for a created object.
func (d *dataset) newID(k idKind) int64 {
	id := d.next[k]
	if id == 0 {
		id = itemIDBase + int64(k)*kindSpan + createdOffset + 1
	}
	d.next[k] = id + 1
	return id
}

// companyData is a company's directory and vendors.
type companyData struct {
	users      []*companyUser // Jim Builder first, then by id
	userByID   map[int64]*companyUser
	vendors    []*vendor
	vendorByID map[int64]*vendor
}

func (cd *companyData) addUser(u *companyUser) {
	cd.users = append(cd.users, u)
	cd.userByID[u.ID] = u
}

func (cd *companyData) addVendor(v *vendor) {
	cd.vendors = append(cd.vendors, v)
	cd.vendorByID[v.ID] = v
}

// userRef returns the i-th user (modulo) of the directory as a reference.
func (cd *companyData) userRef(i int) *userRef {
	u := cd.users[i%len(cd.users)]
	return u.ref()
}

var (
	firstNames = []string{"Ava", "Ben", "Carla", "Diego", "Elena", "Frank", "Grace", "Hiro", "Isla", "Jamal",
		"Kira", "Liam", "Maya", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Sam", "Tariq"}
	lastNames = []string{"Adams", "Brooks", "Chen", "Diaz", "Evans", "Fischer", "Garcia", "Hughes", "Ito", "Johnson",
		"Kowalski", "Lopez", "Murphy", "Nguyen", "Okafor", "Patel", "Reyes", "Schmidt", "Turner", "Walsh"}
	jobTitles = []string{"Project Manager", "Superintendent", "Project Engineer", "Foreman", "Estimator",
		"Safety Manager", "Architect", "Office Manager"}
	vendorPrefixes = []string{"Acme", "Summit", "Keystone", "Pioneer", "Bluebird", "Ironwood", "Redline",
		"Cascade", "Northstar", "Evergreen"}
	vendorTrades = []string{"Concrete", "Electric", "Plumbing", "Steel", "Drywall", "Roofing", "Glazing",
		"Excavation", "Mechanical", "Painting", "Landscaping", "Flooring"}
)

// seedDirectories fills each company's directory and vendors.
func (d *dataset) seedDirectories() {
	nextUser, nextVendor := firstUserID, firstVendorID
	for _, c := range d.companies {
		users, vendors, domain := d.seed.Users, d.seed.Vendors, "builderbros.example.com"
		if c.ID != DemoCompanyID {
			users, vendors, domain = 3, 3, "sandbox.example.com"
		}
		cd := &companyData{userByID: make(map[int64]*companyUser), vendorByID: make(map[int64]*vendor)}
		d.directory[c.ID] = cd
		jim := &companyUser{
			ID: DemoUserID, FirstName: "Jim", LastName: "Builder", Name: demoUserName, EmailAddress: demoUserLogin,
			JobTitle: "Owner", BusinessPhone: "+1 805 555 0100", IsActive: true, IsEmployee: true,
			CreatedAt: seedEpoch.AddDate(-2, 0, 0), UpdatedAt: seedEpoch.AddDate(-2, 0, 0),
		}
		login := seedEpoch.AddDate(0, 0, -1)
		jim.LastLoginAt, jim.WelcomeEmailSentAt = &login, &jim.CreatedAt
		cd.addUser(jim)
		for i := range vendors {
			name := vendorPrefixes[i%len(vendorPrefixes)] + " " + vendorTrades[(i/len(vendorPrefixes)+i)%len(vendorTrades)]
			if i >= len(vendorPrefixes)*len(vendorTrades) {
				name += fmt.Sprintf(" %d", i/(len(vendorPrefixes)*len(vendorTrades))+1)
			}
			created := seedEpoch.AddDate(0, 0, -300+i)
			slug := strings.ToLower(strings.ReplaceAll(name, " ", ""))
			cd.addVendor(&vendor{
				ID: nextVendor, Name: name + " Inc.", AbbreviatedName: strings.ToUpper(name[:3]),
				TradeName: vendorTrades[(i/len(vendorPrefixes)+i)%len(vendorTrades)],
				Address:   fmt.Sprintf("%d Industrial Way", 10+i), City: "Santa Barbara", StateCode: "CA",
				Zip: "93101", CountryCode: "US", BusinessPhone: fmt.Sprintf("+1 805 555 %04d", 2000+i),
				EmailAddress: "office@" + slug + ".example.com", Website: "https://" + slug + ".example.com",
				IsActive: i%9 != 8, CreatedAt: created, UpdatedAt: created.Add(72 * time.Hour),
			})
			nextVendor++
		}
		for i := range users {
			first := firstNames[i%len(firstNames)]
			last := lastNames[(i/len(firstNames)+i)%len(lastNames)]
			email := strings.ToLower(first + "." + last)
			if i >= len(firstNames)*len(lastNames) { // the pairs repeat from here
				email += fmt.Sprint(i / (len(firstNames) * len(lastNames)))
			}
			created := seedEpoch.AddDate(0, 0, -200+i)
			u := &companyUser{
				ID: nextUser, FirstName: first, LastName: last, Name: first + " " + last,
				EmailAddress: email + "@" + domain, JobTitle: jobTitles[i%len(jobTitles)],
				BusinessPhone: fmt.Sprintf("+1 805 555 %04d", 1000+i), MobilePhone: fmt.Sprintf("+1 805 556 %04d", 1000+i),
				IsActive: i%10 != 9, IsEmployee: true, CreatedAt: created, UpdatedAt: created.Add(24 * time.Hour),
			}
			if i%4 == 3 && len(cd.vendors) > 0 { // a subcontractor's person
				v := cd.vendors[(i/4)%len(cd.vendors)]
				u.IsEmployee, u.Vendor = false, &companyRef{ID: v.ID, Name: v.Name}
				u.EmailAddress = email + "@" + strings.TrimPrefix(v.Website, "https://")
			} else {
				id := fmt.Sprintf("E%05d", i+1)
				u.EmployeeID = &id
			}
			if u.IsActive {
				sent, seen := created.Add(time.Hour), created.AddDate(0, 0, 30)
				u.WelcomeEmailSentAt, u.LastLoginAt = &sent, &seen
			}
			cd.addUser(u)
			nextUser++
		}
	}
	d.next[kindUser], d.next[kindVendor] = nextUser, nextVendor
}

// projectItems are a project's RFIs, submittals, timecard entries,
// project directory and documents.
type projectItems struct {
	users      []int64 // company user ids
	rfis       []*rfi
	submittals []*submittal
	timecards  []*timecardEntry
	root       *folder
	folders    map[int64]*folder
}

// itemsOf returns p's items, building a seeded project's on first use.
func (d *dataset) itemsOf(p *project) *projectItems {
	if p.items == nil {
		p.items = d.seedItems(p)
	}
	return p.items
}

// newProjectItems are the items of a created project: its creator in the
// directory and an empty root folder.
func (d *dataset) newProjectItems(p *project, creator int64, now time.Time) *projectItems {
	it := &projectItems{folders: make(map[int64]*folder)}
	if cd := d.directory[p.Company.ID]; cd.userByID[creator] != nil {
		it.users = []int64{creator}
	}
	it.root = &folder{ID: d.newID(kindFolder), Name: "Documents", UpdatedAt: now, CreatedAt: now}
	it.folders[it.root.ID] = it.root
	return it
}

var (
	rfiSubjects = []string{"Clarify slab edge detail at grid C", "Conflict between duct and beam on level 2",
		"Door hardware schedule missing", "Confirm roof drain locations", "Finish for lobby columns",
		"Rebar spacing at shear wall", "Elevator pit depth", "Fire rating of corridor walls",
		"Window head flashing detail", "Substitution request for ceiling tile"}
	specSections = []struct{ number, description string }{
		{"03 30 00", "Cast-in-Place Concrete"}, {"05 12 00", "Structural Steel Framing"},
		{"07 54 00", "Thermoplastic Membrane Roofing"}, {"08 71 00", "Door Hardware"},
		{"09 29 00", "Gypsum Board"}, {"22 40 00", "Plumbing Fixtures"}, {"26 51 00", "Interior Lighting"},
	}
	submittalKinds = []string{"Shop Drawings", "Product Data", "Samples", "Mix Design", "Warranty"}
	statuses       = []submittalStatus{{ID: 1, Name: "Open", Status: "Open"}, {ID: 2, Name: "Approved", Status: "Closed"},
		{ID: 3, Name: "Draft", Status: "Draft"}, {ID: 4, Name: "Revise and Resubmit", Status: "Open"}}
	workDone = []string{"Formwork level 1", "Rebar placement", "Concrete pour", "Framing level 2", "Drywall hanging",
		"Site cleanup", "Safety meeting", "Material delivery"}
	timeTypes   = []timeType{{ID: 1, Name: "Regular Time"}, {ID: 2, Name: "Overtime"}, {ID: 3, Name: "Double Time"}}
	seedFolders = []struct {
		name    string
		parent  int // index in this list; 0 is the root
		private bool
		file    func(i int) string
	}{
		{"Documents", -1, false, nil},
		{"Drawings", 0, false, func(i int) string { return fmt.Sprintf("A-%03d Floor Plan Level %d.pdf", 101+i, i+1) }},
		{"Specifications", 0, false, func(i int) string { return fmt.Sprintf("Section %02d 00 00.pdf", i+1) }},
		{"Photos", 0, false, func(i int) string { return fmt.Sprintf("IMG_%04d.jpg", 1001+i) }},
		{"Site Visits", 3, false, func(i int) string { return fmt.Sprintf("Site Visit %d.jpg", i+1) }},
		{"Contracts", 0, true, func(i int) string { return fmt.Sprintf("Subcontract %03d.pdf", i+1) }},
	}
)

// seedItems builds a seeded project's items from its ordinal alone.
func (d *dataset) seedItems(p *project) *projectItems {
	o := p.ordinal
	cd := d.directory[p.Company.ID]
	it := &projectItems{folders: make(map[int64]*folder)}
	for i, u := range cd.users {
		if i == 0 || (i+o)%3 == 0 {
			it.users = append(it.users, u.ID)
		}
	}
	for i := range d.seed.RFIs {
		created := p.CreatedAt.Add(time.Duration(i+1) * 26 * time.Hour)
		due := created.AddDate(0, 0, 14).Format(time.DateOnly)
		status := "open"
		switch {
		case i%5 == 4:
			status = "closed"
		case i%7 == 3:
			status = "draft"
		}
		author := cd.userRef(i + o + 1)
		subject := rfiSubjects[(i+o)%len(rfiSubjects)]
		it.rfis = append(it.rfis, &rfi{
			ID: seededID(kindRFI, o, i), Number: fmt.Sprint(i + 1), FullNumber: fmt.Sprintf("%s-%d", p.ProjectNumber, i+1),
			Subject: subject, Status: status, Private: i%6 == 5, DueDate: &due,
			RFIManager: cd.userRef(i + o), CreatedBy: *author, ProjectID: p.ID,
			Questions: []rfiQuestion{{ID: seededID(kindQuestion, o, i), Body: "<p>" + subject + "?</p>",
				PlainTextBody: subject + "?", CreatedBy: *author, CreatedAt: created}},
			InitiatedAt: created, CreatedAt: created, UpdatedAt: created.Add(3 * time.Hour),
		})
	}
	for i := range d.seed.Submittals {
		created := p.CreatedAt.Add(time.Duration(i+1) * 30 * time.Hour)
		due := created.AddDate(0, 0, 21).Format(time.DateOnly)
		sec := specSections[(i+o)%len(specSections)]
		sm := &submittal{
			ID: seededID(kindSubmittal, o, i), Number: fmt.Sprint(i + 1),
			FormattedNumber: fmt.Sprintf("%s-%d", sec.number, i+1),
			Title:           sec.description + " " + submittalKinds[i%len(submittalKinds)], Revision: fmt.Sprint(i % 3 / 2),
			Status:               statuses[(i+o)%len(statuses)],
			SpecificationSection: &specSection{ID: int64((i+o)%len(specSections)) + 1, Number: sec.number, Description: sec.description},
			SubmittalManager:     cd.userRef(i + o + 2), DueDate: &due, Private: i%8 == 7,
			CreatedAt: created, UpdatedAt: created.Add(5 * time.Hour),
		}
		if len(cd.vendors) > 0 {
			v := cd.vendors[(i+o)%len(cd.vendors)]
			sm.ResponsibleContractor = &companyRef{ID: v.ID, Name: v.Name}
		}
		it.submittals = append(it.submittals, sm)
	}
	hours := []string{"8.0", "7.5", "10.0", "4.0", "9.25"}
	for i := range d.seed.TimecardEntries {
		day := p.CreatedAt.AddDate(0, 0, i/2)
		created := day.Add(10 * time.Hour)
		tt := timeTypes[0]
		if i%5 == 4 {
			tt = timeTypes[1]
		}
		it.timecards = append(it.timecards, &timecardEntry{
			ID: seededID(kindTimecardEntry, o, i), Date: day.Format(time.DateOnly), Hours: hours[i%len(hours)],
			Description: workDone[(i+o)%len(workDone)], Billable: i%3 != 2, Party: cd.userRef(i + o),
			TimecardTimeType: tt, CreatedAt: created, UpdatedAt: created,
		})
	}
	var made []*folder
	nf := 0 // files so far, for their ids
	for k, sf := range seedFolders {
		f := &folder{ID: seededID(kindFolder, o, k), Name: sf.name, Private: sf.private,
			CreatedAt: p.CreatedAt, UpdatedAt: p.CreatedAt.Add(time.Duration(k) * time.Hour)}
		n := d.seed.Files
		if sf.parent >= 0 {
			parent := made[sf.parent]
			f.ParentID = &parent.ID
			f.NameWithPath = strings.TrimPrefix(parent.NameWithPath+"/"+sf.name, "/")
			parent.folders = append(parent.folders, f)
		} else {
			n = min(2, n)
		}
		for i := range n {
			name := []string{"Project Charter.pdf", "Contacts.xlsx"}[i%2]
			if sf.file != nil {
				name = sf.file(i)
			}
			at := f.UpdatedAt.Add(time.Duration(i) * time.Minute)
			f.files = append(f.files, &file{
				ID: seededID(kindFile, o, nf), Name: name, Description: "", ParentID: f.ID,
				Size: 100_000 + int64(nf*7919%900_000), NameWithPath: strings.TrimPrefix(f.NameWithPath+"/"+name, "/"),
				Private: f.Private, CreatedAt: at, UpdatedAt: at,
			})
			nf++
		}
		made = append(made, f)
		it.folders[f.ID] = f
	}
	it.root = made[0]
	return it
}
