package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/connector-engine/connector/connector/server/internal/jsondepth"
)

// Problem is an RFC 9457 problem details document. Field names the request
// member that was wrong (a JSON pointer-like dotted path, or a query or path
// parameter), so that a client can show the error beside it.
type Problem struct {
	Type     string         `json:"type"`
	Title    string         `json:"title"`
	Status   int            `json:"status"`
	Detail   string         `json:"detail,omitempty"`
	Field    string         `json:"field,omitempty"`
	Errors   []FieldProblem `json:"errors,omitempty"`
	Instance string         `json:"instance,omitempty"`
}

// FieldProblem is one of several things wrong with a request.
type FieldProblem struct {
	Field  string `json:"field,omitempty"`
	Detail string `json:"detail"`
}

func (p *Problem) Error() string { return p.Detail }

// problemType makes the type URI of a problem from its slug; the URIs are
// identifiers, documented in the OpenAPI document, not fetched.
func problemType(slug string) string { return "urn:connector:problem:" + slug }

func problem(status int, slug, field, format string, args ...any) *Problem {
	return &Problem{Type: problemType(slug), Title: http.StatusText(status), Status: status, Field: field, Detail: fmt.Sprintf(format, args...)}
}

func writeProblem(w http.ResponseWriter, r *http.Request, p *Problem) {
	if p.Instance == "" && r != nil {
		p.Instance = r.URL.Path
	}
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	if p.Status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="connector"`)
	}
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// maxJSONBody caps a JSON request body; maxJSONDepth its nesting.
const (
	maxJSONBody  = 1 << 20
	maxJSONDepth = 32
)

// readJSON decodes the request's JSON body into v (decodeJSON's limits),
// writing the problem and returning false when it cannot.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if prob := decodeJSON(w, r, maxJSONBody, v); prob != nil {
		writeProblem(w, r, prob)
		return false
	}
	return true
}

// required writes a 422 naming field, with detail saying what to give,
// and returns false when value is empty.
func required(w http.ResponseWriter, r *http.Request, field, value, detail string) bool {
	if value == "" {
		writeProblem(w, r, invalid([]FieldProblem{{Field: field, Detail: detail}}))
		return false
	}
	return true
}

// decodeJSON reads exactly one JSON value of at most limit bytes into v,
// refusing unknown fields, and says which field was wrong.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) *Problem {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		return problem(http.StatusUnsupportedMediaType, "unsupported-media-type", "", "the body must be application/json, not %s", ct)
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return problem(http.StatusRequestEntityTooLarge, "body-too-large", "", "the body is larger than %d bytes", limit)
	}
	if err != nil {
		return problem(http.StatusBadRequest, "unreadable-body", "", "the body could not be read: %v", err)
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		data = []byte("{}")
	}
	if d := jsondepth.Of(data); d > maxJSONDepth {
		return problem(http.StatusBadRequest, "too-deep", "", "the body nests %d levels deep; at most %d are allowed", d, maxJSONDepth)
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return jsonProblem(err)
	}
	if dec.More() {
		return problem(http.StatusBadRequest, "malformed-json", "", "the body has more than one JSON value")
	}
	return nil
}

func jsonProblem(err error) *Problem {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return problem(http.StatusBadRequest, "malformed-json", "", "the body is not valid JSON (at byte %d): %v", se.Offset, se)
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			return problem(http.StatusBadRequest, "wrong-type", "", "the body must be a JSON object, not %s", te.Value)
		}
		return problem(http.StatusBadRequest, "wrong-type", field, "%s must be %s, not %s", field, jsonKind(te.Type.Kind().String()), te.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return problem(http.StatusBadRequest, "unknown-field", name, "unknown field %q; see the OpenAPI document at /v1/openapi.json for the fields this request takes", name)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return problem(http.StatusBadRequest, "malformed-json", "", "the body is truncated JSON")
	}
	return problem(http.StatusBadRequest, "malformed-json", "", "the body is not valid JSON: %v", err)
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "map", "struct":
		return "an object"
	case "slice", "array":
		return "an array"
	case "bool":
		return "a boolean"
	}
	return "a number"
}
