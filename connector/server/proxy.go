package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/server/state"
	"github.com/connector-engine/connector/definitions"
)

// maxProxyBody caps a proxied request body (the engine keeps up to 8 MiB
// of it in memory to replay on a retry; the rest streams).
const maxProxyBody = 64 << 20

// Headers never forwarded: hop-by-hop ones (RFC 9110 7.6.1), and the
// caller's own credentials, which are for this server, not the provider.
var dropRequest = map[string]bool{
	"Authorization": true, "Proxy-Authorization": true, "Cookie": true, "Host": true,
	"Connection": true, "Keep-Alive": true, "Te": true, "Trailer": true, "Transfer-Encoding": true,
	"Upgrade": true, "Proxy-Connection": true, "X-Api-Key": true, "Accept-Encoding": true,
}

var dropResponse = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Te": true, "Trailer": true, "Transfer-Encoding": true,
	"Upgrade": true, "Proxy-Connection": true, "Set-Cookie": true, "Content-Length": true,
}

// proxy sends the request through the connection's transport chain
// (credentials, origin scope, retries, rate limits, 401 refresh-and-replay)
// and streams the answer back, headers and all (pagination headers too).
func (s *Server) proxy(w http.ResponseWriter, r *http.Request, p state.Principal) {
	e := s.connection(w, r, p)
	if e == nil {
		return
	}
	// The raw (escaped) rest of the path, so that an encoded slash stays one.
	raw := r.URL.EscapedPath()
	i := strings.Index(raw, "/proxy/")
	rest := raw[i+len("/proxy"):]
	target := strings.TrimSuffix(e.api.BaseURL(), "/") + rest
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	var body io.Reader = http.NoBody
	if r.ContentLength != 0 {
		body = http.MaxBytesReader(w, r.Body, maxProxyBody)
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, target, body)
	if err != nil {
		writeProblem(w, r, problem(http.StatusBadRequest, "invalid-path", "path", "the proxied path does not make a URL: %v", err))
		return
	}
	out.ContentLength = r.ContentLength
	for k, vs := range r.Header {
		if !dropRequest[k] {
			out.Header[k] = vs
		}
	}
	start := time.Now()
	resp, err := e.api.Client().Do(out)
	s.metrics.proxy.Observe(time.Since(start).Seconds())
	if err != nil {
		var he *connector.HostError
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &he):
			writeProblem(w, r, problem(http.StatusBadRequest, "outside-origin", "path", "%v", err))
		case errors.As(err, &mbe):
			writeProblem(w, r, problem(http.StatusRequestEntityTooLarge, "body-too-large", "", "the body is larger than %d bytes", int64(maxProxyBody)))
		default:
			writeProblem(w, r, s.engineProblem(r, err))
		}
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		if !dropResponse[k] {
			w.Header()[k] = vs
		}
	}
	// A body of known length (not decompressed on the way) keeps its
	// length, and is sent as it comes without a flush per read.
	known := resp.ContentLength >= 0 && !resp.Uncompressed && resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusNotModified
	if known {
		w.Header().Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	}
	w.WriteHeader(resp.StatusCode)
	if known {
		copyBody(w, resp.Body)
		return
	}
	stream(w, resp.Body)
}

var bufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyBody copies a body of known length to w.
func copyBody(w io.Writer, body io.Reader) {
	b := bufs.Get().(*[]byte)
	defer bufs.Put(b)
	_, _ = io.CopyBuffer(w, body, *b)
}

// stream copies body to w, flushing as it goes so that long answers reach
// the caller as they arrive.
func stream(w http.ResponseWriter, body io.Reader) {
	b := bufs.Get().(*[]byte)
	defer bufs.Put(b)
	buf := *b
	f, _ := w.(http.Flusher)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if f != nil {
				f.Flush()
			}
		}
		if err != nil {
			return
		}
	}
}

