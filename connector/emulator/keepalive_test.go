package emulator_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/emulator"
)

// IssueTokens seeds a grant whose tokens work like exchanged ones: the
// access token calls the API, the refresh token rotates once, and reuse
// revokes the grant.
func TestIssueTokens(t *testing.T) {
	e := newEnv(t)
	at, rt, err := e.srv.IssueTokens(appID)
	if err != nil {
		t.Fatal(err)
	}
	if resp, body := e.api("GET", "/rest/v1.0/me", at, "", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("the issued access token: %d %s", resp.StatusCode, body)
	}
	e.refresh(rt)
	if status, _, _ := e.postToken(refreshForm(rt)); status != http.StatusBadRequest {
		t.Fatalf("reusing the issued refresh token: %d", status)
	}
	st := e.srv.Stats()
	if st.IssuedGrants != 1 || st.Refreshes != 1 || st.GrantRevocations != 1 || st.CodeExchanges != 0 {
		t.Fatalf("stats %+v", st)
	}
	if _, _, err := e.srv.IssueTokens("nobody"); err == nil || !strings.Contains(err.Error(), `no client "nobody"`) {
		t.Fatalf("IssueTokens for an unknown client: %v", err)
	}
}

// With RefreshTokenIdleLifetime, a refresh token unused for longer is
// refused; one used in time rotates into a new one with a new idle clock.
func TestRefreshTokenIdleLifetime(t *testing.T) {
	e := newEnv(t, func(c *emulator.Config) { c.RefreshTokenIdleLifetime = time.Hour })
	_, rt, _ := e.srv.IssueTokens(appID)
	e.clock.Advance(59 * time.Minute)
	next := e.refresh(rt) // in time
	e.clock.Advance(61 * time.Minute)
	status, tb, raw := e.postToken(refreshForm(next.RefreshToken))
	if status != http.StatusBadRequest || tb.Error != "invalid_grant" || !strings.Contains(string(raw), "not used for 1h0m0s") {
		t.Fatalf("an idle-expired refresh token: %d %s", status, raw)
	}
	if st := e.srv.Stats(); st.IdleExpiredRefreshes != 1 || st.Refreshes != 1 || st.GrantRevocations != 0 {
		t.Fatalf("stats %+v", st)
	}
}
