package connector

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/token"
	"github.com/connector-engine/connector/definitions"
)

func bindingDef(t *testing.T, base string) *definitions.Definition {
	return parseOne(t, `name: bound
title: bound
base_url: `+base+`
auth:
  scheme: oauth
  oauth:
    version: V2
    initiate_uri: ${BaseUrl}/authorize
    token_request_uri: ${BaseUrl}/token
    revoke_uri: ${BaseUrl}/revoke
`)
}

// TestStoreBindingRefusesAnotherConnectionsRecord (issue 10 item 2): a
// connection naming the id of another connection's record, with another
// client and other hosts, gets an error saying what differs, and the
// victim's bearer and refresh tokens reach no other host: not by a call,
// a refresh, a forced refresh, a revocation or an overwrite on connect.
func TestStoreBindingRefusesAnotherConnectionsRecord(t *testing.T) {
	const victimAccess, victimRefresh = "victim-access-0123456789", "victim-refresh-0123456789"
	victimHost := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"access_token":"victim-access-2","refresh_token":"victim-refresh-2","expires_in":3600}`))
	})
	evil := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"access_token":"evil-access","refresh_token":"evil-refresh","expires_in":3600}`))
	})
	ctx := context.Background()
	st := store.NewMemory()
	def := bindingDef(t, victimHost.URL)
	victim := &Connection{ID: "shared-id", Definition: def, ClientID: "victim-client", ClientSecret: "victim-secret", RedirectURI: "http://127.0.0.1:1/cb"}
	vsrc, err := NewSource(victim, st)
	if err != nil {
		t.Fatal(err)
	}
	if err := vsrc.Store(ctx, &token.Token{AccessToken: victimAccess, RefreshToken: victimRefresh, Expiry: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	before, _ := st.Get(ctx, "shared-id")
	if want, _ := victim.Binding(); before.Binding != want || want.APIOrigin != strings.ToLower(victimHost.URL) || want.ClientID != "victim-client" {
		t.Fatalf("the victim's record is bound to %v, want %v", before.Binding, want)
	}

	attacker := &Connection{ID: "shared-id", Definition: bindingDef(t, "https://ignored.example"), ClientID: "evil-client", ClientSecret: "evil-secret",
		RedirectURI: "http://127.0.0.1:1/cb", BaseURL: evil.URL, LoginURL: evil.URL}
	api, err := NewAPI(attacker, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	asrc := api.Source()
	wantErr := func(what string, err error) {
		t.Helper()
		var be *BindingError
		if !errors.As(err, &be) {
			t.Fatalf("%s: err = %v; want a *BindingError", what, err)
		}
		msg := err.Error()
		for _, want := range []string{"shared-id", "already used by another connection", "client id, token endpoint origin and API origin", "not used or sent anywhere"} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: error %q does not say %q", what, msg, want)
			}
		}
		for _, leak := range []string{victimAccess, victimRefresh, "victim-client", "victim-secret", victimHost.URL} {
			if strings.Contains(msg, leak) {
				t.Errorf("%s: error %q shows the other connection's %q", what, msg, leak)
			}
		}
	}
	_, err = asrc.TokenContext(ctx)
	wantErr("token", err)
	_, err = asrc.Refresh(ctx)
	wantErr("forced refresh", err)
	_, err = api.Do(ctx, Request{Path: "/me"})
	wantErr("API call", err)
	wantErr("revoke", asrc.Revoke(ctx))
	wantErr("connect", asrc.Store(ctx, &token.Token{AccessToken: "evil-access", RefreshToken: "evil-refresh"}))

	if got := evil.requests(); len(got) != 0 {
		t.Errorf("the other connection's hosts received %q", got)
	}
	after, err := st.Get(ctx, "shared-id")
	if err != nil || after.Version != before.Version || after.Token.AccessToken != victimAccess || after.Binding != before.Binding {
		t.Errorf("the victim's record changed: %+v, %v", after, err)
	}
	// The victim still works.
	if tok, err := vsrc.TokenContext(ctx); err != nil || tok.AccessToken != victimAccess {
		t.Errorf("the victim's token: %v, %v", tok, err)
	}

	// Another tenant with everything else equal is refused too.
	other := *victim
	other.Tenant = "tenant-2"
	osrc, err := NewSource(&other, st)
	if err != nil {
		t.Fatal(err)
	}
	_, err = osrc.TokenContext(ctx)
	var be *BindingError
	if !errors.As(err, &be) || strings.Join(be.Parts, ",") != "tenant" {
		t.Errorf("another tenant: %v; want a BindingError naming the tenant", err)
	}
}

