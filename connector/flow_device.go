package connector

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/connector-engine/connector/connector/token"
	"github.com/connector-engine/connector/definitions"
)

// The device authorization grant (RFC 8628), for definitions with
// grant_type: device_code: DeviceAuthorize asks for a device code and a
// user code, the caller shows the user where to enter the user code, and
// PollDevice polls the token endpoint until the user has decided.

// DefaultDeviceInterval is the polling interval when the provider names
// none (RFC 8628 3.2), and slowDownStep what every slow_down adds (3.5).
const (
	DefaultDeviceInterval = 5 * time.Second
	slowDownStep          = 5 * time.Second
	// maxDeviceInterval caps what a provider may ask the client to wait
	// between polls, so that a broken answer cannot park it for hours.
	maxDeviceInterval = 5 * time.Minute
	// maxUserCode caps the user code shown on the terminal.
	maxUserCode = 64
)

// DeviceAuthorization is a device authorization response (RFC 8628 3.2):
// what to show the user, and the device code, which stays inside. Its
// String and GoString leave the device code out.
type DeviceAuthorization struct {
	UserCode                string    // what the user enters at VerificationURI
	VerificationURI         string    // where the user enters it
	VerificationURIComplete string    // VerificationURI with the user code in it, "" when the provider sends none
	Expires                 time.Time // when the codes expire (expires_in after the request, on Flow.Now)
	Interval                time.Duration

	deviceCode string
}

// String shows what the user sees, never the device code.
func (d DeviceAuthorization) String() string {
	return fmt.Sprintf("device authorization{user_code=%s verification_uri=%s expires=%s}", d.UserCode, d.VerificationURI, d.Expires.Format(time.RFC3339))
}

// GoString keeps %#v from printing the device code.
func (d DeviceAuthorization) GoString() string { return d.String() }

// DeviceError is the end of a device grant without a token: the user
// denied it, or the codes expired before the user decided.
type DeviceError struct {
	Code   string // access_denied or expired_token (RFC 8628 3.5)
	Reason string
}

func (e *DeviceError) Error() string { return "device authorization failed: " + e.Reason }

// Is lets errors.Is(err, ErrDeviceDenied) and ErrDeviceExpired match.
func (e *DeviceError) Is(target error) bool {
	t, ok := target.(*DeviceError)
	return ok && t.Code == e.Code
}

// ErrDeviceDenied and ErrDeviceExpired are the two ends of a device grant
// without a token, for errors.Is.
var (
	ErrDeviceDenied  = &DeviceError{Code: "access_denied", Reason: "the user denied access"}
	ErrDeviceExpired = &DeviceError{Code: "expired_token", Reason: "the code expired before the user approved it; start again"}
)

// waitCtx is the default Flow.Wait: it sleeps d unless ctx ends first.
func waitCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// DeviceAuthorize requests a device code and a user code (RFC 8628 3.1):
// a form POST of client_id and scope to device_authorization_uri,
// authenticated like the token requests. Asking again only makes a new
// code, so it is retried like a safe request.
func (f *Flow) DeviceAuthorize(ctx context.Context) (*DeviceAuthorization, error) {
	if f.o.GrantType != definitions.GrantDeviceCode || f.o.DeviceAuthorizationURI == nil {
		return nil, fmt.Errorf("definition %s uses the %s grant, not device_code", f.def.Name, f.o.GrantType)
	}
	const what = "device authorization request"
	start := f.Now()
	std := [][2]string{{"scope", f.vals[definitions.VarScope]}}
	ctx = f.tokenEndpointAudience(ctx, f.vals) // flow_par.go: a client assertion's aud
	resp, body, err := f.send(ctx, f.o.DeviceAuthorizationURI, f.vals, std, true, true, f.o.TokenRequest.ClientAuth)
	var redirect *RedirectError
	if errors.As(err, &redirect) {
		redirect.Op = what
		return nil, redirect
	}
	if err != nil {
		return nil, &RequestError{Op: what, Err: f.redact(err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, f.tokenError(what, resp, body)
	}
	fields, err := decodeBody(resp.Header.Get("Content-Type"), body)
	if err != nil {
		return nil, fmt.Errorf("%s for connection %s: %w", what, f.conn.Key(), err)
	}
	if e, ok := fields["error"].(string); ok && e != "" { // an error with HTTP 200
		te := &TokenError{Op: what, Status: resp.StatusCode, Code: f.redactString(e)}
		te.Description, _ = fields["error_description"].(string)
		te.Description = f.redactString(te.Description)
		return nil, te
	}
	da, err := parseDeviceAuthorization(fields, start)
	if err != nil {
		return nil, fmt.Errorf("%s for connection %s: %w", what, f.conn.Key(), err)
	}
	return da, nil
}

// parseDeviceAuthorization checks the members RFC 8628 3.2 requires. The
// user code and URIs are shown on a terminal and may be opened in a
// browser, so they must be plain text and http(s) URLs.
func parseDeviceAuthorization(fields map[string]any, start time.Time) (*DeviceAuthorization, error) {
	str := func(k string) string { s, _ := fields[k].(string); return s }
	da := &DeviceAuthorization{deviceCode: str("device_code"), UserCode: str("user_code"),
		VerificationURI: str("verification_uri"), VerificationURIComplete: str("verification_uri_complete")}
	if da.deviceCode == "" {
		return nil, errors.New("the answer has no device_code")
	}
	if da.UserCode == "" || len(da.UserCode) > maxUserCode || strings.IndexFunc(da.UserCode, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return nil, fmt.Errorf("the answer has no user_code of at most %d printable characters", maxUserCode)
	}
	if !webURL(da.VerificationURI) {
		return nil, errors.New("the answer has no verification_uri that is an http or https URL")
	}
	if da.VerificationURIComplete != "" && !webURL(da.VerificationURIComplete) {
		return nil, errors.New("the answer's verification_uri_complete is not an http or https URL")
	}
	raw, ok := fields["expires_in"]
	if !ok {
		return nil, errors.New("the answer has no expires_in")
	}
	secs, err := number(raw)
	if err != nil || secs <= 0 {
		return nil, errors.New("the answer's expires_in is not a positive number of seconds")
	}
	da.Expires = start.Add(time.Duration(secs * float64(time.Second)))
	da.Interval = DefaultDeviceInterval
	if raw, ok := fields["interval"]; ok {
		if secs, err := number(raw); err == nil && secs >= 1 {
			da.Interval = min(time.Duration(secs)*time.Second, maxDeviceInterval)
		}
	}
	return da, nil
}

// webURL reports whether s is an absolute http(s) URL without credentials.
func webURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && u.User == nil &&
		strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) || r == ' ' }) < 0
}

