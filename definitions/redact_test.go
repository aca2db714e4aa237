package definitions_test

import (
	"strings"
	"testing"
)

// TestSecretURLFieldErrors: a secret field of type url is refused without
// quoting any part of its value (the URL checks quoted the value, its host,
// its scheme, and the parser's error quoted the broken piece).
func TestSecretURLFieldErrors(t *testing.T) {
	const marker = "S3CRETxyz"
	set, diags := parse(t, file("x.yaml", minimal+"fields:\n  Hook: {type: url, secret: true}\n  Plain: {type: url}\n"))
	if set == nil {
		t.Fatal(joinDiags(diags))
	}
	d, _ := set.Get("acme")
	tests := []struct{ value, want string }{
		{marker + "/path", "field Hook: (secret) must be an absolute URL such as https://api.example.com/path; start it with https://"},
		{"http://" + marker + ".example.com/", "field Hook: (secret) uses http:// with a host other than localhost; credentials would travel in clear"},
		{marker + "://host/", "field Hook: (secret) has a scheme other than https; use https://"},
		{"https://host:" + marker + "/", "field Hook: (secret) is not a valid URL"},
		{"https://host/%zz" + marker, "field Hook: (secret) is not a valid URL"},
		{"https://user:" + marker + "@host/", "field Hook: (secret) must not carry a user name or password"},
	}
	for _, tt := range tests {
		_, err := d.Values("", map[string]string{"Hook": tt.value})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Hook=%s: error %v, want one containing %q", tt.value, err, tt.want)
			continue
		}
		if strings.Contains(err.Error(), marker) {
			t.Errorf("Hook=%s: the error shows the secret: %v", tt.value, err)
		}
	}
	// A field that is not secret still says what it was given.
	if _, err := d.Values("", map[string]string{"Plain": "http://plain.example.com/"}); err == nil || !strings.Contains(err.Error(), "uses http:// with plain.example.com") {
		t.Errorf("Plain: %v", err)
	}
}
