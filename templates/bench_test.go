package templates

import (
	"strings"
	"testing"
	"text/template"

	"github.com/valyala/fasttemplate"
)

// The Procore authorization-code token request, with a secret that needs
// escaping.
var benchInput = map[string]string{
	"LoginUrl":     "https://login.procore.com",
	"code":         "8f1c2d3e4b5a69788796a5b4c3d2e1f0a1b2c3d4e5f60718293a4b5c6d7e8f90",
	"clientId":     "b3a1f5e6d7c8b9a0f1e2d3c4b5a69788796a5b4c3d2e1f0a1b2c3d4e5f607182",
	"clientSecret": "s3cr3t&=+/9f8e7d6c5b4a3928171605f4e3d2c1b0a9f8e7d6c5b4a39281716",
	"redirectUri":  "http://127.0.0.1:8765/callback",
}

func benchValues(t testing.TB, vars *Vars) []string {
	return valuesFor(t, vars, benchInput)
}

// BenchmarkExpand compares Expand with raw fasttemplate (no escaping at all)
// and text/template on the same token request URI.
func BenchmarkExpand(b *testing.B) {
	b.Run("templates", func(b *testing.B) {
		vars := testVars(b)
		tmpl, err := Compile(procoreTokenURI, URL, vars)
		if err != nil {
			b.Fatal(err)
		}
		values := benchValues(b, vars)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := tmpl.Expand(values); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fasttemplate", func(b *testing.B) {
		tmpl := fasttemplate.New(procoreTokenURI, "${", "}")
		m := make(map[string]any, len(benchInput))
		for k, v := range benchInput {
			m[k] = v
		}
		b.ReportAllocs()
		for b.Loop() {
			_ = tmpl.ExecuteString(m)
		}
	})
	b.Run("text_template", func(b *testing.B) {
		src := strings.NewReplacer("${", "{{.", "}", "}}").Replace(procoreTokenURI)
		tmpl := template.Must(template.New("uri").Option("missingkey=error").Parse(src))
		var sb strings.Builder
		b.ReportAllocs()
		for b.Loop() {
			sb.Reset()
			if err := tmpl.Execute(&sb, benchInput); err != nil {
				b.Fatal(err)
			}
			_ = sb.String()
		}
	})
}

// BenchmarkCompile measures loading the token request URI.
func BenchmarkCompile(b *testing.B) {
	vars := testVars(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(procoreTokenURI, URL, vars); err != nil {
			b.Fatal(err)
		}
	}
}