// PollDevice polls the token endpoint (RFC 8628 3.4) until the user has
// approved, waiting da.Interval before each poll: authorization_pending
// keeps polling, slow_down adds 5 seconds to the interval for this and
// every later poll (3.5). The user's refusal (access_denied, Microsoft's
// authorization_declined) and the codes' expiry (expired_token, or
// da.Expires passing) end it with a *DeviceError; ctx ends it too. The
// token is returned, not stored: see Source.PollDeviceAndStore. Polls are
// never retried: one the provider answered with a token spends the code.
func (f *Flow) PollDevice(ctx context.Context, da *DeviceAuthorization) (*token.Token, error) {
	if f.o.GrantType != definitions.GrantDeviceCode {
		return nil, fmt.Errorf("definition %s uses the %s grant, not device_code", f.def.Name, f.o.GrantType)
	}
	if da == nil || da.deviceCode == "" {
		return nil, errors.New("no device authorization to poll for; call DeviceAuthorize first")
	}
	wait := f.Wait
	if wait == nil {
		wait = waitCtx
	}
	interval := da.Interval
	if interval <= 0 {
		interval = DefaultDeviceInterval
	}
	std := [][2]string{{"grant_type", string(definitions.GrantDeviceCode)}, {"device_code", da.deviceCode}}
	f, err := f.withNewDPoPKey() // flow_dpop.go: one DPoP key for every poll, the one the token is bound to
	if err != nil {
		return nil, err
	}
	for {
		if err := wait(ctx, interval); err != nil {
			return nil, fmt.Errorf("waiting for the user to approve the device: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("waiting for the user to approve the device: %w", err)
		}
		if !f.Now().Before(da.Expires) {
			return nil, ErrDeviceExpired
		}
		tok, err := f.tokenRequest(ctx, "device token request", f.o.TokenRequestURI, f.vals, std, false, da.deviceCode)
		if err == nil {
			if err := f.learnRequests(ctx, tok); err != nil {
				return nil, fmt.Errorf("the device was approved, but %w", err)
			}
			return tok, nil
		}
		var te *TokenError
		if !errors.As(err, &te) {
			return nil, err
		}
		switch te.Code {
		case "authorization_pending":
		case "slow_down":
			interval = min(interval+slowDownStep, maxDeviceInterval)
		case "access_denied", "authorization_declined":
			return nil, ErrDeviceDenied
		case "expired_token":
			return nil, ErrDeviceExpired
		default:
			return nil, err
		}
	}
}

// PollDeviceAndStore polls until the user approves (Flow.PollDevice) and
// stores the token, as ExchangeAndStore does for the code flow. When
// storing fails the token is returned with the error: the device code is
// spent, so the caller can still keep it (Store).
func (s *Source) PollDeviceAndStore(ctx context.Context, da *DeviceAuthorization) (*token.Token, error) {
	if s.flow == nil {
		return nil, errors.New("this connection's scheme has no OAuth 2.0 device grant")
	}
	t, err := s.flow.PollDevice(ctx, da)
	if err != nil {
		return nil, err
	}
	if err := s.Store(ctx, t); err != nil {
		return t, fmt.Errorf("the device was approved but the token could not be stored (keep it with Source.Store, or connect again): %w", err)
	}
	return t, nil
}
