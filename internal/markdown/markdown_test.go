package markdown_test

import (
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/connector-engine/connector/internal/markdown"
)

func TestSlug(t *testing.T) {
	for _, tc := range []struct{ heading, want string }{
		{"Go quick start", "go-quick-start"},
		{"The device grant on the emulator", "the-device-grant-on-the-emulator"},
		{"`auth.oauth.dpop`", "authoauthdpop"},
		{"Performance (`go test -bench 'BenchmarkProxy$'`)", "performance-go-test--bench-benchmarkproxy"},
		{"keep_alive", "keep_alive"},
		{"Über die Verbindung", "über-die-verbindung"},
		{"  Trailing  ", "trailing"},
	} {
		if got := markdown.Slug(tc.heading); got != tc.want {
			t.Errorf("Slug(%q) = %q, want %q", tc.heading, got, tc.want)
		}
	}
}

func TestAnchorsAndLinks(t *testing.T) {
	page := strings.Join([]string{
		"# Title",
		"See [the part](#part) and ![a picture](img/a.png \"A\").",
		"```sh",
		"# not a heading [nor a link](nowhere.md)",
		"```",
		"## Part",
		"## Part",
		"Inline `[x](code.md)` is code; <a id=\"custom\"></a>[out](https://example.com/x).",
	}, "\n")
	a := markdown.Anchors(page)
	for _, id := range []string{"title", "part", "part-1", "custom"} {
		if _, ok := a[id]; !ok {
			t.Errorf("anchor %q missing from %v", id, a)
		}
	}
	if _, ok := a["not-a-heading-nor-a-link"]; ok {
		t.Error("a line in a code block was read as a heading")
	}
	var got []string
	for _, l := range markdown.Links(page) {
		got = append(got, l.Target)
	}
	if want := []string{"#part", "img/a.png", "https://example.com/x"}; !slices.Equal(got, want) {
		t.Errorf("links %q, want %q", got, want)
	}
}

// TestRelativeLinksResolve: every relative link in the repository's
// Markdown files names a file or directory that exists, and a link into a
// Markdown page (or within one) names an anchor that page has. Links to
// other sites are not followed (tests stay on loopback).
func TestRelativeLinksResolve(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	pages := map[string]string{}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".md") {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			pages[path] = string(data)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := pages[filepath.Join(root, "README.md")]; !ok {
		t.Fatalf("no README.md under %s: the walk did not start at the repository's root", root)
	}
	anchors := map[string]map[string]string{}
	anchorsOf := func(path string) map[string]string {
		if a, ok := anchors[path]; ok {
			return a
		}
		a := markdown.Anchors(pages[path])
		anchors[path] = a
		return a
	}
	checked := 0
	for path, text := range pages {
		rel, _ := filepath.Rel(root, path)
		for _, l := range markdown.Links(text) {
			u, err := url.Parse(l.Target)
			if err != nil {
				t.Errorf("%s:%d: the link %q does not parse: %v", rel, l.Line, l.Target, err)
				continue
			}
			if u.Scheme != "" || u.Host != "" {
				continue
			}
			checked++
			target := path
			if u.Path != "" {
				target = filepath.Join(filepath.Dir(path), filepath.FromSlash(u.Path))
				if _, err := os.Stat(target); err != nil {
					t.Errorf("%s:%d: the link %q names %s, which does not exist", rel, l.Line, l.Target, u.Path)
					continue
				}
			}
			if u.Fragment == "" || !strings.HasSuffix(target, ".md") {
				continue
			}
			if _, ok := anchorsOf(target)[u.Fragment]; !ok {
				trel, _ := filepath.Rel(root, target)
				t.Errorf("%s:%d: the link %q names the anchor #%s, which %s has no heading or <a id> for", rel, l.Line, l.Target, u.Fragment, trel)
			}
		}
	}
	if checked < 50 {
		t.Errorf("only %d relative links checked; the reader lost them", checked)
	}
	t.Logf("%d relative links in %d Markdown files resolve", checked, len(pages))
}
