package templates

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// testVars is a variable set like a definition's: OAuth builtins, URL-valued
// hosts and a few fields.
func testVars(t testing.TB) *Vars {
	t.Helper()
	v := NewVars()
	for _, d := range []struct {
		name  string
		flags Flag
	}{
		{"ClientId", 0},
		{"ClientSecret", Secret},
		{"RedirectUri", 0},
		{"State", 0},
		{"code", Secret},
		{"refreshToken", Secret},
		{"BaseUrl", URLValued},
		{"LoginUrl", URLValued},
		{"CompanyId", 0},
		{"Tenant", 0},
		{"id", 0},
		{"q", 0},
		{"frag", 0},
		{"SecretBase", URLValued | Secret},
	} {
		if _, err := v.Add(d.name, d.flags); err != nil {
			t.Fatal(err)
		}
	}
	return v
}

// valuesFor returns the values slice for a map from variable name.
func valuesFor(t testing.TB, vars *Vars, m map[string]string) []string {
	t.Helper()
	values := make([]string, vars.Len())
	for name, val := range m {
		i, ok := vars.Lookup(name)
		if !ok {
			t.Fatalf("no variable %s", name)
		}
		values[i] = val
	}
	return values
}

const procoreTokenURI = "${LoginUrl}/oauth/token?grant_type=authorization_code&code=${code}&client_id=${clientId}&client_secret=${clientSecret}&redirect_uri=${redirectUri}"

func TestCompileErrors(t *testing.T) {
	vars := testVars(t)
	tests := []struct {
		name   string
		src    string
		kind   Kind
		offset int
		ph     string
		msg    []string // substrings of Msg
	}{
		{"unclosed", "https://x.com/${code", URL, 14, "", []string{`unclosed "${"`, `"}"`}},
		{"unclosed text", "Bearer ${code", Text, 7, "", []string{`unclosed "${"`}},
		{"unclosed after a good one", "${LoginUrl}/a?x=${q}&y=${id", URL, 23, "", []string{`unclosed "${"`}},
		{"unclosed swallowing the next", "https://x.com/${a ${id}", URL, 14, "a ${id", []string{`unclosed "${"`}},
		{"empty", "https://x.com/${}", URL, 14, "", []string{`empty placeholder "${}"`, "${ClientId}"}},
		{"space inside", "https://x.com/?c=${ code }", URL, 17, " code ", []string{"invalid name", "no spaces: ${code}"}},
		{"leading digit", "https://x.com/${1abc}", URL, 14, "1abc", []string{`"${1abc}" has an invalid name`}},
		{"dash", "X ${a-b}", Text, 2, "a-b", []string{"invalid name", "letters, digits and _"}},
		{"unknown, close", "https://x.com/?c=${clientID2}", URL, 17, "clientID2", []string{"unknown placeholder ${clientID2}; did you mean ${ClientId}?"}},
		{"unknown, underscores", "https://x.com/?c=${client_id}", URL, 17, "client_id", []string{"did you mean ${ClientId}?"}},
		{"unknown, snake case", "https://x.com/?c=${REDIRECT_URI}", URL, 17, "REDIRECT_URI", []string{"did you mean ${RedirectUri}?"}},
		{"unknown, two edits", "${Tenat}", Text, 0, "Tenat", []string{"did you mean ${Tenant}?"}},
		{"unknown, two edits, any length", "https://x.com/${nope}", URL, 14, "nope", []string{"did you mean ${code}?"}},
		{"unknown, far", "https://x.com/${nothing}", URL, 14, "nothing", []string{"unknown placeholder ${nothing}; known placeholders are ${ClientId}, ${ClientSecret}"}},
		{"host", "https://${Tenant}.example.com/", URL, 8, "Tenant", []string{"${Tenant} cannot form part of the URL's scheme or host", "${BaseUrl} or ${LoginUrl} or ${SecretBase}", "a field of type host_label"}},
		{"host port", "https://x.com:${Tenant}/", URL, 14, "Tenant", []string{"scheme or host"}},
		{"glued to host", "https://x.com${id}", URL, 13, "id", []string{"scheme or host"}},
		{"scheme", "http${Tenant}://x.com/", URL, 4, "Tenant", []string{"scheme or host"}},
		{"scheme-relative host", "//${Tenant}/x", URL, 2, "Tenant", []string{"scheme or host"}},
		{"non-URL at start", "${CompanyId}/x", URL, 0, "CompanyId", []string{"${CompanyId} cannot form part of the URL's scheme or host"}},
		{"URL-valued in host", "https://${LoginUrl}/x", URL, 8, "LoginUrl", []string{"${LoginUrl} supplies a scheme and host, so it must start the template"}},
		{"URL-valued after scheme-relative", "//${BaseUrl}/x", URL, 2, "BaseUrl", []string{"must start the template"}},
		{"prefix glued to text", "${BaseUrl}rest/v1.0", URL, 0, "BaseUrl", []string{`must start with "/", "?" or "#"`, "${BaseUrl}/path"}},
		{"prefix glued to placeholder", "${BaseUrl}${id}", URL, 0, "BaseUrl", []string{`must start with "/", "?" or "#"`}},
		{"first error wins", "https://${Tenant}.x.com/${nope}", URL, 8, "Tenant", []string{"scheme or host"}},
		{"unknown in host is reported as unknown", "https://${nope}.x.com/", URL, 8, "nope", []string{"unknown placeholder"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := Compile(tt.src, tt.kind, vars)
			if err == nil {
				t.Fatalf("Compile(%q) = %v, want an error", tt.src, tmpl.Placeholders())
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T %v is not an *Error", err, err)
			}
			if e.Offset != tt.offset || e.Placeholder != tt.ph {
				t.Errorf("Offset, Placeholder = %d, %q; want %d, %q (%s)", e.Offset, e.Placeholder, tt.offset, tt.ph, e.Msg)
			}
			for _, m := range tt.msg {
				if !strings.Contains(e.Msg, m) {
					t.Errorf("Msg %q does not contain %q", e.Msg, m)
				}
			}
		})
	}
}

