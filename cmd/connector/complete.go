package main

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/definitions"
)

// Shell completion (connector completion bash|zsh|fish|powershell) offers
// definition names, action names and their inputs, -o values, and for
// --connection the connection files with their stored connections. It never
// prints diagnostics: a half-typed command line is not an error.

// quiet runs fn with the app's stderr discarded, for completion.
func (a *app) quiet() func() {
	saved := a.stderr
	a.stderr = io.Discard
	return func() { a.stderr = saved }
}

// completeDefinitionNames offers definition names for shell completion.
func (a *app) completeDefinitionNames(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	defer a.quiet()()
	set, err := a.definitions()
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	return describedNames(set), cobra.ShellCompDirectiveNoFileComp
}

func describedNames(set *definitions.Set) []string {
	var out []string
	for _, d := range set.All() {
		out = append(out, d.Name+"\t"+d.Title)
	}
	return out
}

// completeActions completes actions DEFINITION [ACTION].
func (a *app) completeActions(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	defer a.quiet()()
	set, err := a.definitions()
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	switch len(args) {
	case 0:
		return describedNames(set), cobra.ShellCompDirectiveNoFileComp
	case 1:
		d, err := set.Lookup(args[0])
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return actionNames(d), cobra.ShellCompDirectiveNoFileComp
	}
	return nil, cobra.ShellCompDirectiveNoFileComp
}

func actionNames(d *definitions.Definition) []string {
	var out []string
	for _, act := range d.Actions {
		out = append(out, act.Name+"\t"+nonEmpty(act.Title, act.Method+" "+act.PathTemplate()))
	}
	return out
}

// completeCall completes call ACTION [input=value ...] from the definition
// of the connection given (--connection, --connection-string or
// $CONNECTOR_CONNECTION): action names first, then NAME= for each input not
// given yet, then an input's enum values.
func (a *app) completeCall(f *connFlags) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(_ *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		defer a.quiet()()
		conn, _, err := a.loadConnection(f)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		d := conn.Definition
		if len(args) == 0 {
			return actionNames(d), cobra.ShellCompDirectiveNoFileComp
		}
		act, err := d.Action(args[0])
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		if name, _, ok := strings.Cut(toComplete, "="); ok {
			for _, in := range act.Inputs {
				if in.Name == name && len(in.Enum) > 0 {
					var out []string
					for _, v := range in.Enum {
						out = append(out, name+"="+fmt.Sprint(v))
					}
					return out, cobra.ShellCompDirectiveNoFileComp
				}
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		given := map[string]bool{}
		for _, arg := range args[1:] {
			k, _, _ := strings.Cut(arg, "=")
			given[k] = true
		}
		var out []string
		for _, in := range act.Inputs {
			if given[in.Name] {
				continue
			}
			desc := strings.ToUpper(nonEmpty(in.Type, "any"))
			if in.Required {
				desc += ", required"
			}
			if in.Description != "" {
				desc += ": " + in.Description
			}
			out = append(out, in.Name+"=\t"+desc)
		}
		return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
	}
}

// completeOutput offers the -o values a command accepts.
func completeOutput(formats ...string) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return formats, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeConnection offers, for --connection, the connection files (YAML)
// in the directory being completed, each described by its definition and,
// when the store holds its record, the record's id and status: which file
// is which stored connection. Never a secret: only names and statuses.
func (a *app) completeConnection(f *connFlags) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(cmd *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		defer a.quiet()()
		defs, err := a.definitions()
		if err != nil {
			return nil, cobra.ShellCompDirectiveDefault
		}
		dir := filepath.Dir(toComplete)
		var files []string
		for _, ext := range []string{"*.yaml", "*.yml"} {
			m, _ := filepath.Glob(filepath.Join(dir, ext))
			files = append(files, m...)
		}
		stored := map[string]store.Record{}
		if st, err := f.openStore(namedStore{}); err == nil {
			if recs, err := st.List(cmd.Context()); err == nil {
				for _, r := range recs {
					stored[r.ID] = r
				}
			}
			st.Close()
		}
		var out []string
		for _, p := range files {
			if !strings.HasPrefix(p, toComplete) && !strings.HasPrefix(p, strings.TrimPrefix(toComplete, "./")) {
				continue
			}
			conn, _, err := connector.LoadConnectionFile(p, defs)
			if err != nil {
				continue // not a connection file, or one that does not load here
			}
			desc := conn.Definition.Name + ", not connected"
			if r, ok := stored[conn.Key()]; ok {
				desc = fmt.Sprintf("%s, %s (%s)", conn.Definition.Name, cmpOr(string(r.Status), "stored"), r.ID)
			}
			out = append(out, p+"\t"+desc)
		}
		if len(out) == 0 {
			return nil, cobra.ShellCompDirectiveDefault // let the shell complete file names
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// bindConn adds the connection flags to c, with --connection's completion.
func (a *app) bindConn(f *connFlags, c *cobra.Command) {
	f.bind(c)
	_ = c.RegisterFlagCompletionFunc("connection", a.completeConnection(f))
}
