// Command loader loads connection definitions the way a platform runtime
// would at start-up: the built-in definitions plus those of the directories
// given, every problem reported in one go, warnings shown but not fatal.
//
//	go run ./examples/loader examples
//
// It then lists what it loaded and, to show how a runtime starts a code
// flow, expands one definition's initiate (or V1 authorize) URI for a sample
// tenant: salesforce unless -show names another, with -set for more values.
//
// Exit status: 0 loaded, 1 the definitions are invalid or the URI cannot be
// expanded, 2 bad command line.
package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/connector-engine/connector/definitions"
)

// sampleTenant holds the field values of an imaginary customer for the
// examples that need some before a URI can be expanded.
var sampleTenant = map[string]map[string]string{
	"salesforce":               {"InstanceUrl": "https://acme.my.salesforce.com"},
	"github-enterprise-server": {"ServerUrl": "https://github.acme.example"},
}

// The platform's own OAuth client registration, as a runtime would know it.
const (
	sampleClientID    = "sample-client-id"
	sampleRedirectURI = "https://platform.example/oauth/callback"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loader", flag.ContinueOnError)
	fs.SetOutput(stderr)
	show := fs.String("show", "salesforce", "the code-flow definition whose authorization URI to expand; empty for none")
	env := fs.String("env", "", "the environment to expand it in (default: the definition's default)")
	sets := map[string]string{}
	fs.Func("set", "a placeholder or field value, Name=value (repeatable)", func(kv string) error {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return errors.New("write Name=value")
		}
		sets[k] = v
		return nil
	})
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: loader [-show NAME] [-env ENV] [-set Name=value]... DIR...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}

	set, err := definitions.Load(fs.Args()...)
	if err != nil {
		var de *definitions.Error
		if !errors.As(err, &de) {
			fmt.Fprintf(stderr, "loader: %v\n", err) // unreadable path: nothing was checked
			return 1
		}
		for _, d := range de.Diagnostics {
			fmt.Fprintln(stderr, d)
		}
		fmt.Fprintln(stderr, "loader: the definitions are invalid; fix the errors above")
		return 1
	}
	// A runtime keeps going on warnings (risky but legal choices) and logs them.
	for _, w := range set.Warnings() {
		fmt.Fprintln(stderr, w)
	}

	list(stdout, set)
	if *show == "" {
		return 0
	}
	if err := expand(stdout, set, *show, *env, sets); err != nil {
		fmt.Fprintf(stderr, "loader: %v\n", err)
		return 1
	}
	return 0
}

// list prints one line per definition.
func list(w io.Writer, set *definitions.Set) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSCHEME\tGRANT\tENVIRONMENTS\tSOURCE")
	for _, d := range set.All() {
		grant := "-"
		if g := d.GrantType(); g != "" {
			grant = string(g)
		}
		var envs []string
		for _, e := range d.Environments {
			name := e.Name
			if name == d.DefaultEnvironment && len(d.Environments) > 1 {
				name += "*"
			}
			envs = append(envs, name)
		}
		src := d.Source
		if d.Extends != "" {
			src += " (extends " + d.Extends + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.Name, d.Auth.Scheme, grant, strings.Join(envs, ","), src)
	}
	tw.Flush()
}

// expand prints the URL a runtime would send a user of the sample tenant to.
func expand(w io.Writer, set *definitions.Set, name, env string, sets map[string]string) error {
	d, err := set.Lookup(name)
	if err != nil {
		return err
	}
	o := d.Auth.OAuth
	if o == nil || o.GrantType != definitions.GrantAuthorizationCode {
		return fmt.Errorf("definition %s is not a code flow, so it has no authorization URI to expand", d.Name)
	}
	t := o.InitiateURI
	if t == nil {
		t = o.AuthorizeURI // V1
	}

	assign := map[string]string{
		"ClientId":    sampleClientID,
		"RedirectUri": sampleRedirectURI,
		"State":       randomString(),
		"Scope":       strings.Join(o.Scopes, o.ScopeSeparator),
	}
	if o.PKCE {
		// The verifier stays with the runtime until the code exchange; only
		// its S256 hash goes to the browser.
		sum := sha256.Sum256([]byte(randomString()))
		assign["CodeChallenge"] = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	for k, v := range sampleTenant[d.Name] {
		assign[k] = v
	}
	for k, v := range sets {
		assign[k] = v
	}
	vals, err := d.Values(env, assign)
	if err != nil {
		return err
	}
	// Expand validates every value; Redacted is what may be printed or
	// logged, with secret values masked. The engine adds the standard OAuth
	// parameters a URI leaves out when it sends the user; this is the
	// template alone.
	if _, err := t.Expand(vals); err != nil {
		return fmt.Errorf("definition %s: %w", d.Name, err)
	}
	e, _ := d.Environment(env)
	fmt.Fprintf(w, "\n%s, environment %s: a user of the sample tenant is sent to\n%s\n", d.Name, e.Name, t.Redacted(vals))
	return nil
}

// randomString returns 32 random bytes, base64url-encoded (a state or a PKCE
// verifier).
func randomString() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand since Go 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}
