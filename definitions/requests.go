package definitions

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Retry says when a failed API request is tried again (request.retry).
type Retry struct {
	MaxAttempts       int           // attempts in all, the first included; >= 1 (1: no retries)
	MaxWait           time.Duration // the longest single wait (Retry-After, rate-limit reset)
	IdempotencyHeader string        // header carrying a per-call key; "" means POST and PATCH are never retried
}

// Retry defaults, used when request.retry leaves them out.
const (
	DefaultMaxAttempts = 4
	DefaultMaxWait     = 60 * time.Second
)

// RateLimit names the API's rate-limit headers (request.rate_limit). Empty
// header names mean the API sends none.
type RateLimit struct {
	RemainingHeader string
	ResetHeader     string
	Reset           string // how ResetHeader reads: ResetUnix (the default) or ResetSeconds
	// Per is the window the API counts requests over, for APIs without a
	// reset header (HubSpot: 10s); 0 when not declared.
	Per time.Duration
	// Limit is the requests allowed per window: with Per, the engine spaces
	// its own requests so that no window of length Per holds more. 0: none.
	Limit int
}

// How a rate-limit reset header reads.
const (
	ResetUnix    = "unix"    // epoch seconds
	ResetSeconds = "seconds" // seconds from now
)

// PageStyle is how a listing moves from page to page.
type PageStyle string

const (
	PageNone   PageStyle = ""       // one request; Items still says where the items are (YAML: style: none)
	PagePage   PageStyle = "page"   // a page number parameter (PageParam, from FirstPage)
	PageLink   PageStyle = "link"   // the Link header's rel="next" URL
	PageCursor PageStyle = "cursor" // a cursor read from the body at CursorPath, sent as CursorParam
	PageOffset PageStyle = "offset" // an offset parameter (OffsetParam), advanced by the items received
	// PageNextURL follows the next page's URL read from the body at NextPath
	// (OData @odata.nextLink, Salesforce nextRecordsUrl, JSON:API links.next).
	PageNextURL PageStyle = "next_url"
	// PageLastItem starts the next page after the last item received: its
	// id (LastPath, within the item) is sent as CursorParam (Stripe's
	// starting_after).
	PageLastItem PageStyle = "last_item"
)

// DefaultMaxPages caps the pages of one listing when the definition says
// nothing: a listing longer than that is far more likely a provider that
// pages forever than real data.
const DefaultMaxPages = 10000

// Pagination is a pagination style and its parameters (request.pagination,
// or an action's pagination).
type Pagination struct {
	Style       PageStyle
	PageParam   string // page: the page number parameter (default "page")
	SizeParam   string // the page size (limit) parameter; "" when none is sent
	Size        int    // the page size asked for; 0 leaves it to the API
	FirstPage   int    // page: the first page's number (default 1)
	TotalHeader string // header with the total item count, if any
	Items       string // dotted path of the items array in the body; "" when the body is the array
	CursorPath  string // cursor: dotted path of the next cursor in the body
	CursorParam string // cursor: the query parameter carrying it
	OffsetParam string // offset: the offset parameter
	TotalPath   string // dotted path of the total item count in the body, if any
	// CursorHeader is, for style cursor, the response header carrying the
	// next cursor, instead of CursorPath in the body.
	CursorHeader string
	NextPath     string // next_url: path of the next page's URL in the body
	// MorePath is the path of a boolean in the body (Stripe, Slack:
	// has_more) whose false ends the listing, whatever else the page says.
	MorePath string
	MaxPages int // pages fetched at most before the listing fails; 0 means DefaultMaxPages
	// LastPath is, for style last_item, the path within an item of what
	// the next page starts after (id).
	LastPath string
	// CursorBody is, for style cursor, the JSON body field that sends the
	// cursor back, instead of CursorParam in the query: the next page's
	// body is {CursorBody: cursor} (Dropbox's list_folder/continue).
	CursorBody string
	// ContinuePath is, for style cursor, the path (relative to the base
	// URL) the next pages are requested at, when not the first page's.
	ContinuePath string
}

// Paths in a body (items, total_path, cursor_path, next_path, more_path) are
// either dotted (meta.next_cursor) or, starting with "/", a JSON Pointer
// (RFC 6901) for key names holding dots, slashes or @: /@odata.nextLink.

