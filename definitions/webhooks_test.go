package definitions_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/connector-engine/connector/definitions"
)

// TestWebhooksBuilt: the section compiles into what the receiver applies:
// the built-in Procore declaration (inherited by its variants), and a
// timestamped signature with a pattern-matched attribute.
func TestWebhooksBuilt(t *testing.T) {
	for _, name := range []string{"procore", "procore-v1", "procore-client-credentials"} {
		d, err := definitions.Builtin().Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		w := d.Webhooks
		if w == nil || w.Signature != nil || *w.SharedSecret != (definitions.WebhookSharedSecret{Header: "Authorization", Prefix: "Bearer "}) ||
			w.DeliveryID != (definitions.WebhookValue{Path: "id"}) || w.EventType != (definitions.WebhookValue{Path: "event_type"}) ||
			w.Attribute == nil || w.Attribute.Field != "CompanyId" || w.Attribute.Path != "company_id" || w.Attribute.Pattern != nil {
			t.Fatalf("%s: webhooks = %+v", name, w)
		}
	}
	set, diags := parse(t, file("x.yaml", withWebhooks+`  signature:
    header: X-Sig
    algorithm: hmac-sha256
    encoding: hex
    prefix: v0=
    signed: 'v0:${timestamp}:$$${body}'
    timestamp_header: X-Ts
    tolerance: 5m
  attribute: {header: X-Shop, field: companyid, pattern: '([0-9]+)\.shop'}
`))
	if len(diags) > 0 {
		t.Fatalf("findings: %v", diags)
	}
	d, _ := set.Lookup("acme")
	s := d.Webhooks.Signature
	want := []definitions.SignedPart{{Literal: "v0:"}, {Timestamp: true}, {Literal: ":$"}, {Body: true}}
	if !reflect.DeepEqual(s.Signed, want) || s.Tolerance != 5*time.Minute || s.Secret != definitions.SecretWebhook || s.Prefix != "v0=" {
		t.Fatalf("signature = %+v", s)
	}
	a := d.Webhooks.Attribute
	if a.Field != "CompanyId" || a.Header != "X-Shop" || a.Pattern == nil || a.Pattern.FindStringSubmatch("42.shop")[1] != "42" || a.Pattern.MatchString("x42.shop.evil") {
		t.Fatalf("attribute = %+v", a)
	}
	if !d.Webhooks.DeliveryID.IsZero() {
		t.Fatal("no delivery_id declared, yet one is set")
	}
}
