package definitions

import (
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// warning is one kind of warning. Its code is stable: definitions name it in
// ignore_warnings and tools match on it, so a code is never renamed or reused
// once released. Every code is explained in DocFile, under an anchor of the
// same name, and listed in the schema's ignore_warnings.
//
// A struct, not a string, so that a warning cannot be reported without one
// (a string literal would convert silently).
type warning struct{ code string }

var (
	warnSecretInTokenQuery   = warning{"secret-in-token-query"}
	warnSecretInURL          = warning{"secret-in-url"}
	warnTokenInQuery         = warning{"token-in-query"}
	warnPKCEOff              = warning{"pkce-off"}
	warnRequiredWithDefault  = warning{"required-with-default"}
	warnUnusedInput          = warning{"unused-input"}
	warnSecretNotSecretField = warning{"secret-not-secret-field"}
	warnWebhookNoTolerance   = warning{"webhook-no-tolerance"}
	warnWebhookHMACSHA1      = warning{"webhook-hmac-sha1"}
	warnLearnedTokenHost     = warning{"learned-token-host"}
	warnUnusedIgnore         = warning{"unused-ignore"}
)

// warnings lists every warning kind, in the order DocFile explains them.
var warnings = []warning{
	warnSecretInTokenQuery, warnSecretInURL, warnTokenInQuery, warnPKCEOff,
	warnRequiredWithDefault, warnUnusedInput, warnSecretNotSecretField,
	warnWebhookNoTolerance, warnWebhookHMACSHA1, warnLearnedTokenHost,
	warnUnusedIgnore,
}

// WarningCodes returns the code of every warning the validator can report,
// in the order definitions/README.md explains them ("Validation findings").
func WarningCodes() []string {
	codes := make([]string, len(warnings))
	for i, w := range warnings {
		codes[i] = w.code
	}
	return codes
}

// warnf reports a warning of kind w about the node at pointer.
func (b *builder) warnf(w warning, pointer, format string, args ...any) {
	b.warnAt(w, pointer, -1, fmt.Sprintf(format, args...))
}

// warnAt reports a warning of kind w at byte offset off of the scalar at
// pointer (the placeholder concerned), or at the node for off -1.
func (b *builder) warnAt(w warning, pointer string, off int, msg string) {
	d := b.diagnosticAt(pointer, off)
	d.Severity, d.Code, d.Message = SeverityWarning, w.code, msg
	b.add(d)
}

// acknowledge marks d acknowledged when the definition being built lists its
// code in ignore_warnings (its own or inherited through extends: the tree is
// the merged one). The schema has already refused unknown codes.
func (b *builder) acknowledge(d *Diagnostic) {
	if d.Severity != SeverityWarning || d.Code == "" {
		return
	}
	if reason, ok := b.ignores()[d.Code]; ok {
		d.Acknowledged, d.Reason = true, reason
		if b.ignoreUsed == nil {
			b.ignoreUsed = map[string]bool{}
		}
		b.ignoreUsed[d.Code] = true
	}
}

// ignores returns the definition's ignore_warnings, code -> reason, read
// once.
func (b *builder) ignores() map[string]string {
	if b.ignored == nil {
		b.ignored = map[string]string{}
		_, list := mapGet(b.root, "ignore_warnings")
		if list = resolve(list); list != nil && list.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(list.Content); i += 2 {
				if v := resolve(list.Content[i+1]); v != nil && v.Kind == yaml.ScalarNode {
					b.ignored[list.Content[i].Value] = v.Value
				}
			}
		}
	}
	return b.ignored
}

// checkUnusedIgnores warns about each ignore_warnings entry written in this
// file that acknowledged nothing: the warning it was written for is gone (the
// definition was fixed), and a stale entry would silently swallow the
// warning if the risk came back. Entries inherited through extends are the
// base file's to judge, and unused-ignore itself is exempt: a base written
// for others to extend acknowledges what only its children trigger with it.
// It runs last, after every other warning, and not when there are errors:
// a definition that stops at an error has not produced all its warnings.
func (b *builder) checkUnusedIgnores() {
	_, list := mapGet(b.root, "ignore_warnings")
	if list = resolve(list); list == nil || list.Kind != yaml.MappingNode {
		return
	}
	if _, ok := b.ignores()[warnUnusedIgnore.code]; ok {
		return
	}
	for _, d := range b.ds.list {
		if d.Severity == SeverityError && d.File == b.self {
			return
		}
	}
	for i := 0; i+1 < len(list.Content); i += 2 {
		k, v := list.Content[i], resolve(list.Content[i+1])
		if v == nil || v.Kind != yaml.ScalarNode || v.Tag == "!!null" || b.fileOf(k) != b.self {
			continue
		}
		if !slices.Contains(WarningCodes(), k.Value) || b.ignoreUsed[k.Value] {
			continue
		}
		d := Diagnostic{Severity: SeverityWarning, Code: warnUnusedIgnore.code, File: b.self, Line: k.Line, Column: k.Column,
			Field:   "ignore_warnings." + k.Value,
			Message: fmt.Sprintf("%q acknowledges no warning of this definition; remove the entry (kept, it would hide the warning if the risk came back)", k.Value)}
		b.ds.add(d)
	}
}

// unknownWarningCode is the message for a code in ignore_warnings that no
// warning has (the schema's enum refused it).
func unknownWarningCode(code string) string {
	codes := WarningCodes()
	msg := fmt.Sprintf("%q is no warning code", code)
	if s := suggest(code, codes); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	sorted := slices.Clone(codes)
	slices.Sort(sorted)
	return msg + " (known: " + strings.Join(sorted, ", ") + ")"
}