// The pagination keys and the styles each applies to (nil: every style).
var paginationKeys = map[string][]PageStyle{
	"style":         nil,
	"page_param":    {PagePage},
	"first_page":    {PagePage},
	"size_param":    pagingStyles,
	"size":          pagingStyles,
	"total_header":  pagingStyles,
	"total_path":    pagingStyles,
	"items":         nil,
	"cursor_path":   {PageCursor},
	"cursor_header": {PageCursor},
	"offset_param":  {PageOffset},
	"next_path":     {PageNextURL},
	"more_path":     pagingStyles,
	"max_pages":     pagingStyles,
	"last_path":     {PageLastItem},
	"cursor_param":  {PageCursor, PageLastItem},
	"cursor_body":   {PageCursor},
	"continue_path": {PageCursor},
}

// pagingStyles are the styles that fetch more than one page.
var pagingStyles = []PageStyle{PagePage, PageLink, PageCursor, PageOffset, PageNextURL, PageLastItem}

type rawPagination struct {
	Style       string `yaml:"style"`
	PageParam   string `yaml:"page_param"`
	FirstPage   int    `yaml:"first_page"`
	SizeParam   string `yaml:"size_param"`
	Size        int    `yaml:"size"`
	TotalHeader string `yaml:"total_header"`
	TotalPath   string `yaml:"total_path"`
	Items       string `yaml:"items"`
	CursorPath  string `yaml:"cursor_path"`
	CursorParam string `yaml:"cursor_param"`
	OffsetParam string `yaml:"offset_param"`
	CursorHead  string `yaml:"cursor_header"`
	NextPath    string `yaml:"next_path"`
	MorePath    string `yaml:"more_path"`
	MaxPages    int    `yaml:"max_pages"`
	LastPath    string `yaml:"last_path"`
	CursorBody  string `yaml:"cursor_body"`
	Continue    string `yaml:"continue_path"`
}

// buildRequestPolicy reads request.retry, request.rate_limit and
// request.pagination, filling in defaults.
func (b *builder) buildRequestPolicy() {
	d := b.def
	d.Retry = Retry{MaxAttempts: DefaultMaxAttempts, MaxWait: DefaultMaxWait}
	if n := b.given("/request/retry"); n != nil {
		var rr struct {
			MaxAttempts       int    `yaml:"max_attempts"`
			MaxWait           string `yaml:"max_wait"`
			IdempotencyHeader string `yaml:"idempotency_header"`
		}
		_ = n.Decode(&rr) // type errors come from the schema
		if rr.MaxAttempts >= 1 {
			d.Retry.MaxAttempts = rr.MaxAttempts
		}
		if rr.MaxWait != "" {
			if dur, err := time.ParseDuration(rr.MaxWait); err != nil || dur <= 0 {
				b.errorf("/request/retry/max_wait", "%q is not a positive duration such as 30s, 90s or 2m", rr.MaxWait)
			} else {
				d.Retry.MaxWait = dur
			}
		}
		d.Retry.IdempotencyHeader = rr.IdempotencyHeader
	}

	d.RateLimit = RateLimit{Reset: ResetUnix}
	if n := b.given("/request/rate_limit"); n != nil {
		var rl struct {
			RemainingHeader string `yaml:"remaining_header"`
			ResetHeader     string `yaml:"reset_header"`
			Reset           string `yaml:"reset"`
			Per             string `yaml:"per"`
			Limit           int    `yaml:"limit"`
		}
		_ = n.Decode(&rl)
		d.RateLimit.RemainingHeader, d.RateLimit.ResetHeader, d.RateLimit.Limit = rl.RemainingHeader, rl.ResetHeader, rl.Limit
		if rl.Reset != "" {
			d.RateLimit.Reset = rl.Reset
		}
		if rl.Reset != "" && rl.ResetHeader == "" {
			b.errorf("/request/rate_limit/reset", "reset says how reset_header reads, but there is no reset_header; add it or remove reset")
		}
		if rl.Per != "" {
			if dur, err := time.ParseDuration(rl.Per); err != nil || dur <= 0 {
				b.errorf("/request/rate_limit/per", "%q is not a positive duration such as 10s or 1m", rl.Per)
			} else {
				d.RateLimit.Per = dur
			}
		}
		switch {
		case rl.Limit > 0 && rl.Per == "":
			b.errorf("/request/rate_limit/limit", "limit counts requests per window; say how long the window is with per (such as per: 10s)")
		case rl.Per != "" && rl.Limit == 0 && rl.RemainingHeader == "":
			b.errorf("/request/rate_limit/per", "per is the window of limit (requests per window) or of remaining_header (how long to wait when nothing remains); add one of them")
		}
	}

	if n := b.given("/request/pagination"); n != nil {
		d.Pagination = b.buildPagination("/request/pagination", n, nil, false)
	}
}

