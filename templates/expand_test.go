package templates

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// hostile values, each of which would break a URL if inserted unescaped.
var hostile = []struct{ in, escaped string }{
	{"a&b=c#d", "a%26b%3Dc%23d"},
	{"../..", "..%2F.."},
	{"%zz", "%25zz"},
	{"a b", "a%20b"},
	{"+", "%2B"},
	{"é", "%C3%A9"},
	{"\xff\xfe", "%FF%FE"},
	{"\r\n", "%0D%0A"},
	{"\x00", "%00"},
	{"?", "%3F"},
	{"/", "%2F"},
	{"@", "%40"},
	{":", "%3A"},
	{"\\", "%5C"},
	{"AZaz09-._~", "AZaz09-._~"},
	{"", ""},
}

func TestExpandEscaping(t *testing.T) {
	vars := testVars(t)
	for _, pos := range []struct {
		name, src, want string // want has %s for the escaped value
	}{
		{"path", "https://x.com/p/${id}/r?a=b", "https://x.com/p/%s/r?a=b"},
		{"path at end", "https://x.com/p/${id}", "https://x.com/p/%s"},
		{"query key", "https://x.com/p?${id}=1&b=2", "https://x.com/p?%s=1&b=2"},
		{"query value", "https://x.com/p?a=${id}&b=2", "https://x.com/p?a=%s&b=2"},
		{"fragment", "https://x.com/p?a=1#${id}", "https://x.com/p?a=1#%s"},
		{"after a prefix", "${BaseUrl}/p/${id}", "https://api.example.com/p/%s"},
	} {
		tmpl, err := Compile(pos.src, URL, vars)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hostile {
			values := valuesFor(t, vars, map[string]string{"id": h.in, "BaseUrl": "https://api.example.com"})
			got, err := tmpl.Expand(values)
			want := strings.Replace(pos.want, "%s", h.escaped, 1)
			if err != nil || got != want {
				t.Errorf("%s: id=%q: Expand = %q, %v; want %q", pos.name, h.in, got, err, want)
			}
		}
	}
}

// TestExpandDotSegments: a value that would make its path segment "." or
// ".." is refused (RFC 3986 6.2.2.2 resolves one even percent-encoded, as
// %2E%2E, which is how it used to be sent); dots that cannot form one are
// sent, escaped where they share a dots-only segment.
func TestExpandDotSegments(t *testing.T) {
	vars := testVars(t)
	const refused = "error"
	tests := []struct {
		src   string
		id, q string
		want  string // refused: an error naming the placeholder and the segment
		seg   string // the segment the error names
	}{
		{"https://x.com/p/${id}/r", ".", "", refused, "."},
		{"https://x.com/p/${id}/r", "..", "", refused, ".."},
		{"https://x.com/p/${id}", "..", "", refused, ".."},
		{"https://x.com/p/${id}?a=b", "..", "", refused, ".."},
		{"https://x.com/p/${id}#f", ".", "", refused, "."},
		{"/${id}", "..", "", refused, ".."},
		{"${BaseUrl}/${id}", "..", "", refused, ".."},
		{"https://x.com/p/${id}/r", "...", "", "https://x.com/p/.../r", ""},
		{"https://x.com/p/${id}/r", ".a", "", "https://x.com/p/.a/r", ""},
		// Two placeholders, or literal dots, sharing a segment.
		{"https://x.com/p/${id}${q}/r", ".", ".", refused, ".."},
		{"https://x.com/p/${id}${q}/r", ".", "", refused, "."},
		{"https://x.com/p/${id}${q}/r", "", "..", refused, ".."},
		{"https://x.com/p/${id}${q}/r", "..", ".", "https://x.com/p/%2E%2E%2E/r", ""},
		{"https://x.com/p/${id}${q}/r", "a", "..", "https://x.com/p/a%2E%2E/r", ""},
		{"https://x.com/p/.${id}/r", ".", "", refused, ".."},
		{"https://x.com/p/.${id}/r", "..", "", "https://x.com/p/.%2E%2E/r", ""},
		// A segment with other literal text cannot become a dot segment.
		{"https://x.com/p/v${id}/r", "..", "", "https://x.com/p/v../r", ""},
		{"https://x.com/p/${id}.json", "..", "", "https://x.com/p/...json", ""},
		// Dots mean nothing outside the path.
		{"https://x.com/p?a=${id}", "..", "", "https://x.com/p?a=..", ""},
		{"https://x.com/p#${id}", ".", "", "https://x.com/p#.", ""},
	}
	for _, tt := range tests {
		tmpl, err := Compile(tt.src, URL, vars)
		if err != nil {
			t.Fatal(err)
		}
		got, err := tmpl.Expand(valuesFor(t, vars, map[string]string{"id": tt.id, "q": tt.q, "BaseUrl": "https://x.com"}))
		if tt.want != refused {
			if err != nil || got != tt.want {
				t.Errorf("%s with id=%q q=%q: Expand = %q, %v; want %q", tt.src, tt.id, tt.q, got, err, tt.want)
			}
			continue
		}
		var e *Error
		name := "id"
		if tt.id == "" {
			name = "q"
		}
		want := fmt.Sprintf("would make its path segment %q: that means this or the parent directory", tt.seg)
		if !errors.As(err, &e) || e.Placeholder != name || !strings.Contains(e.Msg, "the value of ${"+name+"} is ") || !strings.Contains(e.Msg, want) {
			t.Errorf("%s with id=%q q=%q: Expand = %q, %v; want an error about ${%s} containing %q", tt.src, tt.id, tt.q, got, err, name, want)
		}
	}
	// A secret's dots are not quoted.
	sv := NewVars()
	sv.Add("key", Secret)
	tmpl, _ := Compile("https://x.com/${key}", URL, sv)
	if _, err := tmpl.Expand([]string{".."}); err == nil || !strings.Contains(err.Error(), "the value of ${key} is dots, which would make") {
		t.Errorf("secret: %v", err)
	}
}