// action runs a declared action with the body as its input, checked against
// the action's schema before anything is sent. ?all=true pages through a
// listing action and streams its items as NDJSON, one item a line; an error
// after the first item ends the stream with a line {"error": ...}.
func (s *Server) action(w http.ResponseWriter, r *http.Request, p state.Principal) {
	all := false
	for k, vs := range r.URL.Query() {
		if k != "all" || len(vs) != 1 || (vs[0] != "true" && vs[0] != "false") {
			writeProblem(w, r, problem(http.StatusBadRequest, "invalid-parameter", k, "the only query parameter is all=true|false"))
			return
		}
		all = vs[0] == "true"
	}
	var input map[string]any
	if !readJSON(w, r, &input) {
		return
	}
	input = plainNumbers(input).(map[string]any)
	e := s.connection(w, r, p)
	if e == nil {
		return
	}
	name := r.PathValue("action")
	act, err := e.def.Action(name)
	if err != nil {
		writeProblem(w, r, problem(http.StatusNotFound, "no-such-action", "action", "%v", err))
		return
	}
	if err := act.Validate(input); err != nil {
		writeProblem(w, r, inputProblem(err))
		return
	}
	if !all {
		resp, err := e.api.Call(r.Context(), name, input)
		if err != nil {
			s.actionError(w, r, err)
			return
		}
		defer resp.Body.Close()
		for _, k := range []string{"Content-Type", "Link", "Total", "Per-Page"} {
			if v := resp.Header.Get(k); v != "" {
				w.Header().Set(k, v)
			}
		}
		w.WriteHeader(resp.StatusCode)
		stream(w, resp.Body)
		return
	}
	started := false
	enc := json.NewEncoder(w)
	for item, err := range e.api.CallItems(r.Context(), name, input, nil) {
		if err != nil {
			if !started {
				s.actionError(w, r, err)
				return
			}
			_ = enc.Encode(map[string]string{"error": err.Error()})
			return
		}
		if !started {
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.WriteHeader(http.StatusOK)
			started = true
		}
		if _, err := w.Write(append(compact(item), '\n')); err != nil {
			return
		}
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	if !started {
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
	}
}

func compact(raw json.RawMessage) []byte {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return raw
	}
	return b.Bytes()
}

func (s *Server) actionError(w http.ResponseWriter, r *http.Request, err error) {
	var ie *definitions.InputError
	var ae *connector.APIError
	switch {
	case errors.As(err, &ie):
		writeProblem(w, r, inputProblem(err))
	case errors.As(err, &ae):
		pr := problem(http.StatusBadGateway, "provider-error", "", "%v", err)
		writeProblem(w, r, pr)
	default:
		writeProblem(w, r, s.engineProblem(r, err))
	}
}

// inputProblem names the input that was wrong: "input /project/name: ..."
// becomes the field input.project.name.
func inputProblem(err error) *Problem {
	var ie *definitions.InputError
	if !errors.As(err, &ie) || len(ie.Problems) == 0 {
		return problem(http.StatusUnprocessableEntity, "invalid-input", "input", "%v", err)
	}
	var errs []FieldProblem
	for _, msg := range ie.Problems {
		field := "input"
		if rest, ok := strings.CutPrefix(msg, "input "); ok {
			if ptr, _, ok := strings.Cut(rest, ":"); ok && strings.HasPrefix(ptr, "/") {
				field = "input" + strings.ReplaceAll(ptr, "/", ".")
			}
		}
		errs = append(errs, FieldProblem{Field: field, Detail: msg})
	}
	p := invalid(errs)
	p.Type = problemType("invalid-input")
	return p
}

// plainNumbers turns json.Number into int64 or float64, which the action
// schemas and templates expect.
func plainNumbers(v any) any {
	switch t := v.(type) {
	case map[string]any:
		if t == nil {
			return map[string]any{}
		}
		for k, x := range t {
			t[k] = plainNumbers(x)
		}
		return t
	case []any:
		for i, x := range t {
			t[i] = plainNumbers(x)
		}
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i
		}
		f, _ := t.Float64()
		return f
	}
	return v
}
