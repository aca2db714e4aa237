package state_test

import (
	"context"
	"testing"

	"github.com/connector-engine/connector/connector/server/state"
)

// TestAttributeLearnedAndDefault: learned values attribute like fields, are
// replaced by the next IndexLearned, and win over a field of the same
// name; a value that is the field's default attributes to a connection
// leaving the field unset only when none sets it; UnindexedLearned lists
// the connections whose learned values were never indexed.
func TestAttributeLearnedAndDefault(t *testing.T) {
	backends(t, func(t *testing.T, open func() *state.DB) {
		ctx := context.Background()
		db := open()
		cl := setup(t, db)
		mk := func(fields map[string]string) string {
			c, err := db.CreateConnection(ctx, state.Connection{Tenant: "acme", Client: cl.ID, Fields: fields})
			if err != nil {
				t.Fatal(err)
			}
			return c.ID
		}
		unset := mk(nil)
		explicit := mk(map[string]string{"Region": "eu"})
		learner := mk(map[string]string{"RealmId": "given-1"})
		attr := func(field, value string, isDefault bool, want string) {
			t.Helper()
			id, err := open().AttributeDelivery(ctx, "acme", cl.ID, field, value, isDefault)
			if err != nil || id != want {
				t.Fatalf("AttributeDelivery(%s=%s, default %v) = %q %v, want %q", field, value, isDefault, id, err, want)
			}
		}
		if ids, err := db.UnindexedLearned(ctx, "acme", cl.ID, 10); err != nil || len(ids) != 3 {
			t.Fatalf("UnindexedLearned before any = %v %v", ids, err)
		}
		if err := db.IndexLearned(ctx, learner, map[string]string{"RealmId": "realm-9"}); err != nil {
			t.Fatal(err)
		}
		if err := db.IndexLearned(ctx, unset, nil); err != nil {
			t.Fatal(err)
		}
		if ids, err := db.UnindexedLearned(ctx, "acme", cl.ID, 10); err != nil || len(ids) != 1 || ids[0] != explicit {
			t.Fatalf("UnindexedLearned = %v %v, want [%s]", ids, err, explicit)
		}
		attr("RealmId", "realm-9", false, learner)
		attr("realmid", "given-1", false, "") // the learned value replaced the given one
		if err := db.IndexLearned(ctx, learner, map[string]string{"RealmId": "realm-10"}); err != nil {
			t.Fatal(err)
		}
		attr("RealmId", "realm-9", false, "")
		attr("RealmId", "realm-10", false, learner)

		attr("Region", "us", false, "")
		attr("Region", "us", true, unset) // us is the default: the one leaving it unset
		attr("Region", "eu", true, explicit)
		if err := db.DeleteConnection(ctx, "acme", unset); err != nil {
			t.Fatal(err)
		}
		attr("Region", "us", true, learner) // the next one leaving Region unset
		if err := db.IndexLearned(ctx, "con_missing", nil); err == nil {
			t.Fatal("IndexLearned of a missing connection succeeded")
		}
	})
}
