package connector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/connector-engine/connector/definitions"
)

// drain runs a listing to its end and returns the ids it yielded and the
// error it ended with.
func drain(t *testing.T, api *API, path string, p *definitions.Pagination) ([]int, error) {
	t.Helper()
	var ids []int
	for item, err := range api.Items(context.Background(), Request{Path: path}, p, nil) {
		if err != nil {
			return ids, err
		}
		var v struct{ ID int }
		if err := json.Unmarshal(item, &v); err != nil {
			t.Fatalf("item %s: %v", item, err)
		}
		ids = append(ids, v.ID)
	}
	return ids, nil
}

// safetyNet ends a listing the engine failed to stop, so that a test on a
// broken engine fails instead of hanging.
const safetyNet = 30

// A next link that repeats the page it is on comes back with the
// definition's request.query (locale=en) that the transport added: compared
// as whole URLs it looked new every time, and grew by one locale=en a page,
// forever (issue 10 item 7).
func TestItemsLinkRepeatWithEngineQueryStops(t *testing.T) {
	s := newAPIServer(t)
	api, _ := newTestAPI(t, s, transportDef)
	s.handle(func(w http.ResponseWriter, r *http.Request) {
		if s.apiReq.Load() < safetyNet {
			// The current page again, as the server saw it: with locale=en.
			w.Header().Set("Link", fmt.Sprintf(`<http://%s%s>; rel="next"`, r.Host, r.URL.RequestURI()))
		}
		fmt.Fprint(w, `[{"id":1}]`)
	})
	_, err := drain(t, api, "/things?per_page=1", &definitions.Pagination{Style: definitions.PageLink})
	if err == nil || !strings.Contains(err.Error(), "repeats an earlier page") {
		t.Fatalf("err = %v, want a repeat error", err)
	}
	if n := s.apiReq.Load(); n != 1 {
		t.Fatalf("%d requests, want 1: the next link is the page itself", n)
	}
}

// A next link to a different page that carries the engine's query is
// followed without the query doubling.
func TestItemsLinkNextDoesNotGrowQuery(t *testing.T) {
	s := newAPIServer(t)
	api, _ := newTestAPI(t, s, transportDef)
	var queries []string
	s.handle(func(w http.ResponseWriter, r *http.Request) {
		queries = append(queries, r.URL.RawQuery)
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		if page < 3 {
			q := r.URL.Query()
			q.Set("page", strconv.Itoa(page+1))
			w.Header().Set("Link", fmt.Sprintf(`<http://%s%s?%s>; rel="next"`, r.Host, r.URL.Path, q.Encode()))
		}
		fmt.Fprintf(w, `[{"id":%d}]`, page)
	})
	ids, err := drain(t, api, "/things?page=1", &definitions.Pagination{Style: definitions.PageLink})
	if err != nil || fmt.Sprint(ids) != "[1 2 3]" {
		t.Fatalf("ids %v, err %v", ids, err)
	}
	for _, q := range queries {
		if strings.Count(q, "locale=en") != 1 {
			t.Fatalf("query %q: locale=en should be there exactly once", q)
		}
	}
}

// A page listing whose API ignores the page parameter returns the same
// full page forever; it had no repeat guard at all.
func TestItemsPageRepeatStops(t *testing.T) {
	s := newAPIServer(t)
	api, _ := newTestAPI(t, s, transportDef)
	s.handle(func(w http.ResponseWriter, r *http.Request) {
		if s.apiReq.Load() >= safetyNet {
			fmt.Fprint(w, `[]`)
			return
		}
		fmt.Fprint(w, `[{"id":1},{"id":2}]`) // whatever the page
	})
	ids, err := drain(t, api, "/things", &definitions.Pagination{Style: definitions.PagePage, PageParam: "page", FirstPage: 1, SizeParam: "per_page", Size: 2})
	if err == nil || !strings.Contains(err.Error(), "page 2 has the same items as page 1: the API seems to ignore the page parameter") {
		t.Fatalf("err = %v", err)
	}
	if fmt.Sprint(ids) != "[1 2]" || s.apiReq.Load() != 2 {
		t.Fatalf("ids %v after %d requests; want [1 2] after 2 (the repeat is never yielded)", ids, s.apiReq.Load())
	}
}

