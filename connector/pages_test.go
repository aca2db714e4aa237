package connector

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/connector-engine/connector/definitions"
)

// listing serves n items {"id":1..n} in every pagination style, at
// /page (Procore: page/per_page, Total, Link), /page-bare (no headers: the
// end is a short page), /link (GitHub: Link rel=next only), /cursor
// ({"data":[...],"meta":{"next":...}}) and /offset ({"items":[...],"total":n}).
func listing(n int) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		num := func(k string, def int) int {
			if v, err := strconv.Atoi(q.Get(k)); err == nil {
				return v
			}
			return def
		}
		ids := func(from, count int) []map[string]int {
			out := []map[string]int{}
			for i := from; i < from+count && i <= n; i++ {
				out = append(out, map[string]int{"id": i})
			}
			return out
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		switch r.URL.Path {
		case "/page", "/page-bare":
			page, per := num("page", 1), num("per_page", 10)
			items := ids((page-1)*per+1, per)
			if r.URL.Path == "/page" {
				last := (n + per - 1) / per
				link := fmt.Sprintf(`<%s/page?page=1&per_page=%d>; rel="first", <%[1]s/page?page=%[3]d&per_page=%[2]d>; rel="last"`, "http://"+r.Host, per, last)
				if page < last {
					link += fmt.Sprintf(`, <http://%s/page?page=%d&per_page=%d>; rel="next"`, r.Host, page+1, per)
				}
				w.Header().Set("Link", link)
				w.Header().Set("Total", strconv.Itoa(n))
				w.Header().Set("Per-Page", strconv.Itoa(per))
			}
			_ = enc.Encode(items)
		case "/link":
			after := num("after", 0)
			per := num("per_page", 10)
			if after+per < n {
				w.Header().Set("Link", fmt.Sprintf(`<http://%s/link?after=%d&per_page=%d>; rel="next"`, r.Host, after+per, per))
			}
			_ = enc.Encode(ids(after+1, per))
		case "/cursor":
			after := num("cursor", 0)
			next := any(nil)
			if after+7 < n {
				next = strconv.Itoa(after + 7)
			}
			_ = enc.Encode(map[string]any{"data": ids(after+1, 7), "meta": map[string]any{"next": next}})
		case "/offset":
			off, lim := num("offset", 0), num("limit", 10)
			_ = enc.Encode(map[string]any{"items": ids(off+1, lim), "total": n})
		default:
			w.WriteHeader(404)
		}
	}
}

func TestItemsEveryStyle(t *testing.T) {
	tests := []struct {
		name  string
		path  string
		p     definitions.Pagination
		n     int
		pages int
		total int
	}{
		{"page with Link and Total", "/page", definitions.Pagination{Style: definitions.PagePage, PageParam: "page", SizeParam: "per_page", Size: 10, FirstPage: 1, TotalHeader: "Total"}, 95, 10, 95},
		{"page, exact multiple", "/page", definitions.Pagination{Style: definitions.PagePage, PageParam: "page", SizeParam: "per_page", Size: 10, FirstPage: 1, TotalHeader: "Total"}, 30, 3, 30},
		{"page without headers ends on a short page", "/page-bare", definitions.Pagination{Style: definitions.PagePage, PageParam: "page", SizeParam: "per_page", Size: 10, FirstPage: 1}, 25, 3, -1},
		{"page without headers, exact multiple ends on an empty page", "/page-bare", definitions.Pagination{Style: definitions.PagePage, PageParam: "page", SizeParam: "per_page", Size: 10, FirstPage: 1}, 20, 3, -1},
		{"link rel=next", "/link", definitions.Pagination{Style: definitions.PageLink, SizeParam: "per_page", Size: 10}, 42, 5, -1},
		{"cursor in the body", "/cursor", definitions.Pagination{Style: definitions.PageCursor, Items: "data", CursorPath: "meta.next", CursorParam: "cursor"}, 20, 3, -1},
		{"offset/limit with a total in the body", "/offset", definitions.Pagination{Style: definitions.PageOffset, Items: "items", OffsetParam: "offset", SizeParam: "limit", Size: 10, TotalPath: "total"}, 31, 4, 31},
		{"empty listing", "/page", definitions.Pagination{Style: definitions.PagePage, PageParam: "page", SizeParam: "per_page", Size: 10, FirstPage: 1, TotalHeader: "Total"}, 0, 1, 0},
		{"no pagination: one request", "/page", definitions.Pagination{}, 95, 1, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newAPIServer(t)
			api, _ := newTestAPI(t, s, transportDef)
			s.handle(listing(tt.n))
			var last Progress
			want := 1
			for item, err := range api.Items(context.Background(), Request{Path: tt.path}, &tt.p, func(p Progress) { last = p }) {
				if err != nil {
					t.Fatal(err)
				}
				var v struct{ ID int }
				if err := json.Unmarshal(item, &v); err != nil || v.ID != want {
					t.Fatalf("item %s, want id %d", item, want)
				}
				want++
			}
			wantItems := tt.n
			if tt.p.Style == "" {
				wantItems = min(tt.n, 10)
			}
			if want-1 != wantItems || last.Items != wantItems || last.Pages != tt.pages || last.Total != tt.total {
				t.Fatalf("got %d items, progress %+v; want %d items, %d pages, total %d", want-1, last, wantItems, tt.pages, tt.total)
			}
			if int(s.apiReq.Load()) != tt.pages {
				t.Fatalf("%d requests for %d pages", s.apiReq.Load(), tt.pages)
			}
		})
	}
}

