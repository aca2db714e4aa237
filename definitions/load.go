package definitions

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v5"
	"gopkg.in/yaml.v3"

	"github.com/connector-engine/connector/internal/readfile"
)

// MaxFileSize bounds a definition file. The largest built-in is a few dozen
// KiB; the bound keeps /dev/zero or a stray dump from exhausting memory.
const MaxFileSize = 4 * readfile.MiB

// File is one definition file to check: where it came from and its bytes.
type File struct {
	Path string
	Data []byte
}

// Set is a collection of valid definitions, by name.
type Set struct {
	defs     map[string]*Definition
	trees    map[string]*yaml.Node // merged trees, for definitions that extend these
	origin   map[*yaml.Node]string
	warnings []Diagnostic
	acked    []Diagnostic
}

// Get returns the definition named name.
func (s *Set) Get(name string) (*Definition, bool) {
	d, ok := s.defs[name]
	return d, ok
}

// Lookup is Get with an error that lists the names there are.
func (s *Set) Lookup(name string) (*Definition, error) {
	if d, ok := s.defs[name]; ok {
		return d, nil
	}
	msg := fmt.Sprintf("no connection definition named %q", name)
	if sug := suggest(name, s.Names()); sug != "" {
		msg += fmt.Sprintf("; did you mean %q?", sug)
	}
	return nil, fmt.Errorf("%s (known: %s)", msg, strings.Join(s.Names(), ", "))
}

// Names returns the definition names in order.
func (s *Set) Names() []string {
	names := make([]string, 0, len(s.defs))
	for n := range s.defs {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// All returns the definitions ordered by name.
func (s *Set) All() []*Definition {
	out := make([]*Definition, 0, len(s.defs))
	for _, n := range s.Names() {
		out = append(out, s.defs[n])
	}
	return out
}

// Warnings returns the findings about risky but legal choices, less those the
// definitions acknowledge in ignore_warnings.
func (s *Set) Warnings() []Diagnostic { return slices.Clone(s.warnings) }

// Acknowledged returns the warnings the definitions acknowledge in
// ignore_warnings, each with its Reason: not shown, but not forgotten
// (validate -o json lists them).
func (s *Set) Acknowledged() []Diagnostic { return slices.Clone(s.acked) }

//go:embed builtin/*.yaml
var builtinFS embed.FS

// Builtin returns the definitions that ship with the engine (Procore).
var Builtin = sync.OnceValue(func() *Set {
	files, err := readFS(builtinFS, "builtin")
	if err != nil {
		panic("definitions: reading built-in definitions: " + err.Error())
	}
	s, err := Parse(nil, files...)
	if err != nil {
		panic("definitions: built-in definitions are invalid: " + err.Error())
	}
	return s
})

// Load reads definition files and directories (every *.yaml and *.yml below
// them) and checks them on top of the built-in definitions: they may extend a
// built-in, and one with a built-in's name replaces it.
func Load(paths ...string) (*Set, error) {
	files, err := ReadFiles(paths...)
	if err != nil {
		return nil, err
	}
	return Parse(Builtin(), files...)
}

// ReadFiles reads the named files, and the *.yaml and *.yml files under the
// named directories, in a stable order. Each must be a regular file (symbolic
// links are followed) of at most MaxFileSize bytes.
func ReadFiles(paths ...string) ([]File, error) {
	var files []File
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("cannot read definitions from %s: %w", p, unwrapPath(err))
		}
		if !st.IsDir() {
			data, err := readfile.Read(p, MaxFileSize, "a definition file")
			if err != nil {
				return nil, fmt.Errorf("cannot read definition file %s: %w", p, unwrapPath(err))
			}
			files = append(files, File{Path: p, Data: data})
			continue
		}
		fsFiles, err := readFS(os.DirFS(p), ".")
		if err != nil {
			return nil, fmt.Errorf("cannot read definitions directory %s: %w", p, err)
		}
		for _, f := range fsFiles {
			f.Path = filepath.Join(p, filepath.FromSlash(f.Path))
			files = append(files, f)
		}
	}
	return files, nil
}

func unwrapPath(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err
	}
	return err
}

func readFS(fsys fs.FS, root string) ([]File, error) {
	var files []File
	err := fs.WalkDir(fsys, root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !(strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			return nil
		}
		data, err := readfile.ReadFS(fsys, path, MaxFileSize, "a definition file")
		if err != nil {
			return fmt.Errorf("%s: %w", path, unwrapPath(err))
		}
		files = append(files, File{Path: path, Data: data})
		return nil
	})
	return files, err
}

// parsed is one file after YAML parsing and schema validation.
type parsed struct {
	file      File
	root      *yaml.Node
	name      string
	extends   string
	broken    bool // its own tree has errors: definitions built on it are not usable
	ambiguous bool // duplicate keys: which value was meant is unknown, so no further checks
}