func TestCompileNoVars(t *testing.T) {
	for _, vars := range []*Vars{nil, NewVars()} {
		_, err := Compile("a ${x}", Text, vars)
		if err == nil || !strings.Contains(err.Error(), "no placeholders are defined") {
			t.Errorf("err = %v", err)
		}
		tmpl, err := Compile("https://x.com/a", URL, vars)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := tmpl.Expand(nil); err != nil || got != "https://x.com/a" {
			t.Errorf("Expand = %q, %v", got, err)
		}
	}
}

func TestCompileBadKind(t *testing.T) {
	_, err := Compile("x", Kind(7), NewVars())
	var e *Error
	if !errors.As(err, &e) || e.Offset != -1 {
		t.Errorf("err = %#v", err)
	}
}

func TestPositions(t *testing.T) {
	vars := testVars(t)
	P, Q, V, F := PosPath, PosQueryKey, PosQueryValue, PosFragment
	tests := []struct {
		src  string
		kind Kind
		want []Position
	}{
		{procoreTokenURI, URL, []Position{PosPrefix, V, V, V, V}},
		{"https://x.com/a/${id}/b?${q}=${id}&x=${q}#${frag}", URL, []Position{P, Q, V, V, F}},
		{"https://x.com/a/${id}?a&${q}&b=c=${id}", URL, []Position{P, Q, V}},
		{"https://x.com/${id}#a?b=${q}&${id}", URL, []Position{P, F, F}},
		{"${BaseUrl}", URL, []Position{PosPrefix}},
		{"${BaseUrl}?q=${q}", URL, []Position{PosPrefix, V}},
		{"${BaseUrl}#${frag}", URL, []Position{PosPrefix, F}},
		{"${BaseUrl}/x?next=${LoginUrl}", URL, []Position{PosPrefix, V}},
		{"/rest/v1.0/projects/${id}", URL, []Position{P}},
		{"projects/${id}?q=${q}", URL, []Position{P, V}},
		{"urn:x:${id}", URL, []Position{P}},
		{"https://x.com/a/${LoginUrl}", URL, []Position{P}},
		{"https://x.com/é/${id}?ä=${q}#ö${frag}", URL, []Position{P, V, F}}, // multi-byte literals
		{"${CompanyId}", Text, []Position{PosText}},
		{"Bearer ${code} ${LoginUrl}", Text, []Position{PosText, PosText}},
	}
	for _, tt := range tests {
		tmpl, err := Compile(tt.src, tt.kind, vars)
		if err != nil {
			t.Errorf("Compile(%q): %v", tt.src, err)
			continue
		}
		var got []Position
		for _, p := range tmpl.Placeholders() {
			got = append(got, p.Pos)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("Compile(%q) positions = %v, want %v", tt.src, got, tt.want)
		}
	}
}

func TestPlaceholders(t *testing.T) {
	vars := testVars(t)
	tmpl, err := Compile(procoreTokenURI, URL, vars)
	if err != nil {
		t.Fatal(err)
	}
	if tmpl.Source() != procoreTokenURI || tmpl.Kind() != URL {
		t.Errorf("Source, Kind = %q, %v", tmpl.Source(), tmpl.Kind())
	}
	ps := tmpl.Placeholders()
	var names []string
	for _, p := range ps {
		names = append(names, p.Name)
		if got := procoreTokenURI[p.Offset : p.Offset+len("${")+len(p.Name)+len("}")]; got != "${"+p.Name+"}" {
			t.Errorf("placeholder %q at offset %d: source there is %q", p.Name, p.Offset, got)
		}
		if i, _ := vars.Lookup(p.Name); i != p.Var {
			t.Errorf("placeholder %q: Var = %d, want %d", p.Name, p.Var, i)
		}
	}
	// Names are as written, not as the Vars spell them.
	if want := []string{"LoginUrl", "code", "clientId", "clientSecret", "redirectUri"}; !slices.Equal(names, want) {
		t.Errorf("names = %q, want %q", names, want)
	}
	ps[0].Name = "changed"
	if tmpl.Placeholders()[0].Name != "LoginUrl" {
		t.Error("Placeholders returns the template's own slice")
	}

	for name, want := range map[string]bool{"clientid": true, "CLIENTSECRET": true, "code": true, "loginurl": true, "BaseUrl": false, "State": false} {
		i, _ := vars.Lookup(name)
		if got := tmpl.Uses(i); got != want {
			t.Errorf("Uses(%s) = %v, want %v", name, got, want)
		}
	}
	if tmpl.Uses(-1) || tmpl.Uses(vars.Len()) {
		t.Error("Uses of an index that is no variable is true")
	}
}

func TestErrorString(t *testing.T) {
	tests := []struct {
		e    Error
		want string
	}{
		{Error{Offset: 14, Placeholder: "nope", Msg: "unknown placeholder ${nope}"}, "template: byte 14: unknown placeholder ${nope}"},
		{Error{Offset: 0, Msg: "m"}, "template: byte 0: m"},
		{Error{Offset: -1, Msg: "m"}, "template: m"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestStrings(t *testing.T) {
	if URL.String() != "URL" || Text.String() != "Text" || Kind(9).String() != "Kind(9)" {
		t.Error("Kind.String")
	}
	if PosQueryValue.String() != "query value" || PosPrefix.String() != "prefix" || Position(42).String() != "Position(42)" {
		t.Error("Position.String")
	}
}
