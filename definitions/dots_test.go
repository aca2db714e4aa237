package definitions_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/connector-engine/connector/definitions"
)

// TestRenderRefusesDotSegments: an input that would be a whole path segment
// "." or ".." is refused with an *InputError naming the input, its
// placeholder and the action (it used to be sent as %2E%2E, which RFC 3986
// 6.2.2.2 resolves as ".."); the field placeholder of a definition likewise.
func TestRenderRefusesDotSegments(t *testing.T) {
	d, vals := thingsDef(t)
	a, err := d.Action("get_thing")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{".", ".."} {
		_, err := a.Render(vals, map[string]any{"name": v})
		var ie *definitions.InputError
		want := `input name: ${name} is "` + v + `", which would make its path segment "` + v + `": that means this or the parent directory (RFC 3986 6.2.2.2, even percent-encoded), so the request could reach another resource; a path value cannot be "." or ".." (action get_thing, path /accounts/${Account}/things/${name})`
		if !errors.As(err, &ie) || err.Error() != want {
			t.Errorf("name=%q: %v\nwant *InputError %q", v, err, want)
		}
		// From the command line too.
		in, err := a.ParseInputs(map[string]string{"name": v})
		if err != nil {
			t.Fatalf("ParseInputs: %v", err)
		}
		if _, err := a.Render(vals, in); !errors.As(err, &ie) {
			t.Errorf("name=%q from ParseInputs: %v", v, err)
		}
	}
	// Dots that cannot form a dot segment pass.
	for _, v := range []string{"...", ".a", "a.."} {
		if _, err := a.Render(vals, map[string]any{"name": v}); err != nil {
			t.Errorf("name=%q: %v", v, err)
		}
	}

	// A field in the path is the connection's, not an input.
	set, diags := parse(t, file("f.yaml", minimal+"fields:\n  Team: {required: true}\nactions:\n  a:\n    path: /teams/${Team}\n"))
	if set == nil {
		t.Fatal(joinDiags(diags))
	}
	fd, _ := set.Get("acme")
	fa, _ := fd.Action("a")
	fvals, err := fd.Values("", map[string]string{"Team": ".."})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fa.Render(fvals, nil); err == nil || !strings.Contains(err.Error(), `path: template: byte 7: the value of ${Team} is "..", which would make its path segment ".."`) {
		t.Errorf("field Team=..: %v", err)
	}
}
