package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/connector-engine/connector/definitions"
)

// listFormats are the -o values of the commands that list things.
var listFormats = []string{"table", "json", "ndjson", "yaml"}

func (a *app) definitionsCommand() *cobra.Command {
	var format string
	c := &cobra.Command{
		Use:   "definitions",
		Short: "List the known connection definitions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(format, listFormats...); err != nil {
				return err
			}
			set, err := a.definitions()
			if err != nil {
				return err
			}
			if format != "table" || a.jq != "" {
				type row struct {
					Name         string   `json:"name"`
					Title        string   `json:"title"`
					Scheme       string   `json:"scheme"`
					Version      string   `json:"oauth_version,omitempty"`
					Grant        string   `json:"grant_type,omitempty"`
					Environments []string `json:"environments"`
				}
				rows := []row{}
				for _, d := range set.All() {
					r := row{Name: d.Name, Title: d.Title, Scheme: string(d.Auth.Scheme), Environments: []string{}}
					if o := d.Auth.OAuth; o != nil {
						r.Version, r.Grant = o.Version, string(o.GrantType)
					}
					for _, e := range d.Environments {
						r.Environments = append(r.Environments, e.Name)
					}
					rows = append(rows, r)
				}
				return a.emit(format, rows)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tTITLE\tSCHEME\tVERSION\tGRANT\tENVIRONMENTS")
			for _, d := range set.All() {
				version, grant := "-", "-"
				if o := d.Auth.OAuth; o != nil {
					version, grant = o.Version, string(o.GrantType)
				}
				var envs []string
				for _, e := range d.Environments {
					envs = append(envs, e.Name)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", d.Name, d.Title, d.Auth.Scheme, version, grant, strings.Join(envs, ","))
			}
			return tw.Flush()
		},
	}
	a.bindOutput(c, &format, "table", listFormats...)
	return c
}