// TestUnboundRecordAdoptsBinding: a record written before bindings keeps
// working: its first use binds it to the connection using it, and from then
// on another connection is refused. One whose definition differs is refused
// at once.
func TestUnboundRecordAdoptsBinding(t *testing.T) {
	provider := newRecorder(t, nil)
	ctx := context.Background()
	st := store.NewMemory()
	def := bindingDef(t, provider.URL)
	if _, err := st.Put(ctx, store.Record{ID: "old", Definition: "bound", Status: store.StatusConnected,
		Token: token.Token{AccessToken: "old-access", RefreshToken: "old-refresh", Expiry: time.Now().Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	conn := &Connection{ID: "old", Definition: def, ClientID: "c", ClientSecret: "s", RedirectURI: "http://127.0.0.1:1/cb"}
	src, err := NewSource(conn, st)
	if err != nil {
		t.Fatal(err)
	}
	if tok, err := src.TokenContext(ctx); err != nil || tok.AccessToken != "old-access" {
		t.Fatalf("an unbound record: %v, %v", tok, err)
	}
	rec, _ := st.Get(ctx, "old")
	if want, _ := conn.Binding(); rec.Binding != want || rec.Token.RefreshToken != "old-refresh" {
		t.Errorf("after first use the record is bound to %v, want %v, token kept", rec.Binding, want)
	}
	other := *conn
	other.ClientID = "another"
	osrc, _ := NewSource(&other, st)
	var be *BindingError
	if _, err := osrc.TokenContext(ctx); !errors.As(err, &be) || strings.Join(be.Parts, ",") != "client id" {
		t.Errorf("after adoption, another client: %v; want a BindingError naming the client id", err)
	}

	if _, err := st.Put(ctx, store.Record{ID: "old2", Definition: "procore", Status: store.StatusConnected,
		Token: token.Token{AccessToken: "a2", Expiry: time.Now().Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	c2 := *conn
	c2.ID = "old2"
	s2, _ := NewSource(&c2, st)
	if _, err := s2.TokenContext(ctx); !errors.As(err, &be) || strings.Join(be.Parts, ",") != "definition" {
		t.Errorf("an unbound record of another definition: %v; want a BindingError naming the definition", err)
	}
	if got := provider.requests(); len(got) != 0 {
		t.Errorf("the provider received %q", got)
	}
}

// TestBindingOrigins: the token origin lists every origin that receives
// tokens, and the tenant changes the derived key only when set.
func TestBindingOrigins(t *testing.T) {
	d := parseOne(t, `name: split
title: split
base_url: https://API.example.com/v1
environments:
  sandbox:
    base_url: https://sandbox.example.com/v1
    login_url: https://login-sandbox.example.com
default_environment: sandbox
auth:
  scheme: oauth
  oauth:
    version: V2
    initiate_uri: ${LoginUrl}/authorize
    token_request_uri: ${LoginUrl}/token
    refresh_uri: ${LoginUrl}/token
    revoke_uri: https://revoke.example.com/revoke
    introspection_uri: https://b-introspect.example.com/i
`)
	c := &Connection{Definition: d, ClientID: "c", ClientSecret: "s", RedirectURI: "http://127.0.0.1:1/cb"}
	b, err := c.Binding()
	if err != nil {
		t.Fatal(err)
	}
	want := store.Binding{Definition: "split", Environment: "sandbox", ClientID: "c",
		TokenOrigin: "https://login-sandbox.example.com https://b-introspect.example.com https://revoke.example.com", APIOrigin: "https://sandbox.example.com"}
	if b != want {
		t.Errorf("Binding = %v\nwant %v", b, want)
	}
	key := c.Key()
	c.Tenant = "t1"
	if b, _ := c.Binding(); b.Tenant != "t1" {
		t.Errorf("Tenant not bound: %v", b)
	}
	if c.Key() == key {
		t.Error("the tenant does not change the derived key: two tenants would share a record")
	}
}

// TestFailedClientCredentialsRecordsNothing (issue 10 item 13): a
// client-credentials token request the provider refuses (invalid_client)
// leaves no record that would show as connected, and an existing record
// is left as it was.
func TestFailedClientCredentialsRecordsNothing(t *testing.T) {
	var ok atomic.Bool
	provider := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		if ok.Load() {
			_, _ = w.Write([]byte(`{"access_token":"cc-access","expires_in":3600}`))
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
	})
	d := parseOne(t, `name: cc
title: cc
base_url: `+provider.URL+`
auth:
  scheme: oauth_client
  oauth:
    version: V2
    token_request_uri: ${BaseUrl}/token
`)
	ctx := context.Background()
	st := store.NewMemory()
	src, err := NewSource(&Connection{ID: "cc1", Definition: d, ClientID: "c", ClientSecret: "wrong-secret"}, st)
	if err != nil {
		t.Fatal(err)
	}
	var te *TokenError
	if _, err := src.TokenContext(ctx); !errors.As(err, &te) || te.Code != "invalid_client" {
		t.Fatalf("err = %v; want invalid_client", err)
	}
	if list, _ := st.List(ctx); len(list) != 0 {
		t.Fatalf("a refused client-credentials request left %d records: %+v", len(list), list)
	}
	ok.Store(true)
	if _, err := src.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	before, _ := st.Get(ctx, "cc1")
	ok.Store(false)
	if _, err := src.Refresh(ctx); !errors.As(err, &te) {
		t.Fatalf("err = %v; want invalid_client", err)
	}
	if after, _ := st.Get(ctx, "cc1"); after.Version != before.Version || after.Token.AccessToken != "cc-access" {
		t.Errorf("a refused request changed the record: %+v, was %+v", after, before)
	}
}
