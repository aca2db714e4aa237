package connector

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/connector-engine/connector/definitions"
)

// Progress reports how far a paged listing has come.
type Progress struct {
	Items int // yielded so far
	Pages int // fetched so far
	Total int // what the API says there are in all; -1 when it does not say
}

// maxPageBody caps one page: pages are held in memory one at a time.
const maxPageBody = 64 << 20

// Items yields every item of a paged listing as pages arrive, following p:
// page numbers (page/per_page, stopping on the Link header, a Total or a
// short page), Link rel="next", a cursor in the body or a header, the next
// page's URL in the body, or offset/limit. Only one page is in memory at a
// time. progress, when not nil, is called after each page. A zero
// Pagination fetches r once and yields its items.
//
// A listing never loops: a next URL or cursor that repeats an earlier page,
// or a numbered page with the same items as an earlier one, is an error, as
// is a listing longer than p.MaxPages (definitions.DefaultMaxPages when 0).
func (a *API) Items(ctx context.Context, r Request, p *definitions.Pagination, progress func(Progress)) iter.Seq2[json.RawMessage, error] {
	return func(yield func(json.RawMessage, error) bool) {
		pg, err := newPager(r.Path, p, a.added)
		if err != nil {
			yield(nil, err)
			return
		}
		maxPages := p.MaxPages
		if maxPages <= 0 {
			maxPages = definitions.DefaultMaxPages
		}
		prog := Progress{Total: -1}
		for {
			if prog.Pages >= maxPages && p.Style != definitions.PageNone {
				yield(nil, fmt.Errorf("%s: stopped after %d pages, the most one listing may fetch (pagination.max_pages); the API may be paging forever, or raise max_pages if the listing really is that long", redactedPath(pg.url), maxPages))
				return
			}
			req := r
			req.Path = pg.url.String()
			if pg.body != nil {
				req.Body = pg.body
			}
			resp, err := a.Do(ctx, req)
			if err != nil {
				yield(nil, err)
				return
			}
			body, err := io.ReadAll(io.LimitReader(resp.Body, maxPageBody+1))
			resp.Body.Close()
			if err != nil {
				yield(nil, fmt.Errorf("%s: reading page %d: %w", redactedPath(pg.url), prog.Pages+1, err))
				return
			}
			if len(body) > maxPageBody {
				yield(nil, fmt.Errorf("%s: page %d is larger than %d MiB; ask for smaller pages", redactedPath(pg.url), prog.Pages+1, maxPageBody>>20))
				return
			}
			prog.Pages++
			if err := pg.fetched(resp, body, prog.Pages); err != nil {
				yield(nil, err)
				return
			}
			if t, ok := total(resp, body, p); ok {
				prog.Total = t
			}
			n := 0
			for item, err := range ItemsOf(body, p.Items) {
				if err != nil {
					yield(nil, fmt.Errorf("%s: page %d: %w", redactedPath(pg.url), prog.Pages, err))
					return
				}
				n++
				prog.Items++
				pg.last = item
				if !yield(item, nil) {
					return
				}
			}
			if progress != nil {
				progress(prog)
			}
			more, err := pg.next(resp, body, n, prog)
			if err != nil {
				yield(nil, err)
				return
			}
			if !more {
				return
			}
			if err := ctx.Err(); err != nil {
				yield(nil, err)
				return
			}
		}
	}
}

// pager moves a listing's URL from page to page.
type pager struct {
	p      *definitions.Pagination
	url    *url.URL
	page   int
	offset int
	added  []queryPair      // what the transport adds to every request, left out when comparing URLs
	seen   map[string]bool  // pages fetched (canonical URLs) and cursors followed: a loop guard
	pages  map[[32]byte]int // page and offset styles: each page's items, by hash, and its number
	body   []byte           // cursor_body: the next page's JSON body; nil to send the request's own
	last   json.RawMessage  // the last item of the page just received (style last_item)
}

// queryPair is a query parameter the transport adds to every request: the
// definition's request.query, an API key or a token in the query. An empty
// value matches any value (a token changes).
type queryPair struct{ name, value string }

