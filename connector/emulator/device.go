package emulator

import (
	"crypto/rand"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The device authorization grant (RFC 8628), written from the RFC: a
// client without a browser asks POST /oauth/device/code for a device code
// and a user code (3.1, 3.2); the user opens GET /oauth/device, enters the
// user code and allows or denies (3.3); meanwhile the client polls
// POST /oauth/token with grant_type
// urn:ietf:params:oauth:grant-type:device_code (3.4) and gets
// authorization_pending, slow_down, access_denied or expired_token (3.5)
// until the user has decided. Procore has no device flow; the emulator
// offers it so that `connector connect --device` can be tried end to end.

const (
	deviceGrantType           = "urn:ietf:params:oauth:grant-type:device_code"
	defaultDeviceCodeLifetime = 10 * time.Minute
	defaultDeviceInterval     = 5 * time.Second
	// slowDownStep is what slow_down adds to the interval (RFC 8628 3.5).
	slowDownStep = 5 * time.Second
	// maxPendingDevices bounds the device codes kept, so that a client
	// asking in a loop cannot exhaust memory.
	maxPendingDevices = 10000
	// userCodeAlphabet is the base-20 set of RFC 8628 6.1: consonants only,
	// so no word and no look-alike letters; eight of them give 34 bits.
	userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"
)

// deviceAuth is one device authorization and the user's decision on it.
type deviceAuth struct {
	clientID  string
	userCode  string // normalised: 8 letters, no dash
	scope     string
	expiresAt time.Time
	interval  time.Duration // grows by slowDownStep on every slow_down
	lastPoll  time.Time     // zero before the first poll
	decided   bool
	allowed   bool
	used      bool // exchanged for tokens; a second exchange is invalid_grant
}

// deviceAuthorizationResponse is the body of RFC 8628 3.2.
type deviceAuthorizationResponse struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	ExpiresIn               int64  `json:"expires_in"`
	Interval                int64  `json:"interval"`
}

// SlowDownDevicePolls makes the next n device-grant polls answer
// slow_down whatever their timing, so a client test can see the interval
// grow without polling too soon on purpose.
func (s *Server) SlowDownDevicePolls(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.slowN = n
}

// newUserCode returns eight letters of userCodeAlphabet.
func newUserCode() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = userCodeAlphabet[int(b[i])%len(userCodeAlphabet)] // 256 = 12*20+16: a bias of under 1 bit in 34, fine for an emulator
	}
	return string(b)
}

// normaliseUserCode drops the dash and spaces a user types and upper-cases
// the rest (RFC 8628 6.1: be lenient about what is not part of the code).
func normaliseUserCode(v string) string {
	return strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(v))
}

// displayUserCode is the code as shown: XXXX-XXXX.
func displayUserCode(c string) string {
	if len(c) != 8 {
		return c
	}
	return c[:4] + "-" + c[4:]
}

// deviceAuthorization handles POST /oauth/device/code (RFC 8628 3.1).
// The client authenticates as at the token endpoint: a public client with
// client_id alone.
func (s *Server) deviceAuthorization(w http.ResponseWriter, r *http.Request) {
	params, perr := readParams(w, r)
	if perr != nil {
		oauthError(http.StatusBadRequest, "invalid_request", perr.Error()).write(w)
		return
	}
	now := s.now()
	s.mu.Lock()
	client, fail := s.authenticateClientLocked(r, params)
	if fail != nil {
		s.mu.Unlock()
		fail.write(w)
		return
	}
	s.sweepDevicesLocked(now)
	if len(s.devices) >= maxPendingDevices {
		s.mu.Unlock()
		oauthError(http.StatusServiceUnavailable, "temporarily_unavailable", "too many pending device authorizations").write(w)
		return
	}
	code, user := randomString(32), newUserCode()
	for s.userCodeTakenLocked(user) {
		user = newUserCode()
	}
	s.devices[code] = &deviceAuth{clientID: client.ID, userCode: user, scope: params.Get("scope"),
		expiresAt: now.Add(s.cfg.DeviceCodeLifetime), interval: s.cfg.DeviceInterval}
	s.stats.DeviceAuthorizations++
	s.mu.Unlock()

	// The verification page is on the host the client reached.
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	verify := scheme + "://" + r.Host + "/oauth/device"
	oauthReply{status: http.StatusOK, body: deviceAuthorizationResponse{
		DeviceCode: code, UserCode: displayUserCode(user),
		VerificationURI: verify, VerificationURIComplete: verify + "?user_code=" + url.QueryEscape(displayUserCode(user)),
		ExpiresIn: int64(s.cfg.DeviceCodeLifetime / time.Second), Interval: int64(s.cfg.DeviceInterval / time.Second),
	}}.write(w)
}

func (s *Server) userCodeTakenLocked(user string) bool {
	for _, d := range s.devices {
		if d.userCode == user {
			return true
		}
	}
	return false
}

// deviceByUserCodeLocked finds the live authorization a user code names.
func (s *Server) deviceByUserCodeLocked(user string, now time.Time) *deviceAuth {
	for _, d := range s.devices {
		if d.userCode == user && now.Before(d.expiresAt) {
			return d
		}
	}
	return nil
}

// sweepDevicesLocked forgets device codes an hour after they expired: until
// then a poll still gets expired_token rather than invalid_grant.
func (s *Server) sweepDevicesLocked(now time.Time) {
	for code, d := range s.devices {
		if now.Sub(d.expiresAt) > time.Hour {
			delete(s.devices, code)
		}
	}
}

