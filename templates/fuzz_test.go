package templates

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

// FuzzCompile checks that any source compiles or fails cleanly, and that a
// compiled URL template keeps its shape whatever the values.
func FuzzCompile(f *testing.F) {
	f.Add(procoreTokenURI, false)
	f.Add("Bearer ${code}", true)
	f.Fuzz(func(t *testing.T, src string, text bool) {
		vars := testVars(t)
		kind := URL
		if text {
			kind = Text
		}
		tmpl, err := Compile(src, kind, vars)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not an *Error", err)
			}
			if e.Offset != -1 && (e.Offset < 0 || e.Offset >= len(src) || !strings.HasPrefix(src[e.Offset:], "${")) {
				t.Fatalf("error offset %d does not point at a placeholder: %v", e.Offset, e)
			}
			return
		}

		// The placeholders, with the literal text between them, make up the source.
		var b strings.Builder
		last := 0
		for _, p := range tmpl.Placeholders() {
			if p.Offset < last {
				t.Fatalf("placeholder %+v out of order", p)
			}
			b.WriteString(src[last:p.Offset])
			b.WriteString("${" + p.Name + "}")
			last = p.Offset + len("${") + len(p.Name) + len("}")
		}
		b.WriteString(src[min(last, len(src)):])
		if b.String() != src {
			t.Fatalf("placeholders rebuild %q, not the source", b.String())
		}

		// Escaped values contribute no URL delimiters: the output has as
		// many as it has with harmless values.
		plain := make([]string, vars.Len())
		hostile := make([]string, vars.Len())
		for i := range plain {
			plain[i], hostile[i] = "v", "a/b?c#d&e=f g%zz@x:y;\r\n"
			if kind == URL && vars.Flags(i)&URLValued != 0 {
				plain[i], hostile[i] = "https://h.example", "https://h.example"
			}
		}
		want, err := tmpl.Expand(plain)
		if err != nil {
			t.Fatalf("Expand with plain values: %v", err)
		}
		_ = tmpl.Redacted(hostile)
		got, err := tmpl.Expand(hostile)
		if kind == Text {
			// The hostile values hold line breaks, so any placeholder refuses them.
			if (err == nil) != (len(tmpl.Placeholders()) == 0) {
				t.Fatalf("Text template with %d placeholders: Expand(hostile) = %q, %v", len(tmpl.Placeholders()), got, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Expand with hostile values: %v", err)
		}
		for _, d := range []string{"/", "?", "#", "&", "=", "@", ":", ";", " ", "\r", "\n"} {
			if strings.Count(got, d) != strings.Count(want, d) {
				t.Fatalf("a value added %q: %q vs %q", d, got, want)
			}
		}
	})
}

const fuzzExpandSrc = "${BaseUrl}/rest/v1.0/projects/${id}/rfis?company_id=${CompanyId}&q=${q}#${frag}"

// FuzzExpand checks that no value changes a URL's host, path segments, query
// parameters or fragment, and that each value decodes back to itself.
func FuzzExpand(f *testing.F) {
	f.Add("https://api.procore.com", "42", "562949953421312", "a&b=c#d", "top")
	f.Fuzz(func(t *testing.T, base, id, company, q, frag string) {
		vars := testVars(t)
		tmpl, err := Compile(fuzzExpandSrc, URL, vars)
		if err != nil {
			t.Fatal(err)
		}
		values := valuesFor(t, vars, map[string]string{"BaseUrl": base, "id": id, "CompanyId": company, "q": q, "frag": frag})
		out, err := tmpl.Expand(values)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error is %T: %v", err, err)
			}
			// ${id} is refused only when it would be a dot segment.
			if e.Placeholder != "BaseUrl" && (e.Placeholder != "id" || (id != "." && id != "..")) {
				t.Fatalf("error not about ${BaseUrl} or a dot-segment ${id}: %v", err)
			}
			return
		}

		baseURL, err := url.Parse(base)
		if err != nil {
			t.Fatalf("accepted BaseUrl %q that url.Parse rejects: %v", base, err)
		}
		u, err := url.Parse(out)
		if err != nil {
			t.Fatalf("url.Parse(%q): %v", out, err)
		}
		if u.Scheme != baseURL.Scheme || (u.Scheme != "http" && u.Scheme != "https") || u.Host != baseURL.Host || u.User != nil {
			t.Fatalf("%q: scheme, host, user = %q, %q, %v; BaseUrl has %q, %q", out, u.Scheme, u.Host, u.User, baseURL.Scheme, baseURL.Host)
		}

		path := u.EscapedPath()
		wantSlashes := strings.Count(strings.TrimSuffix(baseURL.EscapedPath(), "/"), "/") + strings.Count("/rest/v1.0/projects/${id}/rfis", "/")
		if got := strings.Count(path, "/"); got != wantSlashes {
			t.Fatalf("%q: path %q has %d slashes, want %d", out, path, got, wantSlashes)
		}
		segs := strings.Split(path, "/")
		idSeg := segs[len(segs)-2]
		if idSeg == "." || idSeg == ".." {
			t.Fatalf("%q: id made a dot segment", out)
		}
		if got, err := url.PathUnescape(idSeg); err != nil || got != id {
			t.Fatalf("%q: id segment %q decodes to %q, %v; want %q", out, idSeg, got, err, id)
		}

		query, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			t.Fatalf("%q: query: %v", out, err)
		}
		if len(query) != 2 || len(query["company_id"]) != 1 || len(query["q"]) != 1 {
			t.Fatalf("%q: query parameters %v, want company_id and q once each", out, query)
		}
		if query.Get("company_id") != company || query.Get("q") != q {
			t.Fatalf("%q: query values %q, %q; want %q, %q", out, query.Get("company_id"), query.Get("q"), company, q)
		}
		if u.Fragment != frag {
			t.Fatalf("%q: fragment %q, want %q", out, u.Fragment, frag)
		}
	})
}