// buildPagination reads a pagination mapping. An action's (action set) may
// leave out the style: it is then merged over base, the definition's default,
// as it is when it names base's style; a different style starts afresh.
func (b *builder) buildPagination(ptr string, n *yaml.Node, base *Pagination, action bool) *Pagination {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil // the schema reported it
	}
	var rp rawPagination
	_ = n.Decode(&rp)
	given := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		given[n.Content[i].Value] = true
	}

	p := &Pagination{}
	merged := false
	switch {
	case rp.Style == "none" && !action:
		b.errorf(ptr+"/style", "style none is for actions; a definition without default pagination leaves request.pagination out")
		return nil
	case rp.Style == "" && base == nil:
		if action { // request.pagination's missing style is the schema's to report
			b.errorf(ptr, "pagination needs a style (page, link, cursor, offset or none): request.pagination declares none to start from")
		}
		return nil
	case base != nil && (rp.Style == "" || PageStyle(rp.Style) == base.Style):
		*p = *base
		merged = true
	case rp.Style != "none":
		p.Style = PageStyle(rp.Style)
	}

	ok := true
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i].Value
		styles, known := paginationKeys[k]
		if !known || styles == nil || slices.Contains(styles, p.Style) {
			continue
		}
		var names []string
		for _, s := range styles {
			names = append(names, string(s))
		}
		style := string(p.Style)
		if style == "" {
			style = "none"
		}
		b.reportAt(SeverityError, n.Content[i], pointerField(ptr+"/"+escapePointer(k)), fmt.Sprintf("%s applies to %s only, and this pagination's style is %s; remove it", k, styleList(names), style))
		ok = false
	}

	set := func(key string, dst *string, v string) {
		if given[key] {
			*dst = v
		}
	}
	set("page_param", &p.PageParam, rp.PageParam)
	set("size_param", &p.SizeParam, rp.SizeParam)
	set("total_header", &p.TotalHeader, rp.TotalHeader)
	set("total_path", &p.TotalPath, rp.TotalPath)
	set("items", &p.Items, rp.Items)
	set("cursor_path", &p.CursorPath, rp.CursorPath)
	set("cursor_param", &p.CursorParam, rp.CursorParam)
	set("offset_param", &p.OffsetParam, rp.OffsetParam)
	set("cursor_header", &p.CursorHeader, rp.CursorHead)
	set("next_path", &p.NextPath, rp.NextPath)
	set("more_path", &p.MorePath, rp.MorePath)
	set("last_path", &p.LastPath, rp.LastPath)
	set("cursor_body", &p.CursorBody, rp.CursorBody)
	set("continue_path", &p.ContinuePath, rp.Continue)
	if given["max_pages"] {
		p.MaxPages = rp.MaxPages
	}
	for _, k := range []string{"items", "total_path", "cursor_path", "next_path", "more_path", "last_path"} {
		if v := map[string]string{"items": rp.Items, "total_path": rp.TotalPath, "cursor_path": rp.CursorPath, "next_path": rp.NextPath, "more_path": rp.MorePath, "last_path": rp.LastPath}[k]; given[k] && v != "" {
			if msg := BodyPathProblem(v); msg != "" {
				b.errorf(ptr+"/"+k, "%s", msg)
				ok = false
			}
		}
	}
	if given["size"] {
		p.Size = rp.Size
	}
	if given["first_page"] {
		p.FirstPage = rp.FirstPage
	}

	switch p.Style {
	case PagePage:
		if p.PageParam == "" {
			p.PageParam = "page"
		}
		if !given["first_page"] && !merged {
			p.FirstPage = 1
		}
	case PageCursor:
		switch {
		case p.CursorPath == "" && p.CursorHeader == "":
			b.errorf(ptr, "style cursor needs cursor_path, the dotted path of the next cursor in the body (such as meta.next_cursor), or cursor_header, the response header that carries it")
			ok = false
		case p.CursorPath != "" && p.CursorHeader != "":
			b.errorf(ptr+"/cursor_header", "the next cursor comes either from the body (cursor_path) or from a header (cursor_header), not both; remove one")
			ok = false
		}
		switch {
		case p.CursorParam == "" && p.CursorBody == "":
			b.errorf(ptr, "style cursor needs cursor_param, the query parameter that sends the cursor back (such as cursor), or cursor_body, the JSON body field that does")
			ok = false
		case p.CursorParam != "" && p.CursorBody != "":
			b.errorf(ptr+"/cursor_body", "the cursor goes back either in the query (cursor_param) or in the body (cursor_body), not both; remove one")
			ok = false
		}
		if p.ContinuePath != "" {
			if msg := relativePathProblem(p.ContinuePath); msg != "" {
				b.errorf(ptr+"/continue_path", "%s", strings.Replace(msg, "an action's path", "continue_path", 1))
				ok = false
			} else if strings.ContainsAny(p.ContinuePath, "?$") {
				b.errorf(ptr+"/continue_path", "continue_path is a plain path (such as /files/list_folder/continue), without a query or placeholders")
				ok = false
			}
		}
	case PageLastItem:
		if p.LastPath == "" {
			b.errorf(ptr, "style last_item needs last_path, the path within an item of what the next page starts after (such as id)")
			ok = false
		}
		if p.CursorParam == "" {
			b.errorf(ptr, "style last_item needs cursor_param, the query parameter that sends the last item's id (Stripe: starting_after)")
			ok = false
		}
	case PageNextURL:
		if p.NextPath == "" {
			b.errorf(ptr, "style next_url needs next_path, the path of the next page's URL in the body (such as links.next, or /@odata.nextLink as a JSON Pointer)")
			ok = false
		}
	case PageOffset:
		if p.OffsetParam == "" {
			b.errorf(ptr, "style offset needs offset_param, the query parameter of the offset (such as offset)")
			ok = false
		}
	}
	if p.Size > 0 && p.SizeParam == "" {
		b.errorf(ptr+"/size", "size needs size_param, the query parameter that asks for it (such as per_page or limit)")
		ok = false
	}
	if !ok {
		return nil
	}
	return p
}

