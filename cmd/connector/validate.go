package main

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/spf13/cobra"

	"github.com/connector-engine/connector/definitions"
)

func (a *app) validateCommand() *cobra.Command {
	var format, legacy string
	cmd := &cobra.Command{
		Use:   "validate [PATH...]",
		Short: "Check definition files and directories; with no path, the built-in definitions",
		Long: `validate checks connection definitions against the schema and the rules of
the engine, and prints every problem as file:line:column: field: message.
Files may extend the built-in definitions or each other.

Exit status: 0 valid (warnings allowed), 1 invalid, 2 bad command line.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, paths []string) error {
			if legacy != "" {
				format = legacy
			}
			if err := checkOutput(format, validateFormats...); err != nil {
				return err
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
			var diags, acked []definitions.Diagnostic
			var err error
			if len(files) == 0 {
				set = definitions.Builtin()
				diags, acked = set.Warnings(), set.Acknowledged()
			} else if base, berr := a.validationBase(files); berr != nil {
				return berr
			} else if set, err = definitions.Parse(base, files...); err != nil {
				var de *definitions.Error
				if !errors.As(err, &de) {
					return err
				}
				diags, acked = de.Diagnostics, de.Acknowledged
			} else {
				diags, acked = set.Warnings(), set.Acknowledged()
			}
			return a.reportValidation(format, len(files), set, diags, acked)
		},
	}
	a.bindOutput(cmd, &format, "text", validateFormats...)
	cmd.Flags().StringVar(&legacy, "format", "", "the old name of -o")
	_ = cmd.Flags().MarkHidden("format")
	return cmd
}

// validationBase is what the files being validated may extend: the built-in
// definitions plus those of --definitions (or $CONNECTOR_DEFINITIONS), less
// the files being validated themselves.
func (a *app) validationBase(files []definitions.File) (*definitions.Set, error) {
	if len(a.definitionPaths()) == 0 {
		return definitions.Builtin(), nil
	}
	extra, err := a.definitionFiles()
	if err != nil {
		return nil, &exitError{code: exitUsage, err: err}
	}
	var base []definitions.File
next:
	for _, e := range extra {
		if ei, err := os.Stat(e.Path); err == nil {
			for _, f := range files {
				if fi, err := os.Stat(f.Path); err == nil && os.SameFile(ei, fi) {
					continue next
				}
			}
		}
		base = append(base, e)
	}
	set, err := definitions.Parse(definitions.Builtin(), base...)
	if err != nil {
		var de *definitions.Error
		if errors.As(err, &de) {
			for _, d := range de.Diagnostics {
				fmt.Fprintln(a.stderr, d.String())
			}
			return nil, &exitError{code: exitFailed, err: errors.New("the definitions given with --definitions are invalid, so the files cannot be checked against them; validate those first")}
		}
		return nil, &exitError{code: exitUsage, err: err}
	}
	return set, nil
}

// validateFormats: text prints the problems on stderr, the others a report
// on stdout.
var validateFormats = []string{"text", "json", "yaml"}

// reportValidation prints the findings. Acknowledged warnings (a
// definition's ignore_warnings) are counted but not printed in text, and
// listed with their reason in the other formats.
func (a *app) reportValidation(format string, nfiles int, set *definitions.Set, diags, acked []definitions.Diagnostic) error {
	nerr, nwarn := 0, 0
	for _, d := range diags {
		if d.Severity == definitions.SeverityError {
			nerr++
		} else {
			nwarn++
		}
	}
	valid := nerr == 0
	if format != "text" || a.jq != "" {
		report := struct {
			Valid        bool                     `json:"valid"`
			Errors       int                      `json:"errors"`
			Warnings     int                      `json:"warnings"`
			Acknowledged int                      `json:"acknowledged"`
			Diagnostics  []definitions.Diagnostic `json:"diagnostics"`
		}{valid, nerr, nwarn, len(acked), append(slices.Clone(diags), acked...)}
		if report.Diagnostics == nil {
			report.Diagnostics = []definitions.Diagnostic{}
		}
		if err := a.emit(format, report); err != nil {
			return err
		}
	} else {
		for _, d := range diags {
			fmt.Fprintln(a.stderr, d.String())
		}
		what, inSet := "the built-in definitions", "in the set"
		if nfiles > 0 {
			// The set counts what the files may extend: a newcomer's one
			// file would otherwise be "4 definitions" unexplained.
			what, inSet = plural(nfiles, "file"), "in the set, built-ins included"
		}
		warnings := plural(nwarn, "warning")
		if len(acked) > 0 {
			warnings += fmt.Sprintf(" (and %d acknowledged in ignore_warnings)", len(acked))
		}
		if valid {
			fmt.Fprintf(a.stdout, "ok: %s valid (%s %s), %s\n", what, plural(len(set.Names()), "definition"), inSet, warnings)
		} else {
			fmt.Fprintf(a.stderr, "invalid: %s, %s in %s\n", plural(nerr, "error"), warnings, what)
		}
		if nwarn > 0 {
			fmt.Fprintf(a.stderr, "to acknowledge a warning you have weighed, list its code with the reason in the definition: ignore_warnings: {code: reason} (%s#warnings)\n", definitions.DocFile)
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
