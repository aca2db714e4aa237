package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/definitions"
)

// chooser asks the person connecting which candidate of a learn request
// with choose: ask to keep (a Xero organisation, a Procore company): the
// labels go to stderr, the answer (a number) comes from in.
func (a *app) chooser(in io.Reader) connector.Chooser {
	return func(ctx context.Context, c connector.Choice) (int, error) {
		fmt.Fprintf(a.stderr, "The provider offers %d values for %s:\n", len(c.Options), c.Title)
		for i, o := range c.Options {
			label := o.Label
			switch {
			case label != "" && o.Value != "":
				label = fmt.Sprintf("%s (%s)", safeText(o.Label), safeText(o.Value))
			case label == "":
				label = safeText(o.Value)
			default:
				label = safeText(label)
			}
			fmt.Fprintf(a.stderr, "  %d. %s\n", i+1, label)
		}
		fmt.Fprintf(a.stderr, "Which one (1-%d)? ", len(c.Options))
		line, err := bufio.NewReader(io.LimitReader(in, 64)).ReadString('\n')
		if err != nil && line == "" {
			return 0, fmt.Errorf("no choice was made for %s (stdin: %v); run connect in a terminal, or set %s in the connection", c.Field, err, c.Field)
		}
		n, err := strconv.Atoi(strings.TrimSpace(line))
		if err != nil || n < 1 || n > len(c.Options) {
			return 0, fmt.Errorf("%q is not a number from 1 to %d; run connect again", strings.TrimSpace(line), len(c.Options))
		}
		return n - 1, nil
	}
}

// learnedValues is what connections shows of a record's learned values:
// by name, a secret one (by the definition) as ***.
func learnedValues(defs *definitions.Set, r store.Record) map[string]string {
	if len(r.Token.Values) == 0 {
		return nil
	}
	var d *definitions.Definition
	if defs != nil {
		d, _ = defs.Lookup(r.Definition)
	}
	out := make(map[string]string, len(r.Token.Values))
	for k, v := range r.Token.Values {
		if d == nil {
			v = "***" // no definition to say which are secret
		} else if f, ok := d.Field(k); !ok || f.Secret {
			v = "***"
		}
		out[k] = v
	}
	return out
}

// valuesText is learnedValues as one column: Name=value, sorted.
func valuesText(vals map[string]string) string {
	if len(vals) == 0 {
		return "-"
	}
	var parts []string
	for k, v := range vals {
		parts = append(parts, safeText(k+"="+v))
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}
