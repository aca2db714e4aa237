package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"
)

// One -o flag on every command that prints data: json, ndjson (one item a
// line), table (or text: the human form) and yaml. The flags a command had
// before (--json, --format) stay as hidden aliases.

// bindOutput adds -o to c, defaulting to def, accepting formats, and --jq.
func (a *app) bindOutput(c *cobra.Command, p *string, def string, formats ...string) {
	c.Flags().StringVarP(p, "output", "o", def, "output format: "+strings.Join(formats, ", "))
	_ = c.RegisterFlagCompletionFunc("output", completeOutput(formats...))
	bindJQ(c, &a.jq)
}

// emit writes v as format, or what --jq makes of v as JSON.
func (a *app) emit(format string, v any) error {
	code, err := compileJQ(a.jq)
	if err != nil {
		return err
	}
	if code != nil {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if err := runJQ(a.stdout, code, b); err != nil {
			return &exitError{code: exitFailed, err: err}
		}
		return nil
	}
	return emit(a.stdout, format, v)
}

// checkOutput is the usage error for a format c does not print.
func checkOutput(format string, formats ...string) error {
	if slices.Contains(formats, format) {
		return nil
	}
	return usageErrorf("-o must be one of %s, not %q", strings.Join(formats, ", "), format)
}

// emit writes v (a value, or a slice for ndjson) as format, which is json,
// ndjson or yaml.
func emit(w io.Writer, format string, v any) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "ndjson":
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		var items []json.RawMessage
		if json.Unmarshal(b, &items) != nil {
			items = []json.RawMessage{b}
		}
		for _, it := range items {
			var c bytes.Buffer
			if err := json.Compact(&c, it); err != nil {
				return err
			}
			c.WriteByte('\n')
			if _, err := w.Write(escapeJSONControls(c.Bytes())); err != nil {
				return err
			}
		}
		return nil
	case "yaml":
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		return writeYAML(w, b)
	}
	return fmt.Errorf("output format %q cannot print this", format)
}

// writeYAML writes a JSON document as YAML: numbers stay numbers, keys
// keep their order.
func writeYAML(w io.Writer, doc []byte) error {
	var n yaml.Node
	if err := yaml.Unmarshal(doc, &n); err != nil { // JSON is YAML
		return err
	}
	plainJSONStyle(&n)
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return err
	}
	return enc.Close()
}

// plainJSONStyle drops the flow style and quoting JSON's syntax gave the
// nodes, so they print as block YAML.
func plainJSONStyle(n *yaml.Node) {
	n.Style &^= yaml.FlowStyle
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" {
		n.Style &^= yaml.DoubleQuotedStyle
	}
	for _, c := range n.Content {
		plainJSONStyle(c)
	}
}

// yamlItem writes one listed item as an element of a YAML sequence.
func yamlItem(w io.Writer, item json.RawMessage) error {
	var b bytes.Buffer
	if err := writeYAML(&b, item); err != nil {
		return err
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	for i, l := range lines {
		prefix := "  "
		if i == 0 {
			prefix = "- "
		}
		if _, err := io.WriteString(w, prefix+l+"\n"); err != nil {
			return err
		}
	}
	return nil
}
