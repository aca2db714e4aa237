// Command connector validates connection definitions, runs OAuth flows and
// calls APIs through them. See README.md for the tour.
package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/connector-engine/connector/definitions"
)

// Exit statuses: 0 success, 1 the input was invalid or the operation failed,
// 2 the command line was wrong (an unknown command or flag, a bad argument),
// 4 the connection needs authorizing again (connector connect), as gh does
// for auth. README.md lists them.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
	exitReauth = 4
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// exitError carries an exit status through cobra. A nil err means the
// command already said what it had to.
type exitError struct {
	code int
	err  error
	hint string // what to run for help; "" means connector --help
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// failed reports that the command's output already explained the failure.
func failed() error { return &exitError{code: exitFailed} }

// app holds what every subcommand shares.
type app struct {
	stdout, stderr io.Writer
	definitionsDir []string
	defs           *definitions.Set // loaded once per run
	verbose        bool
	jq             string // --jq
}

func run(args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			// Errors quote servers (error bodies, descriptions): escape
			// what a terminal would act on.
			fmt.Fprintf(stderr, "connector: %s\n", safeText(ee.err.Error()))
			if ee.code == exitUsage {
				fmt.Fprintln(stderr, "Run '"+cmp.Or(ee.hint, "connector --help")+"' for usage.")
			}
		}
		return ee.code
	}
	fmt.Fprintf(stderr, "connector: %s\n", safeText(err.Error()))
	if strings.HasPrefix(err.Error(), "unknown command ") {
		// cobra's own error for a mistyped command name: a usage error.
		fmt.Fprintln(stderr, "Run 'connector --help' for usage.")
		return exitUsage
	}
	return exitFailed
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "connector",
		Short: "Connect to SaaS APIs described by YAML connection definitions",
		Long: `connector runs the OAuth flows and API calls that connection definitions
describe. Procore definitions are built in; --definitions adds your own.

Commands that print data take -o (json, ndjson, table or yaml; text where
the output is one value). $CONNECTOR_CONNECTION stands in for --connection
or --connection-string, $CONNECTOR_DEFINITIONS for --definitions and
$CONNECTOR_STORE for --store.

Exit status: 0 ok, 1 failed, 2 bad command line (an unknown command or
flag, a bad argument), 4 the connection needs authorizing again (run
connector connect).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringArrayVar(&a.definitionsDir, "definitions", nil,
		"a directory or file of definitions to add to (or override) the built-in ones; repeatable (default: $"+EnvDefinitions+", paths separated by '"+string(filepath.ListSeparator)+"')")
	root.PersistentFlags().BoolVarP(&a.verbose, "verbose", "v", false,
		"print each HTTP exchange on stderr (method, URL, status, duration, retry and rate-limit hints, token requests), secrets as ***")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &exitError{code: exitUsage, err: err}
	})
	root.AddCommand(
		a.validateCommand(),
		a.definitionsCommand(),
		a.renderCommand(),
		a.connectCommand(),
		a.tokenCommand(),
		a.refreshCommand(),
		a.revokeCommand(),
		a.connectionsCommand(),
		a.actionsCommand(),
		a.callCommand(),
		a.requestCommand(),
		a.emulateCommand(),
		a.demoCommand(),
		a.serveCommand(),
	)
	for _, c := range root.Commands() {
		wrapArgs(c)
	}
	return root
}

// wrapArgs turns cobra's argument-count errors into usage errors (exit 2).
func wrapArgs(c *cobra.Command) {
	if c.Args == nil {
		return
	}
	check := c.Args
	c.Args = func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return &exitError{code: exitUsage, err: fmt.Errorf("%s: %w", cmd.CommandPath(), err)}
		}
		return nil
	}
}

// EnvDefinitions names definition files or directories to add when
// --definitions is not given, separated like $PATH.
const EnvDefinitions = "CONNECTOR_DEFINITIONS"

// definitionPaths is --definitions, else $CONNECTOR_DEFINITIONS.
func (a *app) definitionPaths() []string {
	if len(a.definitionsDir) > 0 {
		return a.definitionsDir
	}
	var paths []string
	for _, p := range filepath.SplitList(os.Getenv(EnvDefinitions)) {
		if p != "" {
			paths = append(paths, p)
		}
	}
	return paths
}

// definitionFiles reads the files of definitionPaths, each once: a file
// named both directly and through its directory (--definitions defs
// --definitions defs/x.yaml), or a flag cobra parsed twice (shell
// completion does), would otherwise clash with itself.
func (a *app) definitionFiles() ([]definitions.File, error) {
	files, err := definitions.ReadFiles(a.definitionPaths()...)
	if err != nil {
		return nil, err
	}
	var (
		out  []definitions.File
		kept []os.FileInfo
	)
next:
	for _, f := range files {
		fi, err := os.Stat(f.Path)
		if err == nil {
			for _, k := range kept {
				if os.SameFile(fi, k) {
					continue next
				}
			}
			kept = append(kept, fi)
		}
		out = append(out, f)
	}
	return out, nil
}

// definitions returns the built-in definitions plus those of --definitions
// (or $CONNECTOR_DEFINITIONS).
func (a *app) definitions() (*definitions.Set, error) {
	if a.defs != nil {
		return a.defs, nil
	}
	if len(a.definitionPaths()) == 0 {
		return definitions.Builtin(), nil
	}
	files, err := a.definitionFiles()
	if err != nil {
		return nil, &exitError{code: exitUsage, err: err}
	}
	set, err := definitions.Parse(definitions.Builtin(), files...)
	if err != nil {
		var de *definitions.Error
		if errors.As(err, &de) {
			for _, d := range de.Diagnostics {
				fmt.Fprintln(a.stderr, d.String())
			}
			return nil, &exitError{code: exitFailed, err: errors.New("the definitions given with --definitions are invalid; 'connector validate' them for details")}
		}
		return nil, &exitError{code: exitUsage, err: err}
	}
	a.defs = set
	return set, nil
}