// deviceTokenLocked answers one poll (RFC 8628 3.4, 3.5). s.mu must be held.
func (s *Server) deviceTokenLocked(client *Client, params url.Values, now time.Time) oauthReply {
	s.stats.DevicePolls++
	code := params.Get("device_code")
	if code == "" {
		return oauthError(http.StatusBadRequest, "invalid_request", "device_code is required")
	}
	d := s.devices[code]
	if d == nil || d.clientID != client.ID {
		return invalidGrant("unknown device_code")
	}
	if d.used {
		return invalidGrant("the device code was already exchanged")
	}
	if !now.Before(d.expiresAt) {
		return oauthError(http.StatusBadRequest, "expired_token", "the device code expired; start again")
	}
	tooSoon := !d.lastPoll.IsZero() && now.Sub(d.lastPoll) < d.interval
	d.lastPoll = now
	if s.slowN > 0 || tooSoon {
		if s.slowN > 0 {
			s.slowN--
		}
		d.interval += slowDownStep // for this and every later poll (3.5)
		s.stats.DeviceSlowDowns++
		return oauthError(http.StatusBadRequest, "slow_down", "polling too often; wait 5 seconds more between polls")
	}
	switch {
	case !d.decided:
		return oauthError(http.StatusBadRequest, "authorization_pending", "the user has not yet entered the code")
	case !d.allowed:
		delete(s.devices, code)
		return oauthError(http.StatusBadRequest, "access_denied", "the user denied access")
	}
	d.used = true
	s.stats.DeviceGrants++
	return oauthReply{status: http.StatusOK, body: s.issueLocked(&grant{clientID: client.ID, userID: DemoUserID}, true, now)}
}

type devicePage struct {
	Title, User, App, UserCode, Message string
}

// The verification page (RFC 8628 3.3): enter the code, then allow or
// deny. The emulator has one signed-in demo user and no session, so there
// is no cross-site request token to check: the user code itself is what a
// decision must name.
var _ = template.Must(pages.New("device").Parse(`{{template "top" .}}
<h1>Connect a device</h1>
{{if .Message}}<p>{{.Message}}</p>{{end}}
<form method="get" action="/oauth/device">
<label>Code shown on the device <input name="user_code" value="{{.UserCode}}" autocomplete="off" autofocus></label>
<button type="submit">Continue</button>
</form>
{{template "bottom"}}`))

var _ = template.Must(pages.New("device_consent").Parse(`{{template "top" .}}
<h1>{{.App}} wants to access your Procore account</h1>
<p>Allow only if the device you are connecting shows the code <strong id="user_code">{{.UserCode}}</strong>.</p>
<form method="post" action="/oauth/device">
<input type="hidden" name="user_code" value="{{.UserCode}}">
<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form>
{{template "bottom"}}`))

var _ = template.Must(pages.New("device_done").Parse(`{{template "top" .}}
<h1>{{.Message}}</h1>
<p>You can close this page and return to the device.</p>
{{template "bottom"}}`))

// deviceForm handles GET /oauth/device: the code entry page, or with
// user_code (typed, or from verification_uri_complete) the consent page.
// With Config.AutoApprove, opening the page that names a live code is the
// user's Allow, as at /oauth/authorize: `BROWSER='curl -sL -o /dev/null'
// connector connect --device` then completes with no one at a browser.
func (s *Server) deviceForm(w http.ResponseWriter, r *http.Request) {
	typed := r.URL.Query().Get("user_code")
	page := devicePage{Title: "Connect a device", User: demoUserName}
	if typed == "" {
		renderPage(w, http.StatusOK, "device", page)
		return
	}
	user := normaliseUserCode(typed)
	s.mu.Lock()
	d := s.deviceByUserCodeLocked(user, s.now())
	var app string
	if d != nil && !d.decided {
		app = s.clients[d.clientID].Name
		if s.cfg.AutoApprove {
			d.decided, d.allowed = true, true
		}
	}
	auto := s.cfg.AutoApprove
	s.mu.Unlock()
	if app == "" {
		page.Message = "That code is unknown, expired or already used. Check the code on the device."
		renderPage(w, http.StatusNotFound, "device", page)
		return
	}
	if auto {
		msg := "The device is connected"
		renderPage(w, http.StatusOK, "device_done", devicePage{Title: msg, User: demoUserName, Message: msg})
		return
	}
	page.Title, page.App, page.UserCode = "Authorize "+app, app, displayUserCode(user)
	renderPage(w, http.StatusOK, "device_consent", page)
}

// deviceDecision handles POST /oauth/device, the consent form.
func (s *Server) deviceDecision(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxParamBody)
	if err := r.ParseForm(); err != nil {
		renderError(w, "The form could not be read. Enter the code again.")
		return
	}
	decision := r.PostForm.Get("decision")
	if decision != "allow" && decision != "deny" {
		renderError(w, "The form must answer allow or deny. Enter the code again.")
		return
	}
	s.mu.Lock()
	d := s.deviceByUserCodeLocked(normaliseUserCode(r.PostForm.Get("user_code")), s.now())
	ok := d != nil && !d.decided
	if ok {
		d.decided, d.allowed = true, decision == "allow"
	}
	s.mu.Unlock()
	if !ok {
		renderError(w, "That code is unknown, expired or already answered. Check the code on the device.")
		return
	}
	msg := "The device is connected"
	if decision == "deny" {
		msg = "Access denied"
	}
	renderPage(w, http.StatusOK, "device_done", devicePage{Title: msg, User: demoUserName, Message: msg})
}