// A listing that pages forever with new items each time stops at max_pages
// with an error naming the setting.
func TestItemsMaxPages(t *testing.T) {
	s := newAPIServer(t)
	api, _ := newTestAPI(t, s, transportDef)
	s.handle(func(w http.ResponseWriter, r *http.Request) {
		n := s.apiReq.Load()
		if n >= safetyNet {
			fmt.Fprint(w, `{"data":[],"next":null}`)
			return
		}
		fmt.Fprintf(w, `{"data":[{"id":%d}],"next":"c%d"}`, n, n)
	})
	p := &definitions.Pagination{Style: definitions.PageCursor, Items: "data", CursorPath: "next", CursorParam: "cursor", MaxPages: 5}
	ids, err := drain(t, api, "/things", p)
	if err == nil || !strings.Contains(err.Error(), "stopped after 5 pages, the most one listing may fetch (pagination.max_pages)") {
		t.Fatalf("err = %v", err)
	}
	if len(ids) != 5 || s.apiReq.Load() != 5 {
		t.Fatalf("%d items from %d requests, want 5 and 5", len(ids), s.apiReq.Load())
	}
	if strings.Contains(err.Error(), "cursor=") || strings.Contains(err.Error(), "locale") {
		t.Fatalf("the error shows the query: %v", err)
	}
}

// The next page's URL in the body, under the key names real APIs use.
func TestItemsNextURLStyles(t *testing.T) {
	tests := []struct {
		name, items, next, more string
		page                    func(host string, page int, last bool) any
	}{
		{"OData @odata.nextLink (JSON Pointer)", "value", "/@odata.nextLink", "", func(host string, page int, last bool) any {
			m := map[string]any{"value": []any{map[string]int{"id": page}}}
			if !last {
				m["@odata.nextLink"] = fmt.Sprintf("http://%s/v1.0/users?$skiptoken=t%d", host, page)
			}
			return m
		}},
		{"Salesforce nextRecordsUrl (relative, done)", "records", "nextRecordsUrl", "", func(host string, page int, last bool) any {
			m := map[string]any{"records": []any{map[string]int{"id": page}}, "done": last}
			if !last {
				m["nextRecordsUrl"] = fmt.Sprintf("/services/data/v60.0/query/01gD-%d", page*2000)
			}
			return m
		}},
		{"JSON:API links.next, null at the end", "data", "links.next", "", func(host string, page int, last bool) any {
			var next any
			if !last {
				next = fmt.Sprintf("http://%s/things?page%%5Bnumber%%5D=%d", host, page+1)
			}
			return map[string]any{"data": []any{map[string]int{"id": page}}, "links": map[string]any{"next": next}}
		}},
		{"a key with a slash and a tilde (~1, ~0)", "items", "/paging/next~1url~0", "", func(host string, page int, last bool) any {
			next := ""
			if !last {
				next = fmt.Sprintf("/things?p=%d", page+1)
			}
			return map[string]any{"items": []any{map[string]int{"id": page}}, "paging": map[string]any{"next/url~": next}}
		}},
		{"has_more false wins over a next URL", "data", "next", "has_more", func(host string, page int, last bool) any {
			return map[string]any{"data": []any{map[string]int{"id": page}}, "has_more": !last, "next": fmt.Sprintf("/things?p=%d", page+1)}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newAPIServer(t)
			api, _ := newTestAPI(t, s, transportDef)
			s.handle(func(w http.ResponseWriter, r *http.Request) {
				page := int(s.apiReq.Load())
				_ = json.NewEncoder(w).Encode(tt.page(r.Host, page, page == 3 || page >= safetyNet))
			})
			p := &definitions.Pagination{Style: definitions.PageNextURL, Items: tt.items, NextPath: tt.next, MorePath: tt.more}
			ids, err := drain(t, api, "/start", p)
			if err != nil || fmt.Sprint(ids) != "[1 2 3]" {
				t.Fatalf("ids %v, err %v", ids, err)
			}
		})
	}
}

