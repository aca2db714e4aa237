package main

import (
	"io"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/connector-engine/connector/internal/markdown"
)

// readmeSections splits cmd/connector/README.md into its "## " sections,
// keyed by heading text.
func readmeSections(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]string{}
	heading := ""
	var b strings.Builder
	flush := func() { sections[heading] = b.String(); b.Reset() }
	for line := range strings.SplitSeq(string(data), "\n") {
		if h, ok := strings.CutPrefix(line, "## "); ok {
			flush()
			heading = strings.TrimSpace(h)
			continue
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	flush()
	return sections
}

// sharedFlags are documented once, in a section that commands link to.
var sharedFlags = map[string]string{
	"connection": "Connection flags", "connection-string": "Connection flags",
	"store": "Connection flags", "key-file": "Connection flags",
}

// Every command and every flag of the cobra tree is in cmd/connector/README.md:
// a command under "## connector NAME", its flags as `--flag` in that section
// (the connection flags in "## Connection flags", linked from the section),
// the root's persistent flags under "## Global flags". A command or flag
// added without its entry fails here with what to add where.
func TestEveryCommandAndFlagIsDocumented(t *testing.T) {
	sections := readmeSections(t)
	root := (&app{stdout: io.Discard, stderr: io.Discard}).rootCommand()
	root.InitDefaultCompletionCmd()
	root.InitDefaultHelpFlag()

	mentions := func(section, flag string) bool {
		return regexp.MustCompile("`" + `(-[a-zA-Z], )?` + "`?--" + regexp.QuoteMeta(flag) + `\b`).MatchString(section)
	}
	global := sections["Global flags"]
	root.PersistentFlags().VisitAll(func(f *pflag.Flag) {
		if !f.Hidden && !mentions(global, f.Name) {
			t.Errorf("the global flag --%s is not in cmd/connector/README.md: add a row `| `--%s ...` | %s |` to the table under \"## Global flags\"", f.Name, f.Name, f.Usage)
		}
	})

	// Subcommands (completion bash, serve keys create) share the section of
	// their top-level command.
	var walk func(c *cobra.Command, heading string)
	walk = func(c *cobra.Command, heading string) {
		for _, sub := range c.Commands() {
			if sub.Hidden || sub.Name() == "help" {
				continue
			}
			h := heading
			if c == root {
				h = sub.CommandPath()
				checkCommand(t, sections, sub, mentions)
			} else {
				checkFlags(t, sections, h, sub, mentions)
			}
			walk(sub, h)
		}
	}
	walk(root, "")
}

func checkCommand(t *testing.T, sections map[string]string, c *cobra.Command, mentions func(string, string) bool) {
	t.Helper()
	heading := c.CommandPath()
	if _, ok := sections[heading]; !ok {
		t.Errorf("the command %q is not in cmd/connector/README.md: add a section \"## %s\" (what it does, then a | flag | meaning | table) and a row to the table under \"## Commands\"", heading, heading)
		return
	}
	checkFlags(t, sections, heading, c, mentions)
}

func checkFlags(t *testing.T, sections map[string]string, heading string, c *cobra.Command, mentions func(string, string) bool) {
	t.Helper()
	section := sections[heading]
	c.NonInheritedFlags().VisitAll(func(f *pflag.Flag) {
		if f.Hidden || f.Name == "help" {
			return
		}
		if mentions(section, f.Name) {
			return
		}
		if shared, ok := sharedFlags[f.Name]; ok {
			if !mentions(sections[shared], f.Name) {
				t.Errorf("the flag --%s is not in cmd/connector/README.md: add it to the table under \"## %s\"", f.Name, shared)
			}
			if !strings.Contains(section, "(#"+markdown.Slug(shared)+")") {
				t.Errorf("%s takes --%s, but its section \"## %s\" in cmd/connector/README.md does not link to [%s](#%s): add that link",
					c.CommandPath(), f.Name, heading, strings.ToLower(shared), markdown.Slug(shared))
			}
			return
		}
		if !mentions(section, f.Name) {
			short := ""
			if f.Shorthand != "" {
				short = "`-" + f.Shorthand + "`, "
			}
			t.Errorf("the flag --%s of %s is not in cmd/connector/README.md: add a row `| %s`--%s ...` | %s |` to the flags table of \"## %s\"",
				f.Name, c.CommandPath(), short, f.Name, f.Usage, heading)
		}
	})
}