func newPager(path string, p *definitions.Pagination, added []queryPair) (*pager, error) {
	u, err := url.Parse(path)
	if err != nil {
		return nil, fmt.Errorf("request path %q: %w", path, err)
	}
	pg := &pager{p: p, url: u, page: p.FirstPage, added: added, seen: map[string]bool{}, pages: map[[32]byte]int{}}
	q := u.Query()
	switch p.Style {
	case definitions.PagePage:
		q.Set(p.PageParam, strconv.Itoa(pg.page))
	case definitions.PageOffset:
		q.Set(p.OffsetParam, "0")
	}
	if p.Size > 0 && p.SizeParam != "" && q.Get(p.SizeParam) == "" {
		q.Set(p.SizeParam, strconv.Itoa(p.Size))
	}
	if p.Style != "" {
		u.RawQuery = q.Encode()
	}
	return pg, nil
}

// fetched records page number n, which resp answered with body, and fails
// when it repeats an earlier page: the same URL (link and next_url styles)
// or, for numbered and offset pages, the same items, as an API that ignores
// the page parameter returns.
func (pg *pager) fetched(resp *http.Response, body []byte, n int) error {
	if resp.Request != nil && resp.Request.URL != nil {
		pg.seen[pg.canonical(resp.Request.URL)] = true
	}
	switch pg.p.Style {
	case definitions.PagePage, definitions.PageOffset:
	default:
		return nil
	}
	items := json.RawMessage(body)
	if pg.p.Items != "" {
		var ok bool
		if items, ok = lookupJSON(body, pg.p.Items); !ok {
			return nil // ItemsOf says so
		}
	}
	items = bytes.TrimSpace(items)
	if len(items) == 0 || bytes.Equal(items, []byte("[]")) {
		return nil // an empty page ends the listing anyway
	}
	sum := sha256.Sum256(items)
	if earlier, dup := pg.pages[sum]; dup {
		param := pg.p.PageParam
		if pg.p.Style == definitions.PageOffset {
			param = pg.p.OffsetParam
		}
		return fmt.Errorf("%s: page %d has the same items as page %d: the API seems to ignore the %s parameter; stopping instead of looping", redactedPath(pg.url), n, earlier, param)
	}
	pg.pages[sum] = n
	return nil
}

// canonical is the form in which two page URLs are compared: absolute, the
// scheme and host in lower case, no default port or fragment, the query
// sorted and without what the transport adds to every request (else a
// next link that repeats the current page looks new each time it comes
// back with the additions twice).
func (pg *pager) canonical(u *url.URL) string {
	c := *pg.strip(u)
	c.Scheme, c.Host = strings.ToLower(c.Scheme), strings.ToLower(c.Host)
	if p := c.Port(); p == "443" && c.Scheme == "https" || p == "80" && c.Scheme == "http" {
		c.Host = strings.TrimSuffix(c.Host, ":"+p)
	}
	c.Fragment, c.RawFragment = "", ""
	c.RawQuery = c.Query().Encode()
	return c.String()
}

// strip returns u without the query parameters the transport adds, so that
// following it does not add them twice.
func (pg *pager) strip(u *url.URL) *url.URL {
	if len(pg.added) == 0 || u.RawQuery == "" {
		return u
	}
	q := u.Query()
	for _, a := range pg.added {
		vs := q[a.name]
		kept := vs[:0:0]
		for _, v := range vs {
			if a.value != "" && v != a.value {
				kept = append(kept, v)
			}
		}
		if len(kept) == 0 {
			delete(q, a.name)
		} else {
			q[a.name] = kept
		}
	}
	c := *u
	c.RawQuery = q.Encode()
	return &c
}

// redactedPath shows a page URL in an error: without its query, which may
// carry a key, a token or a cursor.
func redactedPath(u *url.URL) string {
	c := *u
	c.RawQuery, c.User = "", nil
	return c.String()
}

