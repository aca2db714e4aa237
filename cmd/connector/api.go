package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/itchyny/gojq"
	"github.com/spf13/cobra"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/definitions"
	"github.com/connector-engine/connector/internal/readfile"
)

func (a *app) actionsCommand() *cobra.Command {
	var format string
	c := &cobra.Command{
		Use:               "actions DEFINITION [ACTION]",
		Short:             "List a definition's actions and their inputs",
		Args:              cobra.RangeArgs(1, 2),
		ValidArgsFunction: a.completeActions,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(format, listFormats...); err != nil {
				return err
			}
			defs, err := a.definitions()
			if err != nil {
				return err
			}
			d, err := defs.Lookup(args[0])
			if err != nil {
				return usageErrorf("%w", err)
			}
			acts := d.Actions
			if len(args) == 2 {
				act, err := d.Action(args[1])
				if err != nil {
					return usageErrorf("%w", err)
				}
				acts = []*definitions.Action{act}
			}
			if format != "table" || a.jq != "" {
				type input struct {
					Name        string `json:"name"`
					Type        string `json:"type,omitempty"`
					Required    bool   `json:"required"`
					Description string `json:"description,omitempty"`
					Default     any    `json:"default,omitempty"`
					Enum        []any  `json:"enum,omitempty"`
				}
				type row struct {
					Name   string          `json:"name"`
					Title  string          `json:"title,omitempty"`
					Method string          `json:"method"`
					Path   string          `json:"path"`
					Paged  bool            `json:"paged"`
					Inputs []input         `json:"inputs"`
					Schema json.RawMessage `json:"input_schema,omitempty"`
				}
				rows := []row{}
				for _, act := range acts {
					r := row{Name: act.Name, Title: act.Title, Method: act.Method, Path: act.PathTemplate(),
						Paged: act.Pagination != nil && act.Pagination.Style != definitions.PageNone, Inputs: []input{}}
					if len(act.Schema) > 0 {
						r.Schema = json.RawMessage(act.Schema)
					}
					for _, in := range act.Inputs {
						r.Inputs = append(r.Inputs, input{in.Name, in.Type, in.Required, in.Description, in.Default, in.Enum})
					}
					rows = append(rows, r)
				}
				return a.emit(format, rows)
			}
			if len(acts) == 0 {
				fmt.Fprintf(a.stdout, "definition %s declares no actions; 'connector request' calls any path\n", d.Name)
				return nil
			}
			w := bufio.NewWriter(a.stdout)
			defer w.Flush()
			for i, act := range acts {
				if i > 0 && len(args) == 2 {
					fmt.Fprintln(w)
				}
				paged := ""
				if act.Pagination != nil && act.Pagination.Style != definitions.PageNone {
					paged = "  (paged: --all fetches every page)"
				}
				fmt.Fprintf(w, "%s  %s %s%s\n", act.Name, act.Method, act.PathTemplate(), paged)
				if act.Title != "" {
					fmt.Fprintf(w, "    %s\n", act.Title)
				}
				for _, in := range act.Inputs {
					req := "optional"
					if in.Required {
						req = "required"
					}
					line := fmt.Sprintf("    %s=%s (%s)", in.Name, strings.ToUpper(nonEmpty(in.Type, "any")), req)
					if in.Description != "" {
						line += "  " + in.Description
					}
					fmt.Fprintln(w, line)
				}
				if len(args) == 2 && len(act.Schema) > 0 {
					var pretty bytes.Buffer
					if json.Indent(&pretty, act.Schema, "    ", "  ") == nil {
						fmt.Fprintf(w, "    input schema:\n    %s\n", pretty.String())
					}
				}
			}
			return nil
		},
	}
	a.bindOutput(c, &format, "table", listFormats...)
	return c
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// output says how listed items are written.
type output struct {
	format   string // json, ndjson, table or yaml
	all      bool
	progress bool
	dryRun   bool
	report   *progressReport    // set by app.progress
	attempts *countingTransport // set by apiSession
	timeout  time.Duration
	jq       *gojq.Code // --jq, compiled by check
}

// countingTransport counts the requests sent to the API.
type countingTransport struct {
	next http.RoundTripper
	n    atomic.Int64
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(req)
}

// apiFailure explains err: a --timeout that ran out names the request, the
// attempts and the timeout instead of a bare "context deadline exceeded".
func apiFailure(ctx context.Context, conn *connector.Connection, o *output, err error) error {
	var ne *connector.NetError
	if ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) && errors.As(err, &ne) {
		n := int64(0)
		if o.attempts != nil {
			n = o.attempts.n.Load()
		}
		err = fmt.Errorf("%s %s: no answer within --timeout %s (%s sent; the host took the connection but did not answer): check the connection's base URL, or give a longer --timeout",
			ne.Method, ne.URL, o.timeout, plural(int(n), "request"))
	}
	return connectionFailure(conn, err)
}

