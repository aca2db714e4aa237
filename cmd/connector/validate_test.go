package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// validate prints each warning with its code, leaves out those a definition
// acknowledges in ignore_warnings (counting them), lists them with their
// reason in -o json and yaml, and refuses an unknown code with its position
// and the known ones (issue 13 item 11).
func TestValidateWarningsGolden(t *testing.T) {
	acked := filepath.Join("testdata", "validate", "acknowledged.yaml")
	unknown := filepath.Join("testdata", "validate", "unknown-code.yaml")
	var golden strings.Builder
	for _, args := range [][]string{
		{"validate", acked}, {"validate", "-o", "json", acked}, {"validate", "-o", "yaml", acked},
		{"validate", unknown}, {"validate", "-o", "json", unknown},
	} {
		code, out, errOut := runCLI(t, args...)
		golden.WriteString("$ connector " + strings.Join(args, " ") + "\n" + out + errOut + "exit " + string(rune('0'+code)) + "\n\n")
	}
	checkGolden(t, filepath.Join("testdata", "validate.golden"), golden.String())
}
