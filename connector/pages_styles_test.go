package connector

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/connector-engine/connector/definitions"
)

// stripeAndDropbox serves, behind s, n items {"id":"obj_<i>"} as Stripe lists them
// (GET ?limit&starting_after=<last id>, {"data","has_more"}) and as Dropbox
// does (POST /files/list_folder {"path"}, then POST
// /files/list_folder/continue {"cursor"}, {"entries","cursor","has_more"}).
func stripeAndDropbox(s *apiServer, n int, bodies *[]string) func(w http.ResponseWriter, r *http.Request) {
	id := func(i int) string { return "obj_" + strconv.Itoa(i) }
	page := func(from, count int) []map[string]string {
		out := []map[string]string{}
		for i := from; i < from+count && i <= n; i++ {
			out = append(out, map[string]string{"id": id(i)})
		}
		return out
	}
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		switch r.URL.Path {
		case "/v1/customers":
			limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
			from := 1
			if after := r.URL.Query().Get("starting_after"); after != "" {
				i, _ := strconv.Atoi(strings.TrimPrefix(after, "obj_"))
				from = i + 1
			}
			_ = enc.Encode(map[string]any{"object": "list", "data": page(from, limit), "has_more": from+limit <= n})
		case "/files/list_folder", "/files/list_folder/continue":
			if r.Method != http.MethodPost {
				w.WriteHeader(http.StatusMethodNotAllowed)
				return
			}
			s.mu.Lock()
			b := s.bodies[len(s.bodies)-1] // the test server read it
			s.mu.Unlock()
			*bodies = append(*bodies, r.URL.Path+" "+b)
			var in struct{ Path, Cursor string }
			_ = json.Unmarshal([]byte(b), &in)
			from := 1
			if r.URL.Path == "/files/list_folder/continue" {
				from, _ = strconv.Atoi(strings.TrimPrefix(in.Cursor, "c"))
			} else if in.Path != "/docs" {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			_ = enc.Encode(map[string]any{"entries": page(from, 4), "cursor": "c" + strconv.Itoa(from+4), "has_more": from+4 <= n})
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}
}

func TestItemsStripeAndDropboxStyles(t *testing.T) {
	tests := []struct {
		name   string
		r      Request
		p      definitions.Pagination
		n      int
		pages  int
		bodies []string
	}{
		{"stripe: starting_after the last id, until has_more is false", Request{Path: "/v1/customers"},
			definitions.Pagination{Style: definitions.PageLastItem, Items: "data", LastPath: "id", CursorParam: "starting_after", SizeParam: "limit", Size: 3, MorePath: "has_more"}, 10, 4, nil},
		{"stripe: an exact multiple ends on has_more", Request{Path: "/v1/customers"},
			definitions.Pagination{Style: definitions.PageLastItem, Items: "data", LastPath: "id", CursorParam: "starting_after", SizeParam: "limit", Size: 5, MorePath: "has_more"}, 10, 2, nil},
		{"dropbox: the cursor in a POST body to /continue", Request{Method: http.MethodPost, Path: "/files/list_folder", Body: []byte(`{"path":"/docs"}`)},
			definitions.Pagination{Style: definitions.PageCursor, Items: "entries", CursorPath: "cursor", CursorBody: "cursor", ContinuePath: "/files/list_folder/continue", MorePath: "has_more"}, 9, 3,
			[]string{`/files/list_folder {"path":"/docs"}`, `/files/list_folder/continue {"cursor":"c5"}`, `/files/list_folder/continue {"cursor":"c9"}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newAPIServer(t)
			api, _ := newTestAPI(t, s, transportDef)
			var bodies []string
			s.handle(stripeAndDropbox(s, tt.n, &bodies))
			var last Progress
			want := 1
			for item, err := range api.Items(context.Background(), tt.r, &tt.p, func(p Progress) { last = p }) {
				if err != nil {
					t.Fatal(err)
				}
				var v struct{ ID string }
				if err := json.Unmarshal(item, &v); err != nil || v.ID != "obj_"+strconv.Itoa(want) {
					t.Fatalf("item %s, want obj_%d", item, want)
				}
				want++
			}
			if want-1 != tt.n || last.Pages != tt.pages {
				t.Fatalf("got %d items in %d pages; want %d in %d", want-1, last.Pages, tt.n, tt.pages)
			}
			if tt.bodies != nil && strings.Join(bodies, "\n") != strings.Join(tt.bodies, "\n") {
				t.Errorf("request bodies:\n%s\nwant\n%s", strings.Join(bodies, "\n"), strings.Join(tt.bodies, "\n"))
			}
		})
	}
}

// An API that ignores starting_after would page forever: the repeated last
// item stops it.
func TestItemsLastItemLoopGuard(t *testing.T) {
	s := newAPIServer(t)
	api, _ := newTestAPI(t, s, transportDef)
	s.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"data":[{"id":"a"},{"id":"b"}],"has_more":true}`)
	})
	p := definitions.Pagination{Style: definitions.PageLastItem, Items: "data", LastPath: "id", CursorParam: "starting_after", MorePath: "has_more"}
	var err error
	for _, e := range api.Items(context.Background(), Request{Path: "/v1/things"}, &p, nil) {
		if e != nil {
			err = e
		}
	}
	if err == nil || !strings.Contains(err.Error(), "ends with the same item as an earlier page; the API seems to ignore starting_after") {
		t.Fatalf("got %v", err)
	}
}