func (o *output) bind(a *app, c *cobra.Command) {
	c.Flags().BoolVar(&o.all, "all", false, "fetch every page and write the items as they arrive")
	a.bindOutput(c, &o.format, "json", apiFormats...)
	c.Flags().BoolVar(&o.progress, "progress", true, "with --all, report items fetched so far on stderr")
	c.Flags().BoolVar(&o.dryRun, "dry-run", false, "print the request that would be sent (credentials as ***) and send nothing to the API; with --all, the first page's")
}

// apiFormats are the -o values of call and request: ndjson writes one item
// a line, table the scalar fields of the items.
var apiFormats = []string{"json", "ndjson", "table", "yaml"}

func (o *output) check(a *app) error {
	if err := checkOutput(o.format, apiFormats...); err != nil {
		return err
	}
	code, err := compileJQ(a.jq)
	o.jq = code
	return err
}

// apiSession opens a connection's API access. Connections without OAuth
// need no token store.
func (a *app) apiSession(f *connFlags, o *output) (*connector.API, *connector.Connection, func(), error) {
	conn, loc, err := a.loadConnection(f)
	if err != nil {
		return nil, nil, nil, err
	}
	opts := &connector.APIOptions{}
	dry := func(src *connector.Source) {
		if o.dryRun {
			// Token requests still go out (the request carries the token);
			// API requests stop here.
			v := newVerbose(nil, a.stderr, conn)
			opts.Base = &dryRunTransport{out: a.stdout, verbose: v}
			return
		}
		// Count what reaches the network, for the timeout message.
		next := opts.Base
		if next == nil {
			next = baseTransport()
		}
		o.attempts = &countingTransport{next: next}
		opts.Base = o.attempts
	}
	// Three-legged OAuth 1.0a keeps its token credentials in the store, as OAuth does.
	stored := conn.Definition.Auth.OAuth != nil || (conn.Definition.Auth.OAuth1 != nil && conn.Definition.Auth.OAuth1.ThreeLegged())
	if !stored {
		mem := store.NewMemory()
		var src *connector.Source
		if a.verbose && conn.Definition.Auth.Session != nil {
			// The session's login is an exchange --verbose shows: build the
			// source here, so that its login client is the logging one.
			var err error
			if src, err = connector.NewSource(conn, mem); err != nil {
				return nil, nil, nil, &exitError{code: exitFailed, err: err}
			}
			opts.Source = src
		}
		opts.Trace = a.apiTrace(a.verboseFor(conn, src))
		dry(src)
		api, err := connector.NewAPI(conn, mem, opts)
		if err != nil {
			return nil, nil, nil, &exitError{code: exitFailed, err: err}
		}
		return api, conn, func() {}, nil
	}
	st, err := f.openStore(loc)
	if err != nil {
		return nil, nil, nil, err
	}
	var v *verboseTransport
	if a.verbose {
		src, err := connector.NewSource(conn, st)
		if err != nil {
			st.Close()
			return nil, nil, nil, &exitError{code: exitFailed, err: err}
		}
		opts.Source, v = src, a.verboseFor(conn, src)
	}
	opts.Trace = a.apiTrace(v)
	dry(opts.Source)
	api, err := connector.NewAPI(conn, st, opts)
	if err != nil {
		st.Close()
		return nil, nil, nil, &exitError{code: exitFailed, err: err}
	}
	return api, conn, func() { st.Close() }, nil
}

