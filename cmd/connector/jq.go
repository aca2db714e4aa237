package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/itchyny/gojq"
	"github.com/spf13/cobra"
)

// --jq filters JSON output with a jq expression (gojq, a maintained Go
// implementation of jq): strings print bare, one a line, as gh's --jq does;
// other values as compact JSON. call and request with --all apply it to
// each item as it arrives.

// jqTimeout bounds one evaluation: an expression like 'repeat(.)' never ends.
const jqTimeout = 10 * time.Second

func bindJQ(c *cobra.Command, p *string) {
	c.Flags().StringVarP(p, "jq", "q", "", "filter the JSON output with a jq expression, e.g. '.[].name'")
}

// compileJQ parses the --jq expression; a bad one is a usage error.
func compileJQ(expr string) (*gojq.Code, error) {
	if expr == "" {
		return nil, nil
	}
	q, err := gojq.Parse(expr)
	if err != nil {
		return nil, usageErrorf("--jq %q: %v", expr, err)
	}
	code, err := gojq.Compile(q)
	if err != nil {
		return nil, usageErrorf("--jq %q: %v", expr, err)
	}
	return code, nil
}

// runJQ writes what code yields for the JSON document doc.
func runJQ(w io.Writer, code *gojq.Code, doc []byte) error {
	var v any
	dec := json.NewDecoder(bytes.NewReader(doc))
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("--jq: the output is not JSON: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), jqTimeout)
	defer cancel()
	iter := code.RunWithContext(ctx, v)
	for {
		out, ok := iter.Next()
		if !ok {
			return nil
		}
		if err, isErr := out.(error); isErr {
			if _, halt := err.(*gojq.HaltError); halt && err.(*gojq.HaltError).Value() == nil {
				return nil
			}
			return fmt.Errorf("--jq: %v", err)
		}
		var line []byte
		if s, isStr := out.(string); isStr {
			line = []byte(safeText(s))
		} else {
			b, err := gojq.Marshal(out)
			if err != nil {
				return fmt.Errorf("--jq: %v", err)
			}
			line = escapeJSONControls(b)
		}
		if _, err := w.Write(append(line, '\n')); err != nil {
			return err
		}
	}
}
