package examples_test

import (
	"testing"
	"time"

	"github.com/connector-engine/connector/definitions"
)

// TestListingStyles pins how each example's listings page, as the
// provider's documentation describes it.
func TestListingStyles(t *testing.T) {
	set := load(t)
	tests := []struct {
		def, action string
		want        definitions.Pagination
	}{
		{"salesforce", "query", definitions.Pagination{Style: definitions.PageNextURL, Items: "records", NextPath: "nextRecordsUrl"}},
		{"zoho-crm", "list_records", definitions.Pagination{Style: definitions.PagePage, PageParam: "page", FirstPage: 1, SizeParam: "per_page", Size: 200, Items: "data", MorePath: "info.more_records"}},
		{"hubspot", "list_contacts", definitions.Pagination{Style: definitions.PageCursor, Items: "results", CursorPath: "paging.next.after", CursorParam: "after", SizeParam: "limit", Size: 100}},
		{"slack", "list_conversations", definitions.Pagination{Style: definitions.PageCursor, Items: "channels", CursorPath: "response_metadata.next_cursor", CursorParam: "cursor", SizeParam: "limit", Size: 200}},
	}
	for _, tt := range tests {
		t.Run(tt.def+"/"+tt.action, func(t *testing.T) {
			d, err := set.Lookup(tt.def)
			if err != nil {
				t.Fatal(err)
			}
			a, err := d.Action(tt.action)
			if err != nil {
				t.Fatal(err)
			}
			if a.Pagination == nil || *a.Pagination != tt.want {
				t.Errorf("pagination %+v, want %+v", a.Pagination, tt.want)
			}
		})
	}
}

// TestSendToken pins where each example's API requests carry the token.
func TestSendToken(t *testing.T) {
	set := load(t)
	tests := []struct {
		def  string
		want definitions.SendToken
	}{
		{"github", definitions.SendToken{In: "header", Name: "Authorization", TypePrefix: true}},
		{"zoho-crm", definitions.SendToken{In: "header", Name: "Authorization", Prefix: "Zoho-oauthtoken "}},
	}
	for _, tt := range tests {
		d, err := set.Lookup(tt.def)
		if err != nil {
			t.Fatal(err)
		}
		if got := d.Auth.OAuth.SendToken; got != tt.want {
			t.Errorf("%s: send_token %+v, want %+v", tt.def, got, tt.want)
		}
	}
}

// TestRateLimits pins the examples' rate limits without a reset header.
func TestRateLimits(t *testing.T) {
	set := load(t)
	d, err := set.Lookup("hubspot")
	if err != nil {
		t.Fatal(err)
	}
	if rl := d.RateLimit; rl.RemainingHeader != "X-HubSpot-RateLimit-Remaining" || rl.ResetHeader != "" || rl.Per != 10*time.Second || rl.Limit != 100 {
		t.Errorf("hubspot rate limit %+v", rl)
	}
}