func (a *app) callCommand() *cobra.Command {
	var (
		f   connFlags
		out output
	)
	c := &cobra.Command{
		Use:   "call --connection FILE ACTION [input=value ...]",
		Short: "Run one of the definition's actions",
		Long: `call runs a declared action (see 'connector actions DEFINITION'). Inputs are
name=value pairs; numbers, booleans, objects and arrays are written as in JSON
(project='{"name":"Tower"}'). They are checked against the action's input
schema before anything is sent. With --all a listing action fetches every page
and writes items as they arrive.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(a); err != nil {
				return err
			}
			kv := map[string]string{}
			for _, arg := range args[1:] {
				k, v, ok := strings.Cut(arg, "=")
				if !ok || k == "" {
					return usageErrorf("input %q is not name=value", arg)
				}
				if _, dup := kv[k]; dup {
					return usageErrorf("input %s given twice", k)
				}
				kv[k] = v
			}
			api, conn, closeFn, err := a.apiSession(&f, &out)
			if err != nil {
				return err
			}
			defer closeFn()
			act, err := api.Definition().Action(args[0])
			if err != nil {
				return usageErrorf("%w", err)
			}
			input, err := act.ParseInputs(kv)
			if err == nil {
				err = act.Validate(input) // here, so that bad input is a usage error and nothing is sent
			}
			if err != nil {
				return &exitError{code: exitUsage, err: fmt.Errorf("action %s: %w", act.Name, err),
					hint: "connector actions " + api.Definition().Name + " " + act.Name}
			}
			ctx, cancel := interruptible(cmd.Context())
			defer cancel()
			ctx, cancelT := context.WithTimeout(ctx, out.timeout)
			defer cancelT()
			paged := act.Pagination != nil && act.Pagination.Style != definitions.PageNone
			if out.all && !out.dryRun {
				return a.writeItems(conn, api.CallItems(ctx, act.Name, input, a.progress(&out)), &out)
			}
			resp, err := api.Call(ctx, act.Name, input)
			if err != nil {
				return apiFailure(ctx, conn, &out, err)
			}
			if out.dryRun {
				resp.Body.Close()
				return nil
			}
			if paged {
				defer fmt.Fprintf(a.stderr, "note: %s is paged and this is its first page; --all fetches every page\n", act.Name)
			}
			return a.writeResponse(conn, resp, act.Pagination, &out)
		},
	}
	a.bindConn(&f, c)
	out.bind(a, c)
	c.Flags().DurationVar(&out.timeout, "timeout", 10*time.Minute, "give up after this long")
	c.ValidArgsFunction = a.completeCall(&f)
	return c
}

func (a *app) requestCommand() *cobra.Command {
	var (
		f       connFlags
		out     output
		data    string
		headers []string
	)
	c := &cobra.Command{
		Use:   "request --connection FILE METHOD PATH",
		Short: "Send any request to the connection's API",
		Long: `request sends METHOD PATH (relative to the connection's base URL, e.g.
/rest/v1.0/projects?company_id=1) with the connection's credentials and the
definition's headers, retries and rate limits. -d sends a JSON body, inline or
@file. With --all the definition's pagination fetches every page.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(a); err != nil {
				return err
			}
			method := strings.ToUpper(args[0])
			switch method {
			case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS":
			default:
				return usageErrorf("method %q is not one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS", args[0])
			}
			path := args[1]
			if !strings.HasPrefix(path, "/") && !strings.Contains(path, "://") {
				// "users" means /users under the base URL, not base+"users"
				path = "/" + path
			}
			r := connector.Request{Method: method, Path: path, Header: http.Header{}}
			for _, h := range headers {
				k, v, ok := strings.Cut(h, ":")
				if !ok || strings.TrimSpace(k) == "" {
					return usageErrorf("header %q is not 'Name: value'", h)
				}
				r.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
			}
			if data != "" {
				body, err := readData(data)
				if err != nil {
					return usageErrorf("-d: %w", err)
				}
				r.Body = body
			}
			api, conn, closeFn, err := a.apiSession(&f, &out)
			if err != nil {
				return err
			}
			defer closeFn()
			ctx, cancel := interruptible(cmd.Context())
			defer cancel()
			ctx, cancelT := context.WithTimeout(ctx, out.timeout)
			defer cancelT()
			p := api.Definition().Pagination
			if out.all && !out.dryRun {
				if p == nil {
					return usageErrorf("definition %s declares no request.pagination, so --all does not know how to page; drop --all or add pagination to the definition", api.Definition().Name)
				}
				return a.writeItems(conn, api.Items(ctx, r, p, a.progress(&out)), &out)
			}
			resp, err := api.Do(ctx, r)
			var he *connector.HostError
			if errors.As(err, &he) {
				return usageErrorf("%s is not on the connection's API host; request sends only to %s: give a path relative to it, such as /rest/v1.0/me", he.URL, he.API)
			}
			if err != nil {
				return apiFailure(ctx, conn, &out, err)
			}
			if out.dryRun {
				resp.Body.Close()
				return nil
			}
			return a.writeResponse(conn, resp, p, &out)
		},
	}
	a.bindConn(&f, c)
	out.bind(a, c)
	c.Flags().StringVarP(&data, "data", "d", "", "JSON body: inline, or @FILE (@- for stdin)")
	c.Flags().StringArrayVarP(&headers, "header", "H", nil, "extra header 'Name: value'; repeatable")
	c.Flags().DurationVar(&out.timeout, "timeout", 10*time.Minute, "give up after this long")
	return c
}