// next prepares the following page's URL, or reports the end.
func (pg *pager) next(resp *http.Response, body []byte, n int, prog Progress) (bool, error) {
	p := pg.p
	if p.Style == definitions.PageNone {
		return false, nil
	}
	if n == 0 {
		return false, nil // an empty page is the end in every style
	}
	if p.MorePath != "" {
		if raw, ok := lookupJSON(body, p.MorePath); ok && bytes.Equal(bytes.TrimSpace(raw), []byte("false")) {
			return false, nil
		}
	}
	size := p.Size
	if size > 0 && p.SizeParam != "" {
		if v, err := strconv.Atoi(pg.url.Query().Get(p.SizeParam)); err == nil {
			size = v
		}
	}
	switch p.Style {
	case definitions.PageLink:
		next := linkRel(resp.Header.Values("Link"), "next")
		if next == "" {
			return false, nil
		}
		return pg.follow(resp, next, "Link header's next")
	case definitions.PageNextURL:
		raw, ok := lookupJSON(body, p.NextPath)
		if !ok {
			return false, nil
		}
		var next string
		if json.Unmarshal(raw, &next) != nil {
			return false, fmt.Errorf("%s: page %d: %s is not a URL string; check next_path", redactedPath(pg.url), prog.Pages, p.NextPath)
		}
		if next == "" {
			return false, nil
		}
		return pg.follow(resp, next, "next page URL ("+p.NextPath+")")
	case definitions.PagePage:
		if resp.Header.Get("Link") != "" {
			// The Link header, when there is one, is the authority.
			if linkRel(resp.Header.Values("Link"), "next") == "" {
				return false, nil
			}
		} else if prog.Total >= 0 && prog.Items >= prog.Total || prog.Total < 0 && size > 0 && n < size {
			return false, nil
		}
		pg.page++
		pg.set(p.PageParam, strconv.Itoa(pg.page))
		return true, nil
	case definitions.PageOffset:
		pg.offset += n
		if prog.Total >= 0 && pg.offset >= prog.Total || prog.Total < 0 && size > 0 && n < size {
			return false, nil
		}
		pg.set(p.OffsetParam, strconv.Itoa(pg.offset))
		return true, nil
	case definitions.PageLastItem:
		raw, ok := lookupJSON(pg.last, p.LastPath)
		if !ok {
			return false, fmt.Errorf("%s: page %d: the last item has no %s to start the next page after; check last_path", redactedPath(pg.url), prog.Pages, p.LastPath)
		}
		id, err := scalar(raw)
		if err != nil || id == "" {
			return false, fmt.Errorf("%s: page %d: the last item's %s is not a string or number; check last_path", redactedPath(pg.url), prog.Pages, p.LastPath)
		}
		if pg.seen["last\x00"+id] {
			return false, fmt.Errorf("%s: page %d ends with the same item as an earlier page; the API seems to ignore %s, stopping instead of looping", redactedPath(pg.url), prog.Pages, p.CursorParam)
		}
		pg.seen["last\x00"+id] = true
		pg.set(p.CursorParam, id)
		return true, nil
	case definitions.PageCursor:
		var c string
		if p.CursorHeader != "" {
			c = strings.TrimSpace(resp.Header.Get(p.CursorHeader))
		} else {
			raw, ok := lookupJSON(body, p.CursorPath)
			if !ok {
				return false, nil
			}
			var cursor any
			if json.Unmarshal(raw, &cursor) != nil {
				return false, nil
			}
			switch v := cursor.(type) {
			case string:
				c = v
			case float64:
				c = strconv.FormatFloat(v, 'f', -1, 64)
			}
		}
		if c == "" {
			return false, nil
		}
		if pg.seen["cursor\x00"+c] {
			return false, fmt.Errorf("the API returned cursor %q twice; stopping instead of looping", c)
		}
		pg.seen["cursor\x00"+c] = true
		if p.ContinuePath != "" { // the next pages have their own endpoint (Dropbox's .../continue)
			cont, err := url.Parse(p.ContinuePath)
			if err != nil {
				return false, fmt.Errorf("continue_path %q: %w", p.ContinuePath, err)
			}
			pg.url = cont
		}
		if p.CursorBody != "" {
			pg.body, _ = json.Marshal(map[string]string{p.CursorBody: c})
			return true, nil
		}
		pg.set(p.CursorParam, c)
		return true, nil
	}
	return false, nil
}

func (pg *pager) set(k, v string) {
	q := pg.url.Query()
	q.Set(k, v)
	pg.url.RawQuery = q.Encode()
}

