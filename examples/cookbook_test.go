package examples_test

import (
	"testing"

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