// maxBody caps a request body (-d) and an answer read whole (call or
// request without --all): both are held in memory.
const maxBody = 64 * readfile.MiB

// stdin is where -d @- reads; a variable for tests.
var stdin io.Reader = os.Stdin

// readData reads -d: inline JSON, @FILE or @- for stdin. It must be JSON.
func readData(d string) ([]byte, error) {
	var body []byte
	switch {
	case d == "@-":
		b, err := readAtMost(stdin, maxBody)
		if err != nil {
			return nil, fmt.Errorf("reading the body from stdin (-d @-): %w for a request body; nothing was sent", err)
		}
		body = b
	case strings.HasPrefix(d, "@"):
		b, err := readfile.Read(d[1:], maxBody, "a request body file (-d @FILE)") // as for stdin; /dev/zero must not exhaust memory
		if err != nil {
			return nil, err
		}
		body = b
	default:
		body = []byte(d)
	}
	if !json.Valid(body) {
		var v any
		err := json.Unmarshal(body, &v)
		return nil, fmt.Errorf("the body is not valid JSON (%v)", err)
	}
	return body, nil
}

func noQuery(u *url.URL) string {
	c := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	return c.String()
}

// readAtMost reads r whole, refusing more than limit bytes rather than
// cutting them off.
func readAtMost(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("it is larger than %s, the limit", readfile.Size(limit))
	}
	return b, nil
}

// progress returns the progress reporter for --all: on a terminal one line
// rewritten in place, otherwise a line every ten pages; writeItems ends it
// with the last count (see progressReport.finish).
func (a *app) progress(o *output) func(connector.Progress) {
	if !o.progress || !o.all {
		return nil
	}
	o.report = &progressReport{w: a.stderr, tty: isTerminal(a.stderr)}
	return o.report.update
}

// progressReport writes --all's progress on stderr.
type progressReport struct {
	w       io.Writer
	tty     bool
	last    connector.Progress
	printed bool // the last update was written (and, on a terminal, ended)
	open    bool // a terminal line is waiting for its newline
}

func (p *progressReport) line(pr connector.Progress) string {
	msg := fmt.Sprintf("%d items", pr.Items)
	if pr.Total >= 0 {
		msg = fmt.Sprintf("%d of %d items", pr.Items, pr.Total)
	}
	return "progress: " + msg + ", " + plural(pr.Pages, "page")
}

func (p *progressReport) update(pr connector.Progress) {
	p.last, p.printed = pr, false
	done := pr.Total >= 0 && pr.Items >= pr.Total
	switch {
	case p.tty:
		fmt.Fprintf(p.w, "\r%s", p.line(pr))
		p.open = true
		if done {
			fmt.Fprintln(p.w)
			p.open, p.printed = false, true
		}
	case pr.Pages%10 == 0 || done:
		fmt.Fprintln(p.w, p.line(pr))
		p.printed = true
	}
}

// finish ends the terminal line, or writes the final count when the last
// update was not written.
func (p *progressReport) finish() {
	if p == nil || p.last.Pages == 0 {
		return
	}
	switch {
	case p.open:
		fmt.Fprintln(p.w)
	case !p.printed:
		fmt.Fprintln(p.w, p.line(p.last))
	}
	p.open, p.printed = false, true
}

// writeItems writes items as they arrive: NDJSON a line each, JSON as one
// array streamed element by element, a table in blocks of a page.
func (a *app) writeItems(conn *connector.Connection, items iter.Seq2[json.RawMessage, error], o *output) error {
	w := bufio.NewWriter(a.stdout)
	defer w.Flush()
	n := 0
	var tbl *table
	defer o.report.finish()
	for item, err := range items {
		if err != nil {
			o.report.finish()
			if o.format == "json" && n > 0 && o.jq == nil {
				fmt.Fprintln(w, "\n]")
			}
			w.Flush()
			if n > 0 {
				err = fmt.Errorf("after %d items: %w", n, err)
			}
			return connectionFailure(conn, err)
		}
		if o.jq != nil {
			if err := runJQ(w, o.jq, item); err != nil {
				w.Flush()
				return &exitError{code: exitFailed, err: fmt.Errorf("item %d: %w", n+1, err)}
			}
			n++
			continue
		}
		switch o.format {
		case "ndjson":
			writeCompact(w, item)
			w.WriteByte('\n')
		case "json":
			if n == 0 {
				w.WriteString("[\n  ")
			} else {
				w.WriteString(",\n  ")
			}
			writeIndented(w, item, "  ")
		case "table":
			if tbl == nil {
				tbl = newTable(w, item)
			}
			tbl.row(item)
		case "yaml":
			if err := yamlItem(w, item); err != nil {
				return &exitError{code: exitFailed, err: fmt.Errorf("item %d as YAML: %w", n+1, err)}
			}
		}
		n++
		if n%100 == 0 {
			if tbl != nil {
				tbl.flush()
			}
			w.Flush()
		}
	}
	switch {
	case o.jq != nil:
	case (o.format == "json" || o.format == "yaml") && n == 0:
		w.WriteString("[]\n")
	case o.format == "json":
		w.WriteString("\n]\n")
	case tbl != nil:
		tbl.flush()
	}
	return nil
}

