package emulator_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector/emulator"
)

const deviceGrant = "urn:ietf:params:oauth:grant-type:device_code"

// deviceCode asks POST /oauth/device/code for form's client.
func (e *env) deviceCode(form url.Values) (int, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.base+"/oauth/device/code", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, raw := e.do(req)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		e.t.Fatalf("device authorization answer is not JSON (%d): %s", resp.StatusCode, raw)
	}
	return resp.StatusCode, m
}

func (e *env) deviceDecide(userCode, decision string) int {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.base+"/oauth/device", strings.NewReader(url.Values{"user_code": {userCode}, "decision": {decision}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, _ := e.do(req)
	return resp.StatusCode
}

// TestDeviceAuthorizationEndpoint: the answer of RFC 8628 3.2, client
// authentication as at the token endpoint, and the verification page
// (lenient about case and dashes, 6.1; unknown codes refused).
func TestDeviceAuthorizationEndpoint(t *testing.T) {
	e := newEnv(t)
	if code, m := e.deviceCode(url.Values{"client_id": {loopID}}); code != http.StatusUnauthorized || m["error"] != "invalid_client" {
		t.Fatalf("a confidential client without its secret: %d %v", code, m)
	}
	code, m := e.deviceCode(url.Values{"client_id": {pubID}, "scope": {"read"}})
	user, _ := m["user_code"].(string)
	if code != http.StatusOK || m["device_code"] == "" || len(user) != 9 || m["verification_uri"] != e.base+"/oauth/device" ||
		m["verification_uri_complete"] != e.base+"/oauth/device?user_code="+user || m["expires_in"] != 600.0 || m["interval"] != 5.0 {
		t.Fatalf("device authorization: %d %v", code, m)
	}
	if strings.ContainsAny(user, "AEIOUY0123456789") {
		t.Fatalf("user code %q: want consonants only (RFC 8628 6.1)", user)
	}
	resp, body := e.get("/oauth/device?user_code=" + url.QueryEscape(strings.ToLower(strings.ReplaceAll(user, "-", ""))))
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), user) {
		t.Fatalf("consent page for the typed code: %d\n%s", resp.StatusCode, body)
	}
	if resp, _ := e.get("/oauth/device?user_code=BBBB-BBBB"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("an unknown code: %d", resp.StatusCode)
	}
}

// TestDeviceTokenPolling: pending, slow_down for a poll sooner than the
// interval (which then grows), the grant, and a second exchange refused;
// another client cannot redeem the code, and an expired one says so.
func TestDeviceTokenPolling(t *testing.T) {
	e := newEnv(t)
	_, m := e.deviceCode(url.Values{"client_id": {pubID}})
	dc, user := m["device_code"].(string), m["user_code"].(string)
	poll := func(client string) (int, tokenBody) { // a public client: client_id alone
		code, tb, _ := e.postToken(url.Values{"grant_type": {deviceGrant}, "client_id": {client}, "device_code": {dc}})
		return code, tb
	}
	if code, tb := poll(pubID); code != http.StatusBadRequest || tb.Error != "authorization_pending" {
		t.Fatalf("first poll: %d %+v", code, tb)
	}
	e.clock.Advance(4 * time.Second)
	if _, tb := poll(pubID); tb.Error != "slow_down" {
		t.Fatalf("a poll 4s after the last: %+v, want slow_down", tb)
	}
	e.clock.Advance(5 * time.Second) // 5 s is no longer enough: the interval is 10 s now
	if _, tb := poll(pubID); tb.Error != "slow_down" {
		t.Fatalf("a poll 5s after a slow_down: %+v, want slow_down", tb)
	}
	if code := e.deviceDecide(user, "allow"); code != http.StatusOK {
		t.Fatalf("allow: %d", code)
	}
	e.clock.Advance(15 * time.Second)
	if code, tb, _ := e.postToken(url.Values{"grant_type": {deviceGrant}, "client_id": {loopID}, "client_secret": {loopSec}, "device_code": {dc}}); code != http.StatusBadRequest || tb.Error != "invalid_grant" {
		t.Fatalf("another client's poll: %d %+v", code, tb)
	}
	e.clock.Advance(15 * time.Second)
	if code, tb := poll(pubID); code != http.StatusOK || tb.AccessToken == "" || tb.RefreshToken == "" {
		t.Fatalf("poll after allow: %d %+v", code, tb)
	}
	e.clock.Advance(15 * time.Second)
	if _, tb := poll(pubID); tb.Error != "invalid_grant" {
		t.Fatalf("a second exchange: %+v", tb)
	}
	if st := e.srv.Stats(); st.DeviceSlowDowns != 2 || st.DeviceGrants != 1 || st.DevicePolls != 6 {
		t.Fatalf("stats %+v", st)
	}

	_, m = e.deviceCode(url.Values{"client_id": {pubID}})
	dc = m["device_code"].(string)
	e.clock.Advance(10*time.Minute + time.Second)
	if _, tb := poll(pubID); tb.Error != "expired_token" {
		t.Fatalf("an expired device code: %+v", tb)
	}
	if code := e.deviceDecide(m["user_code"].(string), "allow"); code != http.StatusBadRequest {
		t.Fatalf("allowing an expired code: %d", code)
	}
}

