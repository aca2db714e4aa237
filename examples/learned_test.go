package examples_test

import (
	"slices"
	"testing"

	"github.com/connector-engine/connector/definitions"
)

// TestLearnedValues pins where each example learns its values when
// connecting, as the provider's documentation says they arrive.
func TestLearnedValues(t *testing.T) {
	set := load(t)
	tests := []struct {
		def, field string
		from       string
		param      string
		paths      []string
		url        string
	}{
		{def: "quickbooks", field: "RealmId", from: definitions.LearnCallback, param: "realmId"},
		{def: "salesforce", field: "InstanceUrl", from: definitions.LearnTokenResponse, paths: []string{"instance_url"}},
		{def: "slack", field: "TeamId", from: definitions.LearnTokenResponse, paths: []string{"team.id"}},
		{def: "xero", field: "TenantId", from: definitions.LearnRequest, paths: []string{"tenantId"}, url: "https://api.xero.com/connections"},
	}
	for _, tt := range tests {
		d, err := set.Lookup(tt.def)
		if err != nil {
			t.Fatal(err)
		}
		f, ok := d.Field(tt.field)
		if !ok || f.Learn == nil {
			t.Errorf("%s: %s is not learned", tt.def, tt.field)
			continue
		}
		l := f.Learn
		if l.From != tt.from || l.Param != tt.param || !slices.Equal(l.Paths, tt.paths) || (tt.url != "" && (l.URL == nil || l.URL.Source() != tt.url)) {
			t.Errorf("%s.%s learns from %s (param %q, paths %v); want %s %q %v %s", tt.def, tt.field, l.Source(), l.Param, l.Paths, tt.from, tt.param, tt.paths, tt.url)
		}
	}
	// Xero offers the organisations the user allowed; the connecting person picks.
	if f, _ := mustDef(t, set, "xero").Field("TenantId"); f.Learn.Choose != definitions.ChooseAsk || f.Learn.Label != "tenantName" {
		t.Errorf("xero TenantId choose %q label %q", f.Learn.Choose, f.Learn.Label)
	}
	// Salesforce's learned host is still held to salesforce.com.
	if f, _ := mustDef(t, set, "salesforce").Field("InstanceUrl"); f.Check("https://acme.my.salesforce.com") != "" || f.Check("https://evil.example") == "" {
		t.Error("salesforce InstanceUrl: the pattern no longer guards the learned host")
	}
}

func mustDef(t *testing.T, set *definitions.Set, name string) *definitions.Definition {
	t.Helper()
	d, err := set.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