func TestExpandPrefix(t *testing.T) {
	vars := testVars(t)
	tests := []struct {
		src, base, want string
	}{
		{"${BaseUrl}/oauth/token", "https://login.procore.com", "https://login.procore.com/oauth/token"},
		{"${BaseUrl}/oauth/token", "https://login.procore.com/", "https://login.procore.com/oauth/token"},
		{"${BaseUrl}/rest", "https://x.com/api/", "https://x.com/api/rest"},
		{"${BaseUrl}/rest", "https://x.com/api", "https://x.com/api/rest"},
		{"${BaseUrl}//rest", "https://x.com/", "https://x.com//rest"}, // only one slash is dropped
		{"${BaseUrl}?a=1", "https://x.com/", "https://x.com/?a=1"},
		{"${BaseUrl}", "https://x.com/", "https://x.com/"},
		{"${BaseUrl}", "HTTP://X.com:8080", "HTTP://X.com:8080"},
		{"${BaseUrl}/a", "http://127.0.0.1:8765", "http://127.0.0.1:8765/a"},
		{"${BaseUrl}/a", "https://[::1]:443/v1", "https://[::1]:443/v1/a"},
		{"${BaseUrl}/a", "https://x.com/b%2Fc/d;e=f,g@h:i", "https://x.com/b%2Fc/d;e=f,g@h:i/a"},
		{"${BaseUrl}/a", "https://my_host.example-1.com", "https://my_host.example-1.com/a"},
	}
	for _, tt := range tests {
		tmpl, err := Compile(tt.src, URL, vars)
		if err != nil {
			t.Fatal(err)
		}
		got, err := tmpl.Expand(valuesFor(t, vars, map[string]string{"BaseUrl": tt.base}))
		if err != nil || got != tt.want {
			t.Errorf("%s with BaseUrl=%q: Expand = %q, %v; want %q", tt.src, tt.base, got, err, tt.want)
		}
	}
}

