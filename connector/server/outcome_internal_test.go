package server

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/server/state"
)

// TestConnectOutcome: what the result page tells a user, by what ended
// the authorization; a provider error after a pushed request's link
// expired is put down to the expired link, not to the provider.
func TestConnectOutcome(t *testing.T) {
	expired := time.Now().Add(-time.Second)
	for _, tc := range []struct {
		name    string
		err     error
		status  string
		code    int
		heading string
	}{
		{"connected", nil, "connected", http.StatusOK, "Connected"},
		{"denied", &connector.CallbackError{Code: "access_denied"}, "denied", http.StatusOK, "access was declined"},
		{"session expired", state.ErrSessionExpired, "expired", http.StatusGone, "took too long"},
		{"link expired", &connector.CallbackError{Code: "invalid_request_uri", URLExpired: expired}, "expired", http.StatusGone, "the approval link expired"},
		{"link expired, client error", &connector.CallbackError{Code: "invalid_client", URLExpired: expired}, "expired", http.StatusGone, "the approval link expired"},
		{"wrong environment", &connector.CallbackError{Code: "invalid_client"}, "wrong_environment", http.StatusConflict, "wrong environment"},
		{"provider error", &connector.CallbackError{Code: "server_error"}, "provider_error", http.StatusBadGateway, "reported a problem"},
		{"token refused", &connector.TokenError{Code: "invalid_grant"}, "provider_error", http.StatusBadGateway, "reported a problem"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := connectOutcome(tc.err, "Procore", "sandbox")
			if got.status != tc.status || got.code != tc.code || !strings.Contains(got.page.Heading, tc.heading) {
				t.Errorf("connectOutcome(%v) = %s %d %q; want %s %d and a heading with %q", tc.err, got.status, got.code, got.page.Heading, tc.status, tc.code, tc.heading)
			}
		})
	}
	if got := connectOutcome(errors.New("anything else"), "Procore", ""); got.status == "connected" {
		t.Errorf("an unknown error is shown as connected: %+v", got)
	}
}
