package connector_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/connector-engine/connector/connector"
	"github.com/connector-engine/connector/connector/emulator"
	"github.com/connector-engine/connector/connector/store"
	"github.com/connector-engine/connector/definitions"
)

// deviceRig is the emulator with a public client, and a Source connected
// to it with the device grant, whose waits are counted and move the clock.
type deviceRig struct {
	emu   *emulator.Server
	url   string
	clock *fakeClock
	src   *connector.Source
	st    store.Store
	waits []time.Duration
	// onWait runs at each wait, numbered from 1 (the user acting meanwhile).
	onWait func(n int)
}

func deviceDefinition(t *testing.T, base string) *definitions.Definition {
	t.Helper()
	src := `name: device
title: device grant
base_url: ` + base + `/rest/v1.0
auth:
  scheme: oauth
  oauth:
    version: V2
    grant_type: device_code
    client: public
    device_authorization_uri: ` + base + `/oauth/device/code
    token_request_uri: ` + base + `/oauth/token
    scopes: [read]
`
	set, err := definitions.Parse(nil, definitions.File{Path: "device.yaml", Data: []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	def, _ := set.Get("device")
	return def
}

func newDeviceRig(t *testing.T, cfg emulator.Config) *deviceRig {
	t.Helper()
	// The clock starts at the real time: the Source judges a stored
	// token's expiry on its own clock, so a fixed date would make every
	// token expired once the real day passed it (as 2026-12-03 08:30 did).
	r := &deviceRig{clock: &fakeClock{now: time.Now().UTC().Truncate(time.Second)}}
	cfg.Clients = append(cfg.Clients, emulator.Client{ID: "cli-app", Name: "Connector CLI"})
	cfg.Now = r.clock.Now
	r.emu = emulator.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	u, err := r.emu.Start(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.emu.Close() })
	r.url = u
	r.st = store.NewMemory()
	r.src, err = connector.NewSource(&connector.Connection{Definition: deviceDefinition(t, u), ClientID: "cli-app"}, r.st)
	if err != nil {
		t.Fatal(err)
	}
	f := r.src.Flow()
	f.Now = r.clock.Now
	f.Wait = func(ctx context.Context, d time.Duration) error {
		r.waits = append(r.waits, d)
		r.clock.Add(d)
		if r.onWait != nil {
			r.onWait(len(r.waits))
		}
		return ctx.Err()
	}
	return r
}

// decide enters the user code on the emulator's verification page, checks
// the consent page shows it, and answers allow or deny, as the user would.
func (r *deviceRig) decide(t *testing.T, da *connector.DeviceAuthorization, decision string) {
	t.Helper()
	resp, err := http.Get(r.url + "/oauth/device?user_code=" + url.QueryEscape(da.UserCode))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), da.UserCode) || !strings.Contains(string(page), "Connector CLI") {
		t.Fatalf("consent page: HTTP %d\n%s", resp.StatusCode, page)
	}
	resp, err = http.PostForm(r.url+"/oauth/device", url.Values{"user_code": {da.UserCode}, "decision": {decision}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("decision %s: HTTP %d", decision, resp.StatusCode)
	}
}

// TestDeviceGrantPendingThenApproved: the user approves while the client
// polls; two authorization_pending answers, then the token, stored so the
// Source serves it and refreshes it.
func TestDeviceGrantPendingThenApproved(t *testing.T) {
	r := newDeviceRig(t, emulator.Config{})
	ctx := context.Background()
	da, err := r.src.Flow().DeviceAuthorize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if da.VerificationURI != r.url+"/oauth/device" || !strings.Contains(da.VerificationURIComplete, "user_code=") ||
		len(da.UserCode) != 9 || da.Interval != 5*time.Second || !da.Expires.Equal(r.clock.Now().Add(10*time.Minute)) {
		t.Fatalf("device authorization %+v", da)
	}
	r.onWait = func(n int) {
		if n == 3 {
			r.decide(t, da, "allow")
		}
	}
	tok, err := r.src.PollDeviceAndStore(ctx, da)
	if err != nil {
		t.Fatal(err)
	}
	st := r.emu.Stats()
	if st.DevicePolls != 3 || st.DeviceGrants != 1 || st.DeviceSlowDowns != 0 || st.DeviceAuthorizations != 1 {
		t.Fatalf("stats %+v", st)
	}
	for _, w := range r.waits {
		if w != 5*time.Second {
			t.Fatalf("waits %v: want the interval of 5s each time", r.waits)
		}
	}
	got, err := r.src.TokenContext(ctx)
	if err != nil || got.AccessToken != tok.AccessToken || tok.RefreshToken == "" {
		t.Fatalf("stored token %v, %v", got.AccessToken == tok.AccessToken, err)
	}
	if _, err := r.src.Flow().Refresh(ctx, tok.RefreshToken); err != nil || r.emu.Stats().Refreshes != 1 {
		t.Fatalf("refresh of a device-grant token: %v", err)
	}
}