func (a *app) renderCommand() *cobra.Command {
	var (
		sets        []string
		env         string
		showSecrets bool
		request     bool
		format      string
	)
	cmd := &cobra.Command{
		Use:   "render NAME URI",
		Short: "Expand one of a definition's URIs with the values given",
		Long: `render expands a definition's URI (initiate_uri, authorize_uri,
token_request_uri, refresh_uri, revoke_uri, base_url, login_url; a session's
login_uri; OAuth 1.0a's request_token_uri and access_token_uri) or a template
of your own, with placeholder values from --set Name=value (Name=${file:PATH}
reads a file), field defaults and the environment. Secret values print as ***
unless --show-secrets is given.`,
		Example: `  connector render procore initiate_uri --set ClientId=abc --set RedirectUri=http://127.0.0.1:8765/callback --set State=xyz
  connector render procore token_request_uri --env sandbox --set ClientSecret=s3cret --show-secrets`,
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: a.completeDefinitionNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(format, renderFormats...); err != nil {
				return err
			}
			set, err := a.definitions()
			if err != nil {
				return err
			}
			d, err := set.Lookup(args[0])
			if err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			assign := map[string]string{}
			files := map[string]string{} // placeholder name (lower case) -> the file its value came from
			for _, kv := range sets {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return usageErrorf("--set %q: write Name=value", redactAssignment(kv))
				}
				if path, isFile := strings.CutPrefix(v, "${file:"); isFile && strings.HasSuffix(path, "}") {
					// As in a connection file: a PEM certificate or key is a file.
					path = strings.TrimSuffix(path, "}")
					if v, err = readSetFile(path); err != nil {
						return &exitError{code: exitFailed, err: fmt.Errorf("--set %s: %w", k, err)}
					}
					files[strings.ToLower(k)] = path
				}
				assign[k] = v
			}
			e, err := d.Environment(env)
			if err != nil {
				return &exitError{code: exitFailed, err: err}
			}
			var t = e.BaseURL
			switch args[1] {
			case "base_url":
			case "login_url":
				if t = e.LoginURL; t == nil {
					return &exitError{code: exitFailed, err: fmt.Errorf("environment %s of %s has no login_url", e.Name, d.Name)}
				}
			default:
				var ok bool
				if t, ok = d.URI(args[1]); !ok {
					if !strings.Contains(args[1], "/") && !strings.Contains(args[1], "$") {
						// Only the URIs this definition has: listing every
						// key the format knows offered ones that then fail.
						keys := []string{"base_url"}
						if e.LoginURL != nil {
							keys = append(keys, "login_url")
						}
						for _, k := range append(slices.Clone(definitions.URIKeys), "login_uri", "request_token_uri", "access_token_uri") {
							if _, has := d.URI(k); has && !slices.Contains(keys, k) {
								keys = append(keys, k)
							}
						}
						sort.Strings(keys)
						if _, err := d.Action(args[1]); err == nil {
							return usageErrorf("%s is an action of %s, not a URI; render expands the definition's URIs (%s) or a template. To see the request the action sends, run connector call %s --dry-run with a connection", args[1], d.Name, strings.Join(keys, ", "), args[1])
						}
						return usageErrorf("definition %s has no %s; choose one of %s, or give a template such as '${BaseUrl}/path'", d.Name, args[1], strings.Join(keys, ", "))
					}
					if t, err = d.Compile(args[1]); err != nil {
						return &exitError{code: exitFailed, err: err}
					}
				}
			}
			// The values after the key: a wrong key is a usage error,
			// whatever the fields (a missing required one would hide it).
			vals, err := d.Values(env, assign)
			if err != nil {
				return &exitError{code: exitFailed, err: err}
			}
			for _, p := range t.Placeholders() {
				if vals[p.Var] != "" {
					continue
				}
				if made, ok := madeInTheFlow[p.Var]; ok {
					// Not a value the user forgot: the engine makes it when
					// the request is sent.
					fmt.Fprintf(a.stderr, "note: ${%s} is %s, so it has none here; give --set %s=... to render one\n", p.Name, made, d.Vars().Name(p.Var))
					continue
				}
				fmt.Fprintf(a.stderr, "note: ${%s} has no value; give --set %s=...\n", p.Name, d.Vars().Name(p.Var))
			}
			if _, err := t.Expand(vals); err != nil {
				return &exitError{code: exitFailed, err: err}
			}
			if _, isURI := d.URI(args[1]); isURI && request && format == "text" {
				p, err := d.Preview(env, args[1], vals, showSecrets)
				if err != nil {
					return &exitError{code: exitFailed, err: err}
				}
				for i, l := range p.TLS { // say which file the certificate and key are read from
					for name, path := range files {
						if j := strings.Index(strings.ToLower(l), "${"+name+"}"); j >= 0 {
							end := j + len(name) + 3
							l = l[:end] + " (" + path + ")" + l[end:]
						}
					}
					p.TLS[i] = l
				}
				fmt.Fprint(a.stdout, p)
				return nil
			}
			if d.Auth.OAuth != nil && (args[1] == "initiate_uri" || args[1] == "authorize_uri") && format == "text" {
				// The URI alone lacks what the engine adds; say so, on
				// stderr, so that stdout stays the expansion.
				fmt.Fprintf(a.stderr, "note: this is %s as the definition writes it; the engine adds the standard parameters (client_id, redirect_uri, response_type, scope, state, PKCE): add --request to see the URL it sends\n", args[1])
			}
			out := t.Redacted(vals)
			if showSecrets {
				out, _ = t.Expand(vals)
			}
			if format == "text" && a.jq == "" {
				fmt.Fprintln(a.stdout, out)
				return nil
			}
			return a.emit(format, struct {
				Definition  string `json:"definition"`
				Environment string `json:"environment"`
				URI         string `json:"uri"`
				Value       string `json:"value"`
			}{d.Name, e.Name, args[1], out})
		},
	}
	cmd.Flags().StringArrayVar(&sets, "set", nil, "a placeholder value, Name=value (repeatable; names match case-insensitively)")
	cmd.Flags().StringVar(&env, "env", "", "the environment (default: the definition's default)")
	cmd.Flags().BoolVar(&showSecrets, "show-secrets", false, "print secret values instead of ***")
	cmd.Flags().BoolVar(&request, "request", false, "for an OAuth, OAuth 1.0a or session login URI, print the whole request the engine sends: method, URL, headers and body with the standard parameters it adds, and the TLS client certificate presented")
	a.bindOutput(cmd, &format, "text", renderFormats...)
	return cmd
}

// madeInTheFlow are the placeholders whose values the engine makes or
// receives while it runs a flow, and what each is.
var madeInTheFlow = map[int]string{
	definitions.VarState:         "the state, made for each authorization attempt",
	definitions.VarCodeChallenge: "the PKCE challenge, made for each authorization attempt",
	definitions.VarCodeVerifier:  "the PKCE verifier, made for each authorization attempt",
	definitions.VarCode:          "the authorization code, which the provider sends back once the user approves",
	definitions.VarRefreshToken:  "the refresh token, which comes from the stored token",
	definitions.VarRandom:        "a random value made for each request",
}

// maxSetFile caps a --set ${file:PATH}: a PEM certificate chain is a few KiB.
const maxSetFile = 1 << 20

// readSetFile reads a --set value from a file, less one trailing newline,
// as a connection file's ${file:PATH} does. Errors name the file, never
// its content.
func readSetFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSetFile+1))
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	if len(b) > maxSetFile {
		return "", fmt.Errorf("%s is larger than %d bytes", path, maxSetFile)
	}
	s := string(b)
	if strings.HasSuffix(s, "\r\n") {
		return s[:len(s)-2], nil
	}
	return strings.TrimSuffix(s, "\n"), nil
}

// renderFormats are render's -o values: text is the expanded URI alone.
var renderFormats = []string{"text", "json", "yaml"}

// redactAssignment keeps a malformed --set argument out of error output in
// case it holds a secret.
func redactAssignment(kv string) string {
	if len(kv) > 12 {
		return kv[:4] + "…"
	}
	return kv
}
