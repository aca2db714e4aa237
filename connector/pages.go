package connector

import (
	"bytes"
	"context"
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
// short page), Link rel="next", a cursor in the body, or offset/limit. Only
// one page is in memory at a time. progress, when not nil, is called after
// each page. A zero Pagination fetches r once and yields its items.
func (a *API) Items(ctx context.Context, r Request, p *definitions.Pagination, progress func(Progress)) iter.Seq2[json.RawMessage, error] {
	return func(yield func(json.RawMessage, error) bool) {
		pg, err := newPager(r.Path, p)
		if err != nil {
			yield(nil, err)
			return
		}
		prog := Progress{Total: -1}
		for {
			req := r
			req.Path = pg.url.String()
			resp, err := a.Do(ctx, req)
			if err != nil {
				yield(nil, err)
				return
			}
			body, err := io.ReadAll(io.LimitReader(resp.Body, maxPageBody+1))
			resp.Body.Close()
			if err != nil {
				yield(nil, fmt.Errorf("%s: reading page %d: %w", req.Path, prog.Pages+1, err))
				return
			}
			if len(body) > maxPageBody {
				yield(nil, fmt.Errorf("%s: page %d is larger than %d MiB; ask for smaller pages", req.Path, prog.Pages+1, maxPageBody>>20))
				return
			}
			prog.Pages++
			if t, ok := total(resp, body, p); ok {
				prog.Total = t
			}
			n := 0
			for item, err := range ItemsOf(body, p.Items) {
				if err != nil {
					yield(nil, fmt.Errorf("%s: page %d: %w", req.Path, prog.Pages, err))
					return
				}
				n++
				prog.Items++
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
	seen   map[string]bool // next links or cursors already followed: a loop guard
}

func newPager(path string, p *definitions.Pagination) (*pager, error) {
	u, err := url.Parse(path)
	if err != nil {
		return nil, fmt.Errorf("request path %q: %w", path, err)
	}
	pg := &pager{p: p, url: u, page: p.FirstPage, seen: map[string]bool{}}
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

// next prepares the following page's URL, or reports the end.
func (pg *pager) next(resp *http.Response, body []byte, n int, prog Progress) (bool, error) {
	p := pg.p
	size := p.Size
	if size > 0 && p.SizeParam != "" {
		if v, err := strconv.Atoi(pg.url.Query().Get(p.SizeParam)); err == nil {
			size = v
		}
	}
	switch p.Style {
	case definitions.PageLink:
		return pg.follow(resp)
	case definitions.PagePage:
		if resp.Header.Get("Link") != "" {
			// The Link header, when there is one, is the authority.
			if linkRel(resp.Header.Values("Link"), "next") == "" {
				return false, nil
			}
		} else if n == 0 || prog.Total >= 0 && prog.Items >= prog.Total || prog.Total < 0 && size > 0 && n < size {
			return false, nil
		}
		if n == 0 {
			return false, nil
		}
		pg.page++
		pg.set(p.PageParam, strconv.Itoa(pg.page))
		return true, nil
	case definitions.PageOffset:
		pg.offset += n
		if n == 0 || prog.Total >= 0 && pg.offset >= prog.Total || prog.Total < 0 && size > 0 && n < size {
			return false, nil
		}
		pg.set(p.OffsetParam, strconv.Itoa(pg.offset))
		return true, nil
	case definitions.PageCursor:
		raw, ok := lookupJSON(body, p.CursorPath)
		if !ok {
			return false, nil
		}
		var cursor any
		if json.Unmarshal(raw, &cursor) != nil {
			return false, nil
		}
		var c string
		switch v := cursor.(type) {
		case string:
			c = v
		case float64:
			c = strconv.FormatFloat(v, 'f', -1, 64)
		}
		if c == "" {
			return false, nil
		}
		if pg.seen[c] {
			return false, fmt.Errorf("the API returned cursor %q twice; stopping instead of looping", c)
		}
		pg.seen[c] = true
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

func (pg *pager) follow(resp *http.Response) (bool, error) {
	next := linkRel(resp.Header.Values("Link"), "next")
	if next == "" {
		return false, nil
	}
	ref, err := url.Parse(next)
	if err != nil {
		return false, fmt.Errorf("the API's Link header has a bad next URL: %w", err)
	}
	// Relative links resolve against the page that carried them; the
	// transport refuses a link to another host.
	u := resp.Request.URL.ResolveReference(ref)
	if pg.seen[u.String()] {
		return false, fmt.Errorf("the API's next link %s repeats an earlier page; stopping instead of looping", u.Redacted())
	}
	pg.seen[u.String()] = true
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

// lookupJSON finds the value at a dotted path in a JSON object.
func lookupJSON(body []byte, path string) (json.RawMessage, bool) {
	raw := json.RawMessage(body)
	for _, key := range strings.Split(path, ".") {
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