// TestDeviceGrantSlowDown: every slow_down adds 5 seconds to the interval
// for the polls after it, and the emulator, which answers slow_down to a
// poll sooner than its own grown interval, never had to again.
func TestDeviceGrantSlowDown(t *testing.T) {
	r := newDeviceRig(t, emulator.Config{})
	ctx := context.Background()
	da, err := r.src.Flow().DeviceAuthorize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r.emu.SlowDownDevicePolls(2)
	r.onWait = func(n int) {
		if n == 1 {
			r.decide(t, da, "allow")
		}
	}
	if _, err := r.src.PollDeviceAndStore(ctx, da); err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{5 * time.Second, 10 * time.Second, 15 * time.Second}
	if fmt.Sprint(r.waits) != fmt.Sprint(want) {
		t.Fatalf("waits %v, want %v", r.waits, want)
	}
	if st := r.emu.Stats(); st.DevicePolls != 3 || st.DeviceSlowDowns != 2 {
		t.Fatalf("stats %+v: want 3 polls, only the 2 injected slow_downs", st)
	}
}

// TestDeviceGrantDenied: the user's refusal ends polling with
// ErrDeviceDenied.
func TestDeviceGrantDenied(t *testing.T) {
	r := newDeviceRig(t, emulator.Config{})
	ctx := context.Background()
	da, err := r.src.Flow().DeviceAuthorize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r.onWait = func(n int) {
		if n == 2 {
			r.decide(t, da, "deny")
		}
	}
	_, err = r.src.PollDeviceAndStore(ctx, da)
	if !errors.Is(err, connector.ErrDeviceDenied) || !strings.Contains(err.Error(), "denied") {
		t.Fatalf("got %v, want ErrDeviceDenied", err)
	}
	if st := r.emu.Stats(); st.DevicePolls != 2 || st.DeviceGrants != 0 {
		t.Fatalf("stats %+v", st)
	}
	if _, err := r.src.TokenContext(ctx); err == nil {
		t.Fatal("a denied device grant stored a token")
	}
}

