package connector

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/token"
	"github.com/connector-engine/connector/definitions"
)

func keyDefinition(t *testing.T) *definitions.Definition {
	t.Helper()
	src := `name: keyed
title: Keys
base_url: https://${Subdomain}.example.com/api
fields:
  Subdomain: {type: host_label, required: true}
  CompanyId: {type: integer}
  Realm:
    learn: {from: callback, param: realmId}
  Secret: {secret: true}
request:
  headers: {Company: "${CompanyId}"}
auth:
  scheme: oauth
  oauth:
    version: V2
    initiate_uri: https://login.example.com/authorize
    token_request_uri: https://login.example.com/token
`
	set, err := definitions.Parse(nil, definitions.File{Path: "keyed.yaml", Data: []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := set.Get("keyed")
	return d
}

func keyConn(d *definitions.Definition, fields map[string]string) *Connection {
	return &Connection{Definition: d, ClientID: "cid", ClientSecret: "csecret", RedirectURI: "http://127.0.0.1:8765/cb", Fields: fields}
}

// The derived key follows what identifies the grant: a field that picks
// the deployment (a host) changes it, any other field does not, so adding
// or changing one after connecting keeps the token.
func TestKeyStable(t *testing.T) {
	d := keyDefinition(t)
	a := keyConn(d, map[string]string{"Subdomain": "acme"})
	for _, other := range []map[string]string{
		{"Subdomain": "acme", "CompanyId": "42"},
		{"Subdomain": "acme", "CompanyId": "43", "Realm": "9130"},
		{"Subdomain": "acme", "Secret": "x"},
	} {
		if k := keyConn(d, other).Key(); k != a.Key() {
			t.Errorf("fields %v give key %s, want %s: only host fields identify the grant", other, k, a.Key())
		}
	}
	if k := keyConn(d, map[string]string{"Subdomain": "globex"}).Key(); k == a.Key() {
		t.Error("another subdomain (another deployment) gives the same key")
	}
	b := *a
	b.Tenant = "t1"
	if b.Key() == a.Key() {
		t.Error("another tenant gives the same key")
	}
	if c := keyConn(d, map[string]string{"Subdomain": "acme", "CompanyId": "42"}); c.Key() == c.legacyKey() {
		t.Error("the former key hashed CompanyId; the test expects it to differ")
	}
	// A definition whose fields all identify the grant keeps the former key:
	// nothing to move.
	hostOnly := *d
	hostOnly.Fields = d.Fields[:1]
	if c := keyConn(&hostOnly, map[string]string{"Subdomain": "acme"}); c.Key() != c.legacyKey() {
		t.Errorf("key %s differs from the former %s for a definition with host fields only", c.Key(), c.legacyKey())
	}
}

// A record stored under the former key is moved to the new one on first
// use, token and all; one issued for another connection is not touched.
func TestLegacyRecordMovedOnRead(t *testing.T) {
	ctx := context.Background()
	d := keyDefinition(t)
	c := keyConn(d, map[string]string{"Subdomain": "acme", "CompanyId": "42"})
	b, err := c.Binding()
	if err != nil {
		t.Fatal(err)
	}
	st := store.NewMemory()
	tok := token.Token{AccessToken: "OLD-ACCESS-1234", RefreshToken: "OLD-REFRESH-1234", Expiry: time.Now().Add(time.Hour), Obtained: time.Now()}
	if _, err := st.Put(ctx, store.Record{ID: c.legacyKey(), Definition: d.Name, Binding: b, Token: tok, Status: store.StatusConnected}); err != nil {
		t.Fatal(err)
	}
	src, err := NewSource(c, st)
	if err != nil {
		t.Fatal(err)
	}
	got, err := src.TokenContext(ctx)
	if err != nil || got.AccessToken != tok.AccessToken {
		t.Fatalf("TokenContext = %v, %v; want the token stored under the former key", got, err)
	}
	if _, err := st.Get(ctx, c.legacyKey()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the record under the former key is still there (%v)", err)
	}
	if rec, err := st.Get(ctx, c.Key()); err != nil || rec.Token.RefreshToken != tok.RefreshToken {
		t.Errorf("under the new key: %+v, %v", rec, err)
	}

	// Another client's record under this connection's former key stays put.
	c2 := keyConn(d, map[string]string{"Subdomain": "acme", "CompanyId": "7"})
	other := b
	other.ClientID = "someone-else"
	if _, err := st.Put(ctx, store.Record{ID: c2.legacyKey(), Definition: d.Name, Binding: other, Token: tok, Status: store.StatusConnected}); err != nil {
		t.Fatal(err)
	}
	st.Delete(ctx, c2.Key())
	src2, _ := NewSource(c2, st)
	var be *BindingError
	if _, err := src2.TokenContext(ctx); !errors.As(err, &be) {
		t.Fatalf("a former-key record of another client: %v; want a BindingError", err)
	}
	if _, err := st.Get(ctx, c2.legacyKey()); err != nil {
		t.Error("a record bound to another connection was moved")
	}
}

// No record for a connection, but one for the same grant under another id:
// the error says where.
func TestNotFoundNamesSimilarRecord(t *testing.T) {
	ctx := context.Background()
	d := keyDefinition(t)
	c := keyConn(d, map[string]string{"Subdomain": "acme"})
	b, _ := c.Binding()
	st := store.NewMemory()
	if _, err := st.Put(ctx, store.Record{ID: "acme-prod", Definition: d.Name, Binding: b, Token: token.Token{AccessToken: "A-123456", RefreshToken: "R-123456"}, Status: store.StatusConnected}); err != nil {
		t.Fatal(err)
	}
	// A record of another tenant is never named.
	ob := b
	ob.Tenant = "other-tenant"
	if _, err := st.Put(ctx, store.Record{ID: "theirs", Definition: d.Name, Binding: ob, Token: token.Token{AccessToken: "A-654321"}, Status: store.StatusConnected}); err != nil {
		t.Fatal(err)
	}
	src, _ := NewSource(c, st)
	_, err := src.TokenContext(ctx)
	if err == nil || !strings.Contains(err.Error(), "no token yet") || !strings.Contains(err.Error(), "is stored as acme-prod: if that is this one, its id changed (set id: acme-prod to use it) or connect again") {
		t.Fatalf("TokenContext: %v; want it to name the similar record", err)
	}
	if strings.Contains(err.Error(), "theirs") || strings.Contains(err.Error(), "A-123456") {
		t.Errorf("error %q names another tenant's record or a token", err)
	}
	if err := src.Revoke(ctx); err == nil || !strings.Contains(err.Error(), "stored as acme-prod") {
		t.Errorf("Revoke: %v; want it to name the similar record", err)
	}
}
