package templates

import (
	"slices"
	"strings"
	"testing"
)

func TestVarsAdd(t *testing.T) {
	v := NewVars()
	for i, name := range []string{"ClientId", "_x", "a1_B2", "BaseUrl"} {
		got, err := v.Add(name, Flag(i&1))
		if err != nil || got != i {
			t.Fatalf("Add(%q) = %d, %v; want %d", name, got, err, i)
		}
	}
	tests := []struct {
		name string
		msg  string
	}{
		{"", "not an identifier"},
		{"1a", "not an identifier"},
		{"a-b", "not an identifier"},
		{"a b", "not an identifier"},
		{"é", "not an identifier"},
		{"${x}", "not an identifier"},
		{"clientid", `already exists as "ClientId"`},
		{"CLIENTID", `already exists as "ClientId"`},
	}
	for _, tt := range tests {
		if _, err := v.Add(tt.name, 0); err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("Add(%q) error = %v, want one containing %q", tt.name, err, tt.msg)
		}
	}
	if v.Len() != 4 {
		t.Errorf("Len = %d after failed Adds", v.Len())
	}
}

func TestVarsLookup(t *testing.T) {
	v := testVars(t)
	tests := []struct {
		name string
		want int
		ok   bool
	}{
		{"ClientId", 0, true},
		{"clientId", 0, true},
		{"CLIENTID", 0, true},
		{"Code", 4, true},
		{"client_id", -1, false},
		{"", -1, false},
	}
	for _, tt := range tests {
		got, ok := v.Lookup(tt.name)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Lookup(%q) = %d, %v; want %d, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
	i, _ := v.Lookup("secretbase")
	if v.Name(i) != "SecretBase" || v.Flags(i) != URLValued|Secret {
		t.Errorf("Name, Flags = %q, %v", v.Name(i), v.Flags(i))
	}
	names := v.Names()
	if len(names) != v.Len() || names[4] != "code" {
		t.Errorf("Names = %q", names)
	}
	names[0] = "changed"
	if v.Name(0) != "ClientId" {
		t.Error("Names returns the Vars' own slice")
	}
	var nilVars *Vars
	if _, ok := nilVars.Lookup("x"); ok || nilVars.Len() != 0 || nilVars.Names() != nil {
		t.Error("a nil *Vars is not empty")
	}
}

func TestSuggest(t *testing.T) {
	v := testVars(t)
	tests := []struct {
		name string
		want []string
	}{
		{"client_id", []string{"ClientId"}},
		{"clientsecre", []string{"ClientSecret"}},
		{"refresh_token", []string{"refreshToken"}},
		{"cod", []string{"code"}},
		{"tennant", []string{"Tenant"}},
		{"ix", []string{"id"}}, // one edit
		{"xy", nil},            // two edits from "id" and "q": too far for short names
		{"BaseUri", []string{"BaseUrl"}},
		{"somethingelse", nil},
	}
	for _, tt := range tests {
		if got := v.suggest(tt.name); !slices.Equal(got, tt.want) {
			t.Errorf("suggest(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestLevenshtein(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"", "abc", 3},
		{"abc", "", 3},
		{"kitten", "sitting", 3},
		{"clientid", "clientid2", 1},
		{"ab", "ba", 2},
	}
	for _, tt := range tests {
		if got := levenshtein(tt.a, tt.b); got != tt.want {
			t.Errorf("levenshtein(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