// Parse checks files together, on top of base (nil for none). Files may
// extend one another or a definition of base; a file's definition replaces
// base's definition of the same name. It returns the combined set, or an
// *Error listing every finding when any file is invalid.
func Parse(base *Set, files ...File) (*Set, error) {
	ds := &diags{}
	set := &Set{defs: map[string]*Definition{}, trees: map[string]*yaml.Node{}, origin: map[*yaml.Node]string{}}
	if base != nil {
		for n, d := range base.defs {
			set.defs[n] = d
			set.trees[n] = base.trees[n]
		}
		for n, f := range base.origin {
			set.origin[n] = f
		}
	}

	byName := map[string]*parsed{}
	var docs []*parsed
	for _, f := range files {
		p := &parsed{file: f}
		root, d := parseYAML(f.Path, f.Data)
		if d != nil {
			ds.add(*d)
			continue
		}
		p.root = root
		recordOrigin(root, f.Path, set.origin)
		before := len(ds.list)
		duplicateKeys(f.Path, root, ds)
		p.ambiguous = len(ds.list) > before
		if _, ext := mapGet(root, "extends"); ext != nil {
			validateSchema(withoutNulls(root, set.origin), set.origin, ds, true)
		} else {
			validateSchema(root, set.origin, ds, false)
		}
		p.broken = len(ds.list) > before
		if _, v := mapGet(root, "name"); v != nil && v.Kind == yaml.ScalarNode {
			p.name = v.Value
		}
		if _, v := mapGet(root, "extends"); v != nil && v.Kind == yaml.ScalarNode {
			p.extends = v.Value
		}
		if p.name != "" {
			if prev, ok := byName[p.name]; ok {
				k, _ := mapGet(root, "name")
				pk, _ := mapGet(prev.root, "name")
				ds.add(Diagnostic{Severity: SeverityError, File: f.Path, Line: k.Line, Column: k.Column, Field: "name",
					Message: fmt.Sprintf("the definition name %q is already used by %s:%d; names must be unique", p.name, prev.file.Path, pk.Line)})
				continue
			}
			byName[p.name] = p
		}
		docs = append(docs, p)
	}

	// Resolve extends chains: each tree is its parent's merged tree overlaid
	// with its own keys.
	merged := map[*parsed]*yaml.Node{}
	visiting := map[*parsed]bool{}
	var resolveTree func(p *parsed) *yaml.Node
	resolveTree = func(p *parsed) *yaml.Node {
		if t, ok := merged[p]; ok {
			return t
		}
		if p.extends == "" {
			merged[p] = p.root
			return p.root
		}
		k, _ := mapGet(p.root, "extends")
		at := func(msg string) {
			ds.add(Diagnostic{Severity: SeverityError, File: p.file.Path, Line: k.Line, Column: k.Column, Field: "extends", Message: msg})
			merged[p] = nil
		}
		if visiting[p] {
			at(fmt.Sprintf("extends %q forms a cycle; a definition cannot (indirectly) extend itself", p.extends))
			return nil
		}
		var parent *yaml.Node
		if pp, ok := byName[p.extends]; ok && pp != p {
			visiting[p] = true
			parent = resolveTree(pp)
			delete(visiting, p)
			if parent != nil && pp.broken {
				at(fmt.Sprintf("extends %q, which is invalid; fix it first", p.extends))
				return nil
			}
			if parent == nil {
				if _, done := merged[p]; !done {
					at(fmt.Sprintf("extends %q, which is invalid; fix it first", p.extends))
				}
				return nil
			}
		} else if t, ok := set.trees[p.extends]; ok && p.extends != p.name {
			parent = t
		} else {
			var known []string
			for n := range byName {
				known = append(known, n)
			}
			known = append(known, set.Names()...)
			msg := fmt.Sprintf("extends %q, but there is no definition of that name", p.extends)
			if p.extends == p.name {
				msg = "a definition cannot extend itself"
			} else if s := suggest(p.extends, known); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			}
			at(msg)
			return nil
		}
		t := merge(parent, p.root, set.origin)
		// The merged tree drops "extends" so that it reads as a complete
		// definition, and is checked again for keys only the pair supplies.
		merged[p] = t
		return t
	}

	// Definitions that extend another repeat its input schemas; compiling
	// each once keeps loading the built-ins fast.
	inputSchemas := map[string]*jsonschema.Schema{}
	for _, p := range docs {
		tree := resolveTree(p)
		if tree == nil || p.ambiguous {
			continue
		}
		if p.extends != "" {
			validateSchema(withoutKey(tree, "extends", set.origin), set.origin, ds, false)
		}
		before := len(ds.list)
		b := &builder{self: p.file.Path, root: tree, origin: set.origin, ds: ds, inputSchemas: inputSchemas}
		if p.extends != "" {
			b.extendsKey, _ = mapGet(p.root, "extends")
		}
		def := b.build()
		if def == nil || p.broken || hasErrorsSince(ds, before) {
			continue
		}
		def.Source = p.file.Path
		def.Extends = p.extends
		set.defs[p.name] = def
		set.trees[p.name] = tree
	}

	var shown []Diagnostic
	for _, d := range ds.sorted() {
		switch {
		case d.Acknowledged:
			set.acked = append(set.acked, d)
		case d.Severity == SeverityWarning:
			set.warnings = append(set.warnings, d)
			shown = append(shown, d)
		default:
			shown = append(shown, d)
		}
	}
	if ds.hasErrors() {
		return nil, &Error{Diagnostics: shown, Acknowledged: set.acked}
	}
	return set, nil
}

func hasErrorsSince(ds *diags, before int) bool {
	for _, d := range ds.list[before:] {
		if d.Severity == SeverityError {
			return true
		}
	}
	return false
}

// withoutKey returns a shallow copy of mapping m without key.
func withoutKey(m *yaml.Node, key string, origin map[*yaml.Node]string) *yaml.Node {
	out := *m
	out.Content = nil
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value != key {
			out.Content = append(out.Content, m.Content[i], m.Content[i+1])
		}
	}
	origin[&out] = origin[m]
	return &out
}