func TestExpandPrefixErrors(t *testing.T) {
	vars := testVars(t)
	tmpl, err := Compile("${BaseUrl}/x?a=${q}", URL, vars)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		base, msg string
	}{
		{"", "is empty"},
		{"ftp://x.com", "not an absolute http:// or https:// URL"},
		{"javascript:alert(1)", "not an absolute http:// or https:// URL"},
		{"//x.com", "not an absolute http:// or https:// URL"},
		{"https:x.com", "not an absolute http:// or https:// URL"},
		{"x.com", "not an absolute http:// or https:// URL"},
		{" https://x.com", "not an absolute http:// or https:// URL"},
		{"https://", "no valid host"},
		{"https:///a", "no valid host"},
		{"https://:443", "no valid host"},
		{"https://x.com:", "no valid host"},
		{"https://x.com:abc", "no valid host"},
		{"https://x.com:1234567", "no valid host"},
		{"https://x.com:80:80", "no valid host"},
		{"https://[::1", "no valid host"},
		{"https://[1.2.3.4]", "no valid host"},
		{"https://[fe80::1%25en0]", "no valid host"},
		{"https://[::1]x", "no valid host"},
		{"https://é.com", "no valid host"},
		{"https://x y.com", "no valid host"},
		{"https://x.com\\@evil.com", "user info"},
		{"https://u:p@x.com", "user info"},
		{"https://x.com@evil.com", "user info"},
		{"https://x.com?a=b", "query or fragment"},
		{"https://x.com/a?", "query or fragment"},
		{"https://x.com#f", "query or fragment"},
		{"https://x.com/a b", "must be percent-encoded"},
		{"https://x.com/%zz", "must be percent-encoded"},
		{"https://x.com/%2", "must be percent-encoded"},
		{"https://x.com/\r\nHost: evil", "must be percent-encoded"},
		{"https://x.com/\x00", "must be percent-encoded"},
		{"https://x.com/\\evil", "must be percent-encoded"},
		{"https://x.com/é", "must be percent-encoded"},
	}
	for _, tt := range tests {
		got, err := tmpl.Expand(valuesFor(t, vars, map[string]string{"BaseUrl": tt.base}))
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("BaseUrl=%q: Expand = %q, %v; want an *Error", tt.base, got, err)
			continue
		}
		if e.Offset != 0 || e.Placeholder != "BaseUrl" || !strings.Contains(e.Msg, "${BaseUrl}") || !strings.Contains(e.Msg, tt.msg) {
			t.Errorf("BaseUrl=%q: error %+v, want one about ${BaseUrl} at 0 containing %q", tt.base, e, tt.msg)
		}
		if tt.base != "" && !strings.Contains(e.Msg, strconv.Quote(tt.base)) {
			t.Errorf("BaseUrl=%q: error %q does not show the (non-secret) value", tt.base, e.Msg)
		}
	}
}

func TestExpandText(t *testing.T) {
	vars := testVars(t)
	tmpl, err := Compile("Bearer ${code}; company=${CompanyId}", Text, vars)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"", "a&b=c#d", "../..", "é \xff", "%zz +?/@:", "\t"} {
		got, err := tmpl.Expand(valuesFor(t, vars, map[string]string{"CompanyId": v, "code": "tok"}))
		if want := "Bearer tok; company=" + v; err != nil || got != want {
			t.Errorf("CompanyId=%q: Expand = %q, %v; want %q", v, got, err, want)
		}
	}
	for _, v := range []string{"1\r\nX-Evil: 1", "1\n", "\r", "a\x00b"} {
		got, err := tmpl.Expand(valuesFor(t, vars, map[string]string{"CompanyId": v}))
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("CompanyId=%q: Expand = %q, %v; want an *Error", v, got, err)
			continue
		}
		if e.Placeholder != "CompanyId" || e.Offset != 24 || !strings.Contains(e.Msg, "${CompanyId}") || !strings.Contains(e.Msg, "line break or NUL") {
			t.Errorf("CompanyId=%q: error %+v", v, e)
		}
		if strings.Contains(e.Msg, "Evil") || strings.Contains(e.Msg, "a\x00b") {
			t.Errorf("error %q repeats the value", e.Msg)
		}
	}
}

// TestErrorsHideSecrets checks that no error shows a Secret variable's value.
func TestErrorsHideSecrets(t *testing.T) {
	vars := testVars(t)
	const secret = "s3cr3t-VALUE"
	tests := []struct {
		src   string
		kind  Kind
		name  string
		value string
	}{
		{"${SecretBase}/x", URL, "SecretBase", "ftp://" + secret},
		{"${SecretBase}/x", URL, "SecretBase", "https://user:" + secret + "@x.com"},
		{"${SecretBase}/x", URL, "SecretBase", "https://x.com/?" + secret},
		{"Bearer ${code}", Text, "code", secret + "\r\nX: 1"},
		{"${ClientSecret}", Text, "ClientSecret", "\x00" + secret},
	}
	for _, tt := range tests {
		tmpl, err := Compile(tt.src, tt.kind, vars)
		if err != nil {
			t.Fatal(err)
		}
		values := valuesFor(t, vars, map[string]string{tt.name: tt.value})
		_, err = tmpl.Expand(values)
		if err == nil {
			t.Errorf("%s: Expand succeeded", tt.src)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: error %q shows the secret", tt.src, err)
		}
		if _, err := tmpl.AppendExpand(nil, values); err == nil || strings.Contains(err.Error(), secret) {
			t.Errorf("%s: AppendExpand error = %v", tt.src, err)
		}
		if r := tmpl.Redacted(values); strings.Contains(r, secret) {
			t.Errorf("%s: Redacted = %q shows the secret", tt.src, r)
		}
	}
}