// TestDeviceGrantExpired: polling stops when expires_in has passed, without
// another request; and the provider's expired_token ends it the same way.
func TestDeviceGrantExpired(t *testing.T) {
	t.Run("client clock", func(t *testing.T) {
		r := newDeviceRig(t, emulator.Config{DeviceCodeLifetime: 30 * time.Second})
		da, err := r.src.Flow().DeviceAuthorize(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.src.Flow().PollDevice(context.Background(), da)
		if !errors.Is(err, connector.ErrDeviceExpired) {
			t.Fatalf("got %v, want ErrDeviceExpired", err)
		}
		if st := r.emu.Stats(); st.DevicePolls != 5 { // at 5, 10, ... 25 s; at 30 s the code has expired
			t.Fatalf("stats %+v, waits %v", st, r.waits)
		}
	})
	t.Run("expired_token", func(t *testing.T) {
		r := newDeviceRig(t, emulator.Config{})
		f := r.src.Flow()
		flowClock := &fakeClock{now: r.clock.Now()} // the flow and emulator share fakeClock (session_test.go)
		f.Now = flowClock.Now                       // the provider's clock runs ahead of the client's
		da, err := f.DeviceAuthorize(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		r.onWait = func(n int) {
			if n == 2 {
				r.clock.Add(time.Hour)
			}
		}
		_, err = f.PollDevice(context.Background(), da)
		if !errors.Is(err, connector.ErrDeviceExpired) || r.emu.Stats().DevicePolls != 2 {
			t.Fatalf("got %v after %d polls, want ErrDeviceExpired after 2", err, r.emu.Stats().DevicePolls)
		}
	})
}

// TestDeviceGrantContext: a cancelled context ends polling at the wait.
func TestDeviceGrantContext(t *testing.T) {
	r := newDeviceRig(t, emulator.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	da, err := r.src.Flow().DeviceAuthorize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r.onWait = func(n int) {
		if n == 3 {
			cancel()
		}
	}
	_, err = r.src.Flow().PollDevice(ctx, da)
	if !errors.Is(err, context.Canceled) || r.emu.Stats().DevicePolls != 2 {
		t.Fatalf("got %v after %d polls", err, r.emu.Stats().DevicePolls)
	}
}

// TestDeviceGrantSecrets: the device code appears in no error and no
// formatting of the authorization, even when the provider echoes it back;
// and an error member with HTTP 200 (GitHub's style) is read as the RFC's
// error answers.
func TestDeviceGrantSecrets(t *testing.T) {
	const deviceCode = "DEVICE-CODE-SECRET-3584"
	polls := 0
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/oauth/device/code":
			fmt.Fprintf(w, `{"device_code":%q,"user_code":"WDJB-MJHT","verification_uri":"%s/device","expires_in":900}`, deviceCode, base)
		case "/oauth/token":
			polls++
			if polls == 1 {
				fmt.Fprint(w, `{"error":"authorization_pending"}`) // HTTP 200, as GitHub answers
				return
			}
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"error":"invalid_grant","error_description":"bad device_code %s"}`, r.PostForm.Get("device_code"))
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	s, err := connector.NewSource(&connector.Connection{Definition: deviceDefinition(t, base), ClientID: "cli-app"}, store.NewMemory())
	if err != nil {
		t.Fatal(err)
	}
	f := s.Flow()
	var waits []time.Duration
	f.Wait = func(ctx context.Context, d time.Duration) error { waits = append(waits, d); return nil }
	da, err := f.DeviceAuthorize(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, shown := range []string{da.String(), fmt.Sprintf("%v %+v %#v %s", da, da, da, *da)} {
		if strings.Contains(shown, deviceCode) {
			t.Fatalf("the device code shows in %s", shown)
		}
	}
	if da.Interval != connector.DefaultDeviceInterval {
		t.Fatalf("interval %v, want the default 5s when the answer names none", da.Interval)
	}
	_, err = f.PollDevice(context.Background(), da)
	if err == nil || strings.Contains(err.Error(), deviceCode) || !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("got %v: want invalid_grant without the device code", err)
	}
	if polls != 2 || len(waits) != 2 {
		t.Fatalf("%d polls, waits %v: the HTTP 200 authorization_pending must keep polling", polls, waits)
	}
}

// TestPreviewMatchesTheDeviceRequests holds render's device authorization
// and device token requests to what the flow sends, for a public client
// and for a confidential one with HTTP Basic.
func TestPreviewMatchesTheDeviceRequests(t *testing.T) {
	var got []string
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got = append(got, sentRequest(r, body, "Accept", "Content-Type", "Authorization"))
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/device" {
			fmt.Fprintf(w, `{"device_code":%q,"user_code":"ABCD-EFGH","verification_uri":"%s/verify","expires_in":600,"interval":1}`, definitions.PreviewDeviceCode, base)
			return
		}
		io.WriteString(w, `{"access_token":"a","refresh_token":"r2","token_type":"bearer","expires_in":60}`)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	for _, client := range []string{"    client: public\n", "    token_request: {client_auth: basic}\n"} {
		src := `name: preview
title: preview
base_url: ` + base + `
auth:
  scheme: oauth
  oauth:
    version: V2
    grant_type: device_code
    device_authorization_uri: ${BaseUrl}/device?audience=api
    token_request_uri: ${BaseUrl}/token
    scopes: [read, write]
` + client
		set, err := definitions.Parse(nil, definitions.File{Path: "p.yaml", Data: []byte(src)})
		if err != nil {
			t.Fatal(err)
		}
		def, _ := set.Get("preview")
		secret := ""
		if !strings.Contains(client, "public") {
			secret = "s3:cr%t"
		}
		flow, err := connector.NewFlow(&connector.Connection{Definition: def, ClientID: "id", ClientSecret: secret})
		if err != nil {
			t.Fatal(err)
		}
		flow.Wait = func(context.Context, time.Duration) error { return nil }
		got = nil
		da, err := flow.DeviceAuthorize(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := flow.PollDevice(context.Background(), da); err != nil {
			t.Fatal(err)
		}
		vals, _ := def.Values("", map[string]string{"ClientId": "id", "ClientSecret": secret})
		for i, key := range []string{"device_authorization_uri", "token_request_uri"} {
			p, err := def.Preview("", key, vals, true)
			if err != nil {
				t.Fatal(err)
			}
			if p.String() != got[i] {
				t.Errorf("%s%s: render shows\n%s\nthe flow sent\n%s", client, key, p, got[i])
			}
		}
	}
}