// follow moves to the next page's URL, what says where it came from.
// Relative URLs resolve against the page that carried them; the transport
// refuses one on another origin.
func (pg *pager) follow(resp *http.Response, next, what string) (bool, error) {
	ref, err := url.Parse(next)
	if err != nil {
		return false, fmt.Errorf("the API's %s is not a URL: %w", what, err)
	}
	u := pg.strip(resp.Request.URL.ResolveReference(ref))
	if pg.seen[pg.canonical(u)] {
		return false, fmt.Errorf("the API's %s %s repeats an earlier page; stopping instead of looping", what, redactedPath(u))
	}
	pg.url = u
	return true, nil
}

// linkRel returns the URL of the link with relation rel in Link headers
// (RFC 8288): `<https://...>; rel="next", <...>; rel="last"`.
func linkRel(headers []string, rel string) string {
	for _, h := range headers {
		for len(h) > 0 {
			start := strings.IndexByte(h, '<')
			end := strings.IndexByte(h, '>')
			if start < 0 || end < start {
				break
			}
			target := h[start+1 : end]
			rest := h[end+1:]
			params := rest
			if i := strings.IndexByte(rest, '<'); i >= 0 {
				params, rest = rest[:i], rest[i:]
			} else {
				rest = ""
			}
			// The comma separating this link from the next belongs to neither.
			params = strings.TrimRight(params, ", \t")
			for _, param := range strings.Split(params, ";") {
				k, v, ok := strings.Cut(strings.TrimSpace(param), "=")
				if !ok || !strings.EqualFold(strings.TrimSpace(k), "rel") {
					continue
				}
				for _, r := range strings.Fields(strings.Trim(strings.TrimSpace(v), `"`)) {
					if strings.EqualFold(r, rel) {
						return target
					}
				}
			}
			h = rest
		}
	}
	return ""
}

// total reads the count of all items, from the header or body path p names.
func total(resp *http.Response, body []byte, p *definitions.Pagination) (int, bool) {
	if p.TotalHeader != "" {
		if n, err := strconv.Atoi(resp.Header.Get(p.TotalHeader)); err == nil && n >= 0 {
			return n, true
		}
	}
	if p.TotalPath != "" {
		if raw, ok := lookupJSON(body, p.TotalPath); ok {
			var n int
			if json.Unmarshal(raw, &n) == nil && n >= 0 {
				return n, true
			}
		}
	}
	return 0, false
}

// lookupJSON finds the value at a path in a JSON object: dotted names, or a
// JSON Pointer (RFC 6901) starting with "/", whose tokens may also index
// arrays. A null value counts as absent.
func lookupJSON(body []byte, path string) (json.RawMessage, bool) {
	raw := json.RawMessage(body)
	for _, key := range definitions.BodyPathKeys(path) {
		trimmed := bytes.TrimSpace(raw)
		if len(trimmed) > 0 && trimmed[0] == '[' && strings.HasPrefix(path, "/") {
			var a []json.RawMessage
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 || json.Unmarshal(raw, &a) != nil || i >= len(a) {
				return nil, false
			}
			raw = a[i]
			continue
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) != nil {
			return nil, false
		}
		if raw = m[key]; raw == nil {
			return nil, false
		}
	}
	return raw, !bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

// ItemsOf yields the elements of the array at path in body, decoding one at
// a time; a body (or value at path) that is an object is one item.
func ItemsOf(body []byte, path string) iter.Seq2[json.RawMessage, error] {
	return func(yield func(json.RawMessage, error) bool) {
		raw := json.RawMessage(body)
		if path != "" {
			var ok bool
			if raw, ok = lookupJSON(body, path); !ok {
				yield(nil, fmt.Errorf("the answer has no %q to list items from", path))
				return
			}
		}
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 {
			return // 204 or an empty body: nothing to list
		}
		if raw[0] != '[' {
			if !json.Valid(raw) {
				yield(nil, fmt.Errorf("the answer is not JSON"))
				return
			}
			yield(raw, nil)
			return
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		if _, err := dec.Token(); err != nil {
			yield(nil, fmt.Errorf("the answer is not a JSON array: %w", err))
			return
		}
		for dec.More() {
			var item json.RawMessage
			if err := dec.Decode(&item); err != nil {
				yield(nil, fmt.Errorf("the answer is not valid JSON: %w", err))
				return
			}
			if !yield(item, nil) {
				return
			}
		}
	}
}
