package server

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/connector-engine/connector/connector/server/state"
	"github.com/connector-engine/connector/definitions"
)

type definitionSummary struct {
	Name         string   `json:"name"`
	Title        string   `json:"title"`
	Description  string   `json:"description,omitempty"`
	Scheme       string   `json:"scheme"`
	GrantType    string   `json:"grant_type,omitempty"`
	Environments []string `json:"environments"`
}

type fieldView struct {
	Name     string `json:"name"`
	Title    string `json:"title,omitempty"`
	Type     string `json:"type"`
	Required bool   `json:"required"`
	Secret   bool   `json:"secret"`
	Default  string `json:"default,omitempty"`
	Help     string `json:"help,omitempty"`
}

type actionView struct {
	Name        string          `json:"name"`
	Title       string          `json:"title,omitempty"`
	Method      string          `json:"method"`
	Path        string          `json:"path"`
	Paginated   bool            `json:"paginated"`
	InputSchema json.RawMessage `json:"input_schema,omitempty"`
}

type definitionView struct {
	definitionSummary
	DefaultEnvironment string       `json:"default_environment"`
	Scopes             []string     `json:"scopes"`
	Fields             []fieldView  `json:"fields"`
	Actions            []actionView `json:"actions"`
}

func summarize(d *definitions.Definition) definitionSummary {
	envs := make([]string, 0, len(d.Environments))
	for _, e := range d.Environments {
		envs = append(envs, e.Name)
	}
	return definitionSummary{Name: d.Name, Title: d.Title, Description: d.Description, Scheme: string(d.Auth.Scheme), GrantType: string(d.GrantType()), Environments: envs}
}

func (s *Server) listDefinitions(w http.ResponseWriter, r *http.Request, _ state.Principal) {
	out := []definitionSummary{}
	for _, d := range s.cfg.Definitions.All() {
		out = append(out, summarize(d))
	}
	writeJSON(w, http.StatusOK, map[string]any{"definitions": out})
}

func (s *Server) getDefinition(w http.ResponseWriter, r *http.Request, _ state.Principal) {
	d, ok := s.cfg.Definitions.Get(r.PathValue("name"))
	if !ok {
		writeProblem(w, r, problem(http.StatusNotFound, "not-found", "name", "no definition %q; GET /v1/definitions lists them", r.PathValue("name")))
		return
	}
	v := definitionView{definitionSummary: summarize(d), DefaultEnvironment: d.DefaultEnvironment, Scopes: []string{}, Fields: []fieldView{}, Actions: []actionView{}}
	if d.Auth.OAuth != nil {
		v.Scopes = append(v.Scopes, d.Auth.OAuth.Scopes...)
	}
	for _, f := range d.Fields {
		v.Fields = append(v.Fields, fieldView{Name: f.Name, Title: f.Title, Type: f.Type, Required: f.Required, Secret: f.Secret, Default: f.Default, Help: f.Help})
	}
	for _, a := range d.Actions {
		v.Actions = append(v.Actions, actionView{Name: a.Name, Title: a.Title, Method: a.Method, Path: a.PathTemplate(), Paginated: a.Pagination != nil, InputSchema: a.Schema})
	}
	writeJSON(w, http.StatusOK, v)
}

// maxDefinitionBody caps an uploaded definition.
const maxDefinitionBody = 1 << 20

// validateDefinition checks an uploaded definition (YAML, the body) on top
// of the loaded ones and answers the same diagnostics as connector
// validate, plus an error for every host it names that the server's
// allow-list refuses (definitionHosts). It stores nothing and sends nothing
// anywhere.
func (s *Server) validateDefinition(w http.ResponseWriter, r *http.Request, _ state.Principal) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxDefinitionBody))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		writeProblem(w, r, problem(http.StatusRequestEntityTooLarge, "body-too-large", "", "the definition is larger than %d bytes", maxDefinitionBody))
		return
	}
	if err != nil {
		writeProblem(w, r, problem(http.StatusBadRequest, "unreadable-body", "", "the body could not be read: %v", err))
		return
	}
	name := r.URL.Query().Get("filename")
	if name == "" || len(name) > 200 || strings.ContainsAny(name, "/\\\x00") {
		name = "definition.yaml"
	}
	diags, acked := []definitions.Diagnostic{}, []definitions.Diagnostic(nil)
	set, err := definitions.Parse(s.cfg.Definitions, definitions.File{Path: name, Data: data})
	var de *definitions.Error
	switch {
	case errors.As(err, &de):
		diags, acked = append(diags, de.Diagnostics...), de.Acknowledged
	case err != nil:
		writeProblem(w, r, problem(http.StatusBadRequest, "invalid-definition", "", "%v", err))
		return
	default:
		diags, acked = append(diags, set.Warnings()...), set.Acknowledged()
	}
	// Hosts the server would refuse to reach are errors here too: a
	// definition from a tenant must not send the engine inside the network.
	diags = append(s.definitionHosts(name, data), diags...)
	writeJSON(w, http.StatusOK, validationReport(diags, acked))
}

// validation is the answer of POST /v1/definitions/validate, the report of
// connector validate -o json plus the diagnostics formatted as text.
// Acknowledged warnings (the definition's ignore_warnings) come last, marked
// and with their reason, as the CLI lists them: a tenant uploading a
// definition sees what it waved through, and they do not count as warnings.
type validation struct {
	Valid        bool                     `json:"valid"`
	Errors       int                      `json:"errors"`
	Warnings     int                      `json:"warnings"`
	Acknowledged int                      `json:"acknowledged"`
	Diagnostics  []definitions.Diagnostic `json:"diagnostics"`
	Messages     []string                 `json:"messages"`
}

func validationReport(diags, acked []definitions.Diagnostic) validation {
	v := validation{Acknowledged: len(acked), Diagnostics: append(append([]definitions.Diagnostic{}, diags...), acked...)}
	for _, d := range diags {
		if d.Severity == definitions.SeverityError {
			v.Errors++
		} else {
			v.Warnings++
		}
	}
	v.Valid = v.Errors == 0
	v.Messages = make([]string, len(v.Diagnostics))
	for i, d := range v.Diagnostics {
		v.Messages[i] = d.String()
	}
	return v
}