// TestDeviceAutoApprove: with AutoApprove, opening the complete
// verification URL allows that code (the next poll gets tokens); an
// unknown code is still refused, and a code already approved is not
// approved twice.
func TestDeviceAutoApprove(t *testing.T) {
	e := newEnv(t, autoApprove)
	_, m := e.deviceCode(url.Values{"client_id": {pubID}})
	dc, complete := m["device_code"].(string), m["verification_uri_complete"].(string)
	if code, tb, _ := e.postToken(url.Values{"grant_type": {deviceGrant}, "client_id": {pubID}, "device_code": {dc}}); tb.Error != "authorization_pending" {
		t.Fatalf("a poll before the page was opened: %d %+v", code, tb)
	}
	resp, body := e.get(strings.TrimPrefix(complete, e.base))
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "The device is connected") || strings.Contains(string(body), `value="allow"`) {
		t.Fatalf("the complete verification URL: %d\n%s", resp.StatusCode, body)
	}
	if resp, _ := e.get(strings.TrimPrefix(complete, e.base)); resp.StatusCode != http.StatusNotFound {
		t.Errorf("opening it again: %d, want 404 (already answered)", resp.StatusCode)
	}
	if resp, _ := e.get("/oauth/device?user_code=BBBB-BBBB"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("an unknown code: %d", resp.StatusCode)
	}
	e.clock.Advance(5 * time.Second)
	if code, tb, _ := e.postToken(url.Values{"grant_type": {deviceGrant}, "client_id": {pubID}, "device_code": {dc}}); code != http.StatusOK || tb.AccessToken == "" {
		t.Fatalf("the poll after the page was opened: %d %+v", code, tb)
	}
}

// TestPublicClientGrants: a public client (no secret) gets the device
// grant and the code flow with PKCE, and is refused what needs a client
// that authenticates, as a real provider refuses it: client_credentials
// (even when marked a service account), and any client_secret it sends.
func TestPublicClientGrants(t *testing.T) {
	const pubSvc = "public-service"
	e := newEnv(t, func(c *emulator.Config) {
		c.Clients = append(c.Clients, emulator.Client{ID: pubSvc, ServiceAccount: true})
	})
	for _, id := range []string{pubID, pubSvc} {
		code, tb, _ := e.postToken(url.Values{"grant_type": {"client_credentials"}, "client_id": {id}})
		if code != http.StatusBadRequest || tb.Error != "unauthorized_client" || !strings.Contains(tb.Description, "public") {
			t.Errorf("client_credentials for public client %s: %d %+v", id, code, tb)
		}
	}
	if code, tb, _ := e.postToken(url.Values{"grant_type": {"client_credentials"}, "client_id": {pubID}, "client_secret": {"guess"}}); code != http.StatusUnauthorized || tb.Error != "invalid_client" {
		t.Errorf("a public client sending a secret: %d %+v", code, tb)
	}
	if code, m := e.deviceCode(url.Values{"client_id": {pubID}, "client_secret": {"guess"}}); code != http.StatusUnauthorized || m["error"] != "invalid_client" {
		t.Errorf("device authorization with a secret for a public client: %d %v", code, m)
	}
	c := e.code(authQuery(pubID, redirect, "s", s256(verifier), "S256"))
	form := exchangeForm(c, redirect, verifier)
	form.Del("client_secret")
	form.Set("client_id", pubID)
	if code, tb, raw := e.postToken(form); code != http.StatusOK || tb.AccessToken == "" {
		t.Errorf("the code flow with PKCE for a public client: %d %s", code, raw)
	}
}