// A next URL on another origin is refused by the transport's origin guard:
// the token never goes there.
func TestItemsNextURLStaysOnOrigin(t *testing.T) {
	var evilHits int
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { evilHits++ }))
	defer evil.Close()
	s := newAPIServer(t)
	api, _ := newTestAPI(t, s, transportDef)
	s.handle(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"value":[{"id":1}],"@odata.nextLink":%q}`, evil.URL+"/steal")
	})
	_, err := drain(t, api, "/start", &definitions.Pagination{Style: definitions.PageNextURL, Items: "value", NextPath: "/@odata.nextLink"})
	var he *HostError
	if !errors.As(err, &he) || evilHits != 0 {
		t.Fatalf("err = %v, other host saw %d requests", err, evilHits)
	}
}

// A cursor in a response header, and an empty page ending a cursor listing.
func TestItemsCursorHeader(t *testing.T) {
	s := newAPIServer(t)
	api, _ := newTestAPI(t, s, transportDef)
	s.handle(func(w http.ResponseWriter, r *http.Request) {
		c, _ := strconv.Atoi(r.URL.Query().Get("cursor"))
		if c < 2 {
			w.Header().Set("X-Next-Cursor", strconv.Itoa(c+1))
		}
		fmt.Fprintf(w, `[{"id":%d}]`, c+1)
	})
	ids, err := drain(t, api, "/things", &definitions.Pagination{Style: definitions.PageCursor, CursorHeader: "X-Next-Cursor", CursorParam: "cursor"})
	if err != nil || fmt.Sprint(ids) != "[1 2 3]" {
		t.Fatalf("ids %v, err %v", ids, err)
	}

	// A header cursor that repeats is an error too.
	s.handle(func(w http.ResponseWriter, r *http.Request) {
		if s.apiReq.Load() < safetyNet {
			w.Header().Set("X-Next-Cursor", "same")
		}
		fmt.Fprint(w, `[{"id":1}]`)
	})
	if _, err := drain(t, api, "/things", &definitions.Pagination{Style: definitions.PageCursor, CursorHeader: "X-Next-Cursor", CursorParam: "cursor"}); err == nil || !strings.Contains(err.Error(), `cursor "same" twice`) {
		t.Fatalf("err = %v", err)
	}

	// A non-empty cursor on an empty page: the page is the end.
	before := s.apiReq.Load()
	s.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Next-Cursor", "more"+strconv.Itoa(int(s.apiReq.Load())))
		fmt.Fprint(w, `[]`)
	})
	if ids, err := drain(t, api, "/things", &definitions.Pagination{Style: definitions.PageCursor, CursorHeader: "X-Next-Cursor", CursorParam: "cursor"}); err != nil || len(ids) != 0 || s.apiReq.Load()-before != 1 {
		t.Fatalf("ids %v err %v after %d requests", ids, err, s.apiReq.Load()-before)
	}
}

func TestLookupJSONPaths(t *testing.T) {
	body := []byte(`{"@odata.nextLink":"n","a":{"b.c":{"d":[10,{"e":"x"}]}},"m~":{"/":1},"z":null}`)
	tests := []struct {
		path, want string
		ok         bool
	}{
		{"/@odata.nextLink", `"n"`, true},
		{"/a/b.c/d/1/e", `"x"`, true},
		{"/a/b.c/d/0", `10`, true},
		{"/a/b.c/d/2", ``, false},
		{"/m~0/~1", `1`, true},
		{"a.b", ``, false},
		{"z", ``, false},
		{"/z", ``, false},
	}
	for _, tt := range tests {
		got, ok := lookupJSON(body, tt.path)
		if ok != tt.ok || ok && string(got) != tt.want {
			t.Errorf("lookupJSON(%q) = %s, %v; want %s, %v", tt.path, got, ok, tt.want, tt.ok)
		}
	}
}