func TestItemsStopsEarlyAndOnErrors(t *testing.T) {
	s := newAPIServer(t)
	api, _ := newTestAPI(t, s, transportDef)
	s.handle(listing(1000))
	p := &definitions.Pagination{Style: definitions.PagePage, PageParam: "page", SizeParam: "per_page", Size: 10, FirstPage: 1, TotalHeader: "Total"}
	n := 0
	for _, err := range api.Items(context.Background(), Request{Path: "/page"}, p, nil) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 15 {
			break
		}
	}
	if s.apiReq.Load() != 2 {
		t.Fatalf("breaking after 15 items fetched %d pages, want 2", s.apiReq.Load())
	}

	// A cursor that repeats is an error, not an endless loop.
	s.handle(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"data":[{"id":1}],"meta":{"next":"same"}}`)
	})
	cp := &definitions.Pagination{Style: definitions.PageCursor, Items: "data", CursorPath: "meta.next", CursorParam: "cursor"}
	var last error
	for _, err := range api.Items(context.Background(), Request{Path: "/c"}, cp, nil) {
		last = err
	}
	if last == nil || !strings.Contains(last.Error(), `returned cursor "same" twice`) {
		t.Fatalf("err = %v", last)
	}

	// An answer without the items path says so.
	var got error
	for _, err := range api.Items(context.Background(), Request{Path: "/c"}, &definitions.Pagination{Style: definitions.PageCursor, Items: "rows", CursorPath: "next", CursorParam: "c"}, nil) {
		got = err
	}
	if got == nil || !strings.Contains(got.Error(), `the answer has no "rows" to list items from`) {
		t.Fatalf("err = %v", got)
	}
}

func TestLinkRel(t *testing.T) {
	tests := []struct {
		h    []string
		rel  string
		want string
	}{
		{[]string{`<https://a/x?page=2>; rel="next", <https://a/x?page=9>; rel="last"`}, "next", "https://a/x?page=2"},
		{[]string{`<https://a/x?page=9>; rel="last"`, `<https://a/x?page=2>; rel=next`}, "next", "https://a/x?page=2"},
		{[]string{`<https://a/x?page=9>; rel="last"`}, "next", ""},
		{[]string{`<https://a/x?p=1,2>; title="a;b"; rel="prev next"`}, "next", "https://a/x?p=1,2"},
		{[]string{`garbage`}, "next", ""},
		{nil, "next", ""},
	}
	for _, tt := range tests {
		if got := linkRel(tt.h, tt.rel); got != tt.want {
			t.Errorf("linkRel(%q) = %q, want %q", tt.h, got, tt.want)
		}
	}
}