// writeResponse writes one answer: its body as JSON, its items as NDJSON, or
// its items as a table.
func (a *app) writeResponse(conn *connector.Connection, resp *http.Response, p *definitions.Pagination, o *output) error {
	defer resp.Body.Close()
	body, err := readAtMost(resp.Body, maxBody)
	if err != nil {
		return &exitError{code: exitFailed, err: fmt.Errorf("reading the answer of %s %s: %w for an answer read whole; for a listing, --all streams the items page by page", resp.Request.Method, noQuery(resp.Request.URL), err)}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		fmt.Fprintf(a.stderr, "%d %s (no body)\n", resp.StatusCode, http.StatusText(resp.StatusCode))
		return nil
	}
	if !json.Valid(body) {
		// Data for a pipe stays as sent; a terminal gets no control sequences.
		if isTerminal(a.stdout) {
			body = []byte(safeText(string(body)))
		}
		_, _ = a.stdout.Write(body)
		return nil
	}
	if o.jq != nil {
		if err := runJQ(a.stdout, o.jq, body); err != nil {
			return &exitError{code: exitFailed, err: err}
		}
		return nil
	}
	switch o.format {
	case "json":
		w := bufio.NewWriter(a.stdout)
		writeIndented(w, body, "")
		w.WriteByte('\n')
		return w.Flush()
	case "yaml":
		return writeYAML(a.stdout, body)
	}
	itemsPath := ""
	if p != nil {
		itemsPath = p.Items
	}
	return a.writeItems(conn, connector.ItemsOf(body, itemsPath), o)
}

// writeCompact and writeIndented write JSON from a server with the controls
// JSON allows raw (C1, DEL) escaped: the same value, safe on a terminal.
func writeCompact(w *bufio.Writer, item json.RawMessage) {
	var b bytes.Buffer
	if json.Compact(&b, item) != nil {
		w.Write(escapeJSONControls(item))
		return
	}
	w.Write(escapeJSONControls(b.Bytes()))
}

func writeIndented(w *bufio.Writer, item json.RawMessage, prefix string) {
	var b bytes.Buffer
	if json.Indent(&b, item, prefix, "  ") != nil {
		w.Write(escapeJSONControls(item))
		return
	}
	w.Write(escapeJSONControls(b.Bytes()))
}

// table writes items as aligned columns: the scalar fields of the first item.
type table struct {
	tw   *tabwriter.Writer
	cols []string
}

func newTable(w io.Writer, first json.RawMessage) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
	var m map[string]any
	if json.Unmarshal(first, &m) == nil {
		for k, v := range m {
			switch v.(type) {
			case map[string]any, []any:
			default:
				t.cols = append(t.cols, k)
			}
		}
		sort.Slice(t.cols, func(i, j int) bool {
			// id first, then name-like columns, then the rest by name.
			ri, rj := colRank(t.cols[i]), colRank(t.cols[j])
			if ri != rj {
				return ri < rj
			}
			return t.cols[i] < t.cols[j]
		})
		fmt.Fprintln(t.tw, safeText(strings.ToUpper(strings.Join(t.cols, "\t"))))
	}
	return t
}

func colRank(c string) int {
	switch c {
	case "id":
		return 0
	case "name", "title", "subject", "login", "email_address":
		return 1
	}
	return 2
}

func (t *table) row(item json.RawMessage) {
	if t.cols == nil {
		fmt.Fprintln(t.tw, safeText(string(item)))
		return
	}
	var m map[string]any
	_ = json.Unmarshal(item, &m)
	cells := make([]string, len(t.cols))
	for i, c := range t.cols {
		switch v := m[c].(type) {
		case nil:
			cells[i] = "-"
		case string:
			cells[i] = safeText(strings.NewReplacer("\t", " ", "\n", " ").Replace(v))
		default:
			b, _ := json.Marshal(v)
			cells[i] = string(b)
		}
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() { _ = t.tw.Flush() }
