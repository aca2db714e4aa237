package connector_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/internal/fositeserver"
)

// TestResumeAttemptInAnotherFlow starts an authorization with one Flow and
// finishes it with another built from the same connection, as two server
// replicas do, with PKCE required by the provider.
func TestResumeAttemptInAnotherFlow(t *testing.T) {
	srv := fositeserver.Start(t, fositeserver.Options{
		Clients:     []fositeserver.Client{{ID: clientID, Secret: clientSecret, RedirectURIs: []string{redirectURI}, Scopes: []string{"read"}}},
		RequirePKCE: true,
	})
	def := fositeDefinition(t, srv.URL, "    pkce: true\n")
	conn := func() *connector.Connection {
		return &connector.Connection{ID: "resume", Definition: def, ClientID: clientID, ClientSecret: clientSecret, RedirectURI: redirectURI}
	}
	one, err := connector.NewFlow(conn())
	if err != nil {
		t.Fatal(err)
	}
	a, err := one.AuthCodeURL()
	if err != nil {
		t.Fatal(err)
	}
	if a.Verifier() == "" {
		t.Fatal("a PKCE attempt has no verifier")
	}
	callback := approve(t, a.URL)

	two, err := connector.NewFlow(conn())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// A wrong state or an expired attempt is refused before any exchange.
	if _, err := two.Exchange(ctx, two.ResumeAttempt("not-the-state", a.Verifier(), a.Expires), callback); !errors.Is(err, connector.ErrStateMismatch) {
		t.Fatalf("wrong state: %v, want ErrStateMismatch", err)
	}
	if _, err := two.Exchange(ctx, two.ResumeAttempt(a.State, a.Verifier(), time.Now().Add(-time.Second)), callback); !errors.Is(err, connector.ErrStateMismatch) {
		t.Fatalf("expired attempt: %v, want ErrStateMismatch", err)
	}
	if got := srv.Stats().CodeExchanges; got != 0 {
		t.Fatalf("%d code exchanges after refused callbacks, want 0", got)
	}

	resumed := two.ResumeAttempt(a.State, a.Verifier(), a.Expires)
	tok, err := two.Exchange(ctx, resumed, callback)
	if err != nil {
		t.Fatalf("exchange in the second flow: %v", err)
	}
	if tok.AccessToken == "" || tok.RefreshToken == "" {
		t.Fatalf("token %v lacks an access or refresh token", tok)
	}
	// The rebuilt attempt is single use too.
	if _, err := two.Exchange(ctx, resumed, callback); !errors.Is(err, connector.ErrStateMismatch) {
		t.Fatalf("second use: %v, want ErrStateMismatch", err)
	}
	// Without the verifier the provider refuses the code (PKCE holds across processes).
	a2, _ := one.AuthCodeURL()
	cb2 := approve(t, a2.URL)
	if _, err := two.Exchange(ctx, two.ResumeAttempt(a2.State, "", a2.Expires), cb2); err == nil {
		t.Fatal("an exchange without the PKCE verifier succeeded")
	}
}
