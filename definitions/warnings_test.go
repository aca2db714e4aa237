package definitions_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/connector-engine/connector/definitions"
	"github.com/connector-engine/connector/schemas"
)

// Every warning code is in the schema's ignore_warnings (for editors), has
// its row and anchor in definitions/README.md, in the same order, and is
// reported by some definition of the golden corpus; every warning of the
// corpus has a code.
func TestWarningCodes(t *testing.T) {
	codes := definitions.WarningCodes()
	if len(codes) < 9 {
		t.Fatalf("WarningCodes = %v", codes)
	}
	for _, c := range codes {
		if !regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`).MatchString(c) {
			t.Errorf("code %q is not kebab-case", c)
		}
	}

	var schema struct {
		Properties struct {
			IgnoreWarnings struct {
				PropertyNames struct {
					Enum []string `json:"enum"`
				} `json:"propertyNames"`
			} `json:"ignore_warnings"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(schemas.Definition, &schema); err != nil {
		t.Fatal(err)
	}
	if got := schema.Properties.IgnoreWarnings.PropertyNames.Enum; !slices.Equal(got, codes) {
		t.Errorf("schemas/definition.schema.json ignore_warnings.propertyNames.enum = %v, want WarningCodes() = %v", got, codes)
	}

	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(readme), "\n### Warnings\n")
	section, _, _ = strings.Cut(section, "\n### ")
	var rows []string
	for _, m := range regexp.MustCompile("(?m)^\\| <a id=\"([^\"]+)\"></a>`([^`]+)` \\|").FindAllStringSubmatch(section, -1) {
		if m[1] != m[2] {
			t.Errorf("README row %q has the anchor %q", m[2], m[1])
		}
		rows = append(rows, m[1])
	}
	if !slices.Equal(rows, codes) {
		t.Errorf("definitions/README.md ### Warnings lists %v, want WarningCodes() = %v (same order)", rows, codes)
	}

	files, err := filepath.Glob("testdata/*/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		set, err := definitions.Parse(definitions.Builtin(), definitions.File{Path: path, Data: data})
		var all []definitions.Diagnostic
		var de *definitions.Error
		if errors.As(err, &de) {
			all = append(de.Diagnostics, de.Acknowledged...)
		} else if set != nil {
			all = append(set.Warnings(), set.Acknowledged()...)
		}
		for _, d := range all {
			switch {
			case d.Severity == definitions.SeverityWarning && d.Code == "":
				t.Errorf("%v: a warning without a code", d)
			case d.Severity == definitions.SeverityError && d.Code != "":
				t.Errorf("%v: an error with a warning code", d)
			}
			seen[d.Code] = true
		}
	}
	for _, c := range codes {
		if !seen[c] {
			t.Errorf("no definition under testdata/ draws the warning %s; add one to testdata/warnings", c)
		}
	}
}

const parentPKCEOff = `name: legacy
title: Legacy
base_url: https://api.legacy.test
ignore_warnings:
  pkce-off: the provider rejects code_challenge
auth:
  scheme: oauth
  oauth:
    version: V2
    pkce: false
    initiate_uri: https://login.legacy.test/authorize
    token_request_uri: https://login.legacy.test/token
`

// ignore_warnings is inherited through extends like any mapping: the child
// acknowledges what its parent did, adds its own, and null takes one back.
func TestIgnoreWarningsInherited(t *testing.T) {
	codesOf := func(ds []definitions.Diagnostic) (out []string) {
		for _, d := range ds {
			out = append(out, d.File+":"+d.Code)
		}
		return out
	}
	for _, tc := range []struct {
		name        string
		child       string
		shown, aked []string
	}{
		{"inherited", "name: legacy-eu\nextends: legacy\n",
			nil, []string{"child.yaml:pkce-off", "parent.yaml:pkce-off"}},
		{"taken back with null", "name: legacy-eu\nextends: legacy\nignore_warnings: {pkce-off: null}\n",
			[]string{"child.yaml:pkce-off"}, []string{"parent.yaml:pkce-off"}},
		{"added by the child", "name: legacy-eu\nextends: legacy\nignore_warnings: {token-in-query: the EU API takes no header}\n" +
			"auth:\n  oauth:\n    send_token: {in: query, name: access_token}\n",
			nil, []string{"child.yaml:pkce-off", "child.yaml:token-in-query", "parent.yaml:pkce-off"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set, err := definitions.Parse(definitions.Builtin(), file("parent.yaml", parentPKCEOff), file("child.yaml", tc.child))
			if err != nil {
				t.Fatal(err)
			}
			if got := codesOf(set.Warnings()); !slices.Equal(got, tc.shown) {
				t.Errorf("Warnings = %v, want %v", got, tc.shown)
			}
			if got := codesOf(set.Acknowledged()); !slices.Equal(got, tc.aked) {
				t.Errorf("Acknowledged = %v, want %v", got, tc.aked)
			}
			for _, d := range set.Acknowledged() {
				if !d.Acknowledged || d.Reason == "" || !strings.Contains(d.String(), "acknowledged warning: ") {
					t.Errorf("acknowledged without its reason: %+v", d)
				}
			}
		})
	}
}