func TestRedacted(t *testing.T) {
	vars := testVars(t)
	tests := []struct {
		src    string
		kind   Kind
		values map[string]string
		want   string
	}{
		{procoreTokenURI, URL, map[string]string{"LoginUrl": "https://login.procore.com", "code": "c0de", "clientId": "abc", "clientSecret": "s&=+/", "redirectUri": "http://127.0.0.1:8765/callback"},
			"https://login.procore.com/oauth/token?grant_type=authorization_code&code=***&client_id=abc&client_secret=***&redirect_uri=http%3A%2F%2F127.0.0.1%3A8765%2Fcallback"},
		{procoreTokenURI, URL, nil, "/oauth/token?grant_type=authorization_code&code=***&client_id=&client_secret=***&redirect_uri="},
		{"${BaseUrl}/x", URL, map[string]string{"BaseUrl": "not a url\r\n"}, `not a url\r\n/x`},
		{"${SecretBase}/x", URL, map[string]string{"SecretBase": "https://x.com"}, "***/x"},
		{"Bearer ${code}", Text, map[string]string{"code": "tok"}, "Bearer ***"},
		{"X ${CompanyId}", Text, map[string]string{"CompanyId": "1\r\n\x00\x7fé"}, `X 1\r\n\x00\x7Fé`},
	}
	for _, tt := range tests {
		tmpl, err := Compile(tt.src, tt.kind, vars)
		if err != nil {
			t.Fatal(err)
		}
		if got := tmpl.Redacted(valuesFor(t, vars, tt.values)); got != tt.want {
			t.Errorf("%s: Redacted = %q, want %q", tt.src, got, tt.want)
		}
	}
}

func TestExpandValues(t *testing.T) {
	vars := testVars(t)
	tmpl, err := Compile("${LoginUrl}/a?id=${id}", URL, vars)
	if err != nil {
		t.Fatal(err)
	}
	login, _ := vars.Lookup("LoginUrl")
	// A slice too short to hold id gives it the empty value.
	short := make([]string, login+1)
	short[login] = "https://x.com"
	if got, err := tmpl.Expand(short); err != nil || got != "https://x.com/a?id=" {
		t.Errorf("Expand(short) = %q, %v", got, err)
	}
	if _, err := tmpl.Expand(nil); err == nil || !strings.Contains(err.Error(), "${LoginUrl} is empty") {
		t.Errorf("Expand(nil) error = %v", err)
	}
	text, err := Compile("", Text, vars)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := text.Expand(nil); got != "" || err != nil {
		t.Errorf("empty template: Expand = %q, %v", got, err)
	}
}

func TestAppendExpand(t *testing.T) {
	vars := testVars(t)
	tmpl, err := Compile("${LoginUrl}/a/${id}", URL, vars)
	if err != nil {
		t.Fatal(err)
	}
	dst := []byte("GET ")
	got, err := tmpl.AppendExpand(dst, valuesFor(t, vars, map[string]string{"LoginUrl": "https://x.com/", "id": "a b"}))
	if err != nil || string(got) != "GET https://x.com/a/a%20b" {
		t.Errorf("AppendExpand = %q, %v", got, err)
	}
	got, err = tmpl.AppendExpand(dst, valuesFor(t, vars, map[string]string{"LoginUrl": "nope"}))
	if err == nil || string(got) != "GET " {
		t.Errorf("AppendExpand on error = %q, %v; want dst unchanged and an error", got, err)
	}
}

func TestExpandAllocs(t *testing.T) {
	vars := testVars(t)
	tmpl, err := Compile(procoreTokenURI, URL, vars)
	if err != nil {
		t.Fatal(err)
	}
	values := benchValues(t, vars)
	if n := testing.AllocsPerRun(100, func() { _, _ = tmpl.Expand(values) }); n > 1 {
		t.Errorf("Expand allocates %v times, want 1", n)
	}
	buf := make([]byte, 0, 512)
	if n := testing.AllocsPerRun(100, func() { _, _ = tmpl.AppendExpand(buf[:0], values) }); n > 0 {
		t.Errorf("AppendExpand into a large enough buffer allocates %v times, want 0", n)
	}
}
