package main

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/connector-engine/connector/definitions"
)

func (a *app) validateCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "validate [PATH...]",
		Short: "Check definition files and directories; with no path, the built-in definitions",
		Long: `validate checks connection definitions against the schema and the rules of
the engine, and prints every problem as file:line:column: field: message.
Files may extend the built-in definitions or each other.

Exit status: 0 valid (warnings allowed), 1 invalid, 2 bad command line.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, paths []string) error {
			if format != "text" && format != "json" {
				return usageErrorf("--format must be text or json, not %q", format)
			}
			var files []definitions.File
			if len(paths) > 0 {
				var err error
				if files, err = definitions.ReadFiles(paths...); err != nil {
					return &exitError{code: exitUsage, err: err}
				}
				if len(files) == 0 {
					return usageErrorf("no *.yaml or *.yml files under %v", paths)
				}
			}
			var set *definitions.Set
			var diags []definitions.Diagnostic
			var err error
			if len(files) == 0 {
				set = definitions.Builtin()
				diags = set.Warnings()
			} else if set, err = definitions.Parse(definitions.Builtin(), files...); err != nil {
				var de *definitions.Error
				if !errors.As(err, &de) {
					return err
				}
				diags = de.Diagnostics
			} else {
				diags = set.Warnings()
			}
			return a.reportValidation(format, len(files), set, diags)
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "output format: text (problems on stderr) or json (a report on stdout)")
	return cmd
}

func (a *app) reportValidation(format string, nfiles int, set *definitions.Set, diags []definitions.Diagnostic) error {
	nerr, nwarn := 0, 0
	for _, d := range diags {
		if d.Severity == definitions.SeverityError {
			nerr++
		} else {
			nwarn++
		}
	}
	valid := nerr == 0
	if format == "json" {
		report := struct {
			Valid       bool                     `json:"valid"`
			Errors      int                      `json:"errors"`
			Warnings    int                      `json:"warnings"`
			Diagnostics []definitions.Diagnostic `json:"diagnostics"`
		}{valid, nerr, nwarn, diags}
		if report.Diagnostics == nil {
			report.Diagnostics = []definitions.Diagnostic{}
		}
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(report); err != nil {
			return err
		}
	} else {
		for _, d := range diags {
			fmt.Fprintln(a.stderr, d.String())
		}
		what := "the built-in definitions"
		if nfiles > 0 {
			what = plural(nfiles, "file")
		}
		if valid {
			fmt.Fprintf(a.stdout, "ok: %s valid (%s in the set), %s\n", what, plural(len(set.Names()), "definition"), plural(nwarn, "warning"))
		} else {
			fmt.Fprintf(a.stderr, "invalid: %s, %s in %s\n", plural(nerr, "error"), plural(nwarn, "warning"), what)
		}
	}
	if !valid {
		return failed()
	}
	return nil
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}