// An invalid set keeps acknowledged warnings out of Error.Diagnostics (and
// so out of its message) but still carries them.
func TestIgnoreWarningsInInvalidSet(t *testing.T) {
	_, err := definitions.Parse(definitions.Builtin(), file("parent.yaml", parentPKCEOff),
		file("broken.yaml", strings.Replace(parentPKCEOff, "name: legacy", "name: Broken", 1)))
	var de *definitions.Error
	if !errors.As(err, &de) {
		t.Fatalf("err = %v", err)
	}
	for _, d := range de.Diagnostics {
		if d.Acknowledged {
			t.Errorf("acknowledged warning among the diagnostics: %v", d)
		}
	}
	if len(de.Acknowledged) != 2 || de.Acknowledged[0].File != "broken.yaml" || de.Acknowledged[1].File != "parent.yaml" || de.Acknowledged[1].Code != "pkce-off" {
		t.Errorf("Acknowledged = %v", de.Acknowledged)
	}
	if strings.Contains(err.Error(), "pkce") {
		t.Errorf("the error message shows the acknowledged warning:\n%v", err)
	}
}

// An ignore_warnings entry that acknowledges nothing is reported where it is
// written, once every warning has been looked for: not in a child that
// inherits it, not in a base that says it is meant for its children, not
// while the file has errors.
func TestUnusedIgnore(t *testing.T) {
	unused := func(ds []definitions.Diagnostic) (out []string) {
		for _, d := range ds {
			if d.Code == "unused-ignore" {
				out = append(out, d.String())
			}
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		files []definitions.File
		want  []string
	}{
		{"the child fixed what the parent acknowledges",
			[]definitions.File{file("parent.yaml", parentPKCEOff), file("child.yaml", "name: legacy-eu\nextends: legacy\nauth:\n  oauth:\n    pkce: true\n")},
			nil},
		{"the child acknowledges what it does not do",
			[]definitions.File{file("parent.yaml", parentPKCEOff), file("child.yaml", "name: legacy-eu\nextends: legacy\nignore_warnings: {token-in-query: the EU API takes no header}\n")},
			[]string{`child.yaml:3:19: warning: ignore_warnings.token-in-query: "token-in-query" acknowledges no warning of this definition; remove the entry (kept, it would hide the warning if the risk came back) [unused-ignore]`}},
		{"a base acknowledges for its children",
			[]definitions.File{file("parent.yaml", strings.Replace(parentPKCEOff, "ignore_warnings:\n", "ignore_warnings:\n  unused-ignore: the regional children send the token in the query\n  token-in-query: the regional APIs take no header\n", 1))},
			nil},
		{"a file with errors",
			[]definitions.File{file("parent.yaml", strings.Replace(parentPKCEOff, "pkce: false", "pkce: false\n    refresh_margin: soon", 1)+"")},
			nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set, err := definitions.Parse(definitions.Builtin(), tc.files...)
			var ds []definitions.Diagnostic
			var de *definitions.Error
			switch {
			case errors.As(err, &de):
				ds = append(de.Diagnostics, de.Acknowledged...)
			case err != nil:
				t.Fatal(err)
			default:
				ds = append(set.Warnings(), set.Acknowledged()...)
			}
			if got := unused(ds); !slices.Equal(got, tc.want) {
				t.Errorf("unused-ignore findings:\n%q\nwant\n%q", got, tc.want)
			}
			if tc.name == "a file with errors" && de == nil {
				t.Fatal("the definition was meant to be invalid")
			}
		})
	}
}