// styleList words style names: "style page", "styles page and link".
func styleList(names []string) string {
	if len(names) == 1 {
		return "style " + names[0]
	}
	return "styles " + strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// BodyPathProblem says what is wrong with a path into a JSON body, or ""
// when it is usable: dotted names (data.items), or a JSON Pointer (RFC 6901)
// starting with "/" whose "~" escapes are ~0 or ~1.
func BodyPathProblem(path string) string {
	if !strings.HasPrefix(path, "/") {
		for _, k := range strings.Split(path, ".") {
			if k == "" {
				return fmt.Sprintf("%q has an empty name between dots; write names joined by single dots (meta.next), or a JSON Pointer starting with / for names with dots in them (/@odata.nextLink)", path)
			}
		}
		return ""
	}
	for i := 0; i < len(path); i++ {
		if path[i] == '~' && (i+1 == len(path) || path[i+1] != '0' && path[i+1] != '1') {
			return fmt.Sprintf("%q is not a valid JSON Pointer: ~ must be followed by 0 (for ~) or 1 (for /), RFC 6901", path)
		}
	}
	return ""
}

// BodyPathKeys splits a body path into its key names: dotted, or a JSON
// Pointer (RFC 6901) with ~1 and ~0 unescaped.
func BodyPathKeys(path string) []string {
	if !strings.HasPrefix(path, "/") {
		return strings.Split(path, ".")
	}
	keys := strings.Split(path[1:], "/")
	for i, k := range keys {
		keys[i] = strings.ReplaceAll(strings.ReplaceAll(k, "~1", "/"), "~0", "~")
	}
	return keys
}
