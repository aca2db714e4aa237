package connector_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/emulator"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/connector/token"
	"github.com/connector-engine/connector/definitions"
)

// RefreshUnless decides on the token as stored, after the lock and the
// re-read: a token another engine renewed meanwhile is kept, not
// refreshed again; otherwise it refreshes like Refresh.
func TestRefreshUnless(t *testing.T) {
	ctx := context.Background()
	emu := emulator.New(emulator.Config{Clients: []emulator.Client{{ID: "ru-app", Secret: "ru-secret"}}})
	base, err := emu.Start(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	def, _ := definitions.Builtin().Lookup("procore")
	conn := &connector.Connection{ID: "ru", Definition: def, ClientID: "ru-app", ClientSecret: "ru-secret",
		RedirectURI: "http://127.0.0.1:9/callback", BaseURL: base, LoginURL: base,
		Fields: map[string]string{"CompanyId": strconv.FormatInt(emulator.DemoCompanyID, 10)}}
	st := store.NewMemory()
	src, err := connector.NewSource(conn, st) // this engine (the scheduler's)
	if err != nil {
		t.Fatal(err)
	}
	other, err := connector.NewSource(conn, st) // another engine on the same store (a replica)
	if err != nil {
		t.Fatal(err)
	}
	at, rt, _ := emu.IssueTokens("ru-app")
	if err := src.Store(ctx, &token.Token{AccessToken: at, RefreshToken: rt}); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	var seen token.Token
	got, refreshed, err := src.RefreshUnless(ctx, func(stored token.Token) bool {
		seen = stored
		return stored.RefreshToken != rt // renewed since this engine looked
	})
	if err != nil || refreshed || got.AccessToken != seen.AccessToken || seen.RefreshToken == rt {
		t.Fatalf("RefreshUnless after another engine's refresh: refreshed %t, %v; want the stored token kept", refreshed, err)
	}
	got2, refreshed, err := src.RefreshUnless(ctx, func(token.Token) bool { return false })
	if err != nil || !refreshed || got2.AccessToken == got.AccessToken {
		t.Fatalf("RefreshUnless with nothing fresh: refreshed %t, %v; want a refresh", refreshed, err)
	}
	if st := emu.Stats(); st.Refreshes != 2 || st.GrantRevocations != 0 {
		t.Fatalf("emulator: %d refreshes, %d revocations; want 2 and 0", st.Refreshes, st.GrantRevocations)
	}
}
